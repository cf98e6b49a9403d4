"""Real tiny trainings logged, step by step, to MLflow (file store, tracking server) and to TensorBoard.

Each case is one actual CPU training of the tiny transformer (:mod:`tiny`); every optimizer update
logs the LR it used, its loss and its grad norm at the same time to every sink given: a TensorBoard
``SummaryWriter``, and MLflow clients (``MlflowClient(tracking_uri=...)``: a file store
``file://.../mlruns`` written with ``MLFLOW_ALLOW_FILE_STORE=true``, or a tracking server
``http://127.0.0.1:PORT`` whose SQLite backend is then also readable as ``mlflow.db``). Values go to
MLflow as TensorBoard stores them (float32), so that every sink holds the very same numbers.
The run configuration is logged as MLflow params and, for TensorBoard, as ``hparams.yaml`` beside the
event file (where warmcheck's audit reads it).

Cases (``CASES``): ``founding`` and ``nan_loss`` of :mod:`tracker_cases`.

Run ``python scripts/realruns/mlflow_runs.py OUT_DIR`` to write both cases to ``OUT_DIR/<case>/``
(``tb/``, ``mlruns/``) and print the steps at which the loss is not finite; the tests in
``tests/trackers/test_mlflow_realruns.py`` use :func:`train` directly in a session fixture.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tracker_cases import BLOWUP_AT, BLOWUP_LR, TAGS, Case  # noqa: E402
from tracker_cases import CASES as ALL_CASES  # noqa: E402
from tracker_cases import train as train_case  # noqa: E402

__all__ = ["BLOWUP_AT", "BLOWUP_LR", "CASES", "TAGS", "Case", "train"]

CASES = {name: ALL_CASES[name] for name in ("founding", "nan_loss")}


def train(case: Case, tb_dir: Path | None, clients: Sequence[tuple[Any, str]] = (),
          experiment: str = "warmcheck-realruns") -> dict[str, list[float]]:
    """Train ``case``, logging every update to TensorBoard (``tb_dir``) and to each ``(client, label)``.

    Returns what was logged, per tag, as float32 values (index = step), so tests can derive the truth.
    """
    from mlflow.entities import Metric, Param

    runs = []
    for client, label in clients:
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
        run = client.create_run(exp_id, run_name=f"{case.name}-{label}")
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in case.config.items()])
        runs.append((client, run.info.run_id))
    logged: dict[str, list[float]] = {tag: [] for tag in TAGS.values()}

    def sink(step: int, values: dict[str, float]) -> None:
        stamp = int(1000 * (1.7e9 + step))
        for tag, value in values.items():
            logged[tag].append(value)
        for client, run_id in runs:
            client.log_batch(run_id, metrics=[Metric(tag, v, stamp, step) for tag, v in values.items()])

    train_case(case, sink, tb_dir)
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
