"""Real training runs logged by plain torch loops (``torch.utils.tensorboard.SummaryWriter``) and timm.

Usage: ``python scripts/realruns/torch_runs.py [OUT_DIR] [CASE ...]`` (default OUT_DIR
``tests/data/realruns``, default: every case). Each case is an actual CPU training of the tiny model in
``tiny.py`` with fixed seeds; an intervention in the *training* (an LR multiplied for a few steps, a
batch of another distribution) is stated in the case's ``truth.json``. Nothing is edited into a log
afterwards: the truth is computed from the event files as written (``torch_common.read_scalars``) and
cross-checked against the closed-form schedule by assertions.

Tags: ``train/lr`` (the LR the update used, read from the optimizer's param group), ``train/loss``
and ``train/grad_norm`` (the total norm returned by ``torch.nn.utils.clip_grad_norm_``, before clipping).
The schedule cases are in ``torch_schedule_runs.py``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import torch_common as tc  # noqa: E402
from tiny import TinyLM, batches, corpus, seed_all  # noqa: E402

NOISE = 0.3


def _spike_training(noisy: bool, p: float = NOISE, q: float = 1.0) -> tuple[list[tuple[float, float, float]], int]:
    """The sustained-spike run (``noisy``) or its control (same seeds, no intervention).

    During steps 51..80 each batch is corrupted with probability ``q`` (1: every batch), each character
    of a corrupted batch replaced by a uniform one with probability ``p``.
    """
    seed_all(1)
    data = corpus(200_000)
    model = TinyLM()
    opt = tc.adamw(model, 3e-3)
    f = tc.warmup_cosine(1.0, 50, 300, floor=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
    noise = np.random.default_rng(123)
    stream = batches(data, batch=16, seed=1)
    rows = []
    for s in range(300):
        x, y = next(stream)
        if noisy and 51 <= s <= 80 and (q >= 1.0 or noise.random() < q):  # character noise (p per char)
            chars = torch.cat([x, y[:, -1:]], 1)
            hit = torch.from_numpy(noise.random(chars.shape) < p)
            chars = torch.where(hit, torch.from_numpy(noise.integers(0, 30, size=chars.shape)), chars)
            x, y = chars[:, :-1], chars[:, 1:]
        lr = tc.lr_of(opt)
        loss, gnorm = tc.update(model, opt, x, y, max_norm=1.0)
        sched.step()
        rows.append((lr, loss, gnorm))
    return rows, 300


def sustained_spike_bursty(out: Path) -> None:
    """A bad-data stretch mixed with clean batches: the loss dips inside the episode (not a recovery)."""
    sustained_spike_1p5x(out, name="sustained_spike_bursty", p=0.22, q=0.85)


def sustained_spike_1p5x(out: Path, name: str = "sustained_spike_1p5x", p: float = NOISE, q: float = 1.0) -> None:
    run_dir, w = tc.fresh(out, name)
    rows, total = _spike_training(noisy=True, p=p, q=q)
    for s, (lr, loss, gnorm) in enumerate(rows):
        tc.log(w, s, lr, loss, gnorm)
    w.close()
    control = [r[1] for r in _spike_training(noisy=False)[0]]
    which = ("every window" if q >= 1.0 else
             f"each batch with probability {q:g} (the others clean, so the loss dips inside the episode)")
    peak = 3e-3
    note = ("Real sustained moderate spike right after warmup: AdamW(0.9,0.95) peak 3e-3, linear warmup 50 "
            "steps (peak LR used at 0-based step 49), cosine to 0.1x peak at step 300, clip_grad_norm_(1.0). "
            f"Intervention in the training data: for steps 51..80, in {which}, every character (inputs and "
            f"targets) is replaced with probability {p:g} by a uniformly random one (unlearnable noise), so the "
            "loss rises to ~1.5x its expected value for 30 steps and falls back when the clean data returns at "
            "step 81. A control run (same seeds, no intervention, not logged) gives the counterfactual loss.")
    truth, sc = tc.base_truth(name, note, run_dir, total, tc.ZERO_BASED, schedule={
        "family": "linear_warmup_then_cosine", "peak_lr": peak, "optimizer": "AdamW betas=(0.9,0.95) wd=0",
        "warmup_formula": "peak*(s+1)/50 for s<50; then peak*(0.1+0.9*0.5*(1+cos(pi*(s-50)/250)))"},
        configured_warmup={"warmup_steps": 50, "rounding": "integer; (s+1)/W form: peak used at 0-based step 49"})
    lr, loss = sc[tc.TAGS["lr"]], sc[tc.TAGS["loss"]]
    tc.check_closed_form(lr, lambda s: peak * tc.warmup_cosine(1.0, 50, 300, 0.1)(s))
    truth["observed_warmup"] = tc.peak_obs(lr)
    assert truth["observed_warmup"]["lr_first_reaches_peak_at_logged_step"] == 49
    base_steps = (41, 50)
    baseline = median(tc.window(loss, *base_steps).values())
    upper = 1.10 * baseline
    onset, last, recovery = tc.elevated_region(loss, 49, baseline, upper)
    region = tc.window(loss, onset, last if last is not None else max(loss))
    peak_step = max(region, key=lambda s: region[s])
    ratios_control = {s: loss[s] / control[s] for s in range(45, 96)}
    assert onset == 51 and last is not None and recovery is not None and 78 <= last <= 86
    if q >= 1.0:
        assert median(ratios_control[s] for s in range(51, 81)) >= 1.5
    corpus_end = next((s for s in sorted(loss) if s >= onset + 9 and tc.trailing_median(loss, s) < 1.05 * baseline),
                      None)
    at_15 = [s for s in region if region[s] >= 1.5 * baseline]
    truth["expected_findings"] = {
        "divergence": None, "nonfinite_loss": False,
        "spike": {
            "cause": f"steps 51..80 trained, in {which}, on windows whose characters were replaced with "
                     f"probability {p:g} by uniformly random ones (data intervention)",
            "intervention_steps": [51, 80],
            "baseline_median": baseline, "baseline_window_steps": list(base_steps),
            "expected_value_rule": "the per-step expected value is the control run's loss (same seeds, no "
                                   "intervention: control_loss_values); baseline_median = median of the 10 logged "
                                   "losses at steps 41..50 just before the onset (the log's own reference level)",
            "max_ratio_to_control": max(ratios_control[s] for s in range(onset, 81)),
            "median_ratio_to_control_51_80": median(ratios_control[s] for s in range(51, 81)),
            "min_ratio_to_control_51_80": min(ratios_control[s] for s in range(51, 81)),
            "normal_band": [None, upper],
            "normal_band_rule": "loss <= 1.10 x baseline_median",
            "elevated_region": [onset, last],
            "elevated_region_rule": "first step >= 49 (warmup end) with loss > 1.25 x baseline_median, to the step "
                                    "before recovery_step",
            "recovery_step": recovery,
            "recovery_rule": "first step after the onset from which 10 consecutive logged losses are all within "
                             "the normal band (back and staying there, not the first dip)",
            "duration_steps": last - onset + 1,
            "elevated_region_corpus_rule": [onset, corpus_end],
            "elevated_region_corpus_rule_text": "as early_spike_w25: to the first step whose trailing 10-step "
                                                "median (all 10 steps after the onset) < 1.05 x baseline_median",
            "steps_at_or_above_1p5x": len(at_15),
            "longest_run_at_or_above_1p5x": tc.longest_run(at_15, sorted(loss)),
            "max_loss_step": peak_step, "max_loss": region[peak_step],
            "max_ratio_to_baseline": region[peak_step] / baseline,
            "median_ratio_to_baseline_in_region": median(v / baseline for v in region.values()),
            "min_ratio_to_baseline_in_region": min(region.values()) / baseline,
            "steps_after_warmup_end": onset - 49,
            "phase": "just after warmup (decay phase, LR near peak)",
            "recovered_to_baseline": True,
            "expected_severity": "warning (>= 1.5x for >= 10 steps, issue 9 item 9)",
            "loss_values": tc.window(loss, 45, 95),
            "control_loss_values": {s: control[s] for s in range(45, 96)},
            "ratio_to_control": ratios_control,
        },
        "truncated": False, "resume_overlap": None,
    }
    tc.finish(run_dir, truth, loss)


def finite_loss_inf_gradnorm(out: Path) -> None:
    name = "torch_finite_loss_inf_gradnorm"
    run_dir, w = tc.fresh(out, name)
    seed_all(0)
    data = corpus(200_000)
    model = TinyLM()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    total = 220

    def f(s: int) -> float:  # an LR range test: exponential growth, x10 every ~32 steps
        return 1e-4 * 1e5 ** (s / 159)

    stream = batches(data, batch=16, seed=0)
    for s in range(total):
        for g in opt.param_groups:
            g["lr"] = f(s)
        x, y = next(stream)
        loss, gnorm = tc.update(model, opt, x, y)
        tc.log(w, s, f(s), loss, gnorm)
    w.close()
    note = ("Real blow-up of an LR range test: Adam (default betas, eps 1e-8), LR set each step to "
            "1e-4*1e5**(s/159) (x10 every ~32 steps), no clipping (grad_norm from clip_grad_norm_(max_norm=inf)), "
            "float32. The loss falls, leaves its minimum and rises for ~130 steps while the LR keeps growing; "
            "the gradient's total norm overflows float32 to inf while the loss is still finite (tens of "
            "millions), the next update makes the weights NaN and the loss is NaN from then on. Every value is "
            "logged as computed: NO logger filtered or replaced anything (no WC402 expected).")
    truth, sc = tc.base_truth(name, note, run_dir, total, tc.ZERO_BASED, schedule={
        "family": "exponential_lr_range_test", "optimizer": "Adam default betas, no weight decay",
        "formula": "lr(s) = 1e-4 * 1e5**(s/159)"}, configured_warmup={"warmup_steps": None,
        "note": "no warmup: an LR range test whose LR grows for the whole run"})
    lr, loss, gn = (sc[tc.TAGS[k]] for k in ("lr", "loss", "grad_norm"))
    tc.check_closed_form(lr, f)
    truth["observed_warmup"] = {"lr_first_reaches_peak_at_logged_step": max(lr), "peak_lr_logged": lr[max(lr)],
                                "note": "the LR rises for the whole run (never_ends); no warmup end exists"}
    truth["generic_warmup_check"] = False
    truth["generic_warmup_check_reason"] = "LR range test: the LR grows until the last step, no warmup end"
    bad_loss, bad_g = tc.nonfinite_steps(loss), tc.nonfinite_steps(gn)
    first_nan = bad_loss[0]
    finite = {s: v for s, v in loss.items() if s < first_nan}
    smooth = {s: tc.trailing_median(finite, s) for s in finite if s >= 9}
    leave = min(smooth, key=lambda s: smooth[s])
    level = smooth[leave]
    sustained = next(s for s in sorted(smooth) if s > leave and all(smooth[t] > 1.1 * level for t in smooth if t >= s))
    raw_min = min(finite, key=lambda s: finite[s])
    initial = loss[0]
    gt3_initial = next(s for s in sorted(finite) if finite[s] > 3 * initial)
    gt3_expected = next(s for s in sorted(finite) if s > leave and finite[s] > 3 * level)
    x35 = next(s for s in sorted(finite) if s > leave and finite[s] > 35 * level)
    top = max(finite, key=lambda s: finite[s])
    assert bad_g[0] < first_nan and math.isfinite(loss[bad_g[0]]) and loss[bad_g[0]] > 1e6
    assert bad_loss == list(range(first_nan, total)) and leave < gt3_expected - 20
    truth["expected_findings"] = {
        "divergence": {
            "diverged": True, "kind": "gradual rise, finite blow-up with inf grad norm, then NaN (LR too high)",
            "initial_loss": initial,
            "loss_minimum_step": raw_min, "loss_minimum": finite[raw_min],
            "loss_leaves_minimum_step": leave,
            "loss_leaves_minimum_rule": "argmin over steps >= 9 of the trailing 10-step median of the finite loss "
                                        "(the last point of its best level before the rise)",
            "loss_level_at_minimum": level,
            "sustained_rise_from_step": sustained,
            "sustained_rise_rule": "first step after loss_leaves_minimum_step from which the trailing 10-step "
                                   "median stays > 1.1 x loss_level_at_minimum until the first NaN",
            "expected_value_rule": "expected = loss_level_at_minimum (the level the loss had settled at)",
            "first_step_loss_gt_3x_expected": gt3_expected,
            "first_step_loss_gt_35x_expected": x35,
            "first_step_loss_gt_3x_initial": gt3_initial,
            "first_nonfinite_grad_norm_step": bad_g[0], "grad_norm_value_there": gn[bad_g[0]],
            "loss_at_first_nonfinite_grad_norm": loss[bad_g[0]],
            "first_nonfinite_loss_step": first_nan,
            "nonfinite_loss_steps": [first_nan, total - 1], "nonfinite_loss_count": len(bad_loss),
            "nonfinite_value_written": "NaN (float32 NaN in tfevents simple_value); grad_norm inf then NaN",
            "max_finite_loss": {"step": top, "loss": finite[top]},
            "lr_at_leave_minimum": lr[leave], "lr_at_first_nonfinite_loss": lr[first_nan],
            "logger_filtered_values": False,
            "wc402_expected": False,
            "loss_values_around_blowup": tc.window(loss, bad_g[0] - 8, first_nan + 1),
            "grad_norm_values_around_blowup": tc.window(gn, bad_g[0] - 8, first_nan + 1),
        },
        "nonfinite_loss": True, "spike": None, "truncated": False, "resume_overlap": None,
    }
    tc.finish(run_dir, truth, loss)


CASES: dict[str, Any] = {
    "sustained_spike_1p5x": sustained_spike_1p5x,
    "sustained_spike_bursty": sustained_spike_bursty,
    "torch_finite_loss_inf_gradnorm": finite_loss_inf_gradnorm,
}


def main(argv: list[str]) -> None:
    from torch_schedule_runs import SCHEDULE_CASES

    cases = {**CASES, **SCHEDULE_CASES}
    out = Path(argv[0]) if argv else Path("tests/data/realruns")
    names = argv[1:] or list(cases)
    unknown = [n for n in names if n not in cases]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {list(cases)}")
    for n in names:
        cases[n](out)


if __name__ == "__main__":
    main(sys.argv[1:])
