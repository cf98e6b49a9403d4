"""Where MLflow runs are found: file-store run directories and ``mlflow.db`` in a walk, run names, what
is not searched, and that reading needs no mlflow package (runs written by the real client)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from factories import run_events, write_events

from warmcheck.config import Settings
from warmcheck.model import Format
from warmcheck.pipeline import analyze
from warmcheck.readers import discover

pytestmark = pytest.mark.usefixtures("mlflow_env")


def _log(uri: str, experiment: str, run_name: str | None, n: int = 30, artifact: Path | None = None) -> str:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    run = client.create_run(exp_id, run_name=run_name)
    rid = run.info.run_id
    client.log_batch(rid, params=[Param("warmup_steps", "5"), Param("optim/lr", "0.001")],
                     metrics=[Metric(k, v, 1_700_000_000_000 + i, i) for i in range(n)
                              for k, v in (("lr", 1e-3 * min(1, (i + 1) / 5)), ("loss", 3.0 - 0.01 * i))])
    if artifact is not None:
        client.log_artifacts(rid, str(artifact), "tb")
    client.set_terminated(rid)
    return rid


def test_file_store_runs_in_a_tree(tmp_path: Path) -> None:
    tb = tmp_path / "tb-src"
    write_events(tb / "events.out.tfevents.1.h", run_events(range(20), {"loss": np.linspace(2, 1, 20)}))
    mlruns = tmp_path / "proj" / "mlruns"
    a = _log(mlruns.as_uri(), "exp A", "alpha", artifact=tb)
    _log(mlruns.as_uri(), "exp A", "beta")
    os.chdir(tmp_path)
    found = discover(["proj"])
    names = sorted(r.name for r in found.runs)
    (exp_dir,) = {p.parent.name for p in mlruns.glob(f"*/{a}")}
    # The artifact's event file is a TensorBoard run of its own; metrics/, params/, tags/ are not searched.
    assert names == sorted(["proj/mlruns/exp A/alpha", "proj/mlruns/exp A/beta",
                            f"proj/mlruns/{exp_dir}/{a}/artifacts/tb"])
    alpha = next(r for r in found.runs if r.name.endswith("/alpha"))
    assert alpha.path == f"proj/mlruns/{exp_dir}/{a}" and [f[2] for f in alpha.files] == [Format.MLFLOW]
    run = next(r for r in analyze(["proj"], Settings()).runs if r.name.endswith("/alpha"))
    assert {s.tag: (s.points, s.role.value if s.role else None) for s in run.series} == {
        "lr": (30, "lr"), "loss": (30, "loss")}
    assert run.metadata["tracker_params"] == {"MLflow params": {"optim/lr": "0.001", "warmup_steps": "5"}}
    assert run.metadata["mlflow"]["run_id"] == a and run.metadata["mlflow"]["status"] == "FINISHED"
    assert run.series[0].wall_times[0] == 1_700_000_000.0


def test_run_directory_given_as_dot(tmp_path: Path) -> None:
    mlruns = tmp_path / "mlruns"
    rid = _log(mlruns.as_uri(), "e", "solo")
    (run_dir,) = mlruns.glob(f"*/{rid}")
    os.chdir(run_dir)
    (run,) = analyze(["."], Settings()).runs
    assert run.name == "e/solo" and sum(s.points for s in run.series) == 60


def test_unnamed_run_is_named_by_its_id(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    rid = _log(f"sqlite:///{db}", "e", None)
    import sqlite3

    with sqlite3.connect(db) as con:  # MLflow names every run; an old store may have none
        con.execute("UPDATE runs SET name = NULL")
    (run,) = analyze([str(tmp_path)], Settings()).runs
    assert run.name == f"{tmp_path}/mlflow.db/e/{rid}"


def test_mlflow_db_in_a_tree_is_one_run_per_mlflow_run(tmp_path: Path) -> None:
    db = tmp_path / "work" / "mlflow.db"
    db.parent.mkdir()
    ids = [_log(f"sqlite:///{db}", exp, name) for exp, name in (("b", "r1"), ("a", "r2"), ("a", "r1"))]
    os.chdir(tmp_path)
    found = discover(["work"])
    assert [r.name for r in found.runs] == ["work/mlflow.db/a/r1", "work/mlflow.db/a/r2", "work/mlflow.db/b/r1"]
    assert [r.path for r in found.runs] == [f"work/mlflow.db/{i}" for i in (ids[2], ids[1], ids[0])]
    other = tmp_path / "store.sqlite"
    other.write_bytes(db.read_bytes())
    assert len(discover([str(other)]).runs) == 3  # any SQLite file given explicitly is tried


def test_mlflow_db_that_is_not_sqlite(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").write_text("not a database")
    (run,) = analyze([str(tmp_path)], Settings()).runs
    assert [f.code for f in run.findings] == ["WC002"]


def test_reading_needs_no_mlflow_package(tmp_path: Path) -> None:
    """File store and SQLite are read with mlflow made unimportable (the extra is for tests and bench)."""
    _log((tmp_path / "mlruns").as_uri(), "e", "f")
    _log(f"sqlite:///{tmp_path / 'mlflow.db'}", "e", "s")
    code = ("import sys, json; sys.modules['mlflow'] = None\n"
            "from warmcheck.pipeline import analyze\n"
            f"runs = analyze([{str(tmp_path)!r}]).runs\n"
            "print(json.dumps({r.name: sum(s.points for s in r.series) for r in runs}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {f"{tmp_path}/mlflow.db/e/s": 60, f"{tmp_path}/mlruns/e/f": 60}
