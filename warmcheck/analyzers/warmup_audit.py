"""WC2xx: the observed warmup, run length and peak against the configuration.

Every reading of the configuration is computed (:mod:`.warmup_readings`). The verdict must hold under
every reading the log allows: the step conventions the schedule could not rule out
(``Convention.alternatives``) and, when the warmup end lies between two sparse logs, every position
inside ``warmup_end_bracket``. Consistent under all of them: WC202. Consistent under none, W-1/W+1
and both logging offsets included: WC201. In between: WC206, the log cannot decide, with the readings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from ..config import Settings
from ..findings import Finding, make
from ..model import Role, Run, Schedule
from ..runconfig import Configured, configured
from .schedule import PEAK_TOL, fmt_lr, pick_group
from .warmup_readings import Candidate, candidates, ramp_zero, rounded

__all__ = ["Candidate", "WarmupAudit", "candidates", "rounded"]


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
    gaps = steps[1:] - steps[:-1]  # the smallest gap, from numpy (not a Python int per point)
    interval = int(max(1, int(gaps.min()) if gaps.shape[0] else 1))
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


def _describe_config(cfg: Configured, sched: Schedule) -> str:
    if cfg.warmup_steps is not None:
        return f"warmup_steps={int(cfg.warmup_steps.value)} ({cfg.warmup_steps.source})"
    assert cfg.warmup_ratio is not None
    head = f"warmup_ratio={_num(cfg.warmup_ratio.value)} ({cfg.warmup_ratio.source}) of "
    if cfg.total_steps is not None:
        return head + f"{int(cfg.total_steps.value)} ({cfg.total_steps.source})"
    if cfg.epochs is not None and cfg.steps_per_epoch is not None:
        return head + f"{int(cfg.epochs.value * cfg.steps_per_epoch.value)} (epochs x steps per epoch)"
    if sched.log_interval > 1:
        return head + (f"{sched.total_steps}..{sched.total_steps + sched.log_interval - 1} updates (the log ends at "
                       f"step {sched.last_step}, every {sched.log_interval})")
    return head + f"{sched.total_steps} logged steps"


def _deltas(sched: Schedule) -> list[int]:
    """The label -> update offsets the log allows, the assumed one first."""
    out = [sched.convention.delta]
    out += [d for d in sched.convention.alternatives if d not in out]
    return out


def _update_of(d: int) -> str:
    return "update s" if d == 0 else f"update s{d:+d}"


def _warmup(run: Run, sched: Schedule | None, cfg: Configured) -> Iterator[Finding]:
    common = {"run": run.name, "tag": sched.tag if sched else None}
    if sched is None:
        yield make("WC206", "a warmup is configured but no learning-rate series was found to check it against",
                   **common)
        return
    cfg_text = _describe_config(cfg, sched)
    if sched.warmup_steps is None:
        yield _unfinished(sched, cfg, cfg_text, common)
        return
    k, delta = sched.warmup_steps, sched.convention.delta
    zero = ramp_zero(run, sched)
    deltas = _deltas(sched)
    by_delta = {d: candidates(cfg, sched, None if zero is None else zero + d - delta) for d in deltas}
    cands = by_delta[delta]
    details: dict[str, object] = {
        "observed_end_step": sched.warmup_end_step, "observed_warmup_steps": k, "estimated": sched.warmup_end_estimated,
        "convention": sched.convention.reason, "configured": cfg_text,
        "expected": sorted({c.value for c in cands if c.expected and c.confirmed}),
    }
    if sched.no_warmup and sched.warmup_end_bracket is not None:
        # The peak is at or before the first logged step; without a visible ramp the logging offset is unknown.
        hi = min(sched.warmup_end_bracket[1], sched.first_step) + max(_deltas(sched) + [0])
        if [c for c in cands if c.expected and 0 <= c.value <= hi]:
            yield make("WC206", f"configured {cfg_text} cannot be checked exactly: the LR is already at its peak at "
                       f"the first logged step {sched.first_step}, so warmup ended at or before it",
                       step=sched.first_step, details=details, **common)
            return
    bracket = sched.warmup_end_bracket if sched.warmup_end_estimated else None
    if bracket is not None:
        details["bracket"] = list(bracket)

    def window(d: int) -> tuple[int, int]:
        kd = k + d - delta
        return (kd, kd) if bracket is None else (max(kd - 1, bracket[0] + d), min(kd + 1, bracket[1] + d))

    def match(d: int, *, confirmed: bool) -> Candidate | None:
        lo, hi = window(d)
        return next((c for c in by_delta[d] if c.expected and (c.confirmed or not confirmed)
                     and lo <= c.value <= hi), None)

    where = (f"~step {sched.warmup_end_step} (estimated: between steps {bracket[0]} and {bracket[1]})"
             if bracket else f"step {sched.warmup_end_step}")
    found = match(delta, confirmed=True)
    lo_k, hi_k = window(delta)
    rivals = [c for c in cands if not c.expected and c.rival and lo_k <= c.value <= hi_k and bracket is not None
              and found is not None and c.value != found.value]
    if found is not None and all(match(d, confirmed=True) for d in deltas) and not rivals:
        note = f"; {found.note}: {found.inputs.split('; ', 1)[-1]}" if found.note else ""
        if len(deltas) > 1:
            note += f" (under every reading of the steps the log allows: {', '.join(map(_update_of, deltas))})"
        yield make("WC202", f"warmup ends at {where} ({k} updates below peak = {found.formula}), as configured: "
                   f"{cfg_text}{note}", step=sched.warmup_end_step,
                   details={**details, "matched": found.formula, "inputs": found.inputs}, **common)
        return
    readings = _readings(k, delta, deltas, match)
    inside = _inside_bracket(cands, bracket, deltas)
    if any(r["matched"] for r in readings) or inside:
        yield _undecided(sched, cfg_text, where, k, readings, inside, rivals, details, common)
        return
    explain = next((c for c in cands if not c.expected and lo_k <= c.value <= hi_k), None)
    if explain is not None:
        msg = (f"warmup ends at {where} ({k} updates below peak = {explain.formula}: {explain.inputs}); configured "
               f"{cfg_text} disagrees")
    else:
        msg = (f"warmup ends at {where} ({k} updates below peak); configured {cfg_text} disagrees{_gives(cfg, cands)}"
               + _rising_at(run, sched, cands))
    yield make("WC201", msg, step=sched.warmup_end_step,
               details={**details, "explanation": explain.formula if explain else None,
                        "explanation_inputs": explain.inputs if explain else None}, **common)


def _readings(k: int, delta: int, deltas: list[int],
              match: Callable[..., Candidate | None]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for d in deltas:
        c = match(d, confirmed=False)
        out.append({"delta": d, "warmup_steps": k + d - delta, "matched": c.formula if c else None,
                    "confirmed": bool(c and c.confirmed), "note": c.note if c else ""})
    return out


def _inside_bracket(cands: list[Candidate], bracket: tuple[int, int] | None, deltas: list[int]) -> list[int]:
    """Logged steps inside the bracket at which a reading of the configuration puts the peak, any convention."""
    if bracket is None:
        return []
    lo, hi = bracket
    offsets = set(deltas) | {0, -1}
    return sorted({c.value - d for c in cands if c.expected for d in offsets if lo <= c.value - d <= hi})


def _undecided(sched: Schedule, cfg_text: str, where: str, k: int, readings: list[dict[str, object]],
               inside: list[int], rivals: list[Candidate], details: dict[str, object],
               common: dict[str, str | None]) -> Finding:
    """WC206: the configuration fits some reading the log allows and not others."""
    fits, misses, notes = [], [], []
    for r in readings:
        d, how = int(str(r["delta"])), f"{r['warmup_steps']} updates below peak"
        if not r["matched"]:
            misses.append(f"the reading where step s logs the LR {_update_of(d)} used ({how})")
            continue
        if not r["confirmed"] and r["note"] not in notes:
            notes.append(str(r["note"]))  # a condition shared by several readings is said once
        if d != sched.convention.delta:
            fits.append(f"the reading where step s logs the LR {_update_of(d)} used ({how} = {r['matched']}), "
                        "which the values cannot rule out")
        elif r["confirmed"]:
            fits.append(f"the assumed reading ({how} = {r['matched']})")
        else:
            fits.append(f"{how} = {r['matched']}")
    head = f"warmup ends at {where} ({k} updates below peak); configured {cfg_text}"
    if rivals:
        msg = (f"{head} fits the estimate, but so does " + " and ".join(
            f"{c.value} = {c.formula} ({c.inputs})" for c in rivals[:2]) + ": the log cannot decide")
    elif fits:
        msg = (f"{head} fits " + " and ".join(fits)
               + ("" if not notes else "; only if " + " and ".join(notes) + ", which nothing configured or logged "
                  "confirms") + ("" if not misses else "; not " + " or ".join(misses)) + ": the log cannot decide")
    else:
        steps = ", ".join(map(str, inside[:6])) + (", ..." if len(inside) > 6 else "")
        msg = (f"{head} puts the peak at step {steps} (under the step conventions that apply), inside the bracket: "
               "the log cannot decide")
    extra = {"readings": readings, "candidates_in_bracket": inside,
             "rivals": [{"value": c.value, "formula": c.formula, "inputs": c.inputs} for c in rivals]}
    return make("WC206", msg, step=sched.warmup_end_step, details={**details, **extra}, **common)


def _rising_at(run: Run, sched: Schedule, cands: list[Candidate]) -> str:
    """Where the configuration says warmup ended before the observed end: the LR logged there, still rising."""
    plain = [c.value for c in cands if c.expected and c.confirmed and not c.note]
    series = run.get(sched.tag)
    if not plain or series is None or sched.warmup_end_step is None:
        return ""
    label = plain[0] - sched.convention.delta
    hit = (series.steps == label).nonzero()[0]
    if label >= sched.warmup_end_step or not hit.size:
        return ""
    lr = float(series.values[hit[0]])
    return f": at step {label} the LR was {fmt_lr(lr)}, still rising ({lr / sched.peak_lr:.2g} x its peak)"


def _gives(cfg: Configured, cands: list[Candidate]) -> str:
    """What the configuration gives, unless that only repeats the configured number."""
    if cfg.warmup_steps is not None:
        return ""
    plain: dict[int, str] = {}
    for c in cands:
        if c.expected and c.confirmed and not c.note:
            plain.setdefault(c.value, c.formula)
    return ": it gives " + " or ".join(f"{v} = {f}" for v, f in sorted(plain.items())[:4]) if plain else ""


def _unfinished(sched: Schedule, cfg: Configured, cfg_text: str, common: dict[str, str | None]) -> Finding:
    """The LR never reached its peak: a mismatch when every reading of the configuration ends before the log."""
    base = {"last_step": sched.last_step, "last_lr": sched.final_lr, "configured": cfg_text}
    if sched.never_ends and (cfg.warmup_steps is not None or cfg.total_steps is not None
                             or cfg.epochs is not None and cfg.steps_per_epoch is not None):
        cands = candidates(cfg, sched)
        latest = max(c.value for c in cands if c.expected)
        earliest = sched.last_step + min(_deltas(sched) + [0, -1]) + 1  # the peak comes after the last log
        if earliest > latest:
            st = sched.staircase
            if st is not None:
                first = cands[0]
                why = (f"the LR rose in {st.length}-step plateaus and had not reached its peak at step "
                       f"{sched.last_step}: the scheduler was stepped per epoch (a {first.value}-update warmup "
                       f"stepped once per {st.length}-update epoch lasts {first.value} x {st.length} = "
                       f"{first.value * st.length} updates)")
                explanation = f"{first.value} x {st.length}: the scheduler stepped once per {st.length}-update epoch"
            else:
                why = (f"the LR was still rising at step {sched.last_step} ({fmt_lr(sched.final_lr)}), "
                       f"{earliest - latest} or more updates after the configured warmup should have ended")
                explanation = None
            return make("WC201", f"configured {cfg_text}, but {why}", step=sched.last_step,
                        details={**base, "expected": sorted({c.value for c in cands if c.expected}),
                                 "earliest_possible_warmup_steps": earliest, "explanation": explanation,
                                 "plateau_steps": st.length if st else None}, **common)
    return make("WC206", f"configured {cfg_text} cannot be checked: the LR never reaches its peak (still rising "
                f"at step {sched.last_step})", step=sched.last_step, details=base, **common)
