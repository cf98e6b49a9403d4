"""Run discovery: grouping, order, unrelated files, links, checkpoints, explicit files."""

from __future__ import annotations

import os

import pytest
from factories import run_events, write_events

from warmcheck.errors import PathError
from warmcheck.model import Format, Role
from warmcheck.readers import discover, is_training_csv, read_runs


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


# ---- one training, one run: HF output directories and evaluation logs ----------------------------

def _hf_events(path, steps, loss, lr) -> None:
    write_events(path, run_events(steps, {"train/loss": loss, "train/learning_rate": lr,
                                          "train/epoch": [s / 100 for s in steps]}))


def _trainer_state(path, steps, loss, lr, max_steps=30, evals=()) -> None:
    import json
    history = [{"epoch": s / 100, "learning_rate": r, "loss": v, "step": s}
               for s, v, r in zip(steps, loss, lr, strict=True)]
    history += [{"epoch": s / 100, "eval_loss": v, "step": s} for s, v in evals]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"global_step": steps[-1], "max_steps": max_steps, "logging_steps": 1,
                                "log_history": history}))


def _rel(root, name: str) -> str:
    return name.removeprefix(os.path.normpath(str(root)) + "/")


def _ramp(steps) -> tuple[list[float], list[float]]:
    """A loss and a warmup-then-decay LR with values that float32 cannot hold exactly."""
    loss = [3.0 / (1 + 0.1 * s) + 1e-9 for s in steps]
    lr = [1e-3 * min(s / 10, 1.0) * (1 - s / 40) / 3 for s in steps]
    return loss, lr


def test_an_hf_output_dir_is_one_run_with_its_logging_dirs_only(tmp_path) -> None:
    steps = list(range(1, 31))
    loss, lr = _ramp(steps)
    _trainer_state(tmp_path / "out" / "trainer_state.json", steps, loss, lr)
    _trainer_state(tmp_path / "out" / "checkpoint-20" / "trainer_state.json", steps[:20], loss[:20], lr[:20])
    _hf_events(tmp_path / "out" / "runs" / "May01_10-00-00_host" / "events.out.tfevents.1.h", steps, loss, lr)
    _ev(tmp_path / "out" / "tb_other" / "events.out.tfevents.1.h")  # not the callback's logging dir
    _ev(tmp_path / "sibling" / "runs" / "x" / "events.out.tfevents.1.h")  # another directory's run
    found = discover([str(tmp_path)])
    assert [(_rel(tmp_path, r.name), [_rel(tmp_path, s) for _, s, _ in r.files]) for r in found.runs] == [
        ("out", ["out/trainer_state.json", "out/runs/May01_10-00-00_host/events.out.tfevents.1.h"]),
        ("out/tb_other", ["out/tb_other/events.out.tfevents.1.h"]),
        ("sibling/runs/x", ["sibling/runs/x/events.out.tfevents.1.h"]),
    ]
    (run,) = read_runs(found.runs[0])
    assert run.name == found.runs[0].name and len(run.sources) == 2
    assert {s.format for s in run.sources} == {Format.TFEVENTS, Format.HF_TRAINER_STATE}
    # The trainer_state's series take the callback's names and merge with the event files' by step.
    assert sorted(s.tag for s in run.series) == ["train/epoch", "train/learning_rate", "train/loss"]
    assert all(s.points == 30 and s.superseded == 0 for s in run.series)
    assert not [f for f in run.findings if f.code in ("WC006", "WC007")]  # float32 copies are not conflicts
    assert run.metadata["trainer_state"]["max_steps"] == 30
    assert run.get("train/loss").values.tolist() == loss  # the float64 copy is analysed


def test_an_output_dir_with_only_checkpoints_joins_its_latest_checkpoint(tmp_path) -> None:
    steps = list(range(1, 21))
    loss, lr = _ramp(steps)
    for n in (10, 20):
        _trainer_state(tmp_path / "out" / f"checkpoint-{n}" / "trainer_state.json", steps[:n], loss[:n], lr[:n])
    _hf_events(tmp_path / "out" / "runs" / "d" / "events.out.tfevents.1.h", steps, loss, lr)
    (spec,) = discover([str(tmp_path)]).runs
    assert _rel(tmp_path, spec.name) == "out"
    assert [_rel(tmp_path, s) for _, s, _ in spec.files] == ["out/checkpoint-20/trainer_state.json",
                                                          "out/runs/d/events.out.tfevents.1.h"]


def test_another_training_in_the_same_output_dir_is_split_off_with_a_note(tmp_path) -> None:
    steps = list(range(1, 31))
    loss, lr = _ramp(steps)
    _trainer_state(tmp_path / "out" / "trainer_state.json", steps, loss, lr)
    _hf_events(tmp_path / "out" / "runs" / "b_second" / "events.out.tfevents.2.h", steps, loss, lr)
    other = [v * 1.5 for v in loss]  # an earlier training with other settings, same output_dir
    _hf_events(tmp_path / "out" / "runs" / "a_first" / "events.out.tfevents.1.h", steps, other, lr)
    (spec,) = discover([str(tmp_path)]).runs
    joined, apart = read_runs(spec)
    assert _rel(tmp_path, joined.name) == "out" and len(joined.sources) == 2
    assert _rel(tmp_path, apart.name) == "out/runs/a_first" and len(apart.sources) == 1
    (note,) = [f for f in apart.findings if f.code == "WC023"]
    assert "at step 1" in note.message and note.details["joined_with"] == joined.name
    assert not [f for f in joined.findings if f.code in ("WC006", "WC023")]
    assert joined.get("train/loss").values.tolist() == loss


def test_a_resumed_training_stays_one_run_and_reports_its_overlap(tmp_path) -> None:
    steps = list(range(1, 31))
    loss, lr = _ramp(steps)
    resumed = loss[:10] + [v * 1.01 for v in loss[10:]]  # resumed from checkpoint-10: later steps differ a bit
    _trainer_state(tmp_path / "out" / "trainer_state.json", steps, resumed, lr)
    _hf_events(tmp_path / "out" / "runs" / "a" / "events.out.tfevents.1.h", steps[:20], loss[:20], lr[:20])
    _hf_events(tmp_path / "out" / "runs" / "b" / "events.out.tfevents.2.h", steps[10:], resumed[10:], lr[10:])
    (spec,) = discover([str(tmp_path)]).runs
    (run,) = read_runs(spec)
    assert len(run.sources) == 3
    overlaps = [f for f in run.findings if f.code == "WC006"]
    assert overlaps and all((f.step, f.step_end) == (11, 20) for f in overlaps)
    assert run.get("train/loss").values.tolist() == resumed


def test_an_evaluation_log_joins_the_training_log_beside_it(tmp_path) -> None:
    d = tmp_path / "nano"
    d.mkdir()
    (d / "log.csv").write_text("iter,loss,lr\n" + "".join(f"{i},{3 - i / 100},{1e-3}\n" for i in range(0, 101, 5)))
    (d / "eval.csv").write_text("iter,train/loss,val/loss,lr\n" + "".join(
        f"{i},{3 - i / 100},{3.1 - i / 100},{1e-3}\n" for i in range(0, 101, 20)))
    solo = tmp_path / "solo"
    solo.mkdir()
    (solo / "test_run.csv").write_text("step,loss\n0,2\n1,1\n")  # eval-like name, but no training log beside it
    found = discover([str(tmp_path)], is_training_csv=is_training_csv)
    assert [(_rel(tmp_path, r.name), len(r.files)) for r in found.runs] == [("nano/log.csv", 2),
                                                                            ("solo/test_run.csv", 1)]
    (run,) = read_runs(found.runs[0])
    roles = {s.tag: s.role for s in run.series}
    assert roles["eval/val/loss"] is Role.EVAL_LOSS and roles["eval/train/loss"] is Role.EVAL_LOSS
    assert roles["loss"] is Role.LOSS and roles["lr"] is Role.LR and roles["eval/lr"] is None
    assert run.primary(Role.LOSS).tag == "loss" and run.primary(Role.EVAL_LOSS).tag == "eval/val/loss"
    (solo_run,) = read_runs(found.runs[1])
    assert solo_run.primary(Role.LOSS).tag == "loss"


def test_an_evaluation_log_whose_steps_do_not_fit_is_read_on_its_own(tmp_path) -> None:
    (tmp_path / "log.csv").write_text("step,loss\n" + "".join(f"{i},{3 - i / 1e4}\n" for i in range(0, 4001, 10)))
    (tmp_path / "val.csv").write_text("step,val_loss\n" + "".join(f"{e},{2.5 - e / 100}\n" for e in range(11)))
    (spec,) = discover([str(tmp_path)], is_training_csv=is_training_csv).runs
    run, apart = read_runs(spec)
    assert len(run.sources) == 1 and apart.name.endswith("val.csv")
    (note,) = [f for f in apart.findings if f.code == "WC023"]
    assert "0..10" in note.message and "0..4000" in note.message


def test_two_training_logs_leave_an_evaluation_log_alone(tmp_path) -> None:
    for name in ("a.csv", "b.csv", "eval.csv"):
        (tmp_path / name).write_text("step,loss\n0,2\n1,1\n")
    assert [r.name.rsplit("/", 1)[-1] for r in discover([str(tmp_path)], is_training_csv=is_training_csv).runs] == [
        "a.csv", "b.csv", "eval.csv"]


def test_the_watcher_keeps_following_a_run_joined_into_its_output_dir(tmp_path) -> None:
    # Live, the event files come first; the trainer_state.json appears with the first checkpoint, and
    # later checkpoints supersede (and rotate away) earlier ones. The run continues under the output
    # dir's name: nothing is reported twice and no checkpoint copy is a "disappeared" file (WC001).
    import shutil

    from warmcheck.live.watch import Watcher

    steps = list(range(1, 31))
    loss, lr = _ramp(steps)
    loss[24:] = [float("nan")] * 6
    _hf_events(tmp_path / "out" / "runs" / "a" / "events.out.tfevents.1.h", steps, loss, lr)
    watcher = Watcher([str(tmp_path)], settle=0.0)
    first = watcher.poll()
    assert [_rel(tmp_path, n) for n in watcher.runs] == ["out/runs/a"]
    assert [f.code for f in first if f.code == "WC401"] == ["WC401"]
    _trainer_state(tmp_path / "out" / "checkpoint-10" / "trainer_state.json", steps[:10], loss[:10], lr[:10])
    second = watcher.poll()
    _trainer_state(tmp_path / "out" / "checkpoint-20" / "trainer_state.json", steps[:20], loss[:20], lr[:20])
    shutil.rmtree(tmp_path / "out" / "checkpoint-10")
    third = watcher.poll()
    later = second + third + watcher.finish()
    assert [_rel(tmp_path, n) for n in watcher.runs] == ["out"]
    assert not [f for f in later if f.code in ("WC401", "WC001", "WC006")], [f.message for f in later]
    (run,) = watcher.outcome_runs()
    assert {s.format for s in run.sources} == {Format.TFEVENTS, Format.HF_TRAINER_STATE}
