"""Sparse logging: the warmup-end bracket always holds the true peak, and the estimate lies inside it.

A property test over schedules built from closed forms (linear, cosine and saturating-exponential
ramps from several starting values; linear, cosine, constant, inverse-sqrt, exponential and
polynomial decays; OneCycle), logged every ``k`` steps from any offset with 0- or 1-based labels.
"""

from __future__ import annotations

import math

import numpy as np
import schedules as sch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warmcheck.model import Series
from warmcheck.schedule import infer_schedule

P = 1e-3
RAMPS = ("linear", "cosine", "exp")
DECAYS = ("linear", "cosine", "constant", "inverse-sqrt", "exponential", "polynomial")


def ramp(kind: str, W: int, start: float, tau: float) -> np.ndarray:
    k = np.arange(W, dtype=float)
    if kind == "linear":
        return start + (P - start) * k / W
    if kind == "cosine":
        return start + (P - start) * 0.5 * (1 - np.cos(np.pi * k / W))
    return start + (P - start) * (1 - np.exp(-k / (tau * W))) / (1 - math.exp(-1 / tau))


def decay(kind: str, W: int, T: int, floor: float) -> np.ndarray:
    k = np.arange(W, T, dtype=float)
    p = (k - W) / (T - W)
    if kind == "linear":
        return floor + (P - floor) * (1 - p)
    if kind == "cosine":
        return floor + (P - floor) * 0.5 * (1 + np.cos(np.pi * p))
    if kind == "constant":
        return np.full_like(k, P)
    if kind == "inverse-sqrt":
        return P * np.sqrt(W / np.maximum(k, 1.0))
    if kind == "exponential":
        return P * 0.1 ** p
    return floor + (P - floor) * (1 - p) ** 2


def log(lr: np.ndarray, delta: int, k: int, offset: int) -> tuple[Series, int]:
    """Labels ``s = update - delta`` kept when ``(s - offset) % k == 0``, float32 values; and the
    label of the true peak (the first update at the maximum)."""
    labels = np.arange(lr.shape[0]) - delta
    keep = ((labels - offset) % k == 0) & (labels >= (1 if delta == -1 else 0))
    values = lr[keep].astype(np.float32).astype(np.float64)
    peak = int(np.flatnonzero(lr >= lr.max() * (1 - 1e-9))[0])
    return Series("lr", labels[keep].astype(np.int64), values, np.zeros(int(keep.sum()))), peak - delta


def check(series: Series, truth: int, hf: bool) -> None:
    s = infer_schedule(series, hf=hf)
    assert s is not None and s.excursions == () and s.cycles is None  # smooth schedules: no excursion, no cycle
    if s.warmup_end_bracket is not None:
        lo, hi = s.warmup_end_bracket
        assert lo <= truth <= hi, (s.warmup_end_bracket, truth, s.warmup_end_step)
        if s.warmup_end_estimated:
            assert lo <= s.warmup_end_step <= hi, (s.warmup_end_bracket, s.warmup_end_step)
    elif not s.no_warmup and not s.never_ends:
        assert s.warmup_end_step == truth, (s.warmup_end_step, truth)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ramp_kind=st.sampled_from(RAMPS), decay_kind=st.sampled_from(DECAYS), W=st.integers(3, 1000),
       tail=st.integers(200, 3000), start=st.sampled_from([0.0, 0.01, 0.1, 1 / 3]), tau=st.floats(0.2, 1.0),
       floor=st.sampled_from([0.0, 0.1 * P]), k=st.integers(1, 100), offset=st.integers(0, 99),
       delta=st.sampled_from([0, -1]))
def test_bracket_holds_the_true_peak(ramp_kind: str, decay_kind: str, W: int, tail: int, start: float, tau: float,
                                     floor: float, k: int, offset: int, delta: int) -> None:
    T = W + max(tail, 4 * k)
    lr = np.concatenate([ramp(ramp_kind, W, start * P, tau), decay(decay_kind, W, T, floor)])
    series, truth = log(lr, delta, k, offset % k)
    check(series, truth, hf=delta == -1)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(T=st.integers(300, 4000), pct=st.floats(0.1, 0.5), k=st.integers(2, 80), offset=st.integers(0, 79))
def test_onecycle_bracket_holds_the_true_peak(T: int, pct: float, k: int, offset: int) -> None:
    series, truth = log(sch.torch_onecycle(0.1, T, pct=pct), 0, k, offset % k)
    check(series, truth, hf=False)


def test_hf_accum2_log10_single_ramp_point() -> None:
    # HF >= 4.51, 103 updates, warmup ceil(0.1 x 103) = 11, logged every 10 steps: only label 10 is on the
    # ramp; the ramp runs from 0 at label 1, and the linear decay extrapolated back meets it at label 12.
    lr = sch.hf_linear(5e-5, 11, 103)
    s = infer_schedule(sch.logged(lr, 11, delta=-1, interval=10).series, hf=True)
    assert s.warmup_end_bracket == (11, 20) and (s.warmup_end_step, s.warmup_steps) == (12, 11)
    lr = sch.hf_cosine(5e-5, 11, 103)  # the same with a cosine decay: no line to prove the side, the bracket widens
    s = infer_schedule(sch.logged(lr, 11, delta=-1, interval=10).series, hf=True)
    assert s.warmup_end_bracket == (11, 30) and (s.warmup_end_step, s.warmup_steps) == (12, 11)


def test_onecycle_max_logged_after_the_crest() -> None:
    # The public OneCycle log (max_lr 0.1, 2765 steps, pct 0.3, every 50 steps from 49): 0.09970 @799,
    # 0.09997 @849, 0.09967 @899. The crest (update 828.5) lies before the logged maximum.
    lr = sch.torch_onecycle(0.1, 2765, pct=0.3)
    steps = np.arange(49, 2765, 50)
    s = infer_schedule(Series("lr", steps.astype(np.int64), lr[steps], np.zeros(steps.shape[0])))
    truth = int(np.argmax(lr))
    lo, hi = s.warmup_end_bracket
    assert lo <= truth <= hi and lo <= 800 and abs(s.warmup_end_step - truth) <= 1


def test_a_bracket_closed_on_both_sides_is_an_exact_step() -> None:
    # Every 50 steps from 50: a straight ramp through 0 at step 0 meets the peak exactly at the logged
    # step 1000 and the LR holds there (constant_with_warmup): the end is step 1000, not an estimate.
    steps = np.arange(50, 5001, 50, dtype=np.int64)
    values = P * np.minimum(1.0, steps / 1000.0)
    s = infer_schedule(Series("lr", steps, values, np.zeros(steps.shape[0])))
    assert s is not None and s.warmup_end_step == 1000
    assert not s.warmup_end_estimated and s.warmup_end_bracket in (None, (1000, 1000))
