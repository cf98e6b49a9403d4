"""Spike detectors: planted spikes found at the right step, healthy noisy runs left alone."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic as syn

from warmcheck.config import Settings
from warmcheck.detectors import DETECTORS, detect
from warmcheck.pipeline import analyze_run


def _wc(run, settings: Settings | None = None) -> list:
    return list(analyze_run(run, settings or Settings()).findings)


@pytest.mark.parametrize("factor", [1.5, 2.0, 3.0, 5.0])
@pytest.mark.parametrize("where", ["warmup", "end of warmup", "just after warmup", "decay"])
def test_default_detector_finds_planted_spikes(factor: float, where: str) -> None:
    base = syn.healthy(seed=7, n=600, warmup=80)
    at = {"warmup": 40, "end of warmup": 77, "just after warmup": 85, "decay": 400}[where]
    run = syn.with_spike(base, at, factor).run()
    (f,) = [f for f in _wc(run) if f.code in ("WC301", "WC304")]
    assert f.code == ("WC304" if f.details["ratio"] < 2 else "WC301")  # one point: a warning from 2x on
    assert f.step == at and f.details["peak_step"] == at
    assert f.details["ratio"] == pytest.approx(factor, rel=0.2)
    assert f.details["phase"] == where
    assert f.details["threshold_min_ratio"] == 1.3 and f.details["z"] >= 4
    if where in ("end of warmup", "just after warmup"):
        assert "warmup too short" in f.message


def test_sustained_spike_is_a_warning_from_1_5x() -> None:
    # Issue 9, item 9: the loss held at 1.5x for 30 steps (51..80) right after a 50-step warmup.
    for seed in range(4):
        run = syn.with_sustained_spike(syn.healthy(seed=seed, n=400, warmup=50), 51, 30, 1.5, ramp=1).run()
        (f,) = [f for f in _wc(run) if f.code in ("WC301", "WC304")]
        d = f.details
        assert f.code == "WC301" and f.step == 51, (seed, d)
        assert 81 <= d["recovered_step"] <= 83 and d["elevated_steps"] >= 30  # not the first dip
        assert d["warning_rules"] and d["median_ratio"] >= 1.4 and d["ratio"] == pytest.approx(1.5, rel=0.15)
        assert "back in its normal band at step" in f.message and "threshold_long" in d


def test_a_fading_spike_that_holds_1_5x_for_two_points_is_minor() -> None:
    # 1.7x, 1.59x, 1.49x, ... : above 1.5x for two logged points, back within 1.1x after seven.
    run = syn.with_spike(syn.healthy(seed=4, warmup=50), 300, 1.7, width=8).run()
    (f,) = [f for f in _wc(run) if f.code in ("WC301", "WC304")]
    assert f.code == "WC304" and f.step == 300 and f.details["held_ratio"] < 1.5 <= f.details["ratio"]
    assert f.details["warning_rules"] == [] and f.details["elevated_steps"] < 10


def test_recovery_is_where_the_loss_stays_back_not_the_first_dip() -> None:
    base = syn.with_sustained_spike(syn.healthy(seed=2, n=400, warmup=50), 100, 30, 1.6, ramp=1)
    base.loss[115] /= 1.6  # one batch back at the normal level in the middle of the elevated stretch
    (f,) = [f for f in _wc(base.run()) if f.code in ("WC301", "WC304")]
    assert f.code == "WC301" and f.step == 100 and 130 <= f.details["recovered_step"] <= 132


def test_a_spike_that_never_recovers_says_so() -> None:
    base = syn.with_sustained_spike(syn.healthy(seed=5, n=400, warmup=50), 300, 200, 1.6, ramp=1)
    found = _wc(base.run())
    (f,) = [f for f in found if f.code in ("WC301", "WC304")]
    assert f.code == "WC301" and f.details["recovered_step"] is None
    assert "not recovered: still elevated at the last logged step 399" in f.message
    assert not [g for g in found if g.code == "WC403"]  # 1.6x is below the divergence ratio (3x)


def test_values_a_logger_wrote_for_nan_are_not_the_loss() -> None:
    # 0.0 written for NaN (HF logging_nan_inf_filter) must not make the loss "not a positive quantity".
    run = syn.with_disguised_nan(syn.with_spike(syn.healthy(seed=8, warmup=50), 200, 3.0), 450).run()
    found = analyze_run(run, Settings())
    assert found.detections["loss"].applicable
    assert [f.step for f in found.findings if f.code == "WC301"] == [200]


def test_spike_episode_recovery_and_grad_norm_lead() -> None:
    run = syn.with_spike(syn.healthy(seed=3, warmup=50), 300, 2.5, width=6, grad_lead=2).run()
    found = {f.code: f for f in _wc(run)}
    loss = found["WC301"]
    assert loss.step == 300 and loss.details["recovered_step"] is not None
    assert 300 < loss.details["recovered_step"] <= 310 and loss.details["grad_norm_lead_steps"] == 2
    assert found["WC302"].step == 298


@pytest.mark.parametrize("seed", range(40))
def test_healthy_noisy_runs_raise_nothing(seed: int) -> None:
    run = syn.healthy(seed=seed, n=800).run()
    loud = [f for f in _wc(run) if f.severity.value != "info" and f.code.startswith(("WC3", "WC4"))]
    assert not loud, [f.message for f in loud]


def test_fast_early_descent_is_not_a_spike() -> None:
    t = np.arange(300, dtype=float)
    steep = 2.0 + 9.0 * np.exp(-t / 15.0)  # a loss that falls from 11 to 2 in ~60 steps
    run = syn.Synthetic(steep * np.exp(np.random.default_rng(0).normal(0, 0.02, 300)), np.full(300, 1e-3),
                        np.ones(300), warmup=0).run()
    assert not [f for f in _wc(run) if f.code in ("WC301", "WC403")]


@pytest.mark.parametrize("detector,factor", [
    ("olmo-core", 1.5), ("olmo2", 1.5), ("mad", 1.5), ("llm-foundry", 2.5), ("megatron", 30.0),
])
def test_named_detectors_find_what_their_rules_cover(detector: str, factor: float) -> None:
    # Published rules on a long, quiet run (their windows reach 100-1000 points back).
    rng = np.random.default_rng(1)
    n = 2000
    loss = 2.0 * np.exp(rng.normal(0, 0.01, n))
    loss[1500] *= factor
    d = detect(np.arange(n), loss, detector)
    assert [e.onset for e in d.episodes] == [1500], d.episodes
    assert d.score == pytest.approx(1 / d.evaluated)
    quiet = detect(np.arange(n), 2.0 * np.exp(rng.normal(0, 0.01, n)), detector)
    assert quiet.episodes == () or detector == "olmo2"  # 7 sigma two-sided: very rarely a tail point


@pytest.mark.parametrize("name", DETECTORS)
def test_every_named_detector_is_selectable_from_settings(name: str) -> None:
    factor = 200.0 if name == "megatron" else 4.0  # Megatron: 10x the largest value seen, early loss included
    run = syn.with_spike(syn.healthy(seed=11, n=1500), 1200, factor).run()
    found = [f for f in _wc(run, Settings(spike_detector=name)) if f.code == "WC301"]
    assert [f.step for f in found] == [1200] and found[0].details["detector"] == name


def test_loss_that_is_not_positive_is_not_judged_by_ratios() -> None:
    rng = np.random.default_rng(2)
    rl = rng.normal(0, 0.001, 500)
    rl[300] = 0.05
    run = syn.Synthetic(rl, np.full(500, 1e-5), np.ones(500), warmup=0).run()
    assert not [f for f in _wc(run) if f.code in ("WC301", "WC403")]
    assert analyze_run(run, Settings()).detections["loss"].applicable is False


def test_clipping_saturation() -> None:
    base = syn.healthy(seed=5)
    base.grad_norm = np.minimum(base.grad_norm, 0.5)  # the post-clip norm of clip_grad_norm_(max_norm=0.5)
    found = {f.code: f for f in _wc(base.run())}
    assert found["WC303"].details["clip_value"] == 0.5 and found["WC303"].details["share"] >= 0.2
    assert "WC303" not in {f.code for f in _wc(syn.healthy(seed=5).run())}


def _full_pass_flags(v: np.ndarray, p) -> tuple[np.ndarray, int]:
    """The window rule over every point, from the public full-length statistics (no shortcut)."""
    import math

    from warmcheck.detectors import trailing_expectation, trailing_max

    y = np.log(v)
    expected, noise = trailing_expectation(y, p)
    excess = y - expected
    valid = ~np.isnan(expected)
    with np.errstate(invalid="ignore"):
        flags = ((excess / noise >= p.z) & (excess >= math.log(p.min_ratio))
                 & (y - trailing_max(y, p) >= math.log(p.above_max)) & valid)
    return np.flatnonzero(flags), int(np.count_nonzero(valid))


@pytest.mark.parametrize("params", [
    {}, {"above_max": 0.9}, {"above_max": 1.0, "z": 2.0, "min_ratio": 1.01}, {"min_history": 30},
    {"window": 7, "min_history": 3},
])
@pytest.mark.parametrize("seed", range(6))
def test_the_window_rule_computes_medians_only_where_the_cheap_test_passes(params: dict, seed: int) -> None:
    # detect() computes the window medians only for the points that clear the window's maximum by
    # above_max; its flags must be exactly those of the full pass, for any thresholds.
    from dataclasses import replace

    from warmcheck.detectors import SpikeParams

    p = replace(SpikeParams(), **params)
    rng = np.random.default_rng(seed)
    n = 5000 if seed % 2 else 150_000  # more than one chunk of the statistics (65,536 points)
    v = np.exp(-np.arange(n) / (n / 3)) * 3 + 0.5
    v *= np.exp(rng.normal(0, 0.05 * (1 + seed % 3), n))
    for at in rng.integers(5, n, 40):
        v[at : at + rng.integers(1, 6)] *= rng.uniform(1.2, 8)
    det = detect(np.arange(n, dtype=np.int64), v, params=p)
    flags, evaluated = _full_pass_flags(v, p)
    assert flags.shape[0] >= 20  # the planted spikes, and with loose thresholds many more
    assert det.flagged == flags.shape[0] and det.evaluated == evaluated
    onsets = {e.index for e in det.episodes}
    assert onsets <= set(flags.tolist()) and min(flags.tolist()) in onsets
