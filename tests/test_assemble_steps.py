"""The run assembly's step checks with their shortcuts against the plain computation: every fragment
diffed, whether or not its steps increase and its wall clock never goes back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from warmcheck.model import Fragment, no_wall_times
from warmcheck.readers.assemble import _conflicting_repeats, _Increasing, _within_source


def _plain(frags: Sequence[Fragment]) -> tuple:  # type: ignore[type-arg]
    """What _within_source measures, from np.diff of every fragment (no shortcut)."""
    repeated = tags_repeated = decreases = 0
    first_back = wall_drop = None
    for f in frags:
        if len(f) < 2:
            continue
        d = np.diff(f.steps)
        if not (d > 0).all():
            back = np.flatnonzero(d < 0)
            if back.shape[0]:
                decreases += int(back.shape[0])
                k = int(back[0])
                if first_back is None or int(f.steps[k + 1]) < first_back[1]:
                    first_back = (int(f.steps[k]), int(f.steps[k + 1]))
            dup = _conflicting_repeats(f)
            if dup:
                repeated += dup
                tags_repeated += 1
        with np.errstate(invalid="ignore"):
            w = np.diff(f.wall_times)
        drops = np.flatnonzero((w < 0) & (d > 0) & np.isfinite(w))
        if drops.shape[0]:
            k = int(drops[np.argmin(w[drops])])
            if wall_drop is None or w[k] < wall_drop[0]:
                wall_drop = (float(w[k]), int(f.steps[k + 1]))
    return repeated, tags_repeated, decreases, first_back, wall_drop


def _measured(findings: list) -> tuple:  # type: ignore[type-arg]
    by = {f.code: f for f in findings}
    out = []
    if "WC006" in by:
        out.append(("WC006", by["WC006"].details["superseded"], by["WC006"].details["tags"], by["WC006"].step))
    if "WC007" in by:
        out.append(("WC007", by["WC007"].details["decreases"], by["WC007"].step))
    if "WC010" in by:
        out.append(("WC010", by["WC010"].details["seconds"], by["WC010"].step))
    return tuple(out)


def _expected(plain: tuple) -> tuple:  # type: ignore[type-arg]
    repeated, tags_repeated, decreases, first_back, wall_drop = plain
    out = []
    if repeated:
        out.append(("WC006", repeated, tags_repeated, first_back[1] if first_back else None))
    elif decreases:
        out.append(("WC007", decreases, first_back[1] if first_back else None))
    if wall_drop is not None:
        out.append(("WC010", -wall_drop[0], wall_drop[1]))
    return tuple(out)


@pytest.mark.parametrize("seed", range(80))
def test_within_source_reports_what_the_plain_diffs_show(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frags = []
    for k in range(int(rng.integers(1, 5))):
        n = int(rng.integers(0, 60))
        steps = np.cumsum(rng.integers(1, 5, n)).astype(np.int64)
        if rng.random() < 0.3 and n > 3:  # a restart or a shuffle
            steps[int(rng.integers(1, n)):] -= int(rng.integers(0, 20))
        walls = np.cumsum(rng.uniform(0, 2, n)) + 1e9
        kind = rng.integers(0, 5)
        if kind == 0:
            walls = no_wall_times(n)
        elif kind == 1 and n > 2:
            walls[int(rng.integers(1, n))] -= rng.uniform(0, 100)  # the clock goes back
        elif kind == 2 and n > 2:
            walls[rng.integers(0, n, 3)] = rng.choice([np.nan, np.inf, -np.inf], 3)
        elif kind == 3:
            walls = np.round(walls / 50) * 50  # equal times: no drop
        values = rng.choice([0.5, 1.0, 2.0], n)
        frags.append(Fragment(f"t{k}", steps, values, walls))
    with np.errstate(invalid="ignore"):
        got = _measured(_within_source("f", frags, ()))
        shared = _measured(_within_source("f", frags, (), _Increasing()))
    assert got == shared == _expected(_plain(frags))


def _plain_range(arrays: list[np.ndarray]) -> tuple[int, int | None, int, int | None]:
    steps = np.concatenate(arrays)
    negative = int(np.count_nonzero(steps < 0))
    huge = int(np.count_nonzero(np.abs(steps) > 2**53))
    return negative, int(steps.min()) if negative else None, huge, int(steps.max()) if huge else None


@pytest.mark.parametrize("seed", range(40))
def test_step_range_counts_as_the_concatenation_does(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from warmcheck.readers import assemble
    from warmcheck.readers.assemble import _increases, _step_range

    rng = np.random.default_rng(seed)
    extremes = np.array([-2**63, 2**63 - 1, 2**53, 2**53 + 1, -2**53 - 1, -1, 0], dtype=np.int64)
    arrays = []
    for _ in range(int(rng.integers(1, 5))):
        a = rng.integers(-5 if seed % 3 == 0 else 0, 1000, int(rng.integers(1, 50))).astype(np.int64)
        if seed % 4 == 0:
            a[rng.integers(0, a.shape[0], 2)] = rng.choice(extremes, 2)
        arrays.append(a)
    want = _plain_range(arrays)
    for small in (0, 1 << 16):  # array by array, and (a few points) concatenated
        monkeypatch.setattr(assemble, "_CONCATENATED", small)
        negative, lowest, huge, highest = _step_range(arrays)
        assert (negative, lowest if negative else None, huge, highest if huge else None) == want
    for a in arrays:  # the chunked steps check is np.diff's (overflow included)
        for chunk in (1, 2, 3, 7, 1 << 20):
            assert _increases(np.sort(a), chunk) == bool((np.diff(np.sort(a)) > 0).all())
            assert _increases(a, chunk) == (a.shape[0] < 2 or bool((np.diff(a) > 0).all()))
    wraps = np.array([-2**63, 2**63 - 1], dtype=np.int64)  # the subtraction wraps around: not increasing
    assert _increases(wraps) == bool((np.diff(wraps) > 0).all()) is False
