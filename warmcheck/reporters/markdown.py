"""Markdown report: a summary table, then a table of findings per run (``$GITHUB_STEP_SUMMARY``, PR comments).

Names and messages are data: run names and files as code spans, everything else as escaped text
(no HTML, link, image, emphasis or cell break can come from a log; see ``escape.md_text``).
"""

from __future__ import annotations

from ..pipeline import Outcome
from .common import steps_of, summarize
from .escape import ci_line, md_code, md_text


class MarkdownReporter:
    """``--format markdown``."""

    def render(self, outcome: Outcome) -> str:
        """See :class:`~warmcheck.reporters.interface.Reporter`."""
        counts = outcome.counts()
        lines = ["# warmcheck", "",
                 f"{len(outcome.runs)} run{'s' if len(outcome.runs) != 1 else ''}: "
                 + ", ".join(f"{counts[s]} {s.value}" for s in sorted(counts, key=lambda s: -s.rank)), "",
                 "| run | warmup end | audit | spikes | divergence | worst |", "|---|---|---|---|---|---|"]
        summaries = [summarize(r) for r in outcome.runs]
        for s in summaries:
            lines.append(f"| {md_code(s.run)} | {md_text(s.warmup_end)} | {s.audit} | {md_text(s.spikes)} | "
                         f"{md_text(s.divergence)} | {s.worst} |")
        if outcome.findings:
            lines += ["", "## Not tied to a run", "", "| code | severity | source | message |", "|---|---|---|---|"]
            lines += [f"| {f.code} | {f.severity.value} | {md_code(f.source or '')} | {md_text(f.message)} |"
                      for f in outcome.findings]
        for run, s in zip(outcome.runs, summaries, strict=True):
            schedule = f" Schedule {md_text(s.schedule)}." if s.schedule else ""
            lines += ["", f"## {md_code(run.name, table=False)}", "", f"{s.points} points, steps {s.steps}.{schedule}"]
            if not run.findings:
                lines += ["", "No findings."]
                continue
            lines += ["", "| code | severity | tag | steps | message |", "|---|---|---|---|---|"]
            lines += [f"| {f.code} | {f.severity.value} | {md_text(f.tag or '')} | {steps_of(f)} | "
                      f"{md_text(f.message)} |" for f in run.findings]
        return "\n".join(ci_line(line) for line in lines) + "\n"  # ##[ in a code span, printed in a CI log
