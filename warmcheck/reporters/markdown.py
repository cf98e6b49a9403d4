"""Markdown report: a summary table, then a table of findings per run (``$GITHUB_STEP_SUMMARY``, PR comments)."""

from __future__ import annotations

from ..pipeline import Outcome
from .common import steps_of, summarize


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


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
            lines.append(f"| `{_cell(s.run)}` | {_cell(s.warmup_end)} | {s.audit} | {_cell(s.spikes)} | "
                         f"{_cell(s.divergence)} | {s.worst} |")
        if outcome.findings:
            lines += ["", "## Not tied to a run", "", "| code | severity | source | message |", "|---|---|---|---|"]
            lines += [f"| {f.code} | {f.severity.value} | `{_cell(f.source or '')}` | {_cell(f.message)} |"
                      for f in outcome.findings]
        for run, s in zip(outcome.runs, summaries, strict=True):
            schedule = f" Schedule {_cell(s.schedule)}." if s.schedule else ""
            lines += ["", f"## `{_cell(run.name)}`", "", f"{s.points} points, steps {s.steps}.{schedule}"]
            if not run.findings:
                lines += ["", "No findings."]
                continue
            lines += ["", "| code | severity | tag | steps | message |", "|---|---|---|---|---|"]
            lines += [f"| {f.code} | {f.severity.value} | {_cell(f.tag or '')} | {steps_of(f)} | "
                      f"{_cell(f.message)} |" for f in run.findings]
        return "\n".join(lines) + "\n"
