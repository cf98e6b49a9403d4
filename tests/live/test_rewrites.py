"""watch after a log is truncated and written again, replaced (a new inode) or rotated (renamed, then a
new file at its name): its final points are those ``analyze`` reads from the final files (rotation:
from both files) and it reports no finding that ``analyze`` does not (issue 10 item 9).

Each test writes a first attempt while the watcher polls, then the pattern, then the rest of the new
file in pieces with a poll after each, driving the watcher's clock by hand (no sleeps).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from factories import record_bytes, scalar_event, version_event

from warmcheck.config import Settings
from warmcheck.findings import Finding
from warmcheck.live.watch import Watcher
from warmcheck.model import Format, Run
from warmcheck.pipeline import analyze, analyze_spec
from warmcheck.readers import RunSpec

EVENTS = "events.out.tfevents.1700000000.host.1.0"


def lr_at(step: int) -> float:
    return 1e-3 * min(1.0, (step + 1) / 20)


def loss_a(step: int) -> float:  # the first attempt
    return 4.0 * math.exp(-step / 80) + 1.5 + 0.02 * math.sin(step * 1.7)


def loss_b(step: int) -> float:  # the attempt that replaces it: another trajectory, higher from step 300 on
    return 5.0 * math.exp(-step / 150) + 2.5 + 0.02 * math.cos(step * 1.3)


# -- the formats: bytes of the steps in [lo, hi) ---------------------------------------------------


def events(lo: int, hi: int, loss: Callable[[int], float], wall: float = 1.7e9) -> bytes:
    head = record_bytes([version_event()]) if lo == 0 else b""
    return head + b"".join(record_bytes([scalar_event("train/lr", s, lr_at(s), wall + s),
                                         scalar_event("train/loss", s, loss(s), wall + s)]) for s in range(lo, hi))


def csv(lo: int, hi: int, loss: Callable[[int], float]) -> bytes:
    head = b"step,lr,loss\n" if lo == 0 else b""
    return head + "".join(f"{s},{lr_at(s)!r},{loss(s)!r}\n" for s in range(lo, hi)).encode()


def jsonl(lo: int, hi: int, loss: Callable[[int], float]) -> bytes:
    return "".join(json.dumps({"step": s, "lr": lr_at(s), "loss": loss(s)}) + "\n" for s in range(lo, hi)).encode()


WRITERS = {EVENTS: events, "log.csv": csv, "log.jsonl": jsonl}


def trainer_state(hi: int, loss: Callable[[int], float]) -> bytes:
    history = [{"step": s, "learning_rate": lr_at(s), "loss": loss(s), "epoch": s / 1000} for s in range(5, hi, 5)]
    return json.dumps({"global_step": hi - 5, "max_steps": 2000, "log_history": history}, indent=1).encode()


# -- driving the watcher ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Live:
    """A watcher over ``root`` with a hand-driven clock, collecting what it reports."""

    def __init__(self, root: Path) -> None:
        self.clock = Clock()
        self.watcher = Watcher([str(root)], Settings(), settle=5, clock=self.clock)
        self.reported: list[Finding] = []

    def poll(self) -> None:
        self.clock.now += 1
        self.reported += self.watcher.poll()

    def finish(self) -> list[Run]:
        self.poll()
        self.reported += self.watcher.finish()
        return self.watcher.outcome_runs()


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def write_in_pieces(live: Live, path: Path, write: Callable[[int, int], bytes], lo: int, hi: int, n: int) -> None:
    """Append steps lo..hi-1 in ``n`` pieces, polling after each."""
    edges = np.linspace(lo, hi, n + 1).astype(int)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        append(path, write(int(a), int(b)))
        live.poll()


def points(runs: list[Run] | tuple[Run, ...]) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    return {r.name: {s.tag: (s.steps.tolist(), s.values.tolist()) for s in r.series} for r in runs}


def judged(findings: list[Finding] | tuple[Finding, ...]) -> set[tuple[str, str | None, int | None]]:
    """Data, spike and divergence findings: what a rewrite could make up (WC006, WC301/WC304, WC4xx)."""
    return {(f.code, f.tag, f.step) for f in findings if f.code[:3] in ("WC0", "WC3", "WC4")}


def assert_as_analyze(live: Live, runs: list[Run], expected: list[Run] | tuple[Run, ...]) -> None:
    assert points(runs) == points(expected)
    assert judged(live.reported) == judged([f for r in expected for f in r.findings])


def _first_attempt(tmp_path: Path, name: str, pieces: int) -> tuple[Callable[..., bytes], Path, Path, Live]:
    """A watched run ``r`` whose file ``name`` was written with steps 0-299 in ``pieces`` polls."""
    write = WRITERS[name]
    root = tmp_path / "runs"
    (root / "r").mkdir(parents=True)
    path = root / "r" / name
    live = Live(root)
    path.write_bytes(b"")
    write_in_pieces(live, path, lambda a, b: write(a, b, loss_a), 0, 300, pieces)
    return write, root, path, live


# -- truncate-and-rewrite, replace: the final file is what counts ----------------------------------


@pytest.mark.parametrize("name", list(WRITERS))
@pytest.mark.parametrize("pattern", ["truncate-seen-short", "truncate-grown-past", "new-inode"])
def test_rewritten_file_gives_the_final_files_points(tmp_path: Path, name: str, pattern: str) -> None:
    write, root, path, live = _first_attempt(tmp_path, name, 6)  # the first attempt: steps 0-299
    if pattern == "truncate-seen-short":  # truncated and written again: a poll sees it shorter
        path.write_bytes(write(0, 40, loss_b))
        live.poll()
    elif pattern == "truncate-grown-past":  # ... and longer than the first attempt by the next poll (same inode)
        inode = path.stat().st_ino
        with open(path, "r+b") as fh:
            fh.truncate(0)
            fh.write(write(0, 340, loss_b))
        assert path.stat().st_ino == inode
        live.poll()
    else:  # written elsewhere and renamed over it: a new inode at the same path, the old one gone
        tmp = tmp_path / "tmp"
        tmp.write_bytes(write(0, 40, loss_b))
        os.replace(tmp, path)
        live.poll()
    done = 340 if pattern == "truncate-grown-past" else 40
    write_in_pieces(live, path, lambda a, b: write(a, b, loss_b), done, 450, 5)
    runs = live.finish()
    expected = analyze([str(root)], Settings()).runs
    [run] = points(runs).values()
    assert run["train/loss" if name == EVENTS else "loss"][0] == list(range(450))
    assert_as_analyze(live, runs, expected)


@pytest.mark.parametrize("shorter", [True, False])
def test_rewritten_trainer_state_gives_the_final_files_points(tmp_path: Path, shorter: bool) -> None:
    root = tmp_path / "out"
    root.mkdir()
    path = root / "trainer_state.json"
    live = Live(root)
    for hi in range(50, 301, 50):  # saved whole at each checkpoint: the history grows
        path.write_bytes(trainer_state(hi, loss_a))
        live.poll()
    # a new attempt from scratch: shorter than the first, or already past it, with other values
    for hi in ([100, 200, 350, 450] if shorter else [350, 450]):
        path.write_bytes(trainer_state(hi, loss_b))
        live.poll()
    runs = live.finish()
    expected = analyze([str(root)], Settings()).runs
    [run] = points(runs).values()
    assert run["loss"][1] == [loss_b(s) for s in range(5, 450, 5)]
    assert_as_analyze(live, runs, expected)


def test_an_extended_trainer_state_returns_only_its_new_entries(tmp_path: Path) -> None:
    """HF rewrites the file at each save with the same history and more: not a new attempt."""
    from warmcheck.readers.tailing import tailer_for

    path = tmp_path / "trainer_state.json"
    tailer = tailer_for(str(path), "trainer_state.json", Format.HF_TRAINER_STATE)
    path.write_bytes(trainer_state(100, loss_a))
    first = tailer.poll()
    path.write_bytes(trainer_state(200, loss_a))
    second = tailer.poll()
    assert first is not None and second is not None and tailer.generation == 0
    assert {f.tag: f.steps.tolist() for f in second.fragments}["loss"] == list(range(100, 200, 5))
    path.write_bytes(trainer_state(250, lambda s: loss_a(s) + (s == 50)))  # one old value changed
    third = tailer.poll()
    assert third is not None and tailer.generation == 1
    assert {f.tag: f.steps.tolist() for f in third.fragments}["loss"] == list(range(5, 250, 5))


# -- rotation: renamed in its directory, a new file at its name ------------------------------------


@pytest.mark.parametrize("name", ["log.jsonl", "log.csv"])
@pytest.mark.parametrize("poll_between", [False, True])
def test_rotated_text_log_keeps_the_rows_written_before_the_rename(tmp_path: Path, name: str,
                                                                    poll_between: bool) -> None:
    write = WRITERS[name]
    root = tmp_path / "runs"
    root.mkdir()
    path, rotated = root / name, root / (name + ".1")  # RotatingFileHandler's names (not a log name itself)
    live = Live(root)
    path.write_bytes(b"")
    write_in_pieces(live, path, lambda a, b: write(a, b, loss_a), 0, 150, 3)
    append(path, write(150, 200, loss_a))  # written after the last poll, before the rename
    os.rename(path, rotated)
    if poll_between:  # a poll between the rename and the new file
        live.poll()
    path.write_bytes(csv(0, 0, loss_a) if name == "log.csv" else b"")  # the new file (its header)
    write_in_pieces(live, path, lambda a, b: write(a, b, loss_a), 200, 400, 4)
    runs = live.finish()
    fmt = Format.CSV if name == "log.csv" else Format.JSONL
    shown = f"{root}/{name}"
    both = analyze_spec(RunSpec(shown, shown, ((str(rotated), str(rotated), fmt), (str(path), shown, fmt))),
                        Settings())
    assert points(runs)[shown]["loss"][0] == list(range(400))
    assert points(runs) == points([both])
    assert judged(live.reported) == judged(both.findings)
    assert not [f for f in live.reported if f.code == "WC001"]  # not a vanished file


def test_rotated_event_file_is_read_once_under_either_name(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    (root / "r").mkdir(parents=True)
    path, rotated = root / "r" / EVENTS, root / "r" / (EVENTS + ".old")  # still an event file name
    live = Live(root)
    path.write_bytes(b"")
    write_in_pieces(live, path, lambda a, b: events(a, b, loss_a), 0, 150, 3)
    append(path, events(150, 200, loss_a))
    os.rename(path, rotated)
    path.write_bytes(b"")
    write_in_pieces(live, path, lambda a, b: events(a, b, loss_a, wall=1.7e9 + 1000), 200, 400, 4)
    runs = live.finish()
    expected = analyze([str(root)], Settings()).runs  # both files, one run
    assert [s.records for s in expected[0].sources] and len(runs) == 1
    assert sum(s.records for s in runs[0].sources) == sum(s.records for s in expected[0].sources)
    assert_as_analyze(live, runs, expected)


@pytest.mark.parametrize("name", ["log.jsonl", EVENTS])
def test_deleted_then_written_again_replaces_the_old_points(tmp_path: Path, name: str) -> None:
    """A poll sees the file gone (one WC001), then a new attempt at the same path: its points only."""
    write, root, path, live = _first_attempt(tmp_path, name, 3)
    if name == EVENTS:  # the run's only file gone: keep the directory a run with another (empty) event file
        (root / "r" / (EVENTS + ".keep")).write_bytes(b"")
    path.unlink()
    live.poll()
    assert [f.code for f in live.reported if f.code == "WC001"] == ["WC001"]
    path.write_bytes(b"")
    write_in_pieces(live, path, lambda a, b: write(a, b, loss_b), 0, 450, 5)
    runs = live.finish()
    expected = analyze([str(root)], Settings()).runs
    assert points(runs) == points(expected)
    assert judged(live.reported) - judged([f for r in expected for f in r.findings]) == {
        ("WC001", None, None)}  # the vanished file, said at the time; nothing else
