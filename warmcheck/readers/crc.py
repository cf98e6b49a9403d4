"""CRC32C (Castagnoli) as TFRecord uses it: one C call per buffer, or vectorised over many records.

TFRecord checks two CRCs per record. Calling a C CRC function once per record costs about half a
microsecond in Python call overhead alone, more than parsing the record. CRC is affine over GF(2):
``crc(m) = lin(m) ^ crc(bytes(len(m)))``, where ``lin`` is a XOR of per-position table lookups and a
zero byte adds nothing to it. So :func:`crc32c_many` right-aligns records in zero-padded rows (sorted
by length, so that a block of rows mostly shares one length) and, since records of one tag differ only in
a few bytes (wall time, step, value), computes ``lin`` as the first row's plus a table lookup per varying
byte column: a million records in a few dozen numpy operations, exactly the values the C library gives
(tests compare them).
"""

from __future__ import annotations

import functools

import numpy as np
from google_crc32c import extend as _crc32c_extend
from google_crc32c import value as _crc32c_c
from numpy.typing import NDArray

_POLY = 0x82F63B78
_MASK_DELTA = 0xA282EAD8
_MAX_VECTOR_LEN = 256  # longer records are checked with one C call each (their call costs less than their bytes)
_BLOCK_ROWS = 8192
_MIN_VECTOR_ROWS = 64  # below this, numpy's per-call overhead costs more than one C call per record

U32 = NDArray[np.uint32]


def crc32c(data: bytes) -> int:
    """CRC32C of ``data`` (hardware-accelerated C implementation)."""
    return int(_crc32c_c(data))


def crc32c_extend(crc: int, data: bytes) -> int:
    """CRC32C of the bytes seen so far (``crc``) followed by ``data``: a CRC computed in pieces."""
    return int(_crc32c_extend(crc, data))


def mask(crc: int) -> int:
    """TFRecord's masked CRC: rotate right by 15 and add a constant."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def mask_many(crc: U32) -> U32:
    """Vectorised :func:`mask`."""
    c = crc.astype(np.uint32)
    return ((c >> np.uint32(15)) | (c << np.uint32(17))) + np.uint32(_MASK_DELTA)


def masked_crc32c(data: bytes) -> int:
    """Masked CRC32C of ``data`` as stored in a TFRecord header or footer."""
    return mask(crc32c(data))


def _byte_table() -> U32:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table[i] = c
    return table


_T0 = _byte_table()
_tables: U32 = _T0[None, :].copy()  # _tables[d][b]: contribution of byte b, d bytes before the end


def position_tables(length: int) -> U32:
    """Tables for every distance from the end up to ``length - 1`` (grown on demand)."""
    global _tables
    have = _tables.shape[0]
    if have < length:
        grown = np.empty((length, 256), dtype=np.uint32)
        grown[:have] = _tables
        c = _tables[have - 1]
        for d in range(have, length):
            c = _T0[c & 0xFF] ^ (c >> np.uint32(8))
            grown[d] = c
        _tables = grown
    return _tables


def crc32c_many(buf: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64]) -> U32:
    """CRC32C of ``buf[starts[i] : starts[i] + lengths[i]]`` for every i.

    Records of up to ``_MAX_VECTOR_LEN`` bytes are taken in blocks of rows sorted by length, each block
    right-aligned in rows as wide as its longest record and zero-padded on the left: a zero byte adds
    nothing to the linear part of a CRC, so ``crc(m) = lin(row) ^ crc(bytes(len(m)))`` with one table
    per column for the whole block, whatever the lengths in it. Longer records (and the few that start
    in the buffer's first ``_MAX_VECTOR_LEN`` bytes) take one C call each.
    """
    n = starts.shape[0]
    out = np.empty(n, dtype=np.uint32)
    if n == 0:
        return out
    ends = starts + lengths
    vector = (lengths <= _MAX_VECTOR_LEN) & (ends >= _MAX_VECTOR_LEN)
    rows = np.flatnonzero(vector) if n >= _MIN_VECTOR_ROWS else np.empty(0, np.int64)
    if rows.shape[0] < _MIN_VECTOR_ROWS:
        rows = np.empty(0, np.int64)
        vector[:] = False
    if rows.shape[0]:
        # lengths up to 256 as uint16: numpy sorts those with a radix sort, 3 times faster than int64
        if rows.shape[0] == n:
            rows = np.argsort(lengths.astype(np.uint16), kind="stable")
        else:
            rows = rows[np.argsort(lengths[rows].astype(np.uint16), kind="stable")]
        for a in range(0, rows.shape[0], _BLOCK_ROWS):
            block = rows[a : a + _BLOCK_ROWS]
            out[block] = _crc_right_aligned(buf, ends[block], lengths[block])
    for i in np.flatnonzero(~vector).tolist():
        s = int(starts[i])
        out[i] = _crc32c_c(buf[s : s + int(lengths[i])].tobytes())
    return out


@functools.cache
def _zero_crcs() -> U32:
    """crc32c(bytes(k)) for every k up to _MAX_VECTOR_LEN."""
    return np.array([_crc32c_c(bytes(k)) for k in range(_MAX_VECTOR_LEN + 1)], dtype=np.uint32)


def _crc_right_aligned(buf: NDArray[np.uint8], ends: NDArray[np.int64], lengths: NDArray[np.int64]) -> U32:
    """CRCs of records ending at ``ends``, lengths sorted (each at most ``_MAX_VECTOR_LEN`` bytes, and
    ``ends >= _MAX_VECTOR_LEN``)."""
    zero_crc = _zero_crcs()
    width = int(lengths[-1])
    if width == 0:
        return np.full(ends.shape[0], zero_crc[0], dtype=np.uint32)
    # A zero-copy (n, width) window view: fancy indexing its rows gathers n x width bytes without an
    # int64 index matrix. The bytes left of a shorter record (its header) are zeroed.
    windows = np.ndarray((buf.shape[0] - width + 1, width), np.uint8, buffer=buf, strides=(1, 1))
    delta = windows[ends - width]
    if lengths[0] != width:
        delta &= _keep_masks(width)[width - lengths]
    first = delta[0].copy()
    # lin(row) of the first row; every other row is lin(first) ^ lin(row ^ first) (lin is linear).
    base = np.uint32(_crc32c_c(first.tobytes())) ^ zero_crc[width]
    delta ^= first
    varying = np.flatnonzero(np.bitwise_or.reduce(delta, axis=0))
    columns = delta.T[varying].copy()  # transposed: each lookup reads contiguous bytes
    acc = np.full(columns.shape[1], base, dtype=np.uint32)
    tables = position_tables(width)
    for k, j in enumerate(varying.tolist()):
        acc ^= tables[width - 1 - j].take(columns[k])  # take: twice as fast as [] for uint8 indices
    return acc ^ zero_crc[lengths]


@functools.cache
def _keep_masks(width: int) -> NDArray[np.uint8]:
    """Row ``p``: 0x00 for the first ``p`` bytes of a ``width``-byte row, 0xFF for the rest."""
    col = np.arange(width)
    return np.where(col[None, :] >= np.arange(width + 1)[:, None], 0xFF, 0).astype(np.uint8)
