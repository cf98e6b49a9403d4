"""How a log's step labels relate to update indices (``Convention``), from every hint a run has.

``k = label + delta``. 0-based labels log the LR an update used (delta 0). 1-based labels are read,
in this order, from:

1. the LR 0 of the first update at label 1, or a straight ramp from 0 that extrapolates to zero at
   label 1: the label is the update's own (delta -1, HF >= 4.51);
2. HF TrainingArguments without ``warmup_ratio`` (removed in transformers 5, whose Trainer logs the LR
   an update used): delta -1;
3. a straight ramp that extrapolates to zero at label 0: the label carries the next update's LR
   (delta 0: HF <= 4.50, torchtune, Megatron, a loop logging ``get_last_lr()`` after
   ``scheduler.step()``), unless the run's ``lr_scheduler_type`` is HF's
   ``cosine_warmup_with_min_lr``, whose ``(k+1)/W`` ramp gives exactly the same values with delta -1.
   Without the TrainingArguments (a ``trainer_state.json`` alone, a plain loop) both stay open;
4. a ramp that starts at a round fraction of the peak (torch ``LinearLR(start_factor=0.01)``,
   timm's ``warmup_lr_init``): the label where the line takes that round value is update 0's;
5. otherwise delta -1 is assumed and delta 0 is left open.

Whatever the values cannot decide is listed in ``Convention.alternatives`` and said in its reason.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .model import Convention
from .shapes import fit_linear, line_coefficients

Arr = NDArray[np.float64]
_NEAR = 0.25  # a ramp "crosses zero at step x" within this many steps
_EXACT = 1e-5  # relative RMS error of a ramp straight enough to read a start value off it
_ROUND_TOL = 2e-4  # relative: a fraction this close to 1/n or c x 10^e is round
_SAME_VALUES = "cosine_warmup_with_min_lr"


def is_round(f: float) -> bool:
    """``f`` in (0, 1] is 1/n (n <= 100) or 1, 2, 2.5 or 5 times a power of ten."""
    if not 0 < f <= 1:
        return False
    n = 1.0 / f
    if round(n) <= 100 and abs(n - round(n)) <= _ROUND_TOL * n:
        return True
    mantissa = f / 10 ** math.floor(math.log10(f))
    return any(abs(mantissa - c) <= _ROUND_TOL * c for c in (1.0, 2.0, 2.5, 5.0, 10.0))


def ramp_line(steps: NDArray[np.int64], v: Arr, end_idx: int) -> tuple[float, float, float] | None:
    """Intercept, slope and relative residual of a straight-ish ramp through the points below the peak."""
    if end_idx < 2:
        return None
    x, y = steps[:end_idx].astype(np.float64), v[:end_idx]
    fit = fit_linear(x, y)
    a, b = line_coefficients(x, y)
    if fit.residual > 1e-3 or b <= 0:
        return None
    return a, b, fit.residual


def convention(steps: NDArray[np.int64], v: Arr, end_idx: int, hf: bool, interval: int,
               scheduler: str | None, hf_v5: bool = False) -> Convention:
    """The step convention of one LR series (see the module docstring).

    ``hf_v5``: the run's TrainingArguments come from transformers 5 (no ``warmup_ratio`` field), which
    logs at step s the LR update s used, whatever the ramp looks like.
    """
    first = int(steps[0])
    if first == 0:  # (the ramp's line is not needed)
        return Convention(0, 0, "0-based steps: the LR logged at step s is the one update s used")
    line = ramp_line(steps, v, end_idx)
    x0 = -line[0] / line[1] if line else None
    if hf:
        who = "HF Trainer steps (1-based)"
    elif first == 1:
        who = "1-based steps"
    elif first == interval:
        who = f"steps are multiples of the logging interval {interval} counted from 1"
    elif x0 is not None and abs(x0 - 1.0) < _NEAR:
        who = "1-based steps (the ramp from 0 crosses zero at step 1)"
    else:
        return Convention(0, 0, f"0-based steps (the first logged step is {first}): the LR logged at step s is "
                                "the one update s used")
    top = max(float(np.max(np.abs(v))), 1e-300)
    if (first == 1 and abs(v[0]) <= 1e-6 * top) or (x0 is not None and abs(x0 - 1.0) < _NEAR):
        return Convention(1, -1, f"{who}; the LR logged at step s is the one update s used: the first update's "
                                 "LR (0) sits at step 1 (HF >= 4.51)")
    if hf and hf_v5:
        return Convention(1, -1, f"{who}; the TrainingArguments have no warmup_ratio field (transformers 5), whose "
                                 "Trainer logs at step s the LR update s used")
    if x0 is not None and abs(x0) < _NEAR:
        return _zero_at_label_0(who, hf, scheduler)
    start = _round_start(line, top)
    if start is not None:
        label, f = start
        if label == 0:
            return Convention(1, 0, f"{who}; the ramp starts at a round {f:.4g} x peak at step 0 (a start factor), "
                                    "so step 0 is the first update's and the LR logged at step s is the next "
                                    "update's (get_last_lr() after scheduler.step(), HF <= 4.50)")
        return Convention(1, -1, f"{who}; the ramp starts at a round {f:.4g} x peak at step 1 (a start factor), so "
                                 "the LR logged at step s is the one update s used")
    return Convention(1, -1, f"{who}; the LR logged at step s is taken to be the one update s used (HF >= 4.51, "
                             "timm); the values cannot rule out the next update's (HF <= 4.50, get_last_lr() after "
                             "scheduler.step()): one update more below the peak", alternatives=(0,))


def _zero_at_label_0(who: str, hf: bool, scheduler: str | None) -> Convention:
    if scheduler == _SAME_VALUES:
        return Convention(1, -1, f"{who}; {_SAME_VALUES} starts at peak/W, so the ramp's zero at step 0 still "
                                 "means the LR logged at step s is the one update s used")
    if scheduler is not None:
        return Convention(1, 0, f"{who}; the ramp from 0 crosses zero at step 0 and lr_scheduler_type {scheduler} "
                                "ramps from 0, so the LR logged at step s is the next update's (HF <= 4.50)")
    other = (f"HF >= 4.51 with {_SAME_VALUES}, whose (k+1)/W ramp logs the same values with one update fewer "
             "below the peak; no TrainingArguments say which scheduler ran" if hf else
             "a (k+1)/W ramp logged before each update gives the same values with one update fewer below the peak")
    return Convention(1, 0, f"{who}; the ramp from 0 crosses zero at step 0, so the LR logged at step s is taken "
                            f"to be the next update's (HF <= 4.50, torchtune, Megatron); or {other}",
                      alternatives=(-1,))


def _round_start(line: tuple[float, float, float] | None, top: float) -> tuple[int, float] | None:
    """``(label, fraction)``: the one of labels 0 and 1 where an exact ramp takes a round fraction of the peak."""
    if line is None or line[2] > _EXACT:
        return None
    a, b, _ = line
    at = {label: (a + b * label) / top for label in (0, 1)}
    hits = [label for label, f in at.items() if is_round(f)]
    return (hits[0], at[hits[0]]) if len(hits) == 1 else None
