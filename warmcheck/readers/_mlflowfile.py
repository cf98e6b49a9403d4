"""MLflow's file store: ``mlruns/<experiment id>/<run id>/`` read without the mlflow package.

A run directory holds ``meta.yaml`` (run id, run name, status, lifecycle stage), ``metrics/<key>``
(one line per point: ``timestamp value step``, or the older ``timestamp value`` at step 0, or
``timestamp value step dataset_name dataset_digest``), ``params/<key>`` and ``tags/<key>`` (the file
holds the value). Keys with '/' are nested directories (``metrics/train/loss``). The experiment's
name is in ``<experiment id>/meta.yaml``. This is the layout ``mlflow.store.tracking.file_store``
writes; its ``_get_metric_from_line`` is the parser this one follows.

A line that does not parse is skipped and counted with its line number (WC014); a last line
without its newline is a write in progress (``FileStore`` appends whole lines), dropped and reported
(WC003), as the CSV and JSONL readers do.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import yaml

from ..findings import Finding
from ..model import Format, SourceInfo, SourceRead
from ._mlflowcommon import MlflowRun, source_read
from ._textstream import current_limits, format_size
from .interface import diag

_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}  # mlflow RunStatus
_MAX_META = 1 << 20
_LINES_NAMED = 10
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def looks_like_run_dir(files: set[str], dirs: set[str]) -> bool:
    """Whether a directory with these entries has a file-store run's shape (cheap: no file is read)."""
    return "meta.yaml" in files and "metrics" in dirs


def load_meta(path: str) -> dict[str, Any] | None:
    """A ``meta.yaml`` as a mapping, or ``None`` if it is missing, too large or not a YAML mapping."""
    try:
        if os.path.getsize(path) > _MAX_META:
            return None
        with open(path, encoding="utf-8", errors="replace") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def run_identity(run_dir: str) -> tuple[str, str, str] | str | None:
    """(experiment name, run name, run id) of a file-store run directory; ``None`` if it is not a run to
    read (a logged model's directory, a deleted run); a reason (str) if its ``meta.yaml`` is damaged."""
    meta = load_meta(os.path.join(run_dir, "meta.yaml"))
    if meta is None:
        return "meta.yaml is not a readable YAML mapping"
    if not (meta.get("run_id") or meta.get("run_uuid")):
        return None if meta.get("model_id") else "meta.yaml has no run_id"
    if str(meta.get("lifecycle_stage", "active")) != "active":
        return None  # deleted runs stay in place until `mlflow gc`; MLflow itself no longer lists them
    run_id = str(meta.get("run_id") or meta.get("run_uuid"))
    parent = os.path.dirname(os.path.abspath(run_dir))  # abspath: the run directory may be given as "."
    exp = load_meta(os.path.join(parent, "meta.yaml")) or {}
    experiment = str(exp.get("name") or meta.get("experiment_id") or os.path.basename(parent))
    name = str(meta.get("run_name") or "") or _read_value(os.path.join(run_dir, "tags", "mlflow.runName"))
    return experiment, name, run_id


def read_run_dir(path: str) -> SourceRead:
    """Read one file-store run directory (the reader contract: damage is data)."""
    meta = load_meta(os.path.join(path, "meta.yaml"))
    if meta is None:
        return SourceRead(SourceInfo(path, Format.MLFLOW), findings=[diag(
            "WC002", "not an MLflow run directory: meta.yaml is missing or is not a YAML mapping", path)])
    run_id = str(meta.get("run_id") or meta.get("run_uuid") or os.path.basename(path))
    exp = load_meta(os.path.join(os.path.dirname(os.path.abspath(path)), "meta.yaml")) or {}
    status = meta.get("status")
    run = MlflowRun(run_id, experiment=str(exp.get("name") or meta.get("experiment_id") or ""),
                    run_name=str(meta.get("run_name") or ""),
                    status=_STATUS.get(status, str(status or "")) if isinstance(status, int) else str(status or ""),
                    start_time=_int(meta.get("start_time")), end_time=_int(meta.get("end_time")))
    findings: list[Finding] = []
    run.params = _values(os.path.join(path, "params"), findings)
    run.tags = _values(os.path.join(path, "tags"), findings)
    run.run_name = run.run_name or run.tags.get("mlflow.runName", "")
    for key, file in _files(os.path.join(path, "metrics")):
        _read_metric(file, key, run, findings)
    if not run.metrics:
        findings.append(diag("WC002", "no data: the MLflow run has no metric points", path, run_id=run_id))
    return source_read(path, run, findings)


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _files(root: str) -> list[tuple[str, str]]:
    """(key, path) of every file under ``root``; keys join nested directories with '/'."""
    out = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(directory, root)
        for name in sorted(files):
            key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
            out.append((key, os.path.join(directory, name)))
    return out


def _read_value(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(1 << 16)
    except OSError:
        return ""


def _values(root: str, findings: list[Finding]) -> dict[str, str]:
    out = {}
    for key, file in _files(root):
        try:
            with open(file, encoding="utf-8", errors="replace") as f:
                out[key] = f.read(1 << 16)  # MLflow caps a param value at 6000 characters
        except OSError as exc:
            findings.append(diag("WC001", f"cannot read {key}: {exc.strerror or exc}", file))
    return out


def _read_metric(file: str, key: str, run: MlflowRun, findings: list[Finding]) -> None:
    limit = current_limits().max_file_size
    try:
        size = os.path.getsize(file)
        if size > limit:
            findings.append(diag("WC025", f"metric {key} is larger than the {format_size(limit)} limit on text "
                                 "logs; not read (raise it with --max-file-size or max-file-size in "
                                 "[tool.warmcheck])", file, tag=key, limit="max-file-size", limit_bytes=limit,
                                 bytes=size))
            return
        with open(file, "rb") as f:
            data = f.read()
    except OSError as exc:
        findings.append(diag("WC001", f"cannot read metric {key}: {exc.strerror or exc}", file, tag=key))
        return
    tail = b""
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        data, tail = data[:cut], data[cut:]
    parsed = _fast(data)
    if parsed is None:
        parsed = _slow(data, file, key, findings)
    steps, values, stamps, lines = parsed
    run.records += lines
    run.skipped += lines - len(steps)
    if tail.strip():
        line = data.count(b"\n") + 1
        findings.append(diag("WC003", f"incomplete last line (no newline) at line {line} of metric {key}: the "
                             f"run may still be being written; {len(steps)} complete lines kept", file, tag=key,
                             line=line, bytes=len(tail), rows_kept=len(steps)))
        run.records += 1
        run.skipped += 1
    if len(steps):
        run.metrics[key] = (steps, values, stamps)


def _fast(data: bytes) -> tuple[Any, Any, Any, int] | None:
    """Every line ``timestamp value step``: three columns converted by numpy; ``None`` otherwise."""
    lines = data.count(b"\n")
    tokens = data.split()
    if len(tokens) != 3 * lines or data.count(b" ") != 2 * lines:
        return None
    try:
        table = np.array(tokens, dtype=np.bytes_).reshape(lines, 3)
        stamps = table[:, 0].astype(np.int64)
        values = table[:, 1].astype(np.float64)
        steps = table[:, 2].astype(np.int64)
    except (ValueError, OverflowError):
        return None
    return steps, values, stamps, lines


def _slow(data: bytes, file: str, key: str, findings: list[Finding]) -> tuple[Any, Any, Any, int]:
    """Line by line, as ``FileStore._get_metric_from_line`` reads them; bad lines counted and named."""
    steps: list[int] = []
    values: list[float] = []
    stamps: list[int] = []
    bad: list[int] = []
    n_bad = 0
    lines = 0
    for number, raw in enumerate(data.split(b"\n")[:-1] if data else [], start=1):
        lines += 1
        parts = raw.strip().split(b" ")
        try:
            if len(parts) not in (2, 3, 5):
                raise ValueError(f"{len(parts)} fields")
            ts, value = int(parts[0]), float(parts[1])
            step = int(parts[2]) if len(parts) >= 3 else 0
            if not (_I64_MIN <= step <= _I64_MAX and _I64_MIN <= ts <= _I64_MAX):
                raise ValueError("out of int64 range")
        except ValueError:
            n_bad += 1
            if len(bad) < _LINES_NAMED:
                bad.append(number)
            continue
        stamps.append(ts)
        values.append(value)
        steps.append(step)
    if n_bad:
        where = ", ".join(map(str, bad)) + (", ..." if n_bad > len(bad) else "")
        findings.append(diag("WC014", f"{n_bad} line(s) of metric {key} are not 'timestamp value step' and were "
                             f"skipped (line {where}); {len(steps)} points kept", file, tag=key, line=bad[0],
                             lines=bad, skipped=n_bad, kept=len(steps)))
    return steps, values, stamps, lines
