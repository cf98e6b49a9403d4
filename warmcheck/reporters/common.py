"""What several formats say about a run in one line: the pieces of the summary table."""

from __future__ import annotations

from dataclasses import dataclass

from ..findings import Finding, Severity
from ..model import Run, Schedule


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One row of the many-runs summary (text table, markdown, JUnit properties)."""

    run: str
    points: int
    steps: str  # "0..134" or "no data"
    warmup_end: str  # "27", "~51 (50..60)", "never", "none", "before first log", "-"
    audit: str  # "ok", "MISMATCH", "unverifiable", "not configured", "no LR"
    spikes: str  # "2 (+1 minor)" or "-"
    divergence: str  # "from 49, NaN at 61" or "-"
    worst: str  # "error", "warning", "info", "clean"
    schedule: str  # the one-line schedule description, or ""


def step_range(run: Run) -> str:
    """``first..last`` over all series, or ``no data``."""
    steps = [int(s.steps[i]) for s in run.series if s.points for i in (0, -1)]
    return f"{min(steps)}..{max(steps)}" if steps else "no data"


def steps_of(f: Finding) -> str:
    """A finding's step or step range, or ``-``."""
    if f.step is None:
        return "-"
    return f"{f.step}..{f.step_end}" if f.step_end is not None and f.step_end != f.step else str(f.step)


def summarize(run: Run) -> RunSummary:
    """The summary row of ``run``."""
    from ..analyzers.schedule import describe  # not imported by a warm run that joins stored pieces

    codes = {f.code: f for f in run.findings}
    sched = run.schedules[0] if run.schedules else None
    end = warmup_end_cell(sched)
    if "WC201" in codes:
        audit = "MISMATCH"
    elif "WC202" in codes:
        audit = "ok"
    elif "WC206" in codes:
        audit = "unverifiable"
    else:
        audit = "not configured" if sched is not None else "no LR"
    major = sum(f.code == "WC301" for f in run.findings)
    minor = sum(f.code == "WC304" for f in run.findings)
    spikes = "-" if not (major or minor) else f"{major}" + (f" (+{minor} minor)" if minor else "")
    parts = []
    if "WC403" in codes:
        parts.append(f"from {codes['WC403'].step}")
    nan = [f.step for f in run.findings if f.code in ("WC401", "WC402") and f.step is not None]
    if nan:
        parts.append(f"NaN at {min(nan)}")
    worst = max((f.severity for f in run.findings), key=lambda s: s.rank, default=None)
    return RunSummary(run.name, sum(s.points for s in run.series), step_range(run), end, audit, spikes,
                      ", ".join(parts) or "-", worst.value if worst is not None else "clean",
                      describe(sched) if sched is not None else "")


def warmup_end_cell(sched: Schedule | None) -> str:
    """Where warmup ended, as the schedule line and WC101/WC206 say it.

    ``none``: the LR is at its peak from the first step the logger can write (WC101, no warmup);
    ``before first log``: already at its peak at the first logged step, which comes later than that,
    so a warmup may have ended unseen (the first logged step is not the warmup's end).
    """
    if sched is None:
        return "-"
    if sched.never_ends or sched.warmup_end_step is None:
        return "never"
    if sched.no_warmup:
        bracket = sched.warmup_end_bracket
        if bracket is None:
            return "none"
        return "before first log" if bracket[1] <= sched.first_step else f"by {bracket[1]}"
    if sched.warmup_end_estimated and sched.warmup_end_bracket:
        return f"~{sched.warmup_end_step} ({sched.warmup_end_bracket[0]}..{sched.warmup_end_bracket[1]})"
    return str(sched.warmup_end_step)


def worst_severity(findings: list[Finding]) -> Severity | None:
    """The highest severity among ``findings``."""
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)
