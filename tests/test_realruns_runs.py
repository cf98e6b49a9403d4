"""One training, one run (issue 9, items 5 and 6), on real logs under tests/data/realruns.

* An HF Trainer output directory (event files under ``runs/`` and ``trainer_state.json``) is one run
  named after the directory: every log file is a source, each trainer_state key merges with the
  event files' tag of the same log call, step by step, with no overlap reported, and the
  configuration (``max_steps``) is the one the files state.
* nanoGPT's ``eval.csv`` joins the ``log.csv`` run as ``eval/<column>``; its validation loss takes
  the ``eval_loss`` role (kept in JSON) and the training analyses use ``log.csv``'s own series.
* The summary table never shows the first logged step as the warmup end of a run without a warmup.

Expected values come from truth.json and from the files themselves (read with tensorboard's own loader and json).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from warmcheck.config import Settings
from warmcheck.model import Format, Role
from warmcheck.pipeline import analyze
from warmcheck.readers.joining import hf_tb_tag
from warmcheck.reporters import OutputFormat, make_reporter
from warmcheck.reporters.common import summarize
from warmcheck.runconfig import configured

REAL = Path(__file__).parent / "data" / "realruns"


def _truth(name: str) -> dict:
    return json.loads((REAL / name / "truth.json").read_text())


def _hf_output_dirs() -> list[str]:
    """Cases whose truth lists both event files and a trainer_state.json (an HF output directory)."""
    out = []
    for p in sorted(REAL.iterdir()):
        if (p / "truth.json").is_file():
            files = _truth(p.name).get("files", {})
            if files.get("tfevents") and files.get("trainer_state"):
                out.append(p.name)
    return out


HF_CASES = _hf_output_dirs()


def _history(path: Path) -> dict[str, dict[int, float]]:
    """trainer_state.json log_history: key -> {step: value}, the end-of-training summary left out."""
    doc = json.loads(path.read_text())
    out: dict[str, dict[int, float]] = {}
    for entry in doc["log_history"]:
        if "train_runtime" in entry or "step" not in entry:
            continue
        for k, v in entry.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                out.setdefault(k, {})[int(entry["step"])] = float(v)
    return out


def _event_steps(case: Path, files: list[str]) -> dict[str, set[int]]:
    """Steps per tag, read by tensorboard's own loader with every point kept (size_guidance 0)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    out: dict[str, set[int]] = {}
    for f in files:
        for event in EventFileLoader(str(case / f)).Load():
            for value in event.summary.value:
                if value.HasField("simple_value") or value.metadata.plugin_data.plugin_name == "scalars":
                    out.setdefault(value.tag, set()).add(int(event.step))
    return out


def test_there_are_hf_output_dirs_to_check() -> None:
    assert len(HF_CASES) >= 2, HF_CASES


@pytest.mark.parametrize("name", HF_CASES)
def test_an_hf_output_dir_is_one_run_with_every_log_file(name: str) -> None:
    case = REAL / name
    truth = _truth(name)
    files = truth["files"]
    outcome = analyze([str(case)], Settings())
    (run,) = outcome.runs
    assert run.name == str(case)
    shown = {s.path.removeprefix(str(case) + "/"): s.format for s in run.sources}
    state = files["trainer_state"] if isinstance(files["trainer_state"], str) else files["trainer_state"][0]
    assert shown == {**{f: Format.TFEVENTS for f in files["tfevents"]}, state: Format.HF_TRAINER_STATE}
    # Same log calls, same steps: each key's series is the union of both files' steps, nothing superseded.
    history = _history(case / state)
    events = _event_steps(case, files["tfevents"])
    for key, points in history.items():
        tag = hf_tb_tag(key)
        series = run.get(tag)
        assert series is not None, tag
        assert set(series.steps.tolist()) == set(points) | events.get(tag, set()), tag
        assert series.superseded == 0
        got = dict(zip(series.steps.tolist(), series.values.tolist(), strict=True))
        assert all(got[s] == v or (v != v and got[s] != got[s]) for s, v in points.items()), tag
    assert not [f for f in run.findings if f.code in ("WC006", "WC023")], [f.message for f in run.findings]
    # The training's length is configured by the files (trainer_state.json max_steps, the TrainingArguments).
    cfg = configured(run, Settings())
    assert cfg.total_steps is not None and cfg.total_steps.value == truth["total_optimizer_steps"]
    assert run.primary(Role.LR).tag == truth["tags"]["lr"] and run.primary(Role.LOSS).tag == truth["tags"]["loss"]


@pytest.mark.parametrize("name", HF_CASES)
def test_the_event_dir_alone_is_still_read_as_before(name: str) -> None:
    case = REAL / name
    (run,) = analyze([str(case / "runs")], Settings()).runs
    assert {s.format for s in run.sources} == {Format.TFEVENTS}


def test_hf_eval_loss_joins_the_run_with_its_role() -> None:
    with_eval = [n for n in HF_CASES if "eval_loss" in _history(REAL / n / "trainer_state.json")]
    assert with_eval, "no HF output dir with evaluation in tests/data/realruns"
    for name in with_eval:
        (run,) = analyze([str(REAL / name)], Settings()).runs
        evals = _history(REAL / name / "trainer_state.json")["eval_loss"]
        series = run.primary(Role.EVAL_LOSS)
        assert series is not None and series.tag == "eval/loss"
        assert set(evals) <= set(series.steps.tolist())
        assert run.primary(Role.LOSS).tag == "train/loss"


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_nanogpt_eval_csv_joins_its_training_log() -> None:
    case = REAL / "nanogpt_warmup40_log8"
    truth = _truth("nanogpt_warmup40_log8")
    outcome = analyze([str(case)], Settings(warmup_steps=truth["configured_warmup"]["warmup_iters"]))
    (run,) = outcome.runs
    assert run.name == str(case / truth["files"]["csv"])
    assert sorted(s.path.rsplit("/", 1)[-1] for s in run.sources) == sorted(
        [truth["files"]["csv"], truth["files"]["eval_csv"]])
    cols = truth["eval_csv_columns"]
    rows = _csv_rows(case / truth["files"]["eval_csv"])
    val = run.get(f"eval/{cols['val_loss']}")
    assert val is not None and val.role is Role.EVAL_LOSS and val.points == len(rows)
    assert val.steps.tolist() == [int(r[cols["step"]]) for r in rows]
    assert run.primary(Role.EVAL_LOSS) is val
    # The training analyses use log.csv's series, never the evaluation log's.
    assert run.primary(Role.LOSS).tag == truth["tags"]["loss"] and run.primary(Role.LR).tag == truth["tags"]["lr"]
    assert run.get(f"eval/{cols['train_loss']}").role is Role.EVAL_LOSS
    assert run.get(f"eval/{cols['lr']}").role is None
    s = run.schedules[0]
    peak = truth["observed_warmup"]["lr_first_reaches_peak_at_logged_step"]
    assert s.tag == truth["tags"]["lr"] and s.warmup_end_step == peak
    assert not [f for f in run.findings if f.code.startswith("WC2") and f.severity.value != "info"]
    doc = json.loads(make_reporter(OutputFormat.JSON).render(outcome))
    roles = {s["tag"]: s["role"] for s in doc["runs"][0]["series"]}
    assert roles[f"eval/{cols['val_loss']}"] == "eval_loss" and roles[truth["tags"]["loss"]] == "loss"


def test_constant_lr_run_shows_no_warmup_end_step() -> None:
    case = REAL / "constant_lr_no_warmup"
    (run,) = analyze([str(case)], Settings()).runs
    s = run.schedules[0]
    row = summarize(run)
    codes = {f.code for f in run.findings}
    assert s.no_warmup
    assert row.warmup_end == ("none" if "WC101" in codes else "before first log")
    assert row.warmup_end != str(s.first_step)

