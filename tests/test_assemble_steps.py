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
