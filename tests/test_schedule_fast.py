"""The shortcuts of warmcheck/schedule.py and warmcheck/excursions.py against the straightforward
helpers they replace (tests/schedule_reference.py), on random LR-like series: the same values, bit for
bit; and infer_schedule on a series with non-finite points equal to it on the finite points alone."""

from __future__ import annotations

import numpy as np
import pytest
import schedule_reference as ref

from warmcheck import excursions, schedule
from warmcheck.model import Role, Series

Arr = np.ndarray


def _lr(rng: np.random.Generator) -> tuple[np.ndarray, Arr]:
    """Warmups (linear, stepped, none), decays (cosine, linear, steps, plateaus), excursions, gaps."""
    n = int(rng.integers(2, 600))
    gap = int(rng.integers(1, 4)) if rng.random() < 0.3 else 1
    start = int(rng.choice([0, 1, gap, int(rng.integers(0, 1000))]))
    if rng.random() < 0.2:  # irregular gaps
        steps = start + np.cumsum(rng.integers(1, 5, n)) - 1
    else:
        steps = start + gap * np.arange(n)
    t = np.arange(n, dtype=float)
    peak = float(10 ** rng.uniform(-6, 1))
    w = int(rng.integers(0, max(1, n // 3)))
    kind = int(rng.integers(6))
    if kind == 0:  # linear warmup, cosine decay
        up = (t + 1) / max(w, 1)
        down = 0.5 * (1 + np.cos(np.pi * np.clip((t - w) / max(n - w, 1), 0, 1)))
        v = peak * np.where(t < w, up, down)
    elif kind == 1:  # step decay with held plateaus
        v = peak * 0.5 ** np.floor(t / max(2, int(rng.integers(1, 50))))
    elif kind == 2:  # staircase warmup then constant
        k = max(2, int(rng.integers(1, 20)))
        v = peak * np.minimum(np.floor(t / k) + 1, 1 + w // k) / (1 + w // k)
    elif kind == 3:  # plateau at the peak, then linear to zero (WSD-like), maybe collapsing
        v = peak * np.clip(1 - np.clip(t - w, 0, None) / max(1, n // 2), 0, 1)
    elif kind == 4:  # rounded to a few values (repeats inside a ramp)
        v = peak * np.round(np.minimum((t + 1) / max(w, 1), 1) * 20) / 20
    else:  # noise
        v = peak * np.abs(1 + rng.normal(0, 0.3, n))
    if rng.random() < 0.3 and n > 20:  # an excursion or two: x20 or zeroed for a few points
        for _ in range(int(rng.integers(1, 3))):
            i = int(rng.integers(2, n - 3))
            v[i : i + int(rng.integers(1, 4))] *= float(rng.choice([20.0, 0.0, 3.0, 0.3]))
    if rng.random() < 0.5:
        v = v.astype(np.float32).astype(np.float64)
    return steps.astype(np.int64), v


@pytest.mark.parametrize("seed", range(3))
def test_helpers_equal_the_straightforward_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(400):
        steps, v = _lr(rng)
        n = v.shape[0]
        top = float(np.max(np.abs(v))) or 1.0
        tol = schedule.REL_TOL * top
        if n > 1:
            assert schedule._median_gap(steps) == ref.median_gap(steps)
        for lo in (0, int(rng.integers(0, n))):
            part = v[lo:]
            assert schedule._plateau_lengths(part, tol) == ref.plateau_lengths(part, tol)
            assert schedule._steps_down(part, tol) is ref.steps_down(part, tol)
        end_idx = int(rng.integers(0, n))
        assert repr(schedule._staircase(steps, v, end_idx, tol)) == repr(ref.staircase(steps, v, end_idx, tol))
        if end_idx >= 2:
            assert schedule._holds(steps, v, end_idx, tol, 1, None) == ref.holds_same(steps, v, end_idx, tol)
        s = steps.astype(np.float64)
        longest = max(1, min(excursions.MAX_POINTS, n // 20))
        for i in range(1, n - 1):
            assert excursions._run_at(s, v, i, longest, top) == ref.run_at(s, v, i, longest, top), i


def test_median_gap_unusual_steps() -> None:
    cases = [np.array([0, 2**60], dtype=np.int64), np.array([5, 5, 5], dtype=np.int64),
             np.array([0, 3, 4, 10], dtype=np.int64), np.array([-(2**62), 0, 2**62], dtype=np.int64),
             np.array([0, 2**52, 2**53], dtype=np.int64), np.array([1.0, 2.5, 4.0])]
    for steps in cases:
        assert schedule._median_gap(steps) == ref.median_gap(steps)


def test_steps_down_cases() -> None:
    tol = 1e-9
    for y in ([3, 3, 2, 2, 1, 1], [3, 3, 2, 2, 1], [3, 3, 2, 2, 3, 3], [3, 2, 2, 1, 1], [3, 3, 2, 1, 1],
              [3, 3, 3], [3, 3, 2, 2], [1, 1, 2, 2, 1, 1], [5, 5, 4, 4, 3, 3, 2], [2, 2, 1, 1, 0, 0]):
        a = np.array(y, dtype=float)
        assert schedule._steps_down(a, tol) is ref.steps_down(a, tol), y


@pytest.mark.parametrize("seed", range(2))
def test_infer_schedule_skips_non_finite_points(seed: int) -> None:
    """The finite points alone (the all-finite path) and with NaN / inf among them (the masked path)."""
    rng = np.random.default_rng(50 + seed)
    for _ in range(150):
        steps, v = _lr(rng)
        n = v.shape[0]
        full = v.copy()
        where = rng.choice(n, size=min(n - 1, int(rng.integers(1, 4))), replace=False)
        full[where] = rng.choice([np.nan, np.inf, -np.inf], size=where.shape[0])
        keep = np.isfinite(full)
        clean_steps, clean = steps[keep].copy(), full[keep].copy()
        a = schedule.infer_schedule(Series("lr", clean_steps, clean, np.zeros(clean.shape[0]), Role.LR))
        b = schedule.infer_schedule(Series("lr", steps, full, np.zeros(n), Role.LR))
        assert repr(a) == repr(b)
