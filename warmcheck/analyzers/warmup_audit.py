"""WC2xx: the observed warmup, run length and peak against the configuration.

Frameworks turn a warmup setting into updates differently (``domain/schedule-conventions.md``):
``int`` vs ``ceil`` vs round-half-even of ``ratio x total`` (HF uses ceil, the LLMs-from-scratch
book and Composer int), the peak first used at update ``W`` (HF, torch LinearLR, nanoGPT), ``W-1``
(``(k+1)/W`` ramps, HF ``cosine_warmup_with_min_lr``, OneCycleLR's ``pct_start x T - 1``) or
``W+1`` (DeepSpeed linear warmup). Every reading that applies is a candidate; a configuration is
consistent when one of its own readings equals the observed count. Otherwise the finding names
the formula that does produce the observation, if any: another rounding, a ratio applied to
micro-batches, a scheduler stepped per micro-batch or per process, a ratio of the logged length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from ..config import Settings
from ..findings import Finding, make
from ..model import Role, Run, Schedule
from ..runconfig import Configured, configured
from .schedule import PEAK_TOL, fmt_lr, pick_group

_COMMON_RATIOS = (0.01, 0.02, 0.03, 0.05, 0.06, 0.1, 0.15, 0.2, 0.25, 0.3)
_W_MINUS_1 = "the peak is the W-th update ((k+1)/W ramps, HF cosine_warmup_with_min_lr, OneCycleLR pct*T-1)"
_W_PLUS_1 = "the peak comes one update late (DeepSpeed linear warmup, Composer)"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A number of warmup updates some reading of the configuration produces."""

    value: int
    formula: str
    expected: bool  # a reading under which the configuration is consistent
    note: str = ""


def rounded(x: float) -> list[tuple[str, int]]:
    """``x`` under each rounding rule frameworks use (float error included, as they compute it)."""
    return [("int", int(x)), ("ceil", math.ceil(x)), ("round", round(x)), ("round-half-up", math.floor(x + 0.5))]


def _num(x: float) -> str:
    return f"{x:g}"


class WarmupAudit:
    """WC201-WC206."""

    codes = frozenset({"WC201", "WC202", "WC203", "WC204", "WC205", "WC206"})

    def check(self, run: Run, settings: Settings) -> Iterator[Finding]:
        """See :class:`~warmcheck.analyzers.interface.Analyzer`."""
        cfg = configured(run, settings)
        sched = None
        if run.schedules:
            sched = pick_group(run, settings.peak_lr) if settings.peak_lr is not None else run.schedules[0]
        if settings.peak_lr is not None and sched is not None and sched.peak_lr > settings.peak_lr * (1 + PEAK_TOL):
            where = settings.sources.get("peak_lr", "--peak-lr")
            yield make("WC204", f"peak LR {fmt_lr(sched.peak_lr)} (step {sched.peak_step}) exceeds the configured "
                       f"{fmt_lr(settings.peak_lr)} ({where}), {sched.peak_lr / settings.peak_lr:.3g} x",
                       run=run.name, tag=sched.tag, step=sched.peak_step,
                       details={"observed_peak": sched.peak_lr, "configured_peak": settings.peak_lr,
                                "tolerance": PEAK_TOL})
        yield from _total(run, sched, settings)
        if cfg.any_warmup:
            yield from _warmup(run, sched, cfg)


def _observed_total(run: Run, sched: Schedule | None) -> tuple[int, int] | None:
    """(updates logged, logging interval), from the LR schedule or else the loss series."""
    if sched is not None:
        return sched.total_steps, sched.log_interval
    loss = run.primary(Role.LOSS)
    if loss is None or not loss.points:
        return None
    steps = loss.steps
    interval = int(max(1, min((steps[1:] - steps[:-1]).tolist() or [1])))
    return int(steps[-1]) + (1 if int(steps[0]) == 0 else 0), interval


def _total_candidates(s: Settings) -> list[tuple[int, str]]:
    """Configured totals (flags or config file only): the first is the plain reading."""
    if s.total_steps is not None:
        return [(s.total_steps, f"total_steps={s.total_steps}")]
    if s.epochs is None or s.steps_per_epoch is None:
        return []
    e, b = s.epochs, s.steps_per_epoch
    if s.grad_accum and s.grad_accum > 1:
        g = s.grad_accum
        return [(int(e * math.ceil(b / g)), f"{_num(e)} x ceil({b}/{g}) (HF >= 4.52)"),
                (int(e * (b // g)), f"{_num(e)} x floor({b}/{g}) (HF <= 4.51, torchtune)"),
                (int(e * b), f"{_num(e)} x {b} (micro-batches: gradient accumulation ignored)")]
    return [(int(e * b), f"{_num(e)} x {b}")]


def _total(run: Run, sched: Schedule | None, s: Settings) -> Iterator[Finding]:
    cands = _total_candidates(s)
    seen = _observed_total(run, sched)
    if not cands or seen is None:
        return
    observed, interval = seen
    common = {"run": run.name, "tag": sched.tag if sched else None}
    fits = [(t, why) for t, why in cands if observed <= t <= observed + interval - 1]
    details = {"observed_total": observed, "log_interval": interval, "candidates": [t for t, _ in cands]}
    if fits and fits[0][0] == cands[0][0]:
        return
    if fits:
        yield make("WC205", f"the run made {observed} updates = {fits[0][1]}, not {cands[0][1]}",
                   details={**details, "matched": fits[0][1]}, **common)
        return
    yield make("WC203", f"the run logged {observed} updates; configured {cands[0][1]} = {cands[0][0]} disagrees"
               + ("" if len(cands) == 1 else f" (also tried {', '.join(w for _, w in cands[1:])})"),
               details=details, **common)


def _ratio_total(cfg: Configured, sched: Schedule) -> tuple[int, str]:
    """The total a warmup ratio applies to: configured, epochs x steps per epoch, or the logged length."""
    if cfg.total_steps is not None:
        return int(cfg.total_steps.value), f"{int(cfg.total_steps.value)} ({cfg.total_steps.source})"
    if cfg.epochs is not None and cfg.steps_per_epoch is not None:
        t = int(cfg.epochs.value * cfg.steps_per_epoch.value)
        return t, f"{t} (epochs x steps per epoch)"
    return sched.total_steps, f"{sched.total_steps} logged steps"


def candidates(cfg: Configured, sched: Schedule) -> list[Candidate]:
    """Every reading of the configured warmup, the consistent ones first."""
    out: list[Candidate] = []
    g = int(cfg.grad_accum.value) if cfg.grad_accum else 1
    skips = len(sched.ramp_repeats)
    if cfg.warmup_steps is not None:
        w = int(cfg.warmup_steps.value)
        out.append(Candidate(w, f"warmup_steps={w}", True))
        if cfg.framework == "hf":
            if cfg.scheduler == "cosine_warmup_with_min_lr":
                out.append(Candidate(w - 1, f"warmup_steps - 1 = {w - 1}", True, _W_MINUS_1))
        elif cfg.framework == "deepspeed":
            out.append(Candidate(w + 1, f"warmup_steps + 1 = {w + 1}", True, _W_PLUS_1))
        else:
            out.append(Candidate(w - 1, f"warmup_steps - 1 = {w - 1}", True, _W_MINUS_1))
            out.append(Candidate(w + 1, f"warmup_steps + 1 = {w + 1}", True, _W_PLUS_1))
        if skips:
            out.append(Candidate(w + skips, f"{w} + {skips} skipped optimizer steps", True))
        if sched.warmup_end_estimated and sched.log_interval > 1:
            # Mixed-precision runs skip a few optimizer steps (loss-scale overflow) early on; the step
            # counter advances, the scheduler does not. A log every few steps cannot show the repeats.
            for d in range(2, max(2, int(0.01 * w)) + 1):
                out.append(Candidate(w + d, f"{w} + {d} skipped optimizer steps", True,
                                     f"consistent if {d} optimizer steps were skipped (fp16 loss-scale overflow), "
                                     f"which a log every {sched.log_interval} steps cannot show"))
        base = [(f"{w}", float(w))]
    else:
        assert cfg.warmup_ratio is not None
        r = cfg.warmup_ratio.value
        total, _ = _ratio_total(cfg, sched)
        x = r * total
        if cfg.onecycle and float(x).is_integer():
            out.append(Candidate(int(x) - 1, f"pct_start x total - 1 = {_num(r)} x {total} - 1 (OneCycleLR)", True))
        for rule, value in rounded(x):
            consistent = cfg.framework != "hf" or rule == "ceil"
            out.append(Candidate(value, f"{rule}({_num(r)} x {total})", consistent))
            if cfg.framework not in ("hf",):
                out.append(Candidate(value - 1, f"{rule}({_num(r)} x {total}) - 1", True, _W_MINUS_1))
                out.append(Candidate(value + 1, f"{rule}({_num(r)} x {total}) + 1", True, _W_PLUS_1))
            if skips:
                out.append(Candidate(value + skips, f"{rule}({_num(r)} x {total}) + {skips} skipped steps", True))
        base = [(f"{rule}({_num(r)} x {total})", float(v)) for rule, v in rounded(x)[:2]]
        if g > 1:
            for rule, value in rounded(r * total * g):
                out.append(Candidate(value, f"{rule}({_num(r)} x {total * g}): the ratio applied to micro-batches "
                                     f"(total x grad_accum {g})", False))
        for rule, value in rounded(r * sched.total_steps):
            if sched.total_steps != total:
                out.append(Candidate(value, f"{rule}({_num(r)} x {sched.total_steps}): the ratio of the logged "
                                     "length", False))
    for label, base_w in base:
        if g > 1:
            out.append(Candidate(int(round(base_w * g)), f"{label} x grad_accum {g}: warmup counted in micro-batches",
                                 False))
            out.append(Candidate(int(base_w // g), f"{label} / grad_accum {g}: scheduler stepped per micro-batch",
                                 False))
        for n in (2, 4, 8):
            out.append(Candidate(int(base_w // n), f"{label} / {n}: scheduler stepped {n} times per update "
                                 f"(accelerate with {n} processes?)", False))
    for ratio in _COMMON_RATIOS:
        for rule, value in rounded(ratio * sched.total_steps)[:2]:
            out.append(Candidate(value, f"{rule}({_num(ratio)} x {sched.total_steps})", False))
    return out


def _describe_config(cfg: Configured, sched: Schedule) -> str:
    if cfg.warmup_steps is not None:
        return f"warmup_steps={int(cfg.warmup_steps.value)} ({cfg.warmup_steps.source})"
    assert cfg.warmup_ratio is not None
    _, total_text = _ratio_total(cfg, sched)
    return f"warmup_ratio={_num(cfg.warmup_ratio.value)} ({cfg.warmup_ratio.source}) of {total_text}"


def _warmup(run: Run, sched: Schedule | None, cfg: Configured) -> Iterator[Finding]:
    common = {"run": run.name, "tag": sched.tag if sched else None}
    cfg_text = "" if sched is None else _describe_config(cfg, sched)
    if sched is None:
        yield make("WC206", "a warmup is configured but no learning-rate series was found to check it against",
                   **common)
        return
    if sched.warmup_steps is None:
        yield make("WC206", f"configured {cfg_text} cannot be checked: the LR never reaches its peak (still rising "
                   f"at step {sched.last_step})", step=sched.last_step, **common)
        return
    k, delta = sched.warmup_steps, sched.convention.delta
    cands = candidates(cfg, sched)
    details: dict[str, object] = {
        "observed_end_step": sched.warmup_end_step, "observed_warmup_steps": k, "estimated": sched.warmup_end_estimated,
        "convention": sched.convention.reason, "configured": cfg_text,
        "expected": sorted({c.value for c in cands if c.expected}),
    }
    if sched.no_warmup and sched.warmup_end_bracket is not None:
        hi = sched.warmup_end_bracket[1]  # without a visible ramp the logging offset is unknown: allow delta 0
        ok = [c for c in cands if c.expected and 0 <= c.value <= hi]
        if ok:
            yield make("WC206", f"configured {cfg_text} cannot be checked exactly: the LR is already at its peak at "
                       f"the first logged step {sched.first_step}, so warmup ended at or before it",
                       step=sched.first_step, details=details, **common)
            return
    lo_k, hi_k = k, k
    if sched.warmup_end_estimated and sched.warmup_end_bracket is not None:
        lo_k, hi_k = max(k - 1, sched.warmup_end_bracket[0] + delta), min(k + 1, sched.warmup_end_bracket[1] + delta)
    where = (f"~step {sched.warmup_end_step} (estimated: between steps {sched.warmup_end_bracket[0]} and "
             f"{sched.warmup_end_bracket[1]})" if sched.warmup_end_estimated and sched.warmup_end_bracket
             else f"step {sched.warmup_end_step}")
    match = next((c for c in cands if c.expected and lo_k <= c.value <= hi_k), None)
    if match is not None:
        note = f"; {match.note}" if match.note else ""
        yield make("WC202", f"warmup ends at {where} ({k} updates below peak = {match.formula}), as configured: "
                   f"{cfg_text}{note}", step=sched.warmup_end_step, details={**details, "matched": match.formula},
                   **common)
        return
    explain = next((c for c in cands if not c.expected and lo_k <= c.value <= hi_k), None)
    expected = sorted({c.value for c in cands if c.expected and not c.note})
    if explain is not None:
        msg = f"warmup ends at {where} ({k} updates below peak = {explain.formula}); configured {cfg_text} disagrees"
    else:
        msg = (f"warmup ends at {where} ({k} updates below peak); configured {cfg_text} disagrees (expected "
               f"{' or '.join(map(str, expected))}); no known convention explains the difference")
    yield make("WC201", msg, step=sched.warmup_end_step,
               details={**details, "explanation": explain.formula if explain else None}, **common)
