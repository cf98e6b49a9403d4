"""Output formats: each maps the whole outcome to one string (a pure function; no IO)."""

from __future__ import annotations

import enum

from ..config import FailOn
from .github import GithubReporter
from .interface import Reporter
from .json import JsonReporter
from .junit import JunitReporter
from .markdown import MarkdownReporter
from .text import TextReporter


class OutputFormat(str, enum.Enum):
    """Values of ``--format``."""

    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"
    GITHUB = "github"
    JUNIT = "junit"
    HTML = "html"  # one self-contained page with interactive plots (extra: warmcheck[html])


def make_reporter(fmt: OutputFormat, colour: bool = False, fail_on: FailOn = FailOn.ERROR) -> Reporter:
    """The reporter for ``fmt`` (exhaustive: a test iterates the enum)."""
    if fmt is OutputFormat.TEXT:
        return TextReporter(colour=colour)
    if fmt is OutputFormat.JSON:
        return JsonReporter()
    if fmt is OutputFormat.MARKDOWN:
        return MarkdownReporter()
    if fmt is OutputFormat.GITHUB:
        return GithubReporter()
    if fmt is OutputFormat.JUNIT:
        return JunitReporter(fail_on=fail_on)
    if fmt is OutputFormat.HTML:
        from .html import HtmlReporter  # imported only when asked for: it looks for plotly.js

        return HtmlReporter()
    raise AssertionError(f"unhandled format {fmt!r}")  # pragma: no cover


__all__ = ["OutputFormat", "Reporter", "make_reporter", "GithubReporter", "JsonReporter", "JunitReporter",
           "MarkdownReporter", "TextReporter"]
