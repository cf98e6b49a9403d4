"""The reader contract: one function per format, ``read(path) -> SourceRead``, never raising.

A reader turns one file into :class:`~warmcheck.model.Fragment` objects (points of one tag in
write order) plus WC0xx diagnostics. Damage is data: every problem becomes a finding naming the
file and where (byte offset or line) and what was skipped; a reader never raises on bad input and
never drops a point silently. Merging fragments into series, step checks and roles happen later,
in :mod:`warmcheck.readers.assemble`, the same way for every format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..findings import Finding, make
from ..model import SourceRead


class ReadFunction(Protocol):
    """Signature every format reader implements."""

    def __call__(self, path: str) -> SourceRead: ...


def diag(code: str, message: str, source: str, *, line: int | None = None,
         tag: str | None = None, step: int | None = None, step_end: int | None = None,
         details: Mapping[str, object] | None = None, **more: object) -> Finding:
    """A reader diagnostic for ``source`` (run left empty; the run assembly fills it in).

    Measured values go in ``details`` or as extra keyword arguments.
    """
    return make(code, message, source=source, line=line, tag=tag, step=step, step_end=step_end,
                details={**(details or {}), **more})


def not_installed(source: str, package: str, extra: str, what: str) -> Finding:
    """WC027: ``what`` at ``source`` needs the optional ``package``, installed by ``warmcheck[extra]``."""
    return diag("WC027", f"{what} needs the {package!r} package, which is not installed: "
                f"pip install \"warmcheck[{extra}]\"", source, package=package, extra=extra)
