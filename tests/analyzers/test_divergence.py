"""Divergence onset before the NaN, and NaN that the logger disguised."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic as syn

from warmcheck.config import Settings
from warmcheck.pipeline import analyze_run


def _found(run) -> dict:
    return {f.code: f for f in analyze_run(run, Settings()).findings}


@pytest.mark.parametrize("seed,onset,rate", [(1, 200, 0.3), (2, 350, 0.1), (3, 150, 0.05), (4, 450, 0.6),
                                             (5, 260, 0.02)])
def test_divergence_onset_within_three_steps(seed: int, onset: int, rate: float) -> None:
    run = syn.with_divergence(syn.healthy(seed=seed, warmup=60), onset, rate).run()
    found = _found(run)
    div = found["WC403"]
    assert abs(div.step - onset) <= 3, (div.step, onset)
    assert div.details["last_good_step"] == div.step - 1 and div.details["restart_step"] == max(0, div.step - 100)
    nan = found.get("WC401")
    if nan is not None:
        assert div.step < nan.step and div.details["first_nonfinite_step"] == nan.step


def test_disguised_nan_is_caught_from_the_gradient_norm() -> None:
    for written in ("zero", "average"):
        run = syn.with_disguised_nan(syn.healthy(seed=9), 420, written).run()
        found = _found(run)
        hidden = found["WC402"]
        assert hidden.step == 420 and hidden.severity.value == "error"
        assert hidden.details["last_good_step"] == 419
        assert "WC401" not in found or found["WC401"].tag != "train/grad_norm"  # one finding for one event


def test_nan_without_a_climb_is_reported_without_a_divergence() -> None:
    base = syn.healthy(seed=12)
    base.loss[500:] = np.nan
    found = _found(base.run())
    assert found["WC401"].step == 500 and found["WC401"].details["last_good_step"] == 499
    assert "WC403" not in found
