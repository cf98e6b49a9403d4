"""The warmup audit: mismatch scenarios M1-M13, M18, M19 of the reference, and consistent configurations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import schedules as sch

from warmcheck.config import Settings
from warmcheck.model import Format, Fragment, Run, SourceInfo, SourceRead
from warmcheck.pipeline import analyze_run
from warmcheck.readers.assemble import assemble_run

P = 1e-3


def run_of(lr_used: np.ndarray, *, delta: int = 0, interval: int = 1, fmt: Format = Format.TFEVENTS,
           metadata: dict | None = None, tag: str = "lr") -> Run:
    """A run whose LR series is ``lr_used`` as a logger with ``delta`` writes it, plus a flat loss.

    HF-format runs count completed updates from 1, whatever their logging offset."""
    one_based = True if fmt is Format.HF_TRAINER_STATE else None
    log = sch.logged(lr_used, 0, delta=delta, interval=interval, tag=tag, one_based=one_based).series
    frags = [Fragment(tag, log.steps, log.values, log.wall_times),
             Fragment("loss", log.steps, np.full(log.points, 2.0), log.wall_times)]
    read = SourceRead(SourceInfo("x", fmt), frags, metadata or {})
    return assemble_run("r", "r", [read])


def codes(run: Run, settings: Settings) -> dict[str, dict]:
    """Findings of the analysed run by code (at most one per code in these tests)."""
    out = {}
    for f in analyze_run(run, settings).findings:
        out[f.code] = {"step": f.step, "message": f.message, **f.details}
    return out


def assert_no_wc2_alarm(found: dict[str, dict]) -> None:
    loud = {c for c in found if c.startswith("WC2") and c not in ("WC202", "WC205", "WC206")}
    assert not loud, {c: found[c]["message"] for c in loud}


# ---- M1: the documented warmup differs from the computed one (the founding case)
def test_m1_book_says_20_code_computes_27() -> None:
    run = run_of(sch.book_appendix_d())
    found = codes(run, Settings(warmup_steps=20))
    msg = found["WC201"]["message"]
    # No ratio was configured: nothing may claim the 27 came from "int(0.2 x 135)".
    assert found["WC201"]["step"] == 27 and found["WC201"]["explanation"] is None
    lr20 = sch.book_appendix_d()[20]
    assert msg == "warmup ends at step 27 (27 updates below peak); configured warmup_steps=20 " \
                  f"(Settings.warmup_steps) disagrees: at step 20 the LR was {lr20:.3g}, still rising " \
                  f"({lr20 / P:.2g} x its peak)"
    ok = codes(run, Settings(warmup_ratio=0.2))
    assert "WC201" not in ok and ok["WC202"]["matched"] == "int(0.2 x 135)"
    assert "warmup_ratio 0.2 from Settings.warmup_ratio, total 135 = the logged length (steps 0..134)" == \
        ok["WC202"]["inputs"]


# ---- M2: the ratio applied to micro-batches instead of optimizer updates ----------------------------
def test_m2_ratio_applied_to_micro_batches() -> None:
    run = run_of(sch.hf_linear(P, 24, 120), delta=-1, fmt=Format.HF_TRAINER_STATE)  # ceil(0.1 x 240) = 24
    found = codes(run, Settings(warmup_ratio=0.1, grad_accum=2))
    assert "micro-batches" in found["WC201"]["explanation"] and "0.1 x 240" in found["WC201"]["explanation"]


# ---- M3: the scheduler stepped per micro-batch: warmup ends G x early --------------------------------
def test_m3_scheduler_stepped_per_micro_batch() -> None:
    found = codes(run_of(sch.hf_linear(P, 10, 300)), Settings(warmup_steps=40, grad_accum=4))
    assert "stepped per micro-batch" in found["WC201"]["explanation"]
    assert found["WC201"]["explanation_inputs"] == "warmup_steps 40 from Settings.warmup_steps, grad_accum 4 " \
        "from Settings.grad_accum"


# ---- M4: the scheduler stepped once per process
def test_m4_multi_process_stepping() -> None:
    found = codes(run_of(sch.hf_linear(P, 50, 600)), Settings(warmup_steps=100))
    assert "2 times per update" in found["WC201"]["explanation"]


# ---- M5: ceil vs int vs round
def test_m5_hf_rounds_up() -> None:
    hf = {"fmt": Format.HF_TRAINER_STATE, "delta": -1}
    good = codes(run_of(sch.hf_linear(P, 7, 113), **hf), Settings(warmup_ratio=0.06))
    assert good["WC202"]["matched"] == "ceil(0.06 x 113)" and "WC201" not in good
    bad = codes(run_of(sch.hf_linear(P, 6, 113), **hf), Settings(warmup_ratio=0.06))
    assert bad["WC201"]["explanation"] == "int(0.06 x 113)"


# ---- M6: floor vs ceil updates per epoch
def test_m6_updates_per_epoch_floor_vs_ceil() -> None:
    cfg = Settings(epochs=4, steps_per_epoch=25, grad_accum=2)
    floor = codes(run_of(sch.hf_cosine(P, 5, 48)), cfg)  # 4 x floor(25/2)
    assert "floor(25/2)" in floor["WC205"]["matched"] and "WC203" not in floor
    assert "WC205" not in codes(run_of(sch.hf_cosine(P, 5, 52)), cfg)  # 4 x ceil(25/2): the plain reading
    wrong = codes(run_of(sch.hf_cosine(P, 5, 60)), cfg)
    assert wrong["WC203"]["observed_total"] == 60


# ---- M7: per-epoch stepping of a per-step schedule ------------------------------------------------------------
def test_m7_staircase() -> None:
    lr = sch.hf_linear(P, 40, 400)[np.arange(360) // 30]
    found = codes(run_of(lr), Settings(warmup_steps=40))
    assert found["WC105"]["plateau_steps"] == 30 and "WC102" in found
    # Still rising at step 359, 320 updates after a 40-step warmup would have ended: a sure mismatch.
    wc201 = found["WC201"]
    assert wc201["step"] == 359 and wc201["plateau_steps"] == 30 and "WC206" not in found
    assert "30-step plateaus and had not reached its peak at step 359" in wc201["message"]
    assert "40 x 30 = 1200" in wc201["message"]
    # A staircase that does reach its peak: the configured steps counted in epochs explain it.
    peaked = codes(run_of(sch.hf_linear(P, 5, 20)[np.arange(600) // 50]), Settings(warmup_steps=5))
    assert peaked["WC201"]["explanation"].startswith("5 x 50: the scheduler stepped once per 50-update epoch")


def test_still_rising_at_the_end_of_a_long_enough_run() -> None:
    lr = sch.hf_linear(P, 800, 1000)[:500]
    found = codes(run_of(lr), Settings(warmup_steps=300))
    assert found["WC201"]["step"] == 499 and found["WC201"]["earliest_possible_warmup_steps"] == 499
    assert "WC206" in codes(run_of(lr), Settings(warmup_steps=499))  # a peak at 499 or 500 is still possible


# ---- M8: warmup at least as long as the run
def test_m8_warmup_longer_than_the_run() -> None:
    found = codes(run_of(sch.hf_linear(P, 800, 1000)[:500]), Settings(warmup_steps=800))
    assert found["WC102"]["last_step"] == 499 and "WC206" in found


# ---- M9: coarse logging hides the end
def test_m9_coarse_logging_brackets_the_end() -> None:
    run = run_of(sch.hf_linear(P, 173, 2000), delta=-1, interval=50, fmt=Format.HF_TRAINER_STATE)
    found = codes(run, Settings(warmup_steps=173))
    assert found["WC202"]["estimated"] is True
    assert "estimated: between steps 151 and 200" in found["WC202"]["message"]
    assert "WC201" in codes(run, Settings(warmup_steps=120))


# ---- M10: the logging offset (HF <= 4.50 logs the next update's LR, >= 4.51 the current one)
@pytest.mark.parametrize("delta", [0, -1])
def test_m10_logging_offset(delta: int) -> None:
    run = run_of(sch.hf_linear(P, 30, 200), delta=delta, fmt=Format.HF_TRAINER_STATE)
    found = codes(run, Settings(warmup_steps=30))
    assert found["WC202"]["observed_warmup_steps"] == 30 and found["WC202"]["observed_end_step"] == 30 - delta


# ---- M11: zero or minimum LR at the start
def test_m11_idle_first_updates() -> None:
    ds = codes(run_of(sch.deepspeed_warmup(P, 20, 200, "log")), Settings())
    assert ds["WC109"]["updates"] == 2
    assert "WC109" not in codes(run_of(sch.hf_linear(P, 20, 200)), Settings())  # one zero update is the norm


# ---- M12: the peak is never reached
def test_m12_peak_never_reached() -> None:
    found = codes(run_of(sch.timm_cosine(1.0, 3, 10, 40, prefix=False, warmup_lr_init=0.1, lr_min=0.0)), Settings())
    assert found["WC103"]["ratio"] == pytest.approx(0.79389, rel=1e-4)
    low = codes(run_of(sch.hf_cosine(P, 20, 200)), Settings(peak_lr=2e-3))
    assert low["WC103"]["ratio"] == pytest.approx(0.5, rel=1e-6)
    high = codes(run_of(sch.hf_cosine(P, 20, 200)), Settings(peak_lr=5e-4))
    assert high["WC204"]["observed_peak"] == pytest.approx(P, rel=1e-6)


# ---- M13: peak one step early or late
def test_m13_peak_one_step_early_or_late() -> None:
    late = codes(run_of(sch.deepspeed_warmup(P, 20, 200, "linear")), Settings(warmup_steps=20))  # k* = 21
    assert "one update late" in late["WC202"]["message"] and "WC201" not in late
    # A (k+1)/W ramp: it extrapolates to 0 one update before the first, which confirms the peak at W-1.
    kp1 = sch.hf_cosine_warmup_with_min_lr(P, 40, 400)
    early = codes(run_of(kp1), Settings(warmup_steps=40))  # k* = 39
    assert "W-th update" in early["WC202"]["message"] and "(k+1)/W ramp" in early["WC202"]["inputs"]
    # Nothing confirms W-1 for a ramp from a start value (LinearLR): one update early cannot be decided.
    linear = codes(run_of(sch.torch_linear_then_cosine(P, 39, 400)), Settings(warmup_steps=40))
    assert "WC201" not in linear and "WC202" not in linear
    assert "nothing configured or logged confirms" in linear["WC206"]["message"]
    assert linear["WC206"]["readings"] == [{"delta": 0, "warmup_steps": 39, "matched": "warmup_steps - 1 = 39",
                                            "confirmed": False, "note": linear["WC206"]["readings"][0]["note"]}]
    hf = codes(run_of(sch.hf_linear(P, 21, 200), delta=-1, fmt=Format.HF_TRAINER_STATE), Settings(warmup_steps=20))
    assert "WC201" in hf  # HF runs its peak at exactly W: W+1 is not a convention there


# ---- M18: skipped optimizer steps during warmup (fp16 overflow)
def test_m18_skipped_steps() -> None:
    lr = sch.hf_linear(P, 50, 300)
    skipped = np.insert(lr, [10, 20], [lr[9], lr[19]])[:300]
    found = codes(run_of(skipped), Settings(warmup_steps=50))
    assert found["WC110"]["count"] == 2 and found["WC202"]["matched"] == "50 + 2 skipped optimizer steps"


# ---- M19: a resume that did not restore the scheduler
def test_m19_resume_discontinuity() -> None:
    lr = sch.hf_cosine(P, 50, 1000)
    log = sch.logged(lr, 0).series
    first = Fragment("lr", log.steps[:600], log.values[:600], log.wall_times[:600])
    second = Fragment("lr", log.steps[500:], np.concatenate([lr[:500]]).astype(np.float32).astype(float),
                      log.wall_times[500:])
    reads = [SourceRead(SourceInfo("a", Format.TFEVENTS), [first], sort_key=(1.0, "a")),
             SourceRead(SourceInfo("b", Format.TFEVENTS), [second], sort_key=(2.0, "b"))]
    found = codes(assemble_run("r", "r", reads), Settings())
    assert found["WC107"]["step"] == 500 and found["WC104"]["step"] == 501


# ---- consistent configurations under each framework's convention: no WC2xx warning or error
CONSISTENT = [
    ("hf_linear_ratio", lambda: sch.hf_linear(P, 7, 113), -1, Format.HF_TRAINER_STATE, {},
     Settings(warmup_ratio=0.06)),
    ("hf_cosine_steps", lambda: sch.hf_cosine(P, 50, 500), -1, Format.HF_TRAINER_STATE, {}, Settings(warmup_steps=50)),
    ("hf_cosine_warmup_with_min_lr", lambda: sch.hf_cosine_warmup_with_min_lr(P, 50, 500), -1, Format.TFEVENTS,
     {"text": {"args/text_summary": json.dumps({"lr_scheduler_type": "cosine_warmup_with_min_lr",
                                                "warmup_steps": 50})}}, Settings()),
    ("torch_linearlr", lambda: sch.torch_linear_then_cosine(P, 15, 117), 0, Format.CSV, {}, Settings(warmup_steps=15)),
    ("torch_onecycle", lambda: sch.torch_onecycle(P, 160, pct=0.25), 0, Format.TFEVENTS, {},
     Settings(warmup_ratio=0.25)),
    ("timm_prefix", lambda: sch.timm_cosine(P, 15, 145, 160, prefix=True), -1, Format.TFEVENTS, {},
     Settings(warmup_steps=15)),
    ("nanogpt", lambda: sch.nanogpt(P, 40, 400, 401, P / 10), 0, Format.CSV, {}, Settings(warmup_steps=40)),
    ("deepspeed_log", lambda: sch.deepspeed_warmup(P, 20, 200, "log"), 0, Format.TFEVENTS, {},
     Settings(warmup_steps=20)),
    ("deepspeed_linear", lambda: sch.deepspeed_warmup(P, 20, 200, "linear"), 0, Format.TFEVENTS, {},
     Settings(warmup_steps=20)),
    ("book", lambda: sch.book_appendix_d(P, T=84), 0, Format.CSV, {}, Settings(warmup_ratio=0.2)),
    ("keras", lambda: sch.keras_cosine_decay(P, 30, 170), 0, Format.TFEVENTS, {}, Settings(warmup_steps=30)),
    ("optax", lambda: sch.optax_warmup_cosine(P, 30, 200), 0, Format.TFEVENTS, {}, Settings(warmup_steps=30)),
    ("lambda_k_plus_1", lambda: sch.hf_cosine_warmup_with_min_lr(P, 80, 160), 0, Format.TFEVENTS, {},
     Settings(warmup_steps=80)),
]


@pytest.mark.parametrize("name,make,delta,fmt,meta,settings", CONSISTENT, ids=[c[0] for c in CONSISTENT])
def test_consistent_configurations(name, make, delta, fmt, meta, settings) -> None:
    found = codes(run_of(make(), delta=delta, fmt=fmt, metadata=meta), settings)
    assert_no_wc2_alarm(found)
    assert "WC202" in found, found


def test_sparse_log_tolerates_a_few_skipped_fp16_steps() -> None:
    lr = sch.hf_linear(1e-5, 500, 5000)
    skipped = np.insert(lr, [30, 60, 90], [lr[29], lr[59], lr[89]])[:5000]  # three loss-scale overflows
    run = run_of(skipped, delta=-1, interval=25, fmt=Format.HF_TRAINER_STATE)
    found = codes(run, Settings(warmup_steps=500))
    # 503 updates below peak: 500 fits only if three steps were skipped, which the log cannot show.
    assert "WC201" not in found and "WC202" not in found and "fp16" in found["WC206"]["message"]
    far = run_of(sch.hf_linear(1e-5, 530, 5000), delta=-1, interval=25, fmt=Format.HF_TRAINER_STATE)
    assert "WC201" in codes(far, Settings(warmup_steps=500))


def test_warmup_hidden_before_the_first_log() -> None:
    # HF <= 4.50 logging every 50 steps with a 50-step warmup: the first log is already the peak.
    run = run_of(sch.hf_cosine(1e-6, 50, 1000), delta=0, interval=50, fmt=Format.HF_TRAINER_STATE)
    found = codes(run, Settings(warmup_steps=50))
    assert "WC206" in found and "WC201" not in found
    assert "WC201" in codes(run, Settings(warmup_steps=80))
