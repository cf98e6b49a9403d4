"""Blow-ups before a NaN the logger hid, finite losses beside an overflowed gradient norm, and the
earliest divergence onset (issue 9, instability items 7, 8 and 10)."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic as syn

from warmcheck.config import Settings
from warmcheck.detectors import filtered_nan
from warmcheck.pipeline import analyze_run


def _by_code(run) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in analyze_run(run, Settings()).findings:
        out.setdefault(f.code, []).append(f)
    return out


@pytest.mark.parametrize("written", ["zero", "average"])
@pytest.mark.parametrize("seed,onset,rate", [(1, 41, 2.0), (2, 150, 0.5), (3, 300, 1.2)])
def test_finite_blow_up_before_a_hidden_nan_is_a_divergence(written: str, seed: int, onset: int, rate: float) -> None:
    base = syn.with_hidden_blowup(syn.healthy(seed=seed, n=400, warmup=20), onset, rate, 1e10, written)
    found = _by_code(base.run())
    (hidden,) = found["WC402"]
    (div,) = found["WC403"]
    assert hidden.step == base.disguised
    assert abs(div.step - onset) <= 3 and div.step < hidden.step
    d = div.details
    assert d["hidden_nan_step"] == d["first_nonfinite_step"] == hidden.step and d["first_nonfinite_loss_step"] is None
    assert d["peak_step"] == hidden.step - 1 and d["threshold_ratio"] == 3.0
    assert f"hidden by the logger from step {hidden.step}" in div.message
    assert not [f for f in found.get("WC301", []) if f.step >= onset]  # the blow-up is one divergence


def test_a_finite_loss_beside_an_overflowed_grad_norm_is_not_a_hidden_nan() -> None:
    base = syn.with_overflowing_grad_norm(syn.healthy(seed=4, n=300, warmup=20), 100, 1.5, 1e20, 1e25)
    inf_at = int(np.flatnonzero(np.isinf(base.grad_norm))[0])
    nan_at = int(np.flatnonzero(np.isnan(base.loss))[0])
    assert inf_at < nan_at and np.all(np.isfinite(base.loss[inf_at:nan_at]))  # the premise: real finite losses
    found = _by_code(base.run())
    assert "WC402" not in found
    nonfinite = {f.tag: f.step for f in found["WC401"]}
    assert nonfinite == {"train/grad_norm": inf_at, "train/loss": nan_at}
    (div,) = found["WC403"]
    d = div.details
    # One source of truth for the first non-finite step: WC403 says what WC401 says.
    assert d["first_nonfinite_step"] == d["first_nonfinite_loss_step"] == nan_at and d["hidden_nan_step"] is None
    assert d["first_nonfinite_grad_norm_step"] == inf_at and div.step_end == nan_at
    assert f"non-finite from step {nan_at}" in div.message and abs(div.step - 100) <= 3


def test_a_transient_inf_grad_norm_beside_an_ordinary_loss_is_not_a_hidden_nan() -> None:
    # Mixed precision: the grad scaler's overflow steps log an inf norm while the loss is ordinary.
    base = syn.healthy(seed=6, n=400, warmup=20)
    base.grad_norm[[120, 121, 250]] = np.inf
    found = _by_code(base.run())
    assert "WC402" not in found and "WC403" not in found
    assert [f.step for f in found["WC401"]] == [120]


def test_filtered_values_are_0_or_a_repeat_or_the_average_that_starts_a_repeat() -> None:
    steps = np.arange(8, dtype=np.int64)
    gn = np.array([1, 1, 1, 1, np.inf, np.nan, np.nan, np.nan], dtype=float)
    zero = np.array([3, 2.9, 2.8, 2.7, 0.0, 0.0, 0.0, 0.0])
    assert filtered_nan(steps, zero, steps, gn) is not None
    found = filtered_nan(steps, zero, steps, gn)
    assert found is not None and found[0] == 4 and found[1].tolist() == [False] * 4 + [True] * 4
    average = np.array([3, 2.9, 2.8, 2.7, 2.85, 2.85, 2.85, 2.85])
    found = filtered_nan(steps, average, steps, gn)
    assert found is not None and found[0] == 4
    climbing = np.array([3, 2.9, 2.8, 2.7, 5e20, 6e26, np.nan, np.nan])  # real values, larger than any before
    assert filtered_nan(steps, climbing, steps, gn) is None


@pytest.mark.parametrize("seed", range(4))
def test_offline_onset_is_where_the_slow_climb_began_not_where_it_accelerated(seed: int) -> None:
    # Issue 9, item 10: the loss leaves its minimum at 45, climbs ~4% a step (35x by 128), then blows up
    # (NaN at 135). The spike test fires only on the late acceleration; the onset is the start of the climb.
    base = syn.healthy(seed=seed, n=200, warmup=20)
    k = np.arange(200)
    growth = np.exp(np.where(k < 45, 0.0, 0.043 * (k - 45)) + np.where(k < 128, 0.0, 8.0 * (k - 128)))
    base.loss = base.loss * growth
    base.grad_norm = base.grad_norm * growth
    base.loss[135:] = np.nan
    base.grad_norm[135:] = np.nan
    (div,) = _by_code(base.run())["WC403"]
    d = div.details
    assert 43 <= div.step <= 50, d
    assert d["onset_rule"] == "left_minimum" and d["first_nonfinite_step"] == 135
    assert d["threshold_near_minimum"] == pytest.approx(1.1) and d["first_step_above_ratio"] is not None
    assert d["level_step"] is not None and d["level_step"] < div.step < d["first_step_above_ratio"]


def test_a_plateau_above_the_minimum_is_not_the_start_of_a_later_climb() -> None:
    # A settled loss leaves its minimum at 100 for a level 30% higher, holds it for 300 steps, then
    # climbs 5% a step from 400 to NaN: the climb that ends in the NaN began at 400, not at 100.
    rng = np.random.default_rng(3)
    k = np.arange(700)
    level = np.where(k < 100, 0.0, np.log(1.3)) + np.where(k < 400, 0.0, 0.05 * (k - 400))
    loss = 2.0 * np.exp(level + rng.normal(0.0, 0.02, 700))
    loss[560:] = np.nan
    run = syn.Synthetic(loss, np.full(700, 1e-3), np.ones(700), warmup=0).run()
    (div,) = _by_code(run)["WC403"]
    assert 397 <= div.step <= 403, div.details
    assert div.details["first_nonfinite_step"] == 560 and 350 <= div.details["level_step"] < div.step
    assert div.details["level_before_onset"] == pytest.approx(2.6, rel=0.05)  # the plateau, not the minimum
