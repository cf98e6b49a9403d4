"""What the three MLflow backends share: points to fragments, params and run info to metadata.

Every backend yields, per metric key, the points in the order the store gives them (the file store
and SQLite in write order, the server by step), each a (step, value, timestamp in ms) triple. The SQL
store cannot hold infinities and writes +/-``DBL_MAX`` instead (``SqlAlchemyStore.
sanitize_metric_value``); the server passes those on. A value of exactly +/-``DBL_MAX`` is therefore
read as +/-inf, on every backend alike, so that a loss that overflowed is a non-finite value (WC401)
whichever store it went through.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..findings import Finding
from ..model import Format, Fragment, SourceInfo, SourceRead

DBL_MAX = sys.float_info.max
MAX_TAGS_KEPT = 200  # tags go to metadata (JSON); a run with thousands of tags should not bloat it


@dataclass
class MlflowRun:
    """One MLflow run as read from a backend, before it becomes a :class:`SourceRead`."""

    run_id: str
    experiment: str = ""
    run_name: str = ""
    status: str = ""
    start_time: int | None = None
    end_time: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # key -> (steps, values, timestamps in ms), in the order the backend gave them
    metrics: dict[str, tuple[Any, Any, Any]] = field(default_factory=dict)
    records: int = 0
    skipped: int = 0


def fragment(key: str, steps: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray,
             timestamps_ms: Sequence[int] | np.ndarray) -> Fragment:
    """A fragment from one metric's points: steps exact, +/-DBL_MAX read as +/-inf, ms to seconds."""
    v = np.asarray(values, dtype=np.float64)
    if v.size:
        v = np.where(v == DBL_MAX, np.inf, np.where(v == -DBL_MAX, -np.inf, v))
    return Fragment(key, np.asarray(steps, dtype=np.int64), v,
                    np.asarray(timestamps_ms, dtype=np.float64) / 1000.0)


def source_read(path: str, run: MlflowRun, findings: list[Finding]) -> SourceRead:
    """The :class:`SourceRead` of one MLflow run: fragments sorted by key, params for the warmup audit."""
    fragments = [fragment(k, *run.metrics[k]) for k in sorted(run.metrics)]
    tags = dict(sorted(run.tags.items())[:MAX_TAGS_KEPT])
    info: dict[str, object] = {"run_id": run.run_id, "experiment": run.experiment, "run_name": run.run_name,
                               "status": run.status, "start_time": run.start_time, "end_time": run.end_time,
                               "tags": tags}
    if len(run.tags) > MAX_TAGS_KEPT:
        info["tags_not_kept"] = len(run.tags) - MAX_TAGS_KEPT
    meta: Mapping[str, object] = {"mlflow": info,
                                  "tracker_params": {"MLflow params": dict(sorted(run.params.items()))}}
    return SourceRead(SourceInfo(path, Format.MLFLOW, run.records, run.skipped), fragments=fragments,
                      metadata=meta, findings=findings)


def run_label(experiment: str, run_name: str, run_id: str) -> str:
    """``<experiment>/<run name>``, the run id when the run has no name (names are not unique in MLflow)."""
    return f"{experiment or '?'}/{run_name or run_id}"
