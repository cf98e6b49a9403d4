"""``analyze --scheduler``: the runs analysed on a real dask.distributed LocalCluster (a scheduler and
two worker processes on 127.0.0.1) give the report of a local run, byte for byte; a worker killed
mid-sweep costs nothing; a run that kills every worker is WC024; an unreachable scheduler exits 2."""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("distributed", reason="the dask extra (warmcheck[dask]) is not installed")

from distributed import Client, LocalCluster  # noqa: E402

from warmcheck import dask_engine  # noqa: E402
from warmcheck.cli import main  # noqa: E402
from warmcheck.model import Series  # noqa: E402
from warmcheck.pipeline import analyze, exit_code  # noqa: E402
from warmcheck.reporters.json import run_dict, series_dict  # noqa: E402

SAMPLE_LOGS = Path(__file__).resolve().parents[2] / "sample_logs"
PRELOAD = str(Path(__file__).with_name("dask_killer_preload.py"))


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A scheduler and 2 single-threaded worker processes on free ports of 127.0.0.1; its address.

    A task is moved to another worker once when its worker dies (allowed-failures 1, dask's
    default is 3): the retries of the tests below happen in a few seconds.
    """
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=0,
                          dashboard_address=":0", preload=[PRELOAD], silence_logs=50)
    try:
        yield lc.scheduler_address
    finally:
        lc.close()


def _csv_run(path: Path, seed: int, points: int = 120) -> None:
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    warm = 10 + seed % 7
    lines = ["step,lr,loss"]
    for step in range(points):
        lr = 1e-3 * (step + 1) / warm if step < warm else 1e-3 * 0.5 * (1 + math.cos(math.pi * step / points))
        loss = 3.0 * math.exp(-step / 40) + 0.5 + 0.02 * rng.standard_normal()
        if seed % 5 == 0 and step == 70:
            loss *= 4  # a spike in some runs: findings to compare, not only clean runs
        lines.append(f"{step},{lr:.8g},{loss:.6g}")
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")


def _sweep(root: Path, n: int, extra: tuple[str, ...] = ()) -> Path:
    for i in range(n):
        _csv_run(root / f"run_{i:03d}", i)
    for name in extra:
        _csv_run(root / name, 99)
    return root


def _docs(outcome: Any) -> list[dict[str, Any]]:
    return [run_dict(r) for r in outcome.runs]


@pytest.mark.parametrize("fmt", ["json", "text", "markdown", "github", "junit"])
def test_sample_logs_report_is_byte_identical_to_a_local_run(cluster: str, fmt: str) -> None:
    relative = os.path.relpath(SAMPLE_LOGS)  # as a user types it: relative to the client's working directory
    local = CliRunner().invoke(main, ["analyze", "--isolated", "--format", fmt, "-j", "1", relative])
    remote = CliRunner().invoke(main, ["analyze", "--isolated", "--format", fmt, "--scheduler", cluster, relative])
    assert local.exit_code == remote.exit_code == 1, remote.stderr
    assert remote.stdout == local.stdout
    if fmt == "json":
        doc = json.loads(remote.stdout)
        assert len(doc["runs"]) >= 12 and any(r["findings"] for r in doc["runs"])
        assert all(s["points"] for r in doc["runs"] for s in r["series"][:1])


def test_the_scheduler_comes_from_the_environment(cluster: str, tmp_path: Path) -> None:
    root = _sweep(tmp_path / "runs", 3)
    local = CliRunner().invoke(main, ["analyze", "--isolated", "--format", "json", "-j", "1", str(root)])
    remote = CliRunner().invoke(main, ["analyze", "--isolated", "--format", "json", str(root)],
                                env={"WARMCHECK_SCHEDULER": cluster})
    assert remote.exit_code == local.exit_code and remote.stdout == local.stdout


def test_workers_return_runs_without_their_points(cluster: str, tmp_path: Path) -> None:
    root = _sweep(tmp_path / "runs", 4)
    full = analyze([str(root)], scheduler=cluster)
    compact = analyze([str(root)], scheduler=cluster, keep_points=False)
    assert _docs(compact) == _docs(full) == _docs(analyze([str(root)]))
    assert all(s.points == 120 and s.values.size == 0 and s.steps.tolist() == [0, 119]
               for r in compact.runs for s in r.series)
    assert all(s.values.size == 120 for r in full.runs for s in r.series)  # --plot-dir gets the points


def test_a_series_summary_is_small_and_reports_the_same() -> None:
    n = 1_000_000
    values = np.linspace(1.0, 2.0, n)
    values[[5, 17]] = [np.nan, np.inf]
    s = Series("loss", np.arange(3, n + 3, dtype=np.int64), values, np.full(n, 1.5e9), superseded=4)
    summary = dask_engine.summarize_series(s)
    assert series_dict(summary) == series_dict(s) and summary.raw_points == s.raw_points
    assert len(pickle.dumps(summary)) < 2_000 < len(pickle.dumps(s)) // 1000
    empty = dask_engine.summarize_series(Series("lr", s.steps[:0], values[:0], values[:0]))
    assert series_dict(empty)["first_step"] is None and empty.points == 0


def test_a_worker_killed_mid_sweep_costs_nothing(cluster: str, tmp_path: Path) -> None:
    """A worker SIGKILLed from outside after the first results came back: the report is complete."""
    root = _sweep(tmp_path / "runs", 24)
    with Client(cluster, set_as_default=False) as client:
        pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed: list[int] = []

    def kill_once(done: int, total: int, name: str) -> None:
        if not killed and 0 < done < total:
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    outcome = analyze([str(root)], scheduler=cluster, progress=kill_once)
    assert killed and killed[0] < 24
    assert _docs(outcome) == _docs(analyze([str(root)]))
    with Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=30)
        assert victim not in client.run(os.getpid).values()  # it did die; the nanny started another


def test_a_run_whose_worker_dies_once_is_retried(cluster: str, tmp_path: Path) -> None:
    root = _sweep(tmp_path / "runs", 5, extra=("wc_kills_once",))
    (root / "wc_kills_once" / "KILL_ONCE").write_text("")
    outcome = analyze([str(root)], scheduler=cluster)
    assert not (root / "wc_kills_once" / "KILL_ONCE").exists()  # the worker read it, and died
    assert _docs(outcome) == _docs(analyze([str(root)]))
    assert all(r.series for r in outcome.runs) and len(outcome.runs) == 6


def test_a_run_that_kills_every_worker_is_wc024_and_the_others_are_kept(cluster: str, tmp_path: Path) -> None:
    root = _sweep(tmp_path / "runs", 4, extra=("wc_kills_always",))
    outcome = analyze([str(root)], scheduler=cluster)
    names = [Path(r.name).parent.name for r in outcome.runs]
    assert names == ["run_000", "run_001", "run_002", "run_003", "wc_kills_always"]  # discovery order
    (death,) = outcome.runs[-1].findings
    assert death.code == "WC024" and death.details["attempts"] == 2 and outcome.runs[-1].series == ()
    assert "dask worker" in death.message and death.source == outcome.runs[-1].path
    reference = analyze([str(root / f"run_{i:03d}") for i in range(4)])  # the same runs, locally, without it
    assert _docs(outcome)[:-1] == _docs(reference) and all(r.series for r in reference.runs)
    assert exit_code(outcome) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_scheduler_exits_2_with_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT", 1.0)
    root = _sweep(tmp_path / "runs", 2)
    address = f"tcp://127.0.0.1:{_free_port()}"
    result = CliRunner().invoke(main, ["analyze", "--isolated", "--scheduler", address, str(root)])
    assert result.exit_code == 2 and result.stdout == ""
    assert f"warmcheck: error: cannot reach the dask scheduler at {address}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_scheduler_address_exits_2(tmp_path: Path) -> None:
    root = _sweep(tmp_path / "runs", 1)
    result = CliRunner().invoke(main, ["analyze", "--isolated", "--scheduler", "tcp://no port here", str(root)])
    assert result.exit_code == 2 and "cannot reach the dask scheduler" in result.stderr, result.stderr


def test_without_dask_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    root = _sweep(tmp_path / "runs", 1)
    result = CliRunner().invoke(main, ["analyze", "--isolated", "--scheduler", "tcp://127.0.0.1:8786", str(root)])
    assert result.exit_code == 2 and "pip install 'warmcheck[dask]'" in result.stderr


def _worker_cache_stats(client: Any) -> dict[str, dict[str, int]]:
    """Each worker's read-cache counters (:class:`warmcheck.cache.CacheStats`), {} for a worker without a cache."""

    def stats() -> dict[str, int]:
        from dataclasses import asdict

        from warmcheck import cache

        active = cache.active()
        return {} if active is None else dict(asdict(active.stats), directory=active.directory)

    return client.run(stats)


def test_workers_read_through_the_clients_cache_dir(cluster: str, tmp_path: Path) -> None:
    """The client's cache directory reaches the workers: the first sweep fills it, the second reads no file."""
    from warmcheck import cache

    root = _sweep(tmp_path / "runs", 12)
    old = 1_600_000_000 * 10**9  # files changed in the last 2 s are not cached
    for p in [root, *root.rglob("*")]:
        os.utime(p, ns=(old, old))
    cache_dir = tmp_path / "cache"
    previous = cache.active()
    cache.activate(str(cache_dir))
    try:
        with Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=30)
            first = analyze([str(root)], scheduler=cluster)  # keep_points: the cache of analysed runs is not used
            before = _worker_cache_stats(client)
            entries = sorted(cache_dir.rglob("*.npz"))
            assert len(entries) == 12  # written by the workers, in the client's directory
            stamps = [p.stat().st_mtime_ns for p in entries]
            again = analyze([str(root)], scheduler=cluster)
            after = _worker_cache_stats(client)
    finally:
        cache.set_active(previous)
    assert _docs(again) == _docs(first) == _docs(analyze([str(root)]))
    assert [p.stat().st_mtime_ns for p in entries] == stamps  # nothing rewritten
    assert set(after) == set(before) and all(s["directory"] == str(cache_dir) for s in after.values())
    hits = sum(after[w]["hits"] - before[w]["hits"] for w in after)
    read = sum(after[w]["read"] - before[w]["read"] for w in after)
    assert (hits, read) == (12, 0)  # the second sweep: every file from the cache, none read
