"""MLflow reading speed: an experiment of 100 runs x 10,000 points, through a real ``mlflow server``.

warmcheck's readers against the tracker's own export path, ``MlflowClient.get_metric_history``, on the
same data, in the same process and run, best of ``--reps`` (interleaved):

* ``server``: every point of every run of the experiment over the REST API (warmcheck: discovery with
  ``runs/search`` + ``metrics/get-history`` per run; client: ``search_runs`` + ``get_metric_history``);
* ``sqlite``: the same store read from its ``mlflow.db`` file (warmcheck: SQL, read-only; client:
  ``MlflowClient("sqlite:///...")``);
* ``analyze``: the whole ``warmcheck analyze mlflow://HOST:PORT/<experiment> --format json`` command
  (a subprocess: reading, schedule inference and every analyzer), once.

The store is written once by the real client (``log_batch``, 1,000 points a call) into
``bench/out/mlflow/mlflow.db`` and reused while its run and point counts are right. Each reader's
point count is checked: exit 1 if one of them did not get every point.

    python bench/mlflow_bench.py [--runs 100] [--points 10000] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = "bench"
KEY = "train/loss"
ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _counts(db: Path) -> tuple[int, int]:
    if not db.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return (con.execute("SELECT COUNT(*) FROM runs").fetchone()[0],
                    con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])
    except sqlite3.Error:
        return 0, 0


def make_store(db: Path, runs: int, points: int) -> float:
    """Log ``runs`` runs of ``points`` points with the real client; seconds taken (0 if reused)."""
    if _counts(db) == (runs, runs * points):
        return 0.0
    db.unlink(missing_ok=True)
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    t = time.perf_counter()
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.create_experiment(EXPERIMENT)
    for r in range(runs):
        run = client.create_run(exp, run_name=f"run-{r:03d}")
        rid = run.info.run_id
        for lo in range(0, points, 1000):
            client.log_batch(rid, metrics=[Metric(KEY, 4.0 / (1 + 0.001 * s) + 0.01 * ((s * 7919 + r) % 13),
                                                  1_700_000_000_000 + s, s) for s in range(lo, min(points, lo + 1000))])
        client.set_terminated(rid)
    return time.perf_counter() - t


def start_server(db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen([str(exe), "server", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1", "--artifacts-destination",
                             str(db.parent / "artifacts")], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, **ENV}, start_new_session=True, cwd=db.parent)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.25)
    raise SystemExit("mlflow server did not start: " + log.read_text()[-2000:])


def warmcheck_server(uri: str) -> int:
    from warmcheck.readers.mlflow import read_mlflow, server_specs

    return sum(len(f) for spec in server_specs(uri) for path, _, _ in spec.files for f in read_mlflow(path).fragments)


def warmcheck_sqlite(db: Path) -> int:
    from warmcheck.readers.mlflow import db_specs, read_mlflow

    return sum(len(f) for spec in db_specs(str(db), "mlflow.db") for path, _, _ in spec.files
               for f in read_mlflow(path).fragments)


def client_history(tracking_uri: str) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    total = 0
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        for run in page:
            for key in run.data.metrics:
                total += len(client.get_metric_history(run.info.run_id, key))
        token = page.token
        if not token:
            return total


def best(fn: Callable[[], int], expected: int) -> tuple[float, bool]:
    t = time.perf_counter()
    n = fn()
    return time.perf_counter() - t, n == expected


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "mlflow")
    args = ap.parse_args()
    os.environ.update(ENV)
    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / f"mlflow-{args.runs}x{args.points}.db"
    made = make_store(db, args.runs, args.points)
    expected = args.runs * args.points
    print(json.dumps({"store": str(db), "runs": args.runs, "points_per_run": args.points,
                      "logged_with_client_s": round(made, 1) if made else "reused"}), flush=True)
    port = _free_port()
    proc = start_server(db, port, args.out / "server.log")
    uri = f"mlflow://127.0.0.1:{port}/{EXPERIMENT}"
    readers: dict[str, Callable[[], int]] = {
        "server/warmcheck": lambda: warmcheck_server(uri),
        "server/MlflowClient.get_metric_history": lambda: client_history(f"http://127.0.0.1:{port}"),
        "sqlite/warmcheck": lambda: warmcheck_sqlite(db),
        "sqlite/MlflowClient.get_metric_history": lambda: client_history(f"sqlite:///{db}"),
    }
    times: dict[str, list[float]] = {k: [] for k in readers}
    ok = True
    try:
        for _ in range(args.reps):
            for name, fn in readers.items():
                seconds, right = best(fn, expected)
                times[name].append(seconds)
                ok &= right
                if not right:
                    print(f"{name}: wrong point count", file=sys.stderr)
        for name, samples in times.items():
            print(json.dumps({"reader": name, "best_s": round(min(samples), 2),
                              "samples_s": [round(s, 2) for s in samples],
                              "points_per_s": int(expected / min(samples))}), flush=True)
        for backend in ("server", "sqlite"):
            ours, theirs = min(times[f"{backend}/warmcheck"]), min(times[f"{backend}/MlflowClient.get_metric_history"])
            print(json.dumps({"backend": backend, "speedup_vs_client": round(theirs / ours, 2)}))
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "warmcheck", "analyze", uri, "--format", "json", "--isolated",
                               "--exit-zero", "-q"], capture_output=True, cwd=args.out)
        elapsed = time.perf_counter() - t
        report = json.loads(done.stdout or b"{}")
        points = sum(s.get("points", 0) for r in report.get("runs", ()) for s in r.get("series", ()))
        ok &= done.returncode == 0 and points == expected
        print(json.dumps({"command": f"warmcheck analyze {uri} --format json", "s": round(elapsed, 2),
                          "exit": done.returncode, "runs": len(report.get("runs", ())), "points": points}))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
