"""Schedules that restart by design after their first peak.

* ``cosine-restarts``: the LR decays along a cosine and jumps back up within one logged step, one or
  more times (HF ``cosine_with_restarts``, timm ``CosineLRScheduler(cycle_limit > 1)`` with its
  ``cycle_decay``, torch ``CosineAnnealingWarmRestarts``);
* ``cyclic``: a triangle wave, straight rises of one length and straight falls, at least two restarts
  (torch ``CyclicLR``: ``triangular``, ``triangular2``, ``exp_range``).

The part after the first peak is cut at its turning points (1% of the peak of hysteresis); every
fall must fit its shape. Anything else that rises again (a second warmup after a resume, a
CosineAnnealingLR run past ``T_max``, whose rise is a slow cosine) is not recognised and stays WC104.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .model import Cycles
from .shapes import best_decay, fit_linear

Arr = NDArray[np.float64]
_TURN = 0.01  # hysteresis of a turning point, relative to the peak
_FIT = 0.02  # the largest relative RMS error of a fall (as for any decay)
_STRAIGHT = 0.01  # a cyclic rise or fall is this straight (exp_range bends it a little; half a cosine: 0.044)


def turning_points(v: Arr, peak: float) -> list[int]:
    """Indices of alternating crests and troughs of ``v``, starting with the crest at 0."""
    h = _TURN * peak
    points, looking_for_trough = [0], True
    ext = 0
    for i in range(1, v.shape[0]):
        if looking_for_trough:
            if v[i] < v[ext]:
                ext = i
            elif v[i] > v[ext] + h:
                points.append(ext)
                looking_for_trough, ext = False, i
        else:
            if v[i] > v[ext]:
                ext = i
            elif v[i] < v[ext] - h:
                points.append(ext)
                looking_for_trough, ext = True, i
    return points


def find_cycles(steps: NDArray[np.int64], v: Arr, peak_idx: int, peak: float) -> tuple[Cycles, float] | None:
    """The restart pattern after the first peak at ``peak_idx``, with the worst fall's fit residual."""
    s = steps[peak_idx:].astype(np.float64)
    y = v[peak_idx:]
    turns = turning_points(y, peak)
    if len(turns) < 3:  # crest, trough, crest at least
        return None
    crests, troughs = turns[0::2], turns[1::2]
    end = y.shape[0] - 1
    falls = list(zip(crests, troughs, strict=False))
    if len(crests) > len(troughs) and end - crests[-1] >= 2:
        falls.append((crests[-1], end))  # the last cycle, cut by the end of the log
    rises = [(t, c) for t, c in zip(troughs, crests[1:], strict=False)]
    if not rises:
        return None
    jumps = all(c - t == 1 for t, c in rises)
    worst = 0.0
    for c, t in falls:
        if t - c < 2:
            return None
        fit = fit_linear(s[c : t + 1], y[c : t + 1]) if not jumps else best_decay(s[c : t + 1], y[c : t + 1])
        if jumps and fit.shape not in ("cosine", "linear") or fit.residual > (_FIT if jumps else _STRAIGHT):
            return None
        worst = max(worst, fit.residual)
    if jumps:
        kind, starts = "cosine-restarts", [int(steps[peak_idx + c]) for _, c in rises]
    else:
        lengths = [c - t for t, c in rises if c != end]
        if len(rises) < 2 or not lengths or max(lengths) - min(lengths) > 1:
            return None
        for t, c in rises:
            if c - t >= 2 and fit_linear(s[t : c + 1], y[t : c + 1]).residual > _STRAIGHT:
                return None
        kind, starts = "cyclic", [int(steps[peak_idx + t]) for t, _ in rises]
    tops = [float(y[c]) for c in crests if c != end]
    lows = [float(y[t]) for t in troughs]
    peaks = [b / a for a, b in zip(tops, tops[1:], strict=False) if a > 0]
    heights = [(b - low) / (a - low) for a, b, low in zip(tops, tops[1:], lows, strict=False) if a > low]
    length = int(steps[peak_idx + crests[1]] - steps[peak_idx])
    return Cycles(kind=kind, length=length, restarts=tuple(starts),
                  peak_ratio=float(np.median(peaks)) if peaks else 1.0,
                  amplitude_ratio=float(np.median(heights)) if heights else 1.0), worst
