"""The warmup audit (WC2xx) on real training logs (tests/data/realruns), against their truth.json.

Issue 9: a sparse log never gives a false WC201 (a configured value whose reading falls inside the
bracket that holds the true peak is WC202 or WC206 at worst); explanations use only configured or
logged values; a per-epoch staircase still rising past the configured warmup is a WC201; a W-1 or
W+1 reading is consistent only when something confirms it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from warmcheck.config import Settings
from warmcheck.findings import Finding
from warmcheck.pipeline import analyze

REAL = Path(__file__).parent / "data" / "realruns"


def _truth(name: str) -> dict:
    path = REAL / name / "truth.json"
    assert path.is_file(), f"real run {name} is missing (scripts/realruns/ writes it)"
    return json.loads(path.read_text())


def _wc2(path: Path | str, settings: Settings) -> list[Finding]:
    """The WC2xx findings of every run under ``path``."""
    return [f for r in analyze([str(path)], settings).runs for f in r.findings if f.code.startswith("WC2")]


def _only(found: list[Finding]) -> Finding:
    """The one warmup verdict (all runs of a case must agree on its code)."""
    verdicts = [f for f in found if f.code in ("WC201", "WC202", "WC206")]
    assert verdicts and len({f.code for f in verdicts}) == 1, [(f.code, f.run, f.message) for f in verdicts]
    return verdicts[0]


# ---- item 1: sparse logging --------------------------------------------------------------------------
def test_sparse_hf_log_never_calls_a_value_inside_the_bracket_an_error() -> None:
    truth = _truth("hf_sparse_accum2_log10")
    obs, cfg = truth["observed_warmup"], truth["configured_warmup"]
    lo, hi = obs["bracket_from_log"]
    assert lo <= obs["true_peak_update"] <= hi
    right = _only(_wc2(REAL / "hf_sparse_accum2_log10", Settings(warmup_steps=cfg["warmup_steps"])))
    assert right.code in ("WC202", "WC206"), right.message
    bracket = right.details["bracket"]
    assert bracket[0] <= obs["true_peak_update"] <= bracket[1]
    # Every warmup whose peak (HF >= 4.51: at step W+1) lies inside the log's bracket: not an error.
    for w in range(lo - 1, hi):
        f = _only(_wc2(REAL / "hf_sparse_accum2_log10", Settings(warmup_steps=w)))
        assert f.code != "WC201", (w, f.message)
    # ... while one whose peak lies well past the first log after the peak is.
    far = _only(_wc2(REAL / "hf_sparse_accum2_log10", Settings(warmup_steps=hi + 5)))
    assert far.code == "WC201" and far.severity.value == "error"


def test_sparse_hf_log_with_its_own_configuration() -> None:
    truth = _truth("hf_sparse_accum2_log10")
    # args/text_summary: warmup_steps=0.1 (a ratio in transformers 5) of max_steps 103: ceil(10.3) = 11.
    f = _only(_wc2(REAL / "hf_sparse_accum2_log10", Settings()))
    assert f.code in ("WC202", "WC206"), f.message
    ceil = f"ceil({truth['configured_warmup']['ratio']:g} x {truth['configured_warmup']['total_steps']})"
    assert ceil in f.message or any(ceil == r["matched"] for r in f.details.get("readings", []))
    # int(10.3) = 10 is wrong by one but inside the bracket: undecidable, never an error (truth's claim_checks).
    (claim,) = [c for c in truth["claim_checks"] if c["claim"].startswith("warmup_steps=10 ")]
    assert "cannot rule it out" in claim["verdict"]
    assert _only(_wc2(REAL / "hf_sparse_accum2_log10", Settings(warmup_steps=10))).code == "WC206"


# ---- item 4: per-epoch stepping against a configured warmup ------------------------------------------
@pytest.mark.parametrize("warmup", [None, 50])
def test_per_epoch_staircase_contradicts_the_configured_warmup(warmup: int | None) -> None:
    truth = _truth("per_epoch_scheduler_step")
    w = warmup or truth["configured_warmup"]["warmup_steps"]
    plateau = truth["expected_findings"]["lr_plateau_length_steps"]
    (f,) = [f for f in _wc2(REAL / "per_epoch_scheduler_step", Settings(warmup_steps=w)) if f.code == "WC201"]
    assert f.severity.value == "error" and f.details["plateau_steps"] == plateau
    assert f.step == truth["logged_steps"]["last"]  # still rising at the last logged step
    assert f"{w} x {plateau} = {w * plateau}" in f.message and "stepped per epoch" in f.message
    if warmup is None:
        assert w * plateau == truth["observed_warmup"]["implied_warmup_steps_if_continued"]


def test_lightning_per_epoch_warmup_from_its_hparams() -> None:
    truth = _truth("lightning_per_epoch_warmup50")
    found = [f for f in _wc2(REAL / "lightning_per_epoch_warmup50", Settings()) if f.code == "WC201"]
    assert found, "the hparams' warmup must be audited against the staircase"
    w = truth["configured_warmup"]["warmup_steps"]
    assert all(f"warmup_steps={w}" in f.message and "plateaus" in f.message for f in found)


# ---- item 3: explanations only from configured or logged values --------------------------------------
def test_no_invented_ratio_without_a_configured_ratio() -> None:
    truth = _truth("llmfs_appendix_d_84")
    below = truth["observed_warmup"]["number_of_warmup_updates"]
    wrong = below + 4
    total = truth["total_optimizer_steps"]
    f = _only(_wc2(REAL / "llmfs_appendix_d_84", Settings(warmup_steps=wrong, total_steps=total)))
    assert f.code == "WC201" and f.details["explanation"] is None and " x " not in f.message
    assert f"({below} updates below peak)" in f.message
    cfg = truth["configured_warmup"]
    ok = _only(_wc2(REAL / "llmfs_appendix_d_84", Settings(warmup_ratio=cfg["ratio"], total_steps=cfg["total_steps"])))
    assert ok.code == "WC202" and ok.details["matched"] == f"int({cfg['ratio']:g} x {cfg['total_steps']})"
    assert ok.details["inputs"] == f"warmup_ratio {cfg['ratio']:g} from Settings.warmup_ratio, total " \
                                   f"{cfg['total_steps']} from Settings.total_steps"


def test_hf_ratio_names_where_its_inputs_came_from() -> None:
    truth = _truth("hf_linear_warmup_ratio")
    cfg = truth["configured_warmup"]
    f = _only(_wc2(REAL / "hf_linear_warmup_ratio" / "runs", Settings()))
    assert f.code == "WC202" and f.details["matched"] == f"ceil({cfg['ratio']:g} x {cfg['total_steps']})"
    assert f.details["inputs"] == f"warmup_ratio {cfg['ratio']:g} from args/text_summary warmup_steps, total " \
                                  f"{cfg['total_steps']} from args/text_summary max_steps"


def test_noconfig_torch_run_gets_no_formula() -> None:
    truth = _truth("torch_warmup30_noconfig")
    f = _only(_wc2(REAL / "torch_warmup30_noconfig", Settings(warmup_steps=20)))
    assert f.code == "WC201" and f.details["explanation"] is None, f.message
    # No "ratio x total" formula ("0.7 x its peak" describes the LR at the configured end, not a formula).
    assert not re.search(r"\d x \d", f.message) and "int(" not in f.message and "ceil(" not in f.message
    assert f.details["observed_warmup_steps"] in (truth["configured_warmup"]["warmup_steps"] - 1,
                                                  truth["configured_warmup"]["warmup_steps"])


# ---- item 7b: W-1 / W+1 only when something confirms it ------------------------------------------------
@pytest.mark.parametrize("name,why", [("diverge_sgd_in_warmup", "(k+1)/W ramp"),
                                      ("onecycle_pct025", "OneCycleLR's shape")])
def test_peak_at_w_minus_1_is_accepted_only_where_the_log_shows_why(name: str, why: str) -> None:
    truth = _truth(name)
    w = truth["configured_warmup"]["warmup_steps"]
    assert truth["observed_warmup"]["lr_first_reaches_peak_at_logged_step"] == w - 1
    f = _only(_wc2(REAL / name, Settings(warmup_steps=w)))
    assert f.code == "WC202" and f.details["matched"] == f"warmup_steps - 1 = {w - 1}" and why in f.details["inputs"]


def test_plain_linearlr_one_update_short_is_undecided_not_consistent() -> None:
    truth = _truth("lightning_csv_linear15")  # LinearLR from a start factor: nothing confirms a W-1 reading
    w = truth["configured_warmup"]["warmup_steps"]
    f = _only(_wc2(REAL / "lightning_csv_linear15", Settings(warmup_steps=w + 1)))
    assert f.code == "WC206" and "nothing configured or logged confirms" in f.message


def test_legacy_last_lr_log_is_never_silently_one_off() -> None:
    truth = _truth("torch_legacy_last_lr_linearlr")
    w = truth["configured_warmup"]["warmup_steps"]
    f = _only(_wc2(REAL / "torch_legacy_last_lr_linearlr", Settings(warmup_steps=w)))
    assert f.code in ("WC202", "WC206"), f.message
    if f.code == "WC202":  # consistent only under a confirmed reading, never as a silent "warmup_steps - 1"
        assert f.details["matched"] == f"warmup_steps={w}"


def test_hf_cosine_warmup_with_min_lr_peak_at_w_minus_1_is_confirmed_by_its_arguments() -> None:
    truth = _truth("hf_cosine_min_lr_warmup")
    w, below = truth["configured_warmup"]["warmup_steps"], truth["observed_warmup"]["updates_below_peak"]
    assert below == w - 1
    f = _only(_wc2(REAL / "hf_cosine_min_lr_warmup", Settings()))  # the event file's TrainingArguments
    assert f.code == "WC202" and f.details["matched"] == f"warmup_steps - 1 = {below}"
    assert "cosine_warmup_with_min_lr" in f.details["inputs"]
    # trainer_state.json alone names no scheduler: never an error, and a W-1 match only where confirmed.
    alone = _only(_wc2(REAL / "hf_cosine_min_lr_warmup" / "trainer_state.json", Settings(warmup_steps=w)))
    assert alone.code in ("WC202", "WC206"), alone.message
    if alone.code == "WC202" and alone.details["matched"].startswith("warmup_steps - 1"):
        assert "(k+1)/W ramp" in alone.details["inputs"]
