"""What the HTML report's scripts draw: each run's series (downsampled), with where warmup ended and
the steps its findings name, as one JSON document (see :func:`plot_data`).

The page draws from this document only; tables are rendered on the Python side (``html.py``). Long
series are decimated by :func:`decimate` (the minimum and maximum of each bucket, every step a finding
names), values are written with 6 significant digits, NaN/Inf as ``null`` (a gap in the line).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..config import Settings
from ..findings import Finding
from ..model import Role, Run, Schedule, Series
from ..sweep import is_unstable
from .escape import visible

MAX_POINTS = 2000  # per series, at most
MIN_POINTS = 300  # per series, at least, however many runs share the budget
POINT_BUDGET = 1_500_000  # points over every series of the report (~15 MB of JSON)
MAX_MARKS = 200  # finding markers per plot (the findings table lists them all)
ROLES = (Role.LR, Role.LOSS, Role.GRAD_NORM)
# Findings drawn as a vertical line across the plot instead of a marker on the curve.
LINE_CODES = {"WC401": "nonfinite", "WC402": "nonfinite", "WC404": "nonfinite", "WC403": "divergence",
              "WC504": "nonfinite"}
GRAD_CODES = ("WC302", "WC303")  # WC3xx codes about the gradient norm (the others are about the loss)


class Raw(str):
    """JSON text written as it is (a number array made by :func:`numbers`)."""


def decimate(values: NDArray[np.float64], limit: int, keep: Iterable[int] = ()) -> NDArray[np.intp]:
    """Indices of at most ``limit`` points of ``values`` that draw the same picture: the first and last,
    per bucket of consecutive points the minimum and the maximum (a spike is one of the two) and the
    first NaN/Inf (a gap stays a gap), and every index in ``keep`` (at most ``limit // 4`` of them).
    All of them when there are at most ``limit`` points."""
    n = int(values.shape[0])
    if n <= limit:
        return np.arange(n)
    kept = np.unique(np.asarray([k for k in keep if 0 <= k < n], dtype=np.intp))[: max(limit // 4, 0)]
    buckets = max(1, (limit - 2 - int(kept.shape[0])) // 3)
    size = -(-n // buckets)
    pad = buckets * size - n
    finite = np.isfinite(values)
    low = np.concatenate([np.where(finite, values, np.inf), np.full(pad, np.inf)]).reshape(buckets, size)
    high = np.concatenate([np.where(finite, values, -np.inf), np.full(pad, -np.inf)]).reshape(buckets, size)
    bad = np.concatenate([~finite, np.zeros(pad, bool)]).reshape(buckets, size)
    start = np.arange(buckets, dtype=np.intp) * size
    has_bad = bad.any(axis=1)
    parts = [np.array([0, n - 1], dtype=np.intp), start + low.argmin(axis=1), start + high.argmax(axis=1),
             (start + bad.argmax(axis=1))[has_bad], kept]
    idx = np.unique(np.concatenate(parts))
    return idx[idx < n]


def numbers(values: NDArray[np.float64]) -> Raw:
    """A JSON array of ``values`` with 6 significant digits, NaN and +/-Inf as ``null``."""
    vals = values.tolist()
    if bool(np.isfinite(values).all()):
        return Raw("[" + ",".join([format(v, ".6g") for v in vals]) + "]")
    return Raw("[" + ",".join([format(v, ".6g") if math.isfinite(v) else "null" for v in vals]) + "]")


def integers(steps: NDArray[np.int64]) -> Raw:
    """A JSON array of integers."""
    return Raw("[" + ",".join(map(str, steps.tolist())) + "]")


def dumps(value: Any) -> str:
    """``value`` as JSON (ASCII, :class:`Raw` pieces written as they are), safe inside a ``<script>``
    element: ``<``, ``>`` and ``&`` only occur in strings, where they are written as ``\\u003c`` etc."""
    text = "".join(_dump(value))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _dump(value: Any) -> Iterable[str]:
    if isinstance(value, Raw):
        yield str(value)
    elif isinstance(value, Mapping):
        yield "{"
        for k, (key, item) in enumerate(value.items()):
            yield ("," if k else "") + json.dumps(str(key)) + ":"
            yield from _dump(item)
        yield "}"
    elif isinstance(value, (list, tuple)):
        yield "["
        for k, item in enumerate(value):
            if k:
                yield ","
            yield from _dump(item)
        yield "]"
    elif isinstance(value, float) and not math.isfinite(value):
        yield "null"
    elif isinstance(value, (str, int, float, bool)) or value is None:
        yield json.dumps(value)
    elif hasattr(value, "item"):  # numpy scalars
        yield from _dump(value.item())
    else:
        yield json.dumps(str(value))


def point_limit(n_series: int, max_points: int = MAX_POINTS, budget: int = POINT_BUDGET) -> int:
    """Points drawn per series when ``n_series`` share ``budget``: between :data:`MIN_POINTS` and ``max_points``."""
    return max(min(MIN_POINTS, max_points), min(max_points, budget // max(n_series, 1)))


@dataclass(frozen=True, slots=True)
class WarmupEnd:
    """A vertical line on the LR plot: where warmup ended, observed or as configured."""

    step: int
    kind: str  # "observed" | "configured" | "peak"
    label: str


def schedule_of(run: Run, series: Series) -> Schedule | None:
    """The schedule inferred from ``series`` (the run's first when none names it)."""
    return next((s for s in run.schedules if s.tag == series.tag), run.schedules[0] if run.schedules else None)


def warmup_ends(run: Run, sched: Schedule | None, settings: Settings) -> list[WarmupEnd]:
    """Where warmup ended as observed (and the peak, when later), and every consistent reading of the
    configured warmup (``warmcheck.runconfig.configured``) as the step it ends at in this log."""
    from ..analyzers.warmup_readings import configured_ends
    from ..runconfig import configured

    out: list[WarmupEnd] = []
    cfg = configured(run, settings)
    if sched is not None and sched.warmup_end_step is not None:
        end = sched.warmup_end_step
        if sched.warmup_end_estimated and sched.warmup_end_bracket:
            lo, hi = sched.warmup_end_bracket
            out.append(WarmupEnd(end, "observed", f"observed warmup end: ~step {end} (between {lo} and {hi})"))
        else:
            out.append(WarmupEnd(end, "observed", f"observed warmup end: step {end} "
                                                  f"({sched.warmup_steps} updates below peak)"))
        if sched.peak_step != end:
            out.append(WarmupEnd(sched.peak_step, "peak", f"peak LR first logged: step {sched.peak_step}"))
        if cfg.any_warmup:
            for step, formula in configured_ends(cfg, sched):
                out.append(WarmupEnd(step, "configured", f"configured: {formula} -> warmup ends at step {step}"))
    elif cfg.warmup_steps is not None:  # no schedule to read the log's step convention from
        w = int(cfg.warmup_steps.value)
        out.append(WarmupEnd(w, "configured", f"configured: warmup_steps={w} ({cfg.warmup_steps.source})"))
    return out


def _finding_text(f: Finding) -> str:
    return visible(f"{f.code} {f.severity.value}: {f.message}")


def _panel_of(f: Finding, tags: Mapping[Role, str]) -> Role | None:
    """The plot a finding is drawn on: the one of its series, else the loss (grad norm for WC302/303)
    for spike and divergence codes."""
    for role, tag in tags.items():
        if f.tag is not None and f.tag == tag:
            return role
    if f.code[:3] in ("WC3", "WC4", "WC5"):
        role = Role.GRAD_NORM if f.code in GRAD_CODES else Role.LOSS
        return role if role in tags else None
    return None


def run_data(run: Run, settings: Settings, limit: int) -> dict[str, Any]:
    """One run as the page draws it: per role (LR, loss, grad norm) its points, vertical lines
    (warmup ends, divergence onset, first NaN/Inf), shaded spans and finding markers."""
    series = {role: s for role in ROLES if (s := run.primary(role)) is not None and s.points}
    tags = {role: s.tag for role, s in series.items()}
    by_panel: dict[Role, list[Finding]] = {role: [] for role in series}
    for f in run.findings:
        role = _panel_of(f, tags)
        if role is not None and f.step is not None:
            by_panel[role].append(f)
    panels = []
    for role, s in series.items():
        lines: list[dict[str, Any]] = []
        spans: list[dict[str, Any]] = []
        marks: list[dict[str, Any]] = []
        keep_steps: list[int] = []
        if role is Role.LR:
            sched = schedule_of(run, s)
            for end in warmup_ends(run, sched, settings):
                lines.append({"x": end.step, "kind": end.kind, "label": end.label})
            if sched is not None and sched.warmup_end_estimated and sched.warmup_end_bracket:
                lo, hi = sched.warmup_end_bracket
                spans.append({"x0": lo, "x1": hi, "label": f"warmup ended between steps {lo} and {hi}"})
        for f in by_panel[role]:
            assert f.step is not None
            keep_steps += [f.step] + ([f.step_end] if f.step_end is not None else [])
            kind = LINE_CODES.get(f.code)
            if kind is not None:
                lines.append({"x": f.step, "kind": kind, "label": _finding_text(f)})
            elif len(marks) < MAX_MARKS:
                i = min(int(np.searchsorted(s.steps, f.step)), s.points - 1)
                marks.append({"x": f.step, "y": float(s.values[i]), "code": f.code, "label": _finding_text(f)})
        keep = np.searchsorted(s.steps, np.asarray(keep_steps, dtype=np.int64)) if keep_steps else ()
        idx = decimate(s.values, limit, [int(k) for k in keep])
        panels.append({"role": role.value, "tag": visible(s.tag), "n": s.points, "shown": int(idx.shape[0]),
                       "x": integers(s.steps[idx]), "y": numbers(s.values[idx]),
                       "lines": lines, "spans": spans, "marks": marks})
    return {"name": visible(run.name), "panels": panels}


def short_names(names: Sequence[str]) -> list[str]:
    """Names without the leading path components all of them share (a legend of 12 runs under
    ``/home/me/exp/`` shows ``a/...``, ``b/...``); each keeps at least its last component."""
    parts = [n.split("/") for n in names]
    if len(parts) < 2:
        return list(names)
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return ["/".join(p[common:]) for p in parts]


def plot_data(runs: Sequence[Run], baselines: Sequence[Run], settings: Settings,
              extra: Mapping[str, Any], max_points: int = MAX_POINTS, budget: int = POINT_BUDGET) -> str:
    """The JSON document the page's script reads: ``runs`` and ``baselines`` (see :func:`run_data`),
    ``limit`` (points per series) and ``extra`` (the sweep and comparison views)."""
    n_series = sum(1 for r in (*runs, *baselines) for role in ROLES if (s := r.primary(role)) and s.points)
    limit = point_limit(n_series, max_points, budget)
    short = short_names([r.name for r in (*runs, *baselines)])
    doc = {"limit": limit,
           "runs": [dict(run_data(r, settings, limit), unstable=is_unstable(r), short=visible(short[i]))
                    for i, r in enumerate(runs)],
           "baselines": [dict(run_data(r, settings, limit), unstable=is_unstable(r),
                              short=visible(short[len(runs) + i])) for i, r in enumerate(baselines)],
           **extra}
    return dumps(doc)
