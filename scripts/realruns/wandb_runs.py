"""Real tiny trainings logged, step by step, to W&B (offline) and to TensorBoard at the same time.

Each case is one actual CPU training of the tiny transformer (:mod:`tiny`); every optimizer update
logs the LR it used, its loss and its grad norm with one ``run.log({...}, step=update)`` to a real
``wandb`` run in offline mode (``WANDB_MODE=offline``: nothing leaves the machine; the run directory
is ``<out>/<case>/wandb/offline-run-<date>-<id>/``) and to a TensorBoard ``SummaryWriter``
(``<out>/<case>/tb/``). Values go to W&B as TensorBoard stores them (float32), so that both sinks
hold the very same numbers. The run configuration goes to ``wandb.init(config=...)`` and, for
TensorBoard, to ``hparams.yaml`` beside the event file (where warmcheck's audit reads it). Every
value logged is also appended to ``<out>/<case>/logged.jsonl`` (flushed at each update): the truth
the tests compare with, also for a training killed mid-run.

Cases (``CASES``):

* ``founding`` - the founding story: 135 updates whose warmup really lasts ``int(0.2 * 135) = 27``
  updates while the configuration says ``warmup_steps: 20`` (a warmup mismatch, WC201).
* ``nan_loss`` - a healthy warmup/cosine run in which, at update ``BLOWUP_AT``, the learning rate is
  set to ``BLOWUP_LR`` by a bad scheduler hook; plain SGD then overflows and the loss becomes NaN.
* ``shapes`` (:func:`log_shapes`) - no training: the record shapes the reader must handle.
* ``long`` - a healthy run of 5000 updates, slowed down (``--pace`` seconds per update): the one the
  tests kill with SIGKILL while wandb writes it, and follow with ``watch``.

Run ``python scripts/realruns/wandb_runs.py OUT_DIR [CASE...] [--pace S] [--no-tb]``. W&B's own files
(settings, cache, artifacts) go under ``OUT_DIR/.wandb-home``, never the user's home.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tracker_cases import BLOWUP_AT, BLOWUP_LR, CASES, TAGS, Case  # noqa: E402
from tracker_cases import train as train_case  # noqa: E402

__all__ = ["BLOWUP_AT", "BLOWUP_LR", "CASES", "TAGS", "Case", "train", "wandb_env"]


def wandb_env(home: Path) -> dict[str, str]:
    """The environment that keeps wandb offline, quiet and inside ``home``."""
    return {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
            "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true",
            "WANDB_CONFIG_DIR": str(home / "config"), "WANDB_CACHE_DIR": str(home / "cache"),
            "WANDB_DATA_DIR": str(home / "data"), "WANDB_ARTIFACT_DIR": str(home / "artifacts")}


def train(case: Case, out: Path, *, tb: bool = True, pace: float = 0.0) -> Path:
    """Train ``case``, logging every update to W&B (offline, under ``out/wandb``), TensorBoard and
    ``out/logged.jsonl``; the W&B run directory."""
    import wandb

    out.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project="warmcheck-realruns", name=case.name, dir=str(out), config=case.config,
                     settings=wandb.Settings(x_disable_stats=True, x_disable_meta=True))
    with open(out / "logged.jsonl", "w", encoding="utf-8") as truth:

        def sink(step: int, values: dict[str, float]) -> None:
            run.log(values, step=step)
            truth.write(json.dumps({"step": step, **{k: v if math.isfinite(v) else repr(v)
                                                     for k, v in values.items()}}) + "\n")
            truth.flush()
            if pace:
                time.sleep(pace)

        train_case(case, sink, out / "tb" if tb else None)
    run_dir = Path(run.dir).parent  # run.dir is <run dir>/files
    run.finish()
    return run_dir


SHAPES_ROWS = 400
SHAPES_BLOB_AT = 200  # the row that carries a 50,000-character text: one record over several chunks


def log_shapes(out: Path) -> Path:
    """A W&B run without training, for the reader's shapes: a config over 32 KiB (nested values, a long
    text: its run record spans several chunks), ``SHAPES_ROWS`` rows with a slash key (``train/loss``),
    a nested one (``{"train": {"lr": x}}``), a key logged every 10th row, a histogram at row 5 and a
    50,000-character text in row ``SHAPES_BLOB_AT``; the run directory."""
    import wandb

    out.mkdir(parents=True, exist_ok=True)
    config = {"warmup_steps": 10, "optimizer": {"name": "adamw", "betas": [0.9, 0.95]}, "notes": "x" * 70000}
    run = wandb.init(project="warmcheck-realruns", name="shapes", dir=str(out), config=config,
                     settings=wandb.Settings(x_disable_stats=True, x_disable_meta=True))
    for i in range(SHAPES_ROWS):
        row: dict[str, Any] = {"train/loss": 2.0 / (1 + 0.01 * i), "train": {"lr": min(1.0, (i + 1) / 10) * 1e-3}}
        if i % 10 == 0:
            row["eval/acc"] = i / SHAPES_ROWS
        if i == 5:
            row["weights"] = wandb.Histogram([0.1, 0.2, 0.2, 0.3])
        if i == SHAPES_BLOB_AT:
            row["blob"] = "y" * 50000
        run.log(row, step=i)
    run.summary["best_loss"] = 0.5
    run_dir = Path(run.dir).parent
    run.finish()
    return run_dir


def read_logged(path: Path) -> dict[str, list[float]]:
    """``logged.jsonl`` back as tag -> float32 value per step (a killed run's last line may be cut)."""
    out: dict[str, list[float]] = {tag: [] for tag in TAGS.values()}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break
        for tag in TAGS.values():
            out[tag].append(float(row[tag]))
    return out


def main(argv: list[str]) -> int:
    """Write each case to OUT_DIR/<case>/ (wandb/, tb/, logged.jsonl); print the W&B run directory."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("cases", nargs="*", choices=[*CASES, "shapes", []], default=[])
    parser.add_argument("--pace", type=float, default=0.0, help="seconds to sleep after each update")
    parser.add_argument("--no-tb", action="store_true", help="do not log to TensorBoard")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    os.environ.update(wandb_env(out / ".wandb-home"))
    for name in args.cases or ["founding", "nan_loss"]:
        run_dir = (log_shapes(out / name) if name == "shapes" else
                   train(CASES[name], out / name, tb=not args.no_tb, pace=args.pace))
        print(f"{name}: {run_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
