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


# --- wandb ---
@dataclass(frozen=True)
class WandbRealRuns:
    """The real trainings of ``scripts/realruns/wandb_runs.py``, each logged to W&B (offline) and TensorBoard."""

    root: Path  # OUT_DIR of the generator: <case>/{tb, wandb, logged.jsonl}
    runs: dict[str, Path]  # case -> W&B run directory (wandb/offline-run-<date>-<id>)

    def tb(self, case: str) -> Path:
        return self.root / case / "tb"

    def wandb_file(self, case: str) -> Path:
        return next(self.runs[case].glob("run-*.wandb"))

    def logged(self, case: str) -> dict[str, list[float]]:
        import wandb_runs

        return wandb_runs.read_logged(self.root / case / "logged.jsonl")


def _wandb_generator(out: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """The generator's command line and an environment that keeps wandb offline and inside ``out``."""
    if _REALRUNS not in sys.path:
        sys.path.insert(0, _REALRUNS)
    import wandb_runs

    env = {**os.environ, **wandb_runs.wandb_env(out / ".wandb-home"), "PYTHONHASHSEED": "0"}
    return [sys.executable, os.path.join(_REALRUNS, "wandb_runs.py"), str(out), *args], env


def _wandb_run_dirs(out: Path, stdout: str) -> dict[str, Path]:
    runs = {}
    for line in stdout.splitlines():
        case, _, where = line.partition(": ")
        if where:
            runs[case] = Path(where)
    return runs


@pytest.fixture(scope="session")
def wandb_realruns(tmp_path_factory: pytest.TempPathFactory) -> WandbRealRuns:
    """``founding`` and ``nan_loss`` trained once (a subprocess: wandb's service stays out of pytest),
    logged live to W&B offline and TensorBoard; ``shapes`` logged to W&B without training."""
    pytest.importorskip("wandb", reason="the W&B tests need the wandb extra: pip install 'warmcheck[wandb]'")
    pytest.importorskip("torch", reason="the real-run fixtures train a tiny torch model")
    out = tmp_path_factory.mktemp("wandb-realruns")
    cmd, env = _wandb_generator(out, "founding", "nan_loss", "shapes")
    done = subprocess.run(cmd, env=env, cwd=out, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = _wandb_run_dirs(out, done.stdout)
    assert sorted(runs) == ["founding", "nan_loss", "shapes"], done.stdout
    return WandbRealRuns(out, runs)


class LiveWandbTraining:
    """``scripts/realruns/wandb_runs.py OUT long --pace S``: a training writing its W&B run while a test
    watches; :meth:`kill` ends it with SIGKILL (its process group: the trainer and wandb's service)."""

    def __init__(self, out: Path, pace: float) -> None:
        self.out = out
        cmd, env = _wandb_generator(out, "long", "--pace", str(pace), "--no-tb")
        self.log = open(out / "generator.log", "wb")  # noqa: SIM115 - closed by kill()
        self.proc = subprocess.Popen(cmd, env=env, cwd=out, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.killed = False

    @property
    def wandb_dir(self) -> Path:
        return self.out / "long" / "wandb"

    def wandb_file(self, timeout: float = 180.0) -> Path:
        """The run file, once it exists (the trainer imports torch and wandb first)."""
        deadline = time.monotonic() + timeout
        while True:
            found = sorted(self.wandb_dir.glob("*run-*/run-*.wandb"))
            if found:
                return found[0]
            assert self.proc.poll() is None, (self.out / "generator.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no W&B run file appeared"
            time.sleep(0.2)

    def wait_rows(self, rows: int, timeout: float = 180.0) -> None:
        """Until the trainer has logged ``rows`` updates (its logged.jsonl)."""
        deadline = time.monotonic() + timeout
        truth = self.out / "long" / "logged.jsonl"
        while not truth.exists() or truth.read_bytes().count(b"\n") < rows:
            assert self.proc.poll() is None, (self.out / "generator.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"fewer than {rows} updates logged"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the training's process group, then wait until the run file stops changing."""
        if self.killed:
            return
        self.killed = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.log.close()
        path, last, stable = self.wandb_file(), -1, 0
        deadline = time.monotonic() + 30
        while stable < 5 and time.monotonic() < deadline:  # wandb's service notices its parent died
            size = path.stat().st_size
            stable = stable + 1 if size == last else 0
            last = size
            time.sleep(0.2)

    def logged(self) -> dict[str, list[float]]:
        import wandb_runs

        return wandb_runs.read_logged(self.out / "long" / "logged.jsonl")


@pytest.fixture(scope="session")
def wandb_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveWandbTraining]:
    """A training writing its W&B run now (killed at the latest when the session ends)."""
    pytest.importorskip("wandb", reason="the W&B tests need the wandb extra: pip install 'warmcheck[wandb]'")
    pytest.importorskip("torch", reason="the real-run fixtures train a tiny torch model")
    live = LiveWandbTraining(tmp_path_factory.mktemp("wandb-live"), pace=0.02)
    try:
        yield live
    finally:
        live.kill()
# --- end wandb ---
