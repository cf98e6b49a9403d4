"""warmcheck.workers.guided_chunks: how ``analyze -j N`` hands runs to its worker processes."""

from __future__ import annotations

import pytest

from warmcheck.workers import guided_chunks


@pytest.mark.parametrize("n", [0, 1, 2, 7, 31, 100, 1000, 4099])
@pytest.mark.parametrize("jobs", [1, 2, 3, 8])
@pytest.mark.parametrize("chunksize", [1, 5, 32])
def test_every_task_once_in_order_in_chunks_that_never_grow(n: int, jobs: int, chunksize: int) -> None:
    chunks = guided_chunks(n, jobs, chunksize)
    assert [i for c in chunks for i in c] == list(range(n))
    sizes = [len(c) for c in chunks]
    assert all(1 <= s <= chunksize for s in sizes)
    assert sizes == sorted(sizes, reverse=True)


def test_a_large_tree_starts_in_full_chunks_and_ends_in_single_tasks() -> None:
    sizes = [len(c) for c in guided_chunks(1000, 2, 32)]
    assert sizes[:20] == [32] * 20  # few round trips while there is plenty left
    assert sizes[-2:] == [1, 1]  # the workers finish within one task of each other
    assert len(sizes) < 1000 // 32 * 2  # not many more chunks than fixed chunks of 32
