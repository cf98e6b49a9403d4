"""Text report: per run a header and the schedule, then one finding per line, code first.

Finding lines read ``CODE severity step message``, the code and severity in fixed columns so that
``grep WC201`` and ``cut`` work. With more than one run a summary table follows. Colour only on a
terminal (the CLI decides).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..findings import Finding, Severity
from ..model import Run
from ..pipeline import Outcome
from .common import RunSummary, step_range, steps_of, summarize
from .escape import ci_line, visible
from .sections import extra_lines

_COLOURS = {Severity.ERROR: "\x1b[31m", Severity.WARNING: "\x1b[33m", Severity.INFO: "\x1b[36m"}
_RESET = "\x1b[0m"


class TextReporter:
    """The default, human-readable format. ``colour`` only when writing to a terminal."""

    def __init__(self, colour: bool = False) -> None:
        self.colour = colour

    def render(self, outcome: Outcome) -> str:
        """See :class:`~warmcheck.reporters.interface.Reporter`."""
        text = assemble([self._finding(f) for f in outcome.findings], [self.run_text(r) for r in outcome.runs],
                        [cells(summarize(r)) for r in outcome.runs])
        return text + extra_lines(outcome.comparison, outcome.sweep, markdown=False)

    def run_text(self, run: Run) -> str:
        """One run's lines in the report (without the summary table), joined."""
        return "\n".join(ci_line(line) for line in self._run(run))

    def _run(self, run: Run) -> list[str]:
        points = sum(s.points for s in run.series)
        formats = sorted({src.format.value for src in run.sources})
        head = (f"{run.name}: {len(run.sources)} source{'s' if len(run.sources) != 1 else ''} "
                f"({', '.join(formats) or '-'}), {len(run.series)} series, {points} points, "
                f"steps {step_range(run)}")
        out = [visible(head)]
        roles = ", ".join(f"{s.role.value}={s.tag}" for s in run.series if s.role and run.primary(s.role) is s)
        if roles:
            out.append(visible(f"  roles: {roles}"))
        summary = summarize(run)
        if summary.schedule:
            out.append(visible(f"  schedule {summary.schedule}"))
            out.append(visible(f"    convention: {run.schedules[0].convention.reason}"))
            if summary.audit == "not configured":
                out.append("  warmup audit: nothing configured (--warmup-steps, --warmup-ratio or [tool.warmcheck])")
        out.extend("  " + self._finding(f) for f in run.findings)
        return out

    def _finding(self, f: Finding) -> str:
        return finding_line(f, self.colour)


def finding_line(f: Finding, colour: bool = False) -> str:
    """``CODE severity step tag: message [file]``, code and severity in fixed columns; names and
    messages with their controls shown as escapes (:func:`~warmcheck.reporters.escape.visible`)."""
    sev = f.severity.value
    pad = " " * (7 - len(sev))
    if colour:
        sev = f"{_COLOURS[f.severity]}{sev}{_RESET}"
    tag = f"{f.tag}: " if f.tag else ""
    # Reader findings name the file (a run may have several); analyzer findings are about the run.
    src = f" [{f.source}]" if f.code.startswith("WC0") and f.source and f.source != f.run else ""
    return ci_line(f"{f.code} {sev}{pad} " + visible(f"{steps_of(f):>10}  {tag}{f.message}{src}"))


def cells(row: RunSummary) -> tuple[str, ...]:
    """A run's cells in the summary table (controls shown as escapes)."""
    return tuple(visible(v) for v in (row.run, row.warmup_end, row.audit, row.spikes, row.divergence, row.worst))


def assemble(tree: Sequence[str], runs: Sequence[str], rows: Sequence[tuple[str, ...]]) -> str:
    """The report: the lines of the findings not tied to a run, each run's text
    (:meth:`TextReporter.run_text`), then with more than one run the summary table of ``rows``."""
    lines = [ci_line(line) for line in tree] + list(runs)
    if len(runs) > 1:
        lines.append("")
        lines.extend(ci_line(line) for line in table(rows))
    return "\n".join(lines) + ("\n" if lines else "")


def summary_table(rows: list[RunSummary]) -> list[str]:
    """The many-runs summary: run, warmup end, audit, spikes, divergence, worst severity."""
    return table([cells(r) for r in rows])


def table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """The summary table of the runs' :func:`cells`."""
    head = ("run", "warmup end", "audit", "spikes", "divergence", "worst")
    grid = [head, *rows]
    widths = [max(len(c[i]) for c in grid) for i in range(len(head))]
    out = []
    for i, c in enumerate(grid):
        out.append(ci_line("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip()))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return out
