"""Schedule inference on the closed forms of every framework, at logging intervals 1, 7 and 50."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import schedules as sch
from factories import run_events, scalar_event, write_events

from warmcheck.config import Settings
from warmcheck.model import Series
from warmcheck.pipeline import analyze
from warmcheck.schedule import infer_schedule

P, W, T = 1e-3, 173, 2000

# name -> (LR_used(k) for k = 0..T-1, logging delta, HF-style run, scheduler type, warmup shape, decay shape)
CASES: dict[str, tuple[Callable[[], np.ndarray], int, bool, str | None, str, str]] = {
    "hf_linear": (lambda: sch.hf_linear(P, W, T), -1, True, None, "linear", "linear"),
    "hf_cosine": (lambda: sch.hf_cosine(P, W, T), -1, True, None, "linear", "cosine"),
    "hf_constant": (lambda: sch.hf_constant(P, W, T), -1, True, None, "linear", "constant"),
    "hf_inverse_sqrt": (lambda: sch.hf_inverse_sqrt(P, W, T), -1, True, None, "linear", "inverse-sqrt"),
    "hf_wsd": (lambda: sch.hf_wsd(P, W, T, decay=400), -1, True, None, "linear", "wsd"),
    "hf_cosine_with_min_lr": (lambda: sch.hf_cosine_with_min_lr(P, W, T), -1, True, None, "linear", "cosine"),
    "hf_cosine_warmup_with_min_lr": (lambda: sch.hf_cosine_warmup_with_min_lr(P, W, T), -1, True,
                                     "cosine_warmup_with_min_lr", "linear", "cosine"),
    "hf_v4_50_linear": (lambda: sch.hf_linear(P, W, T), 0, True, None, "linear", "linear"),  # logs the next LR
    "torch_linearlr_sequential": (lambda: sch.torch_linear_then_cosine(P, W, T), 0, False, None, "linear", "cosine"),
    "torch_onecycle": (lambda: sch.torch_onecycle(P, T, pct=0.3), 0, False, None, "cosine", "one-cycle"),
    "timm_warmup_prefix": (lambda: sch.timm_cosine(P, W, T - W, T, prefix=True), -1, False, None, "linear", "cosine"),
    "timm_no_prefix": (lambda: sch.timm_cosine(P, W, T, T, prefix=False), -1, False, None, "linear", "cosine"),
    "nanogpt": (lambda: sch.nanogpt(P, W, T - 1, T, P / 10), 0, False, None, "linear", "cosine"),
    "deepspeed_log": (lambda: sch.deepspeed_warmup(P, W, T, "log"), 0, False, None, "log", "constant"),
    "deepspeed_log_decay": (lambda: sch.deepspeed_warmup(P, W, T, "log", decay=True), 0, False, None, "log",
                            "linear"),
    "deepspeed_linear": (lambda: sch.deepspeed_warmup(P, W, T, "linear"), 0, False, None, "linear", "constant"),
    "book_appendix_d": (lambda: sch.book_appendix_d(P, T=T, ratio=0.0865), 0, False, None, "linear", "cosine"),
    "keras_cosine_decay": (lambda: sch.keras_cosine_decay(P, W, T - W), 0, False, None, "linear", "cosine"),
    "optax_warmup_cosine": (lambda: sch.optax_warmup_cosine(P, W, T), 0, False, None, "linear", "cosine"),
}


def _k_star(lr: np.ndarray) -> int:
    """Updates below the peak: the first update at the maximum (relative tolerance 1e-9)."""
    return int(np.flatnonzero(lr >= lr.max() * (1 - 1e-9))[0])


@pytest.mark.parametrize("interval", [1, 7, 50])
@pytest.mark.parametrize("name", sorted(CASES))
def test_closed_forms(name: str, interval: int) -> None:
    make, delta, hf, scheduler, warm_shape, decay_shape = CASES[name]
    lr = make()
    k = _k_star(lr)
    log = sch.logged(lr, k, delta=delta, interval=interval)
    s = infer_schedule(log.series, hf=hf, scheduler=scheduler)
    assert s is not None
    assert s.convention.delta == delta
    if interval == 1:
        assert (s.warmup_end_step, s.warmup_steps) == (log.first_peak_label, k)
        assert not s.warmup_end_estimated and s.warmup_end_bracket is None
        assert (s.warmup_shape, s.decay_shape) == (warm_shape, decay_shape)
    else:
        assert s.warmup_end_estimated and s.warmup_end_bracket is not None
        lo, hi = s.warmup_end_bracket
        assert lo <= log.first_peak_label <= hi, (s.warmup_end_bracket, log.first_peak_label)
        assert abs(s.warmup_end_step - log.first_peak_label) <= 1, (s.warmup_end_step, log.first_peak_label)
        assert abs(s.warmup_steps - k) <= 1
    assert s.peak_lr == float(log.series.values.max())


def test_book_founding_values() -> None:
    lr = sch.book_appendix_d()
    s = infer_schedule(sch.logged(lr, 27).series)
    assert (s.warmup_end_step, s.warmup_steps, s.total_steps) == (27, 27, 135)
    assert s.initial_lr == pytest.approx(1e-5) and s.peak_lr == pytest.approx(1e-3, rel=1e-6)
    assert s.final_lr == pytest.approx(1.020941e-5, rel=1e-4)
    assert (s.warmup_shape, s.decay_shape) == ("linear", "cosine")


def _series(values: np.ndarray, steps: np.ndarray | None = None) -> Series:
    steps = np.arange(values.shape[0], dtype=np.int64) if steps is None else steps.astype(np.int64)
    return Series("lr", steps, values.astype(np.float64), np.zeros(values.shape[0]))


def test_no_warmup() -> None:
    s = infer_schedule(_series(sch.hf_cosine(P, 0, 500)[1:]))
    assert s.no_warmup and s.warmup_end_step == 0 and s.warmup_steps == 0 and s.warmup_shape == "none"


def test_warmup_never_ends() -> None:
    s = infer_schedule(_series(sch.hf_linear(P, 800, 1000)[:500]))
    assert s.never_ends and s.warmup_end_step is None and s.warmup_steps is None


def test_staircase_from_per_epoch_stepping() -> None:
    per_step = sch.hf_linear(P, 40, 400)
    lr = per_step[np.arange(360) // 30]  # stepped once per 30-batch epoch
    s = infer_schedule(_series(lr))
    assert s.staircase is not None and s.staircase.length == 30 and s.never_ends


def test_rise_after_peak_and_collapse() -> None:
    lr = np.concatenate([sch.hf_cosine(P, 50, 500), sch.hf_cosine(P, 50, 300)])  # a second warmup
    s = infer_schedule(_series(lr))
    assert s.rise_after_peak is not None and s.rise_after_peak[0] == 501
    lr = np.concatenate([sch.hf_linear(P, 20, 200), np.zeros(300)])  # sized for 200 steps, ran 500
    s = infer_schedule(_series(lr))
    assert s.collapse_step is not None and 199 <= s.collapse_step <= 200 and s.rise_after_peak is None


@pytest.mark.parametrize("warmup_t,t_initial,heading,got", [
    (3, 10, 1.0, 0.79389),  # the reference trace [.1, .4, .7, .794, ...]: the decay took over mid-ramp
    (30, 100, 1.0, 0.97),  # the ramp tops out at .97, then drops to .85: it was heading for 1.0
])
def test_shortfall_when_the_ramp_turns_early(warmup_t: int, t_initial: int, heading: float, got: float) -> None:
    lr = sch.timm_cosine(1.0, warmup_t, t_initial, 4 * t_initial, prefix=False, warmup_lr_init=0.1, lr_min=0.0)
    s = infer_schedule(_series(lr))
    assert s.shortfall == pytest.approx((heading, got), rel=1e-4)
    assert infer_schedule(_series(sch.hf_cosine(P, 30, 200))).shortfall is None
    assert infer_schedule(_series(sch.timm_cosine(1.0, 30, 100, 200, prefix=True))).shortfall is None


def test_repeated_lr_in_warmup_from_skipped_steps() -> None:
    lr = sch.hf_linear(P, 50, 300)
    skipped = np.insert(lr, [10, 20], [lr[9], lr[19]])[:300]  # two fp16-overflow skips during warmup
    s = infer_schedule(_series(skipped))
    assert s.ramp_repeats == (10, 21) and s.warmup_steps == 52


def test_deepspeed_holds_the_minimum_for_two_updates() -> None:
    s = infer_schedule(_series(sch.deepspeed_warmup(P, 20, 200, "log", lo=1e-5)))
    assert s.leading_hold == 2 and s.warmup_steps == 20


def test_sparse_logging_brackets_hf_trainer_sample(tmp_path) -> None:
    # HF logging every 10 steps with warmup 50: the peak update (label 51) is never logged.
    lr = sch.hf_linear(5e-5, 50, 500)
    s = infer_schedule(sch.logged(lr, 50, delta=-1, interval=10).series, hf=True)
    assert s.warmup_end_bracket == (50, 60) and s.warmup_end_step == 51 and s.warmup_steps == 50


def test_resume_discontinuity_from_event_files(tmp_path) -> None:
    lr = sch.hf_cosine(P, 50, 1000)
    first = run_events(range(600), {"lr": lr[:600], "loss": np.linspace(5, 2, 600)})
    # The resume restored the optimizer but not the scheduler: the LR restarts its warmup at step 500.
    second = [scalar_event(t, s, float(v), 1.8e9 + s) for s in range(500, 1000)
              for t, v in (("lr", lr[s - 500]), ("loss", 2.0))]
    write_events(tmp_path / "events.out.tfevents.1700000000.h.1.0", first)
    write_events(tmp_path / "events.out.tfevents.1700009000.h.2.0", second)
    outcome = analyze([str(tmp_path)], Settings())
    codes = {(f.code, f.step) for f in outcome.runs[0].findings}
    assert ("WC107", 500) in codes and ("WC104", 501) in codes
