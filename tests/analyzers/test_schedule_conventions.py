"""Step conventions from every hint: zero crossings, round start factors, the TrainingArguments; what
the values cannot decide is listed in ``Convention.alternatives``."""

from __future__ import annotations

import numpy as np
import pytest
import schedules as sch

from warmcheck.conventions import is_round
from warmcheck.model import Series
from warmcheck.schedule import infer_schedule

P, W, T = 1e-3, 50, 200


def test_round_fractions() -> None:
    assert all(is_round(f) for f in (1.0, 0.5, 1 / 3, 0.1, 0.01, 0.001, 0.25, 0.04, 2.5e-3, 1e-5))
    assert not any(is_round(f) for f in (0.0298, 0.0123, 0.7, 1 / 101.3, 0.0, 1.5))


def test_legacy_get_last_lr_after_step_with_a_round_start_factor() -> None:
    # LinearLR(start_factor=0.01): LR_used(k) = P(0.01 + 0.99 min(k, 50)/50); a 1-based loop logs get_last_lr()
    # after scheduler.step(), so label s carries update s's LR (0-based k = s): delta 0, k* = 50.
    lr = sch.torch_linear_then_cosine(P, W, T + 1, sf=0.01, eta_min=1e-5)
    log = sch.logged(lr, W, delta=0, one_based=True)
    s = infer_schedule(log.series)
    assert (s.convention.delta, s.convention.alternatives, s.warmup_steps) == (0, (), W)
    assert "round 0.01 x peak at step 0" in s.convention.reason


def test_start_factor_at_label_1_means_the_update_s_own_lr() -> None:
    lr = sch.torch_linear_then_cosine(P, W, T, sf=0.01, eta_min=1e-5)
    s = infer_schedule(sch.logged(lr, W, delta=-1).series)
    assert (s.convention.delta, s.convention.alternatives, s.warmup_steps) == (-1, (), W)


@pytest.mark.parametrize("hf", [True, False])
def test_k_plus_1_ramp_without_arguments_is_ambiguous(hf: bool) -> None:
    lr = sch.hf_cosine_warmup_with_min_lr(P, 10, 100)  # P(k+1)/W: the same values as k/W logged one step late
    s = infer_schedule(sch.logged(lr, 9, delta=-1).series, hf=hf)
    assert s.convention.delta == 0 and s.convention.alternatives == (-1,) and s.convention.ambiguous
    assert s.warmup_steps + s.convention.alternatives[0] == 9  # the alternative reading is the true one here


def test_k_plus_1_ramp_decided_by_the_training_arguments() -> None:
    lr = sch.hf_cosine_warmup_with_min_lr(P, 10, 100)
    series = sch.logged(lr, 9, delta=-1).series
    for kw in ({"scheduler": "cosine_warmup_with_min_lr"}, {"hf_v5": True}):
        s = infer_schedule(series, hf=True, **kw)
        assert (s.convention.delta, s.convention.alternatives, s.warmup_steps) == (-1, (), 9), kw
    s = infer_schedule(sch.logged(sch.hf_linear(P, 10, 100), 10, delta=0).series, hf=True, scheduler="linear")
    assert (s.convention.delta, s.convention.alternatives, s.warmup_steps) == (0, (), 10)  # HF <= 4.50


def test_ramp_from_zero_at_label_1_is_decided() -> None:
    s = infer_schedule(sch.logged(sch.hf_linear(P, W, T), W, delta=-1).series, hf=True)
    assert (s.convention.delta, s.convention.alternatives) == (-1, ())


def test_no_visible_ramp_leaves_both_readings_open() -> None:
    lr = sch.hf_cosine(P, 0, 300)[1:]
    steps = np.arange(1, 300)
    s = infer_schedule(Series("lr", steps, lr.astype(np.float64), np.zeros(299)), hf=True)
    assert s.convention.delta == -1 and s.convention.alternatives == (0,)
