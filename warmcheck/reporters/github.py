"""GitHub Actions workflow commands: one ``::error``/``::warning``/``::notice`` line per finding.

Every line is one of warmcheck's commands: data (file names, run names, messages quoting tags) is
escaped as the runner unescapes it, after its controls are shown as escapes, so none of it can end
the line or start one of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..findings import RULES, Finding, Severity
from ..model import Run
from ..pipeline import Outcome
from .escape import gh_data, gh_property

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def command(f: Finding) -> str:
    """The workflow command for one finding."""
    props = []
    if f.source:
        props.append(f"file={gh_property(f.source)}")
        if f.line is not None:
            props.append(f"line={f.line}")
    slug = RULES[f.code].slug if f.code in RULES else ""
    props.append(f"title={gh_property(f'{f.code} {slug}'.strip())}")
    where = ", ".join(([f"run {f.run}"] if f.run else []) + ([f"step {f.step}"] if f.step is not None else []))
    return f"::{_LEVEL[f.severity]} {','.join(props)}::{gh_data(f.message + (f' ({where})' if where else ''))}"


class GithubReporter:
    """``--format github``: annotations on the workflow run (files point at the log file)."""

    def render(self, outcome: Outcome) -> str:
        """See :class:`~warmcheck.reporters.interface.Reporter`."""
        return assemble(outcome.findings, [run_text(r) for r in outcome.runs])


def run_text(run: Run) -> str:
    """One run's commands."""
    return "".join(command(f) + "\n" for f in run.findings)


def assemble(tree: Sequence[Finding], runs: Sequence[str]) -> str:
    """The report: the commands of the findings not tied to a run, then each run's (:func:`run_text`)."""
    return "".join(command(f) + "\n" for f in tree) + "".join(runs)
