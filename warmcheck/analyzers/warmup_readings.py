"""Readings of a configured warmup: the numbers of warmup updates it can produce, and how sure each is.

Frameworks turn a warmup setting into updates differently (``domain/schedule-conventions.md``):
``int`` vs ``ceil`` vs round-half-even of ``ratio x total`` (HF uses ceil, the LLMs-from-scratch
book and Composer int), the peak first used at update ``W`` (HF, torch LinearLR, nanoGPT), ``W-1``
(``(k+1)/W`` ramps, HF ``cosine_warmup_with_min_lr``, OneCycleLR's ``pct_start x T - 1``) or
``W+1`` (DeepSpeed linear warmup). A ``W-1`` or ``W+1`` reading is *confirmed* only when the
configuration names such a scheduler or the log shows it (where the ramp extrapolates to zero, the
one-cycle shape, two idle first updates); otherwise it only keeps a mismatch from being called sure.

Explanations of a mismatch use only configured or logged inputs (another rounding, the ratio applied
to micro-batches, a scheduler stepped per micro-batch, per process or per epoch, a ratio of the
logged length, a warmup setting that a later source overrode) and say where each input came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model import Run, Schedule
from ..runconfig import Configured, Value

_W_MINUS_1 = "the peak is the W-th update ((k+1)/W ramps, HF cosine_warmup_with_min_lr, OneCycleLR pct*T-1)"
_W_PLUS_1 = "the peak comes one update late (DeepSpeed linear warmup, Composer)"
ZERO_TOL = 0.002  # updates: how close the ramp's zero crossing must be to -1 or +1 to show a (k+-1)/W ramp


@dataclass(frozen=True, slots=True)
class Candidate:
    """A number of warmup updates some reading of the configuration produces.

    ``expected``: a reading under which the configuration is consistent; ``confirmed``: that reading's
    convention is established by the configuration or the log (else it can only make a verdict
    undecidable, never consistent); ``inputs``: where each input of ``formula`` came from.
    """

    value: int
    formula: str
    expected: bool
    note: str = ""
    confirmed: bool = True
    inputs: str = ""
    rival: bool = True  # a mismatch hypothesis (False: a rounding the known framework does not use)


def rounded(x: float) -> list[tuple[str, int]]:
    """``x`` under each rounding rule frameworks use (float error included, as they compute it)."""
    return [("int", int(x)), ("ceil", math.ceil(x)), ("round", round(x)), ("round-half-up", math.floor(x + 0.5))]


def _num(x: float) -> str:
    return f"{x:g}"


def ramp_zero(run: Run, sched: Schedule) -> float | None:
    """The update at which the linear warmup ramp extrapolates to LR 0 (``None``: not a clean line).

    ``k/W`` ramps cross at 0, ``(k+1)/W`` ramps (peak at update W-1) at -1, DeepSpeed's ``(k-1)/W`` at
    +1; ramps from a start value (torch LinearLR, the book's initial_lr) cross elsewhere."""
    series = run.get(sched.tag)
    if series is None or sched.warmup_end_step is None or sched.warmup_shape not in ("linear", "staircase"):
        return None
    keep = (series.steps < sched.warmup_end_step) & np.isfinite(series.values)
    steps, values = series.steps[keep].astype(float), series.values[keep]
    if sched.leading_hold >= 2:  # DeepSpeed-style idle updates: the line starts at the last of them
        steps, values = steps[sched.leading_hold - 1:], values[sched.leading_hold - 1:]
    steps, values = steps[-8:], values[-8:]
    if steps.size < 2 or not np.all(np.diff(values) > 0):
        return None
    slope, intercept = np.polyfit(steps, values, 1)
    if slope <= 0 or np.max(np.abs(slope * steps + intercept - values)) > 1e-4 * sched.peak_lr:
        return None
    return float(-intercept / slope) + sched.convention.delta


def _conventions(cfg: Configured, sched: Schedule, zero: float | None) -> tuple[str | None, str | None]:
    """Why W-1 and W+1 readings are real for this run (``None``: nothing confirms them)."""
    minus = plus = None
    if cfg.scheduler == "cosine_warmup_with_min_lr":
        minus = "lr_scheduler_type cosine_warmup_with_min_lr"
    elif sched.decay_shape == "one-cycle":
        minus = "the LR has OneCycleLR's shape"
    elif zero is not None and abs(zero + 1) <= ZERO_TOL:
        minus = "the ramp extrapolates to 0 one update before the first: a (k+1)/W ramp"
    if cfg.framework == "deepspeed":
        plus = "DeepSpeed"
    elif sched.leading_hold >= 2:
        plus = f"the first {sched.leading_hold} updates ran at the starting LR, as DeepSpeed's warmup does"
    elif zero is not None and abs(zero - 1) <= ZERO_TOL:
        plus = "the ramp extrapolates to 0 one update after the first: a (k-1)/W ramp"
    return minus, plus


def ratio_totals(cfg: Configured, sched: Schedule) -> list[tuple[int, str]]:
    """The totals a warmup ratio may apply to, each with where it came from: the configured total, epochs x
    steps per epoch, or else every length the log allows (it ends at its last logged step, or up to
    one logging interval later)."""
    if cfg.total_steps is not None:
        t = int(cfg.total_steps.value)
        return [(t, f"total {t} from {cfg.total_steps.source}")]
    if cfg.epochs is not None and cfg.steps_per_epoch is not None:
        t = int(cfg.epochs.value * cfg.steps_per_epoch.value)
        return [(t, f"total {t} = epochs {_num(cfg.epochs.value)} ({cfg.epochs.source}) x steps per epoch "
                    f"{_num(cfg.steps_per_epoch.value)} ({cfg.steps_per_epoch.source})")]
    span = f"steps {sched.first_step}..{sched.last_step}"
    out = [(sched.total_steps, f"total {sched.total_steps} = the logged length ({span})")]
    for extra in range(1, sched.log_interval):
        out.append((sched.total_steps + extra, f"total {sched.total_steps + extra}: the log ({span}, every "
                    f"{sched.log_interval}) may end up to {sched.log_interval - 1} updates before the run"))
    return out


def _plus_minus(out: list[Candidate], value: int, label: str, inputs: str, hf: bool,
                conv: tuple[str | None, str | None]) -> None:
    minus, plus = conv
    if minus is not None or not hf:
        out.append(Candidate(value - 1, f"{label} - 1 = {value - 1}", True, _W_MINUS_1, minus is not None,
                             inputs + (f"; {minus}" if minus else "")))
    if plus is not None or not hf:
        out.append(Candidate(value + 1, f"{label} + 1 = {value + 1}", True, _W_PLUS_1, plus is not None,
                             inputs + (f"; {plus}" if plus else "")))


def candidates(cfg: Configured, sched: Schedule, zero: float | None = None) -> list[Candidate]:
    """Every reading of the configured warmup (``zero``: see :func:`ramp_zero`), the consistent ones first."""
    out: list[Candidate] = []
    conv = _conventions(cfg, sched, zero)
    hf = cfg.framework == "hf"
    skips = len(sched.ramp_repeats)
    repeats = f"LR repeated at logged steps {', '.join(map(str, sched.ramp_repeats[:5]))}"
    base: list[tuple[str, float, str]] = []  # (label, value, inputs) the multiplier explanations start from
    if cfg.warmup_steps is not None:
        w, src = int(cfg.warmup_steps.value), cfg.warmup_steps.source
        inputs = f"warmup_steps {w} from {src}"
        out.append(Candidate(w, f"warmup_steps={w}", True, inputs=inputs))
        _plus_minus(out, w, "warmup_steps", inputs, hf, conv)
        if skips:
            out.append(Candidate(w + skips, f"{w} + {skips} skipped optimizer steps", True,
                                 inputs=f"{inputs}; {repeats}"))
        if sched.warmup_end_estimated and sched.log_interval > 1:
            # Mixed-precision runs skip a few optimizer steps (loss-scale overflow) early on; the step
            # counter advances, the scheduler does not. A sparse log cannot show the repeats.
            for d in range(2, max(2, int(0.01 * w)) + 1):
                out.append(Candidate(w + d, f"{w} + {d} skipped optimizer steps", True,
                                     f"{d} optimizer steps were skipped (fp16 loss-scale overflow), "
                                     f"which a log every {sched.log_interval} steps cannot show", False, inputs))
        base = [(f"{w}", float(w), inputs)]
    else:
        assert cfg.warmup_ratio is not None
        r, rsrc = cfg.warmup_ratio.value, cfg.warmup_ratio.source
        totals = ratio_totals(cfg, sched)
        for total, tsrc in totals:
            inputs = f"warmup_ratio {_num(r)} from {rsrc}, {tsrc}"
            x = r * total
            if cfg.onecycle and float(x).is_integer():
                out.append(Candidate(int(x) - 1, f"pct_start x total - 1 = {_num(r)} x {total} - 1 (OneCycleLR)",
                                     True, inputs=inputs))
            for rule, value in rounded(x):
                label = f"{rule}({_num(r)} x {total})"
                out.append(Candidate(value, label, not hf or rule == "ceil", inputs=inputs, rival=False))
                _plus_minus(out, value, label, inputs, hf, conv)
                if skips:
                    out.append(Candidate(value + skips, f"{label} + {skips} skipped steps", True,
                                         inputs=f"{inputs}; {repeats}"))
        total, tsrc = totals[0]
        inputs = f"warmup_ratio {_num(r)} from {rsrc}, {tsrc}"
        base = [(f"{rule}({_num(r)} x {total})", float(v), inputs) for rule, v in rounded(r * total)[:2]]
        if cfg.grad_accum is not None and cfg.grad_accum.value > 1:
            g = int(cfg.grad_accum.value)
            for rule, value in rounded(r * total * g):
                out.append(Candidate(value, f"{rule}({_num(r)} x {total * g}): the ratio applied to micro-batches "
                                     f"(total x grad_accum {g})", False,
                                     inputs=f"{inputs}, grad_accum {g} from {cfg.grad_accum.source}"))
        if cfg.total_steps is not None or cfg.epochs is not None and cfg.steps_per_epoch is not None:
            n = sched.total_steps
            for rule, value in rounded(r * n):
                if n != total:
                    out.append(Candidate(value, f"{rule}({_num(r)} x {n}): the ratio of the logged length", False,
                                         inputs=f"warmup_ratio {_num(r)} from {rsrc}, {n} = the logged length "
                                         f"(steps {sched.first_step}..{sched.last_step})", rival=False))
    out.extend(_explanations(cfg, sched, base))
    return out


def _explanations(cfg: Configured, sched: Schedule, base: list[tuple[str, float, str]]) -> list[Candidate]:
    """Readings that would mean the configuration was not what ran, from configured or logged inputs."""
    out: list[Candidate] = []
    g = int(cfg.grad_accum.value) if cfg.grad_accum is not None else 1
    for label, w, inputs in base:
        if g > 1:
            src = f"{inputs}, grad_accum {g} from {cfg.grad_accum.source if cfg.grad_accum else ''}"
            out.append(Candidate(int(round(w * g)), f"{label} x grad_accum {g}: warmup counted in micro-batches",
                                 False, inputs=src))
            out.append(Candidate(math.ceil(w / g), f"{label} / grad_accum {g}: scheduler stepped per micro-batch",
                                 False, inputs=src))
        for n in (2, 4, 8):
            out.append(Candidate(math.ceil(w / n), f"{label} / {n}: what a scheduler stepped {n} times per update "
                                 f"gives (accelerate with {n} processes?)", False, inputs=inputs))
        if sched.staircase is not None:
            st = sched.staircase.length
            out.append(Candidate(int(round(w)) * st, f"{label} x {st}: the scheduler stepped once per {st}-update "
                                 "epoch", False, inputs=f"{inputs}; plateaus of {st} logged steps"))
    for name, old, by in cfg.shadowed:
        out.extend(_shadowed(cfg, sched, name, old, by))
    return out


def _shadowed(cfg: Configured, sched: Schedule, name: str, old: Value, by: str) -> list[Candidate]:
    note = f"{name} {_num(old.value)} from {old.source}, overridden by {by}"
    if name == "warmup_steps":
        return [Candidate(int(old.value), f"warmup_steps={int(old.value)}", False, inputs=note)]
    rules = ("ceil",) if cfg.framework == "hf" else ("int", "ceil")
    return [Candidate(v, f"{rule}({_num(old.value)} x {t})", False, inputs=f"{note}, {tsrc}")
            for t, tsrc in ratio_totals(cfg, sched)[:1] for rule, v in rounded(old.value * t)[:2] if rule in rules]


def configured_ends(cfg: Configured, sched: Schedule) -> list[tuple[int, str]]:
    """Where the configured warmup ends in this log, once per step: (step, formula) for each expected,
    unqualified reading (the lines the plots draw for it)."""
    out: list[tuple[int, str]] = []
    seen: set[int] = set()
    for c in candidates(cfg, sched):
        step = c.value - sched.convention.delta
        if c.expected and not c.note and step not in seen:
            seen.add(step)
            out.append((step, c.formula))
    return out
