"""Streaming TFRecord framing: every CRC checked, damage skipped exactly, resumable from an offset.

A TFRecord is ``u64 length | u32 masked_crc32c(length) | data | u32 masked_crc32c(data)``.
TensorBoard's Python reader stops at the first bad CRC and silently drops the rest of the file;
its Rust reader does not check data CRCs by default. Here:

* every record's length CRC and data CRC are verified (a flipped bit never becomes a value);
* a bad data CRC skips that record only (its length was verified, so the next record is known);
* a bad length CRC resynchronises at the next offset whose length CRC *and* data CRC verify,
  reporting the bytes skipped;
* a length beyond the end of the data is never allocated; at end of file it is an incomplete
  tail (the writer was cut off) or, when valid records follow, damage;
* framing is vectorised: every offset whose 8 bytes could be a length and whose next 4 bytes are
  its masked CRC is a candidate record start, and the chain of records is followed through the
  candidates with numpy; a Python step handles only large records and damage.

:class:`TFRecordScanner` keeps the byte offset reached, so a live ``watch`` reads only new bytes.
"""

from __future__ import annotations

import enum
import errno
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar

import numpy as np
from numpy.typing import NDArray

from .. import storage
from .crc import crc32c, crc32c_extend, crc32c_many, mask, mask_many, masked_crc32c, position_tables

HEADER = 12  # u64 length + u32 masked crc of the length
FOOTER = 4  # u32 masked crc of the data
MAX_RECORD = 1 << 30  # no event record is a gigabyte; a larger length is damage
_CANDIDATE_LIMIT = 1 << 24  # lengths the vectorised framing considers (larger: Python step)
_CANDIDATE_SLICE = 1 << 20  # offsets examined at once for candidates (bounds the temporaries)
READ_LIMIT = 64 << 20  # larger records are CRC-checked in blocks, never held whole
_CRC_OF_8_ZEROS = crc32c(bytes(8))
_SEEK_DATA: int | None = getattr(os, "SEEK_DATA", None)

IntArray = NDArray[np.int64]


class DamageKind(str, enum.Enum):
    """What went wrong at a byte range."""

    LENGTH_CRC = "length-crc"  # header CRC mismatch; resynchronised after it
    DATA_CRC = "data-crc"  # data CRC mismatch; record skipped
    HUGE_LENGTH = "huge-length"  # length larger than the bytes that remain
    ZERO_TAIL = "zero-tail"  # the file ends in zero bytes (crash with delayed allocation)
    ZERO_RUN = "zero-run"  # zero bytes between records (preallocated space the writer skipped)
    OVERSIZED = "oversized"  # a record over READ_LIMIT whose CRCs verify: skipped, not decoded
    NOT_TFRECORD = "not-tfrecord"  # not a single valid record from offset 0
    TRUNCATED = "truncated"  # incomplete last record at end of file


@dataclass(frozen=True, slots=True)
class Damage:
    """A byte range that was skipped, in file offsets."""

    kind: DamageKind
    offset: int
    nbytes: int
    record_index: int | None = None
    length: int | None = None


@dataclass(slots=True)
class Framed:
    """Verified records of one buffer: payload ``starts``/``lengths`` index into the buffer."""

    starts: IntArray
    lengths: IntArray
    indices: IntArray  # record number in the file (0-based, damaged records counted)
    consumed: int  # bytes of the buffer that were framed or skipped
    records: int  # records framed, good or with a bad data CRC
    damage: list[Damage] = field(default_factory=list)
    base: int = 0  # file offset of the buffer's first byte


def frame(data: bytes, base: int = 0, first_index: int = 0, final: bool = True,
          more: bool = False) -> Framed:
    """Frame the records in ``data``, which starts at file offset ``base``.

    With ``final=False`` (a file still being written), an incomplete record at the end is left
    unconsumed and unreported, to be read again when more bytes arrive. ``more=True`` (implies
    not final): the file goes on past ``data``, so a record whose verified length runs past the
    end is left for the caller, who knows the file size, rather than resynchronised inside it.
    """
    final = final and not more
    buf = np.frombuffer(data, dtype=np.uint8)
    n = buf.shape[0]
    cand, cand_len = _candidates(data, buf)
    nxt = cand + HEADER + FOOTER + cand_len
    # consecutive[j]: candidate j's record ends exactly where candidate j+1 starts.
    consecutive = np.zeros(cand.shape[0], dtype=bool)
    if cand.shape[0] > 1:
        consecutive[:-1] = nxt[:-1] == cand[1:]
    breaks = np.flatnonzero(~consecutive)

    pieces: list[tuple[IntArray, IntArray]] = []
    damage: list[Damage] = []
    pos = 0
    while pos < n:
        i = int(np.searchsorted(cand, pos))
        if i < cand.shape[0] and cand[i] == pos:
            j = int(breaks[np.searchsorted(breaks, i)])  # last record of this chain
            end = int(nxt[j])
            if end > n:  # the last record is incomplete: let the Python step judge it
                j -= 1
                end = int(nxt[j]) if j >= i else pos
            if j >= i:
                pieces.append((cand[i : j + 1] + HEADER, cand_len[i : j + 1]))
                pos = end
                continue
        step = _python_step(data, buf, pos, base, cand, cand_len, final, more)
        if step.record is not None:
            pieces.append((np.array([pos + HEADER], np.int64), np.array([step.record], np.int64)))
        if step.damage is not None:
            damage.append(step.damage)
        if step.advance <= 0:
            break
        pos += step.advance

    starts = np.concatenate([p[0] for p in pieces]) if pieces else np.empty(0, np.int64)
    lengths = np.concatenate([p[1] for p in pieces]) if pieces else np.empty(0, np.int64)
    indices = first_index + np.arange(starts.shape[0], dtype=np.int64)
    # Data CRCs are checked for all framed records at once; failures are dropped and reported.
    ok = _data_crc_ok(data, buf, starts, lengths)
    for k in np.flatnonzero(~ok).tolist():
        damage.append(Damage(DamageKind.DATA_CRC, base + int(starts[k]) - HEADER,
                             HEADER + int(lengths[k]) + FOOTER, int(indices[k]), int(lengths[k])))
    damage.sort(key=lambda d: d.offset)
    if base == 0 and final and starts.shape[0] == 0 and damage and damage[0].offset == 0 \
            and damage[0].kind in (DamageKind.LENGTH_CRC, DamageKind.HUGE_LENGTH):
        damage[0] = Damage(DamageKind.NOT_TFRECORD, 0, damage[0].nbytes)
    return Framed(starts[ok], lengths[ok], indices[ok], pos, int(starts.shape[0]), damage, base)


def _candidates(data: bytes, buf: NDArray[np.uint8]) -> tuple[IntArray, IntArray]:
    """Offsets whose u64 is a plausible length and whose next u32 is its masked CRC32C."""
    n = buf.shape[0]
    if n < HEADER:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # An unaligned little-endian u64 at every byte offset, without copying.
    u64 = np.ndarray((n - HEADER + 1,), dtype="<u8", buffer=data, offset=0, strides=(1,))
    u32 = np.ndarray((n - 3,), dtype="<u4", buffer=data, offset=0, strides=(1,))
    # Below 2**24 only the three low bytes can be non-zero, and a zero byte adds nothing to the linear
    # part of a CRC, so two lookups (12 bits each) give the CRC of all eight bytes. In slices where
    # small values are dense: in zeros (a crashed writer's tail) every offset is a small u64, and the
    # temporaries of a whole chunk would be 30 times its size.
    low, high = _header_tables()
    small = u64 < _CANDIDATE_LIMIT
    step = _CANDIDATE_SLICE if np.count_nonzero(small) > (n >> 4) else small.shape[0]
    found, found_len = [], []
    for a in range(0, small.shape[0], step):
        cand = np.flatnonzero(small[a : a + step])
        if a:
            cand += a
        length = u64[cand]
        crc = low.take(length & np.uint64(0xFFF)) ^ high.take(length >> np.uint64(12))
        ok = mask_many(crc) == u32[cand + 8]
        found.append(cand[ok])
        found_len.append(length[ok])
    if len(found) == 1:
        return found[0], found_len[0].astype(np.int64)
    return np.concatenate(found), np.concatenate(found_len).astype(np.int64)


@functools.cache
def _header_tables() -> tuple[NDArray[np.uint32], NDArray[np.uint32]]:
    """CRC32C of an 8-byte little-endian length below 2**24, as ``low[v & 0xFFF] ^ high[v >> 12]``."""
    t = position_tables(8)  # t[d][b]: byte b, d bytes before the end (linear part)
    v = np.arange(4096)
    low = t[7][v & 0xFF] ^ t[6][v >> 8] ^ np.uint32(_CRC_OF_8_ZEROS)  # byte 0, low nibble of byte 1
    high = t[6][(v & 0xF) << 4] ^ t[5][v >> 4]  # high nibble of byte 1, byte 2
    return low.astype(np.uint32), high.astype(np.uint32)


def _data_crc_ok(data: bytes, buf: NDArray[np.uint8], starts: IntArray,
                 lengths: IntArray) -> NDArray[np.bool_]:
    if starts.shape[0] == 0:
        return np.ones(0, dtype=bool)
    stored = np.ndarray((buf.shape[0] - 3,), dtype="<u4", buffer=data, offset=0, strides=(1,))
    return mask_many(crc32c_many(buf, starts, lengths)) == stored[starts + lengths]


@dataclass(frozen=True, slots=True)
class _Step:
    advance: int  # bytes to move forward (0: stop here)
    record: int | None = None  # length of a record framed at this position
    damage: Damage | None = None


def _python_step(data: bytes, buf: NDArray[np.uint8], pos: int, base: int, cand: IntArray,
                 cand_len: IntArray, final: bool, more: bool = False) -> _Step:
    """Decide what the bytes at ``pos`` are when the vectorised chain cannot."""
    n = len(data)
    remaining = n - pos
    at = base + pos
    if remaining < HEADER:
        if not final:
            return _Step(0)
        kind = DamageKind.ZERO_TAIL if not buf[pos:].any() else DamageKind.TRUNCATED
        return _Step(remaining, damage=Damage(kind, at, remaining))
    length = int.from_bytes(data[pos : pos + 8], "little")
    header_ok = masked_crc32c(data[pos : pos + 8]) == int.from_bytes(data[pos + 8 : pos + 12], "little")
    if header_ok and length <= remaining - HEADER - FOOTER:
        return _Step(HEADER + length + FOOTER, record=length)  # data CRC checked with the rest
    if header_ok and more and length <= MAX_RECORD:
        return _Step(0)  # a record longer than this chunk: the scanner decides
    if not buf[pos : pos + 64].any() and not buf[pos:].any():  # the first test is cheap
        if not final:
            return _Step(0)  # zeros may be space the writer has not filled yet
        return _Step(remaining, damage=Damage(DamageKind.ZERO_TAIL, at, remaining))
    resync = _next_valid(data, pos + 1, cand, cand_len)
    if resync is not None:
        kind = DamageKind.LENGTH_CRC if not header_ok else DamageKind.HUGE_LENGTH
        return _Step(resync - pos, damage=Damage(kind, at, resync - pos, length=length))
    if not final:
        return _Step(0)  # may be a record still being written
    if header_ok and length <= MAX_RECORD:
        return _Step(remaining, damage=Damage(DamageKind.TRUNCATED, at, remaining, length=length))
    kind = DamageKind.HUGE_LENGTH if header_ok else DamageKind.LENGTH_CRC
    return _Step(remaining, damage=Damage(kind, at, remaining, length=length))


def _next_valid(data: bytes, start: int, cand: IntArray, cand_len: IntArray) -> int | None:
    """First candidate at or after ``start`` whose record fits and whose data CRC verifies."""
    n = len(data)
    for k in range(int(np.searchsorted(cand, start)), cand.shape[0]):
        s, length = int(cand[k]), int(cand_len[k])
        if s + HEADER + length + FOOTER > n:
            continue
        payload = data[s + HEADER : s + HEADER + length]
        stored = int.from_bytes(data[s + HEADER + length : s + HEADER + length + FOOTER], "little")
        if masked_crc32c(payload) == stored:
            return s
    return None


class TFRecordScanner:
    """Reads a TFRecord file incrementally from a byte offset, in bounded chunks.

    Each ``scan(final=...)`` yields ``(chunk_bytes, Framed)`` for the records appended since the
    last call, one bounded chunk at a time so memory stays near the chunk size. With
    ``final=False`` an incomplete record at the end is left for the next call; with ``final=True``
    it is reported as a truncated tail.

    Where a chunk cannot be framed from its start, the scanner looks at the file itself: a record
    longer than the chunk is read whole (up to ``READ_LIMIT``; longer ones are CRC-checked in
    blocks and skipped); zeros and garbage are skipped block by block (holes of a sparse file with
    ``SEEK_DATA``) up to the next valid record, as one damaged range yielded with empty bytes. No
    read is larger than ``max(chunk_size, READ_LIMIT)``, whatever a length field claims.
    """

    def __init__(self, path: str, offset: int = 0, record_index: int = 0,
                 chunk_size: int = 8 << 20) -> None:
        self.path = path
        self.offset = offset
        self.record_index = record_index
        self.chunk_size = chunk_size
        self.size = 0  # the file's length when the last scan started

    def scan(self, final: bool = True, prefetch: bool = False) -> Iterator[tuple[bytes, Framed]]:
        """Read from the current offset to the end of the file, advancing the offset.

        ``prefetch``: when more than one chunk remains, the next chunk is read and framed (its CRCs
        checked) in a worker thread while the caller decodes the current one. numpy releases the GIL in
        both, so on two cores the two halves of the work overlap; the chunks, their order and every
        offset are the same as without. The caller must not look at the offset before the scan ends.
        """
        with storage.open_binary(self.path) as f:
            size = self.size = f.seek(0, 2)
            chunks = self._chunks(f, size, final)
            if prefetch and size - self.offset > self.chunk_size and (os.cpu_count() or 1) > 1:
                chunks = _prefetched(chunks)
            yield from chunks

    def _chunks(self, f: BinaryIO, size: int, final: bool) -> Iterator[tuple[bytes, Framed]]:
        want = self.chunk_size
        while self.offset < size:
            f.seek(self.offset)
            data = f.read(min(want, size - self.offset))
            if len(data) < min(want, size - self.offset):
                size = self.offset + len(data)  # the file shrank while being read
            at_end = self.offset + len(data) >= size
            framed = frame(data, self.offset, self.record_index, final=final and at_end,
                           more=not at_end)
            want = self.chunk_size
            if framed.consumed == 0 and not at_end:
                stuck = self._unstick(f, size, final)
                if stuck is None:
                    break  # the writer may still fill these bytes: wait for it
                if isinstance(stuck, int):
                    want = stuck  # one record longer than the chunk: read it whole
                    continue
                framed, data = stuck, b""
            self.offset += framed.consumed
            self.record_index += framed.records
            yield data, framed
            if at_end:
                break

    def _unstick(self, f: BinaryIO, size: int, final: bool) -> int | Framed | None:
        """What lies at ``self.offset``, where a chunk could not be framed: the chunk size that holds
        one long record, a skipped stretch (as a :class:`Framed` without records to decode), or
        None to wait for the writer."""
        at = self.offset
        f.seek(at)
        head = f.read(HEADER)
        length = int.from_bytes(head[:8], "little")
        header_ok = len(head) == HEADER and masked_crc32c(head[:8]) == int.from_bytes(head[8:], "little")
        if header_ok and length <= MAX_RECORD:
            if at + HEADER + length + FOOTER <= size:
                if HEADER + length + FOOTER <= READ_LIMIT:
                    return HEADER + length + FOOTER
                return self._stream_record(f, length, size, final)
            if not final:
                return None  # a record still being written
        resync, nonzero = _resync(f, at, size, self.chunk_size)
        if resync is None and not final:
            return None
        end = size if resync is None else resync
        if nonzero >= end:
            kind = DamageKind.ZERO_TAIL if resync is None else DamageKind.ZERO_RUN
        elif header_ok:
            kind = DamageKind.TRUNCATED if resync is None and length <= MAX_RECORD else DamageKind.HUGE_LENGTH
        else:
            kind = DamageKind.LENGTH_CRC
        if at == 0 and resync is None and kind in (DamageKind.LENGTH_CRC, DamageKind.HUGE_LENGTH):
            kind = DamageKind.NOT_TFRECORD  # not a single valid record, as frame() says
        damage = Damage(kind, at, end - at, length=length if header_ok else None)
        return _skipped(at, end - at, 0, damage)

    def _stream_record(self, f: BinaryIO, length: int, size: int, final: bool) -> Framed | None:
        """Skip a record too long to hold: its data CRC checked block by block. If it does not
        match, the length is not trusted either: reading resumes at the next valid record."""
        at = self.offset
        f.seek(at + HEADER)
        crc, left = 0, length
        while left:
            block = f.read(min(self.chunk_size, left))
            if not block:
                break
            crc = crc32c_extend(crc, block)
            left -= len(block)
        nbytes = HEADER + length + FOOTER
        if not left and mask(crc) == int.from_bytes(f.read(FOOTER), "little"):
            return _skipped(at, nbytes, 1, Damage(DamageKind.OVERSIZED, at, nbytes, self.record_index, length))
        resync, _ = _resync(f, at + 1, size, self.chunk_size)
        if resync is None and not final:
            return None
        nbytes = (size if resync is None else resync) - at
        return _skipped(at, nbytes, 1, Damage(DamageKind.DATA_CRC, at, nbytes, self.record_index, length))


_T = TypeVar("_T")


def _prefetched(items: Iterator[_T]) -> Iterator[_T]:
    """``items``, each next one produced in a worker thread while the caller works on the current one.

    An exception of ``items`` reaches the caller at the item it replaced; when the caller stops early,
    the pending item is waited for and ``items`` closed.
    """
    from concurrent.futures import ThreadPoolExecutor

    end = object()
    with ThreadPoolExecutor(1, thread_name_prefix="warmcheck-read") as pool:
        pending = pool.submit(next, items, end)
        try:
            while True:
                item = pending.result()
                if item is end:
                    return
                pending = pool.submit(next, items, end)
                yield item  # type: ignore[misc]
        finally:
            try:
                pending.result()
            except BaseException:  # noqa: BLE001 - the caller's own exception is the one that matters
                pass
            items.close()  # type: ignore[attr-defined]


def _skipped(at: int, nbytes: int, records: int, damage: Damage) -> Framed:
    empty = np.empty(0, np.int64)
    return Framed(empty, empty, empty, nbytes, records, [damage], at)


def _resync(f: BinaryIO, start: int, size: int, block: int) -> tuple[int | None, int]:
    """The first valid record at or after ``start`` (None: none before ``size``), and the first
    non-zero byte from ``start`` (``size`` if none), reading ``block`` bytes at a time."""
    block = max(block, 64)
    pos, first_nonzero = start, -1
    while pos < size:
        nonzero = _next_nonzero(f, pos, size, block)
        first_nonzero = nonzero if first_nonzero < 0 else first_nonzero
        if nonzero >= size:
            break
        # A record can start with up to 8 zero bytes (a length that is a multiple of 256, or 0).
        at = max(pos, nonzero - 8)
        f.seek(at)
        data = f.read(min(block, size - at))
        found = _first_valid(f, data, at, size)
        if found is not None:
            return found, first_nonzero
        if at + len(data) >= size or not data:
            break
        pos = at + len(data) - (HEADER - 1)  # every offset gets its 12 header bytes
    return None, (size if first_nonzero < 0 else first_nonzero)


def _next_nonzero(f: BinaryIO, pos: int, size: int, block: int) -> int:
    """Offset of the first non-zero byte at or after ``pos`` (``size`` if none), in bounded reads;
    the holes of a sparse file are skipped without reading them."""
    while pos < size:
        if _SEEK_DATA is not None:
            try:
                pos = f.seek(pos, _SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    return size  # nothing but a hole after ``pos``
                f.seek(pos)  # no SEEK_DATA on this file system: read the bytes
            except ValueError:
                f.seek(pos)
        else:
            f.seek(pos)
        data = f.read(min(block, size - pos)) if pos < size else b""
        if not data:
            return size
        buf = np.frombuffer(data, np.uint8)
        if buf.any():
            return pos + int(np.argmax(buf != 0))
        pos += len(data)
    return size


def _first_valid(f: BinaryIO, data: bytes, at: int, size: int) -> int | None:
    """File offset of the first candidate in ``data`` (read at ``at``) that is a whole valid record."""
    cand, cand_len = _candidates(data, np.frombuffer(data, np.uint8))
    for c, length in zip(cand.tolist(), cand_len.tolist(), strict=True):
        end = c + HEADER + length + FOOTER
        if at + end > size:
            continue
        if end <= len(data):
            payload, stored = data[c + HEADER : end - FOOTER], data[end - FOOTER : end]
        else:  # the record goes on past this block (lengths here are below 16 MiB)
            f.seek(at + c + HEADER)
            rest = f.read(length + FOOTER)
            payload, stored = rest[:length], rest[length:]
        if masked_crc32c(payload) == int.from_bytes(stored, "little"):
            return at + c
    return None
