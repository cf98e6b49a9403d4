"""The audit's verdict must hold under every reading the log allows (issue 9, items 1, 3, 7b).

The schedule is inferred from a synthetic log, then one thing the audit reads is changed (an ambiguous
step convention, an estimate that is off while its bracket still holds the truth) to check that the
audit is safe on its own, whatever the estimate.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import schedules as sch
from analyzers.test_warmup_audit import P, codes, run_of

from warmcheck.analyzers.warmup_audit import WarmupAudit
from warmcheck.config import Settings
from warmcheck.model import Format, Run, Schedule
from warmcheck.pipeline import analyze_run


def analysed(run: Run) -> Run:
    return analyze_run(run, Settings())


def audit(run: Run, sched: Schedule, settings: Settings) -> dict[str, dict]:
    """WC2xx findings of ``run`` with its primary schedule replaced by ``sched``."""
    changed = dataclasses.replace(run, schedules=(sched, *run.schedules[1:]))
    return {f.code: {"step": f.step, "message": f.message, **f.details}
            for f in WarmupAudit().check(changed, settings)}


# ---- 7b: Convention.alternatives ------------------------------------------------------------------------
def test_a_value_matching_only_an_alternative_step_reading_is_undecided() -> None:
    run = analysed(run_of(sch.hf_linear(P, 30, 300), delta=-1, fmt=Format.HF_TRAINER_STATE))
    s = run.schedules[0]
    assert (s.warmup_end_step, s.warmup_steps, s.convention.delta) == (31, 30, -1)
    ambiguous = dataclasses.replace(s, convention=dataclasses.replace(s.convention, alternatives=(0,)))
    # 31 fits only if step s logs the LR update s used with 0-based counting (delta 0): never silently accepted.
    found = audit(run, ambiguous, Settings(warmup_steps=31))
    assert set(found) == {"WC206"}
    assert [r["matched"] for r in found["WC206"]["readings"]] == [None, "warmup_steps=31"]
    assert "which the values cannot rule out" in found["WC206"]["message"]
    # 30: the ramp rises by peak/30 per update, so under delta 0 it is a (k-1)/W ramp peaking at W+1 = 31.
    found = audit(run, ambiguous, Settings(warmup_steps=30))
    assert set(found) == {"WC202"} and "every reading of the steps" in found["WC202"]["message"]
    # Without the alternative, 30 is consistent and 31 a mismatch, as before.
    assert "WC202" in audit(run, s, Settings(warmup_steps=30))
    assert "WC201" in audit(run, s, Settings(warmup_steps=31))
    # Far from both readings: an error whatever the reading.
    assert "WC201" in audit(run, ambiguous, Settings(warmup_steps=40))


def test_a_value_matching_only_the_assumed_reading_is_undecided() -> None:
    # LinearLR from a start factor: the ramp confirms no W+-1 reading; under delta +1 the peak is update 16.
    run = analysed(run_of(sch.torch_linear_then_cosine(P, 15, 117)))
    s = run.schedules[0]
    assert (s.warmup_steps, s.convention.delta) == (15, 0)
    ambiguous = dataclasses.replace(s, convention=dataclasses.replace(s.convention, alternatives=(1,)))
    found = audit(run, ambiguous, Settings(warmup_steps=15))
    assert set(found) == {"WC206"}
    assert "fits the assumed reading (15 updates below peak = warmup_steps=15)" in found["WC206"]["message"]
    assert [(r["delta"], r["matched"], r["confirmed"]) for r in found["WC206"]["readings"]] == [
        (0, "warmup_steps=15", True), (1, "warmup_steps + 1 = 16", False)]


def test_a_value_consistent_under_every_reading_stays_consistent() -> None:
    # A (k+1)/W ramp logged 0-based: W-1 is confirmed by the ramp under delta 0, and under delta +1 the
    # peak is the plain W. Either way warmup_steps=40 is what ran.
    run = analysed(run_of(sch.hf_cosine_warmup_with_min_lr(P, 40, 400)))
    s = run.schedules[0]
    ambiguous = dataclasses.replace(s, convention=dataclasses.replace(s.convention, alternatives=(1,)))
    found = audit(run, ambiguous, Settings(warmup_steps=40))
    assert set(found) == {"WC202"} and "every reading of the steps" in found["WC202"]["message"]


# ---- 1: the bracket decides, not the point estimate -----------------------------------------------------
def sparse_hf() -> tuple[Run, Schedule]:
    # HF >= 4.51, 11 warmup updates, logged every 10: the peak (step 12) between the logs at 10 and 20.
    run = analysed(run_of(sch.hf_linear(P, 11, 103), delta=-1, interval=10, fmt=Format.HF_TRAINER_STATE))
    s = run.schedules[0]
    assert s.warmup_end_estimated and s.warmup_end_bracket is not None
    lo, hi = s.warmup_end_bracket
    assert lo <= 12 <= hi
    return run, s


def test_an_estimate_that_is_off_never_makes_a_value_inside_the_bracket_an_error() -> None:
    run, s = sparse_hf()
    lo, hi = s.warmup_end_bracket  # type: ignore[misc]
    off = dataclasses.replace(s, warmup_end_step=hi, warmup_steps=hi - 1)  # the estimate of the original bug
    for w in range(lo - 1, hi):  # peak at step w+1 under HF's reading: inside the bracket
        found = audit(run, off, Settings(warmup_steps=w))
        assert "WC201" not in found, (w, found)
    found = audit(run, off, Settings(warmup_steps=11))
    assert set(found) == {"WC206"} and found["WC206"]["bracket"] == [lo, hi]
    assert found["WC206"]["candidates_in_bracket"] and "inside the bracket" in found["WC206"]["message"]
    assert "WC201" in audit(run, off, Settings(warmup_steps=hi + 5))


def test_a_matching_estimate_with_a_rival_inside_its_tolerance_is_undecided() -> None:
    run, s = sparse_hf()
    assert "WC202" in audit(run, s, Settings(warmup_steps=11))
    # A config file said 12, the flag says 11: the estimate (11, +-1) cannot tell them apart.
    rival = dataclasses.replace(run, metadata={"config_files": {"r/config.yaml": {"warmup_steps": 12}}})
    found = audit(rival, s, Settings(warmup_steps=11))
    assert set(found) == {"WC206"} and found["WC206"]["rivals"][0]["value"] == 12
    # 22 reads outside the bracket; the scheduler stepped per micro-batch explains the observation.
    found = audit(run, s, Settings(warmup_steps=22, grad_accum=2))
    assert found["WC201"]["explanation"] == "22 / grad_accum 2: scheduler stepped per micro-batch"


# ---- 3: formulas only from configured or logged inputs --------------------------------------------------
def test_ratio_without_a_total_names_the_logged_length_and_its_uncertainty() -> None:
    run, s = sparse_hf()
    found = audit(run, s, Settings(warmup_ratio=0.1))
    (code,) = found
    msg = found[code]["message"]
    assert code != "WC201" and "the log ends at step 100, every 10" in msg


def test_no_common_ratio_is_guessed() -> None:
    # 60 updates below peak in a 200-step run: 0.3 x 200, but no ratio was configured.
    found = codes(run_of(sch.hf_linear(P, 60, 200)), Settings(warmup_steps=20))
    assert found["WC201"]["explanation"] is None and "0.3 x" not in found["WC201"]["message"]
    assert "(expected" not in found["WC201"]["message"]  # it would only repeat the configured 20


def test_an_overridden_setting_can_explain_a_mismatch() -> None:
    lr = sch.hf_linear(P, 27, 135)
    run = run_of(lr, metadata={"config_files": {"run/config.yaml": {"warmup_ratio": 0.2, "max_steps": 135}}})
    found = codes(run, Settings(warmup_steps=20))
    f = found["WC201"]
    assert f["explanation"] == "int(0.2 x 135)"
    assert f["explanation_inputs"] == ("warmup_ratio 0.2 from config.yaml warmup_ratio, overridden by "
                                       "Settings.warmup_steps, total 135 from config.yaml max_steps")


def test_per_epoch_staircase_that_peaks_is_explained_by_the_plateau_length() -> None:
    lr = sch.hf_linear(P, 6, 30)[np.arange(600) // 40]
    found = codes(run_of(lr), Settings(warmup_steps=6))
    assert found["WC201"]["step"] == 240
    assert found["WC201"]["explanation_inputs"] == "warmup_steps 6 from Settings.warmup_steps; plateaus of 40 " \
        "logged steps"
