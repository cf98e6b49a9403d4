"""Real HF Trainer runs for tests/data/realruns (transformers 5.x, CPU, seconds each).

    python scripts/realruns/hf_runs.py [OUT_DIR] [CASE ...]

OUT_DIR defaults to tests/data/realruns; with no CASE every case is written. Each case directory is
the Trainer's own ``output_dir``: TensorBoardCallback writes ``runs/<date>_<host>/events...`` there (the
5.x default layout; ``logging_dir`` is no longer a TrainingArguments field) and ``Trainer.save_state()``
writes ``trainer_state.json``. Nothing is edited afterwards: every truth.json value below is read back
from the files as written (EventAccumulator, json) and checked against the closed-form schedule.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tiny  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "realruns"
WRITER = "transformers.integrations.TensorBoardCallback (torch.utils.tensorboard.SummaryWriter) + Trainer.save_state()"
STEP_INDEXING = ("1-based optimizer steps (state.global_step after the update). In transformers 5.x the logged "
                 "learning_rate is read before lr_scheduler.step(), so the value at step k is the LR used by update k "
                 "= peak * lambda(k-1).")
TAGS = {"lr": "train/learning_rate", "loss": "train/loss", "grad_norm": "train/grad_norm", "epoch": "train/epoch"}
STATE_KEYS = {"step": "step", "lr": "learning_rate", "loss": "loss", "grad_norm": "grad_norm",
              "total_steps": "max_steps"}
NO_PROBLEM: dict[str, Any] = {"divergence": None, "nonfinite_loss": False, "spike": None,
                              "spikes_by_corpus_criterion": [], "truncated": False, "resume_overlap": None,
                              "healthy": True}


# ---------------------------------------------------------------- training


def hf_train(case_dir: Path, *, seed: int, max_steps: int, lr: float, scheduler: str, warmup: float,
             logging_steps: int = 1, accum: int = 1, batch: int = 8, sched_kwargs: dict[str, Any] | None = None,
             optim: str = "adamw_torch", max_grad_norm: float = 1.0, evaluate: bool = False,
             save_steps: int | None = None, n_train: int = 640, **extra: Any) -> None:
    """One real Trainer.train() of the tiny model into ``case_dir`` (its output_dir)."""
    from transformers import Trainer, TrainingArguments

    if case_dir.exists():
        shutil.rmtree(case_dir)
    tiny.seed_all(seed)
    data = tiny.corpus(200_000)
    train = tiny.WindowDataset(data[:180_000], n=n_train, seed=seed)
    held = tiny.WindowDataset(data[180_000:], n=64, seed=seed + 1) if evaluate else None
    args = TrainingArguments(
        output_dir=str(case_dir), max_steps=max_steps, learning_rate=lr, lr_scheduler_type=scheduler,
        lr_scheduler_kwargs=sched_kwargs or {}, warmup_steps=warmup, per_device_train_batch_size=batch,
        per_device_eval_batch_size=32, gradient_accumulation_steps=accum, logging_strategy="steps",
        logging_steps=logging_steps, report_to=["tensorboard"], use_cpu=True, seed=seed, data_seed=seed,
        optim=optim, max_grad_norm=max_grad_norm, weight_decay=0.0, dataloader_num_workers=0,
        disable_tqdm=True, save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500,
        eval_strategy="steps" if evaluate else "no", eval_steps=extra.pop("eval_steps", None), **extra)
    model = tiny.TinyLM()
    # TinyLM's forward takes **kwargs but returns a per-batch mean and ignores num_items_in_batch: without this
    # the Trainer would sum (not average) the micro-batch losses under gradient accumulation
    setattr(model, "accepts_loss_kwargs", False)  # noqa: B010 (an attribute TinyLM does not declare)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=held)
    trainer.train()
    trainer.save_state()


# ---------------------------------------------------------------- reading the files back


def read_events(case_dir: Path) -> tuple[str, dict[str, list[tuple[int, float]]], dict[str, str]]:
    """(relative path, {tag: [(step, value)]}, {text tag: text}) of the one event file under runs/."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (path,) = sorted(case_dir.glob("runs/*/events.out.tfevents.*"))
    ea = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    scalars = {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}
    texts = {t: ea.Tensors(t)[0].tensor_proto.string_val[0].decode() for t in ea.Tags()["tensors"]}
    return str(path.relative_to(case_dir)), scalars, texts


def read_state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def train_rows(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in state["log_history"] if "learning_rate" in r]


def series(rows: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(r["step"], float(r[key])) for r in rows if key in r]


def tb_series(scalars: dict[str, list[tuple[int, float]]], kind: str) -> list[tuple[int, float]]:
    """A training tag's points, one per step (train/epoch is written twice at the last step)."""
    return sorted(dict(scalars[TAGS[kind]]).items())


def check_lr(logged: list[tuple[int, float]], lr_used: Callable[[int], float], rel: float) -> None:
    """Every logged LR equals the closed form: step s carries the LR update s used (0-based update s-1)."""
    for s, v in logged:
        want = lr_used(s - 1)
        assert math.isclose(v, want, rel_tol=rel, abs_tol=1e-12 if rel < 1e-9 else 1e-9), (s, v, want)


def check_same_training(tb: list[tuple[int, float]], st: list[tuple[int, float]]) -> None:
    """The event file and trainer_state.json carry the same points (float32 vs float64)."""
    assert [s for s, _ in tb] == [s for s, _ in st], ([s for s, _ in tb], [s for s, _ in st])
    for (s, a), (_, b) in zip(tb, st, strict=True):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-30), (s, a, b)


def logged_steps(steps: list[int]) -> dict[str, Any]:
    gaps = {b - a for a, b in zip(steps, steps[1:], strict=False)}
    return {"first": steps[0], "last": steps[-1], "count": len(steps),
            "every": gaps.pop() if len(gaps) == 1 else sorted(gaps)}


def first_peak_label(lr: list[tuple[int, float]], peak: float) -> int | None:
    return next((s for s, v in lr if math.isclose(v, peak, rel_tol=1e-6)), None)


def base_truth(case: str, note: str, case_dir: Path, event_path: str, *, total: int,
               steps: list[int], schedule: dict[str, Any], configured: dict[str, Any],
               state_file: str | None = "trainer_state.json") -> dict[str, Any]:
    files: dict[str, Any] = {"tfevents": [event_path]}
    if state_file:
        files["trainer_state"] = state_file
    return {"case": case, "note": note, "writer": WRITER,
            "versions": tiny.versions("transformers", "accelerate", "torch", "tensorboard"),
            "files": files, "tags": dict(TAGS), "trainer_state_keys": dict(STATE_KEYS),
            "step_indexing": STEP_INDEXING, "total_optimizer_steps": total, "logged_steps": logged_steps(steps),
            "schedule": schedule, "configured_warmup": configured}


def corpus_spikes(loss: list[tuple[int, float]]) -> list[dict[str, Any]]:
    """Spike episodes by the corpus criterion (MANIFEST.md): L > 1.4*median and L - median > 6*1.4826*MAD
    against the previous 20 finite non-spike losses (at least 5); consecutive spike points form an episode."""
    hist: list[float] = []
    points: list[tuple[int, float, float]] = []
    for s, v in loss:
        if not math.isfinite(v):
            continue
        ref = hist[-20:]
        if len(ref) >= 5:
            med = statistics.median(ref)
            mad = statistics.median(abs(x - med) for x in ref)
            if v > 1.4 * med and v - med > 6 * 1.4826 * mad:
                points.append((s, v, v / med))
                continue
        hist.append(v)
    episodes: list[dict[str, Any]] = []
    steps = [s for s, _ in loss]
    for s, v, r in points:
        if episodes and steps.index(s) == steps.index(episodes[-1]["last_step"]) + 1:
            e = episodes[-1]
            e["last_step"] = s
            if v > e["peak_loss"]:
                e.update(peak_step=s, peak_loss=v, peak_ratio=r)
        else:
            episodes.append({"first_step": s, "last_step": s, "peak_step": s, "peak_loss": v, "peak_ratio": r})
    return episodes


def assert_healthy(loss: list[tuple[int, float]]) -> None:
    vals = [v for _, v in loss]
    assert all(math.isfinite(v) for v in vals) and vals[-1] < vals[0], vals
    assert not corpus_spikes(loss), corpus_spikes(loss)


def dir_size(case_dir: Path) -> int:
    return sum(p.stat().st_size for p in case_dir.rglob("*") if p.is_file())


# ---------------------------------------------------------------- schedules (closed forms, 0-based update k)


def linear_lambda(k: int, w: int, t: int) -> float:
    return k / max(1, w) if k < w else max(0.0, (t - k) / max(1, t - w))


def cosine_lambda(k: int, w: int, t: int) -> float:
    return k / max(1, w) if k < w else max(0.0, 0.5 * (1 + math.cos(math.pi * (k - w) / max(1, t - w))))


def cosine_min_lr_rate_lambda(k: int, w: int, t: int, m: float) -> float:
    """transformers' cosine_warmup_with_min_lr: ramp (k+1)/W, progress (k-W+1)/(T-W), floor m."""
    if k < w:
        return (k + 1) / max(1, w)
    progress = (k - w + 1) / max(1, t - w)
    return max(0.0, m + (1 - m) * 0.5 * (1 + math.cos(math.pi * progress)))


def polynomial_lambda(k: int, w: int, t: int, p: float, end: float, power: float) -> float:
    if k < w:
        return k / max(1, w)
    if k > t:
        return end / p
    return ((p - end) * (1 - (k - w) / (t - w)) ** power + end) / p


def hard_restarts_lambda(k: int, w: int, t: int, cycles: int) -> float:
    if k < w:
        return k / max(1, w)
    progress = (k - w) / max(1, t - w)
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1 + math.cos(math.pi * ((cycles * progress) % 1.0))))


def standard_case(out: Path, case: str, *, total: int, peak: float, warmup: int, scheduler: str,
                  lam: Callable[[int], float], sched_kwargs: dict[str, Any] | None = None,
                  seed: int = 0, logging_steps: int = 1) -> tuple[Path, str, dict[str, Any], list[dict[str, Any]],
                                                                  list[tuple[int, float]], dict[str, Any]]:
    """Train a healthy run, check both logs against the closed form; (dir, event path, state, rows, lr, args)."""
    d = out / case
    hf_train(d, seed=seed, max_steps=total, lr=peak, scheduler=scheduler, warmup=warmup,
             logging_steps=logging_steps, sched_kwargs=sched_kwargs)
    ev, sc, texts = read_events(d)
    state = read_state(d / "trainer_state.json")
    rows = train_rows(state)
    lr = series(rows, "learning_rate")
    for kind, key in (("lr", "learning_rate"), ("loss", "loss"), ("grad_norm", "grad_norm")):
        check_same_training(tb_series(sc, kind), series(rows, key))
    check_lr(lr, lambda k: peak * lam(k), 1e-12)
    check_lr(tb_series(sc, "lr"), lambda k: peak * lam(k), 1e-6)
    assert_healthy(series(rows, "loss"))
    args = json.loads(texts["args/text_summary"])
    assert args["lr_scheduler_type"] == scheduler and args["warmup_steps"] == warmup and args["max_steps"] == total
    assert state["global_step"] == total == state["max_steps"]
    return d, ev, state, rows, lr, args


def args_summary(args: dict[str, Any]) -> dict[str, Any]:
    keys = ("learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "max_steps",
            "logging_steps", "gradient_accumulation_steps", "per_device_train_batch_size")
    return {"tag": "args/text_summary", **{k: args[k] for k in keys}}


# ---------------------------------------------------------------- cases


def hf_sparse_accum2_log10(out: Path) -> None:
    case = "hf_sparse_accum2_log10"
    d = out / case
    T, ratio, P = 103, 0.1, 1e-3
    W = math.ceil(T * ratio)
    hf_train(d, seed=3, max_steps=T, lr=P, scheduler="linear", warmup=ratio, logging_steps=10, accum=2, batch=8)
    ev, sc, texts = read_events(d)
    state = read_state(d / "trainer_state.json")
    rows = train_rows(state)
    lr_tb, lr_st = tb_series(sc, "lr"), series(rows, "learning_rate")
    check_same_training(lr_tb, lr_st)
    check_same_training(tb_series(sc, "loss"), series(rows, "loss"))
    assert_healthy(series(rows, "loss"))
    assert W == 11 and state["max_steps"] == T and state["global_step"] == T
    args = json.loads(texts["args/text_summary"])
    assert args["warmup_steps"] == ratio and args["gradient_accumulation_steps"] == 2 and args["logging_steps"] == 10

    def used(k: int) -> float:
        return P * linear_lambda(k, W, T)

    check_lr(lr_st, used, 1e-12)
    check_lr(lr_tb, used, 1e-6)
    steps = [s for s, _ in lr_st]
    assert steps == list(range(10, 101, 10)), steps
    true_peak_label = W + 1  # update W+1 (0-based k=W) is the first at peak; HF logs it at step W+1
    assert used(W) == P and used(W - 1) < P and true_peak_label not in steps
    lr_at = dict(lr_st)
    max_step = max(lr_st, key=lambda p: p[1])[0]
    # two-line reading: the ramp through the HF origin (step 1, LR 0) and the one logged ramp point (10),
    # the decay line through the logged points after it; they cross at the true peak label
    s_up, v_up = 10, lr_at[10]
    (s1, v1), (s2, v2) = lr_st[1], lr_st[-1]
    slope_up, slope_dn = v_up / (s_up - 1), (v2 - v1) / (s2 - s1)
    cross = (v1 - slope_dn * s1 + slope_up * 1) / (slope_up - slope_dn)
    assert abs(cross - true_peak_label) < 1e-6, cross
    truth = base_truth(
        case, f"HF Trainer, linear, warmup_steps=0.1 (a ratio in transformers 5) of max_steps={T} -> ceil(10.3)=11 "
        "warmup updates, gradient_accumulation_steps=2, logging_steps=10: the peak LR is first used by update 12 "
        "(logged at step 12 if it were logged); only step 10 is logged inside the ramp, step 20 is already decaying.",
        d, ev, total=T, steps=steps,
        schedule={"family": "linear_warmup_then_linear_decay", "peak_lr": P, "final_lr": 0.0,
                  "lambda": f"k<W: k/W; else max(0,(T-k)/(T-W)), k = 0-based update, T={T}, W={W}",
                  "lr_logged_at_step_10": lr_at[10], "lr_logged_at_step_20": lr_at[20]},
        configured={"ratio": ratio, "total_steps": T, "warmup_steps": W,
                    "how_configured": "TrainingArguments(warmup_steps=0.1, max_steps=103): a float < 1 is a ratio",
                    "rounding": "math.ceil(max_steps * ratio) = ceil(10.3) = 11 (int() would give 10)",
                    "unit": "optimizer updates (each = 2 micro-batches of 8 sequences)"})
    truth.update({
        "gradient_accumulation_steps": 2,
        "args_text_summary": {"tag": "args/text_summary", "warmup_steps": args["warmup_steps"],
                              "max_steps": args["max_steps"], "lr_scheduler_type": args["lr_scheduler_type"],
                              "logging_steps": args["logging_steps"],
                              "gradient_accumulation_steps": args["gradient_accumulation_steps"]},
        "observed_warmup": {
            "lr_first_reaches_peak_at_logged_step": None, "true_peak_update": true_peak_label,
            "warmup_updates": W, "max_logged_lr_step": max_step, "max_logged_lr": lr_at[max_step],
            "logged_steps_around_peak": {str(s): lr_at[s] for s in (10, 20)},
            "lr_at_logged_step_10_over_peak": f"{W - 2}/{W} (update 10 uses lambda(9) = 9/11)",
            "lr_at_logged_step_20_over_peak": f"{T - 19}/{T - W} (update 20 uses lambda(19) = 84/92)",
            "bracket_from_log": [11, 20],
            "bracket_rule": "the peak label lies after the last logged step still on the ramp (10) and at or before "
                            "the first logged step after it (20); any correct bracket must contain the true peak label "
                            "12. A configured warmup of 11 updates (= peak at label 12) lies inside it and is not an "
                            "error.",
            "two_line_intersection_step": round(cross, 9),
            "two_line_note": "ramp line through (step 1, LR 0) [HF >= 4.51 logs LR 0 at step 1] and (10, 9/11 peak); "
                             "decay line through the logged steps 20..100: they cross at step 12 exactly.",
        },
        "claim_checks": [
            {"claim": "warmup_steps=11 (ceil(0.1*103))", "verdict": "correct"},
            {"claim": "warmup_steps=0.1 ratio of 103", "verdict": "correct (rounded up to 11)"},
            {"claim": "warmup_steps=10 (int(10.3))", "verdict": "wrong by one, but inside the log's bracket: the "
                                                                 "sparse log cannot rule it out by values alone"},
            {"claim": "warmup_steps=19 (max logged LR at step 20)", "verdict": "wrong (the logged ramp and decay "
                                                                            "lines cross at step 12)"},
        ],
        "expected_findings": dict(NO_PROBLEM, first_logged_lr_is_zero=False,
                                  no_wc2xx_error_for=["--warmup-steps 11", "--warmup-ratio 0.1 (total 103)"]),
    })
    tiny.write_truth(d, truth)


def hf_blowup_hidden_nan(out: Path) -> None:
    case = "hf_blowup_hidden_nan"
    d = out / case
    T, W, P, seed = 60, 30, 2.5, 1
    hf_train(d, seed=seed, max_steps=T, lr=P, scheduler="cosine", warmup=W, logging_steps=1, optim="sgd",
             max_grad_norm=0.0)
    ev, sc, texts = read_events(d)
    state = read_state(d / "trainer_state.json")  # json.loads reads the bare NaN tokens the Trainer wrote
    rows = train_rows(state)
    loss, gn, lr = series(rows, "loss"), series(rows, "grad_norm"), series(rows, "learning_rate")
    for kind, key in (("lr", "learning_rate"), ("loss", "loss"), ("grad_norm", "grad_norm")):
        check_same_training(tb_series(sc, kind), series(rows, key))
    check_lr(lr, lambda k: P * cosine_lambda(k, W, T), 1e-12)
    steps = [s for s, _ in loss]
    assert steps == list(range(1, T + 1))
    assert all(math.isfinite(v) for _, v in loss)  # the filter leaves no NaN in the loss series
    first_bad_gn = next(s for s, g in gn if not math.isfinite(g))
    filtered = [s for s, v in loss if v == 0.0]
    first_filtered = filtered[0]
    assert filtered == list(range(first_filtered, T + 1)), filtered  # 0.0 at every step from there on
    assert all(not math.isfinite(g) for s, g in gn if s >= first_filtered)
    assert first_bad_gn <= first_filtered
    # expected value: median of the preceding (up to) 20 logged losses, at least 5
    vals = dict(loss)
    gt3 = None
    for i, s in enumerate(steps):
        if i < 5 or s >= first_filtered:
            continue
        med = statistics.median(vals[t] for t in steps[max(0, i - 20):i])
        if vals[s] > 3 * med:
            gt3, gt3_expected = s, med
            break
    assert gt3 is not None
    finite_before = [(s, v) for s, v in loss if s < first_filtered]
    max_step, max_loss = max(finite_before, key=lambda p: p[1])
    assert max_loss > 1e10 and first_filtered - gt3 >= 5, (max_loss, gt3, first_filtered)
    best_step, best_loss = min(((s, v) for s, v in loss if s < gt3), key=lambda p: p[1])
    initial = loss[0][1]
    gt3_initial = next(s for s, v in loss if v > 3 * initial)
    around = {str(s): vals[s] for s in range(gt3 - 6, first_filtered + 3)}
    # the final climb: the first step from which every logged loss before the filtered ones is > 1.25x its
    # expected value (same expected-value rule as above)
    expected = {s: statistics.median(vals[t] for t in steps[max(0, i - 20):i]) for i, s in enumerate(steps)
                if i >= 5 and s < first_filtered}
    rise = min(s for s in expected if all(vals[t] > 1.25 * expected[t] for t in expected if t >= s))
    train_loss = state["log_history"][-1]["train_loss"]
    truth = base_truth(
        case, f"HF Trainer, plain SGD (no momentum) with peak LR {P} (too high), cosine with warmup_steps={W}, "
        f"max_steps={T}, logging_steps=1, max_grad_norm=0 (no clipping; the Trainer still logs the total grad norm). "
        f"The loss climbs from ~{vals[gt3 - 1]:.3g} at step {gt3 - 1} to {max_loss:.3g} at step {max_step} (finite), "
        f"the grad norm is NaN from step {first_bad_gn}, and from step {first_filtered} the true loss is NaN but "
        "logging_nan_inf_filter (default True) logs 0.0 beside a NaN grad norm to the end.",
        d, ev, total=T, steps=steps,
        schedule={"family": "linear_warmup_then_cosine", "peak_lr": P, "final_lr": 0.0,
                  "lambda": f"k<W: k/W; else 0.5*(1+cos(pi*(k-W)/(T-W))), k = 0-based update, T={T}, W={W}"},
        configured={"warmup_steps": W, "rounding": "integer given; used as is"})
    truth.update({
        "optimizer": "torch.optim.SGD (TrainingArguments optim='sgd', no momentum, weight_decay=0)",
        "max_grad_norm": 0.0,
        "seed": seed,
        "args_text_summary": args_summary(json.loads(texts["args/text_summary"])),
        "observed_warmup": {"lr_first_reaches_peak_at_logged_step": first_peak_label(lr, P),
                            "note": "the LR schedule keeps running after the NaN (the optimizer step is never "
                                    "skipped in fp32), so the peak is logged at step W+1 as usual"},
        "how_hf_logs_a_nan_loss": (
            "transformers 5.25 Trainer._inner_training_loop: when a micro-batch loss is NaN or inf and "
            "args.logging_nan_inf_filter is True (the default), it does `self._tr_loss += self._tr_loss / (1 + "
            "state.global_step - self._globalstep_last_logged)` instead of adding the loss. With logging_steps=1 "
            "_tr_loss was reset to 0 by the previous log, so it adds 0 and the logged `loss` is exactly 0.0 (with "
            "logging_steps=N it would be the mean of the finite losses since the last log, scaled). grad_norm is "
            "logged unfiltered (NaN), learning_rate normally. The filter only looks at the loss: a finite loss "
            f"with a NaN grad norm (here step {first_bad_gn}) is logged as it is. trainer_state.json stores NaN as "
            "the bare token NaN (Python json); tfevents as a float32 NaN simple_value."),
        "final_summary_row": {"step": T, "train_loss": train_loss,
                              "note": "train_loss = sum of the logged losses / steps, dominated by the finite blow-up"},
        "expected_findings": {
            "healthy": False,
            "divergence": {
                "diverged": True,
                "kind": "finite blow-up (LR too high, SGD) then NaN hidden by logging_nan_inf_filter",
                "phase": "warmup" if gt3 <= W else "after warmup",
                "initial_loss": initial,
                "best_loss_before_divergence": {"step": best_step, "loss": best_loss},
                "expected_value_rule": "expected(s) = median of the (up to) 20 logged losses before s (at least 5)",
                "first_step_loss_gt_3x_expected": gt3,
                "expected_value_there": gt3_expected,
                "first_step_loss_gt_3x_initial": gt3_initial,
                "sustained_rise_from_step": rise,
                "sustained_rise_rule": "first step from which every logged loss before the first filtered one is "
                                       "> 1.25x its expected value; before it the loss wobbles (best "
                                       f"{best_loss:.3g} at step {best_step}, up to {vals[17]:.3g} at step 17, "
                                       f"back to {vals[19]:.3g} at step 19)",
                "wc403_onset_window": [min(rise, gt3 - 3), gt3 + 3],
                "wc403_rule": "WC403 must be reported from the finite blow-up, before the first filtered loss: at a "
                              "step within 3 of first_step_loss_gt_3x_expected, or from the start of the sustained "
                              "rise (sustained_rise_from_step) if that is earlier",
                "max_finite_loss": {"step": max_step, "loss": max_loss},
                "first_nonfinite_grad_norm_step": first_bad_gn,
                "grad_norm_value_there": gn[first_bad_gn - 1][1],
                "loss_at_first_nonfinite_grad_norm": vals[first_bad_gn],
                "first_filtered_loss_step": first_filtered,
                "filtered_loss_value": 0.0,
                "filtered_loss_steps": [first_filtered, T],
                "first_nonfinite_loss_step_logged": None,
                "wc402_expected": True,
                "wc402_at_step": first_filtered,
                "loss_values_around_onset": around,
                "grad_norm_values_around_onset": {str(s): gn[s - 1][1] for s in range(gt3 - 6, first_filtered + 3)},
                "lr_at_onset": lr[gt3 - 1][1],
            },
            "nonfinite_loss": True,
            "nonfinite_loss_logged": False,
            "nonfinite_loss_note": f"the training loss is NaN from step {first_filtered}, but every logged loss is "
                                   "finite (0.0 from the filter); the NaN shows only in grad_norm",
            "spike": None,
            "spikes_by_corpus_criterion": corpus_spikes([(s, v) for s, v in loss if s < first_filtered]),
            "truncated": False,
            "resume_overlap": None,
        },
    })
    tiny.write_truth(d, truth)


def hf_cosine_min_lr_warmup(out: Path) -> None:
    case = "hf_cosine_min_lr_warmup"
    T, W, P, m = 100, 10, 1e-3, 0.1
    d, ev, state, rows, lr, args = standard_case(
        out, case, total=T, peak=P, warmup=W, scheduler="cosine_warmup_with_min_lr",
        lam=lambda k: cosine_min_lr_rate_lambda(k, W, T, m), sched_kwargs={"min_lr_rate": m}, seed=2)
    steps = [s for s, _ in lr]
    label = first_peak_label(lr, P)
    assert label == W and math.isclose(lr[0][1], P / W) and math.isclose(lr[-1][1], m * P)
    truth = base_truth(
        case, f"HF Trainer, lr_scheduler_type='cosine_warmup_with_min_lr' (min_lr_rate={m}), warmup_steps={W}, "
        f"max_steps={T}, logging every step. Its ramp is (k+1)/W, not k/W: the first logged LR (step 1) is "
        f"P/{W}, not 0, and the peak is first logged at step {W} (update {W}, 0-based k={W - 1}), one step earlier "
        "than HF's other warmup schedules. The event file carries the TrainingArguments (args/text_summary); "
        "trainer_state.json of the same training does not.", d, ev, total=T, steps=steps,
        schedule={"family": "linear_warmup_then_cosine_to_min_lr", "peak_lr": P, "min_lr_rate": m,
                  "final_lr": lr[-1][1],
                  "lambda": f"k<W: (k+1)/W; else m+(1-m)*0.5*(1+cos(pi*(k-W+1)/(T-W))), k = 0-based update, "
                            f"T={T}, W={W}, m={m}",
                  "transformers_function": "optimization.get_cosine_with_min_lr_schedule_with_warmup_lr_rate "
                                           "(_get_cosine_with_min_lr_schedule_with_warmup_lr_rate_lambda)",
                  "lr_logged_at_step_1": lr[0][1], "lr_logged_at_last_step": lr[-1][1]},
        configured={"warmup_steps": W, "rounding": "integer given; used as is",
                    "lr_scheduler_kwargs": {"min_lr_rate": m}})
    truth.update({
        "args_text_summary": args_summary(args),
        "observed_warmup": {
            "lr_first_reaches_peak_at_logged_step": label,
            "updates_below_peak": W - 1,
            "updates_below_peak_rule": "update k (0-based) uses P*(k+1)/W: k = 0..W-2 are below the peak, k = W-1 "
                                       "is the first at peak; HF logs it at step k+1 = W",
            "lr_logged_at_step_1_over_peak": f"1/{W}",
            "ramp_extrapolates_to_zero_at_step": 0,
            "ramp_note": "the logged ramp P*s/W hits 0 at step 0, one step before HF's usual first label (step 1, "
                         "LR 0 for the k/W schedules); a reader assuming the k/W ramp gets k* = W (one too many)",
        },
        "claim_checks": [
            {"claim": f"warmup_steps={W} with cosine_warmup_with_min_lr", "verdict": "correct: this scheduler "
             f"runs {W - 1} updates below the peak ((k+1)/W ramp); the peak at logged step {W} is as configured"},
            {"claim": f"warmup_steps={W} read with the k/W ramp of 'linear'/'cosine' (peak at step {W + 1})",
             "verdict": "wrong reading for this scheduler"},
            {"claim": f"warmup_steps={W - 1}", "verdict": "the same curve under a k/W reading; not what was "
                                                         "configured"},
        ],
        "expected_findings": dict(NO_PROBLEM, first_logged_lr_is_zero=False,
                                  convention_hint="args/text_summary lr_scheduler_type in the event file; "
                                                  "trainer_state.json alone has no scheduler name"),
    })
    tiny.write_truth(d, truth)


def hf_output_dir(out: Path) -> None:
    case = "hf_output_dir"
    d = out / case
    T, W, P, every, save = 60, 7, 1e-3, 2, 20
    hf_train(d, seed=5, max_steps=T, lr=P, scheduler="cosine", warmup=W, logging_steps=every, evaluate=True,
             eval_steps=save, save_steps=save)
    removed: dict[str, list[str]] = {}
    for ck in sorted(d.glob("checkpoint-*")):  # keep the small JSON files, drop weights/optimizer/rng pickles
        removed[ck.name] = sorted(p.name for p in ck.iterdir() if p.suffix != ".json")
        for p in ck.iterdir():
            if p.suffix != ".json":
                p.unlink()
    ev, sc, texts = read_events(d)
    state = read_state(d / "trainer_state.json")
    rows = train_rows(state)
    lr = series(rows, "learning_rate")
    for kind, key in (("lr", "learning_rate"), ("loss", "loss"), ("grad_norm", "grad_norm")):
        check_same_training(tb_series(sc, kind), series(rows, key))
    check_lr(lr, lambda k: P * cosine_lambda(k, W, T), 1e-12)
    assert_healthy(series(rows, "loss"))
    evals = [(r["step"], r["eval_loss"]) for r in state["log_history"] if "eval_loss" in r]
    check_same_training(sorted(dict(sc["eval/loss"]).items()), evals)
    assert [s for s, _ in evals] == list(range(save, T + 1, save))
    checkpoints = {}
    for ck in sorted(d.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        cs = read_state(ck / "trainer_state.json")
        n = len(cs["log_history"])
        assert cs["log_history"] == state["log_history"][:n] and cs["global_step"] == int(ck.name.split("-")[1])
        assert cs["max_steps"] == T
        checkpoints[f"{ck.name}/trainer_state.json"] = {
            "global_step": cs["global_step"], "log_history_rows": n,
            "is_prefix_of_top_level_log_history": True, "files_kept": sorted(p.name for p in ck.iterdir()),
            "files_removed_after_training": removed[ck.name]}
    args = json.loads(texts["args/text_summary"])
    steps = [s for s, _ in lr]
    label = first_peak_label(lr, P)
    assert label == W + 1 and steps == list(range(every, T + 1, every))
    truth = base_truth(
        case, f"A whole HF Trainer output_dir of ONE training (max_steps={T}, cosine, warmup_steps={W}, logging "
        f"every {every}, evaluation and checkpoints every {save} steps): the TensorBoard events in runs/<date>_<host>/ "
        "(the 5.x default logging dir), trainer_state.json written by save_state() at the end, and checkpoint-20/40/60 "
        "with their own trainer_state.json (prefixes of the same log_history). Model weights, optimizer/scheduler "
        "states, rng states and training_args.bin were deleted from the checkpoints after training to keep the repo "
        "small; nothing else was changed.", d, ev, total=T, steps=steps,
        schedule={"family": "linear_warmup_then_cosine", "peak_lr": P, "final_lr": lr[-1][1],
                  "lambda": f"k<W: k/W; else 0.5*(1+cos(pi*(k-W)/(T-W))), k = 0-based update, T={T}, W={W}"},
        configured={"warmup_steps": W, "rounding": "integer given; used as is",
                    "where": "args/text_summary in the event file; trainer_state.json has max_steps but no warmup"})
    truth["files"].update(checkpoints=list(checkpoints), one_training_run=[ev, "trainer_state.json", *checkpoints])
    truth.update({
        "args_text_summary": args_summary(args),
        "max_steps_in_trainer_state": state["max_steps"],
        "checkpoints": checkpoints,
        "eval": {"tags": {"eval_loss": "eval/loss"}, "trainer_state_key": "eval_loss",
                 "steps": [s for s, _ in evals], "values": {str(s): v for s, v in evals},
                 "other_eval_tags": sorted(t for t in sc if t.startswith("eval/") and t != "eval/loss")},
        "observed_warmup": {"lr_first_reaches_peak_at_logged_step": label, "updates_below_peak": W},
        "expected_single_run_verdict": {
            "runs": 1,
            "sources": [ev, "trainer_state.json"],
            "checkpoint_states": "copies of the same training at steps 20/40/60: not runs of their own",
            "total_steps": T,
            "warmup": f"peak first at step {label} ({W} updates below peak) = warmup_steps={W}: consistent",
            "eval_loss": "role eval_loss, joined to the run; not a training loss",
            "healthy": True,
        },
        "expected_findings": dict(NO_PROBLEM, first_logged_lr_is_zero=False),
    })
    tiny.write_truth(d, truth)


def hf_polynomial_power2(out: Path) -> None:
    case = "hf_polynomial_power2"
    T, W, P, end, power = 120, 10, 1e-3, 1e-5, 2.0
    d, ev, state, rows, lr, args = standard_case(
        out, case, total=T, peak=P, warmup=W, scheduler="polynomial",
        lam=lambda k: polynomial_lambda(k, W, T, P, end, power), sched_kwargs={"power": power, "lr_end": end},
        seed=6)
    label = first_peak_label(lr, P)
    assert label == W + 1 and lr[0][1] == 0.0
    mid = W + (T - W) // 2 + 1
    truth = base_truth(
        case, f"HF Trainer, lr_scheduler_type='polynomial' with lr_scheduler_kwargs power={power}, lr_end={end}; "
        f"warmup_steps={W}, max_steps={T}, logging every step: linear warmup, then (P-end)*(1-(k-W)/(T-W))^2 + end, "
        "a convex decay (not linear, not cosine).", d, ev, total=T, steps=[s for s, _ in lr],
        schedule={"family": "linear_warmup_then_polynomial_decay", "peak_lr": P, "power": power, "lr_end": end,
                  "final_lr": lr[-1][1],
                  "lambda": f"k<W: k/W; k<=T: ((P-end)*(1-(k-W)/(T-W))^{power:g}+end)/P, k = 0-based update, "
                            f"T={T}, W={W}",
                  "transformers_function": "optimization.get_polynomial_decay_schedule_with_warmup",
                  "decay_midpoint": {"logged_step": mid, "lr": dict(lr)[mid],
                                     "fraction_of_peak": dict(lr)[mid] / P,
                                     "note": "halfway through the decay the LR is ~1/4 of the peak (power 2); a "
                                             "linear decay would be at 1/2, a cosine at 1/2"},
                  "lr_logged_at_step_1": lr[0][1], "lr_logged_at_last_step": lr[-1][1]},
        configured={"warmup_steps": W, "rounding": "integer given; used as is",
                    "lr_scheduler_kwargs": {"power": power, "lr_end": end}})
    truth.update({
        "args_text_summary": args_summary(args),
        "observed_warmup": {"lr_first_reaches_peak_at_logged_step": label, "updates_below_peak": W},
        "expected_findings": dict(NO_PROBLEM, first_logged_lr_is_zero=True,
                                  schedule_recognised="polynomial decay, power 2 (no WC108 warning)"),
    })
    tiny.write_truth(d, truth)


def hf_cosine_hard_restarts(out: Path) -> None:
    case = "hf_cosine_hard_restarts"
    T, W, P, cycles = 130, 10, 1e-3, 3
    d, ev, state, rows, lr, args = standard_case(
        out, case, total=T, peak=P, warmup=W, scheduler="cosine_with_restarts",
        lam=lambda k: hard_restarts_lambda(k, W, T, cycles), sched_kwargs={"num_cycles": cycles}, seed=7)
    label = first_peak_label(lr, P)
    assert label == W + 1
    vals = dict(lr)
    jumps = [s for s in vals if s > label and s - 1 in vals and vals[s] > vals[s - 1]]
    cycle_len = (T - W) // cycles
    assert jumps == [W + 1 + c * cycle_len for c in range(1, cycles)], jumps
    assert all(math.isclose(vals[s], P, rel_tol=1e-12) for s in jumps)
    truth = base_truth(
        case, f"HF Trainer, lr_scheduler_type='cosine_with_restarts' with lr_scheduler_kwargs num_cycles={cycles}; "
        f"warmup_steps={W}, max_steps={T}, logging every step: linear warmup, then {cycles} cosine cycles of "
        f"{cycle_len} updates, each restarting at the peak (hard restarts at logged steps {jumps}).",
        d, ev, total=T, steps=[s for s, _ in lr],
        schedule={"family": "linear_warmup_then_cosine_with_hard_restarts", "peak_lr": P, "num_cycles": cycles,
                  "cycle_length_updates": cycle_len, "final_lr": lr[-1][1],
                  "lambda": f"k<W: k/W; else 0.5*(1+cos(pi*((C*(k-W)/(T-W)) % 1))), 0 once progress >= 1; "
                            f"k = 0-based update, T={T}, W={W}, C={cycles}",
                  "transformers_function": "optimization.get_cosine_with_hard_restarts_schedule_with_warmup",
                  "restart_logged_steps": jumps,
                  "restart_updates_0based": [s - 1 for s in jumps],
                  "lr_before_restart": {str(s - 1): vals[s - 1] for s in jumps},
                  "cycle_starts_logged_steps": [label, *jumps]},
        configured={"warmup_steps": W, "rounding": "integer given; used as is",
                    "lr_scheduler_kwargs": {"num_cycles": cycles}})
    truth.update({
        "args_text_summary": args_summary(args),
        "observed_warmup": {"lr_first_reaches_peak_at_logged_step": label, "updates_below_peak": W,
                            "note": "the warmup ends at the first peak; the later returns to the peak are scheduled "
                                    "restarts, not the end of the warmup and not LR excursions"},
        "expected_findings": dict(NO_PROBLEM, first_logged_lr_is_zero=True,
                                  schedule_recognised=f"cosine with {cycles} hard restarts (WC104 says a restart "
                                                      "was scheduled; no WC108 warning)"),
    })
    tiny.write_truth(d, truth)


CASES: dict[str, Callable[[Path], None]] = {
    "hf_sparse_accum2_log10": hf_sparse_accum2_log10,
    "hf_blowup_hidden_nan": hf_blowup_hidden_nan,
    "hf_cosine_min_lr_warmup": hf_cosine_min_lr_warmup,
    "hf_output_dir": hf_output_dir,
    "hf_polynomial_power2": hf_polynomial_power2,
    "hf_cosine_hard_restarts": hf_cosine_hard_restarts,
}


def main(argv: list[str]) -> None:
    if argv and argv[0] not in CASES:
        out, argv = Path(argv[0]), argv[1:]
    else:
        out = DEFAULT_OUT
    names = argv or list(CASES)
    for name in names:
        CASES[name](out)
        print(f"{name}: {dir_size(out / name)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
