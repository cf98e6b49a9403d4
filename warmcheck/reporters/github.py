"""GitHub Actions workflow commands: one ``::error``/``::warning``/``::notice`` line per finding."""

from __future__ import annotations

from ..findings import RULES, Finding, Severity
from ..pipeline import Outcome

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _data(text: str) -> str:
    """Escape a command's message as the runner expects (``%``, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    """Escape a property value (also ``:`` and ``,``)."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def command(f: Finding) -> str:
    """The workflow command for one finding."""
    props = []
    if f.source:
        props.append(f"file={_prop(f.source)}")
        if f.line is not None:
            props.append(f"line={f.line}")
    slug = RULES[f.code].slug if f.code in RULES else ""
    props.append(f"title={_prop(f'{f.code} {slug}'.strip())}")
    where = ", ".join(([f"run {f.run}"] if f.run else []) + ([f"step {f.step}"] if f.step is not None else []))
    return f"::{_LEVEL[f.severity]} {','.join(props)}::{_data(f.message + (f' ({where})' if where else ''))}"


class GithubReporter:
    """``--format github``: annotations on the workflow run (files point at the log file)."""

    def render(self, outcome: Outcome) -> str:
        """See :class:`~warmcheck.reporters.interface.Reporter`."""
        return "".join(command(f) + "\n" for f in outcome.all_findings())
