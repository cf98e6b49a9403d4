"""Markdown report: a summary table, then a table of findings per run (``$GITHUB_STEP_SUMMARY``, PR comments).

Names and messages are data: run names and files as code spans, everything else as escaped text
(no HTML, link, image, emphasis or cell break can come from a log; see ``escape.md_text``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..findings import Finding, Severity
from ..model import Run
from ..pipeline import Outcome
from .common import steps_of, summarize
from .escape import ci_line, md_code, md_text
from .sections import extra_lines


class MarkdownReporter:
    """``--format markdown``."""

    def render(self, outcome: Outcome) -> str:
        """See :class:`~warmcheck.reporters.interface.Reporter`."""
        text = assemble(len(outcome.runs), outcome.counts(), outcome.findings, [run_text(r) for r in outcome.runs])
        return text + extra_lines(outcome.comparison, outcome.sweep, markdown=True)


def run_text(run: Run) -> tuple[str, str]:
    """One run's row in the summary table and its section, each as its lines joined."""
    s = summarize(run)
    row = (f"| {md_code(s.run)} | {md_text(s.warmup_end)} | {s.audit} | {md_text(s.spikes)} | "
           f"{md_text(s.divergence)} | {s.worst} |")
    schedule = f" Schedule {md_text(s.schedule)}." if s.schedule else ""
    lines = ["", f"## {md_code(run.name, table=False)}", "", f"{s.points} points, steps {s.steps}.{schedule}"]
    if not run.findings:
        lines += ["", "No findings."]
    else:
        lines += ["", "| code | severity | tag | steps | message |", "|---|---|---|---|---|"]
        lines += [f"| {f.code} | {f.severity.value} | {md_text(f.tag or '')} | {steps_of(f)} | "
                  f"{md_text(f.message)} |" for f in run.findings]
    return ci_line(row), "\n".join(ci_line(line) for line in lines)  # ##[ in a code span, printed in a CI log


def assemble(n_runs: int, counts: Mapping[Severity, int], tree: Sequence[Finding],
             runs: Sequence[tuple[str, str]]) -> str:
    """The report around each run's row and section (:func:`run_text`)."""
    lines = ["# warmcheck", "",
             f"{n_runs} run{'s' if n_runs != 1 else ''}: "
             + ", ".join(f"{counts[s]} {s.value}" for s in sorted(counts, key=lambda s: -s.rank)), "",
             "| run | warmup end | audit | spikes | divergence | worst |", "|---|---|---|---|---|---|"]
    lines += [row for row, _ in runs]
    if tree:
        lines += ["", "## Not tied to a run", "", "| code | severity | source | message |", "|---|---|---|---|"]
        lines += [f"| {f.code} | {f.severity.value} | {md_code(f.source or '')} | {md_text(f.message)} |"
                  for f in tree]
    return "\n".join([ci_line(line) for line in lines] + [section for _, section in runs]) + "\n"
