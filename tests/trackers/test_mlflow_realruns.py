"""Real trainings logged live to TensorBoard, an MLflow file store and an MLflow server (SQLite backend):
warmcheck reads the same points from each and reports the same schedule and the same findings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from warmcheck.config import Settings
from warmcheck.model import Format, Run
from warmcheck.pipeline import analyze


def _runs(path: str) -> dict[str, Run]:
    return {r.name: r for r in analyze([path], Settings()).runs}


def _findings(run: Run) -> list[tuple[Any, ...]]:
    return sorted((f.code, f.tag, f.step, f.step_end) for f in run.findings)


def _sinks(rr: Any, case: str) -> dict[str, Run]:
    """The case as read from each sink: TensorBoard, file store, the server's SQLite file, the server."""
    tb = _runs(str(rr.tb[case]))
    store = _runs(str(rr.mlruns))
    db = _runs(str(rr.server.db))
    server = _runs(rr.server.uri())
    return {"tensorboard": next(iter(tb.values())),
            "file store": store[f"{rr.mlruns}/{rr.file_run(case)}"],
            "sqlite": db[f"{rr.server.db}/{rr.server_run(case)}"],
            "server": server[rr.server_run(case)]}


@pytest.mark.parametrize("case", ["founding", "nan_loss"])
def test_every_sink_reads_the_same_points_schedule_and_findings(mlflow_realruns: Any, case: str) -> None:
    sinks = _sinks(mlflow_realruns, case)
    tb = sinks.pop("tensorboard")
    assert {s.tag for s in tb.series} == {"train/lr", "train/loss", "train/grad_norm"}
    for where, run in sinks.items():
        assert [s.format for s in run.sources] == [Format.MLFLOW], where
        assert {s.tag for s in run.series} == {s.tag for s in tb.series}, where
        for ours in run.series:
            theirs = next(s for s in tb.series if s.tag == ours.tag)
            assert np.array_equal(ours.steps, theirs.steps), (where, ours.tag)
            assert np.array_equal(ours.values, theirs.values, equal_nan=True), (where, ours.tag)
            assert ours.role == theirs.role, (where, ours.tag)
        assert [s.as_dict() for s in run.schedules] == [s.as_dict() for s in tb.schedules], where
        assert _findings(run) == _findings(tb), where


def test_founding_story_mismatch_from_mlflow_params(mlflow_realruns: Any) -> None:
    """Configured warmup_steps=20 (an MLflow param), real warmup int(0.2*135)=27 updates: WC201 on every sink."""
    logged = mlflow_realruns.logged["founding"]["train/lr"]
    peak_step = int(np.argmax(logged))  # the first update at the peak LR: the last warmup update
    assert peak_step == int(0.2 * 135) - 1
    for where, run in _sinks(mlflow_realruns, "founding").items():
        wc201 = [f for f in run.findings if f.code == "WC201"]
        assert [(f.step, f.details["observed_warmup_steps"]) for f in wc201] == [(peak_step, peak_step)], where
        assert run.schedules[0].warmup_end_step == peak_step, where
        if where != "tensorboard":
            assert run.metadata["tracker_params"]["MLflow params"]["warmup_steps"] == "20"
            assert wc201[0].details["configured"] == "warmup_steps=20 (MLflow params warmup_steps)", where


def test_nan_loss_reported_at_the_first_non_finite_step(mlflow_realruns: Any) -> None:
    loss = mlflow_realruns.logged["nan_loss"]["train/loss"]
    first_bad = next(i for i, v in enumerate(loss) if not math.isfinite(v))
    assert first_bad > 0
    for where, run in _sinks(mlflow_realruns, "nan_loss").items():
        wc401 = [f for f in run.findings if f.code == "WC401" and f.tag == "train/loss"]
        assert [f.step for f in wc401] == [first_bad], where
        series = next(s for s in run.series if s.tag == "train/loss")
        assert series.nonfinite == sum(not math.isfinite(v) for v in loss), where


def test_server_url_lists_every_run_of_the_experiment(mlflow_realruns: Any) -> None:
    runs = _runs(mlflow_realruns.server.uri())
    assert sorted(runs) == sorted(mlflow_realruns.server_run(c) for c in mlflow_realruns.logged)
    for name, run in runs.items():
        case = name.split("/")[-1].removesuffix("-server")
        steps = len(mlflow_realruns.logged[case]["train/loss"])
        assert {s.tag: s.raw_points for s in run.series} == dict.fromkeys(["train/lr", "train/loss",
                                                                            "train/grad_norm"], steps)
        assert run.sources[0].path.startswith(mlflow_realruns.server.uri() + "/")


def test_server_url_without_experiment_or_with_its_id(mlflow_realruns: Any) -> None:
    from mlflow.tracking import MlflowClient

    server = mlflow_realruns.server
    wanted = sorted(mlflow_realruns.server_run(c) for c in mlflow_realruns.logged)
    every = _runs(f"mlflow://127.0.0.1:{server.port}")  # no experiment: every active experiment
    assert set(wanted) <= set(every)
    exp = MlflowClient(tracking_uri=server.http).get_experiment_by_name(wanted[0].split("/")[0])
    by_id = _runs(f"mlflow://127.0.0.1:{server.port}/{exp.experiment_id}")
    assert sorted(by_id) == wanted


def test_server_runs_read_by_worker_processes(mlflow_realruns: Any) -> None:
    one = analyze([mlflow_realruns.server.uri()], Settings(), jobs=1).runs
    two = analyze([mlflow_realruns.server.uri()], Settings(), jobs=2).runs
    assert [(r.name, _findings(r), [s.points for s in r.series]) for r in two] == \
        [(r.name, _findings(r), [s.points for s in r.series]) for r in one]
