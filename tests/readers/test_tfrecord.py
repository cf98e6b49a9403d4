"""TFRecord framing: CRCs, damage, truncation at every byte, resynchronisation, resuming."""

from __future__ import annotations

import os
import struct

import google_crc32c
import numpy as np
import pytest
from factories import record_bytes, run_events, scalar_event
from hypothesis import given, settings
from hypothesis import strategies as st

from warmcheck.readers.crc import crc32c_many, masked_crc32c
from warmcheck.readers.tfrecord import DamageKind, TFRecordScanner, frame


def _file(n_steps: int = 20) -> bytes:
    return record_bytes(run_events(range(n_steps), {"train/loss": np.linspace(3, 1, n_steps),
                                                    "lr": np.linspace(0, 1e-3, n_steps)}))


def _offsets(data: bytes) -> list[int]:
    """Record offsets by the plain sequential definition of the format."""
    out, pos = [], 0
    while pos + 12 <= len(data):
        out.append(pos)
        pos += 16 + struct.unpack_from("<Q", data, pos)[0]
    return out


def test_masked_crc_matches_tensorboard_writer() -> None:
    data = record_bytes([scalar_event("a", 1, 2.0)])
    (length,) = struct.unpack_from("<Q", data, 0)
    assert masked_crc32c(data[:8]) == struct.unpack_from("<I", data, 8)[0]
    assert masked_crc32c(data[12 : 12 + length]) == struct.unpack_from("<I", data, 12 + length)[0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=40))
def test_vectorised_crc_equals_c_library(chunks: list[bytes]) -> None:
    # Equal lengths are common in real logs; repeat some chunks with one byte changed to exercise
    # the XOR-delta path, and keep odd lengths for the per-record path.
    chunks = chunks + [c[:-1] + bytes([c[-1] ^ 0x5A]) for c in chunks if c] * 3
    blob = b"".join(chunks)
    starts = np.cumsum([0] + [len(c) for c in chunks[:-1]]).astype(np.int64)
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    got = crc32c_many(np.frombuffer(blob, np.uint8), starts, lengths)
    assert got.tolist() == [google_crc32c.value(c) for c in chunks]


@pytest.mark.parametrize("max_len", [8, 40, 200, 300, 5000])
@pytest.mark.parametrize("seed", range(4))
def test_vectorised_crc_of_many_mixed_lengths_equals_c_library(max_len: int, seed: int) -> None:
    # Thousands of records of every length up to max_len, most sharing bytes (a tag), some random:
    # one right-aligned pass covers the short ones, whatever their lengths; long ones go to C.
    rng = np.random.default_rng(seed)
    prefix = rng.integers(0, 256, max_len, dtype=np.uint8).tobytes()
    chunks = []
    for _ in range(3000):
        length = int(rng.integers(0, max_len + 1))
        if rng.random() < 0.7:
            body = bytearray(prefix[:length])
            for at in rng.integers(0, max(length, 1), 3).tolist():
                if length:
                    body[at] = int(rng.integers(0, 256))
            chunks.append(bytes(body))
        else:
            chunks.append(rng.integers(0, 256, length, dtype=np.uint8).tobytes())
    gaps = rng.integers(0, 20, len(chunks))  # bytes between records (headers): never part of a CRC
    blob, starts = b"", []
    for c, g in zip(chunks, gaps.tolist(), strict=True):
        blob += rng.integers(0, 256, g, dtype=np.uint8).tobytes()
        starts.append(len(blob))
        blob += c
    got = crc32c_many(np.frombuffer(blob, np.uint8), np.array(starts, np.int64),
                      np.array([len(c) for c in chunks], np.int64))
    assert got.tolist() == [google_crc32c.value(c) for c in chunks]


def test_frame_finds_every_record() -> None:
    data = _file(50)
    framed = frame(data)
    assert framed.records == 101 and not framed.damage
    assert (framed.starts - 12).tolist() == _offsets(data)
    assert framed.indices.tolist() == list(range(101))
    assert framed.consumed == len(data)


@pytest.mark.parametrize("cut", ["header", "payload", "footer"])
def test_truncated_last_record_keeps_every_complete_one(cut: str) -> None:
    data = _file(10)
    last = _offsets(data)[-1]
    length = struct.unpack_from("<Q", data, last)[0]
    keep = {"header": last + 5, "payload": last + 12 + length // 2, "footer": last + 12 + length + 2}[cut]
    framed = frame(data[:keep])
    assert framed.records == len(_offsets(data)) - 1
    assert [(d.kind, d.offset, d.nbytes) for d in framed.damage] == [(DamageKind.TRUNCATED, last, keep - last)]


def test_truncation_at_every_byte_never_invents_or_loses_a_record() -> None:
    data = _file(4)
    offsets = _offsets(data) + [len(data)]
    for cut in range(len(data) + 1):
        framed = frame(data[:cut])
        complete = sum(1 for a, b in zip(offsets, offsets[1:], strict=False) if b <= cut)
        assert framed.records == complete, cut
        tail = cut - offsets[complete]
        assert sum(d.nbytes for d in framed.damage) == tail, cut


def test_live_file_waits_for_a_partial_record() -> None:
    data = _file(10)
    last = _offsets(data)[-1]
    framed = frame(data[: last + 7], final=False)
    assert not framed.damage
    assert framed.consumed == last


def test_data_crc_error_skips_one_record_and_keeps_the_rest() -> None:
    data = bytearray(_file(20))
    offsets = _offsets(bytes(data))
    bad = offsets[21]
    length = struct.unpack_from("<Q", data, bad)[0]
    data[bad + 12 + length // 2] ^= 0x10  # bit rot inside the payload
    framed = frame(bytes(data))
    assert framed.records == 41
    assert len(framed.starts) == 40
    assert [(d.kind, d.offset, d.record_index) for d in framed.damage] == [(DamageKind.DATA_CRC, bad, 21)]
    assert 21 not in framed.indices.tolist() and framed.indices.tolist()[-1] == 40


def test_length_crc_error_resynchronises() -> None:
    data = bytearray(_file(20))
    offsets = _offsets(bytes(data))
    bad = offsets[21]
    data[bad] ^= 0x01  # the length is now wrong and its CRC does not match
    framed = frame(bytes(data))
    assert len(framed.starts) == 40
    (d,) = framed.damage
    assert (d.kind, d.offset, d.nbytes) == (DamageKind.LENGTH_CRC, bad, offsets[22] - bad)


def test_huge_length_with_valid_crc_is_never_allocated() -> None:
    data = _file(5)
    header = struct.pack("<Q", 2**62)
    bogus = header + struct.pack("<I", masked_crc32c(header)) + b"x" * 20
    framed = frame(data + bogus)
    assert len(framed.starts) == 11
    assert [(d.kind, d.offset, d.length) for d in framed.damage] == [(DamageKind.HUGE_LENGTH, len(data), 2**62)]


def test_zero_tail_and_junk() -> None:
    data = _file(5)
    framed = frame(data + bytes(4096))
    assert [(d.kind, d.offset, d.nbytes) for d in framed.damage] == [(DamageKind.ZERO_TAIL, len(data), 4096)]
    junk = frame(b"step,loss\n0,1.0\n" * 20)
    assert junk.records == 0 and [d.kind for d in junk.damage] == [DamageKind.NOT_TFRECORD]
    assert frame(b"").records == 0 and not frame(b"").damage


def test_garbage_between_records_is_skipped_and_reported() -> None:
    data = _file(10)
    offsets = _offsets(data)
    cut = offsets[5]
    spliced = data[:cut] + os.urandom(0) + b"\x07" * 33 + data[cut:]
    framed = frame(spliced)
    assert len(framed.starts) == len(offsets)
    assert [(d.offset, d.nbytes) for d in framed.damage] == [(cut, 33)]


def test_scanner_resumes_from_offset_and_reads_only_new_bytes(tmp_path) -> None:
    path = tmp_path / "events.out.tfevents.1.h"
    data = _file(30)
    offsets = _offsets(data)
    path.write_bytes(data[: offsets[10] + 3])  # the writer is in the middle of record 10
    scanner = TFRecordScanner(str(path))
    first = [fr for _, fr in scanner.scan(final=False)]
    assert sum(f.records for f in first) == 10 and scanner.offset == offsets[10]
    path.write_bytes(data)  # the writer finished
    second = [fr for _, fr in scanner.scan(final=False)]
    assert sum(f.records for f in second) == len(offsets) - 10
    assert second[0].indices.tolist()[0] == 10
    assert scanner.offset == len(data)
    assert list(scanner.scan(final=True)) == []


@pytest.mark.parametrize("chunk", [64, 100, 257, 4096])
def test_small_chunks_give_the_same_records(tmp_path, chunk: int) -> None:
    data = bytearray(_file(40))
    offsets = _offsets(bytes(data))
    data[offsets[30] + 14] ^= 0xFF  # one data-CRC error somewhere in the middle
    path = tmp_path / "events.out.tfevents.2.h"
    path.write_bytes(bytes(data) + b"\x00" * 5)
    whole = frame(bytes(data) + b"\x00" * 5)
    got_starts, got_damage = [], []
    for _, fr in TFRecordScanner(str(path), chunk_size=chunk).scan():
        got_starts += (fr.base + fr.starts).tolist()
        got_damage += [(d.kind, d.offset) for d in fr.damage]
    assert got_starts == whole.starts.tolist()
    assert got_damage == [(d.kind, d.offset) for d in whole.damage]


def _damaged_file(tmp_path) -> str:
    data = bytearray(_file(3000))
    offsets = _offsets(bytes(data))
    data[offsets[1000] + 20] ^= 0xFF  # a data CRC
    data[offsets[4000] + 3] ^= 0x01  # a length CRC: resynchronised
    path = tmp_path / "events.out.tfevents.1.x"
    path.write_bytes(bytes(data[:-7]))  # and a truncated tail
    return str(path)


def _summary(chunks) -> list[tuple]:
    return [(len(data), fr.base, fr.consumed, fr.records, fr.starts.tolist(), fr.lengths.tolist(),
             fr.indices.tolist(), [(d.kind, d.offset, d.nbytes) for d in fr.damage]) for data, fr in chunks]


def test_prefetching_scan_yields_exactly_the_chunks_of_a_plain_scan(tmp_path) -> None:
    path = _damaged_file(tmp_path)
    plain = TFRecordScanner(path, chunk_size=8192)
    want = _summary(plain.scan())
    fetched = TFRecordScanner(path, chunk_size=8192)
    got = _summary(fetched.scan(prefetch=True))
    assert len(want) > 20 and got == want
    assert (fetched.offset, fetched.record_index) == (plain.offset, plain.record_index)
    kinds = {d[0] for c in want for d in c[7]}
    assert kinds == {DamageKind.DATA_CRC, DamageKind.LENGTH_CRC, DamageKind.TRUNCATED}


def test_prefetching_scan_passes_errors_on_and_closes_the_file_when_stopped(tmp_path, monkeypatch) -> None:
    import threading

    from warmcheck.readers import tfrecord

    path = _damaged_file(tmp_path)
    real_frame, calls, threads = tfrecord.frame, [], set()

    def failing_frame(*a, **k):
        calls.append(1)
        threads.add(threading.current_thread().name)
        if len(calls) == 5:
            raise OSError(5, "Input/output error")
        return real_frame(*a, **k)

    monkeypatch.setattr(tfrecord, "frame", failing_frame)
    seen = 0
    with pytest.raises(OSError, match="Input/output"):
        for _ in TFRecordScanner(path, chunk_size=8192).scan(prefetch=True):
            seen += 1
    assert seen == 4 and any(t.startswith("warmcheck-read") for t in threads)  # framed in the worker thread

    monkeypatch.setattr(tfrecord, "frame", real_frame)
    opened = []
    real_open = tfrecord.storage.open_binary

    def tracking_open(p):
        opened.append(real_open(p))
        return opened[-1]

    monkeypatch.setattr(tfrecord.storage, "open_binary", tracking_open)
    scan = TFRecordScanner(path, chunk_size=8192).scan(prefetch=True)
    next(scan), next(scan)
    scan.close()  # the caller stops early: the pending chunk is waited for, the file closed
    assert opened and opened[0].closed


def test_event_file_read_is_the_same_with_the_read_ahead_thread(tmp_path, monkeypatch) -> None:
    from warmcheck.readers import tfrecord
    from warmcheck.readers.tensorboard import EventFileReader

    path = _damaged_file(tmp_path)

    def read() -> tuple:
        reader = EventFileReader(path)
        reader.scanner.chunk_size = 8192
        got = reader.read()
        return ([(f.tag, f.steps.tolist(), f.values.tolist()) for f in got.fragments],
                [(f.code, f.message) for f in got.findings], got.info)

    threaded = read()
    monkeypatch.setattr(tfrecord.os, "cpu_count", lambda: 1)  # one CPU: no read-ahead thread
    assert read() == threaded
    assert len(threaded[0]) == 2 and len(threaded[1]) == 3
