"""Real training logs (tests/data/realruns, copied from the shared corpus) against their truth.json.

Every run was written by a real library (HF Trainer, Lightning, torch schedulers, timm, plain loops).
``warmup_end_step`` must equal the truth's first logged peak step (or the true peak where logging is
sparse), ``warmup_steps`` the number of updates below the peak as its ``step_indexing`` describes, and
the configured warmup must give no WC2xx warning or error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from warmcheck.config import Settings
from warmcheck.pipeline import analyze

REAL = Path(__file__).parent / "data" / "realruns"
CASES = sorted(p.name for p in REAL.iterdir() if (p / "truth.json").is_file())


def _truth(name: str) -> dict:
    return json.loads((REAL / name / "truth.json").read_text())


def _expected(truth: dict) -> tuple[int | None, int | None]:
    """(first step at the peak, updates below the peak), from the truth's own fields."""
    given = truth.get("generic_expected")  # a step reading other than the plain one (get_last_lr after step)
    if given:
        return given["warmup_end_step"], given["warmup_steps"]
    obs = truth["observed_warmup"]
    label = obs.get("lr_first_reaches_peak_at_logged_step")
    if label is None and obs.get("true_peak_label") is not None:
        label = obs["true_peak_label"]  # sparse logging: the label the true peak update would carry
    elif label is None:
        label = obs.get("true_peak_update")  # sparse logging: the true peak, as a 1-based update number
    if label is None:
        return None, None  # the peak is never reached
    one_based = truth["step_indexing"].startswith("1-based")
    return label, label - 1 if one_based else label


def _healthy(truth: dict) -> bool:
    """No WC3xx/WC4xx warning or error is the right verdict: the truth's ``healthy`` where it says so, otherwise
    derived from its expected findings (no divergence, non-finite loss, spike or reference-criterion spike)."""
    ef = truth["expected_findings"]
    if "healthy" in ef:
        return bool(ef["healthy"])
    if "healthy" in truth:
        return bool(truth["healthy"])
    return not (ef.get("divergence") or ef.get("nonfinite_loss") or ef.get("spike")
                or ef.get("spikes_by_corpus_criterion"))


def _settings(truth: dict) -> Settings:
    cfg = truth["configured_warmup"]
    for key in ("warmup_steps", "warmup_t", "warmup_iters"):
        if isinstance(cfg.get(key), int):
            return Settings(warmup_steps=cfg[key])
    return Settings(warmup_ratio=cfg["ratio"], total_steps=cfg.get("total_steps"))


@pytest.mark.parametrize("name", CASES)
def test_warmup_matches_truth(name: str) -> None:
    truth = _truth(name)
    if truth.get("generic_warmup_check") is False:  # e.g. a cyclic schedule: its first peak is no warmup end
        pytest.skip(truth.get("generic_warmup_check_reason", "the truth has no single warmup end"))
    end, below = _expected(truth)
    lr_tag = truth["tags"]["lr"]
    outcome = analyze([str(REAL / name)], _settings(truth))
    checked = 0
    for run in outcome.runs:
        if not run.schedules or run.schedules[0].tag not in (lr_tag, lr_tag.rsplit("/", 1)[-1], "learning_rate"):
            continue
        s = run.schedules[0]
        assert (s.warmup_end_step, s.warmup_steps) == (end, below), (run.name, s.as_dict())
        loud = [f for f in run.findings if f.code.startswith("WC2") and f.severity.value != "info"]
        ef = truth["expected_findings"]
        if ef.get("scheduler_stepped_per_epoch") or ef.get("configured_warmup_not_applied"):  # it did not happen
            loud = [f for f in loud if f.code != "WC201"]
        assert not loud, [f.message for f in loud]
        checked += 1
    assert checked >= 1


def test_per_epoch_stepping_is_reported_as_a_staircase() -> None:
    outcome = analyze([str(REAL / "per_epoch_scheduler_step")], Settings(warmup_steps=40))
    (run,) = outcome.runs
    found = {f.code: f for f in run.findings}
    assert found["WC105"].details["plateau_steps"] == 30 and "WC102" in found and "WC201" in found


def test_sparse_hf_run_is_estimated_inside_its_bracket() -> None:
    outcome = analyze([str(REAL / "hf_cosine_accum2_log5")], Settings())
    for run in outcome.runs:
        s = run.schedules[0]
        assert s.warmup_end_estimated and s.warmup_end_bracket == (11, 15) and s.warmup_steps == 12


def test_hf_run_reads_its_configuration_from_the_event_file() -> None:
    # args/text_summary holds TrainingArguments: warmup_steps=0.06 (a ratio in transformers 5).
    outcome = analyze([str(REAL / "hf_linear_warmup_ratio" / "runs")], Settings())
    (run,) = outcome.runs
    (f,) = [f for f in run.findings if f.code == "WC202"]
    assert f.details["matched"] == "ceil(0.06 x 113)" and "args/text_summary" in f.message


def test_diverging_run_is_flagged_inside_its_truth() -> None:
    truth = _truth("diverge_sgd_in_warmup")["expected_findings"]["divergence"]
    (run,) = analyze([str(REAL / "diverge_sgd_in_warmup")], Settings()).runs
    found = {f.code: f for f in run.findings if f.tag == "train/loss"}
    div = found["WC403"]
    # The earliest defensible onset (issue 9, item 10): after the best loss, by the first 3x step.
    assert truth["best_loss_before_divergence"]["step"] < div.step <= truth["first_step_loss_gt_3x_initial"], div.step
    assert div.details["first_nonfinite_step"] == truth["first_nonfinite_loss_step"] == found["WC401"].step
    assert div.details["phase"] == "warmup"
    assert not [f for f in run.findings if f.code == "WC301"]  # the blow-up is one divergence, not spikes


def test_spiking_run_is_flagged_inside_its_truth() -> None:
    spike = _truth("early_spike_w25")["expected_findings"]["spike"]
    (run,) = analyze([str(REAL / "early_spike_w25")], Settings()).runs
    (f,) = [f for f in run.findings if f.code == "WC301"]
    lo, hi = spike["elevated_region"]
    assert lo <= f.step <= hi and f.details["peak_step"] == spike["max_loss_step"]
    assert f.details["ratio"] == pytest.approx(spike["max_ratio_to_baseline"], rel=0.1)
    assert (f.details["recovered_step"] is not None) == spike["recovered_to_baseline"]
    assert f.details["phase"] == "just after warmup"
    assert not [f for f in run.findings if f.code.startswith("WC4")]


def test_sparse_bracket_contains_the_true_peak() -> None:
    # Issue 9 item 1: wherever the true peak falls between two logs, the bracket must contain its label.
    sparse = [c for c in CASES if _truth(c)["observed_warmup"].get("true_peak_label") is not None]
    assert sparse, "no sparse-logged case with true_peak_label"
    for name in sparse:
        obs = _truth(name)["observed_warmup"]
        for run in analyze([str(REAL / name)], Settings()).runs:
            s = run.schedules[0]
            assert s.warmup_end_estimated and s.warmup_end_bracket is not None, (name, s.as_dict())
            lo, hi = s.warmup_end_bracket
            assert lo <= obs["true_peak_label"] <= hi, (name, s.warmup_end_bracket, obs["true_peak_label"])


@pytest.mark.parametrize("name", [c for c in CASES if (_truth(c)["expected_findings"].get("divergence") or {})
                                  .get("first_nonfinite_loss_step") is not None])
def test_first_nonfinite_loss_matches_truth(name: str) -> None:
    # A loss the logger did not filter: WC401 on the loss tag at the truth's first non-finite step; no WC402.
    truth = _truth(name)
    div = truth["expected_findings"]["divergence"]
    (run,) = analyze([str(REAL / name)], Settings()).runs
    found = {f.code: f for f in run.findings if f.tag == truth["tags"]["loss"]}
    assert found["WC401"].step == div["first_nonfinite_loss_step"], found["WC401"].message
    if div.get("wc402_expected") is False:
        assert not [f for f in run.findings if f.code == "WC402"], [f.message for f in run.findings]


@pytest.mark.parametrize("name", [c for c in CASES if _healthy(_truth(c))])
def test_healthy_runs_get_nothing_at_warning_or_error(name: str) -> None:
    outcome = analyze([str(REAL / name)], Settings())
    for run in outcome.runs:
        loud = [f for f in run.findings if f.severity.value != "info" and f.code.startswith(("WC3", "WC4"))]
        assert not loud, [f.message for f in loud]
