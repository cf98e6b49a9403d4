"""Tracker CSV exports (issue 11 item 3): W&B panel exports and long key,value,step tables, by header shape.

The real runs are in ``tests/data/evalruns`` (``scripts/realruns/eval_runs.py``): tiny CPU trainings whose own
log is ``log.csv``; ``exports/mlflow_*.csv`` hold the same runs logged with the real MLflow client and exported
from ``MlflowClient.get_metric_history``; ``exports/wandb_panel.csv`` lays them out as a W&B panel export.
Every expectation is read from those files with the ``csv`` module, never from warmcheck's output.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from warmcheck.config import Settings
from warmcheck.model import Run
from warmcheck.pipeline import analyze
from warmcheck.readers._csvexport import long_shape
from warmcheck.readers.csvlog import read_csv

DATA = Path(__file__).resolve().parent.parent / "data" / "evalruns"
EXPORTS = DATA / "exports"
WANDB_NAMES = {"overfit_small_train": "overfit-small-1", "control_full_train": "control-full-2"}


def _log(case: str) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    with (DATA / case / "log.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            for k, v in row.items():
                if k != "step" and v:
                    out.setdefault(k, {})[int(row["step"])] = float(v)
    return out


def _series(run: Run) -> dict[str, dict[int, float]]:
    return {s.tag: dict(zip(s.steps.tolist(), s.values.tolist(), strict=True)) for s in run.series}


def _codes(run: Run) -> list[tuple[str, int | None]]:
    return sorted((f.code, f.step) for f in run.findings)


def _analyze(*paths: Path) -> dict[str, Run]:
    return {r.name: r for r in analyze([str(p) for p in paths], Settings()).runs}


def test_long_table_is_one_series_per_key_with_its_own_steps() -> None:
    path = EXPORTS / "mlflow_overfit.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    read = read_csv(str(path))
    frags = {f.tag: f for f in read.fragments}
    assert set(frags) == {r["key"] for r in rows}
    for tag, f in frags.items():
        mine = [r for r in rows if r["key"] == tag]
        assert f.steps.tolist() == [int(r["step"]) for r in mine]
        assert f.values.tolist() == [float(r["value"]) for r in mine]
        assert f.wall_times.tolist() == [int(r["timestamp"]) / 1000 for r in mine]  # MLflow's ms -> seconds
    assert read.info.records == len(rows) and read.info.skipped == 0
    assert read.metadata["csv"]["export"] == "long"


def test_long_table_gives_the_run_its_own_log_without_a_false_restart() -> None:
    runs = _analyze(EXPORTS / "mlflow_overfit.csv", DATA / "overfit_small_train" / "log.csv")
    exported, own = runs[f"{EXPORTS / 'mlflow_overfit.csv'}"], runs[f"{DATA / 'overfit_small_train' / 'log.csv'}"]
    assert _series(exported) == _log("overfit_small_train")
    codes = {c for c, _ in _codes(exported)}
    assert not codes & {"WC006", "WC007", "WC019"}
    assert _codes(exported) == _codes(own)
    assert exported.schedules[0].warmup_end_step == own.schedules[0].warmup_end_step


def test_long_table_with_a_run_column_becomes_one_run_per_run() -> None:
    path = EXPORTS / "mlflow_history.csv"
    runs = _analyze(path)
    assert sorted(runs) == sorted(f"{path}:{case}" for case in WANDB_NAMES)
    for case in WANDB_NAMES:
        run = runs[f"{path}:{case}"]
        assert _series(run) == _log(case)
        own = _analyze(DATA / case / "log.csv")[str(DATA / case / "log.csv")]
        assert _codes(run) == _codes(own)
        assert run.sources[0].records == sum(len(v) for v in _log(case).values())


def test_wandb_panel_export_is_one_run_per_wandb_run_named_by_metric() -> None:
    path = EXPORTS / "wandb_panel.csv"
    with path.open(newline="") as fh:
        header = next(csv.reader(fh))
    aggregates = sum(h.endswith(("__MIN", "__MAX")) for h in header)
    runs = _analyze(path)
    assert sorted(runs) == sorted(f"{path}:{name}" for name in WANDB_NAMES.values())
    for case, name in WANDB_NAMES.items():
        run = runs[f"{path}:{name}"]
        assert _series(run) == _log(case)  # "overfit-small-1 - train/loss" -> train/loss; __MIN/__MAX dropped
        assert run.roles["loss"] == ("train/loss",) and run.roles["lr"] == ("train/lr",)
        assert run.roles["eval_loss"] == ("eval/loss",)
        assert run.metadata["csv"]["aggregate_columns_dropped"] == aggregates
        own = _analyze(DATA / case / "log.csv")[str(DATA / case / "log.csv")]
        assert _codes(run) == _codes(own)


def test_single_run_wandb_export_keeps_the_file_as_run_name(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    lines = ['"Step","fancy-run-3 - train/loss","fancy-run-3 - train/loss__MIN","fancy-run-3 - train/loss__MAX"']
    lines += [f'"{s}","{3 - s / 100}","{3 - s / 100}","{3 - s / 100}"' for s in range(200)]
    path.write_text("\n".join(lines) + "\n")
    read = read_csv(str(path))
    assert [f.tag for f in read.fragments] == ["train/loss"]
    assert read.fragments[0].steps.tolist() == list(range(200))
    assert read.metadata["csv"]["runs"] == ["fancy-run-3"]
    run = analyze([str(path)], Settings()).runs
    assert [r.name for r in run] == [str(path)]
    assert run[0].roles["loss"] == ("train/loss",)
    assert "WC019" in {f.code for f in run[0].findings}  # no LR column: the loss alone is recognised


def test_a_real_repeat_in_a_long_table_is_still_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    rows = ["key,value,step"]
    rows += [f"{k},{v},{s}" for s in range(20) for k, v in (("loss", 3 - s / 10), ("lr", 1e-3))]
    rows += [f"loss,{2.5 - s / 10},{s}" for s in range(10, 15)]  # resumed from step 10
    path.write_text("\n".join(rows) + "\n")
    (run,) = analyze([str(path)], Settings()).runs
    overlap = [f for f in run.findings if f.code == "WC006"]
    assert len(overlap) == 1 and overlap[0].details["superseded"] == 5 and overlap[0].details["tags"] == 1
    assert run.get("loss") is not None and run.get("loss").superseded == 5  # type: ignore[union-attr]


def test_long_table_bad_rows_are_reported_not_read(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    rows = ["metric,step,value"] + [f"loss,{s},{3 - s / 10}" for s in range(10)]
    rows[4] = ",3,2.7"         # line 5: no key
    rows[6] = "loss,5,abc"     # line 7: not a number
    rows[8] = "loss,x,2.3"     # line 9: not a step
    path.write_text("\n".join(rows) + "\n")
    read = read_csv(str(path))
    (frag,) = read.fragments
    assert frag.tag == "loss" and frag.steps.tolist() == [0, 1, 2, 4, 6, 8, 9]
    bad = sorted((f.code, f.line) for f in read.findings)
    assert bad == [("WC014", 5), ("WC014", 7), ("WC014", 9)]
    assert read.info.skipped == 3


@pytest.mark.parametrize("header", [
    "key,value,step,loss",         # a metric column besides: a wide log, not a long table
    "key,value",                   # no step
    "key,value,step,step",         # duplicate names
    "name,value,step,key",         # two key columns
])
def test_other_headers_are_not_long_tables(header: str) -> None:
    assert long_shape(header.split(",")) is None


def test_a_numeric_key_column_is_read_as_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("name,value,step\n" + "".join(f"{s % 3},{s / 10},{s}\n" for s in range(30)))
    read = read_csv(str(path))
    assert sorted(f.tag for f in read.fragments) == ["name", "value"]
    assert "export" not in read.metadata["csv"]


def test_a_column_outside_the_wandb_shape_keeps_the_file_as_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("Step,fancy-run-3 - train/loss,epoch\n" + "".join(f"{s},{3 - s / 100},{s // 10}\n"
                                                                      for s in range(50)))
    read = read_csv(str(path))
    assert sorted(f.tag for f in read.fragments) == ["epoch", "fancy-run-3 - train/loss"]
    assert "export" not in read.metadata["csv"]


def test_wandb_export_with_ragged_and_bad_cells_stays_per_run(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    head = '"Step","a - loss","a - loss__MIN","a - loss__MAX","b - loss","b - loss__MIN","b - loss__MAX"'
    body = [f'"{s}","{3 - s / 100}","","","{2 - s / 100}","",""' for s in range(40)]
    body[10] = '"10","oops","","","1.9","",""'
    path.write_text("\n".join([head, *body]) + "\n")
    runs = {r.name: r for r in analyze([str(path)], Settings()).runs}
    a, b = runs[f"{path}:a"], runs[f"{path}:b"]
    assert a.get("loss").points == 39 and b.get("loss").points == 40  # type: ignore[union-attr]
    assert [(f.code, f.step) for f in a.findings if f.code == "WC014"] == [("WC014", 10)]
    assert not [f for f in b.findings if f.code == "WC014"]
    assert np.isclose(b.get("loss").values[-1], 2 - 39 / 100)  # type: ignore[union-attr]


def test_a_row_without_its_run_is_skipped_when_the_others_name_theirs(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    rows = ["run_id,key,value,step"] + [f"{r},loss,{3 - s / 10},{s}" for r in ("a", "b") for s in range(10)]
    rows[3] = ",loss,2.8,2"  # line 4: no run
    path.write_text("\n".join(rows) + "\n")
    read = read_csv(str(path))
    assert read.metadata["runs_in_file"] == {"a": {"a - loss": "loss"}, "b": {"b - loss": "loss"}}
    assert [(f.code, f.line) for f in read.findings] == [("WC014", 4)]
    runs = {r.name: r for r in analyze([str(path)], Settings()).runs}
    assert runs[f"{path}:a"].get("loss").steps.tolist() == [0, 1, 3, 4, 5, 6, 7, 8, 9]  # type: ignore[union-attr]
    assert runs[f"{path}:b"].get("loss").points == 10  # type: ignore[union-attr]
