"""``warmcheck watch`` follows MLflow runs while the real client logs to them: the points logged since the
last poll are analysed, a NaN is reported when it arrives, and the run followed ends as ``analyze``
reads it. File store, SQLite and a tracking server."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from warmcheck.config import Settings
from warmcheck.live.watch import Watcher
from warmcheck.pipeline import analyze
from warmcheck.readers import _mlflowtail

pytestmark = pytest.mark.usefixtures("mlflow_env")
N, NAN_AT = 120, 80


def _values(i: int) -> dict[str, float]:
    return {"train/lr": 1e-3 * min(1.0, (i + 1) / 20), "train/loss": math.nan if i == NAN_AT else 4.0 - 0.01 * i}


class _Writer:
    """A run being logged by the real client, a chunk of steps at a time."""

    def __init__(self, uri: str, experiment: str) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(exp_id, run_name="live").info.run_id
        self.client.log_batch(self.run_id, params=[Param("warmup_steps", "20")])

    def log(self, steps: range) -> None:
        from mlflow.entities import Metric

        self.client.log_batch(self.run_id, metrics=[Metric(k, v, 1_700_000_000_000 + i, i) for i in steps
                                                    for k, v in _values(i).items()])


@pytest.fixture(params=["file", "sqlite", "server"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[_Writer, str]:
    if request.param == "file":
        return _Writer((tmp_path / "mlruns").as_uri(), "watched"), str(tmp_path)
    if request.param == "sqlite":
        return _Writer(f"sqlite:///{tmp_path / 'mlflow.db'}", "watched"), str(tmp_path)
    server: Any = request.getfixturevalue("mlflow_server")
    return _Writer(server.http, "watched-live"), server.uri("watched-live")


def test_watch_reports_the_nan_when_it_is_logged(live: tuple[_Writer, str]) -> None:
    writer, where = live
    writer.log(range(0, 50))
    watcher = Watcher([where], Settings(), settle=30)
    first = watcher.poll()
    assert not [f for f in first if f.code == "WC401"]
    assert watcher.poll() == []  # nothing new: nothing read twice, nothing reported twice
    writer.log(range(50, N))
    second = watcher.poll()
    assert [(f.code, f.tag, f.step) for f in second if f.code == "WC401"] == [("WC401", "train/loss", NAN_AT)]
    watcher.finish()
    (followed,) = watcher.outcome_runs()
    assert {s.tag: s.points for s in followed.series} == {"train/lr": N, "train/loss": N}
    (whole,) = analyze([where], Settings()).runs
    assert followed.name == whole.name
    assert ("WC401", "train/loss", NAN_AT) in {(f.code, f.tag, f.step) for f in whole.findings}
    assert followed.metadata["tracker_params"] == whole.metadata["tracker_params"]


def test_a_metric_logged_again_from_the_start_is_a_new_generation(tmp_path: Path) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    writer = _Writer((tmp_path / "mlruns").as_uri(), "w")
    writer.log(range(0, 30))
    (metric,) = (tmp_path / "mlruns").glob(f"*/{writer.run_id}/metrics/train/loss")
    (run_dir,) = (tmp_path / "mlruns").glob(f"*/{writer.run_id}")
    tailer = _mlflowtail.MlflowTailer(str(run_dir))
    assert sum(len(f) for f in tailer.poll().fragments) == 60  # type: ignore[union-attr]
    assert tailer.poll() is None
    metric.unlink()  # the loss logged again: other values at the same steps
    MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri()).log_batch(
        writer.run_id, metrics=[Metric("train/loss", 9.0, 1, i) for i in range(10)])
    read = tailer.poll()
    assert read is not None and tailer.generation == 1
    assert {f.tag: len(f) for f in read.fragments} == {"train/lr": 30, "train/loss": 10}
