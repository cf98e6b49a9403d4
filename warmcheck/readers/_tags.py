"""Distinct tags of a chunk's records, grouped with numpy: linear in the tag bytes, exact.

The buffer holds the chunk plus at least ``LONG_TAG + 16`` zero bytes, so the u64 word reads of a
tag up to ``LONG_TAG`` bytes long never leave it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
LONG_TAG = 256  # longer tags (none in real logs) are grouped as bytes in a dict

_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], dtype=np.uint64)
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)
_clip = (getattr(np, "_core", None) or np.core).umath.clip  # the ufunc np.clip calls, without its wrappers (~5 us)


def unique_tags(padded: bytes, pos: IntArray, length: IntArray) -> tuple[list[bytes], IntArray]:
    """Distinct tag byte strings and, per record, the index of its tag (exact, not hashed).

    Tags up to ``LONG_TAG`` bytes are grouped with numpy; longer ones (none in real logs) as
    bytes in a dict, so one long tag costs its own length, not its length times every record.
    """
    long_rows = np.flatnonzero(length > LONG_TAG)
    if long_rows.shape[0] == 0:
        return _unique_short_tags(padded, pos, length)
    short = np.flatnonzero(length <= LONG_TAG)
    keys, short_inverse = _unique_short_tags(padded, pos[short], length[short])
    inverse = np.empty(pos.shape[0], np.int64)
    inverse[short] = short_inverse
    index = {k: i for i, k in enumerate(keys)}
    for i in long_rows.tolist():
        key = padded[int(pos[i]) : int(pos[i] + length[i])]
        inverse[i] = index.setdefault(key, len(keys))
        if inverse[i] == len(keys):
            keys.append(key)
    return keys, inverse


def _unique_short_tags(padded: bytes, pos: IntArray, length: IntArray) -> tuple[list[bytes], IntArray]:
    """:func:`unique_tags` for tags of at most ``LONG_TAG`` bytes (the buffer is padded past their words)."""
    if pos.shape[0] == 0:
        return [], np.empty(0, np.int64)
    # Tags are compared as little-endian u64 words (bytes past the tag masked off): a hash of the
    # words groups records, then every word is checked against the group's first member, so a
    # hash collision can only cost speed, never merge two tags. Words of tags up to 32 bytes are
    # kept; longer ones (at most 32 words) are computed again rather than held all at once.
    u64 = np.ndarray((len(padded) - 7,), "<u8", buffer=padded, strides=(1,))
    n_words = (int(length.max()) + 7) // 8

    def word(k: int) -> NDArray[np.uint64]:
        return u64[pos + 8 * k] & _BYTE_MASKS[_clip(length - 8 * k, 0, 8)]

    kept = [word(k) for k in range(n_words)] if n_words <= 4 else None  # the common tags
    h = length.astype(np.uint64)
    for k in range(n_words):
        h = h * _HASH_MUL + (kept[k] if kept is not None else word(k))
    first, inverse = _group(h)
    same = length[first][inverse] == length
    for k in range(n_words):
        w = kept[k] if kept is not None else word(k)
        same &= w == w[first][inverse]
    keys = [padded[int(pos[i]) : int(pos[i] + length[i])] for i in first.tolist()]
    if not same.all():  # a collision: resolve the few records involved exactly
        index = {k: i for i, k in enumerate(keys)}
        for i in np.flatnonzero(~same).tolist():
            key = padded[int(pos[i]) : int(pos[i] + length[i])]
            inverse[i] = index.setdefault(key, len(keys))
            if inverse[i] == len(keys):
                keys.append(key)
    return keys, inverse


_SAMPLE = 1024
_SMALL_SAMPLE = 64  # for small chunks: sorting what the sample misses costs little there


def _group(h: NDArray[np.uint64]) -> tuple[IntArray, IntArray]:
    """``np.unique(h, return_index=True, return_inverse=True)`` without the values: the first index of each
    distinct value, in the order of the values, and each element's group.

    A chunk holds a few tags, each of which appears among its first records: the distinct values of the
    first ``_SAMPLE`` elements (``_SMALL_SAMPLE`` in a small chunk), looked up by binary search, usually
    cover all of them (checked), which costs a third of sorting the whole array; otherwise the whole array
    is sorted. The first index of a value the sample holds is in the sample.
    """
    values, first = np.unique(h[: _SAMPLE if h.shape[0] > 4 * _SAMPLE else _SMALL_SAMPLE], return_index=True)
    inverse = np.searchsorted(values, h)
    np.minimum(inverse, values.shape[0] - 1, out=inverse)
    if (values[inverse] == h).all():
        return first.astype(np.int64), inverse.astype(np.int64, copy=False)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    return first.astype(np.int64), inverse.astype(np.int64)
