"""An appended event file, CSV or JSONL log is resumed from the cached offset: only the new records or
lines are read, and the result is the whole file's; a file rewritten (even larger), or an append that
could change what a whole read gives, is read whole again."""

from __future__ import annotations

import gzip
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from factories import record_bytes, run_events, tensor_event, text_event

from warmcheck import cache
from warmcheck.cli import main
from warmcheck.model import Format, SourceRead
from warmcheck.readers import csvlog, jsonl
from warmcheck.readers.csvlog import read_csv
from warmcheck.readers.jsonl import read_jsonl
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


# ---- CSV and JSONL: read on from the end of the last complete line ---------------------------------

REALRUNS = Path(__file__).parent / "data" / "realruns"
LIGHTNING = REALRUNS / "lightning_csv_linear15" / "csv" / "version_0" / "metrics.csv"
N = 10_000  # rows written before the cache read the file
NEXT = str(N + 100).encode()  # the step after the clean append
LLMFS_LOG = REALRUNS / "llmfs_appendix_d_84" / "train_log.csv"  # global_step,epoch,lr,train_loss,grad_norm


def csv_rows(steps: range) -> bytes:
    vals = lr_loss(steps)
    return b"".join(f"{s},{lr!r},{loss!r},{'warm' if s < 50 else 'main'}\n".encode()
                    for s, lr, loss in zip(steps, vals["train/lr"], vals["train/loss"], strict=True))


def jsonl_rows(steps: range) -> bytes:
    vals = lr_loss(steps)
    return b"".join((json.dumps({"step": s, "lr": lr, "loss": loss, **({"eval": {"acc": s / 1000}} if s % 10 == 0
                                                                          else {})}) + "\n").encode()
                    for s, lr, loss in zip(steps, vals["train/lr"], vals["train/loss"], strict=True))


def split_lines(path: Path, keep: int) -> tuple[bytes, bytes]:
    lines = path.read_bytes().splitlines(keepends=True)
    return b"".join(lines[:keep]), b"".join(lines[keep:])


def text_log(tmp_path: Path, kind: str) -> tuple[Path, Format, Callable[[str], SourceRead], bytes]:
    """A log of ``kind`` with its first part written (backdated), and the bytes a writer appends."""
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    if kind == "csv":
        path, fmt, reader = run / "log.csv", Format.CSV, read_csv
        base, more = b"step,lr,loss,phase\n" + csv_rows(range(0, N)), csv_rows(range(N, N + 100))
    elif kind == "lightning":  # a real Lightning metrics.csv: lr and train_loss on separate, sparse rows
        path, fmt, reader = run / "metrics.csv", Format.CSV, read_csv
        base, more = split_lines(LIGHTNING, 150)
    elif kind in ("semicolon", "tab"):  # a European Excel export, a TSV: read with a WC012 note
        sep = b";" if kind == "semicolon" else b"\t"
        path, fmt, reader = run / "log.csv", Format.CSV, read_csv
        base = b"step,lr,loss,phase\n" + csv_rows(range(0, N))
        base, more = base.replace(b",", sep), csv_rows(range(N, N + 100)).replace(b",", sep)
    elif kind == "declared":  # a column in the header that gets its first numbers in the appended rows
        path, fmt, reader = run / "log.csv", Format.CSV, read_csv
        base = b"step,lr,loss,val_loss\n" + b"".join(b"%d,0.001,%r,\n" % (s, 3.0 / (1 + s)) for s in range(N))
        more = b"".join(b"%d,0.001,%r,%s\n" % (s, 3.0 / (1 + s), b"2.5" if s % 10 == 0 else b"")
                        for s in range(N, N + 100))
    elif kind == "walltime":  # epoch seconds in a 'timestamp' column: the rows' wall times
        path, fmt, reader = run / "log.csv", Format.CSV, read_csv
        base = b"step,loss,timestamp\n" + b"".join(b"%d,%r,%r\n" % (s, 3.0 / (1 + s), 1.7e9 + s * 0.25)
                                                   for s in range(0, 1000))
        more = b"".join(b"%d,%r,%r\n" % (s, 3.0 / (1 + s), 1.7e9 + s * 0.25) for s in range(1000, 1100))
    elif kind == "realrun":  # a real from-scratch LLM training log, CRLF line ends
        path, fmt, reader = run / "train_log.csv", Format.CSV, read_csv
        base, more = split_lines(LLMFS_LOG, 40)
    elif kind == "jsonl-eval":  # the first evaluation: a key never seen before, a new series after the others
        path, fmt, reader = run / "log.jsonl", Format.JSONL, read_jsonl
        base = jsonl_rows(range(0, N)).replace(b', "eval": {"acc": ', b', "eval": {"ac": ')
        more = jsonl_rows(range(N, N + 100)).replace(b"}}", b', "loss": 2.5}}')
    else:
        path, fmt, reader = run / "log.jsonl", Format.JSONL, read_jsonl
        base, more = jsonl_rows(range(0, N)), jsonl_rows(range(N, N + 100))
    path.write_bytes(base)
    backdate(path, OLD_NS)
    return path, fmt, reader, more


def write_more(path: Path, data: bytes, mode: str = "ab", ns: int = OLD_NS + 10**9) -> None:
    with path.open(mode) as fh:
        fh.write(data)
    backdate(path, ns)


class CountingFile:
    """A file whose reads are counted (what the cache read of it)."""

    def __init__(self, fh: Any, counts: list[int]) -> None:
        self.fh, self.counts = fh, counts

    def __enter__(self) -> CountingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def seek(self, *args: int) -> int:
        return int(self.fh.seek(*args))

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.counts.append(len(data))
        return bytes(data)


@pytest.mark.parametrize("kind", ["csv", "lightning", "realrun", "walltime", "semicolon", "tab", "declared", "jsonl",
                                  "jsonl-eval"])
def test_an_appended_text_log_is_resumed_reading_only_the_new_bytes(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, fmt, reader, more = text_log(tmp_path, kind)
    store = cache.ReadCache(str(tmp_path / "cache"))
    first = store.read(str(path), fmt, reader)
    assert store.stats.stored == 1 and [f.code for f in first.findings] == (["WC012"] if kind in ("semicolon", "tab")
                                                                             else [])
    old_size = path.stat().st_size
    write_more(path, more)
    whole = reader(str(path))
    counts: list[int] = []
    ranges: list[tuple[int, int]] = []
    real_range = cache._read_range

    def read_range(p: str, start: int, end: int) -> bytes | None:
        ranges.append((start, end))
        return real_range(p, start, end)

    monkeypatch.setattr(cache, "open", lambda p, mode="r": CountingFile(open(p, mode), counts), raising=False)
    monkeypatch.setattr(cache, "_read_range", read_range)

    def no_whole_read(*args: object) -> None:
        raise AssertionError("the file was read whole")

    monkeypatch.setattr(csvlog, "load_text", no_whole_read)
    monkeypatch.setattr(jsonl, "load_json_text", no_whole_read)
    resumed = store.read(str(path), fmt, reader)
    monkeypatch.undo()
    assert (store.stats.resumed, store.stats.stored, store.stats.hits) == (1, 2, 0)
    same(resumed, whole)
    assert resumed.info.records > first.info.records
    # the appended bytes once, plus the hashed head and the 64 KiB before each offset (old, then new)
    assert ranges == [(old_size, path.stat().st_size)]
    assert sum(counts) <= len(more) + 2 * (cache.HEAD_BYTES + cache.TAIL_BYTES)
    if kind in ("csv", "semicolon", "tab", "declared", "jsonl", "jsonl-eval"):
        assert sum(counts) < old_size / 2  # the earlier rows were not read again
    hit = store.read(str(path), fmt, reader)  # the resumed read was cached: the next run is a hit
    assert store.stats.hits == 1
    same(hit, whole)


@pytest.mark.parametrize("kind", ["csv", "lightning", "jsonl"])
def test_a_text_log_appended_twice_is_resumed_twice(kind: str, tmp_path: Path) -> None:
    path, fmt, reader, more = text_log(tmp_path, kind)
    store = cache.ReadCache(str(tmp_path / "cache"))
    store.read(str(path), fmt, reader)
    cut = more.index(b"\n", len(more) // 2) + 1
    write_more(path, more[:cut])
    same(store.read(str(path), fmt, reader), reader(str(path)))
    write_more(path, more[cut:], ns=OLD_NS + 2 * 10**9)
    same(store.read(str(path), fmt, reader), reader(str(path)))
    assert store.stats.resumed == 2


@pytest.mark.parametrize("kind", ["csv", "lightning", "realrun", "jsonl"])
def test_the_cli_report_after_a_text_log_append_equals_no_cache(kind: str, tmp_path: Path) -> None:
    path, _, _, more = text_log(tmp_path, kind)
    cache_dir = str(tmp_path / "cache")
    first = report(str(path.parent), "--cache-dir", cache_dir)
    write_more(path, more)
    stats = cache.CacheStats()
    real = cache.ReadCache.read

    def counted(self: cache.ReadCache, *args: Any) -> SourceRead:
        self.stats = stats
        return real(self, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cache.ReadCache, "read", counted)
        appended = report(str(path.parent), "--cache-dir", cache_dir)
    assert stats.resumed == 1
    assert appended == report(str(path.parent), "--no-cache") and appended != first


def fallback_cases() -> dict[str, Callable[[Path, bytes], None]]:
    """Changes after which a text log is read whole: (path, the bytes a clean append would add)."""

    def restart(path: Path, more: bytes) -> None:  # the writer restarted from a checkpoint: the steps
        old = path.read_bytes().splitlines(keepends=True)  # of the last cached lines written again
        write_more(path, b"".join(old[-6:]) + more)

    def extra_field(path: Path, more: bytes) -> None:  # a new column in the appended rows only
        write_more(path, more + NEXT + b",0.001,1.5,main,7\n")

    def new_header(path: Path, more: bytes) -> None:  # Lightning rewrites metrics.csv when a metric appears
        old = path.read_bytes().replace(b"step,lr,loss,phase\n", b"step,lr,loss,phase,grad_norm\n", 1)
        write_more(path, old + more, "r+b")

    def new_metric(path: Path, more: bytes) -> None:  # Lightning's CSVLogger: a metric appears, the file
        lines = (path.read_bytes() + more).splitlines(keepends=True)  # is written again with a new column
        rows = [lines[0].replace(b"\n", b",val_loss\n")] + [x.replace(b"\n", b",\n") for x in lines[1:]]
        write_more(path, b"".join(rows) + b",,117,,1.99\n", "r+b")

    def text_in_numbers(path: Path, more: bytes) -> None:  # a numeric column gets a text cell
        write_more(path, more + NEXT + b",0.001,diverged,main\n")

    def text_becomes_numbers(path: Path, more: bytes) -> None:  # the text column 'phase' gets numbers
        write_more(path, more + NEXT + b",0.001,1.5,3\n")

    def partial_append(path: Path, more: bytes) -> None:  # the append ends mid-line
        write_more(path, more[:-5])

    def rewritten_head(path: Path, more: bytes) -> None:  # same inode, first row changed, longer
        data = path.read_bytes()
        at = data.index(b"\n") + 1
        write_more(path, data[:at] + data[at:].replace(b"0", b"1", 1) + more, "r+b")

    def shorter(path: Path, more: bytes) -> None:
        data = path.read_bytes()
        write_more(path, data[:len(data) // 2 + data[len(data) // 2:].index(b"\n") + 1], "wb")

    def clock_changes(path: Path, more: bytes) -> None:  # 'timestamp' becomes a duration in the new rows
        write_more(path, b"".join(b"%d,1.0,%d\n" % (s, s) for s in range(1000, 1100)))

    def decimal_comma(path: Path, more: bytes) -> None:  # ';'-separated: '1,5' is one and a half
        write_more(path, more + NEXT + b";0,001;1,5;main\n")

    def text_then_numbers(path: Path, more: bytes) -> None:  # JSONL: a key that held text gets numbers
        write_more(path, more + b'{"step": ' + NEXT + b', "lr": 0.001, "loss": 1.5, "note": "restart"}\n'
                   + b'{"step": ' + str(N + 101).encode() + b', "lr": 0.001, "loss": 1.5, "note": 2.0}\n')

    def text_value(path: Path, more: bytes) -> None:  # JSONL: a number written as text
        write_more(path, more + b'{"step": ' + NEXT + b', "lr": 0.001, "loss": "NaN?"}\n')

    def blank_lines(path: Path, more: bytes) -> None:  # blank lines are fine inside, not at the end
        write_more(path, more + b"\n\n")

    return {f.__name__: f for f in (restart, extra_field, new_header, new_metric, text_in_numbers,
                                    text_becomes_numbers, partial_append, rewritten_head, shorter, clock_changes,
                                    decimal_comma, text_then_numbers, text_value, blank_lines)}


CSV_CASES = ["restart", "extra_field", "new_header", "text_in_numbers", "text_becomes_numbers", "partial_append",
             "rewritten_head", "shorter", "blank_lines"]
JSONL_CASES = ["restart", "partial_append", "rewritten_head", "shorter", "text_then_numbers", "text_value",
               "blank_lines"]


@pytest.mark.parametrize(("kind", "case"), [("csv", c) for c in CSV_CASES] + [("jsonl", c) for c in JSONL_CASES]
                         + [("walltime", "clock_changes"), ("walltime", "shorter"), ("lightning", "new_metric"),
                            ("lightning", "restart"), ("lightning", "partial_append"),
                            ("semicolon", "decimal_comma"), ("semicolon", "restart"), ("tab", "shorter")])
def test_a_text_log_that_cannot_be_resumed_exactly_is_read_whole(kind: str, case: str, tmp_path: Path) -> None:
    path, fmt, reader, more = text_log(tmp_path, kind)
    cache_dir = str(tmp_path / "cache")
    report(str(path.parent), "--cache-dir", cache_dir)
    store = cache.ReadCache(cache_dir)
    fallback_cases()[case](path, more)
    read = store.read(str(path), fmt, reader)
    assert store.stats.resumed == 0 and store.stats.read == 1
    same(read, reader(str(path)))
    assert report(str(path.parent), "--cache-dir", cache_dir) == report(str(path.parent), "--no-cache")


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_text_log_cached_with_a_partial_last_line_is_read_whole(kind: str, tmp_path: Path) -> None:
    path, fmt, reader, more = text_log(tmp_path, kind)
    store = cache.ReadCache(str(tmp_path / "cache"))
    write_more(path, more[:-5], ns=OLD_NS)  # the writer is mid-line when the cache reads the file
    cached = store.read(str(path), fmt, reader)
    assert store.stats.stored == 1 and any(f.code == "WC003" for f in cached.findings)
    write_more(path, more[-5:] + more)
    read = store.read(str(path), fmt, reader)
    assert store.stats.resumed == 0 and not read.findings
    same(read, reader(str(path)))


def test_an_appended_gzip_log_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "run" / "log.csv.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(b"step,lr,loss,phase\n" + csv_rows(range(0, 500))))
    backdate(path, OLD_NS)
    cache_dir = str(tmp_path / "cache")
    first = report(str(path.parent), "--cache-dir", cache_dir)
    store = cache.ReadCache(cache_dir)
    write_more(path, gzip.compress(csv_rows(range(500, 600))))  # gzip -c new_rows >> log.csv.gz
    read = store.read(str(path), Format.CSV, read_csv)
    assert store.stats.resumed == 0 and read.metadata["csv"]["rows"] == 600
    same(read, read_csv(str(path)))
    again = report(str(path.parent), "--cache-dir", cache_dir)
    assert again == report(str(path.parent), "--no-cache") and again != first


@pytest.mark.parametrize("log", [LIGHTNING, LLMFS_LOG, REALRUNS / "lightning_per_epoch_warmup50" / "csv" / "version_0"
                                 / "metrics.csv", REALRUNS / "nanogpt_warmup40_log8" / "log.csv"],
                         ids=lambda p: p.parts[-4] if p.name == "metrics.csv" else p.parent.name)
def test_a_real_log_cached_at_any_line_and_appended_equals_a_whole_read(log: Path, tmp_path: Path) -> None:
    """Whatever line the cache last saw (a header only, a val row, a row that ends an epoch...), the
    read after the append is the whole read, resumed or not; most cuts are resumed."""
    lines = log.read_bytes().splitlines(keepends=True)
    path = tmp_path / log.name
    resumed = 0
    for cut in range(1, len(lines), 3):
        path.write_bytes(b"".join(lines[:cut]))
        backdate(path, OLD_NS)
        store = cache.ReadCache(str(tmp_path / f"cache{cut}"))
        store.read(str(path), Format.CSV, read_csv)
        write_more(path, b"".join(lines[cut:]))
        same(store.read(str(path), Format.CSV, read_csv), read_csv(str(path)))
        resumed += store.stats.resumed
    assert resumed >= len(range(1, len(lines), 3)) // 4


def test_numbers_in_a_column_pandas_read_as_text_are_not_resumed(tmp_path: Path) -> None:
    """Cells of spaces are no value, yet pandas keeps the column as text, whose numbers a whole read then
    converts one by one: the column is not 'empty so far', and the file is read whole."""
    path = tmp_path / "log.csv"
    path.write_bytes(b"step,loss,pad\n" + b"".join(b"%d,%r,  \n" % (s, 1 / (1 + s)) for s in range(500)))
    backdate(path, OLD_NS)
    store = cache.ReadCache(str(tmp_path / "cache"))
    store.read(str(path), Format.CSV, read_csv)
    write_more(path, b"".join(b"%d,%r,%r\n" % (s, 1 / (1 + s), s / 7) for s in range(500, 600)))
    read = store.read(str(path), Format.CSV, read_csv)
    assert store.stats.resumed == 0 and [f.tag for f in read.fragments] == ["loss", "pad"]
    same(read, read_csv(str(path)))


def test_a_better_step_key_in_appended_jsonl_lines_is_read_whole(tmp_path: Path) -> None:
    """nanoGPT-style 'iter' lines, then lines that also carry 'step' (which ranks first): a whole read
    takes 'step' for the whole file, so the earlier lines lose their step; not resumable."""
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(b'{"iter": %d, "loss": %r}\n' % (s, 1 / (1 + s)) for s in range(500)))
    backdate(path, OLD_NS)
    store = cache.ReadCache(str(tmp_path / "cache"))
    store.read(str(path), Format.JSONL, read_jsonl)
    write_more(path, b"".join(b'{"iter": %d, "step": %d, "loss": 0.5}\n' % (s, s) for s in range(500, 600)))
    read = store.read(str(path), Format.JSONL, read_jsonl)
    assert store.stats.resumed == 0 and read.metadata["jsonl"]["step_key"] == "step"
    same(read, read_jsonl(str(path)))
