"""Brief LR excursions: a short run of logged points far off the surrounding curve that comes back.

A hand-set LR for a few steps (x20 for steps 200..204), a warm restart undone by the next scheduler
step, an LR zeroed for a few updates: the schedule around it is unchanged, so the run is reported on
its own (WC111) and left out of the peak, warmup and decay inference.

A run of points ``i..j`` is an excursion when

* every point in it is at least ``FACTOR`` times above (or below ``1/FACTOR`` of) the line between
  the points on either side, by a consistent factor (a multiplied schedule, not a new shape; an LR
  set to ~0 counts as one factor);
* the LR just before it is a real level (not the ~0 start of a warmup, nor the ~0 end of a cycle);
* the point after it is back on the curve: within ``BACK`` of where the two points before the run
  were heading, and so is the one after that, if logged;
* it is short: at most ``max(1, min(MAX_POINTS, n // 20))`` points of ``n``.

Restarts, step decays, staircases and resumes jump and stay; cycles drift through many factors: none
of them qualifies.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .model import Excursion

Arr = NDArray[np.float64]
FACTOR = 2.0  # at least this far above or below the surrounding curve
BACK = 1.25  # "came back": within this factor of where the curve was heading
CONSISTENT = 1.5  # the factor varies by at most this much across the run
MAX_POINTS = 50
ZERO = 0.05  # factors below this are "set to ~0" (consistent by definition)
_REAL_LEVEL = 1e-3  # relative to the largest LR: a level below this is a ~0 start, not a baseline


def find_excursions(steps: NDArray[np.int64], v: Arr) -> tuple[tuple[Excursion, ...], NDArray[np.bool_]]:
    """The excursions of an LR series (finite values, sorted steps) and a mask of the points outside them."""
    n = v.shape[0]
    keep = np.ones(n, dtype=bool)
    if n < 5:
        return (), keep
    top = float(np.max(np.abs(v))) or 1.0
    longest = max(1, min(MAX_POINTS, n // 20))
    s = steps.astype(np.float64)
    found: list[Excursion] = []
    prev, cur = v[:-1], v[1:]
    real = prev > _REAL_LEVEL * top
    jumps = real & ((cur >= FACTOR * prev) | (cur <= prev / FACTOR))
    after = -1
    for i in (np.flatnonzero(jumps) + 1).tolist():  # only where the LR jumps: a few indices at most
        if i <= after or i >= n - 1:
            continue
        run = _run_at(s, v, i, longest, top)
        if run is None:
            continue
        j, factor, extreme = run
        found.append(Excursion(start=int(steps[i]), end=int(steps[j]), factor=factor, points=j - i + 1,
                               before=float(v[i - 1]), extreme=extreme, after=float(v[j + 1])))
        keep[i : j + 1] = False
        after = j
    return tuple(found), keep


def _run_at(s: Arr, v: Arr, i: int, longest: int, top: float) -> tuple[int, float, float] | None:
    """``(last index, factor, extreme LR)`` of an excursion starting at ``i``, or ``None``."""
    before = float(v[i - 1])
    if before <= _REAL_LEVEL * top:
        return None
    jump = float(v[i]) / before
    if 1.0 / FACTOR < jump < FACTOR:
        return None
    up = jump >= FACTOR
    slope = float((before - float(v[i - 2])) / (s[i - 1] - s[i - 2])) if i >= 2 else 0.0
    n = v.shape[0]
    stop = min(i + longest, n - 1)
    # the points the loop reads, as Python floats (the same float64 arithmetic, without numpy scalars)
    sl, vl = s[i - 1 : stop + 2].tolist(), v[i - 1 : stop + 2].tolist()  # index k is point k + i - 1
    s0 = sl[0]
    for j in range(i, stop):
        k = j - i + 1
        heading = before + slope * (sl[k + 1] - s0)
        if heading <= 0 or not _near(vl[k + 1], heading):
            continue
        if j + 2 < n and not _near(vl[k + 2], before + slope * (sl[k + 2] - s0)):
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


def _near(x: float, target: float) -> bool:
    return target / BACK <= x <= target * BACK
