"""Retained: bounded memory, exact head and tail, a thinned middle that only ever loses points."""

from __future__ import annotations

import numpy as np
import pytest

from warmcheck.live.buffer import Limits, Retained

SMALL = Limits(head=10, middle=8, tail=20, window=8, context=4)


def fill(store: Retained, n: int, chunk: int = 7, start: int = 0) -> None:
    for lo in range(start, start + n, chunk):
        steps = np.arange(lo, min(lo + chunk, start + n))
        store.extend(steps, steps * 0.5, steps * 1.0)


def test_small_run_is_kept_whole():
    store = Retained("loss", SMALL)
    fill(store, 30)
    frag = store.fragment()
    assert frag.steps.tolist() == list(range(30)) and frag.values.tolist() == [s * 0.5 for s in range(30)]
    assert not store.thinned


def test_memory_is_bounded_and_head_and_tail_exact():
    store = Retained("loss", SMALL)
    fill(store, 100_000, chunk=313)
    assert store.written == 100_000
    assert len(store) <= SMALL.head + SMALL.middle + 2 * SMALL.tail
    steps = store.fragment().steps
    assert steps[:10].tolist() == list(range(10))  # the head: the first points, all of them
    assert steps[-SMALL.tail:].tolist() == list(range(100_000 - SMALL.tail, 100_000))  # the tail, all of them
    assert (np.diff(steps) > 0).all() and store.thinned
    middle = steps[10:-SMALL.tail]
    assert 0 < middle.shape[0] <= SMALL.middle
    assert (middle % store.stride == 0).all()  # every stride-th point written (here step == sequence number)


def test_thinning_only_drops_points():
    store = Retained("loss", SMALL)
    seen: set[int] = set()
    previous: set[int] | None = None
    for k in range(60):
        fill(store, 50, chunk=50, start=50 * k)
        seen |= set(range(50 * k, 50 * (k + 1)))
        kept = set(store.fragment().steps.tolist())
        assert kept <= seen
        if previous is not None:
            # what was kept before and is not in the recent tail any more is either still kept or thinned out,
            # never replaced by a point that had been dropped
            assert not (kept - previous - set(range(50 * k, 50 * (k + 1))))
        previous = kept


def test_recent_returns_the_last_points_in_write_order():
    store = Retained("loss", SMALL)
    fill(store, 25)
    assert store.recent(5).steps.tolist() == [20, 21, 22, 23, 24]
    assert store.recent(100).steps.tolist() == list(range(25))  # nothing thinned: everything is recent
    fill(store, 5000, start=25)
    assert store.recent(12).steps.tolist() == list(range(5013, 5025))


def test_restart_kept_as_written():
    store = Retained("loss", SMALL)
    store.extend(np.arange(0, 8), np.zeros(8), np.zeros(8))
    store.extend(np.arange(5, 9), np.ones(4), np.zeros(4))  # the writer went back to step 5
    assert store.fragment().steps.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8]


@pytest.mark.parametrize("bad", [dict(head=0), dict(window=20, context=5, tail=20)])
def test_limits_are_checked(bad):
    with pytest.raises(ValueError):
        Limits(**bad)
