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
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .crc import crc32c, crc32c_many, mask_many, masked_crc32c, position_tables

HEADER = 12  # u64 length + u32 masked crc of the length
FOOTER = 4  # u32 masked crc of the data
MAX_RECORD = 1 << 30  # no event record is a gigabyte; a larger length is damage
_CANDIDATE_LIMIT = 1 << 24  # lengths the vectorised framing considers (larger: Python step)
_CRC_OF_8_ZEROS = crc32c(bytes(8))

IntArray = NDArray[np.int64]


class DamageKind(str, enum.Enum):
    """What went wrong at a byte range."""

    LENGTH_CRC = "length-crc"  # header CRC mismatch; resynchronised after it
    DATA_CRC = "data-crc"  # data CRC mismatch; record skipped
    HUGE_LENGTH = "huge-length"  # length larger than the bytes that remain
    ZERO_TAIL = "zero-tail"  # the file ends in zero bytes (crash with delayed allocation)
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


def frame(data: bytes, base: int = 0, first_index: int = 0, final: bool = True) -> Framed:
    """Frame the records in ``data``, which starts at file offset ``base``.

    With ``final=False`` (a file still being written), an incomplete record at the end is left
    unconsumed and unreported, to be read again when more bytes arrive.
    """
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
        step = _python_step(data, buf, pos, base, cand, cand_len, final)
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
    cand = np.flatnonzero(u64 < _CANDIDATE_LIMIT).astype(np.int64)
    # Below 2**24 only the three low bytes can be non-zero, and a zero byte adds nothing to the
    # linear part of a CRC, so three table lookups give the CRC of all eight bytes.
    tables = position_tables(8)
    crc = np.full(cand.shape[0], _CRC_OF_8_ZEROS, dtype=np.uint32)
    for j in range(3):
        crc ^= tables[7 - j][buf[cand + j]]
    u32 = np.ndarray((n - 3,), dtype="<u4", buffer=data, offset=0, strides=(1,))
    cand = cand[mask_many(crc) == u32[cand + 8]]
    return cand, u64[cand].astype(np.int64)


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
                 cand_len: IntArray, final: bool) -> _Step:
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
    if not buf[pos:].any():
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
    """

    def __init__(self, path: str, offset: int = 0, record_index: int = 0,
                 chunk_size: int = 8 << 20) -> None:
        self.path = path
        self.offset = offset
        self.record_index = record_index
        self.chunk_size = chunk_size

    def scan(self, final: bool = True) -> Iterator[tuple[bytes, Framed]]:
        """Read from the current offset to the end of the file, advancing the offset."""
        with open(self.path, "rb") as f:
            size = f.seek(0, 2)
            want = self.chunk_size
            while self.offset < size:
                f.seek(self.offset)
                data = f.read(min(want, size - self.offset))
                at_end = self.offset + len(data) >= size
                framed = frame(data, self.offset, self.record_index, final=final and at_end)
                self.offset += framed.consumed
                self.record_index += framed.records
                yield data, framed
                if at_end:
                    break
                # Nothing consumed: one record (or a damaged stretch) is larger than the chunk.
                want = want * 2 if framed.consumed == 0 else self.chunk_size
