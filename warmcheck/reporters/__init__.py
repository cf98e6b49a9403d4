"""Output formats: each maps the whole outcome to one string."""

from __future__ import annotations

import enum

from .interface import Reporter
from .json import JsonReporter
from .text import TextReporter


class OutputFormat(str, enum.Enum):
    """Values of ``--format``."""

    TEXT = "text"
    JSON = "json"


def make_reporter(fmt: OutputFormat, colour: bool = False) -> Reporter:
    """The reporter for ``fmt`` (exhaustive: a test iterates the enum)."""
    if fmt is OutputFormat.TEXT:
        return TextReporter(colour=colour)
    if fmt is OutputFormat.JSON:
        return JsonReporter()
    raise AssertionError(f"unhandled format {fmt!r}")  # pragma: no cover


__all__ = ["OutputFormat", "Reporter", "make_reporter", "JsonReporter", "TextReporter"]
