"""Fixtures for the tracker sources (W&B, MLflow): real trackers writing real runs, once per session."""

from __future__ import annotations

# --- mlflow ---
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_REALRUNS = str(Path(__file__).resolve().parents[2] / "scripts" / "realruns")
MLFLOW_EXPERIMENT = "warmcheck-realruns"
_MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_ALLOW_FILE_STORE": "true"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: ``http`` for the client, ``uri`` for warmcheck, ``db`` its SQLite store."""

    port: int
    db: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def uri(self, experiment: str = MLFLOW_EXPERIMENT) -> str:
        return f"mlflow://127.0.0.1:{self.port}/{experiment}"


@pytest.fixture(scope="session")
def mlflow_env() -> Iterator[None]:
    """mlflow importable, telemetry off and the file store allowed, for the whole session."""
    pytest.importorskip("mlflow", reason="the MLflow tests need the mlflow extra: pip install 'warmcheck[mlflow]'")
    saved = {k: os.environ.get(k) for k in _MLFLOW_ENV}
    os.environ.update(_MLFLOW_ENV)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def mlflow_server(mlflow_env: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on 127.0.0.1 and a free port, SQLite backend, stopped after the session."""
    root = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(free_port(), root / "mlflow.db")
    exe = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or shutil.which("mlflow")
    assert exe, "the mlflow command is not installed"
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [exe, "server", "--backend-store-uri", f"sqlite:///{server.db}", "--artifacts-destination",
         str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(server.port), "--workers", "1"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **_MLFLOW_ENV}, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{server.http}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start:\n" + (root / "server.log").read_text()[-3000:])
            time.sleep(0.25)
        yield server
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=20)
        log.close()


@dataclass(frozen=True)
class MlflowRealRuns:
    """The real trainings of ``scripts/realruns/mlflow_runs.py``, each logged to every sink at once."""

    tb: dict[str, Path]  # case -> TensorBoard run directory (event file + hparams.yaml)
    mlruns: Path  # the file store all cases went to
    server: MlflowServer  # the server all cases went to (its SQLite store: server.db)
    logged: dict[str, dict[str, list[float]]]  # case -> tag -> float32 value per step, as logged

    def file_run(self, case: str) -> str:
        return f"{MLFLOW_EXPERIMENT}/{case}-file"

    def server_run(self, case: str) -> str:
        return f"{MLFLOW_EXPERIMENT}/{case}-server"


@pytest.fixture(scope="session")
def mlflow_realruns(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> MlflowRealRuns:
    """Every case trained once, logged live to TensorBoard, a file store and the tracking server."""
    pytest.importorskip("torch", reason="the real-run fixtures train a tiny torch model")
    from mlflow.tracking import MlflowClient

    if _REALRUNS not in sys.path:
        sys.path.insert(0, _REALRUNS)
    import mlflow_runs

    root = tmp_path_factory.mktemp("mlflow-realruns")
    file_client = MlflowClient(tracking_uri=(root / "mlruns").as_uri())
    server_client = MlflowClient(tracking_uri=mlflow_server.http)
    logged: dict[str, Any] = {}
    tb = {}
    for name, case in mlflow_runs.CASES.items():
        tb[name] = root / "tb" / name
        logged[name] = mlflow_runs.train(case, tb[name], [(file_client, "file"), (server_client, "server")],
                                         MLFLOW_EXPERIMENT)
    return MlflowRealRuns(tb, root / "mlruns", mlflow_server, logged)
# --- end mlflow ---
