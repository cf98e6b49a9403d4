"""The straightforward versions of the helpers warmcheck/schedule.py and warmcheck/excursions.py now
compute with fewer numpy calls (as they were before; tests/test_schedule_fast.py compares the two)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from warmcheck.excursions import _REAL_LEVEL, CONSISTENT, FACTOR, ZERO, _near
from warmcheck.model import Staircase
from warmcheck.schedule import REL_TOL

Arr = NDArray[np.float64]


def median_gap(steps: NDArray[np.int64]) -> int:
    return int(np.median(np.diff(steps)))


def plateau_lengths(v: Arr, tol: float) -> list[int]:
    if v.shape[0] == 0:
        return []
    change = np.flatnonzero(np.abs(np.diff(v)) > tol) + 1
    bounds = np.concatenate([[0], change, [v.shape[0]]])
    return np.diff(bounds).astype(int).tolist()


def steps_down(y: Arr, tol: float) -> bool:
    held = plateau_lengths(y, tol)
    return bool(len(held) >= 3 and min(held[:-1]) >= 2 and np.all(np.diff(y[np.cumsum([0, *held[:-1]])]) < 0))


def holds_same(steps: NDArray[np.int64], v: Arr, end_idx: int, tol: float) -> tuple[int, tuple[int, ...]]:
    """_holds past its early return."""
    ramp = v[: end_idx + 1]
    same = np.abs(np.diff(ramp)) <= np.minimum(tol, REL_TOL * np.maximum(np.abs(ramp[1:]), np.abs(ramp[:-1])))
    lead = int(np.argmin(same)) if not same.all() else int(same.shape[0])
    repeats = tuple(int(steps[i + 1]) for i in np.flatnonzero(same[lead:]) + lead)
    if len(repeats) > max(3, 0.1 * end_idx):
        repeats = ()
    return lead + 1, repeats


def staircase(steps: NDArray[np.int64], v: Arr, end_idx: int, tol: float) -> Staircase | None:
    """Equal plateaus of at least two steps during the rise (a per-step schedule stepped per epoch)."""
    top = end_idx if end_idx < v.shape[0] - 1 else v.shape[0] - 1
    ramp_v, ramp_s = v[: top + 1], steps[: top + 1]
    change = np.flatnonzero(np.abs(np.diff(ramp_v)) > tol) + 1
    if change.shape[0] < 2:
        return None
    starts = np.concatenate([[0], change])
    held = np.diff(starts)  # completed plateaus, in logged points: sparse logging alone gives 1 each
    lengths = np.diff(ramp_s[starts]).astype(int)  # the same plateaus, in steps
    if lengths.shape[0] < 2 or held[1:].min(initial=held[0]) < 2:
        return None
    inner = lengths[1:] if lengths.shape[0] > 2 else lengths  # the first plateau may be cut by logging
    if inner.max() - inner.min() > max(1, int(0.05 * inner.max())):
        return None
    return Staircase(length=int(np.median(inner)), plateaus=int(starts.shape[0]), first_step=int(ramp_s[change[0]]))


def run_at(s: Arr, v: Arr, i: int, longest: int, top: float) -> tuple[int, float, float] | None:
    """``(last index, factor, extreme LR)`` of an excursion starting at ``i``, or ``None``."""
    before = float(v[i - 1])
    if before <= _REAL_LEVEL * top:
        return None
    jump = float(v[i]) / before
    if 1.0 / FACTOR < jump < FACTOR:
        return None
    up = jump >= FACTOR
    slope = (before - float(v[i - 2])) / (s[i - 1] - s[i - 2]) if i >= 2 else 0.0
    n = v.shape[0]
    for j in range(i, min(i + longest, n - 1)):
        heading = before + slope * (s[j + 1] - s[i - 1])
        if heading <= 0 or not _near(float(v[j + 1]), heading):
            continue
        if j + 2 < n and not _near(float(v[j + 2]), before + slope * (s[j + 2] - s[i - 1])):
            continue
        base = before + (float(v[j + 1]) - before) * (s[i : j + 1] - s[i - 1]) / (s[j + 1] - s[i - 1])
        q = v[i : j + 1] / base
        off = bool(np.all(q >= FACTOR)) if up else bool(np.all(q <= 1.0 / FACTOR))
        if not off:
            return None  # part of the run has come back already: not one excursion
        zeroed = not up and bool(np.all(q <= ZERO))
        if not zeroed and float(q.max() / max(q.min(), 1e-300)) > CONSISTENT:
            return None
        extreme = float(v[i : j + 1].max() if up else v[i : j + 1].min())
        return j, float(np.median(q)), extreme
    return None
