"""``warmcheck watch`` on object storage: a real S3 endpoint (moto's server on 127.0.0.1, the real s3fs client).

Each poll lists the prefix once (no HEAD per object); an object re-uploaded larger is read from the end
of what was read before, with the ``WINDOW`` bytes before it fetched in the same ranged read (they must
be unchanged); an object whose early bytes changed is read whole again, as a rewrite, and the final
points and findings are those ``analyze`` gives of the final objects. An endpoint that stops answering
is said on stderr; the watch goes on when it answers again, and gives up (exit 2) after
``MAX_FAILED_POLLS`` failed polls in a row.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import fsspec
import pytest
from click.testing import CliRunner
from factories import record_bytes, scalar_event, version_event
from s3env import SAMPLE_LOGS, free_port

from warmcheck import pipeline, storage
from warmcheck.cli import main
from warmcheck.config import Settings
from warmcheck.findings import Finding
from warmcheck.live import watch as live_watch
from warmcheck.live.buffer import Limits
from warmcheck.live.remote import WINDOW, RemoteTailer
from warmcheck.live.watch import Watcher, watch_loop
from warmcheck.model import Run

EVENTS = "events.out.tfevents.1700000000.host.1.0"


def lr_at(step: int) -> float:
    return 1e-3 * min(1.0, (step + 1) / 20)


def loss_a(step: int) -> float:
    return 4.0 * math.exp(-step / 80) + 1.5 + 0.02 * math.sin(step * 1.7)


def loss_b(step: int) -> float:  # another attempt: another trajectory
    return 5.0 * math.exp(-step / 150) + 2.5 + 0.02 * math.cos(step * 1.3)


def nan_from(at: int, loss: Callable[[int], float] = loss_a) -> Callable[[int], float]:
    return lambda s: math.nan if s >= at else loss(s)


def events(hi: int, loss: Callable[[int], float] = loss_a) -> bytes:
    return record_bytes([version_event()]) + b"".join(
        record_bytes([scalar_event("train/lr", s, lr_at(s), 1.7e9 + s),
                      scalar_event("train/loss", s, loss(s), 1.7e9 + s)]) for s in range(hi))


def csv(hi: int, loss: Callable[[int], float] = loss_a) -> bytes:
    return b"step,lr,loss\n" + "".join(f"{s},{lr_at(s)!r},{loss(s)!r}\n" for s in range(hi)).encode()


def jsonl(hi: int, loss: Callable[[int], float] = loss_a) -> bytes:
    return "".join(json.dumps({"step": s, "lr": lr_at(s), "loss": loss(s)}) + "\n" for s in range(hi)).encode()


WRITERS: dict[str, Callable[..., bytes]] = {EVENTS: events, "log.csv": csv, "log.jsonl": jsonl}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Live:
    """A watcher over ``url`` with a hand-driven clock, collecting what it reports."""

    def __init__(self, url: str, limits: Limits | None = None) -> None:
        self.clock = Clock()
        self.watcher = Watcher([url], Settings(), settle=5, clock=self.clock, limits=limits)
        self.reported: list[Finding] = []

    def poll(self) -> list[Finding]:
        self.clock.now += 1
        found = self.watcher.poll()
        self.reported += found
        return found

    def finish(self) -> list[Run]:
        self.poll()
        self.reported += self.watcher.finish()
        runs = self.watcher.outcome_runs()
        self.watcher.close()
        return runs

    def tailers(self) -> dict[str, RemoteTailer]:
        out = {}
        for state in self.watcher.runs.values():
            for shown, f in state.files.items():
                assert isinstance(f.tailer, RemoteTailer)
                out[shown] = f.tailer
        return out


def points(runs: list[Run] | tuple[Run, ...]) -> dict[str, dict[str, tuple[list[int], bytes]]]:
    """Each run's series: steps, and the exact bits of the values (NaN equal to NaN)."""
    return {r.name: {s.tag: (s.steps.tolist(), s.values.astype("float64").tobytes()) for s in r.series}
            for r in runs}


def judged(findings: list[Finding] | tuple[Finding, ...]) -> set[tuple[str, str | None, int | None]]:
    """Data, spike and divergence findings: what a rewrite could make up (WC006, WC301/WC304, WC4xx)."""
    return {(f.code, f.tag, f.step) for f in findings if f.code[:3] in ("WC0", "WC3", "WC4")}


def assert_as_analyze(live: Live, runs: list[Run], url: str) -> None:
    storage.forget_listings()
    expected = pipeline.analyze([url], Settings(), jobs=1).runs
    assert points(runs) == points(expected)
    assert judged(live.reported) == judged([f for r in expected for f in r.findings])


class Spy:
    """What the s3fs client asks the endpoint: operations by name, and the byte ranges fetched."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import s3fs.core

        self.ops: Counter[str] = Counter()
        self.ranges: list[tuple[str, int, int]] = []  # (key, start, bytes)
        real_call, real_fetch = s3fs.core.S3FileSystem._call_s3, s3fs.core.S3File._fetch_range
        spy = self

        async def call(fs: Any, method: str, *args: Any, **kwargs: Any) -> Any:
            spy.ops[method] += 1
            return await real_call(fs, method, *args, **kwargs)

        def fetch(f: Any, start: int, end: int) -> bytes:
            data = real_fetch(f, start, end)
            spy.ranges.append((f.key.rsplit("/", 1)[-1], start, len(data)))
            return bytes(data)

        monkeypatch.setattr(s3fs.core.S3FileSystem, "_call_s3", call)
        monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", fetch)

    def clear(self) -> None:
        self.ops.clear()
        self.ranges.clear()

    def fetched(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for key, _, n in self.ranges:
            out[key] += n
        return dict(out)


@pytest.fixture
def on_s3(moto_endpoint: str, bucket: str) -> Iterator[str]:
    """``s3://bucket/runs``, with warmcheck's filesystems pointed at the moto server."""
    storage.set_storage_options({"endpoint_url": moto_endpoint})
    yield f"s3://{bucket}/runs"


# -- appended: only the new bytes ----------------------------------------------------------------------


def test_objects_uploaded_larger_are_read_from_where_they_ended(on_s3: str, s3: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = on_s3[5:].split("/", 1)[0]
    keys = {name: f"{bucket}/runs/{name.split('.')[-1] if name != EVENTS else 'tb'}/{name}" for name in WRITERS}
    sizes = {name: 0 for name in WRITERS}

    def upload(hi: int, loss: Callable[[int], float] = loss_a) -> None:
        for name, write in WRITERS.items():
            data = write(hi, loss)
            s3.pipe(keys[name], data)
            sizes[name] = len(data)

    upload(400)
    spy = Spy(monkeypatch)
    live = Live(on_s3)
    assert live.poll() == []
    assert len(live.watcher.runs) == 3
    assert spy.ops["head_object"] == 0 and spy.ops["list_objects_v2"] == 1  # the listing gave size and ETag
    # each object read once, whole (a CSV also sniffed once by discovery: is it a training log?)
    assert spy.fetched() == {**sizes, "log.csv": 2 * sizes["log.csv"]}

    spy.clear()
    assert live.poll() == []  # nothing changed: the listing only
    assert dict(spy.ops) == {"list_objects_v2": 1} and not spy.ranges

    s3.pipe(keys["log.csv"], csv(400))  # uploaded again unchanged: the same ETag, nothing read
    spy.clear()
    live.poll()
    assert dict(spy.ops) == {"list_objects_v2": 1}

    for hi in (480, 560, 640, 720):
        old = dict(sizes)
        upload(hi, nan_from(700))
        spy.clear()
        live.poll()
        # one listing and one ranged GET per object: the window before the old end and the new bytes
        assert dict(spy.ops) == {"list_objects_v2": 1, "get_object": 3}
        assert spy.fetched() == {name: sizes[name] - old[name] + min(WINDOW, old[name]) for name in WRITERS}
        assert {key: start for key, start, _ in spy.ranges} == {n: max(0, old[n] - WINDOW) for n in WRITERS}
        assert all(t.generation == 0 for t in live.tailers().values())  # never read as a rewrite
    assert max(sizes.values()) > WINDOW  # the window was a part of the object, not all of it
    assert {(f.run.rsplit("/", 1)[-1], f.code, f.step) for f in live.reported if f.code == "WC401"} == {
        ("tb", "WC401", 700), ("log.csv", "WC401", 700), ("log.jsonl", "WC401", 700)}
    assert_as_analyze(live, live.finish(), on_s3)


@pytest.mark.slow
def test_spool_files_keep_only_what_the_tailers_still_need(on_s3: str, s3: Any) -> None:
    from warmcheck.live import remote

    prefix = on_s3[5:]
    big = {EVENTS: events(50_000), "log.csv": csv(50_000), "log.jsonl": jsonl(50_000)}
    for name, data in big.items():
        s3.pipe(f"{prefix}/{name.rsplit('.', 1)[-1]}/{name}", data)
    live = Live(on_s3, Limits(head=100_000, middle=100_000, tail=100_000))  # every point kept, to compare
    live.poll()
    for name, write in WRITERS.items():
        s3.pipe(f"{prefix}/{name.rsplit('.', 1)[-1]}/{name}", write(50_200, nan_from(50_100)))
    live.poll()
    tailers = live.tailers()
    assert len(tailers) == 3 and all(t.generation == 0 for t in tailers.values())
    probe = os.path.join(os.path.dirname(os.path.dirname(next(iter(tailers.values())).local)), "probe")
    with open(probe, "wb") as fh:
        fh.write(b"x" * (1 << 20))
    can_punch = remote._punch_hole(probe, 0, 1 << 19)  # this system and filesystem free blocks on request
    for t in tailers.values():
        st = os.stat(t.local)
        assert st.st_size == len(WRITERS[t.local.rsplit("/", 1)[-1]](50_200, nan_from(50_100)))
        assert st.st_size > remote.KEEP_HEAD + remote.TRIM_MIN + remote.WINDOW + remote.TRIM_ALIGN
        if can_punch:  # kept: the head, the window before the offset, the bytes not read yet
            assert st.st_size - remote.WINDOW - 2 * remote.TRIM_ALIGN <= t._trimmed < st.st_size - remote.WINDOW
            fd = os.open(t.local, os.O_RDONLY)
            try:  # no data between the head and where the tailer's window begins
                assert os.lseek(fd, remote.KEEP_HEAD, os.SEEK_DATA) >= t._trimmed
            finally:
                os.close(fd)
    assert len([f for f in live.reported if f.code == "WC401"]) == 3
    for name, write in WRITERS.items():  # the spool files read on from where they were, holes and all
        s3.pipe(f"{prefix}/{name.rsplit('.', 1)[-1]}/{name}", write(50_300, nan_from(50_100)))
    live.poll()
    assert all(t.generation == 0 for t in tailers.values())
    assert_as_analyze(live, live.finish(), on_s3)


def wandb_run(hi: int, loss: Callable[[int], float] = loss_a) -> bytes:
    """A W&B run file (``run-<id>.wandb``) with ``hi`` history rows, framed as wandb-core writes it."""
    import struct
    import zlib

    pb = pytest.importorskip("wandb.proto.wandb_internal_pb2", reason="wandb is not installed")
    from warmcheck.readers._wandblog import BLOCK, CHUNK_HEADER, FIRST, FULL, HEADER, LAST, MIDDLE

    out = bytearray(HEADER + b"\x00")
    for s in range(hi):
        rec = pb.Record()
        for key, value in (("_step", s), ("train/loss", loss(s)), ("train/lr", lr_at(s))):
            item = rec.history.item.add()
            item.key, item.value_json = key, json.dumps(value)
        payload, first = rec.SerializeToString(), True
        while True:  # chunks never cross a 32 KiB block end; a block end closer than 7 bytes is padding
            left = BLOCK - len(out) % BLOCK
            if left < CHUNK_HEADER:
                out += bytes(left)
                left = BLOCK
            n = min(len(payload), left - CHUNK_HEADER)
            last = n == len(payload)
            kind = FULL if first and last else FIRST if first else LAST if last else MIDDLE
            out += struct.pack("<IHB", zlib.crc32(bytes([kind]) + payload[:n]), n, kind) + payload[:n]
            payload, first = payload[n:], False
            if last:
                break
    return bytes(out)


def test_wandb_run_file_on_s3_is_followed(on_s3: str, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    key = on_s3[5:] + "/wandb/run-20260101_000000-abc/run-abc.wandb"
    s3.pipe(key, wandb_run(2000))
    live = Live(on_s3)
    live.poll()
    (tailer,) = live.tailers().values()
    spy = Spy(monkeypatch)
    size = len(wandb_run(2000))
    for hi in (2300, 2600):
        data = wandb_run(hi, nan_from(2500))
        s3.pipe(key, data)
        spy.clear()
        live.poll()
        assert spy.fetched() == {"run-abc.wandb": len(data) - size + WINDOW}
        size = len(data)
    assert tailer.generation == 0
    assert [f.step for f in live.reported if f.code == "WC401"] == [2500]
    assert_as_analyze(live, live.finish(), on_s3)


# -- rewritten: read whole, no false findings ----------------------------------------------------------


@pytest.mark.parametrize(("name", "pattern"), [
    (EVENTS, "shorter"), (EVENTS, "longer"), (EVENTS, "same-size"),
    ("log.csv", "shorter"), ("log.csv", "longer"), ("log.jsonl", "longer"),
])
def test_rewritten_object_is_read_whole_again(on_s3: str, s3: Any, monkeypatch: pytest.MonkeyPatch, name: str,
                                             pattern: str) -> None:
    write = WRITERS[name]
    key = on_s3[5:] + f"/r/{name}"
    live = Live(on_s3)
    for hi in (100, 200, 300):  # the first attempt, followed
        s3.pipe(key, write(hi, loss_a))
        live.poll()
    (tailer,) = live.tailers().values()
    first = write(300, loss_a)
    again = write({"shorter": 60, "longer": 360, "same-size": 300}[pattern], loss_b)  # a new attempt
    assert (len(again) == len(first)) == (pattern == "same-size")
    spy = Spy(monkeypatch)
    s3.pipe(key, again)
    before = tailer.bytes_fetched
    live.poll()
    assert tailer.generation == 1  # the points of the first attempt are void
    window = min(WINDOW, len(first)) if pattern == "longer" else 0  # the window told it apart, then whole
    assert tailer.bytes_fetched - before == window + len(again)
    assert sum(n for _, _, n in spy.ranges) <= tailer.bytes_fetched - before + storage.BLOCK_SIZE
    for hi in (420, 480):  # the new attempt goes on
        s3.pipe(key, write(hi, loss_b))
        live.poll()
    assert tailer.generation == 1
    runs = live.finish()
    assert [f.code for f in live.reported if f.code in ("WC001", "WC003", "WC004")] == []
    assert_as_analyze(live, runs, on_s3)


def trainer_state(hi: int, loss: Callable[[int], float]) -> bytes:
    history = [{"step": s, "learning_rate": lr_at(s), "loss": loss(s), "epoch": s / 1000} for s in range(5, hi, 5)]
    return json.dumps({"global_step": hi - 5, "max_steps": 2000, "log_history": history}, indent=1).encode()


def test_trainer_state_saved_again_is_an_extension_unless_its_history_changed(on_s3: str, s3: Any) -> None:
    key = on_s3[5:] + "/hf/trainer_state.json"
    live = Live(on_s3)
    for hi in (100, 200, 300):  # Hugging Face saves again: its first bytes change (global_step), its history grows
        s3.pipe(key, trainer_state(hi, loss_a))
        live.poll()
    (tailer,) = live.tailers().values()
    assert tailer.generation == 0  # told apart by the points, as for a local file
    s3.pipe(key, trainer_state(150, loss_b))  # a new attempt
    live.poll()
    assert tailer.generation == 1
    s3.pipe(key, trainer_state(400, nan_from(350, loss_b)))
    live.poll()
    assert tailer.generation == 1
    assert_as_analyze(live, live.finish(), on_s3)


def test_gzip_csv_is_read_whole_at_each_change(on_s3: str, s3: Any) -> None:
    import gzip

    key = on_s3[5:] + "/g/log.csv.gz"
    live = Live(on_s3)
    for hi in (100, 200, 300):
        s3.pipe(key, gzip.compress(csv(hi, nan_from(250)), mtime=0))
        live.poll()
    (tailer,) = live.tailers().values()
    assert tailer.generation == 0
    assert [f.step for f in live.reported if f.code == "WC401"] == [250]
    assert_as_analyze(live, live.finish(), on_s3)


def test_spool_removed_under_the_watch_is_made_again(on_s3: str, s3: Any) -> None:
    import shutil

    key = on_s3[5:] + f"/a/{EVENTS}"
    s3.pipe(key, events(200))
    live = Live(on_s3)
    live.poll()
    (tailer,) = live.tailers().values()
    shutil.rmtree(os.path.dirname(os.path.dirname(tailer.local)))  # a temporary-files cleaner
    s3.pipe(key, events(300, nan_from(250)))
    found = live.poll()
    assert [(f.code, f.step) for f in found] == [("WC401", 250)]
    s3.pipe(key, events(350, nan_from(250)))
    live.poll()
    assert_as_analyze(live, live.finish(), on_s3)


def test_a_full_disk_is_one_wc001_then_the_object_is_read_again(on_s3: str, s3: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from warmcheck.live import remote

    key = on_s3[5:] + "/a/log.csv"
    s3.pipe(key, csv(200))
    live = Live(on_s3)
    live.poll()
    real_copy = remote.RemoteTailer._copy

    def full(self: Any, fh: Any, out: Any, digest: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(remote.RemoteTailer, "_copy", full)
    for hi in (250, 300):
        s3.pipe(key, csv(hi))
        live.poll()
    assert [(f.code, "No space left" in f.message) for f in live.reported] == [("WC001", True)]  # once
    monkeypatch.setattr(remote.RemoteTailer, "_copy", real_copy)
    s3.pipe(key, csv(350, nan_from(320)))
    assert [f.code for f in live.poll() if f.code != "WC012"] == ["WC401"]
    runs = live.finish()
    storage.forget_listings()
    assert points(runs) == points(pipeline.analyze([on_s3], Settings(), jobs=1).runs)


# -- new runs, deleted objects ---------------------------------------------------------------------------


def test_new_runs_under_the_prefix_are_followed_and_deleted_objects_said(on_s3: str, s3: Any) -> None:
    prefix = on_s3[5:]
    s3.pipe(f"{prefix}/a/{EVENTS}", events(200))
    live = Live(on_s3)
    assert live.poll() == []
    assert list(live.watcher.runs) == [f"{on_s3}/a"]
    s3.pipe(f"{prefix}/b/{EVENTS}", events(60, nan_from(50)))  # a new run appears
    s3.pipe(f"{prefix}/c/log.csv", csv(80))
    found = live.poll()
    assert sorted(live.watcher.runs) == [f"{on_s3}/a", f"{on_s3}/b", f"{on_s3}/c/log.csv"]
    assert [(f.run, f.code, f.step) for f in found] == [(f"{on_s3}/b", "WC401", 50)]
    s3.pipe(f"{prefix}/a/events.out.tfevents.1700009999.host.2.0", events(3, nan_from(0)))  # a second file of a
    found = live.poll()
    assert [(f.run, f.code) for f in found] == [(f"{on_s3}/a", "WC401")]
    s3.rm(f"{prefix}/c/log.csv")
    spool = live.tailers()[f"{on_s3}/c/log.csv"].local
    assert os.path.exists(spool)
    found = live.poll()
    assert [(f.run, f.code) for f in found] == [(f"{on_s3}/c/log.csv", "WC001")]
    assert "disappeared" in found[0].message
    assert not os.path.exists(spool)  # its local copy removed
    s3.pipe(f"{prefix}/c/log.csv", csv(30, nan_from(20)))  # back again: followed afresh
    found = live.poll()
    assert [(f.run, f.code, f.step) for f in found if f.code == "WC401"] == [(f"{on_s3}/c/log.csv", "WC401", 20)]
    live.watcher.close()


def test_a_csv_that_is_not_a_training_log_is_not_read_at_each_poll(on_s3: str, s3: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = on_s3[5:]
    rows = "".join(f"{i},item number {i} of the predictions\n" for i in range(40_000)).encode()
    assert len(rows) > 1 << 20  # more than the head discovery's sniff reads
    s3.pipe(f"{prefix}/preds.csv", b"id,text\n" + rows)
    s3.pipe(f"{prefix}/a/log.csv", csv(100))
    live = Live(on_s3)
    live.poll()
    assert list(live.watcher.runs) == [f"{on_s3}/a/log.csv"]
    spy = Spy(monkeypatch)
    s3.pipe(f"{prefix}/preds.csv", b"id,text\n" + rows + b"40000,one more\n")  # grows: not sniffed again
    spy.clear()
    live.poll()
    assert dict(spy.ops) == {"list_objects_v2": 1}
    s3.pipe(f"{prefix}/preds.csv", b"step,loss\n1,2.0\n")  # rewritten shorter: sniffed again, now a log
    live.poll()
    assert sorted(live.watcher.runs) == [f"{on_s3}/a/log.csv", f"{on_s3}/preds.csv"]
    live.watcher.close()


def test_sample_logs_on_s3_unchanged_poll_is_one_listing(upload: Callable[[Any, str], str], moto_endpoint: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:

    url = upload(SAMPLE_LOGS, "sample_logs")
    storage.set_storage_options({"endpoint_url": moto_endpoint})
    live = Live(url)
    live.poll()
    spy = Spy(monkeypatch)
    for _ in range(2):
        live.clock.now += 100  # past --settle: each held-back tail is judged once
        live.poll()
    assert dict(spy.ops) == {"list_objects_v2": 2}  # every format of sample_logs: no HEAD, no GET
    runs = live.finish()
    storage.forget_listings()
    assert sorted(r.name for r in runs) == sorted(r.name for r in pipeline.analyze([url], Settings(), jobs=1).runs)


# -- through the command line ----------------------------------------------------------------------------


def test_watch_command_follows_an_s3_prefix(on_s3: str, s3: Any, moto_endpoint: str) -> None:
    prefix = on_s3[5:]
    s3.pipe(f"{prefix}/a/{EVENTS}", events(200))
    s3.pipe(f"{prefix}/b/log.csv", csv(120, nan_from(100)))
    args = ["--storage-option", f"endpoint_url={moto_endpoint}", on_s3]
    result = CliRunner().invoke(main, ["watch", "--format", "json", "--stop-when-idle", "--settle", "0",
                                       "--interval", "0.01", "--no-state", *args])
    analyzed = CliRunner().invoke(main, ["analyze", "--format", "json", "-q", "--no-cache", *args])
    assert result.exit_code == analyzed.exit_code == 1, result.output
    assert "does not follow URLs" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert ("WC401", f"{on_s3}/b/log.csv") in {(e.get("code"), e.get("run")) for e in lines}
    assert lines[-1]["event"] == "summary" and lines[-1]["runs"] == 2


def test_mlflow_stores_on_a_url_are_one_finding_each_and_the_rest_followed(on_s3: str, s3: Any) -> None:
    prefix = on_s3[5:]
    s3.pipe(f"{prefix}/exp/abc/meta.yaml", b"run_id: abc\n")
    s3.pipe(f"{prefix}/exp/abc/metrics/loss", b"1 0.5 1\n")
    s3.pipe(f"{prefix}/mlflow.db", b"SQLite format 3\x00" + bytes(100))
    s3.pipe(f"{prefix}/metrics.csv", csv(100))
    live = Live(on_s3)
    found = live.poll()
    assert sorted((f.run, f.code) for f in found) == [(f"{on_s3}/exp/abc", "WC001"), (f"{on_s3}/mlflow.db", "WC001")]
    assert all("cannot be read from a URL" in f.message for f in found)
    s3.pipe(f"{prefix}/metrics.csv", csv(140, nan_from(120)))
    assert [(f.run, f.code) for f in live.poll() if f.code == "WC401"] == [(f"{on_s3}/metrics.csv", "WC401")]
    assert live.poll() == []  # each said once
    live.watcher.close()


def test_missing_filesystem_is_exit_2_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    registry = importlib.import_module("fsspec.registry")

    def not_installed(protocol: str) -> Any:
        raise ImportError(registry.known_implementations[protocol]["err"])

    monkeypatch.setattr(registry, "get_filesystem_class", not_installed)
    result = CliRunner().invoke(main, ["watch", "gs://bucket/runs/"])
    assert result.exit_code == 2
    assert "pip install 'warmcheck[gcs]'" in result.stderr and "Traceback" not in result.stderr


def test_memory_urls_are_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    mem = fsspec.filesystem("memory")
    url = "memory://wc-watch/runs"
    try:
        mem.pipe(f"/wc-watch/runs/a/{EVENTS}", events(300))
        live = Live(url)
        live.poll()
        (tailer,) = live.tailers().values()
        size = len(events(300))
        for hi in (400, 500):
            before = tailer.bytes_fetched
            mem.pipe(f"/wc-watch/runs/a/{EVENTS}", events(hi, nan_from(450)))
            live.poll()
            assert tailer.bytes_fetched - before == len(events(hi)) - size + min(WINDOW, size)
            size = len(events(hi))
        assert [f.code for f in live.reported if f.code == "WC401"] == ["WC401"]
        spool = os.path.dirname(os.path.dirname(tailer.local))
        assert_as_analyze(live, live.finish(), url)
        assert not os.path.exists(spool)  # the watch's local copies removed when it ends

        one = f"{url}/a/{EVENTS}"  # an object given itself, not a prefix
        live = Live(one)
        live.poll()
        mem.pipe(f"/wc-watch/runs/a/{EVENTS}", events(520, nan_from(450)))
        live.poll()
        assert_as_analyze(live, live.finish(), one)
    finally:
        mem.rm("/wc-watch", recursive=True)


def test_file_urls_are_local_paths(tmp_path: Any) -> None:
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "log.csv").write_bytes(csv(100))
    url = (tmp_path / "runs").as_uri()
    live = Live(url)
    live.poll()
    assert live.watcher._spool is None  # read in place, with the local tailers
    with open(run / "log.csv", "ab") as fh:
        fh.write(csv(150, nan_from(120))[len(csv(100)):])
    assert [f.step for f in live.poll() if f.code == "WC401"] == [120]
    live.finish()


# -- an endpoint that stops answering --------------------------------------------------------------------

FAST_FAIL = {"config_kwargs": {"connect_timeout": 1, "read_timeout": 1,
                               "retries": {"total_max_attempts": 1, "mode": "standard"}}, "retries": 1}


def test_endpoint_that_stops_answering_mid_watch(s3: Any, bucket: str, moto_endpoint: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from s3env import BlackHole

    port = int(moto_endpoint.rsplit(":", 1)[1])
    proxy = BlackHole(forward_to=("127.0.0.1", port))
    url = f"s3://{bucket}/runs"
    key = f"{bucket}/runs/a/log.csv"
    s3.pipe(key, csv(200))
    storage.set_storage_options({"endpoint_url": f"http://127.0.0.1:{proxy.port}", **FAST_FAIL})
    script: list[Callable[[], None]] = [
        lambda: s3.pipe(key, csv(300)),  # read normally
        proxy.hang,  # the endpoint stops answering: the listing fails
        lambda: s3.pipe(key, csv(400, nan_from(350))),  # written meanwhile; still not answering
        lambda: setattr(proxy, "forward_to", ("127.0.0.1", port)),  # back
        lambda: s3.pipe(key, csv(450, nan_from(350))),
    ]

    def sleep(_: float) -> None:
        if not script:
            raise KeyboardInterrupt
        script.pop(0)()

    try:
        code = watch_loop([url], Settings(), interval=0.01, settle=1000, sleep=sleep, state="")
    finally:
        proxy.close()
    out, err = capsys.readouterr()
    assert code == 1
    assert "object storage did not answer" in err and "read at the next poll" in err
    assert "answers again" in err
    assert "Traceback" not in err
    assert f"{url}/a/log.csv: " in out and "WC401" in out  # the rows written meanwhile were read
    storage.set_storage_options({"endpoint_url": moto_endpoint})
    storage.forget_listings()
    expected = pipeline.analyze([url], Settings(), jobs=1).runs
    assert [r.name for r in expected] == [f"{url}/a/log.csv"]


def test_reads_failing_after_the_listing_lose_nothing(s3: Any, bucket: str, moto_endpoint: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from s3env import BlackHole

    port = int(moto_endpoint.rsplit(":", 1)[1])
    proxy = BlackHole(forward_to=("127.0.0.1", port))
    url = f"s3://{bucket}/runs"
    key = f"{bucket}/runs/a/log.csv"
    s3.pipe(key, csv(200))
    storage.set_storage_options({"endpoint_url": f"http://127.0.0.1:{proxy.port}", **FAST_FAIL})
    real_discover = live_watch.discover
    try:
        live = Live(url)
        live.poll()
        (tailer,) = live.tailers().values()
        held = tailer.bytes_fetched

        def discover_then_hang(*args: Any, **kwargs: Any) -> Any:
            found = real_discover(*args, **kwargs)
            proxy.hang()
            return found

        s3.pipe(key, csv(300))
        monkeypatch.setattr(live_watch, "discover", discover_then_hang)
        assert live.poll() == []
        assert [type(e).__name__ for e in live.watcher.storage_errors] == ["StorageError"]
        assert "object storage did not answer" in str(live.watcher.storage_errors[0])
        assert tailer.bytes_fetched == held
        monkeypatch.setattr(live_watch, "discover", real_discover)
        proxy.forward_to = ("127.0.0.1", port)
        s3.pipe(key, csv(400, nan_from(350)))
        assert [f.code for f in live.poll() if f.code == "WC401"] == ["WC401"]
        assert live.watcher.storage_errors == []
        assert tailer.generation == 0  # read on from where it was, not as a rewrite
        runs = live.finish()
    finally:
        proxy.close()
    storage.set_storage_options({"endpoint_url": moto_endpoint})
    assert_as_analyze(live, runs, url)


def test_endpoint_that_never_comes_back_ends_the_watch_with_exit_2(
        s3: Any, bucket: str, moto_endpoint: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from s3env import BlackHole

    monkeypatch.setattr(live_watch, "MAX_FAILED_POLLS", 3)
    monkeypatch.setattr(live_watch, "STORAGE_PATIENCE", 0.0)
    port = int(moto_endpoint.rsplit(":", 1)[1])
    proxy = BlackHole(forward_to=("127.0.0.1", port))
    s3.pipe(f"{bucket}/runs/a/log.csv", csv(200))
    storage.set_storage_options({"endpoint_url": f"http://127.0.0.1:{proxy.port}", **FAST_FAIL})
    sleeps = 0

    def sleep(_: float) -> None:
        nonlocal sleeps
        sleeps += 1
        proxy.hang()

    try:
        code = watch_loop([f"s3://{bucket}/runs"], Settings(), interval=0.01, sleep=sleep, state="")
    finally:
        proxy.close()
    err = capsys.readouterr().err
    assert code == 2 and sleeps == 3
    assert "did not answer in 3 polls in a row (" in err and "); stopping" in err
    assert "Traceback" not in err


def test_first_listing_failing_is_exit_2() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["watch", "--storage-option", f"endpoint_url={closed}", "--storage-option",
                                       "config_kwargs=" + json.dumps(FAST_FAIL["config_kwargs"]),
                                       "--storage-option", "retries=1", "s3://bucket/runs/"])
    assert result.exit_code == 2
    assert "object storage did not answer" in result.stderr and "Traceback" not in result.stderr
