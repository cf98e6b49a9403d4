"""A bounded store of one tag's points from one source, for runs that are followed live.

A live run may log millions of points; the analyses need only some of them at full resolution:
the first points (the warmup ramp and where it ends), the most recent ones (the trailing windows
of the spike and divergence detectors) and, for the shape of the whole schedule, a thinned copy of
the middle. :class:`Retained` keeps exactly that, so memory stays bounded by :class:`Limits`
whatever the length of the run:

- ``head``: the first points written, all of them;
- ``tail``: the most recent points, all of them (between ``tail`` and ``2 x tail``);
- ``middle``: every ``stride``-th point written in between (by write sequence number, so thinning
  again keeps a subset of what was kept), with ``stride`` doubling whenever it exceeds ``middle``.

Points stay in write order (a restart that goes back in steps is kept as written; the run assembly
decides which write of a step wins, as for a finished log).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import Fragment


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of each series a live run keeps, and how much context its detectors get.

    ``window``: points before the new ones that each incremental analysis sees (the spike and
    divergence detectors' history); ``context``: the points an episode needs before its onset to be
    judged exactly as in a finished log (the detector's trailing window and its slope).
    """

    head: int = 4096
    middle: int = 4096
    tail: int = 8192
    window: int = 512
    context: int = 64

    def __post_init__(self) -> None:
        if min(self.head, self.middle, self.tail, self.window, self.context) < 1:
            raise ValueError("live limits must be positive")
        if self.window + self.context > self.tail:
            raise ValueError("the analysis window must fit in the retained tail")


class Retained:
    """Bounded store of one tag of one source (see the module docstring)."""

    __slots__ = ("tag", "limits", "written", "stride", "_head", "_middle", "_tail", "_pending")

    def __init__(self, tag: str, limits: Limits) -> None:
        self.tag = tag
        self.limits = limits
        self.written = 0  # points ever written to this store
        self.stride = 1  # of the middle
        empty = _empty()
        self._head, self._middle, self._tail = empty, empty, empty
        self._pending: list[_Block] = []

    def extend(self, steps: np.ndarray, values: np.ndarray, walls: np.ndarray) -> None:
        """Append points in write order."""
        n = int(steps.shape[0])
        if n == 0:
            return
        seq = np.arange(self.written, self.written + n, dtype=np.int64)
        self.written += n
        block = _Block(seq, steps.astype(np.int64, copy=False), values.astype(np.float64, copy=False),
                       walls.astype(np.float64, copy=False))
        room = self.limits.head - len(self._head)  # the head fills first: nothing else is stored before it is full
        if room > 0:
            self._head = _concat([self._head, block.take(slice(0, room))])
            block = block.take(slice(room, None))
        if len(block):
            self._pending.append(block)
        if sum(len(b) for b in self._pending) + len(self._tail) > 2 * self.limits.tail:
            self._compact()

    def _compact(self) -> None:
        tail = _concat([self._tail, *self._pending])
        self._pending = []
        keep = self.limits.tail
        if len(tail) > 2 * keep:
            moving, tail = tail.take(slice(0, len(tail) - keep)), tail.take(slice(len(tail) - keep, None))
            middle = _concat([self._middle, moving.take(moving.seq % self.stride == 0)])
            while len(middle) > self.limits.middle:
                self.stride *= 2
                middle = middle.take(middle.seq % self.stride == 0)
            self._middle = middle
        self._tail = tail

    @property
    def thinned(self) -> bool:
        """Whether points were dropped (the middle is thinned): analyses of the whole are approximate."""
        return self.stride > 1

    def __len__(self) -> int:
        return len(self._head) + len(self._middle) + len(self._tail) + sum(len(b) for b in self._pending)

    def fragment(self) -> Fragment:
        """Everything retained, in write order."""
        b = _concat([self._head, self._middle, self._tail, *self._pending])
        return Fragment(self.tag, b.steps, b.values, b.walls)

    def recent(self, n: int) -> Fragment:
        """The last ``n`` points written (fewer if the store holds fewer at full resolution)."""
        recent = _concat([self._tail, *self._pending])
        if len(recent) < n and self.stride == 1:  # nothing thinned: the middle and head are recent too
            recent = _concat([self._head, self._middle, recent])
        b = recent.take(slice(max(0, len(recent) - n), None))
        return Fragment(self.tag, b.steps, b.values, b.walls)


@dataclass(frozen=True, slots=True)
class _Block:
    seq: np.ndarray
    steps: np.ndarray
    values: np.ndarray
    walls: np.ndarray

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    def take(self, index: slice | np.ndarray) -> _Block:
        return _Block(self.seq[index], self.steps[index], self.values[index], self.walls[index])


def _empty() -> _Block:
    return _Block(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64))


def _concat(blocks: list[_Block]) -> _Block:
    blocks = [b for b in blocks if len(b)]
    if not blocks:
        return _empty()
    if len(blocks) == 1:
        return blocks[0]
    return _Block(*(np.concatenate([getattr(b, f) for b in blocks]) for f in ("seq", "steps", "values", "walls")))
