"""Where warmup ended when the peak fell between two logged points (sparse logging).

The bracket is what the values prove; the estimate is a best guess inside it.

* The peak lies after the point before the logged maximum (that point is below it, and the LR only
  rises until the peak) and no later than the point after it (which is lower again, or held).
* The maximum is provably still on the ramp only when the points before it lie exactly on a line
  that also passes through it; it is provably past the ramp's top when it lies clearly below that
  line, when it starts an exact linear decay, or when the LR holds there. A curved rise (cosine,
  exponential) proves neither: its crest may be on either side of the maximum, so the bracket opens
  on both sides.
* The estimate meets the fitted ramp with the level after the peak: the decay extrapolated back (the
  crest of a cosine decay), or the held maximum. With a single point on the ramp, the ramp is
  anchored at its known start, LR 0 at the step base, the way HF, torchtune and LambdaLR ramps begin.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._brent import brentq
from .shapes import Fit, best_ramp, extrapolating_decay, fit_linear

Arr = NDArray[np.float64]
_ON_LINE = 1e-6  # relative to the peak: float32 storage of an exact line stays far inside
_OFF_LINE = 1e-4  # relative to the peak: a point this far below the ramp's line is past its top
_LINE_POINTS = 4  # points on a ramp's line that prove it straight (see _exact_line)


def _exact_line(x: Arr, y: Arr, peak: float, anchor: int | None,
                points: int = _LINE_POINTS) -> tuple[float, float, float] | None:
    """Intercept, slope and RMS error of a line the points lie on exactly, or ``None``.

    Three points of a curved ramp can be collinear by symmetry (a cosine rise sampled evenly around
    its midpoint), so a proof takes four; the ramp's known start (LR 0 at ``anchor``) counts as one
    of them when the line passes through it. The first point may be an idle start (DeepSpeed's) and
    is dropped if it is off the line.
    """
    tries = [(x, y), (x[1:], y[1:])]
    if anchor is not None and x.shape[0] and anchor < x[0]:
        tries.insert(0, (np.concatenate([[float(anchor)], x]), np.concatenate([[0.0], y])))
    for i, (xs, ys) in enumerate(tries):
        needed = points - 1 if i == 0 and len(tries) == 3 else points
        if xs.shape[0] < needed:
            continue
        a, b = np.polyfit(xs - xs[0], ys, 1)[::-1]
        rms = float(np.sqrt(np.mean((ys - (a + b * (xs - xs[0]))) ** 2)))
        if rms <= _ON_LINE * peak and b > 0:
            return float(a - b * xs[0]), float(b), rms
    return None


def _on_linear_decay(x: Arr, y: Arr, peak: float) -> bool:
    """Whether the maximum and the points after it (at least two) lie on one falling line."""
    xs, ys = x[:6], y[:6]
    if xs.shape[0] < 3 or not ys[1] < ys[0] * (1 - _ON_LINE):
        return False
    a, b = np.polyfit(xs - xs[0], ys, 1)[::-1]
    rms = float(np.sqrt(np.mean((ys - (a + b * (xs - xs[0]))) ** 2)))
    return b < 0 and rms <= _ON_LINE * peak


def past_top(s: Arr, v: Arr, i: int, peak: float) -> bool:
    """Whether point ``i`` is provably at or past the peak: the LR holds there for two more points,
    or it starts an exact linear decay."""
    held = i + 2 < v.shape[0] and bool(np.all(np.abs(v[i + 1 : i + 3] - v[i]) <= _ON_LINE * peak))
    return held or _on_linear_decay(s[i:], v[i:], peak)


def bracket(s: Arr, v: Arr, end_idx: int, peak: float, anchor: int | None = None) -> tuple[int, int, str | None]:
    """``(lo, hi, side)``: the first step at the peak lies in ``[lo, hi]``; ``side`` says what was
    proven about the logged maximum: ``"ramp"`` (still rising there), ``"decay"`` (past the top)
    or ``None`` (either)."""
    n = v.shape[0]
    lo, hi = int(s[end_idx - 1]) + 1, int(s[end_idx + 1]) if end_idx + 1 < n else int(s[end_idx])
    ramp_side = decay_side = False
    line = _exact_line(s[:end_idx], v[:end_idx], peak, anchor)
    if line is not None:
        a, b, rms = line
        pred = a + b * float(s[end_idx])
        ramp_side = abs(pred - v[end_idx]) <= max(_ON_LINE * peak, 3 * rms)
        decay_side = pred - v[end_idx] > max(_OFF_LINE * peak, 10 * rms)
    decay_side = decay_side or past_top(s, v, end_idx, peak)
    if ramp_side:
        lo = int(s[end_idx])
    if decay_side:
        hi = int(s[end_idx])
    side = "ramp" if ramp_side and not decay_side else "decay" if decay_side and not ramp_side else None
    return lo, max(hi, lo), side


def estimate_end(s: Arr, v: Arr, end_idx: int, peak: float, anchor: int | None) -> tuple[int, tuple[int, int]]:
    """The first step at the peak when it was not logged: an estimate and the bracket it lies in.

    ``anchor``: the step at which the LR of the first update would be logged (where a ramp from 0
    starts), used when a single logged point lies on the ramp.
    """
    n = v.shape[0]
    lo, hi, side = bracket(s, v, end_idx, peak, anchor)

    def clip(x: float) -> int:
        return int(min(max(math.ceil(x - 0.05), lo), hi))  # a ramp that reaches the peak at a step lands on it

    if lo == hi:
        return lo, (lo, hi)
    ramp: Fit | None = None
    line = _exact_line(s[:end_idx], v[:end_idx], peak, None, points=3)
    if line is not None:  # exact even without a proof's fourth point (an idle first update dropped)
        ramp = _line_fit(line[0], line[1])
    elif end_idx >= 2:
        ramp = best_ramp(s[:end_idx], v[:end_idx], open_end=True)
    elif anchor is not None and anchor < s[0] and v[0] > 0:
        ramp = fit_linear(np.array([float(anchor), s[0]]), np.array([0.0, v[0]]))
    first_decay = end_idx if side == "decay" else end_idx + 1
    if first_decay >= n or (side is None and not v[first_decay] < peak * (1 - _ON_LINE)):
        first_decay = end_idx  # nothing after the maximum, or the LR held there: the maximum is the level
    xs, ys = s[first_decay : first_decay + 12], v[first_decay : first_decay + 12]
    decay: Fit | None = None
    if xs.shape[0] >= 2 and (ys[0] < peak * (1 - _ON_LINE) or ys[1] < ys[0] * (1 - _ON_LINE)):
        decay = extrapolating_decay(xs, ys) if xs.shape[0] >= 3 else fit_linear(xs, ys)
        if decay.shape == "cosine" and decay.end is not None and lo - 1 <= decay.end <= hi and line is None:
            return clip(decay.end), (lo, hi)  # a curved rise into a cosine decay: its crest is where the peak was
        if ramp is not None:
            crest = _switched_early(ramp, decay, peak, lo, hi)
            if crest is not None:
                return crest, (lo, hi)
    if ramp is None:
        return hi, (lo, hi)
    if ramp.shape == "cosine" and ramp.end is not None and decay is None:
        return clip(ramp.end), (lo, hi)
    level = (lambda t: float(decay.model(np.array([t]))[0])) if decay is not None else (lambda t: peak)

    def gap(t: float) -> float:
        return float(ramp.model(np.array([t]))[0]) - level(t)

    a, b = float(lo - 1), float(hi)
    try:
        if gap(b) <= 0:
            x = b
        elif gap(a) >= 0:
            x = a + 1.0
        else:
            x = brentq(gap, a, b, xtol=1e-6)
    except (ValueError, RuntimeError):
        x = b
    return clip(x), (lo, hi)


def _line_fit(a: float, b: float) -> Fit:
    return Fit("linear", 0.0, lambda t: a + b * t)


def _switched_early(ramp: Fit, decay: Fit, peak: float, lo: int, hi: int) -> int | None:
    """A decay already under way when warmup stopped (timm ``warmup_prefix=False``).

    The fitted cosine's crest lies before the gap and above anything logged: the ramp was heading
    for that crest and the schedule switched to the decay where the ramp reached it; the maximum is
    the last ramp step or the first decay step, whichever is higher.
    """
    if decay.shape != "cosine" or decay.end is None or decay.end >= lo - 1:
        return None
    crest = float(decay.model(np.array([decay.end]))[0])
    if crest <= peak * 1.005:
        return None
    f = lambda t: float(ramp.model(np.array([t]))[0]) - crest  # noqa: E731
    a = float(lo - 1)
    far = hi + 2 * (hi - a)
    try:
        if not f(a) < 0 < f(far):
            return None
        switch = math.ceil(brentq(f, a, far, xtol=1e-6) - 0.05)
    except (ValueError, RuntimeError):
        return None
    last_ramp = float(ramp.model(np.array([switch - 1.0]))[0])
    first_decay = float(decay.model(np.array([float(switch)]))[0])
    est = switch - 1 if last_ramp > first_decay else switch
    return int(min(max(est, lo), hi))
