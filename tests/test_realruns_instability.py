"""Issue 9, instability items 7-10, on real runs (tests/data/realruns, written by HF Trainer and plain
torch loops; generators in scripts/realruns/), asserted against each run's truth.json.

- hf_blowup_hidden_nan [7]: the finite blow-up before the NaN that logging_nan_inf_filter hid is WC403,
  from the event files and from trainer_state.json alike; WC402 where the filtered 0.0 starts.
- torch_finite_loss_inf_gradnorm [8, 10]: a huge but finite loss beside an inf grad norm is not a hidden
  NaN; WC401 and WC403 agree on the first non-finite step; the onset is where the loss left its minimum.
- sustained_spike_1p5x, sustained_spike_bursty [9]: 1.5x for 30 steps right after warmup (in the second,
  some clean batches dip inside it) is a warning, recovered where the loss is back in its normal band
  and stays there, not at the first dip.
- diverge_sgd_in_warmup, early_spike_w25: the onset is the earliest defensible one; the spike stays WC301.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from warmcheck.config import Settings
from warmcheck.findings import Finding
from warmcheck.pipeline import analyze

REAL = Path(__file__).parent / "data" / "realruns"


def _case(name: str) -> Path:
    path = REAL / name
    assert (path / "truth.json").is_file(), f"real run {name} is missing (scripts/realruns/ writes it)"
    return path


def _truth(name: str) -> dict:
    return json.loads((_case(name) / "truth.json").read_text())["expected_findings"]


def _findings(path: Path) -> list[Finding]:
    outcome = analyze([str(path)], Settings())
    assert len(outcome.runs) == 1, [r.name for r in outcome.runs]
    return list(outcome.runs[0].findings)


def _one(found: list[Finding], code: str, tag_end: str = "loss") -> Finding:
    (f,) = [f for f in found if f.code == code and f.tag is not None and f.tag.endswith(tag_end)]
    return f


@pytest.mark.parametrize("source", ["runs", "trainer_state.json"])
def test_hf_blow_up_before_a_hidden_nan_is_a_divergence(source: str) -> None:
    truth = _truth("hf_blowup_hidden_nan")["divergence"]
    found = _findings(_case("hf_blowup_hidden_nan") / source)
    div, hidden = _one(found, "WC403"), _one(found, "WC402")
    lo, hi = truth["wc403_onset_window"]
    assert lo <= div.step <= hi, div.message
    assert div.step < truth["first_filtered_loss_step"]  # reported from the blow-up, before the disguised NaN
    assert hidden.step == truth["wc402_at_step"] == truth["first_filtered_loss_step"]
    d = div.details
    assert d["first_nonfinite_step"] == d["hidden_nan_step"] == hidden.step
    assert d["first_nonfinite_loss_step"] == truth["first_nonfinite_loss_step_logged"]  # None: never logged
    assert d["first_nonfinite_grad_norm_step"] == truth["first_nonfinite_grad_norm_step"]
    assert d["peak_step"] == truth["max_finite_loss"]["step"]
    assert d["peak_value"] == pytest.approx(truth["max_finite_loss"]["loss"], rel=1e-6)
    assert d["phase"] == truth["phase"] and d["threshold_ratio"] == 3.0
    # The grad norm's own NaN, one step before the filtered loss, is still its own finding.
    assert _one(found, "WC401", "grad_norm").step == truth["first_nonfinite_grad_norm_step"]
    assert not [f for f in found if f.code in ("WC301", "WC304")]


def test_finite_loss_beside_an_inf_grad_norm_is_not_a_hidden_nan() -> None:
    truth = _truth("torch_finite_loss_inf_gradnorm")["divergence"]
    found = _findings(_case("torch_finite_loss_inf_gradnorm"))
    assert truth["wc402_expected"] is False and not [f for f in found if f.code == "WC402"]
    nan_loss, nan_gn = _one(found, "WC401", "loss"), _one(found, "WC401", "grad_norm")
    assert nan_loss.step == truth["first_nonfinite_loss_step"]
    assert nan_gn.step == truth["first_nonfinite_grad_norm_step"]
    div = _one(found, "WC403")
    d = div.details
    # One source of truth: WC403's first non-finite step is WC401's.
    assert d["first_nonfinite_step"] == d["first_nonfinite_loss_step"] == nan_loss.step == div.step_end
    assert d["hidden_nan_step"] is None and d["first_nonfinite_grad_norm_step"] == nan_gn.step
    assert f"non-finite from step {nan_loss.step}" in div.message


def test_offline_onset_is_the_earliest_defensible_one() -> None:
    # Item 10: not where the blow-up became obvious, but where the loss left its minimum for good.
    truth = _truth("torch_finite_loss_inf_gradnorm")["divergence"]
    div = _one(_findings(_case("torch_finite_loss_inf_gradnorm")), "WC403")
    assert truth["loss_leaves_minimum_step"] <= div.step <= truth["sustained_rise_from_step"], div.message
    assert div.step < truth["first_step_loss_gt_3x_expected"] < truth["first_step_loss_gt_35x_expected"]
    assert div.details["onset_rule"] == "left_minimum" and div.details["threshold_near_minimum"] == pytest.approx(1.1)
    assert div.details["level_step"] <= truth["sustained_rise_from_step"]


def test_sgd_divergence_in_warmup_starts_where_the_loss_left_its_minimum() -> None:
    truth = _truth("diverge_sgd_in_warmup")["divergence"]
    found = _findings(_case("diverge_sgd_in_warmup"))
    div = _one(found, "WC403")
    assert truth["best_loss_before_divergence"]["step"] < div.step <= truth["first_step_loss_gt_3x_initial"]
    assert div.details["first_nonfinite_step"] == truth["first_nonfinite_loss_step"] == _one(found, "WC401").step
    assert div.details["first_step_above_ratio"] <= truth["first_step_loss_gt_3x_initial"]
    assert div.details["lr_at_onset"] <= truth["lr_at_onset"]  # the LR was still rising (warmup)


@pytest.mark.parametrize("name", ["sustained_spike_1p5x", "sustained_spike_bursty"])
def test_sustained_1_5x_spike_after_warmup_is_a_warning_with_its_real_recovery(name: str) -> None:
    # sustained_spike_bursty: 15% of the batches in the episode are clean, so the loss dips inside it.
    truth = _truth(name)["spike"]
    found = _findings(_case(name))
    f = _one(found, "WC301")
    d = f.details
    lo, hi = truth["elevated_region"]
    assert f.step == lo and truth["expected_severity"].startswith("warning")
    # Recovery: back in the normal band and staying there (truth: 10 consecutive points), not the first dip.
    assert truth["recovery_step"] - 1 <= d["recovered_step"] <= truth["recovery_step"] + 2
    assert d["elevated_steps"] >= truth["duration_steps"] - 2 >= 10
    assert d["ratio"] == pytest.approx(truth["max_ratio_to_control"], rel=0.1)
    assert d["median_ratio"] == pytest.approx(truth["median_ratio_to_control_51_80"], rel=0.1)
    assert "long" in d["warning_rules"] and d["median_z"] >= d["threshold_z"]
    assert d["phase"] == "just after warmup" and truth["recovered_to_baseline"]
    assert f"back in its normal band at step {d['recovered_step']}" in f.message
    assert not [g for g in found if g.code in ("WC304", "WC403", "WC401", "WC402")]


def test_early_spike_stays_a_warning() -> None:
    truth = _truth("early_spike_w25")["spike"]
    found = _findings(_case("early_spike_w25"))
    f = _one(found, "WC301")
    lo, hi = truth["elevated_region"]
    assert f.step == lo and f.details["peak_step"] == truth["max_loss_step"]
    assert lo < f.details["recovered_step"] <= hi + 1 and truth["recovered_to_baseline"]
    assert not [g for g in found if g.code.startswith("WC4")]
