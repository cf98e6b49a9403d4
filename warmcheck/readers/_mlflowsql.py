"""MLflow's SQLite backend (``mlflow.db``, MLflow 3's default store) read with SQL, read-only.

Why SQL and not ``MlflowClient("sqlite:///...")``: the client's store creates or migrates the schema
when it opens a database (it writes into the user's file, and refuses a database of an older schema
until ``mlflow db upgrade`` is run), importing mlflow takes seconds per process, and the standard
library's sqlite3 needs no extra. The tables read (``experiments``, ``runs``, ``metrics``, ``params``,
``tags``) are the ones ``mlflow.store.tracking.dbmodels.models`` defines; the database is opened with
``mode=ro`` so nothing is ever written. Points come in write order (``rowid``); a NaN is stored as
``value=0, is_nan=1`` and an infinity as +/-DBL_MAX (see :mod:`._mlflowcommon`).
"""

from __future__ import annotations

import os
import sqlite3
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager

from ..findings import Finding
from ..model import Format, SourceInfo, SourceRead
from ._mlflowcommon import MlflowRun, source_read
from .interface import diag

_MAGIC = b"SQLite format 3\x00"
_TABLES = {"experiments", "runs", "metrics", "params", "tags"}
_BAD_NAMED = 10


def is_sqlite(path: str) -> bool:
    """Whether ``path`` starts with the SQLite file header."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == _MAGIC
    except OSError:
        return False


@contextmanager
def _connect(path: str) -> Iterator[sqlite3.Connection]:
    uri = "file:" + urllib.request.pathname2url(os.path.abspath(path)) + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as con:
        yield con


def list_runs(path: str) -> tuple[list[tuple[str, str, str]], Finding | None]:
    """(run id, experiment name, run name) of every active run of active experiments, or a finding
    saying why none can be listed (WC001 unreadable, WC002 not an MLflow database)."""
    try:
        with _connect(path) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not _TABLES <= tables:
                return [], diag("WC002", "no data: an SQLite database without MLflow's tables (missing: "
                                f"{', '.join(sorted(_TABLES - tables))})", path)
            rows = con.execute(
                "SELECT r.run_uuid, e.name, r.name FROM runs r JOIN experiments e "
                "ON r.experiment_id = e.experiment_id WHERE COALESCE(r.lifecycle_stage, 'active') = 'active' "
                "AND COALESCE(e.lifecycle_stage, 'active') = 'active' ORDER BY e.name, r.name, r.run_uuid"
            ).fetchall()
    except sqlite3.Error as exc:
        return [], diag("WC001", f"cannot read the MLflow database: {exc}", path, error=type(exc).__name__)
    return [(str(r), str(e or ""), str(n or "")) for r, e, n in rows], None


def read_db_run(path: str, db: str, run_id: str) -> SourceRead:
    """Read one run of the database ``db``; ``path`` names the source in findings."""
    findings: list[Finding] = []
    try:
        with _connect(db) as con:
            head = con.execute(
                "SELECT r.name, r.status, r.start_time, r.end_time, e.name FROM runs r LEFT JOIN experiments e "
                "ON r.experiment_id = e.experiment_id WHERE r.run_uuid = ?", (run_id,)).fetchone()
            if head is None:
                return SourceRead(SourceInfo(path, Format.MLFLOW), findings=[diag(
                    "WC002", f"no run {run_id} in the MLflow database", path, run_id=run_id)])
            run = MlflowRun(run_id, experiment=str(head[4] or ""), run_name=str(head[0] or ""),
                            status=str(head[1] or ""), start_time=_int(head[2]), end_time=_int(head[3]))
            run.params = _pairs(con, "params", run_id)
            run.tags = _pairs(con, "tags", run_id)
            _metrics(con, run, path, findings)
    except sqlite3.Error as exc:
        return SourceRead(SourceInfo(path, Format.MLFLOW), findings=[diag(
            "WC001", f"cannot read run {run_id} from the MLflow database: {exc}", path, run_id=run_id,
            error=type(exc).__name__)])
    if not run.metrics:
        findings.append(diag("WC002", "no data: the MLflow run has no metric points", path, run_id=run_id))
    return source_read(path, run, findings)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _pairs(con: sqlite3.Connection, table: str, run_id: str) -> dict[str, str]:
    rows = con.execute(f'SELECT "key", value FROM {table} WHERE run_uuid = ?', (run_id,))  # noqa: S608 (fixed names)
    return {str(k): "" if v is None else str(v) for k, v in rows}


def _metrics(con: sqlite3.Connection, run: MlflowRun, path: str, findings: list[Finding]) -> None:
    cur = con.execute('SELECT "key", value, timestamp, step, is_nan, rowid FROM metrics WHERE run_uuid = ? '
                      'ORDER BY "key", rowid', (run.run_id,))
    points: dict[str, tuple[list[int], list[float], list[int]]] = {}
    bad: list[int] = []
    n_bad = 0
    for key, value, ts, step, is_nan, rowid in cur:
        run.records += 1
        if not (isinstance(step, int) and isinstance(value, (int, float)) and isinstance(ts, (int, type(None)))):
            n_bad += 1
            if len(bad) < _BAD_NAMED:
                bad.append(rowid)
            continue
        steps, values, stamps = points.setdefault(str(key), ([], [], []))
        steps.append(step)
        values.append(float("nan") if is_nan else float(value))
        stamps.append(ts if ts is not None else 0)
    run.skipped += n_bad
    run.metrics = {k: v for k, v in points.items()}
    if n_bad:
        findings.append(diag("WC014", f"{n_bad} metric row(s) of run {run.run_id} hold a step, value or timestamp "
                             f"that is not a number and were skipped (rowid {', '.join(map(str, bad))}"
                             f"{', ...' if n_bad > len(bad) else ''})", path, rowids=bad, skipped=n_bad,
                             run_id=run.run_id))
