"""Infer the learning-rate schedule of a run from its LR series alone.

Definitions (``domain/schedule-conventions.md``, section 0): the update index ``k`` counts optimizer
updates from 0; a logger writes pairs ``(label s, value v)`` with ``v = LR_used(s + delta)``;
``k*``, the number of updates that ran below the peak, is "where warmup ended".

* The warmup is the initial non-decreasing stretch of the series; ``warmup_end_step`` is the first
  logged step at which it reaches its maximum. When the LR is logged every few steps and that step
  follows a gap, the end lies in ``warmup_end_bracket`` and is estimated where the fitted ramp meets
  the peak (or the start of the fitted decay).
* ``delta`` and the step base are decided from the data: 0-based labels log the LR an update used
  (delta 0); 1-based labels (HF Trainer, timm, loops that count completed updates) log the LR of the
  update just taken (delta -1, the HF >= 4.51 convention) unless the ramp shows the other one: a ramp
  from 0 that crosses zero at label 0 means the label already counts the update (delta 0, HF <= 4.50).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .conventions import convention as infer_convention
from .cycles import find_cycles
from .excursions import find_excursions
from .model import Format, Role, Run, Schedule, Series, Staircase
from .shapes import Fit, best_decay, best_ramp, fit_linear, line_coefficients
from .sparse import estimate_end, past_top

REL_TOL = 1e-6  # relative to the peak: float32 rounding (6e-8) passes, a 1-in-10^6 ramp step does not
_RISE = 0.01  # a rise after the peak smaller than 1% of the peak is float jitter, not a restart
_COLLAPSE = 1e-4  # an LR at or below this fraction of the peak is "zero"
_WSD_PLATEAU = 0.1  # a plateau at the peak this long (fraction of the run) before decaying: WSD
_UNRECOGNISED = 0.02  # relative RMS above which no decay shape is claimed

Arr = NDArray[np.float64]


def infer_schedules(run: Run) -> list[Schedule]:
    """A schedule for every learning-rate series of ``run``, the primary one first."""
    from .runconfig import hf_arguments

    hf = _is_hf(run)
    starts = [int(s) for s in run.metadata.get("source_first_steps", {}).values()]
    args = hf_arguments(run)
    kind = args.get("lr_scheduler_type")
    scheduler = str(kind) if kind else None
    v5 = bool(args) and "warmup_ratio" not in args and not args.get("deepspeed")  # warmup_ratio left in 5.0
    lrs = run.with_role(Role.LR)
    out = [infer_schedule(s, hf=hf, source_starts=starts, scheduler=scheduler, hf_v5=v5) for s in lrs if s.points]
    return [s for s in out if s is not None]


def _is_hf(run: Run) -> bool:
    if any(src.format is Format.HF_TRAINER_STATE for src in run.sources):
        return True
    texts = run.metadata.get("text", {})
    return "args/text_summary" in texts or (run.get("train/learning_rate") is not None
                                            and run.get("train/epoch") is not None)


def infer_schedule(series: Series, hf: bool = False, source_starts: Sequence[int] = (),
                   scheduler: str | None = None, hf_v5: bool = False) -> Schedule | None:
    """Infer the schedule of one LR series; ``None`` if it has no finite value.

    ``hf``: the run was logged by the HF Trainer (1-based steps); ``scheduler``: its
    ``lr_scheduler_type`` when known; ``source_starts``: first steps of later log files (resumes);
    ``hf_v5``: its TrainingArguments come from transformers 5 (see :mod:`warmcheck.conventions`).
    """
    ok = np.isfinite(series.values)
    if ok.all():  # every value finite (the usual case): the arrays themselves, not masked copies
        all_steps, all_values = series.steps, series.values
    elif not ok.any():
        return None
    else:
        all_steps, all_values = series.steps[ok], series.values[ok]
    all_v = all_values.astype(np.float64)
    excursions, outside = find_excursions(all_steps, all_v)
    if excursions:
        steps, v = all_steps[outside], all_v[outside]
    else:  # nothing left out: the same values (astype above made v a copy of its own)
        steps, v = all_steps, all_v
    s = steps.astype(np.float64)
    n = s.shape[0]
    top = float(np.maximum.reduce(np.abs(v))) or 1.0  # np.max, without its wrappers
    tol = REL_TOL * top
    interval = _median_gap(steps) if n > 1 else 1

    decreasing = np.nonzero(v[1:] < v[:-1] - tol)[0]
    seg_end = int(decreasing[0]) if decreasing.shape[0] else n - 1
    seg_max = float(np.maximum.reduce(v[: seg_end + 1]))
    end_idx = int(np.argmax(v[: seg_end + 1] >= seg_max - tol))  # the first (one always is: seg_max itself)

    stair = _staircase(steps, v, end_idx, tol)
    # the plateaus are only needed when nothing decreases (the same test, evaluated lazily)
    never_ends = n >= 2 and decreasing.shape[0] == 0 and end_idx > 0 and (
        end_idx == n - 1 or (n - end_idx) <= max(_plateau_lengths(v[: end_idx + 1], tol)[:-1], default=1))
    no_warmup = end_idx == 0 and n >= 2

    gap_before_peak = end_idx >= 1 and int(steps[end_idx] - steps[end_idx - 1]) > 1
    ramp_end = end_idx if gap_before_peak and end_idx >= 2 else end_idx + 1  # the logged max may be past the ramp
    ramp = best_ramp(s[:ramp_end], v[:ramp_end], open_end=gap_before_peak) if end_idx >= 1 else None
    convention = infer_convention(steps, v, end_idx, hf, interval, scheduler, hf_v5)

    estimated, bracket, end_step = False, None, int(steps[end_idx])
    if gap_before_peak and not never_ends:
        end_step, bracket = estimate_end(s, v, end_idx, seg_max, anchor=-convention.delta)
        estimated = bracket[0] < bracket[1]  # a bracket closed on both sides is an exact step
    elif no_warmup and int(steps[0]) > convention.base:
        # warmup, if any, ended by the first log, or before the second unless the first is provably past the top
        bracket = (convention.base, int(steps[0]) if past_top(s, v, 0, seg_max) else int(steps[1]))

    decay_fit, decay_shape, collapse = _decay(s, v, end_idx, top, never_ends, ramp)
    # Only where every step around the peak is logged: with gaps, a logged maximum below the ramp's line
    # is just the decay side of a peak that fell between two logs.
    consecutive = end_idx + 1 < n and int(steps[end_idx + 1] - steps[end_idx]) == 1 and not gap_before_peak
    shortfall = _shortfall(s, v, end_idx, seg_max) if end_idx >= 3 and not never_ends and consecutive else None
    warm_shape = "none" if no_warmup else (ramp.shape if ramp else "none")
    if stair is not None and stair.length > 1 and warm_shape != "none":
        warm_shape = "staircase"
    if decay_shape == "cosine" and warm_shape == "cosine":
        decay_shape = "one-cycle"
    rise = _rise_after(steps, v, seg_end, seg_max)
    cycles, decay_residual = None, decay_fit.residual if decay_fit else None
    if rise is not None and not never_ends:
        found = find_cycles(steps, v, end_idx, seg_max)
        if found is not None:
            (cycles, decay_residual), decay_shape = found, found[0].kind
    last_label = int(steps[-1])
    hold, repeats = _holds(steps, v, end_idx, tol, interval, stair)
    return Schedule(
        tag=series.tag, points=n, first_step=int(steps[0]), last_step=last_label, log_interval=max(interval, 1),
        initial_lr=float(v[0]), peak_lr=seg_max, final_lr=float(v[-1]), peak_step=int(steps[end_idx]),
        warmup_end_step=None if never_ends else end_step, warmup_end_estimated=estimated,
        warmup_end_bracket=bracket,
        warmup_steps=None if never_ends else end_step + convention.delta,
        convention=convention, warmup_shape=warm_shape, decay_shape=decay_shape,
        warmup_residual=ramp.residual if ramp else None, decay_residual=decay_residual,
        total_steps=last_label + (1 if convention.base == 0 else 0),
        no_warmup=no_warmup, never_ends=never_ends, staircase=stair, rise_after_peak=rise,
        collapse_step=collapse, shortfall=shortfall,
        discontinuities=_discontinuities(steps, v, source_starts, top),
        leading_hold=hold, ramp_repeats=repeats, excursions=excursions, cycles=cycles,
    )


def _median_gap(steps: NDArray[np.int64]) -> int:
    """``int(np.median(np.diff(steps)))``: the gap itself when every gap is the same (the usual case)."""
    d = steps[1:] - steps[:-1]  # np.diff's subtraction
    if d.dtype == np.int64:
        lo, hi = int(np.minimum.reduce(d)), int(np.maximum.reduce(d))
        if lo == hi and -(2**52) < lo < 2**52:  # the median of equal gaps, exact in float64
            return lo
    return int(np.median(d))


def _holds(steps: NDArray[np.int64], v: Arr, end_idx: int, tol: float, interval: int,
           stair: Staircase | None) -> tuple[int, tuple[int, ...]]:
    """Updates at the starting LR before it first changes, and repeats inside an otherwise rising ramp.

    Only when every step is logged: with sparse logging neither can be seen.
    """
    if interval != 1 or end_idx < 2 or stair is not None:
        return 0, ()
    ramp = v[: end_idx + 1]
    # Equal to float rounding of the values themselves: an LR range test climbing from 1e-4 to 1e3 has
    # early steps far below tol (relative to the peak) that still differ, so tol is only a ceiling.
    a = np.abs(ramp)
    same = np.abs(ramp[1:] - ramp[:-1]) <= np.minimum(tol, REL_TOL * np.maximum(a[1:], a[:-1]))
    lead = int(same.argmin()) if not same.all() else int(same.shape[0])
    repeats = tuple(int(steps[i + 1]) for i in (np.nonzero(same[lead:])[0] + lead).tolist())
    if len(repeats) > max(3, 0.1 * end_idx):  # not isolated repeats: some other shape
        repeats = ()
    return lead + 1, repeats


def _plateau_lengths(v: Arr, tol: float) -> list[int]:
    """Lengths (in points) of runs of equal values."""
    if v.shape[0] == 0:
        return []
    change = np.nonzero(np.abs(v[1:] - v[:-1]) > tol)[0] + 1
    bounds = np.concatenate([[0], change, [v.shape[0]]])
    return (bounds[1:] - bounds[:-1]).tolist()


def _staircase(steps: NDArray[np.int64], v: Arr, end_idx: int, tol: float) -> Staircase | None:
    """Equal plateaus of at least two steps during the rise (a per-step schedule stepped per epoch)."""
    top = end_idx if end_idx < v.shape[0] - 1 else v.shape[0] - 1
    ramp_v, ramp_s = v[: top + 1], steps[: top + 1]
    change = np.nonzero(np.abs(ramp_v[1:] - ramp_v[:-1]) > tol)[0] + 1
    if change.shape[0] < 2:
        return None
    starts = np.concatenate([[0], change])
    held = starts[1:] - starts[:-1]  # completed plateaus, in logged points: sparse logging alone gives 1 each
    if held.shape[0] < 2 or held[1:].min(initial=held[0]) < 2:  # (lengths below has held's shape)
        return None
    lengths = np.diff(ramp_s[starts]).astype(int)  # the same plateaus, in steps
    inner = lengths[1:] if lengths.shape[0] > 2 else lengths  # the first plateau may be cut by logging
    if inner.max() - inner.min() > max(1, int(0.05 * inner.max())):
        return None
    return Staircase(length=int(np.median(inner)), plateaus=int(starts.shape[0]), first_step=int(ramp_s[change[0]]))


def _decay(s: Arr, v: Arr, end_idx: int, top: float, never_ends: bool,
           ramp: Fit | None) -> tuple[Fit | None, str, int | None]:
    """Shape of the part after the peak, and where it collapsed to ~0 long before the end."""
    if never_ends or end_idx >= v.shape[0] - 1:
        return None, "none", None
    x, y = s[end_idx:], v[end_idx:]
    collapse = None
    zero = y <= _COLLAPSE * top
    if zero.any():
        first_zero = int(zero.argmax())  # the first True
        tail_ok = bool(zero[first_zero:].all())
        span = float(x[-1] - x[0]) or 1.0
        if tail_ok and y.shape[0] - first_zero >= 2 and (x[-1] - x[first_zero]) >= 0.05 * span:
            collapse = int(x[first_zero])
            x, y = x[: first_zero + 1], y[: first_zero + 1]
    off = np.abs(y - y[0]) > REL_TOL * top
    if not off.any():
        return Fit("constant", 0.0, lambda t: np.full_like(t, y[0])), "constant", collapse
    if _steps_down(y, REL_TOL * top):
        return Fit("step", 0.0, lambda t: t), "step", collapse  # piecewise constant, dropping
    hold = int(off.argmax())  # points still at the peak
    total = float(s[-1] - s[0]) or 1.0
    if hold >= 2 and (x[hold - 1] - x[0]) >= _WSD_PLATEAU * total:
        fit = best_decay(x[hold - 1 :], y[hold - 1 :])
        return fit, "wsd", collapse
    fit = best_decay(x, y)
    shape = fit.shape if fit.residual <= _UNRECOGNISED else "unknown"
    return fit, shape, collapse


def _steps_down(y: Arr, tol: float) -> bool:
    """Three or more plateaus (:func:`_plateau_lengths`), all but the last at least two points long,
    each lower than the one before: ``held = _plateau_lengths(y, tol)``, ``len(held) >= 3 and
    min(held[:-1]) >= 2 and np.all(np.diff(y[np.cumsum([0, *held[:-1]])]) < 0)``, from the change
    points alone (the plateau starts are ``[0, *change]``; their gaps are ``held[:-1]``)."""
    change = np.nonzero(np.abs(y[1:] - y[:-1]) > tol)[0] + 1
    if change.shape[0] < 2 or int(change[0]) < 2:
        return False
    if int(np.minimum.reduce(change[1:] - change[:-1])) < 2:
        return False
    first = y[change]
    return bool(first[0] < y[0]) and bool(np.all(first[1:] < first[:-1]))


def _shortfall(s: Arr, v: Arr, end_idx: int, peak: float) -> tuple[float, float] | None:
    """A linear ramp that turns before reaching where it was heading (timm ``warmup_prefix=False``).

    Either the maximum itself is already below the ramp's line (the decay took over mid-ramp), or the
    LR drops after the maximum by more than two ramp steps, below where the ramp would have gone.
    """
    x, y = s[:end_idx], v[:end_idx]
    fit = fit_linear(x, y)
    if fit.residual > 1e-3:
        return None
    heading = float(fit.model(s[end_idx : end_idx + 1])[0])
    if heading > peak * (1 + 0.01):
        return heading, peak
    if end_idx + 1 < v.shape[0]:
        _, slope = line_coefficients(x, y)
        step = s[end_idx + 1] - s[end_idx]
        drop = v[end_idx] - v[end_idx + 1]
        heading = float(fit.model(s[end_idx + 1 : end_idx + 2])[0])
        if slope > 0 and drop > 2 * slope * step and heading > peak * (1 + 0.01):
            return heading, peak
    return None


def _rise_after(steps: NDArray[np.int64], v: Arr, seg_end: int, peak: float) -> tuple[int, float, float] | None:
    """The first clear rise once the LR has started to decrease (a restart, a reset or a bug)."""
    if seg_end >= v.shape[0] - 1:
        return None
    tail = v[seg_end:]
    low = np.minimum.accumulate(tail)
    up = np.flatnonzero(tail - low > _RISE * peak)
    if up.shape[0] == 0:
        return None
    i = seg_end + int(up[0])
    return int(steps[i]), float(v[i - 1]), float(v[i])


def _discontinuities(steps: NDArray[np.int64], v: Arr, starts: Sequence[int],
                     top: float) -> tuple[tuple[int, float, float], ...]:
    """LR jumps where a later log file (a resume) takes over."""
    out = []
    diffs = None
    for start in sorted(set(starts)):
        i = int(np.searchsorted(steps, start))
        if i <= 0 or i >= steps.shape[0] or int(steps[i]) != start:
            continue
        if diffs is None:
            diffs = np.abs(np.diff(v))
        jump = abs(float(v[i] - v[i - 1]))
        window = np.concatenate([diffs[max(0, i - 6) : i - 1], diffs[i : i + 5]])
        typical = float(np.median(window)) if window.shape[0] else 0.0
        if jump > _RISE * top and jump > 10 * typical:
            out.append((start, float(v[i - 1]), float(v[i])))
    return tuple(out)


def schedule_summary(schedules: Sequence[Schedule]) -> dict[str, Any] | None:
    """The JSON ``schedule`` of a run: the primary series' schedule, other groups' tags listed."""
    if not schedules:
        return None
    first = schedules[0]
    d = first.as_dict()
    d["groups"] = [s.tag for s in schedules[1:]]
    return d
