"""JSON report, schema version 1 (a contract: fields are added, never renamed or removed)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .. import __version__
from ..config import Settings
from ..findings import RULES, Finding, Severity
from ..model import Run, Series
from ..pipeline import Outcome
from .escape import ci_json

SCHEMA_VERSION = 1


def finding_dict(f: Finding) -> dict[str, Any]:
    """One finding as a JSON object (stable key order)."""
    return {
        "code": f.code,
        "severity": f.severity.value,
        "step": f.step,
        "message": f.message,
        "rule": RULES[f.code].slug if f.code in RULES else None,
        "tag": f.tag,
        "step_end": f.step_end,
        "source": f.source,
        "line": f.line,
        "details": {k: _jsonable(v) for k, v in f.details.items() if k != "traceback"},
    }


def series_dict(s: Series) -> dict[str, Any]:
    """One series summary (points are distinct steps after merging)."""
    return {
        "tag": s.tag,
        "role": s.role.value if s.role else None,
        "points": s.points,
        "first_step": int(s.steps[0]) if s.points else None,
        "last_step": int(s.steps[-1]) if s.points else None,
        "nonfinite": s.nonfinite,
        "superseded": s.superseded,
    }


def run_dict(run: Run, series: bool = True) -> dict[str, Any]:
    """One run as a JSON object (``series=False``: its series list left empty)."""
    from ..analyzers.spikes import spikes_summary  # not imported by a warm run that joins stored pieces
    from ..schedule import schedule_summary

    return {
        "run": run.name,
        "sources": [{"path": src.path, "format": src.format.value, "records": src.records,
                     "skipped": src.skipped} for src in run.sources],
        "series": [series_dict(s) for s in run.series] if series else [],
        "schedule": schedule_summary(run.schedules),
        "findings": [finding_dict(f) for f in run.findings],
        "spikes": spikes_summary(run),
    }


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # NaN/Infinity are not JSON; keep them readable
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item"):  # numpy scalars
        return _jsonable(v.item())
    return v


class JsonReporter:
    """``--format json``: the whole outcome, ``indent=2``, keys in a fixed order.

    :meth:`chunks` yields the same text piece by piece (a run's series one at a time), so a report of a
    million series is written without holding it, or a million dicts, in memory.
    """

    def render(self, outcome: Outcome) -> str:
        """See :class:`~warmcheck.reporters.interface.Reporter`."""
        return "".join(self.chunks(outcome))

    def chunks(self, outcome: Outcome) -> Iterator[str]:
        """The text of :meth:`render`, in pieces."""
        return document(outcome.findings, len(outcome.runs), outcome.counts(), outcome.settings,
                        (_run_chunks(r) for r in outcome.runs), sections(outcome.sweep, outcome.comparison))


def sections(sweep: Mapping[str, Any] | None, comparison: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The optional top-level objects: ``sweep`` (several runs), ``comparison`` (``warmcheck compare``)."""
    out: dict[str, Any] = {}
    if sweep is not None:
        out["sweep"] = _jsonable(sweep)
    if comparison is not None:
        out["comparison"] = _jsonable(comparison)
    return out


def document(findings: Sequence[Finding], n_runs: int, counts: Mapping[Severity, int], settings: Settings,
             runs: Iterable[Iterable[str]], extra: Mapping[str, Any] | None = None) -> Iterator[str]:
    """The report, in pieces, around ``runs``: each run's text at nesting 2 (see :func:`run_text`);
    ``extra``: top-level objects after ``config`` (:func:`sections`)."""
    doc = {
        "schema_version": SCHEMA_VERSION,
        "warmcheck_version": __version__,
        "runs": _HOLE,
        "findings": [finding_dict(f) for f in findings],
        "summary": {"runs": n_runs, "error": counts[Severity.ERROR],
                    "warning": counts[Severity.WARNING], "info": counts[Severity.INFO]},
        "config": settings.config.as_dict(),  # which configuration file was used (issue 10)
        **(extra or {}),
    }
    head, tail = _split(_dumps(doc, 0))
    yield head
    yield from _list(runs, 1)
    yield tail + "\n"


def run_text(run: Run) -> str:
    """One run's object in the report's ``runs`` list, as :meth:`JsonReporter.chunks` writes it."""
    return "".join(_run_chunks(run))


_HOLE = "\0hole\0"  # stands for a list streamed in its place
_HOLE_JSON = json.dumps(_HOLE)


def _dumps(value: Any, depth: int) -> str:
    """``value`` as ``json.dumps(..., indent=2)`` writes it at nesting ``depth`` (``##[`` escaped)."""
    return ci_json(indented(value, "\n" + "  " * depth))


_string = json.encoder.encode_basestring_ascii  # json.dumps's own (ensure_ascii), in C


def _float(value: float) -> str:
    if value - value == 0.0:  # finite (inf - inf and NaN are NaN)
        return float.__repr__(value)
    return json.dumps(value, indent=2, allow_nan=False)  # raises json.dumps's own ValueError


# The text of a scalar, by its exact type (not a subclass: those go to json.dumps).
_SCALAR: dict[type, Callable[[Any], str]] = {
    str: _string, int: int.__repr__, float: _float, bool: {True: "true", False: "false"}.__getitem__,
    type(None): lambda _: "null",
}


def indented(value: Any, newline: str = "\n") -> str:
    """``json.dumps(value, indent=2, allow_nan=False)``, character for character, at the nesting whose
    line breaks are ``newline`` (a line break and that nesting's indentation).

    The standard library encodes with its pure-Python encoder whenever ``indent`` is set (a generator
    per container, several per value); this builds the same text with one call per container and
    ``join``. Plain ``dict``/``list``/``tuple``/``str``/``int``/``float``/``bool``/``None`` only: any
    other value (a subclass, a non-string key) is handed to ``json.dumps`` itself, indented to its
    nesting, so that it reads, or fails, exactly as it did there.
    """
    scalar = _SCALAR.get(type(value))
    if scalar is not None:
        return scalar(value)
    kind = type(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = newline + "  "
        parts = []
        for k, v in value.items():
            if type(k) is not str:
                break
            scalar = _SCALAR.get(type(v))
            parts.append(_string(k) + ": " + (scalar(v) if scalar is not None else indented(v, inner)))
        else:
            return "{" + inner + ("," + inner).join(parts) + newline + "}"
    elif kind is list or kind is tuple:
        if not value:
            return "[]"
        inner = newline + "  "
        get = _SCALAR.get
        return "[" + inner + ("," + inner).join([
            scalar(v) if (scalar := get(type(v))) is not None else indented(v, inner) for v in value
        ]) + newline + "]"
    return json.dumps(value, indent=2, allow_nan=False).replace("\n", newline)


def _split(text: str) -> tuple[str, str]:
    head, tail = text.split(_HOLE_JSON, 1)
    return head, tail


def _run_chunks(run: Run) -> Iterator[str]:
    doc = run_dict(run, series=False)
    doc["series"] = _HOLE
    head, tail = _split(_dumps(doc, 2))
    yield head
    yield from _list(([_dumps(series_dict(s), 4)] for s in run.series), 3)
    yield tail


def _list(items: Iterable[Iterable[str]], depth: int) -> Iterator[str]:
    """A JSON list at nesting ``depth`` whose items are given as pieces of text, as ``indent=2`` lays it out."""
    first = True
    for item in items:
        yield ("[\n" if first else ",\n") + "  " * (depth + 1)
        yield from item
        first = False
    yield "[]" if first else "\n" + "  " * depth + "]"
