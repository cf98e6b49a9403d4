"""An appended event file is resumed from the cached offset: only the new records are read, and the
result is the whole file's; a file rewritten (even larger) is read whole again."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from factories import record_bytes, run_events, tensor_event, text_event

from warmcheck import cache
from warmcheck.cli import main
from warmcheck.model import Format, SourceRead
from warmcheck.readers.tensorboard import read_event_file

OLD_NS = time.time_ns() - 3600 * 10**9


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    cache.set_active(None)


def backdate(path: Path, ns: int) -> None:
    os.utime(path, ns=(ns, ns))


def lr_loss(steps: range) -> dict[str, list[float]]:
    return {"train/lr": [min(1.0, s / 50) * 1e-3 for s in steps],
            "train/loss": [3.0 / (1 + s / 100) + (5.0 if s == 260 else 0.0) for s in steps]}


def same(a: SourceRead, b: SourceRead) -> None:
    assert (a.info, a.metadata, list(a.findings), list(a.restart_steps), a.sort_key) == (
        b.info, b.metadata, list(b.findings), list(b.restart_steps), b.sort_key)
    assert [f.tag for f in a.fragments] == [f.tag for f in b.fragments]
    for x, y in zip(a.fragments, b.fragments, strict=True):
        np.testing.assert_array_equal(x.steps, y.steps)
        np.testing.assert_array_equal(x.values, y.values)
        np.testing.assert_array_equal(x.wall_times, y.wall_times)


def report(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["analyze", "--format", "json", "--isolated", "-j", "1", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout


@pytest.fixture
def event_file(tmp_path: Path) -> Path:
    path = tmp_path / "run" / "events.out.tfevents.1700000000.host.1.0"
    path.parent.mkdir()
    path.write_bytes(record_bytes([*run_events(range(200), lr_loss(range(200))),
                                   tensor_event("tf2/acc", 0, 0.5), text_event("args", "lr=1e-3")]))
    backdate(path, OLD_NS)
    return path


def append(path: Path, steps: range, *extra: object, ns: int = OLD_NS + 10**9) -> None:
    events = run_events(steps, lr_loss(steps), 1.7e9 + steps.start)[1:]  # no second file_version record
    events += [tensor_event("tf2/acc", s, 0.5 + s / 1000, metadata=False) for s in steps[::10]]
    with path.open("ab") as fh:
        fh.write(record_bytes([*events, *extra]))  # type: ignore[list-item]
    backdate(path, ns)


def test_appended_event_file_is_resumed_and_equals_a_whole_read(event_file: Path, tmp_path: Path) -> None:
    store = cache.ReadCache(str(tmp_path / "cache"))
    store.read(str(event_file), Format.TFEVENTS, read_event_file)
    assert store.stats.stored == 1
    append(event_file, range(200, 300), text_event("notes", "resumed"))
    resumed = store.read(str(event_file), Format.TFEVENTS, read_event_file)
    assert (store.stats.resumed, store.stats.stored) == (1, 2)
    same(resumed, read_event_file(str(event_file)))
    # the TF2 tensor appended without plugin metadata is a scalar because the cached state knew its tag
    assert len(next(f for f in resumed.fragments if f.tag == "tf2/acc")) == 11
    append(event_file, range(300, 350), ns=OLD_NS + 2 * 10**9)  # resumed again, from the new offset
    again = store.read(str(event_file), Format.TFEVENTS, read_event_file)
    assert store.stats.resumed == 2
    same(again, read_event_file(str(event_file)))
    hit = store.read(str(event_file), Format.TFEVENTS, read_event_file)
    assert store.stats.hits == 1
    same(hit, again)


def test_the_cli_report_after_an_append_equals_no_cache(event_file: Path, tmp_path: Path) -> None:
    cache_dir = str(tmp_path / "cache")
    run = str(event_file.parent)
    first = report(run, "--cache-dir", cache_dir)
    append(event_file, range(200, 400))
    appended = report(run, "--cache-dir", cache_dir)
    assert appended == report(run, "--no-cache") and appended != first


def test_a_rewritten_larger_file_is_not_resumed(event_file: Path, tmp_path: Path) -> None:
    store = cache.ReadCache(str(tmp_path / "cache"))
    store.read(str(event_file), Format.TFEVENTS, read_event_file)
    steps = range(0, 400)
    data = record_bytes(run_events(steps, {k: [v * 2 for v in vs] for k, vs in lr_loss(steps).items()}))
    with event_file.open("r+b") as fh:  # truncated and written again in place: same inode, larger
        fh.truncate(0)
        fh.write(data)
    backdate(event_file, OLD_NS + 10**9)
    read = store.read(str(event_file), Format.TFEVENTS, read_event_file)
    assert store.stats.resumed == 0
    same(read, read_event_file(str(event_file)))


def test_an_append_ending_in_a_partial_record_is_read_whole(event_file: Path, tmp_path: Path) -> None:
    store = cache.ReadCache(str(tmp_path / "cache"))
    store.read(str(event_file), Format.TFEVENTS, read_event_file)
    whole = record_bytes(run_events(range(200, 210), lr_loss(range(200, 210)))[1:])
    with event_file.open("ab") as fh:
        fh.write(whole[:-7])  # the writer is mid-record
    backdate(event_file, OLD_NS + 10**9)
    read = store.read(str(event_file), Format.TFEVENTS, read_event_file)
    assert store.stats.resumed == 0 and any(f.code == "WC003" for f in read.findings)
    same(read, read_event_file(str(event_file)))


def test_a_file_shorter_than_cached_is_read_whole(event_file: Path, tmp_path: Path) -> None:
    store = cache.ReadCache(str(tmp_path / "cache"))
    store.read(str(event_file), Format.TFEVENTS, read_event_file)
    event_file.write_bytes(record_bytes(run_events(range(50), lr_loss(range(50)))))
    backdate(event_file, OLD_NS + 10**9)
    read = store.read(str(event_file), Format.TFEVENTS, read_event_file)
    assert store.stats.resumed == 0
    same(read, read_event_file(str(event_file)))
    assert not math.isnan(read.fragments[0].values[0])
