"""Issue 10 items 1-2: zeros, impossible lengths and one long tag in an event file.

Every good point is kept, the damage is one WC004 naming its byte range, and no read is larger than
the scanner's bounded block (memory itself is measured by bench/hostile_bench.py, not here).
"""

from __future__ import annotations

import builtins
import io
import struct
from pathlib import Path
from typing import Any, BinaryIO

import google_crc32c
import numpy as np
import pytest
from factories import scalar_event
from hostile_inputs import BUILDERS, EVENT_LONG_TAG, EVENT_ZERO_TAIL
from tensorboard.summary.writer.record_writer import RecordWriter

import warmcheck.readers.tfrecord as tfrecord
from warmcheck.model import SourceRead
from warmcheck.readers._tags import LONG_TAG, unique_tags
from warmcheck.readers.crc import masked_crc32c
from warmcheck.readers.tensorboard import EventFileReader, read_event_file
from warmcheck.readers.tfrecord import READ_LIMIT


def _event(tag: str, step: int, value: float) -> bytes:
    return scalar_event(tag, step, value).SerializeToString()


def frame(payload: bytes) -> bytes:
    """One TFRecord around ``payload``, framed by tensorboard's own writer."""
    buf = io.BytesIO()
    RecordWriter(buf).write(payload)
    return buf.getvalue()

NAME = "events.out.tfevents.1700000000.host.1.0"
CHUNK = 64 << 10  # a small scanner chunk, so a few MiB of input is many chunks


def _points(steps: range, tag: str = "train/loss") -> bytes:
    return b"".join(frame(_event(tag, s, 1.0 / (s + 1))) for s in steps)


def _header(length: int) -> bytes:
    head = struct.pack("<Q", length)
    return head + struct.pack("<I", masked_crc32c(head))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of every ``read()`` the TFRecord scanner makes."""
    sizes: list[int] = []
    real_open = builtins.open

    class Spy:
        def __init__(self, f: BinaryIO) -> None:
            self.f = f

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def seek(self, *a: int) -> int:
            return self.f.seek(*a)

        def read(self, n: int = -1) -> bytes:
            data = self.f.read(n)
            sizes.append(len(data))
            return data

    monkeypatch.setattr(tfrecord.storage, "open_binary", lambda p: Spy(real_open(p, "rb")))
    return sizes


def _read(path: Path, chunk: int = CHUNK, final: bool = True) -> tuple[EventFileReader, SourceRead]:
    reader = EventFileReader(str(path))
    reader.scanner.chunk_size = chunk
    return reader, reader.read(final=final)


def _wc004(read: SourceRead) -> list[dict[str, Any]]:
    return [dict(f.details) for f in read.findings if f.code == "WC004"]


def _steps(read: SourceRead, tag: str = "train/loss") -> list[int]:
    return [s for f in read.fragments if f.tag == tag for s in f.steps.tolist()]


def test_zero_tail_builder_keeps_every_point_and_reports_the_range_once(tmp_path: Path) -> None:
    path = BUILDERS["event_zero_tail"].build(tmp_path, "small")
    read = read_event_file(str(path))
    assert sum(len(f) for f in read.fragments) == BUILDERS["event_zero_tail"].points["small"]
    good = path.stat().st_size - EVENT_ZERO_TAIL["small"]
    assert _wc004(read) == [{"offset": good, "bytes_skipped": EVENT_ZERO_TAIL["small"], "kind": "zero-tail"}]
    assert [f.code for f in read.findings] == ["WC004"]


@pytest.mark.parametrize("sparse", [True, False])
def test_zero_tail_is_read_in_bounded_blocks(tmp_path: Path, reads: list[int], sparse: bool) -> None:
    good = _points(range(300))
    zeros = 3 << 20
    path = tmp_path / NAME
    with open(path, "wb") as f:
        f.write(good)
        if sparse:
            f.truncate(len(good) + zeros)
        else:
            f.write(bytes(zeros))
    _, read = _read(path)
    assert _steps(read) == list(range(300))
    assert _wc004(read) == [{"offset": len(good), "bytes_skipped": zeros, "kind": "zero-tail"}]
    assert max(reads) <= CHUNK  # the reader used to double its block over the zeros


def test_zeros_between_records_are_one_range_and_the_records_after_them_kept(tmp_path: Path, reads: list[int]) -> None:
    before, after = _points(range(100)), _points(range(100, 250))
    # A record whose length is a multiple of 256 starts with a zero byte: resynchronising at the
    # first non-zero byte would miss it.
    tag = next(t for t in ("t" * n for n in range(100, 300)) if len(_event(t, 99, 7.0)) == 256)
    first_after = frame(_event(tag, 99, 7.0))
    assert len(first_after) - 16 == 256 and first_after[0] == 0
    zeros = 1 << 20
    path = tmp_path / NAME
    path.write_bytes(before + bytes(zeros) + first_after + after)
    _, read = _read(path)
    assert _steps(read) == list(range(250))
    assert [f.steps.tolist() for f in read.fragments if f.tag.startswith("ttt")] == [[99]]
    assert _wc004(read) == [{"offset": len(before), "bytes_skipped": zeros, "kind": "zero-run"}]
    assert max(reads) <= CHUNK


@pytest.mark.parametrize("claimed", [2**62, (1 << 30) + 1, 3 << 30])
def test_impossible_length_is_skipped_without_a_big_read(tmp_path: Path, reads: list[int], claimed: int) -> None:
    # A verified length larger than the file (or than any record): one WC004 from the header to the
    # next valid record, found across several MiB of garbage and zeros.
    before, after = _points(range(50)), _points(range(50, 120))
    junk = _header(claimed) + bytes(range(256)) * 4096 + bytes(2 << 20)
    path = tmp_path / NAME
    path.write_bytes(before + junk + after)
    _, read = _read(path)
    assert _steps(read) == list(range(120))
    details = _wc004(read)
    assert [(d["offset"], d["bytes_skipped"], d["kind"], d["length"]) for d in details] == [
        (len(before), len(junk), "huge-length", claimed)]
    assert max(reads) <= CHUNK


def test_impossible_length_at_the_end_of_a_sparse_file(tmp_path: Path, reads: list[int]) -> None:
    good = _points(range(80))
    path = tmp_path / NAME
    with open(path, "wb") as f:
        f.write(good + _header(2**62))
        f.truncate(len(good) + (5 << 20))
    _, read = _read(path)
    assert _steps(read) == list(range(80))
    assert [(d["offset"], d["bytes_skipped"], d["kind"]) for d in _wc004(read)] == [
        (len(good), 5 << 20, "huge-length")]
    assert max(reads) <= CHUNK


@pytest.mark.parametrize("start", [b"", _header(2**62)])
def test_a_large_file_without_a_single_record_is_not_an_event_file(tmp_path: Path, reads: list[int],
                                                                   start: bytes) -> None:
    data = start + np.random.default_rng(3).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    path = tmp_path / NAME
    path.write_bytes(data)
    _, read = _read(path)
    assert not read.fragments
    assert [(f.code, f.details["offset"], f.details["bytes_skipped"]) for f in read.findings] == [
        ("WC002", 0, len(data))]
    assert max(reads) <= CHUNK


def test_a_long_claimed_record_that_fits_is_checked_in_blocks(tmp_path: Path, reads: list[int]) -> None:
    # A verified length of 100 MiB over a sparse hole: possible, so it is CRC-checked block by block.
    # Its CRC fails, so its length is not trusted either: the records written inside the range it
    # claims are kept, and so are those after it.
    claimed = 100 << 20
    before, inside, after = _points(range(40)), _points(range(40, 60)), _points(range(60, 90))
    inside_at = len(before) + 12 + (1 << 20)
    inside_end = inside_at + len(inside)
    path = tmp_path / NAME
    with open(path, "wb") as f:
        f.write(before + _header(claimed))
        f.seek(inside_at)
        f.write(inside)
        f.seek(len(before) + 12 + claimed + 4)
        f.write(after)
    _, read = _read(path)
    assert _steps(read) == list(range(90))
    assert [(d["offset"], d["bytes_skipped"], d["kind"], d.get("record")) for d in _wc004(read)] == [
        (len(before), inside_at - len(before), "data-crc", 40),
        (inside_end, len(before) + 16 + claimed - inside_end, "zero-run", None)]
    assert max(reads) <= CHUNK


def test_a_valid_record_over_the_read_limit_is_verified_and_reported_not_held(tmp_path: Path, reads: list[int]) -> None:
    length = READ_LIMIT + (1 << 20)
    crc, block = 0, bytes(1 << 20)
    for _ in range(length >> 20):
        crc = google_crc32c.extend(crc, block)
    masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    before, after = _points(range(10)), _points(range(10, 30))
    path = tmp_path / NAME
    with open(path, "wb") as f:
        f.write(before + _header(length))
        f.seek(len(before) + 12 + length)
        f.write(struct.pack("<I", masked) + after)
    reader, read = _read(path)
    assert _steps(read) == list(range(30))
    assert [(d["offset"], d["bytes_skipped"], d["kind"], d["record"]) for d in _wc004(read)] == [
        (len(before), 16 + length, "oversized", 10)]
    assert (read.info.records, read.info.skipped, reader.scanner.record_index) == (31, 1, 31)
    assert max(reads) <= CHUNK


def test_a_record_longer_than_the_chunk_is_read_whole(tmp_path: Path) -> None:
    tag = "x" * (3 * CHUNK)
    data = _points(range(20)) + frame(_event(tag, 20, 2.5)) + _points(range(21, 40))
    path = tmp_path / NAME
    path.write_bytes(data)
    _, read = _read(path)
    assert not read.findings
    assert _steps(read) == [s for s in range(40) if s != 20]
    assert [(f.steps.tolist(), f.values.tolist()) for f in read.fragments if f.tag == tag] == [([20], [2.5])]


def test_live_zero_tail_waits_for_the_writer_then_reads_what_it_wrote(tmp_path: Path, reads: list[int]) -> None:
    good = _points(range(60))
    path = tmp_path / NAME
    with open(path, "wb") as f:
        f.write(good)
        f.truncate(len(good) + (2 << 20))  # preallocated, not written yet
    reader, first = _read(path, final=False)
    assert _steps(first) == list(range(60)) and not first.findings
    assert reader.scanner.offset == len(good)
    with open(path, "r+b") as f:  # the writer fills part of the preallocated space
        f.seek(len(good))
        f.write(_points(range(60, 100)))
    second = reader.read(final=False)
    assert _steps(second) == list(range(60, 100)) and not second.findings
    last = reader.read(final=True)
    assert not last.fragments
    assert [(d["offset"], d["kind"]) for d in _wc004(last)] == [(len(good) + len(_points(range(60, 100))), "zero-tail")]
    assert max(reads) <= CHUNK


def test_long_tag_builder_keeps_every_point(tmp_path: Path) -> None:
    path = BUILDERS["event_long_tag"].build(tmp_path, "small")
    read = read_event_file(str(path))
    steps, tag_bytes = EVENT_LONG_TAG["small"]
    assert sum(len(f) for f in read.fragments) == BUILDERS["event_long_tag"].points["small"]
    by_tag = {f.tag: f for f in read.fragments}
    assert by_tag["train/loss"].steps.tolist() == list(range(steps))
    (long_tag,) = [t for t in by_tag if len(t) == tag_bytes]
    assert long_tag.startswith("long/tt") and by_tag[long_tag].steps.tolist() == [steps]
    assert not read.findings


def test_unique_tags_is_exact_for_short_and_long_tags() -> None:
    rng = np.random.default_rng(7)
    names = [b"a", b"b" * 8, b"b" * 9, b"x" * LONG_TAG, b"x" * (LONG_TAG + 1), b"y" * (LONG_TAG + 1),
             b"L" * 70_000, b"L" * 69_999 + b"M", b""]
    pick = rng.integers(0, len(names), 3000)
    blob, pos, length = bytearray(), [], []
    for i in pick.tolist():
        blob += b"\x01\x02"  # bytes between tags, like the rest of a record
        pos.append(len(blob))
        length.append(len(names[i]))
        blob += names[i]
    padded = bytes(blob) + bytes(LONG_TAG + 16)
    keys, inverse = unique_tags(padded, np.array(pos, np.int64), np.array(length, np.int64))
    assert [keys[k] for k in inverse.tolist()] == [names[i] for i in pick.tolist()]
    assert len(keys) == len(set(keys)) == len(set(pick.tolist()))


@pytest.mark.parametrize("seed", range(6))
def test_tag_grouping_equals_numpy_unique_when_new_values_come_late(seed: int) -> None:
    # The grouping looks the values up among those of the first records and sorts the whole array
    # only when one is missing: both ways must give np.unique's first indices and groups exactly.
    from warmcheck.readers._tags import _SAMPLE, _group

    rng = np.random.default_rng(seed)
    for k, n in ((1, 5000), (5, 20_000), (3000, 8000), (40, _SAMPLE), (2, _SAMPLE + 1), (7, 100), (70, 300),
                 (9, 4 * _SAMPLE), (9, 4 * _SAMPLE + 1), (3, 90)):
        pool = rng.integers(0, 2**63, k).astype(np.uint64)
        h = pool[rng.integers(0, max(1, k // 2) if seed % 2 else k, n)]  # half the values only in the sample ...
        if seed % 2 and n >= 90:
            h[-5:] = pool[-1]  # ... and one that appears only at the end
        _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
        got_first, got_inverse = _group(h)
        assert got_first.tolist() == first.tolist() and got_inverse.tolist() == inverse.tolist()
