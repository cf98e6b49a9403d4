"""Helpers for the plain-torch real runs (``torch_runs.py``): the training step and logging, reading the
event files back, and the reference criteria of ``tests/data/realruns/README.md``.

Every value that goes into a ``truth.json`` is computed here from the files as written (float32
scalars read back with tensorboard's ``EventAccumulator``), never from the training loop's own floats.
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

sys.path.insert(0, str(Path(__file__).parent))
from tiny import TinyLM, versions, write_truth  # noqa: E402

Series = dict[int, float]


def read_scalars(run_dir: Path) -> tuple[dict[str, Series], list[str]]:
    """Every scalar tag of the run's event files as ``{tag: {step: value}}`` and the files' relative paths."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(run_dir.rglob("events.out.tfevents.*"))
    assert files, run_dir
    out: dict[str, Series] = {}
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, {}).update({e.step: float(e.value) for e in acc.Scalars(tag)})
    return out, [str(f.relative_to(run_dir)) for f in files]


def logged_steps(series: Series) -> dict[str, Any]:
    """first / last / count / every (``None`` when the spacing is irregular)."""
    steps = sorted(series)
    gaps = {b - a for a, b in zip(steps, steps[1:], strict=False)}
    return {"first": steps[0], "last": steps[-1], "count": len(steps), "every": gaps.pop() if len(gaps) == 1 else None}


def first_at_max(series: Series) -> tuple[int, float]:
    """The first logged step whose value equals the maximum logged value, and that value."""
    top = max(series.values())
    return min(s for s, v in series.items() if v == top), top


def corpus_spikes(loss: Series) -> list[dict[str, Any]]:
    """The reference spike criterion: ``L_t > 1.4*median`` and ``L_t - median > 6*1.4826*MAD`` against
    the previous 20 finite logged losses (at least 5; earlier spike points excluded); consecutive spike
    points form an episode."""
    history: list[float] = []
    points: list[tuple[int, float, float]] = []
    for step in sorted(loss):
        v = loss[step]
        if not math.isfinite(v):
            continue
        window = history[-20:]
        if len(window) >= 5:
            med = median(window)
            mad = median(abs(x - med) for x in window)
            if v > 1.4 * med and v - med > 6 * 1.4826 * mad:
                points.append((step, v, med))
                continue
        history.append(v)
    steps = sorted(loss)
    episodes: list[dict[str, Any]] = []
    for step, v, med in points:
        if episodes and steps.index(step) == steps.index(episodes[-1]["last_step"]) + 1:
            ep = episodes[-1]
            ep["last_step"] = step
            if v > ep["peak_loss"]:
                ep["peak_step"], ep["peak_loss"] = step, v
        else:
            episodes.append({"first_step": step, "last_step": step, "peak_step": step, "peak_loss": v,
                             "baseline_median": med})
    return episodes


def trailing_median(loss: Series, step: int, n: int = 10) -> float:
    """The median of the ``n`` logged losses ending at ``step``."""
    steps = [s for s in sorted(loss) if s <= step][-n:]
    return median(loss[s] for s in steps)


def elevated_region(loss: Series, onset_from: int, baseline: float, upper: float,
                    hold: int = 10) -> tuple[int | None, int | None, int | None]:
    """(first step >= ``onset_from`` with loss > 1.25*baseline, last elevated step, recovery step).

    The recovery step is the first step after the onset from which ``hold`` consecutive logged losses
    all lie at or below ``upper`` (the top of the normal band): back within the band and staying there,
    not the first dip. ``None`` when that never happens within the run."""
    steps = sorted(loss)
    onset = next((s for s in steps if s >= onset_from and loss[s] > 1.25 * baseline), None)
    if onset is None:
        return None, None, None
    after = [s for s in steps if s > onset]
    for i, s in enumerate(after):
        run = after[i:i + hold]
        if len(run) == hold and all(loss[t] <= upper for t in run):
            return onset, steps[steps.index(s) - 1], s
    return onset, None, None


def longest_run(steps: list[int], logged: list[int]) -> list[int] | None:
    """[first, last] of the longest run of consecutive logged steps among ``steps``."""
    best: list[int] | None = None
    pos = {s: i for i, s in enumerate(logged)}
    start = prev = None
    for s in sorted(steps) + [None]:
        if s is not None and prev is not None and pos[s] == pos[prev] + 1:
            prev = s
            continue
        longer = best is None or pos[prev] - pos[start] > pos[best[1]] - pos[best[0]] if prev is not None else False
        if start is not None and prev is not None and longer:
            best = [start, prev]
        start = prev = s
    return best


def nonfinite_steps(series: Series) -> list[int]:
    """Logged steps whose value is NaN or +/-inf."""
    return [s for s in sorted(series) if not math.isfinite(series[s])]


def window(series: Series, lo: int, hi: int) -> dict[int, float]:
    """The logged values at steps lo..hi."""
    return {s: series[s] for s in sorted(series) if lo <= s <= hi}


TAGS = {"lr": "train/lr", "loss": "train/loss", "grad_norm": "train/grad_norm"}
WRITER = "torch.utils.tensorboard.SummaryWriter"
ZERO_BASED = ("0-based iteration; the value at step s is the LR used by update s+1 (read from the param group "
              "before the update); loss/grad_norm are from that same update (grad_norm = total norm returned by "
              "clip_grad_norm_, before clipping).")
ONE_BASED_USED = ("1-based optimizer steps; the value at step s is the LR used by update s (read from the param "
                  "group before the update); loss/grad_norm are from that same update.")
NO_FINDINGS: dict[str, Any] = {"divergence": None, "nonfinite_loss": False, "spike": None, "truncated": False,
                               "resume_overlap": None}


def update(model: TinyLM, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
           max_norm: float = math.inf) -> tuple[float, float]:
    """One optimizer update; returns (loss, total grad norm before clipping)."""
    loss = model(x, y)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    opt.step()
    return float(loss.detach()), float(norm)


def lr_of(opt: torch.optim.Optimizer) -> float:
    return float(opt.param_groups[0]["lr"])


def fresh(out: Path, name: str) -> tuple[Path, SummaryWriter]:
    run_dir = out / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / "runs").mkdir(parents=True)
    return run_dir, SummaryWriter(log_dir=str(run_dir / "runs"))


def log(w: SummaryWriter, step: int, lr: float, loss: float, gnorm: float) -> None:
    w.add_scalar(TAGS["lr"], lr, step)
    w.add_scalar(TAGS["loss"], loss, step)
    w.add_scalar(TAGS["grad_norm"], gnorm, step)


def base_truth(name: str, note: str, run_dir: Path, total: int, step_indexing: str,
               **extra: Any) -> tuple[dict[str, Any], dict[str, Series]]:
    scalars, files = read_scalars(run_dir)
    truth: dict[str, Any] = {
        "case": name, "note": note, "writer": WRITER, "versions": versions("torch", "tensorboard", "numpy"),
        "generator": f"python scripts/realruns/torch_runs.py OUT_DIR {name}",
        "files": {"tfevents": files}, "tags": dict(TAGS), "step_indexing": step_indexing,
        "total_optimizer_steps": total, "logged_steps": logged_steps(scalars[TAGS["lr"]]),
    }
    truth.update(extra)
    return truth, scalars


def peak_obs(lr: Series, **extra: Any) -> dict[str, Any]:
    step, top = first_at_max(lr)
    return {"lr_first_reaches_peak_at_logged_step": step, "peak_lr_logged": top, **extra}


def close(a: float, b: float) -> bool:
    """float32 (as logged) against the float64 closed form."""
    return abs(a - b) <= 1e-6 * max(abs(b), 1e-12)


def check_closed_form(lr: Series, f: Callable[[int], float]) -> None:
    for s, v in lr.items():
        assert close(v, f(s)), (s, v, f(s))


def finish(run_dir: Path, truth: dict[str, Any], loss: Series) -> None:
    ef = truth["expected_findings"]
    ef.setdefault("spikes_by_corpus_criterion", corpus_spikes(loss))
    # healthy: no WC3xx/WC4xx warning or error is a correct verdict on this run
    ef.setdefault("healthy", ef["divergence"] is None and not ef["nonfinite_loss"] and not ef.get("spike")
                  and not ef["spikes_by_corpus_criterion"])
    write_truth(run_dir, truth)
    size = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    assert size < 200_000, (run_dir, size)
    print(f"{run_dir.name}: {size / 1024:.0f} KiB", file=sys.stderr)


def warmup_cosine(peak: float, warmup: int, total: int, floor: float = 0.0) -> Callable[[int], float]:
    """``peak*(s+1)/warmup`` for s < warmup, then a cosine from peak to ``floor*peak`` at ``total``."""
    def f(s: int) -> float:
        if s < warmup:
            return peak * (s + 1) / warmup
        c = 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))
        return peak * (floor + (1 - floor) * c)
    return f


def adamw(model: TinyLM, lr: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
