"""JSON report, schema version 1 (a contract: fields are added, never renamed or removed)."""

from __future__ import annotations

import json
import math
from typing import Any

from .. import __version__
from ..analyzers.spikes import spikes_summary
from ..findings import RULES, Finding
from ..model import Run, Series
from ..pipeline import Outcome
from ..schedule import schedule_summary
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


def run_dict(run: Run) -> dict[str, Any]:
    """One run as a JSON object."""
    return {
        "run": run.name,
        "sources": [{"path": src.path, "format": src.format.value, "records": src.records,
                     "skipped": src.skipped} for src in run.sources],
        "series": [series_dict(s) for s in run.series],
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
    """``--format json``: the whole outcome, ``indent=2``, keys in a fixed order."""

    def render(self, outcome: Outcome) -> str:
        """See :class:`~warmcheck.reporters.interface.Reporter`."""
        counts = outcome.counts()
        doc = {
            "schema_version": SCHEMA_VERSION,
            "warmcheck_version": __version__,
            "runs": [run_dict(r) for r in outcome.runs],
            "findings": [finding_dict(f) for f in outcome.findings],
            "summary": {"runs": len(outcome.runs), "error": counts[_sev("error")],
                        "warning": counts[_sev("warning")], "info": counts[_sev("info")]},
            "config": outcome.settings.config.as_dict(),  # which configuration file was used (issue 10)
        }
        return ci_json(json.dumps(doc, indent=2, allow_nan=False)) + "\n"  # exact once parsed


def _sev(name: str) -> Any:
    from ..findings import Severity
    return Severity(name)
