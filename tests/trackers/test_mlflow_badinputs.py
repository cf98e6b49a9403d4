"""MLflow bad inputs: damaged file stores, databases that are not MLflow's, servers that are down, answer
500, never answer or are not MLflow at all. Never a traceback; a clear error and exit 2 when nothing
could be listed, a finding when one run could not be read. Runs are written by the real mlflow client."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from warmcheck.cli import main
from warmcheck.config import Settings
from warmcheck.model import Run
from warmcheck.pipeline import analyze
from warmcheck.readers import _mlflowrest

pytestmark = pytest.mark.usefixtures("mlflow_env")
N = 40


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _log(uri: str, experiment: str, runs: dict[str, dict[str, list[float]]]) -> dict[str, str]:
    """Log ``{run name: {key: values at steps 0..}}`` with the real client; run name -> run id."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    ids = {}
    for name, series in runs.items():
        run = client.create_run(exp_id, run_name=name)
        client.log_batch(run.info.run_id, params=[Param("warmup_steps", "10")])
        for key, values in series.items():
            client.log_batch(run.info.run_id, metrics=[Metric(key, v, 1_700_000_000_000 + i, i)
                                                       for i, v in enumerate(values)])
        client.set_terminated(run.info.run_id)
        ids[name] = run.info.run_id
    return ids


def _curve(n: int = N) -> dict[str, list[float]]:
    lr = [1e-3 * min(1.0, (i + 1) / 10) for i in range(n)]
    return {"train/lr": lr, "train/loss": [4.0 - 0.05 * i for i in range(n)]}


def _runs(path: str) -> dict[str, Run]:
    return {r.name: r for r in analyze([path], Settings()).runs}


def _codes(run: Run) -> list[str]:
    return sorted(f.code for f in run.findings)


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    mlruns = tmp_path / "mlruns"
    ids = _log(mlruns.as_uri(), "bad", {"a": _curve(), "b": _curve()})
    return mlruns, ids


def _metric_file(mlruns: Path, run_id: str, key: str) -> Path:
    (path,) = mlruns.glob(f"*/{run_id}/metrics/{key}")
    return path


# --- file store ---------------------------------------------------------------------------------


def test_malformed_metric_lines_are_skipped_and_named(store: tuple[Path, dict[str, str]]) -> None:
    mlruns, ids = store
    loss = _metric_file(mlruns, ids["a"], "train/loss")
    lines = loss.read_text().splitlines(keepends=True)
    lines[5] = "1700000000005 not-a-number 5\n"
    lines[9] = "garbage\n"
    loss.write_text("".join(lines))
    run = _runs(str(mlruns))[f"{mlruns}/bad/a"]
    (wc014,) = [f for f in run.findings if f.code == "WC014"]
    assert (wc014.tag, wc014.line, wc014.details["lines"], wc014.details["skipped"]) == ("train/loss", 6, [6, 10], 2)
    series = next(s for s in run.series if s.tag == "train/loss")
    assert series.points == N - 2 and 5 not in series.steps and 9 not in series.steps
    assert run.sources[0].skipped == 2 and run.sources[0].records == 2 * N
    other = _runs(str(mlruns))[f"{mlruns}/bad/b"]
    assert "WC014" not in _codes(other)


def test_unterminated_last_line_is_a_write_in_progress(store: tuple[Path, dict[str, str]]) -> None:
    mlruns, ids = store
    loss = _metric_file(mlruns, ids["a"], "train/loss")
    with loss.open("a") as f:
        f.write("1700000000040 0.5 4")  # cut mid-line: the step may be 4, 40, 400...
    run = _runs(str(mlruns))[f"{mlruns}/bad/a"]
    (wc003,) = [f for f in run.findings if f.code == "WC003"]
    assert (wc003.tag, wc003.line, wc003.details["rows_kept"]) == ("train/loss", N + 1, N)
    assert next(s for s in run.series if s.tag == "train/loss").points == N


def test_damaged_meta_yaml_is_reported_not_passed_over(store: tuple[Path, dict[str, str]]) -> None:
    mlruns, ids = store
    (meta,) = mlruns.glob(f"*/{ids['b']}/meta.yaml")
    meta.write_text("{{{ not: yaml")
    runs = _runs(str(mlruns))
    assert sorted(runs) == sorted([f"{mlruns}/bad/a", str(meta.parent)])
    assert [(f.code, f.source) for f in runs[str(meta.parent)].findings] == [("WC002", f"{meta}")]
    assert "WC002" not in _codes(runs[f"{mlruns}/bad/a"])


def test_deleted_runs_are_not_read(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    mlruns = tmp_path / "mlruns"
    ids = _log(mlruns.as_uri(), "bad", {"kept": _curve(), "gone": _curve()})
    MlflowClient(tracking_uri=mlruns.as_uri()).delete_run(ids["gone"])
    assert sorted(_runs(str(mlruns))) == [f"{mlruns}/bad/kept"]
    db = tmp_path / "mlflow.db"
    ids = _log(f"sqlite:///{db}", "bad", {"kept": _curve(), "gone": _curve()})
    MlflowClient(tracking_uri=f"sqlite:///{db}").delete_run(ids["gone"])
    assert sorted(_runs(str(tmp_path / "mlflow.db"))) == [f"{db}/bad/kept"]


@pytest.mark.parametrize("backend", ["file", "sqlite"])
def test_nan_and_inf_come_back_as_logged(tmp_path: Path, backend: str) -> None:
    """The SQL store keeps +/-inf as +/-DBL_MAX; both backends read back NaN, +inf and -inf."""
    values = [3.0, 2.5, float("nan"), float("inf"), float("-inf"), 2.0]
    uri = (tmp_path / "mlruns").as_uri() if backend == "file" else f"sqlite:///{tmp_path / 'mlflow.db'}"
    _log(uri, "x", {"r": {"train/loss": values}})
    (run,) = _runs(str(tmp_path)).values()
    series = next(s for s in run.series if s.tag == "train/loss")
    assert np.array_equal(series.values, np.array(values), equal_nan=True)
    assert [f.step for f in run.findings if f.code == "WC401"] == [2]


# --- SQLite -------------------------------------------------------------------------------------


def test_sqlite_without_mlflow_tables_is_no_data(tmp_path: Path) -> None:
    db = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE runs (x)")
    (run,) = analyze([str(db)], Settings()).runs
    assert [(f.code, f.details.get("kind")) for f in run.findings] == [("WC002", None)]
    assert "missing: experiments, metrics, params, tags" in run.findings[0].message


def test_damaged_database_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    _log(f"sqlite:///{db}", "x", {"r": _curve()})
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page, past the 100-byte header
    db.write_bytes(bytes(data))
    code, out, err = invoke("analyze", str(tmp_path), "--format", "json")
    assert code == 2 and "Traceback" not in err  # nothing could be analysed: exit 2, with the reason
    (run,) = json.loads(out)["runs"]
    assert [f["code"] for f in run["findings"]] == ["WC001"]
    assert "database disk image is malformed" in run["findings"][0]["message"]


def test_mlflow_db_is_read_without_writing_to_it(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    _log(f"sqlite:///{db}", "x", {"r": _curve()})
    before = db.read_bytes()
    db.chmod(0o444)
    (run,) = _runs(str(tmp_path)).values()
    assert next(s for s in run.series if s.tag == "train/loss").points == N
    assert db.read_bytes() == before


# --- servers ------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    answer: Callable[[BaseHTTPRequestHandler], None]

    def do_GET(self) -> None:  # noqa: N802
        type(self).answer(self)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_server() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler], None]], str]]:
    """Start a tiny HTTP server on a free port answering with the given function; its host:port."""
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[BaseHTTPRequestHandler], None]) -> str:
        handler = type("Handler", (_Handler,), {"answer": staticmethod(answer)})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes, kind: str = "application/json") -> None:
    h.send_response(status)
    h.send_header("Content-Type", kind)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def test_server_down_is_a_clear_error_exit_2() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        code, out, err = invoke("analyze", f"mlflow://127.0.0.1:{port}/exp")
    assert code == 2 and out == ""
    assert f"cannot reach the MLflow server at http://127.0.0.1:{port}" in err and "Traceback" not in err


def test_server_answering_500_is_a_clear_error_exit_2(fake_server: Any) -> None:
    hostport = fake_server(lambda h: _reply(h, 500, b'{"error_code": "INTERNAL_ERROR", "message": "db is gone"}'))
    code, out, err = invoke("analyze", f"mlflow://{hostport}/exp")
    assert code == 2 and out == ""
    assert "answered HTTP 500 to experiments/get-by-name: INTERNAL_ERROR db is gone" in err


def test_server_that_never_answers_times_out(fake_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    hostport = fake_server(lambda h: release.wait(30))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "0.5")
    try:
        code, out, err = invoke("analyze", f"mlflow://{hostport}/exp")
    finally:
        release.set()
    assert code == 2 and "did not answer experiments/get-by-name within 0.5 s" in err


def test_not_an_mlflow_server(fake_server: Any) -> None:
    hostport = fake_server(lambda h: _reply(h, 200, b"<html>hello</html>", "text/html"))
    code, _, err = invoke("analyze", f"mlflow://{hostport}/exp")
    assert code == 2 and "not an MLflow tracking server?" in err


def test_unknown_experiment_is_exit_2(mlflow_server: Any) -> None:
    code, _, err = invoke("analyze", mlflow_server.uri("no-such-experiment"))
    assert code == 2 and "has no experiment named 'no-such-experiment'" in err


def test_500_for_one_run_is_a_finding_for_that_run(mlflow_server: Any, fake_server: Any) -> None:
    ids = _log(mlflow_server.http, "one-fails", {"ok": _curve(), "broken": _curve()})

    def proxy(h: BaseHTTPRequestHandler) -> None:
        if "metrics/get-history" in h.path and ids["broken"] in h.path:
            _reply(h, 500, b'{"error_code": "INTERNAL_ERROR", "message": "boom"}')
            return
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        request = urllib.request.Request(mlflow_server.http + h.path, data=body, method=h.command,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                _reply(h, r.status, r.read())
        except urllib.error.HTTPError as exc:
            _reply(h, exc.code, exc.read())

    hostport = fake_server(proxy)
    code, out, err = invoke("analyze", f"mlflow://{hostport}/one-fails", "--format", "json")
    assert code == 1 and "Traceback" not in err
    runs = {r["run"]: r for r in json.loads(out)["runs"]}
    assert sorted(runs) == ["one-fails/broken", "one-fails/ok"]
    broken = runs["one-fails/broken"]
    assert [f["code"] for f in broken["findings"] if f["code"].startswith("WC00")] == ["WC001"]
    assert "HTTP 500 to metrics/get-history" in broken["findings"][0]["message"] and broken["series"] == []
    ok = runs["one-fails/ok"]
    assert {s["tag"]: s["points"] for s in ok["series"]} == {"train/lr": N, "train/loss": N}


def test_paging_reads_every_point(mlflow_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 7 points and of 1 run: the same points as one page each, in order."""
    _log(mlflow_server.http, "paged", {f"r{i}": _curve(N + i) for i in range(3)})
    whole = _runs(mlflow_server.uri("paged"))
    monkeypatch.setattr(_mlflowrest, "HISTORY_PAGE", 7)
    monkeypatch.setattr(_mlflowrest, "SEARCH_PAGE", 1)
    paged = _runs(mlflow_server.uri("paged"))
    assert sorted(paged) == sorted(whole) == [f"paged/r{i}" for i in range(3)]
    for name, run in paged.items():
        i = int(name[-1])
        for s in run.series:
            (other,) = [o for o in whole[name].series if o.tag == s.tag]
            assert s.points == N + i and np.array_equal(s.steps, other.steps)
            assert np.array_equal(s.values, other.values)
        assert math.isclose(next(s for s in run.series if s.tag == "train/loss").values[-1], 4.0 - 0.05 * (N + i - 1))


def test_bad_url() -> None:
    code, _, err = invoke("analyze", "mlflow://127.0.0.1:notaport/exp")
    assert code == 2 and "bad port" in err
