"""MLflow runs: the file store (``mlruns/``), the SQLite backend (``mlflow.db``) and a tracking server.

One warmcheck run per MLflow run, named ``<store>/<experiment name>/<run name>`` for a store found on
disk and ``<experiment name>/<run name>`` for a server (the run id when the run has no name); every
metric key is a series (``train/loss``, ``learning_rate``...; roles come from the names as for any
log), every point at its logged step, the timestamp as wall time; params go to
``metadata["tracker_params"]["MLflow params"]`` where the warmup audit reads ``warmup_steps``,
``max_steps``... Deleted runs and experiments are not read (MLflow no longer lists them either).

A run's location, the "file" of its :class:`~warmcheck.readers.discovery.RunSpec`, is:

* file store: the run directory (``mlruns/<experiment id>/<run id>``);
* SQLite: ``<database>/<run id>`` (the database file, then the run id, as if it were a directory);
* server: ``mlflow://HOST:PORT/<experiment name>/<run id>``.

None of the three needs the mlflow package: the file store is text and YAML, the database is read
with the standard library's sqlite3 (:mod:`._mlflowsql` says why not with the client), the server
through its REST API with urllib (:mod:`._mlflowrest` says why). The ``warmcheck[mlflow]`` extra
installs mlflow for the tests and the benchmark, which write and read runs with the real client.
"""

from __future__ import annotations

import os

from ..model import Format, SourceInfo, SourceRead
from ._mlflowcommon import run_label
from ._mlflowfile import looks_like_run_dir, read_run_dir, run_identity
from ._mlflowrest import MlflowServerError, is_server_url, list_runs, parse_url, read_server_run
from ._mlflowsql import is_sqlite, read_db_run
from ._mlflowsql import list_runs as list_db_runs
from .discovery import RunSpec
from .interface import diag

# Subdirectories of a file-store run that hold the run's own data, not logs to search.
RUN_DATA_DIRS = frozenset({"metrics", "params", "tags"})


def read_mlflow(path: str) -> SourceRead:
    """Read one MLflow run at a location made by discovery (see the module docstring)."""
    if is_server_url(path):
        return read_server_run(path)
    if os.path.isdir(path):
        return read_run_dir(path)
    db, run_id = os.path.split(path)
    if os.path.isfile(db):
        return read_db_run(path, db, run_id)
    return SourceRead(SourceInfo(path, Format.MLFLOW), findings=[diag(
        "WC001", "no MLflow run at this location (neither a run directory nor <database>/<run id>)", path)])


def _prefixed(prefix: str, label: str) -> str:
    return f"{prefix}/{label}" if prefix and prefix != "." else label


def file_run_spec(directory: str, shown: str, files: set[str], dirs: set[str]) -> RunSpec | None:
    """The run of a file-store run directory with entries ``files``/``dirs``; ``None`` if it is not one."""
    if not looks_like_run_dir(files, dirs):
        return None
    identity = run_identity(directory)
    if identity is None:
        return None
    if isinstance(identity, str):  # shaped like a run, but damaged: reported, not passed over
        return RunSpec(shown, shown, (), (diag("WC002", f"an MLflow run directory that cannot be read: {identity}",
                                               f"{shown}/meta.yaml"),))
    experiment, name, run_id = identity
    store = shown.rsplit("/", 2)[0] if shown.count("/") >= 2 else ""
    label = _prefixed(store, run_label(experiment, name, run_id))
    return RunSpec(label, shown, ((directory, shown, Format.MLFLOW),))


def db_specs(path: str, shown: str) -> list[RunSpec]:
    """One run per active MLflow run of the SQLite database at ``path``, or one run holding the finding
    that says why the database cannot be listed."""
    if not is_sqlite(path):
        return [RunSpec(shown, shown, (), (diag("WC002", "not an MLflow database: no SQLite header", shown),))]
    runs, problem = list_db_runs(path)
    if problem is not None:
        return [RunSpec(shown, shown, (), (problem,))]
    if not runs:
        return [RunSpec(shown, shown, (), (diag("WC002", "no data: the MLflow database has no active run",
                                                shown),))]
    out = []
    for run_id, experiment, name in runs:
        location, where = f"{path}/{run_id}", f"{shown}/{run_id}"
        out.append(RunSpec(f"{shown}/{run_label(experiment, name, run_id)}", where,
                           ((location, where, Format.MLFLOW),)))
    return out


def _escaped(experiment: str) -> str:
    """The experiment name as a URL path: '%', '?' and '#' escaped ('/' kept: names like /Users/x/exp)."""
    return experiment.replace("%", "%25").replace("?", "%3F").replace("#", "%23")


def server_specs(given: str) -> list[RunSpec]:
    """One run per active run of the experiment at ``mlflow://HOST:PORT/<experiment>``.

    Raises :class:`MlflowServerError` (a :class:`~warmcheck.errors.WarmcheckError`: exit 2) when the
    server is down, answers with an error, times out or has no such experiment: nothing was analysed.
    """
    url = parse_url(given)
    scheme, _, rest = url.given.partition("://")
    root = f"{scheme}://{rest.split('/', 1)[0]}"
    out = []
    for run_id, experiment, name in list_runs(url):
        location = f"{root}/{_escaped(experiment)}/{run_id}"
        out.append(RunSpec(run_label(experiment, name, run_id), location, ((location, location, Format.MLFLOW),)))
    return out


__all__ = ["RUN_DATA_DIRS", "MlflowServerError", "db_specs", "file_run_spec", "is_server_url",
           "read_mlflow", "server_specs"]
