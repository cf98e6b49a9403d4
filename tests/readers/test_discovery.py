"""Run discovery: grouping, order, unrelated files, links, checkpoints, explicit files."""

from __future__ import annotations

import os

import pytest
from factories import run_events, write_events

from warmcheck.errors import PathError
from warmcheck.model import Format
from warmcheck.readers import discover, is_training_csv


def _ev(path) -> None:
    write_events(path, run_events(range(3), {"loss": [3.0, 2.0, 1.0]}))


def _names(root, **kw) -> list[str]:
    return [r.name for r in discover([str(root)], **kw).runs]


def test_event_dirs_are_runs_and_other_logs_are_runs_of_their_own(tmp_path) -> None:
    _ev(tmp_path / "sweep" / "b" / "events.out.tfevents.2.h")
    _ev(tmp_path / "sweep" / "b" / "events.out.tfevents.1.h")
    _ev(tmp_path / "sweep" / "a" / "events.out.tfevents.1.h.v2")
    (tmp_path / "lightning" / "version_0").mkdir(parents=True)
    (tmp_path / "lightning" / "version_0" / "metrics.csv").write_text("step,train_loss\n0,1.0\n")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "trainer_state.json").write_text('{"log_history": []}')
    (tmp_path / "hf" / "log.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    (tmp_path / "notes.txt").write_text("not a log")
    (tmp_path / "data.csv").write_text("sentence,label\nhello,1\n")  # a dataset, not a training log
    (tmp_path / ".git").mkdir()
    _ev(tmp_path / ".git" / "events.out.tfevents.9.h")
    found = discover([str(tmp_path)], is_training_csv=is_training_csv)
    root = os.path.normpath(str(tmp_path))
    assert [(r.name.removeprefix(root + "/"), [f for *_, f in r.files]) for r in found.runs] == [
        ("hf/log.jsonl", [Format.JSONL]),
        ("hf/trainer_state.json", [Format.HF_TRAINER_STATE]),
        ("lightning/version_0/metrics.csv", [Format.CSV]),
        ("sweep/a", [Format.TFEVENTS]),
        ("sweep/b", [Format.TFEVENTS, Format.TFEVENTS]),
    ]
    assert not found.findings


def test_names_are_relative_to_the_path_as_given(tmp_path, monkeypatch) -> None:
    _ev(tmp_path / "runs" / "x" / "events.out.tfevents.1.h")
    monkeypatch.chdir(tmp_path)
    assert _names("runs/") == ["runs/x"]
    assert _names("./runs/x") == ["runs/x"]
    assert _names("runs/x/events.out.tfevents.1.h") == ["runs/x/events.out.tfevents.1.h"]


def test_missing_path_is_an_error(tmp_path) -> None:
    with pytest.raises(PathError):
        discover([str(tmp_path / "nope")])


def test_symlink_loops_and_dangling_links_are_reported_once_and_skipped(tmp_path) -> None:
    _ev(tmp_path / "good" / "events.out.tfevents.1.h")
    os.symlink("..", tmp_path / "good" / "up")
    os.symlink("self", tmp_path / "self")
    os.symlink("/nonexistent/x", tmp_path / "good" / "events.out.tfevents.0.h")
    found = discover([str(tmp_path)])
    assert [r.name.rsplit("/", 1)[-1] for r in found.runs] == ["good"]
    (run,) = found.runs
    assert len(run.files) == 1
    msgs = sorted(f.message for f in [*found.findings, *run.findings])
    assert len(msgs) == 3 and all(f.code == "WC005" for f in [*found.findings, *run.findings])
    assert sum(m.startswith("dangling symlink") for m in msgs) == 1
    assert sum("symlink loop" in m for m in msgs) == 2


def test_symlinked_run_directory_is_followed_once(tmp_path) -> None:
    _ev(tmp_path / "real" / "events.out.tfevents.1.h")
    os.symlink(tmp_path / "real", tmp_path / "zlink")
    found = discover([str(tmp_path)])
    assert [r.name.rsplit("/", 1)[-1] for r in found.runs] == ["real"]
    assert [f.code for f in found.findings] == ["WC005"]


def test_hf_checkpoints_do_not_duplicate_the_run(tmp_path) -> None:
    for d in ("out", "out/checkpoint-500", "out/checkpoint-1000", "only_ckpt/checkpoint-5",
              "only_ckpt/checkpoint-20"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "trainer_state.json").write_text('{"log_history": []}')
    names = [n.removeprefix(os.path.normpath(str(tmp_path)) + "/") for n in _names(tmp_path)]
    assert names == ["only_ckpt/checkpoint-20/trainer_state.json", "out/trainer_state.json"]


def test_explicit_unrecognised_file_is_a_run_with_a_finding(tmp_path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    (run,) = discover([str(p)]).runs
    assert run.files == () and [f.code for f in run.findings] == ["WC002"]


def test_deep_nesting_and_order_are_deterministic(tmp_path) -> None:
    deep = tmp_path
    for i in range(60):
        deep = deep / f"d{i}"
    _ev(deep / "events.out.tfevents.1.h")
    _ev(tmp_path / "b" / "events.out.tfevents.1.h")
    _ev(tmp_path / "a" / "events.out.tfevents.1.h")
    names = _names(tmp_path)
    assert names == sorted(names) and len(names) == 3 and names[-1].endswith("/d59")
