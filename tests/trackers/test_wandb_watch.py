"""A W&B run followed while the real wandb library writes it, then killed with SIGKILL mid-run.

``watch`` reads only the records appended at each poll, never reports the record being written, and
ends with what ``analyze`` reads from the final file; the killed run is read up to its last complete
record, every point equal to what the training logged.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from warmcheck.config import Settings
from warmcheck.live.watch import Watcher
from warmcheck.pipeline import analyze
from warmcheck.readers.wandb import read_wandb

TAGS = ("train/lr", "train/loss", "train/grad_norm")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _points(run: Any) -> dict[str, tuple[list[int], list[float]]]:
    return {s.tag: (s.steps.tolist(), s.values.tolist()) for s in run.series}


def test_watch_follows_a_live_wandb_run_then_matches_the_killed_file(wandb_live: Any) -> None:
    wandb_live.wandb_file()
    wandb_live.wait_rows(60)
    clock = _Clock()
    watcher = Watcher([str(wandb_live.wandb_dir)], Settings(), settle=30.0, clock=clock)
    seen: list[Any] = []
    counts: list[int] = []
    deadline = time.monotonic() + 120
    while len(set(counts)) < 4 and time.monotonic() < deadline:  # four different sizes: it grew 3 times
        seen += watcher.poll()
        clock.now += 0.5
        (run,) = watcher.outcome_runs()
        counts.append(min((s.points for s in run.series), default=0))
        time.sleep(0.5)
    assert len(set(counts)) >= 4 and counts == sorted(counts)
    assert not [f for f in seen if f.code in ("WC002", "WC003", "WC004")]  # a record being written waits
    assert [r.name for r in watcher.outcome_runs()] == [str(wandb_live.wandb_file().parent)]

    wandb_live.kill()
    seen += watcher.poll()
    clock.now += 60  # the writer has been idle for longer than settle
    seen += watcher.poll()
    seen += watcher.finish()
    (followed,) = watcher.outcome_runs()
    (whole,) = analyze([str(wandb_live.wandb_dir)], Settings()).runs
    assert _points(followed) == _points(whole)
    tails = sorted((f.code, f.details["offset"]) for f in whole.findings if f.code in ("WC003", "WC004"))
    assert sorted((f.code, f.details["offset"]) for f in seen if f.code in ("WC003", "WC004")) == tails


def test_a_killed_run_is_read_up_to_its_last_complete_record(wandb_live: Any) -> None:
    if not wandb_live.killed:  # run alone: let it log, then kill it
        wandb_live.wait_rows(60)
        wandb_live.kill()
    path = wandb_live.wandb_file()
    read = read_wandb(str(path))
    logged = wandb_live.logged()
    by_tag = {f.tag: f for f in read.fragments}
    assert sorted(by_tag) == sorted(TAGS)
    n = len(by_tag["train/loss"])
    assert 60 <= n <= len(logged["train/loss"])
    for tag in TAGS:
        assert by_tag[tag].steps.tolist() == list(range(n))
        assert np.array_equal(by_tag[tag].values, np.array(logged[tag][:n]))
    assert "exit_code" not in read.metadata["wandb"]  # killed: W&B never wrote its exit record
    assert read.metadata["tracker_params"]["W&B config"]["warmup_steps"] == 50
    assert {f.code for f in read.findings} <= {"WC003"}
    size = path.stat().st_size
    for f in read.findings:  # a record cut by the kill: reported where it starts, up to the end
        assert f.details["offset"] + f.details["bytes_skipped"] == size
