"""warmcheck watch: follows growing logs, reads only new bytes, reports each finding once, waits for a
partly written record until the writer is gone, picks up new runs; the CLI's exit codes and --exec."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from factories import record_bytes, scalar_event, version_event

from warmcheck.config import Settings
from warmcheck.live.watch import Watcher, watch_loop
from warmcheck.readers.tailing import EventTailer

EVENTS = "events.out.tfevents.1700000000.host.1.0"


def step_bytes(step: int, loss: float, lr: float | None = None) -> bytes:
    lr = 1e-3 * min(1.0, (step + 1) / 20) if lr is None else lr
    return record_bytes([scalar_event("train/lr", step, lr, 1.7e9 + step),
                         scalar_event("train/loss", step, loss, 1.7e9 + step)])


def healthy_loss(step: int) -> float:
    return 4.0 * math.exp(-step / 80) + 1.5 + 0.02 * math.sin(step * 1.7)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_growing_event_file(tmp_path):
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    path = run / EVENTS
    append(path, record_bytes([version_event()]))
    clock = Clock()
    watcher = Watcher([str(tmp_path / "runs")], Settings(), settle=10, clock=clock)
    reported = []
    for step in range(120):
        data = step_bytes(step, healthy_loss(step) if step < 100 else math.nan)
        append(path, data[:len(data) // 2])  # the writer is mid-record at this poll ...
        clock.now += 1
        found = watcher.poll()
        assert all(f.code != "WC003" for f in found)  # ... which is not damage while the file grows
        append(path, data[len(data) // 2:])
        reported.extend((step, f) for f in found)
    clock.now += 1
    reported.extend((120, f) for f in watcher.poll())
    codes = [(f.code, f.step) for _, f in reported]
    assert codes.count(("WC401", 100)) == 1  # once, though every later poll sees more NaN
    nan_polled = next(at for at, f in reported if f.code == "WC401")
    assert nan_polled == 101  # NaN completed after poll 100, reported by the next poll
    assert not [c for c in codes if c[0] in ("WC003", "WC004", "WC002")]


def test_partial_record_reported_once_the_writer_is_gone(tmp_path):
    path = tmp_path / "run" / EVENTS
    path.parent.mkdir()
    data = record_bytes([version_event()]) + b"".join(step_bytes(s, healthy_loss(s)) for s in range(60))
    tail = step_bytes(60, 1.0)[:13]
    append(path, data + tail)  # the writer died 13 bytes into a record
    clock = Clock()
    watcher = Watcher([str(tmp_path / "run")], Settings(), settle=30, clock=clock)
    assert all(f.code != "WC003" for f in watcher.poll())
    clock.now = 29.0
    assert all(f.code != "WC003" for f in watcher.poll())  # not yet: the writer may just be slow
    clock.now = 30.5
    found = [f for f in watcher.poll() if f.code == "WC003"]
    assert len(found) == 1 and found[0].details["offset"] == len(data) and found[0].details["bytes_skipped"] == 13
    clock.now = 100.0
    assert watcher.poll() == []  # once


def test_slow_writer_completing_the_record_is_not_damage(tmp_path):
    path = tmp_path / "run" / EVENTS
    path.parent.mkdir()
    rec = step_bytes(0, 3.0)
    append(path, record_bytes([version_event()]) + rec[:5])
    clock = Clock()
    watcher = Watcher([str(tmp_path / "run")], Settings(), settle=30, clock=clock)
    watcher.poll()
    clock.now = 20
    append(path, rec[5:])  # the writer was alive after all
    clock.now = 40
    found = watcher.poll()
    clock.now = 200
    found += watcher.poll()
    assert not [f for f in found if f.code.startswith("WC00")]
    assert watcher.runs[str(tmp_path / "run")].live.points == 2


def test_new_runs_and_new_files_are_picked_up(tmp_path):
    root = tmp_path / "runs"
    (root / "a").mkdir(parents=True)
    append(root / "a" / EVENTS, record_bytes([version_event()]) + b"".join(
        step_bytes(s, healthy_loss(s)) for s in range(30)))
    watcher = Watcher([str(root)], Settings(), clock=Clock())
    watcher.poll()
    assert list(watcher.runs) == [str(root / "a")]
    (root / "b").mkdir()
    append(root / "b" / EVENTS, record_bytes([version_event()]) + b"".join(
        step_bytes(s, healthy_loss(s) if s < 10 else math.inf) for s in range(12)))
    found = watcher.poll()
    assert sorted(watcher.runs) == [str(root / "a"), str(root / "b")]
    assert [(f.run, f.code, f.step) for f in found] == [(str(root / "b"), "WC401", 10)]
    # a resume into a second event file of run a
    append(root / "a" / "events.out.tfevents.1700009999.host.2.0", record_bytes([version_event()]) + b"".join(
        step_bytes(s, math.nan) for s in range(30, 33)))
    found = watcher.poll()
    assert [(f.run, f.code, f.step) for f in found] == [(str(root / "a"), "WC401", 30)]


def test_each_poll_reads_only_new_bytes(tmp_path, monkeypatch):
    path = tmp_path / "run" / EVENTS
    path.parent.mkdir()
    append(path, record_bytes([version_event()]) + b"".join(step_bytes(s, healthy_loss(s)) for s in range(2000)))
    tailer = EventTailer(str(path), str(path))
    assert tailer.poll() is not None
    read_sizes: list[int] = []
    real_open = open

    class Spy:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def seek(self, *a):
            return self.f.seek(*a)

        def read(self, n=-1):
            data = self.f.read(n)
            read_sizes.append(len(data))
            return data

    import warmcheck.readers.tfrecord as tfrecord

    # every byte the event reader reads goes through storage.open_binary (local files: builtin open)
    monkeypatch.setattr(tfrecord.storage, "open_binary", lambda p: Spy(real_open(p, "rb")))
    new = b"".join(step_bytes(s, healthy_loss(s)) for s in range(2000, 2010))
    append(path, new)
    read = tailer.poll()
    assert read is not None and sum(len(f) for f in read.fragments) == 20
    assert sum(read_sizes) == len(new)  # the 2010-step file was not read again
    assert tailer.poll() is None  # nothing new: not even a read


def test_memory_stays_bounded_for_a_long_run(tmp_path):
    from warmcheck.live.buffer import Limits

    path = tmp_path / "run" / EVENTS
    path.parent.mkdir()
    n = 30_000
    loss = 4.0 * np.exp(-np.arange(n) / 3000) + 1.5
    append(path, record_bytes([version_event()]) + b"".join(step_bytes(s, float(loss[s])) for s in range(n)))
    limits = Limits(head=512, middle=512, tail=2048, window=256, context=64)
    watcher = Watcher([str(tmp_path / "run")], Settings(), limits=limits, clock=Clock())
    watcher.poll()
    live = watcher.runs[str(tmp_path / "run")].live
    assert live.points == 2 * n
    assert live.last is not None and max(s.points for s in live.last.series) <= 512 + 512 + 2 * 2048


def csv_line(step: int, loss: float) -> bytes:
    return f"{step},{1e-3 * min(1.0, (step + 1) / 20):.6g},{loss:.6g}\n".encode()


def test_growing_csv(tmp_path):
    path = tmp_path / "runs" / "log.csv"
    path.parent.mkdir()
    append(path, b"step,lr,loss\n")
    clock = Clock()
    watcher = Watcher([str(tmp_path / "runs")], Settings(), settle=10, clock=clock)
    reported = []
    for step in range(90):
        line = csv_line(step, healthy_loss(step) if step < 70 else math.nan)
        append(path, line[:5])  # mid-line at this poll
        clock.now += 1
        found = watcher.poll()
        assert all(f.code not in ("WC003", "WC002", "WC014") for f in found), found
        append(path, line[5:])
        reported.extend((step, f) for f in found)
    append(path, b"90,0.001,")  # the writer dies mid-line
    clock.now += 1
    reported.extend((90, f) for f in watcher.poll())
    clock.now += 11
    reported.extend((91, f) for f in watcher.poll())
    codes = [(at, f.code, f.step, f.line) for at, f in reported]
    assert [(at, step) for at, c, step, _ in codes if c == "WC401"] == [(71, 70)]  # the next poll, once
    assert [(at, line) for at, c, _, line in codes if c == "WC003"] == [(91, 92)]  # line 92, once idle


def test_watch_loop_reports_nan_within_two_polls_while_a_thread_writes(tmp_path, capsys):
    """A writer thread appends one step per polling interval to an event file and a CSV; the watch
    loop runs for real."""
    path = tmp_path / "runs" / "live" / EVENTS
    path.parent.mkdir(parents=True)
    append(path, record_bytes([version_event()]))
    csv = tmp_path / "runs" / "csvrun" / "train_log.csv"
    csv.parent.mkdir()
    append(csv, b"step,lr,loss\n")
    polls = {"n": 0}
    written_at: dict[int, int] = {}
    go, done = threading.Event(), threading.Event()

    def writer() -> None:
        for step in range(80):
            go.wait()
            go.clear()
            append(path, step_bytes(step, healthy_loss(step) if step < 60 else math.nan))
            append(csv, csv_line(step, healthy_loss(step) if step < 60 else math.inf))
            written_at[step] = polls["n"]
            done.set()

    seen: list[tuple[int, dict]] = []  # (poll that printed it, JSON line)

    def sleep(_: float) -> None:  # between polls: let the writer add one step
        seen.extend((polls["n"], json.loads(line)) for line in capsys.readouterr().out.splitlines())
        polls["n"] += 1
        if len(written_at) == 80:
            raise KeyboardInterrupt  # Ctrl-C: the loop ends with its summary
        done.clear()
        go.set()
        assert done.wait(10)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    code = watch_loop([str(tmp_path / "runs")], Settings(), interval=0.01, settle=5, fmt="json", sleep=sleep)
    seen.extend((polls["n"], json.loads(line)) for line in capsys.readouterr().out.splitlines())
    out = [o for _, o in seen]
    findings = [o for o in out if o["event"] == "finding"]
    nan = sorted((o["run"], o["step"], k) for k, o in seen if o.get("code") == "WC401")
    assert [(run, step) for run, step, _ in nan] == [(str(csv), 60), (str(path.parent), 60)]
    # written between poll k and poll k+1, printed by poll k+1: within one polling interval (two allowed)
    assert all(k - written_at[60] <= 1 for _, _, k in nan)
    assert out[-1]["event"] == "summary" and out[-1]["stopped"] == "interrupted" and out[-1]["error"] >= 1
    assert code == 1
    assert len(findings) == len({(o["code"], o["tag"], o["step"]) for o in findings})  # each once


def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "warmcheck.cli", "watch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_cli_exit_on_error_and_exec_environment(tmp_path, fmt):
    path = tmp_path / "runs" / "job" / EVENTS
    path.parent.mkdir(parents=True)
    append(path, record_bytes([version_event()]))
    env_file = tmp_path / "exec.txt"
    cmd = f'echo "$WARMCHECK_CODE|$WARMCHECK_SEVERITY|$WARMCHECK_RUN|$WARMCHECK_STEP|$WARMCHECK_TAG" >> {env_file}'
    proc = cli(str(tmp_path / "runs"), "--interval", "0.05", "--exit-on", "error", "--exec", cmd, "--exec-on",
               "error", "--format", fmt)
    try:
        for step in range(200):
            append(path, step_bytes(step, healthy_loss(step) if step < 50 else math.nan))
            if proc.poll() is not None:
                break
            time.sleep(0.005)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "stopped by --exit-on; exit 1" in err and "Traceback" not in err
    lines = env_file.read_text().splitlines()
    assert lines[0] == f"WC401|error|{tmp_path / 'runs' / 'job'}|50|train/loss"
    if fmt == "json":
        assert json.loads(out.splitlines()[0])["code"] == "WC401"
        assert json.loads(out.splitlines()[-1])["exit_code"] == 1
    else:
        assert out.splitlines()[0].startswith(f"{tmp_path / 'runs' / 'job'}: WC401 error")


def test_cli_stop_when_idle_reports_the_end_and_the_partial_record(tmp_path):
    path = tmp_path / "runs" / "done" / EVENTS
    path.parent.mkdir(parents=True)
    # a warmup of 2000 steps in a run that stops at 300, cut off mid-record
    data = record_bytes([version_event()]) + b"".join(
        step_bytes(s, healthy_loss(s), lr=1e-3 * (s + 1) / 2000) for s in range(300))
    append(path, data + step_bytes(300, 1.0)[:7])
    proc = cli(str(tmp_path / "runs"), "--interval", "0.05", "--settle", "0.3", "--stop-when-idle")
    out, err = proc.communicate(timeout=60)
    codes = [line.split(": ", 1)[1].split()[0] for line in out.splitlines()]
    assert sorted(codes) == ["WC003", "WC102"], out
    assert proc.returncode == 0 and "(idle; exit 0)" in err


def test_cli_missing_path_exits_2(tmp_path):
    proc = cli(str(tmp_path / "nope"), "--stop-when-idle")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "no such file or directory" in err and out == ""


def test_sigterm_ends_cleanly_with_a_summary(tmp_path):
    import signal

    path = tmp_path / "runs" / "r" / EVENTS
    path.parent.mkdir(parents=True)
    append(path, record_bytes([version_event()]) + b"".join(step_bytes(s, healthy_loss(s)) for s in range(50)))
    proc = cli(str(tmp_path / "runs"), "--interval", "0.05")
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("warmcheck: watching")  # the first poll is done, SIGTERM handled
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "(interrupted; exit 0)" in err and "Traceback" not in err


def test_a_file_that_vanishes_is_reported_once(tmp_path):
    root = tmp_path / "runs"
    (root / "a").mkdir(parents=True)
    path = root / "a" / EVENTS
    append(path, record_bytes([version_event()]) + b"".join(step_bytes(s, healthy_loss(s)) for s in range(30)))
    watcher = Watcher([str(root)], Settings(), clock=Clock())
    watcher.poll()
    path.unlink()
    found = watcher.poll() + watcher.poll()
    assert [(f.code, f.source, f.run) for f in found] == [("WC001", str(path), str(root / "a"))]
    assert watcher.runs[str(root / "a")].live.points == 60  # what was read is kept
