"""Real tiny trainings logged, step by step, to MLflow (file store, tracking server) and to TensorBoard.

Each case is one actual CPU training of the tiny transformer (:mod:`tiny`); every optimizer update
logs the LR it used, its loss and its grad norm at the same time to every sink given: a TensorBoard
``SummaryWriter``, and MLflow clients (``MlflowClient(tracking_uri=...)``: a file store
``file://.../mlruns`` written with ``MLFLOW_ALLOW_FILE_STORE=true``, or a tracking server
``http://127.0.0.1:PORT`` whose SQLite backend is then also readable as ``mlflow.db``). Values go to
MLflow as TensorBoard stores them (float32), so that every sink holds the very same numbers.
The run configuration is logged as MLflow params and, for TensorBoard, as ``hparams.yaml`` beside the
event file (where warmcheck's audit reads it).

Cases (``CASES``):

* ``founding`` - the founding story: 135 updates whose warmup really lasts ``int(0.2 * 135) = 27``
  updates while the configuration says ``warmup_steps: 20`` (a warmup mismatch, WC201).
* ``nan_loss`` - a healthy warmup/cosine run in which, at update ``BLOWUP_AT``, the learning rate is
  set to ``BLOWUP_LR`` by a bad scheduler hook; plain SGD then overflows and the loss becomes NaN.

Run ``python scripts/realruns/mlflow_runs.py OUT_DIR`` to write both cases to ``OUT_DIR/<case>/``
(``tb/``, ``mlruns/``) and print the steps at which the loss is not finite; the tests in
``tests/trackers/test_mlflow_realruns.py`` use :func:`train` directly in a session fixture.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tiny import TinyLM, batches, corpus, seed_all  # noqa: E402

TAGS = {"lr": "train/lr", "loss": "train/loss", "grad_norm": "train/grad_norm"}


@dataclass(frozen=True)
class Case:
    """One training: its schedule, what its configuration says, and how it goes wrong (if it does)."""

    name: str
    total: int
    warmup: int  # updates of linear warmup actually run
    peak_lr: float
    params: dict[str, Any] = field(default_factory=dict)  # the configuration as logged
    optimizer: str = "adamw"
    blowup_at: int | None = None
    blowup_lr: float = 0.0


BLOWUP_AT = 90
BLOWUP_LR = 1e6
CASES = {
    "founding": Case("founding", total=135, warmup=int(0.2 * 135), peak_lr=3e-3,
                     params={"warmup_steps": 20, "max_steps": 135, "learning_rate": 3e-3,
                             "lr_scheduler_type": "cosine"}),
    "nan_loss": Case("nan_loss", total=160, warmup=16, peak_lr=0.5, optimizer="sgd", blowup_at=BLOWUP_AT,
                     blowup_lr=BLOWUP_LR, params={"warmup_steps": 16, "max_steps": 160, "learning_rate": 0.5}),
}


def schedule(case: Case, step: int) -> float:
    """The LR of update ``step`` (0-based): linear warmup over ``case.warmup`` updates, then cosine to 0."""
    if step < case.warmup:
        return case.peak_lr * (step + 1) / case.warmup
    progress = (step - case.warmup) / max(1, case.total - case.warmup)
    return case.peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def train(case: Case, tb_dir: Path | None, clients: Sequence[tuple[Any, str]] = (),
          experiment: str = "warmcheck-realruns") -> dict[str, list[float]]:
    """Train ``case``, logging every update to TensorBoard (``tb_dir``) and to each ``(client, label)``.

    Returns what was logged, per tag, as float32 values (index = step), so tests can derive the truth.
    """
    from mlflow.entities import Metric, Param

    seed_all(0)
    model = TinyLM()
    opt: torch.optim.Optimizer = (torch.optim.SGD(model.parameters(), lr=case.peak_lr) if case.optimizer == "sgd"
                                  else torch.optim.AdamW(model.parameters(), lr=case.peak_lr))
    writer = None
    if tb_dir is not None:
        from torch.utils.tensorboard import SummaryWriter
        tb_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(log_dir=str(tb_dir))
        (tb_dir / "hparams.yaml").write_text("".join(f"{k}: {v}\n" for k, v in case.params.items()))
    runs = []
    for client, label in clients:
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
        run = client.create_run(exp_id, run_name=f"{case.name}-{label}")
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in case.params.items()])
        runs.append((client, run.info.run_id))
    logged: dict[str, list[float]] = {tag: [] for tag in TAGS.values()}
    data = corpus()
    stream = batches(data)
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
        stamp = int(1000 * (1.7e9 + step))
        for tag, value in values.items():
            as32 = float(np.float32(value))  # what TensorBoard stores
            logged[tag].append(as32)
            if writer is not None:
                writer.add_scalar(tag, value, step)
        for client, run_id in runs:
            client.log_batch(run_id, metrics=[Metric(tag, float(np.float32(v)), stamp, step)
                                              for tag, v in values.items()])
    if writer is not None:
        writer.close()
    for client, run_id in runs:
        client.set_terminated(run_id)
    return logged


def main(argv: list[str]) -> int:
    """Write every case to OUT_DIR/<case>/{tb,mlruns}; print where the loss stops being finite."""
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    out = Path(argv[0])
    for name in argv[1:] or list(CASES):
        case = CASES[name]
        client = MlflowClient(tracking_uri=(out / name / "mlruns").resolve().as_uri())
        logged = train(case, out / name / "tb", [(client, "file")])
        bad = [i for i, v in enumerate(logged[TAGS["loss"]]) if not math.isfinite(v)]
        print(f"{name}: {case.total} updates, loss not finite at {bad[:5]}{'...' if len(bad) > 5 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
