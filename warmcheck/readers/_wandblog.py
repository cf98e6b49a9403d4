"""The framing of a W&B run file (``run-<id>.wandb``): a LevelDB-style log, read without wandb.

Layout (wandb-core ``pkg/leveldb``, formerly ``wandb/sdk/internal/datastore.py``): the file starts
with a 7-byte W&B header (``:W&B``, magic ``0xBEE1`` little-endian, version 0) and is cut into
32 KiB blocks counted from byte 0 (so the first block holds 7 bytes less). A block holds chunks, each
``crc32: u32 LE | length: u16 LE | type: u8 | payload``; a chunk never crosses a block end, and a
block end closer than 7 bytes is zero padding. A record is one FULL chunk or FIRST, MIDDLE..., LAST.
The checksum is the standard (IEEE, ``zlib.crc32``) CRC-32 of the type byte and the payload,
unmasked: W&B's variant of LevelDB, which uses masked CRC-32C.

:class:`LogScanner` yields each complete record's payload with its offset and reports damage as
data: a chunk whose checksum or type is wrong, one that claims to cross its block end, a zeroed
block, pieces of a record whose start was lost. After a bad chunk the scan goes on at the end the
chunk claims if a valid chunk starts there (a flipped payload byte), else at the next block (a
flipped length); consecutive bad stretches form one damage region. The end of the file cut
mid-chunk or mid-record is *truncated*: a final read reports it, a live read (``final=False``)
stops before it and resumes there at the next call. The scanner is resumable: ``offset`` is always
the end of the last complete record (or of the last damage region reported).
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

BLOCK = 32768
CHUNK_HEADER = 7
HEADER = b":W&B\xe1\xbe"  # ident + magic (0xBEE1 little-endian); the version byte follows
HEADER_LEN = 7
VERSION = 0
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_PIECE_BLOCKS = 128  # 4 MiB read at a time, whole blocks
_CHUNK = struct.Struct("<IHB")


class DamageKind(str, enum.Enum):
    """What was wrong with a stretch of the file."""

    BAD_CHUNK = "bad-chunk"  # checksum or chunk type wrong, or a chunk crossing its block end
    ZEROED = "zeroed"  # a zeroed block where chunks were expected
    ORPHAN = "orphan"  # chunks continuing a record whose first chunk was lost
    UNFINISHED = "unfinished"  # a record whose last chunk never came (another record started)
    TRUNCATED = "truncated"  # the file ends mid-chunk or mid-record


@dataclass(frozen=True, slots=True)
class Damage:
    """A damaged stretch: ``nbytes`` from ``offset``; ``record`` is the index the next record gets."""

    kind: DamageKind
    offset: int
    nbytes: int
    record: int


@dataclass(frozen=True, slots=True)
class Record:
    """One complete record: its payload, the offset of its first chunk, its index in the file."""

    offset: int
    payload: bytes
    index: int


def check_header(head: bytes) -> str | None:
    """Why ``head`` (the file's first bytes) is not a W&B run file header, or ``None`` if it is.

    A file shorter than the header passes when its bytes are the header's beginning (being written).
    """
    n = min(len(head), HEADER_LEN)
    if head[:min(n, len(HEADER))] != HEADER[:min(n, len(HEADER))]:
        return f"no W&B header (first bytes {head[:HEADER_LEN]!r}, expected b':W&B' and magic 0xBEE1)"
    if n == HEADER_LEN and head[6] != VERSION:
        return f"W&B run file version {head[6]} (this reader knows version {VERSION})"
    return None


class LogScanner:
    """Resumable scan of a W&B run file's records (see the module docstring)."""

    def __init__(self) -> None:
        self.offset = HEADER_LEN  # end of the last complete record (or damage region) consumed
        self.records = 0  # complete records yielded so far
        self.damaged = 0  # damage regions reported so far

    def scan(self, fh: BinaryIO, size: int, *, final: bool = True) -> Iterator[Record | Damage]:
        """Records and damage from ``offset`` to ``size``; advances ``offset`` as it goes."""
        pos = self.offset
        base, buf = pos, b""
        pending: list[bytes] | None = None  # payloads of a record being assembled
        pending_at = 0
        bad_at: int | None = None  # start of the damage region being crossed
        bad_kind = DamageKind.BAD_CHUNK
        while True:
            left = BLOCK - pos % BLOCK
            if left < CHUNK_HEADER:  # zero padding up to the block end
                pos += left
                continue
            if pos + CHUNK_HEADER > size:
                break
            if pos + CHUNK_HEADER > base + len(buf):
                base = pos
                fh.seek(pos)
                buf = fh.read(min(size, (pos // BLOCK + _PIECE_BLOCKS) * BLOCK) - pos)
                if pos + CHUNK_HEADER > base + len(buf):  # the file shrank under us
                    size = base + len(buf)
                    break
            i = pos - base
            crc, length, kind = _CHUNK.unpack_from(buf, i)
            end = pos + CHUNK_HEADER + length
            if crc == 0 and length == 0 and kind == 0:  # zeroed (preallocated or lost) block
                if bad_at is None:
                    bad_at, bad_kind = pos, DamageKind.ZEROED
                if pending is not None:  # the record being assembled is lost with the block
                    bad_at, pending = min(bad_at, pending_at), None
                pos += left
                continue
            if length > left - CHUNK_HEADER:
                ok = False
            elif end > size:  # the chunk's bytes are not all there: the writer is mid-write
                break
            else:
                ok = 1 <= kind <= 4 and zlib.crc32(buf[i + 6:end - base]) == crc
            if not ok:
                if bad_at is None:
                    bad_at, bad_kind = pos, DamageKind.BAD_CHUNK
                pos = end if length <= left - CHUNK_HEADER and self._chunk_ok(buf, base, end, size) else pos + left
                if pending is not None:
                    bad_at, pending = min(bad_at, pending_at), None
                continue
            payload = buf[i + CHUNK_HEADER:end - base]
            if kind in (FULL, FIRST):
                if pending is not None:  # the record before never got its last chunk
                    if bad_at is None:
                        bad_kind = DamageKind.UNFINISHED
                    bad_at, pending = pending_at if bad_at is None else min(bad_at, pending_at), None
                if bad_at is not None:
                    yield self._damage(bad_kind, bad_at, pos)
                    bad_at = None
                if kind == FULL:
                    pos = end
                    yield self._record(pos, Record(pos - CHUNK_HEADER - length, payload, self.records))
                else:
                    pending, pending_at, pos = [payload], pos, end
                continue
            pos = end
            if pending is None:  # a middle or last chunk of a record whose start was lost
                if bad_at is None:
                    bad_at, bad_kind = pos - CHUNK_HEADER - length, DamageKind.ORPHAN
                continue
            pending.append(payload)
            if kind == LAST:
                record = Record(pending_at, b"".join(pending), self.records)
                pending = None
                yield self._record(pos, record)
        # The end of the data: a damage region still open, then a record or chunk cut short.
        start = pending_at if pending is not None else pos
        if bad_at is not None and (final or bad_at < start):
            yield self._damage(bad_kind, bad_at, start if start < size else size)
        if final and start < size and _nonzero(fh, start, size):
            yield self._damage(DamageKind.TRUNCATED, start, size)

    def _chunk_ok(self, buf: bytes, base: int, at: int, size: int) -> bool:
        """Whether a valid chunk (or the block's zero padding, or the end of the data) is at ``at``."""
        left = BLOCK - at % BLOCK
        if left < CHUNK_HEADER or at >= size:
            return True
        i = at - base
        if i + CHUNK_HEADER > len(buf):
            return False
        crc, length, kind = _CHUNK.unpack_from(buf, i)
        end = i + CHUNK_HEADER + length
        return 1 <= kind <= 4 and length <= left - CHUNK_HEADER and end <= len(buf) and \
            zlib.crc32(buf[i + 6:end]) == crc

    def _record(self, end: int, record: Record) -> Record:
        self.offset = end
        self.records += 1
        return record

    def _damage(self, kind: DamageKind, start: int, end: int) -> Damage:
        self.offset = max(self.offset, end)
        self.damaged += 1
        return Damage(kind, start, end - start, self.records)


def _nonzero(fh: BinaryIO, start: int, size: int) -> bool:
    """Whether the bytes from ``start`` to ``size`` are not all zero (zeros: an unused block end)."""
    fh.seek(start)
    while start < size:
        piece = fh.read(min(1 << 20, size - start))
        if not piece:
            return False
        if piece.strip(b"\x00"):
            return True
        start += len(piece)
    return False
