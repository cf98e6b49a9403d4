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
STATE_KEYS = {"step": "step", "lr": "learning_rate", "loss": "loss", "grad_norm": "grad_norm", "total_steps": "max_steps"}
NO_PROBLEM = {"divergence": None, "nonfinite_loss": False, "spike": None, "spikes_by_corpus_criterion": [],
              "truncated": False, "resume_overlap": None, "healthy": True}


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
    model.accepts_loss_kwargs = False
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
            "bracket_rule": "the peak label lies after the last logged step still on the ramp (10) and at or before the "
                            "first logged step after it (20); any correct bracket must contain the true peak label 12. "
                            "A configured warmup of 11 updates (= peak at label 12) lies inside it and is not an error.",
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


CASES: dict[str, Callable[[Path], None]] = {
    "hf_sparse_accum2_log10": hf_sparse_accum2_log10,
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
