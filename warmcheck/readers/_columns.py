"""The points of an event file's tags as its chunks are decoded: one growing column per array.

Keeping each chunk's pieces until the end and joining them holds every point twice for a moment, and
the pieces, allocated between the chunks' temporaries, fragment the heap: reading 10 million points
(240 MB of arrays) peaked at 480 MB of resident memory. Here a tag's second piece starts columns sized
from the file's length, large ones in anonymous memory maps (outside the heap, never fragmenting it;
pages that are never written are never resident), and every piece is copied in at once and dropped.
Tags logged at the same steps share one steps column while their pieces are the very same array (the
reader makes equal pieces of one chunk one array), so five such tags hold their steps once.
"""

from __future__ import annotations

import mmap

import numpy as np

_MAPPED = 4 << 20  # columns of at least this many bytes live in an anonymous memory map


class Column:
    """A growable 1-d array; ``view()`` is the filled part."""

    __slots__ = ("data", "n", "owners")

    def __init__(self, dtype: np.dtype, capacity: int) -> None:
        self.data = _empty(dtype, max(capacity, 16))
        self.n = 0
        self.owners = 1  # tags whose steps this column holds

    def append(self, piece: np.ndarray) -> None:
        k = piece.shape[0]
        if self.n + k > self.data.shape[0]:
            grown = _empty(self.data.dtype, max(2 * self.data.shape[0], self.n + k))
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : self.n + k] = piece
        self.n += k

    def view(self, n: int | None = None) -> np.ndarray:
        return self.data[: self.n if n is None else n]


def _empty(dtype: np.dtype, capacity: int) -> np.ndarray:
    nbytes = capacity * dtype.itemsize
    if nbytes < _MAPPED:
        return np.empty(capacity, dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype, count=capacity)  # the array keeps the map alive


class _Tag:
    __slots__ = ("first", "steps", "n", "values", "walls")

    def __init__(self, first: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.first: tuple[np.ndarray, np.ndarray, np.ndarray] | None = first  # the only piece so far
        self.steps: Column | None = None
        self.n = first[0].shape[0]
        self.values: Column | None = None
        self.walls: Column | None = None


def _one_array_per_steps(groups: list[tuple[bytes, np.ndarray, np.ndarray, np.ndarray]],
                         ) -> list[tuple[bytes, np.ndarray, np.ndarray, np.ndarray]]:
    """The groups with equal steps pieces made one array (what lets tags share a steps column)."""
    seen: dict[tuple[int, int, int], list[np.ndarray]] = {}
    out = []
    for key, steps, values, walls in groups:
        if steps.shape[0]:
            same = seen.setdefault((steps.shape[0], int(steps[0]), int(steps[-1])), [])
            steps = next((s for s in same if s is steps or np.array_equal(s, steps)), steps)
            if not any(s is steps for s in same):
                same.append(steps)
        out.append((key, steps, values, walls))
    return out


class TagPoints:
    """Per tag, the steps, values and wall times of every chunk, in order.

    ``total_bytes``: how much the read will cover (the file's length from the start offset); columns
    start at the size that many bytes need at the rate seen so far, plus 10%.
    """

    def __init__(self, total_bytes: int) -> None:
        self.total = max(total_bytes, 1)
        self.done = 0  # bytes of the chunks added so far
        self.tags: dict[bytes, _Tag] = {}

    def add_chunk(self, nbytes: int, groups: list[tuple[bytes, np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """The groups of one chunk, each ``(tag, steps, values, walls)``."""
        self.done += nbytes
        groups = _one_array_per_steps(groups)
        fresh: dict[int, tuple[Column, np.ndarray]] = {}  # first steps pieces of columns started in this chunk
        appended: set[tuple[int, int]] = set()  # (piece, column) pairs appended in this chunk
        for key, steps, values, walls in groups:
            tag = self.tags.get(key)
            if tag is None:
                self.tags[key] = _Tag((steps, values, walls))
                continue
            if tag.first is not None:  # the second piece: the columns start
                s0, v0, w0 = tag.first
                tag.first = None
                cap = self._capacity(tag.n + steps.shape[0])
                tag.steps = self._steps_column(s0, cap, fresh)
                tag.values, tag.walls = Column(v0.dtype, cap), Column(w0.dtype, cap)
                tag.values.append(v0)
                tag.walls.append(w0)
            assert tag.steps is not None and tag.values is not None and tag.walls is not None
            self._add_steps(tag, steps, appended)
            tag.values.append(values)
            tag.walls.append(walls)
            tag.n += steps.shape[0]

    def _capacity(self, n: int) -> int:
        return int(n * (self.total / max(self.done, 1)) * 1.1) + 16

    def _steps_column(self, first: np.ndarray, capacity: int, fresh: dict[int, tuple[Column, np.ndarray]],
                      ) -> Column:
        # A column that another tag started in this chunk from the very same first piece is shared; if
        # this tag's next piece is not the one that tag appended, _add_steps gives it its own again.
        other = fresh.get(id(first))
        if other is not None:
            other[0].owners += 1
            return other[0]
        col = Column(first.dtype, capacity)
        col.append(first)
        fresh[id(first)] = (col, first)  # the piece held: its id stays its own during the chunk
        return col

    def _add_steps(self, tag: _Tag, steps: np.ndarray, appended: set[tuple[int, int]]) -> None:
        col = tag.steps
        assert col is not None
        if (id(steps), id(col)) in appended and col.n == tag.n + steps.shape[0]:
            return  # a tag sharing the column appended this very piece: still the same steps
        if col.n != tag.n:
            # The shared column went on without this tag (or with other steps): a column of its own.
            own = Column(col.data.dtype, max(col.data.shape[0], self._capacity(tag.n + steps.shape[0])))
            own.append(col.view(tag.n))
            col.owners -= 1
            tag.steps = col = own
        col.append(steps)
        appended.add((id(steps), id(col)))

    def pop(self, key: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A tag's arrays (the columns' filled parts), and the tag forgotten."""
        tag = self.tags.pop(key)
        if tag.first is not None:
            return tag.first
        assert tag.steps is not None and tag.values is not None and tag.walls is not None
        return tag.steps.view(tag.n), tag.values.view(), tag.walls.view()

    def keys(self) -> list[bytes]:
        return list(self.tags)
