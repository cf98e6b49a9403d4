"""TagPoints: the columns a file's tags are read into hold exactly the concatenation of their pieces."""

from __future__ import annotations

import numpy as np
import pytest

from warmcheck.readers._columns import Column, TagPoints


def _chunks(rng: np.random.Generator, n_chunks: int, tags: list[bytes], size: int):
    """Random chunks: a random subset of tags each, steps pieces shared between tags (one array) or not."""
    step = 0
    for _ in range(n_chunks):
        k = int(rng.integers(1, size))
        common = np.arange(step, step + k, dtype=np.int64)
        step += k
        groups = []
        for tag in tags:
            if rng.random() < 0.2:
                continue  # this tag has no points in this chunk
            if rng.random() < 0.75:
                steps = common  # the same array as the other tags'
            else:
                steps = np.sort(rng.integers(0, 10**6, int(rng.integers(1, size)))).astype(np.int64)
            groups.append((tag, steps, rng.random(steps.shape[0]), rng.random(steps.shape[0]) + 1.7e9))
        yield int(rng.integers(1, 1 << 20)), groups


@pytest.mark.parametrize("seed", range(25))
def test_columns_hold_each_tags_pieces_in_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tags = [f"tag{i}".encode() for i in range(int(rng.integers(1, 7)))]
    points = TagPoints(int(rng.integers(1, 1 << 26)))  # a wrong size estimate only costs growth
    want: dict[bytes, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for nbytes, groups in _chunks(rng, int(rng.integers(1, 30)), tags, 3000 if seed % 3 else 300_000):
        points.add_chunk(nbytes, groups)
        for tag, s, v, w in groups:
            want.setdefault(tag, []).append((s.copy(), v.copy(), w.copy()))
    got = {key: points.pop(key) for key in points.keys()}
    assert list(got) == list(want)
    for tag, pieces in want.items():
        for k in range(3):
            assert got[tag][k].tolist() == np.concatenate([p[k] for p in pieces]).tolist(), (tag, k)


def test_tags_logged_at_the_same_steps_share_one_steps_array() -> None:
    points = TagPoints(100 << 20)
    for c in range(20):
        steps = np.arange(c * 50_000, (c + 1) * 50_000, dtype=np.int64)
        groups = [(t, steps, np.full(50_000, float(i)), np.full(50_000, 1.7e9))
                  for i, t in enumerate((b"a", b"b", b"c"))]
        if c >= 12:  # c goes its own way from here: its own column, the earlier steps copied
            groups[2] = (b"c", steps + 1, groups[2][2], groups[2][3])
        points.add_chunk(5 << 20, groups)
    a, b, c = (points.pop(t) for t in (b"a", b"b", b"c"))
    assert np.shares_memory(a[0], b[0]) and not np.shares_memory(a[0], c[0])
    assert a[0].tolist() == b[0].tolist() == list(range(1_000_000))
    assert c[0][:600_000].tolist() == list(range(600_000))
    assert c[0][600_000:].tolist() == list(range(600_001, 1_000_001))
    assert not np.shares_memory(a[1], b[1]) and b[1].tolist() == [1.0] * 1_000_000


def test_large_columns_live_outside_the_heap_and_grow() -> None:
    col = Column(np.dtype(np.float64), 1 << 20)  # 8 MB: an anonymous memory map
    assert isinstance(col.data.base, memoryview) and type(col.data.base.obj).__name__ == "mmap"
    for k in range(5):
        col.append(np.full(300_000, float(k)))
    assert col.view().tolist() == [float(k) for k in range(5) for _ in range(300_000)]
