"""The trainings the tracker generators (``wandb_runs.py``, ``mlflow_runs.py``) log: cases and the loop.

Each case is one actual CPU training of the tiny transformer (:mod:`tiny`). :func:`train` runs it and
hands every optimizer update's LR, loss and grad norm to the caller's sink, and to a TensorBoard
``SummaryWriter`` when given a directory (with the configuration as ``hparams.yaml`` beside the event
file, where warmcheck's audit reads it). The sinks get the values as TensorBoard stores them (float32),
so that every sink holds the very same numbers.

Cases (``CASES``):

* ``founding`` - the founding story: 135 updates whose warmup really lasts ``int(0.2 * 135) = 27``
  updates while the configuration says ``warmup_steps: 20`` (a warmup mismatch, WC201).
* ``nan_loss`` - a healthy warmup/cosine run in which, at update ``BLOWUP_AT``, the learning rate is
  set to ``BLOWUP_LR`` by a bad scheduler hook; plain SGD then overflows and the loss becomes NaN.
* ``long`` - a healthy run of 5000 updates (what the W&B tests kill mid-write and follow with ``watch``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TAGS = {"lr": "train/lr", "loss": "train/loss", "grad_norm": "train/grad_norm"}
BLOWUP_AT = 90
BLOWUP_LR = 1e6


@dataclass(frozen=True)
class Case:
    """One training: its schedule, what its configuration says, and how it goes wrong (if it does)."""

    name: str
    total: int
    warmup: int  # updates of linear warmup actually run
    peak_lr: float
    config: dict[str, Any] = field(default_factory=dict)  # the configuration as logged
    optimizer: str = "adamw"
    blowup_at: int | None = None
    blowup_lr: float = 0.0


CASES = {
    "founding": Case("founding", total=135, warmup=int(0.2 * 135), peak_lr=3e-3,
                     config={"warmup_steps": 20, "max_steps": 135, "learning_rate": 3e-3,
                             "lr_scheduler_type": "cosine"}),
    "nan_loss": Case("nan_loss", total=160, warmup=16, peak_lr=0.5, optimizer="sgd", blowup_at=BLOWUP_AT,
                     blowup_lr=BLOWUP_LR, config={"warmup_steps": 16, "max_steps": 160, "learning_rate": 0.5}),
    "long": Case("long", total=5000, warmup=50, peak_lr=1e-3,
                 config={"warmup_steps": 50, "max_steps": 5000, "learning_rate": 1e-3}),
}


def schedule(case: Case, step: int) -> float:
    """The LR of update ``step`` (0-based): linear warmup over ``case.warmup`` updates, then cosine to 0."""
    if step < case.warmup:
        return case.peak_lr * (step + 1) / case.warmup
    progress = (step - case.warmup) / max(1, case.total - case.warmup)
    return case.peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def train(case: Case, sink: Callable[[int, dict[str, float]], None], tb_dir: Path | None = None) -> None:
    """Train ``case``; after each update, ``sink(step, {tag: float32 value})`` and, with ``tb_dir``, the same
    values to TensorBoard."""
    import numpy as np
    import torch
    from tiny import TinyLM, batches, corpus, seed_all

    seed_all(0)
    model = TinyLM()
    opt: torch.optim.Optimizer = (torch.optim.SGD(model.parameters(), lr=case.peak_lr) if case.optimizer == "sgd"
                                  else torch.optim.AdamW(model.parameters(), lr=case.peak_lr))
    writer = None
    if tb_dir is not None:
        from torch.utils.tensorboard import SummaryWriter
        tb_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(log_dir=str(tb_dir))
        (tb_dir / "hparams.yaml").write_text("".join(f"{k}: {v}\n" for k, v in case.config.items()))
    stream = batches(corpus())
    for step in range(case.total):
        lr = case.blowup_lr if case.blowup_at is not None and step >= case.blowup_at else schedule(case, step)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = next(stream)
        loss = model(x, y)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf)
        opt.step()
        values = {TAGS["lr"]: lr, TAGS["loss"]: float(loss.detach()), TAGS["grad_norm"]: float(norm)}
        if writer is not None:
            for tag, value in values.items():
                writer.add_scalar(tag, value, step)
        sink(step, {tag: float(np.float32(v)) for tag, v in values.items()})  # what TensorBoard stores
    if writer is not None:
        writer.close()
