"""Text report: per run a header, then one finding per line, code in a fixed column."""

from __future__ import annotations

from ..analyzers.schedule import describe
from ..findings import Finding, Severity
from ..model import Run
from ..pipeline import Outcome

_COLOURS = {Severity.ERROR: "\x1b[31m", Severity.WARNING: "\x1b[33m", Severity.INFO: "\x1b[36m"}
_RESET = "\x1b[0m"


class TextReporter:
    """The default, human-readable format. ``colour`` only when writing to a terminal."""

    def __init__(self, colour: bool = False) -> None:
        self.colour = colour

    def render(self, outcome: Outcome) -> str:
        """See :class:`~warmcheck.reporters.interface.Reporter`."""
        lines: list[str] = []
        for f in outcome.findings:
            lines.append(self._finding(f))
        for run in outcome.runs:
            lines.extend(self._run(run))
        return "\n".join(lines) + ("\n" if lines else "")

    def _run(self, run: Run) -> list[str]:
        points = sum(s.points for s in run.series)
        steps = [int(s.steps[i]) for s in run.series if s.points for i in (0, -1)]
        span = f"steps {min(steps)}..{max(steps)}" if steps else "no data"
        formats = sorted({src.format.value for src in run.sources})
        head = (f"{run.name}: {len(run.sources)} source{'s' if len(run.sources) != 1 else ''} "
                f"({', '.join(formats) or '-'}), {len(run.series)} series, {points} points, {span}")
        out = [head]
        roles = ", ".join(f"{s.role.value}={s.tag}" for s in run.series if s.role and run.primary(s.role) is s)
        if roles:
            out.append(f"  roles: {roles}")
        for sched in run.schedules[:1]:
            out.append(f"  schedule {describe(sched)}")
            out.append(f"    convention: {sched.convention.reason}")
        audit = [f for f in run.findings if f.code in ("WC201", "WC202", "WC206")]
        if run.schedules and not audit:
            out.append("  warmup audit: no warmup configured (pass --warmup-steps or --warmup-ratio to check it)")
        out.extend("  " + self._finding(f) for f in run.findings)
        return out

    def _finding(self, f: Finding) -> str:
        where = f.tag or ""
        if f.step is not None:
            where += f"@{f.step}" + (f"..{f.step_end}" if f.step_end is not None else "")
        sev = f.severity.value
        if self.colour:
            sev = f"{_COLOURS[f.severity]}{sev}{_RESET}"
        src = f" [{f.source}]" if f.source and f.source != f.run else ""
        return f"{f.code} {sev:<7} {where + ' ' if where else ''}{f.message}{src}"
