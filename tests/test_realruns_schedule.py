"""Schedule inference on the issue-9 real runs (tests/data/realruns/<case>), against each truth.json.

Each case was written by the real library (HF Trainer, torch schedulers, timm) through the generators
in scripts/realruns/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from warmcheck.config import Settings
from warmcheck.model import Run
from warmcheck.pipeline import analyze

REAL = Path(__file__).parent / "data" / "realruns"


def _case(name: str) -> tuple[dict, list[Run]]:
    assert (REAL / name / "truth.json").is_file(), f"real run {name} is missing: python scripts/realruns/*.py"
    truth = json.loads((REAL / name / "truth.json").read_text())
    return truth, list(analyze([str(REAL / name)], Settings()).runs)


def _lr_runs(truth: dict, runs: list[Run]) -> list[Run]:
    tag = truth["tags"]["lr"]
    found = [r for r in runs if r.schedules and r.schedules[0].tag in (tag, tag.rsplit("/", 1)[-1], "learning_rate")]
    assert found, [r.name for r in runs]
    return found


def test_hf_sparse_accum2_log10_bracket_holds_the_true_peak() -> None:
    truth, runs = _case("hf_sparse_accum2_log10")
    obs = truth["observed_warmup"]
    peak_label = obs["true_peak_update"]  # 1-based HF labels: update n carries label n
    for run in _lr_runs(truth, runs):
        s = run.schedules[0]
        lo, hi = s.warmup_end_bracket
        assert lo <= peak_label <= hi and [lo, hi] == obs["bracket_from_log"]
        assert s.warmup_end_estimated and s.warmup_end_step == round(obs["two_line_intersection_step"])
        assert s.warmup_steps == obs["warmup_updates"] == truth["configured_warmup"]["warmup_steps"]
        assert not [f for f in run.findings if f.code.startswith("WC2") and f.severity.value != "info"]


def test_onecycle_sparse_log50_bracket_opens_before_the_logged_max() -> None:
    truth, runs = _case("onecycle_sparse_log50")
    obs = truth["observed_warmup"]
    for run in _lr_runs(truth, runs):
        s = run.schedules[0]
        lo, hi = s.warmup_end_bracket
        assert lo <= obs["true_peak_label"] <= hi and lo <= obs["logged_steps_around_true_peak"][0] + 1
        assert lo <= s.warmup_end_step <= hi and abs(s.warmup_end_step - obs["true_peak_label"]) <= 1
        assert s.peak_step == obs["max_logged_lr_step"]


@pytest.mark.parametrize("name", ["lr_excursion_x20", "lr_excursion_constant_x20"])
def test_lr_excursion_x20_is_its_own_finding_not_the_peak(name: str) -> None:
    truth, runs = _case(name)
    exc = truth["expected_findings"]["lr_excursion"]
    (run,) = _lr_runs(truth, runs)
    s = run.schedules[0]
    assert s.warmup_end_step == truth["observed_warmup"]["lr_first_reaches_peak_at_logged_step"]
    assert s.peak_lr == pytest.approx(truth["observed_warmup"]["peak_lr_logged"])
    found = {f.code: f for f in run.findings}
    f = found["WC111"]
    assert [f.step, f.step_end] == exc["steps"] and f.details["factor"] == pytest.approx(exc["factor"], rel=1e-3)
    assert f.details["lr_before"] == pytest.approx(exc["lr_before"]) and f.details["lr_after"] == pytest.approx(
        exc["lr_after"])
    assert not {"WC104", "WC108"} & set(found)
    spikes = [g for g in run.findings if g.code in ("WC301", "WC304") and g.tag == truth["tags"]["loss"]]
    phase = "decay" if s.decay_shape == "cosine" else "at peak"  # the real schedule's phase, not a warmup end
    assert spikes and all(g.details["phase"] == phase for g in spikes)
    (configured,) = [r for r in analyze([str(REAL / name)],
                                        Settings(warmup_steps=truth["configured_warmup"]["warmup_steps"])).runs]
    assert not [g for g in configured.findings if g.code.startswith("WC2") and g.severity.value != "info"]


def _schedule_findings(run: Run) -> dict[str, object]:
    return {f.code: f for f in run.findings if f.code.startswith("WC1")}


def _quiet(run: Run) -> None:
    """A standard schedule: no WC108, nothing at warning or error from the schedule."""
    loud = [f.message for f in run.findings if f.code.startswith("WC1") and f.severity.value != "info"]
    assert "WC108" not in _schedule_findings(run) and not loud, loud


def test_hf_polynomial_power2_is_recognised() -> None:
    truth, runs = _case("hf_polynomial_power2")
    for run in _lr_runs(truth, runs):
        s = run.schedules[0]
        assert s.decay_shape == "polynomial" and s.warmup_shape == "linear"
        assert (s.warmup_end_step, s.warmup_steps) == (truth["observed_warmup"]["lr_first_reaches_peak_at_logged_step"],
                                                       truth["observed_warmup"]["updates_below_peak"])
        _quiet(run)


@pytest.mark.parametrize("name,restarts_key", [("hf_cosine_hard_restarts", "restart_logged_steps"),
                                               ("timm_cosine_cycles", "restarts_at_logged_steps")])
def test_cosine_restarts_are_scheduled(name: str, restarts_key: str) -> None:
    truth, runs = _case(name)
    sched = truth["schedule"]
    for run in _lr_runs(truth, runs):
        s = run.schedules[0]
        assert s.decay_shape == "cosine-restarts" and s.cycles is not None
        assert list(s.cycles.restarts) == sched[restarts_key]
        assert s.cycles.length == sched.get("cycle_length_updates", sched.get("t_initial"))
        assert s.warmup_end_step == truth["observed_warmup"]["lr_first_reaches_peak_at_logged_step"]
        wc104 = _schedule_findings(run)["WC104"]
        assert wc104.severity.value == "info" and wc104.details["scheduled"] is True
        _quiet(run)


def test_torch_cycliclr_triangular2_is_scheduled() -> None:
    truth, runs = _case("torch_cycliclr")
    sched, obs = truth["schedule"], truth["observed_warmup"]
    (run,) = _lr_runs(truth, runs)
    s = run.schedules[0]
    assert s.decay_shape == "cyclic" and s.cycles.length == sched["cycle_length"]
    assert list(s.cycles.restarts) == sorted(int(k) for k in obs["cycle_troughs"])[1:]
    assert s.cycles.amplitude_ratio == pytest.approx(0.5, rel=1e-3)  # triangular2 halves the amplitude
    assert s.warmup_end_step == obs["lr_first_reaches_peak_at_logged_step"]
    assert _schedule_findings(run)["WC104"].severity.value == "info"
    _quiet(run)


def test_saturating_exponential_warmup_is_exponential() -> None:
    truth, runs = _case("torch_exp_saturating_warmup")
    (run,) = _lr_runs(truth, runs)
    s = run.schedules[0]
    assert s.warmup_shape == "exponential" and truth["schedule"]["warmup_shape"].startswith("exponential")
    assert s.warmup_end_step == truth["observed_warmup"]["lr_first_reaches_peak_at_logged_step"]
    assert s.decay_shape == "cosine"
    _quiet(run)


def test_torch_legacy_last_lr_linearlr_reads_the_round_start_factor() -> None:
    truth, runs = _case("torch_legacy_last_lr_linearlr")
    obs = truth["observed_warmup"]
    (run,) = _lr_runs(truth, runs)
    s = run.schedules[0]
    assert s.warmup_end_step == obs["lr_first_reaches_peak_at_logged_step"]
    assert s.warmup_steps == obs["updates_below_peak"] == truth["configured_warmup"]["total_iters"]
    assert s.warmup_steps != obs["wrong_reading"]["updates_below_peak"] and not s.convention.ambiguous


def test_hf_cosine_min_lr_warmup_with_and_without_its_arguments() -> None:
    truth, runs = _case("hf_cosine_min_lr_warmup")
    obs = truth["observed_warmup"]
    for run in _lr_runs(truth, runs):  # event files (TrainingArguments) and trainer_state.json of one training
        s = run.schedules[0]
        assert (s.warmup_end_step, s.warmup_steps) == (obs["lr_first_reaches_peak_at_logged_step"],
                                                       obs["updates_below_peak"])
        assert not s.convention.ambiguous
    # trainer_state.json alone has no TrainingArguments: the (k+1)/W ramp and HF <= 4.50's k/W ramp log the same
    # values, so the reading is ambiguous and the true one is among the alternatives.
    (alone,) = analyze([str(REAL / "hf_cosine_min_lr_warmup" / "trainer_state.json")], Settings()).runs
    s = alone.schedules[0]
    assert s.convention.ambiguous and s.warmup_end_step == obs["lr_first_reaches_peak_at_logged_step"]
    readings = {s.warmup_steps} | {s.warmup_end_step + d for d in s.convention.alternatives}
    assert obs["updates_below_peak"] in readings


def test_lr_range_test_is_not_idle_at_its_start() -> None:
    # LR = 1e-4 * 1e5**(s/159): every update's LR differs from the one before, though the early ones are
    # far below a millionth of the final LR (once read as "the first 65 updates ran at the starting LR").
    truth, runs = _case("torch_finite_loss_inf_gradnorm")
    (run,) = _lr_runs(truth, runs)
    assert "exponential" in truth["schedule"]["family"]
    assert run.schedules[0].leading_hold <= 1 and "WC109" not in {f.code for f in run.findings}
