"""WC1xx: the learning-rate schedule as observed, and its anomalies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from ..config import Settings
from ..excursions import FACTOR as EXCURSION_FACTOR
from ..excursions import ZERO as EXCURSION_ZERO
from ..findings import Finding, Severity, make
from ..model import Excursion, Role, Run, Schedule


def fmt_lr(x: float) -> str:
    """An LR for messages: three significant digits."""
    return f"{x:.3g}"


def describe(s: Schedule) -> str:
    """One line: the shape, where warmup ended, the peak and the final LR."""
    if s.never_ends:
        return (f"{s.tag}: {s.warmup_shape} rise from {fmt_lr(s.initial_lr)} to {fmt_lr(s.peak_lr)}, still rising at "
                f"step {s.last_step} (warmup never ends)")
    if s.no_warmup and s.warmup_end_bracket is not None:
        hi = s.warmup_end_bracket[1]
        when = "before it" if hi == s.first_step else f"by step {hi}, the next log"
        head = (f"{s.tag}: already at its highest logged LR {fmt_lr(s.peak_lr)} at the first logged step "
                f"{s.first_step} (any warmup ended {when})")
    elif s.no_warmup:
        head = f"{s.tag}: no warmup, starts at its peak {fmt_lr(s.peak_lr)} at step {s.first_step}"
    else:
        where = f"step {s.warmup_end_step}"
        if s.warmup_end_estimated and s.warmup_end_bracket:
            where = f"~step {s.warmup_end_step} (estimated: between steps {s.warmup_end_bracket[0]} and " \
                    f"{s.warmup_end_bracket[1]})"
        head = (f"{s.tag}: {s.warmup_shape} warmup {fmt_lr(s.initial_lr)} -> {fmt_lr(s.peak_lr)}, peak first at "
                f"{where}: {s.warmup_steps} updates below peak")
    tail = "" if s.decay_shape == "none" else f"; then {s.decay_shape} to {fmt_lr(s.final_lr)} at step {s.last_step}"
    return head + tail


class ScheduleAnalyzer:
    """WC101-WC110 from the inferred schedule of the run's learning rate."""

    codes = frozenset({"WC101", "WC102", "WC103", "WC104", "WC105", "WC106", "WC107", "WC108", "WC109",
                       "WC110", "WC111"})

    def check(self, run: Run, settings: Settings) -> Iterator[Finding]:
        """See :class:`~warmcheck.analyzers.interface.Analyzer`."""
        if not run.schedules:
            return
        s = run.schedules[0]
        if settings.peak_lr is not None:  # audit the group that carries the configured peak
            s = pick_group(run, settings.peak_lr)
        common = {"run": run.name, "tag": s.tag}
        if s.no_warmup and s.warmup_end_bracket is None:
            yield make("WC101", f"no warmup: the LR is already at its peak {fmt_lr(s.peak_lr)} at the first step "
                       f"{s.first_step}", step=s.first_step, details={"peak_lr": s.peak_lr}, **common)
        if s.never_ends:
            yield make("WC102", f"warmup never ends: the LR is still rising at the last step {s.last_step} "
                       f"({fmt_lr(s.final_lr)}, started at {fmt_lr(s.initial_lr)})", step=s.last_step,
                       details={"last_lr": s.final_lr, "initial_lr": s.initial_lr, "last_step": s.last_step}, **common)
        if s.staircase is not None:
            st = s.staircase
            yield make("WC105", f"LR staircase: held for {st.length} steps at a time during warmup ({st.plateaus} "
                       "plateaus): scheduler stepped per epoch instead of per step?", step=st.first_step,
                       details={"plateau_steps": st.length, "plateaus": st.plateaus}, **common)
        yield from self._peak(run, s, settings, common)
        if s.rise_after_peak is not None and s.cycles is not None:
            yield _scheduled_restart(s, common)
        elif s.rise_after_peak is not None:
            step, before, after = s.rise_after_peak
            yield make("WC104", f"LR rises again after the peak: {fmt_lr(before)} -> {fmt_lr(after)} at step {step} "
                       f"(restart, second warmup or a schedule run past its end)", step=step,
                       details={"before": before, "after": after, "peak_lr": s.peak_lr, "threshold": 0.01}, **common)
        if s.collapse_step is not None:
            left = s.last_step - s.collapse_step
            yield make("WC106", f"LR falls to ~0 at step {s.collapse_step}, {left} steps before the end "
                       f"(step {s.last_step}): schedule sized for fewer steps than the run made?",
                       step=s.collapse_step, details={"steps_left": left, "last_step": s.last_step,
                                                      "threshold_fraction_of_peak": 1e-4}, **common)
        for step, before, after in s.discontinuities:
            yield make("WC107", f"LR jumps from {fmt_lr(before)} to {fmt_lr(after)} at step {step}, where a resumed "
                       "log begins: scheduler state not restored?", step=step,
                       details={"before": before, "after": after}, **common)
        if s.decay_shape == "unknown":
            yield make("WC108", f"decay after the peak matches no known shape (best fit residual "
                       f"{s.decay_residual:.3g})", step=s.peak_step,
                       details={"residual": s.decay_residual, "threshold": 0.02}, **common)
        if s.leading_hold >= 2 and not s.no_warmup:
            at = "0" if s.initial_lr == 0 else f"its starting value {fmt_lr(s.initial_lr)}"
            yield make("WC109", f"the first {s.leading_hold} updates ran at LR {at} (steps {s.first_step}.."
                       f"{s.first_step + s.leading_hold - 1}): one more than HF/torch schedules, as DeepSpeed's "
                       "WarmupLR does", step=s.first_step,
                       details={"updates": s.leading_hold, "lr": s.initial_lr, "threshold": 2}, **common)
        for e in s.excursions:
            yield _excursion(e, common)
        if s.ramp_repeats:
            n = len(s.ramp_repeats)
            yield make("WC110", f"LR repeated at {n} step{'s' if n > 1 else ''} during warmup "
                       f"({', '.join(map(str, s.ramp_repeats[:5]))}): skipped optimizer steps (fp16 overflow?); "
                       f"warmup ends {n} step{'s' if n > 1 else ''} late", step=s.ramp_repeats[0],
                       details={"steps": list(s.ramp_repeats), "count": n}, **common)

    def _peak(self, run: Run, s: Schedule, settings: Settings, common: dict[str, str]) -> Iterator[Finding]:
        del run
        # Only a peak the user states (flag or config file) is checked: metadata LRs are base LRs that
        # param-group scales and schedulers legitimately multiply.
        peak = settings.peak_lr
        if peak is not None and s.peak_lr < peak * (1 - PEAK_TOL):
            where = settings.sources.get("peak_lr", "--peak-lr")
            yield make("WC103", f"peak never reached: the highest LR {fmt_lr(s.peak_lr)} (step {s.peak_step}) is "
                       f"{s.peak_lr / peak:.3g} x the configured peak {fmt_lr(peak)} ({where})",
                       step=s.peak_step, details={"observed_peak": s.peak_lr, "configured_peak": peak,
                                                  "ratio": s.peak_lr / peak, "tolerance": PEAK_TOL}, **common)
        elif s.shortfall is not None:
            heading, got = s.shortfall
            yield make("WC103", f"peak never reached: the warmup ramp heads for {fmt_lr(heading)} but turns into the "
                       f"decay at {fmt_lr(got)} (step {s.peak_step}, {got / heading:.3g} x): timm "
                       "warmup_prefix=False or a decay that starts where the ramp ends?", step=s.peak_step,
                       details={"ramp_target": heading, "observed_peak": got, "ratio": got / heading,
                                "threshold": 0.01}, **common)

_CYCLE_NAMES = {"cosine-restarts": "cosine with restarts", "cyclic": "cyclic (triangle wave)"}


def _scheduled_restart(s: Schedule, common: dict[str, str]) -> Finding:
    """WC104 at info: the LR rises again because the recognised schedule restarts by design.

    The code stays WC104 (the same observation, so filters on it keep working); the severity drops
    to info because a standard schedule doing what it was configured to do is not a warning.
    """
    c = s.cycles
    assert c is not None and s.rise_after_peak is not None
    step, before, after = s.rise_after_peak
    shown = ", ".join(map(str, c.restarts[:6])) + (", ..." if len(c.restarts) > 6 else "")
    scale = "" if abs(c.amplitude_ratio - 1) < 0.01 else f", each cycle {c.amplitude_ratio:.3g}x as high as the last"
    plural = "s" if len(c.restarts) != 1 else ""
    message = (f"LR restarts as scheduled: {_CYCLE_NAMES.get(c.kind, c.kind)}, cycles of {c.length} steps{scale}; "
               f"{len(c.restarts)} restart{plural} (steps {shown}); first rise {fmt_lr(before)} -> {fmt_lr(after)}")
    details = {"before": before, "after": after, "peak_lr": s.peak_lr, "threshold": 0.01, "scheduled": True,
               **c.as_dict()}
    finding = make("WC104", message, step=c.restarts[0] if c.restarts else step, details=details, **common)
    return replace(finding, severity=Severity.INFO)


def _excursion(e: Excursion, common: dict[str, str]) -> Finding:
    where = f"step {e.start}" if e.start == e.end else f"steps {e.start}..{e.end}"
    if e.factor >= 1:
        what = f"jumped x{e.factor:.3g}"
    elif e.factor <= EXCURSION_ZERO:
        what = "dropped to ~0"
    else:
        what = f"dropped x{e.factor:.3g}"
    return make("WC111", f"LR {what} at {where} and came back: {fmt_lr(e.before)} -> {fmt_lr(e.extreme)} -> "
                f"{fmt_lr(e.after)} (left out of the schedule's inference)", step=e.start, step_end=e.end,
                details={**e.as_dict(), "threshold_factor": EXCURSION_FACTOR}, **common)


PEAK_TOL = 1e-4  # relative: float32 storage and printing round LRs by far less


def pick_group(run: Run, peak: float) -> Schedule:
    """The schedule of the parameter group whose peak equals ``peak`` (else the primary)."""
    for s in run.schedules:
        if abs(s.peak_lr - peak) <= PEAK_TOL * peak:
            return s
    return run.schedules[0]


def has_lr(run: Run) -> bool:
    """Whether the run has a learning-rate series with data."""
    return any(s.points for s in run.with_role(Role.LR))
