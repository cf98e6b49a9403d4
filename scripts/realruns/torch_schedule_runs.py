"""Schedule cases of the plain-torch real runs (run them with ``torch_runs.py``).

Every case trains the tiny model for real; the LR tag is read back from the event files and checked
against the schedule's closed form (``torch_common.check_closed_form``) before the truth is written.
"""

from __future__ import annotations

import importlib
import math
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import torch_common as tc  # noqa: E402
from tiny import TinyLM, batches, corpus, seed_all  # noqa: E402

Stream = Iterator[tuple[torch.Tensor, ...]]


def setup(seed: int = 0, dim: int = 64, batch: int = 16) -> tuple[TinyLM, Stream]:
    seed_all(seed)
    model = TinyLM(dim=dim)
    return model, batches(corpus(200_000), batch=batch, seed=seed)


def loop0(out: Path, name: str, total: int, model: TinyLM, opt: torch.optim.Optimizer, sched: Any,
          stream: Stream, max_norm: float = 1.0) -> Path:
    """0-based loop: log at step s the LR update s+1 uses (param group, before the update), then step."""
    run_dir, w = tc.fresh(out, name)
    for s in range(total):
        lr = tc.lr_of(opt)
        loss, gnorm = tc.update(model, opt, *next(stream), max_norm=max_norm)
        sched.step()
        tc.log(w, s, lr, loss, gnorm)
    w.close()
    return run_dir


def _healthy(truth: dict[str, Any], loss: tc.Series) -> None:
    truth["expected_findings"] = dict(tc.NO_FINDINGS)
    truth["expected_findings"]["spikes_by_corpus_criterion"] = tc.corpus_spikes(loss)
    truth["healthy"] = not truth["expected_findings"]["spikes_by_corpus_criterion"]


def onecycle_sparse_log50(out: Path) -> None:
    name, total, every = "onecycle_sparse_log50", 2770, 50
    model, stream = setup(0, dim=32, batch=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total, pct_start=0.3)
    run_dir, w = tc.fresh(out, name)
    used: list[float] = []
    window: list[float] = []
    for s in range(total):
        lr = sched.get_last_lr()[0]
        used.append(lr)
        loss, gnorm = tc.update(model, opt, *next(stream), max_norm=math.inf)
        sched.step()
        window.append(loss)
        if (s + 1) % every == 0:
            tc.log(w, s, lr, sum(window) / len(window), gnorm)
            window = []
    w.close()
    end = float(0.3 * total) - 1
    top = max(range(total), key=lambda s: used[s])
    assert used[top] == 0.1 and top == end == 830
    note = ("torch OneCycleLR(max_lr=0.1, total_steps=2770, pct_start=0.3; cos anneal, div_factor=25, "
            "final_div_factor=1e4, momentum cycled 0.95->0.85) on SGD(momentum=0.9), tiny model dim 32, batch 8, "
            "no clipping. Logged every 50 updates at 0-based steps 49, 99, ..., 2749 (if (s+1) % 50 == 0): "
            "train/lr = the LR update s+1 used, train/loss = mean loss of the 50 updates s-49..s, "
            "train/grad_norm = that step's total norm. The true peak (scheduler step float(0.3*2770)-1 = 830, "
            "update 831) lies between the logs at 799 and 849; the largest logged LR is the log after the peak (849).")
    truth, sc = tc.base_truth(name, note, run_dir, total, tc.ZERO_BASED.replace("(read from the param group before "
                              "the update); loss/grad_norm are from that same update", "(get_last_lr() before the "
                              "update); loss is the mean of the 50 updates ending at s, grad_norm that of update s+1"),
                              schedule={
        "family": "onecycle_cosine_warmup_then_cosine_anneal", "max_lr": 0.1, "initial_lr": 0.1 / 25,
        "min_lr": 0.1 / 25 / 1e4, "pct_start": 0.3, "total_steps": total, "anneal_strategy": "cos",
        "phase_boundaries_scheduler_steps": {"warmup_end": end, "anneal_end": total - 1},
        "formula": "s <= 830: max - (max-initial)/2*(1+cos(pi*s/830)); "
                   "then min + (max-min)/2*(1+cos(pi*(s-830)/1939))"},
        configured_warmup={"pct_start": 0.3, "total_steps": total, "warmup_steps": 831,
                           "rounding": "torch: peak at scheduler step float(pct_start*total_steps) - 1 = 830.0 "
                                       "(831 updates up to and including the first at max_lr; 830 below it)"})
    lr = sc[tc.TAGS["lr"]]
    for s, v in lr.items():
        assert tc.close(v, used[s]), (s, v, used[s])
    mx, mx_lr = tc.first_at_max(lr)
    before, after = max(s for s in lr if s < end), min(s for s in lr if s > end)
    assert mx == after == 849 and before == 799 and mx_lr < 0.1
    truth["observed_warmup"] = {
        "lr_first_reaches_peak_at_logged_step": None, "max_logged_lr_step": mx, "max_logged_lr": mx_lr,
        "true_peak_update": top + 1, "true_peak_label": top,
        "true_peak_note": "update 831 (1-based) is the first at max_lr; under this log's labels (0-based, step s = "
                          "update s+1) it would carry label 830; 830 updates run below the peak",
        "logged_steps_around_true_peak": [before, after],
        "correct_bracket": [before, after],
        "lr_logged_around_peak": {s: lr[s] for s in (749, 799, 849, 899)},
        "note": "the peak is never logged; the logged maximum (849) is the first log AFTER the peak, so a bracket "
                "[849, 899] (starting at the logged maximum) misses it",
    }
    truth["generic_warmup_check"] = True
    _healthy(truth, sc[tc.TAGS["loss"]])
    tc.finish(run_dir, truth, sc[tc.TAGS["loss"]])


def lr_excursion_x20(out: Path) -> None:
    name, total, peak, factor, exc = "lr_excursion_x20", 450, 2e-3, 20, (200, 204)
    model, stream = setup(2)
    opt = tc.adamw(model, peak)
    f = tc.warmup_cosine(peak, 50, total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: f(s) / peak)
    run_dir, w = tc.fresh(out, name)
    for s in range(total):
        if exc[0] <= s <= exc[1]:  # the intervention: this update's LR x20; the scheduler resets it next step
            for g in opt.param_groups:
                g["lr"] = sched.get_last_lr()[0] * factor
        lr = tc.lr_of(opt)
        loss, gnorm = tc.update(model, opt, *next(stream), max_norm=1.0)
        sched.step()
        tc.log(w, s, lr, loss, gnorm)
    w.close()
    note = ("AdamW(0.9,0.95) peak 2e-3, LambdaLR: linear warmup (s+1)/50 (peak used at 0-based step 49), then cosine "
            "to 0 at step 450; clip_grad_norm_(1.0). Intervention in the training: for steps 200..204 the param "
            "group's LR is set to 20x the scheduler's value (the updates really used it), then the scheduler's next "
            "step restores the schedule (LambdaLR is closed-form).")
    truth, sc = tc.base_truth(name, note, run_dir, total, tc.ZERO_BASED, schedule={
        "family": "linear_warmup_then_cosine", "peak_lr": peak, "optimizer": "AdamW betas=(0.9,0.95) wd=0",
        "warmup_formula": "peak*(s+1)/50 for s<50; then peak*0.5*(1+cos(pi*(s-50)/400))",
        "excursion": {"steps": list(exc), "factor": factor,
                      "formula": "lr(s) = 20 * closed form for 200 <= s <= 204"}},
        configured_warmup={"warmup_steps": 50, "rounding": "integer; (s+1)/W form: peak used at 0-based step 49"})
    lr, loss, gn = (sc[tc.TAGS[k]] for k in ("lr", "loss", "grad_norm"))
    tc.check_closed_form(lr, lambda s: f(s) * (factor if exc[0] <= s <= exc[1] else 1))
    sustained = {s: v for s, v in lr.items() if not exc[0] <= s <= exc[1]}
    first, top = tc.first_at_max(sustained)
    assert first == 49 and tc.first_at_max(lr)[0] == exc[0]
    truth["observed_warmup"] = {"lr_first_reaches_peak_at_logged_step": first, "peak_lr_logged": top,
                                "max_logged_lr_step": exc[0], "max_logged_lr": lr[exc[0]],
                                "note": "the sustained peak is first used at step 49 (warmup end); the larger LRs at "
                                        "200..204 are a transient excursion, not the schedule's peak"}
    base = median(tc.window(loss, exc[0] - 20, exc[0] - 1).values())
    high = [s for s in sorted(loss) if s >= exc[0] and loss[s] > 1.25 * base]
    region = tc.window(loss, exc[0], exc[0] + 60)
    top_step = max(region, key=lambda s: region[s])
    onset, last, recovery = tc.elevated_region(loss, exc[0], base, 1.10 * base)
    truth["expected_findings"] = {
        "divergence": None, "nonfinite_loss": False,
        "lr_excursion": {"steps": list(exc), "factor": factor, "lr_before": lr[exc[0] - 1], "lr_after": lr[exc[1] + 1],
                         "lr_values": tc.window(lr, exc[0] - 1, exc[1] + 1),
                         "phase": "decay (after warmup: cosine phase, 150 steps after the warmup end at 49)"},
        "spike": {"cause": "the x20 LR excursion at steps 200..204",
                  "baseline_median": base, "baseline_window_steps": [exc[0] - 20, exc[0] - 1],
                  "first_step_loss_gt_1p25x_baseline": high[0] if high else None,
                  "elevated_region": [onset, last], "recovery_step": recovery,
                  "elevated_region_rule": "first step >= 200 with loss > 1.25 x baseline_median, to the step before "
                                          "recovery_step (10 consecutive logged losses <= 1.10 x baseline_median)",
                  "max_loss_step": top_step, "max_loss": region[top_step],
                  "max_ratio_to_baseline": region[top_step] / base,
                  "phase": "decay (the LR phase of the real schedule: the excursion is not a warmup end)",
                  "loss_values": tc.window(loss, exc[0] - 5, exc[0] + 30),
                  "grad_norm_values": tc.window(gn, exc[0] - 5, exc[0] + 30)},
        "truncated": False, "resume_overlap": None,
    }
    tc.finish(run_dir, truth, loss)


SCHEDULE_CASES: dict[str, Any] = {
    "onecycle_sparse_log50": onecycle_sparse_log50,
    "lr_excursion_x20": lr_excursion_x20,
}

__all__ = ["SCHEDULE_CASES", "importlib", "types"]
