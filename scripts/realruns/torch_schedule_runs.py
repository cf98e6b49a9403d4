"""Schedule cases of the plain-torch real runs (run them with ``torch_runs.py``).

Every case trains the tiny model for real; the LR tag is read back from the event files and checked
against the schedule's closed form (``torch_common.check_closed_form``) before the truth is written.
"""

from __future__ import annotations

import importlib
import importlib.util
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
    truth["expected_findings"]["healthy"] = not truth["expected_findings"]["spikes_by_corpus_criterion"]


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


def lr_excursion_constant_x20(out: Path) -> None:
    """The issue's run: warmup 50, then a CONSTANT LR, x20 at 200..204 (no decay before the excursion)."""
    lr_excursion_x20(out, name="lr_excursion_constant_x20", constant=True)


def lr_excursion_x20(out: Path, name: str = "lr_excursion_x20", constant: bool = False) -> None:
    total, peak, factor, exc = 450, 2e-3, 20, (200, 204)
    model, stream = setup(2)
    opt = tc.adamw(model, peak)
    f = tc.warmup_cosine(peak, 50, total) if not constant else (lambda s: peak * min(1.0, (s + 1) / 50))
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
    after = "then constant at the peak" if constant else "then cosine to 0 at step 450"
    note = ("AdamW(0.9,0.95) peak 2e-3, LambdaLR: linear warmup (s+1)/50 (peak used at 0-based step 49), " + after +
            "; clip_grad_norm_(1.0). Intervention in the training: for steps 200..204 the param "
            "group's LR is set to 20x the scheduler's value (the updates really used it), then the scheduler's next "
            "step restores the schedule (LambdaLR is closed-form).")
    truth, sc = tc.base_truth(name, note, run_dir, total, tc.ZERO_BASED, schedule={
        "family": "linear_warmup_then_constant" if constant else "linear_warmup_then_cosine", "peak_lr": peak,
        "optimizer": "AdamW betas=(0.9,0.95) wd=0",
        "warmup_formula": "peak*(s+1)/50 for s<50; then " + (
            "peak" if constant else "peak*0.5*(1+cos(pi*(s-50)/400))"),
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
                         "phase": ("after warmup (constant LR)" if constant else
                                   "decay (after warmup: cosine phase, 150 steps after the warmup end at 49)")},
        "spike": {"cause": "the x20 LR excursion at steps 200..204",
                  "baseline_median": base, "baseline_window_steps": [exc[0] - 20, exc[0] - 1],
                  "first_step_loss_gt_1p25x_baseline": high[0] if high else None,
                  "elevated_region": [onset, last], "recovery_step": recovery,
                  "elevated_region_rule": "first step >= 200 with loss > 1.25 x baseline_median, to the step before "
                                          "recovery_step (10 consecutive logged losses <= 1.10 x baseline_median)",
                  "max_loss_step": top_step, "max_loss": region[top_step],
                  "max_ratio_to_baseline": region[top_step] / base,
                  "phase": ("after warmup" if constant else "decay") + " (the LR phase of the real schedule: the "
                           "excursion is not a warmup end)",
                  "loss_values": tc.window(loss, exc[0] - 5, exc[0] + 30),
                  "grad_norm_values": tc.window(gn, exc[0] - 5, exc[0] + 30)},
        "truncated": False, "resume_overlap": None,
    }
    tc.finish(run_dir, truth, loss)


def legacy_last_lr_linearlr(out: Path) -> None:
    name, total, peak, warm = "torch_legacy_last_lr_linearlr", 200, 1e-3, 50
    model, stream = setup(3)
    opt = tc.adamw(model, peak)
    ramp = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, end_factor=1.0, total_iters=warm)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm, eta_min=1e-5)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [ramp, cos], milestones=[warm])
    run_dir, w = tc.fresh(out, name)
    used = []
    for step in range(1, total + 1):  # the legacy pattern: log get_last_lr() AFTER scheduler.step()
        used.append(tc.lr_of(opt))
        loss, gnorm = tc.update(model, opt, *next(stream), max_norm=1.0)
        sched.step()
        tc.log(w, step, sched.get_last_lr()[0], loss, gnorm)
    w.close()

    def f(u: int) -> float:  # the LR update u (1-based) uses
        e = u - 1
        if e < warm:
            return peak * (0.01 + 0.99 * e / warm)
        return 1e-5 + (peak - 1e-5) * 0.5 * (1 + math.cos(math.pi * (e - warm) / (total - warm)))
    for u, v in enumerate(used, 1):
        assert abs(v - f(u)) <= 1e-9 * peak, (u, v, f(u))
    note = ("The legacy torch logging pattern in a 1-based loop: for step in 1..200: train the update, "
            "opt.step(), sched.step(), then writer.add_scalar('train/lr', sched.get_last_lr()[0], step). So the "
            "value at step s is the LR of the NEXT update (s+1), while loss/grad_norm at s are from update s. "
            "AdamW(0.9,0.95) peak 1e-3; SequentialLR(LinearLR(start_factor=0.01, total_iters=50), "
            "CosineAnnealingLR(T_max=150, eta_min=1e-5), milestones=[50]); clip_grad_norm_(1.0). The first update's "
            "LR (0.01 x peak) is never logged.")
    truth, sc = tc.base_truth(name, note, run_dir, total,
                              "1-based optimizer steps; the LR at step s is get_last_lr() after sched.step(), i.e. the "
                              "LR used by update s+1 (step s carries update s+1's LR); loss/grad_norm at s are from "
                              "update s (grad_norm = total norm from clip_grad_norm_, before clipping).",
                              schedule={"family": "linear_warmup_then_cosine", "peak_lr": peak,
                                        "optimizer": "AdamW betas=(0.9,0.95) wd=0",
                                        "warmup_formula": "update u (1-based) uses peak*(0.01+0.99*min(u-1,50)/50); "
                                                          "then 1e-5+(peak-1e-5)*0.5*(1+cos(pi*(u-51)/150))",
                                        "logged_formula": "value at step s = LR of update s+1"})
    truth["configured_warmup"] = {"warmup_steps": warm, "total_iters": warm, "start_factor": 0.01,
                                  "rounding": "LinearLR total_iters=50: updates 1..50 below the peak, update 51 is "
                                              "the first at the peak"}
    lr = sc[tc.TAGS["lr"]]
    tc.check_closed_form(lr, lambda s: f(s + 1))
    first, top = tc.first_at_max(lr)
    assert first == warm and tc.close(top, peak)
    truth["observed_warmup"] = {
        "lr_first_reaches_peak_at_logged_step": first, "peak_lr_logged": top,
        "true_peak_update": warm + 1, "updates_below_peak": warm,
        "note": "label 50 first shows the peak, but it is the LR of update 51: k* = 50 updates below the peak (= "
                "total_iters). Reading label s as 'the LR update s used' gives k* = 49, one too small.",
        "wrong_reading": {"convention": "step s = LR used by update s", "updates_below_peak": warm - 1},
        "lr_at_step_1": lr[1], "lr_at_step_1_is_update": 2,
        "ramp_extrapolates_to_zero_at": "the logged ramp peak*(0.01+0.99*s/50) crosses 0 at s = -0.505 and "
                                        "reaches 0.01*peak at s = 0: "
                                        "the start factor 0.01 sits at label 0 (update 1), not at label 1",
    }
    truth["generic_expected"] = {"warmup_end_step": first, "warmup_steps": warm}
    _healthy(truth, sc[tc.TAGS["loss"]])
    tc.finish(run_dir, truth, sc[tc.TAGS["loss"]])


def warmup30_noconfig(out: Path) -> None:
    name, total, peak, warm = "torch_warmup30_noconfig", 150, 1e-3, 30
    model, stream = setup(4)
    opt = tc.adamw(model, peak)
    f = tc.warmup_cosine(peak, warm, total, floor=0.1)
    run_dir = loop0(out, name, total, model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: f(s) / peak),
                    stream)
    note = ("Plain torch loop, 150 updates, AdamW(0.9,0.95) peak 1e-3, LambdaLR linear warmup (s+1)/30 then cosine "
            "to 0.1x peak at 150, clip_grad_norm_(1.0). No configuration file of any kind is written (no ratio "
            "exists anywhere): the warmup length 30 is only in this generator.")
    truth, sc = tc.base_truth(name, note, run_dir, total, tc.ZERO_BASED, schedule={
        "family": "linear_warmup_then_cosine", "peak_lr": peak, "optimizer": "AdamW betas=(0.9,0.95) wd=0",
        "warmup_formula": "peak*(s+1)/30 for s<30; then peak*(0.1+0.9*0.5*(1+cos(pi*(s-30)/120)))"},
        configured_warmup={"warmup_steps": warm, "ratio": None, "source": "the training script only (no config "
                           "file, no hparams, no text summary)", "rounding": "integer; peak used at 0-based step 29"})
    lr = sc[tc.TAGS["lr"]]
    tc.check_closed_form(lr, f)
    truth["observed_warmup"] = tc.peak_obs(lr)
    assert truth["observed_warmup"]["lr_first_reaches_peak_at_logged_step"] == warm - 1
    truth["no_config_files"] = True
    truth["expected_explanations"] = "no formula with a ratio (e.g. int(0.2 x 150)): no ratio was configured or logged"
    _healthy(truth, sc[tc.TAGS["loss"]])
    tc.finish(run_dir, truth, sc[tc.TAGS["loss"]])


def constant_lr_no_warmup(out: Path) -> None:
    name, total, lr0 = "constant_lr_no_warmup", 400, 1e-3
    model, stream = setup(5)
    opt = tc.adamw(model, lr0)
    run_dir, w = tc.fresh(out, name)
    for step in range(1, total + 1):
        lr = tc.lr_of(opt)
        loss, gnorm = tc.update(model, opt, *next(stream), max_norm=1.0)
        tc.log(w, step, lr, loss, gnorm)
    w.close()
    note = ("Constant LR 1e-3 (AdamW(0.9,0.95), no scheduler, no warmup at all), 400 updates logged at 1-based steps "
            "1..400, clip_grad_norm_(1.0).")
    truth, sc = tc.base_truth(name, note, run_dir, total, tc.ONE_BASED_USED, schedule={
        "family": "constant", "lr": lr0, "optimizer": "AdamW betas=(0.9,0.95) wd=0", "formula": "lr = 1e-3"},
        configured_warmup={"warmup_steps": 0, "note": "no warmup configured"})
    lr = sc[tc.TAGS["lr"]]
    tc.check_closed_form(lr, lambda s: lr0)
    truth["observed_warmup"] = tc.peak_obs(lr, warmup="none", no_warmup=True, updates_below_peak=0,
                                           summary_warmup_end="none",
                                           note="the LR is at its (only) value from the first logged step; a "
                                                "summary must show 'none', not the first logged step")
    _healthy(truth, sc[tc.TAGS["loss"]])
    tc.finish(run_dir, truth, sc[tc.TAGS["loss"]])


def exp_saturating_warmup(out: Path) -> None:
    name, total, peak, tau, warm = "torch_exp_saturating_warmup", 300, 1e-3, 15.0, 75
    model, stream = setup(6)
    opt = tc.adamw(model, peak)

    def f(s: int) -> float:
        if s < warm:
            return peak * (1 - math.exp(-(s + 1) / tau)) / (1 - math.exp(-warm / tau))
        return peak * 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm)))
    run_dir = loop0(out, name, total, model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: f(s) / peak),
                    stream)
    note = ("Saturating-exponential warmup: LambdaLR with lr = peak*(1-exp(-(s+1)/15))/(1-exp(-75/15)) for s<75 "
            "(tau=15, 5 tau, normalised so that step 74 is exactly the peak), then cosine to 0 at 300. "
            "AdamW(0.9,0.95) peak 1e-3, clip_grad_norm_(1.0).")
    truth, sc = tc.base_truth(name, note, run_dir, total, tc.ZERO_BASED, schedule={
        "family": "exponential_warmup_then_cosine", "warmup_shape": "exponential (saturating: 1-exp(-t/tau)), not log",
        "peak_lr": peak, "tau": tau, "optimizer": "AdamW betas=(0.9,0.95) wd=0",
        "warmup_formula": "peak*(1-exp(-(s+1)/15))/(1-exp(-5)) for s<75; then peak*0.5*(1+cos(pi*(s-75)/225))"},
        configured_warmup={"warmup_steps": warm, "rounding": "integer; peak used at 0-based step 74"})
    lr = sc[tc.TAGS["lr"]]
    tc.check_closed_form(lr, f)
    truth["observed_warmup"] = tc.peak_obs(lr, shape="exponential (saturating)",
                                           lr_at_step_44_relative=lr[44] / peak)
    assert truth["observed_warmup"]["lr_first_reaches_peak_at_logged_step"] == warm - 1
    _healthy(truth, sc[tc.TAGS["loss"]])
    tc.finish(run_dir, truth, sc[tc.TAGS["loss"]])


def cycliclr(out: Path) -> None:
    name, total, lo, hi, up = "torch_cycliclr", 400, 1e-4, 2e-3, 50
    model, stream = setup(7)
    opt = tc.adamw(model, lo)
    sched = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=lo, max_lr=hi, step_size_up=up, mode="triangular2",
                                              cycle_momentum=False)
    run_dir = loop0(out, name, total, model, opt, sched, stream)

    def f(s: int) -> float:
        cycle = s // (2 * up)
        x = abs(s / up - 2 * cycle - 1)
        return lo + (hi - lo) * max(0.0, 1 - x) / 2 ** cycle
    note = ("torch CyclicLR(base_lr=1e-4, max_lr=2e-3, step_size_up=50, mode='triangular2', cycle_momentum=False) on "
            "AdamW(0.9,0.95), stepped per update, 400 updates = 4 cycles of 100 with the amplitude halved each "
            "cycle; clip_grad_norm_(1.0). A standard cyclic schedule: no warmup configured, every rise is a cycle.")
    truth, sc = tc.base_truth(name, note, run_dir, total, tc.ZERO_BASED, schedule={
        "family": "cyclic_triangular2", "base_lr": lo, "max_lr": hi, "step_size_up": up, "cycle_length": 2 * up,
        "cycles": total // (2 * up), "formula": "base + (max-base)*max(0, 1-|s/50 - 2c - 1|)/2**c, c = s // 100"},
        configured_warmup={"warmup_steps": None, "note": "no warmup: CyclicLR's first rise is its first cycle"})
    lr = sc[tc.TAGS["lr"]]
    tc.check_closed_form(lr, f)
    first, top = tc.first_at_max(lr)
    assert first == up
    truth["observed_warmup"] = {"lr_first_reaches_peak_at_logged_step": first, "peak_lr_logged": top,
                                "cycle_peaks": {s: lr[s] for s in range(up, total, 2 * up)},
                                "cycle_troughs": {s: lr[s] for s in range(0, total, 2 * up)}}
    truth["generic_warmup_check"] = False
    truth["generic_warmup_check_reason"] = "cyclic schedule: the first peak is the top of cycle 1, not a warmup end"
    _healthy(truth, sc[tc.TAGS["loss"]])
    tc.finish(run_dir, truth, sc[tc.TAGS["loss"]])


def _timm_cosine() -> Any:
    """timm's CosineLRScheduler; without a working torchvision ``import timm`` fails (timm.layers imports it),
    so the scheduler subpackage (which needs only torch and numpy) is then loaded on its own."""
    try:
        return importlib.import_module("timm.scheduler.cosine_lr").CosineLRScheduler
    except (ImportError, RuntimeError):
        spec = importlib.util.find_spec("timm")
        assert spec is not None and spec.submodule_search_locations
        pkg = types.ModuleType("_timm_scheduler")
        pkg.__path__ = [str(Path(spec.submodule_search_locations[0]) / "scheduler")]
        sys.modules["_timm_scheduler"] = pkg
        return importlib.import_module("_timm_scheduler.cosine_lr").CosineLRScheduler


def timm_cosine_cycles(out: Path) -> None:
    name, total, base, warm, t_i = "timm_cosine_cycles", 320, 1e-3, 10, 100
    model, stream = setup(8)
    opt = tc.adamw(model, base)
    sched = _timm_cosine()(opt, t_initial=t_i, lr_min=1e-5, warmup_t=warm, warmup_lr_init=1e-5, warmup_prefix=True,
                           cycle_limit=3, t_in_epochs=False)
    run_dir, w = tc.fresh(out, name)
    for step in range(1, total + 1):  # as timm train.py: num_updates incremented after the update
        lr = tc.lr_of(opt)
        loss, gnorm = tc.update(model, opt, *next(stream), max_norm=1.0)
        tc.log(w, step, lr, loss, gnorm)
        sched.step_update(num_updates=step)
    w.close()

    def f(t: int) -> float:
        if t < warm:
            return 1e-5 + t * (base - 1e-5) / warm
        i, t_cur = divmod(t - warm, t_i)
        return 1e-5 + 0.5 * (base - 1e-5) * (1 + math.cos(math.pi * t_cur / t_i)) if i < 3 else 1e-5
    from importlib.metadata import version
    note = ("timm CosineLRScheduler(t_initial=100, lr_min=1e-5, warmup_t=10, warmup_lr_init=1e-5, warmup_prefix=True, "
            "cycle_limit=3, cycle_mul=1, cycle_decay=1, t_in_epochs=False), step_update(num_updates) after every "
            "update, 320 updates: warmup 10, three cosine cycles of 100 restarting at base_lr (updates 111 and 211), "
            "then lr_min after the cycle limit (updates 311..320). AdamW(0.9,0.95), clip_grad_norm_(1.0).")
    truth, sc = tc.base_truth(name, note, run_dir, total,
                              "1-based num_updates (incremented right after optimizer.step, as in timm train.py); the "
                              "LR logged at step s is the LR used by update s, i.e. scheduler value at t=s-1.",
                              schedule={"family": "linear_warmup_then_cosine_cycles", "base_lr": base,
                                        "warmup_lr_init": 1e-5, "lr_min": 1e-5, "t_initial": t_i, "cycle_limit": 3,
                                        "warmup_prefix": True, "restarts_at_logged_steps": [111, 211],
                                        "after_cycle_limit": "lr_min from logged step 311",
                                        "formula": "t<10: 1e-5 + t*(base-1e-5)/10; then i, c = divmod(t-10, 100); "
                                                   "i<3: lr_min + 0.5*(base-lr_min)*(1+cos(pi*c/100)); else lr_min"},
                              configured_warmup={"warmup_t": warm, "unit": "optimizer updates (t_in_epochs=False)",
                                                 "rounding": "integer given"})
    truth["versions"]["timm"] = version("timm")
    truth["timm_import_note"] = ("timm.scheduler.cosine_lr loaded directly: this venv's torchvision did not load "
                                 "(import timm needs it); the scheduler code is timm's own, unchanged")
    lr = sc[tc.TAGS["lr"]]
    tc.check_closed_form(lr, lambda s: f(s - 1))
    first, top = tc.first_at_max(lr)
    assert first == warm + 1 and all(tc.close(lr[s], base) for s in (111, 211))
    truth["observed_warmup"] = {"lr_first_reaches_peak_at_logged_step": first, "peak_lr_logged": top,
                                "restart_peaks_at_logged_steps": [111, 211],
                                "note": "update 11 (t=10) is the first at base_lr; the restarts at 111 and 211 "
                                        "reach base_lr again (cycle_decay=1) and are not warmup ends"}
    _healthy(truth, sc[tc.TAGS["loss"]])
    tc.finish(run_dir, truth, sc[tc.TAGS["loss"]])


SCHEDULE_CASES: dict[str, Any] = {
    "onecycle_sparse_log50": onecycle_sparse_log50,
    "lr_excursion_x20": lr_excursion_x20,
    "lr_excursion_constant_x20": lr_excursion_constant_x20,
    "torch_legacy_last_lr_linearlr": legacy_last_lr_linearlr,
    "torch_warmup30_noconfig": warmup30_noconfig,
    "constant_lr_no_warmup": constant_lr_no_warmup,
    "torch_exp_saturating_warmup": exp_saturating_warmup,
    "torch_cycliclr": cycliclr,
    "timm_cosine_cycles": timm_cosine_cycles,
}
