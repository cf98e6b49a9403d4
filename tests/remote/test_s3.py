"""URLs as PATHs against a real S3 endpoint (moto's server on 127.0.0.1, the real s3fs client over HTTP)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
from click.testing import CliRunner, Result
from s3env import FAST_FAIL, SAMPLE_LOGS, BlackHole, free_port

from warmcheck import pipeline, storage
from warmcheck.cli import main
from warmcheck.config import Settings
from warmcheck.reporters import OutputFormat, make_reporter


def _analyze(*args: str) -> Result:
    return CliRunner().invoke(main, ["analyze", "--format", "json", "-q", *args], catch_exceptions=False)


def _local_report() -> Result:
    return _analyze("--no-cache", str(SAMPLE_LOGS))


def _same(remote: Result, url: str, local: Result) -> None:
    assert remote.exit_code == local.exit_code, remote.output
    assert remote.stdout.replace(url.rstrip("/"), str(SAMPLE_LOGS)) == local.stdout


def test_sample_logs_report_is_the_same_from_s3_memory_and_file_urls(upload: Callable[[Path, str], str],
                                                                     moto_endpoint: str) -> None:
    local = _local_report()
    assert local.exit_code == 1
    url = upload(SAMPLE_LOGS, "team/sample_logs")
    _same(_analyze("--no-cache", "--storage-option", f"endpoint_url={moto_endpoint}", url + "/"), url, local)
    # through the cache of reads, cold then warm
    for _ in range(2):
        _same(_analyze("--storage-option", f"endpoint_url={moto_endpoint}", url), url, local)

    mem = fsspec.filesystem("memory")
    for path in sorted(SAMPLE_LOGS.rglob("*")):
        if path.is_file():
            mem.pipe(f"/wc-same/sample_logs/{path.relative_to(SAMPLE_LOGS).as_posix()}", path.read_bytes())
    try:
        _same(_analyze("--no-cache", "memory://wc-same/sample_logs"), "memory://wc-same/sample_logs", local)
    finally:
        mem.rm("/wc-same", recursive=True)

    assert _analyze("--no-cache", SAMPLE_LOGS.as_uri()).stdout == local.stdout  # file:// is a local path


def test_spawned_workers_read_s3_with_the_storage_options(upload: Callable[[Path, str], str],
                                                          moto_endpoint: str) -> None:
    url = upload(SAMPLE_LOGS, "sample_logs")
    settings = Settings(storage_options={"endpoint_url": moto_endpoint})
    one = pipeline.analyze([url], settings, jobs=1)
    storage.set_storage_options({})  # a spawned worker starts with nothing: the settings must carry them
    two = pipeline.analyze([url], settings, jobs=2, start_method="spawn")
    render = make_reporter(OutputFormat("json")).render
    assert render(two) == render(one)
    assert not [f for f in one.all_findings() if f.code == "WC021"]


def test_storage_options_from_flag_environment_and_config(upload: Callable[[Path, str], str], moto_endpoint: str,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = upload(SAMPLE_LOGS / "diverged", "diverged")
    local = _analyze("--no-cache", str(SAMPLE_LOGS / "diverged"))
    nested = _analyze("--no-cache", "--storage-option", f"client_kwargs.endpoint_url={moto_endpoint}", url)
    assert nested.stdout.replace(url, str(SAMPLE_LOGS / "diverged")) == local.stdout
    as_json = json.dumps({"endpoint_url": moto_endpoint})
    assert _analyze("--no-cache", "--storage-option", f"client_kwargs={as_json}", url).exit_code == 1

    closed = f"http://127.0.0.1:{free_port()}"  # the option is really used: a closed port fails (exit 2)
    failed = _analyze("--no-cache", "--storage-option", f"endpoint_url={closed}", "--storage-option", "retries=1",
                      url)
    assert failed.exit_code == 2
    assert "object storage did not answer" in failed.stderr

    config = tmp_path / "warmcheck.toml"
    config.write_text(f'[storage-options]\nendpoint_url = "{moto_endpoint}"\n')
    assert _analyze("--no-cache", "--config", str(config), url).exit_code == 1
    monkeypatch.setenv("WARMCHECK_STORAGE_OPTIONS", f"endpoint_url={moto_endpoint} anon=false")
    assert _analyze("--no-cache", url).exit_code == 1

    bad = _analyze("--no-cache", "--storage-option", "no-equals-sign", url)
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output


@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_object_deleted_between_listing_and_reading(upload: Callable[[Path, str], str], moto_endpoint: str,
                                                    s3: Any, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    url = upload(SAMPLE_LOGS, "sample_logs")
    victim = f"{url}/diverged/log.csv"
    assert s3.exists(victim)
    real_discover = pipeline.discover

    def discover_then_delete(*args: Any, **kwargs: Any) -> Any:
        found = real_discover(*args, **kwargs)
        if change == "deleted":
            s3.rm(victim)
        else:  # another object under the same key (a new ETag): never half of one and half of the other
            s3.pipe(victim, b"step,loss\n1,2.5\n2,2.4\n")
        return found

    monkeypatch.setattr(pipeline, "discover", discover_then_delete)
    result = _analyze("--no-cache", "--jobs", "1", "--storage-option", f"endpoint_url={moto_endpoint}", url)
    assert result.exit_code == 1
    report = json.loads(result.stdout.replace(url, str(SAMPLE_LOGS)))
    expected = json.loads(_local_report().stdout)
    runs = {r["run"]: r for r in report["runs"]}
    gone = runs.pop(str(SAMPLE_LOGS / "diverged" / "log.csv"))
    assert [f["code"] for f in gone["findings"]] == ["WC001"]
    assert ("deleted" if change == "deleted" else "changed since it was listed") in gone["findings"][0]["message"]
    others = {r["run"]: r for r in expected["runs"] if r["run"] != str(SAMPLE_LOGS / "diverged" / "log.csv")}
    assert runs == others  # the rest of the report is complete


# -- an endpoint that does not answer ---------------------------------------------------------------------

@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def _cli(*args: str, timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "warmcheck", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    return done, time.monotonic() - started




def test_endpoint_that_never_answers_ends_in_bounded_time_with_exit_2(black_hole: BlackHole) -> None:
    done, elapsed = _cli("analyze", "-q", "s3://bucket/runs/", "--storage-option",
                         f"endpoint_url=http://127.0.0.1:{black_hole.port}", *FAST_FAIL)
    assert done.returncode == 2, done.stderr
    assert "object storage did not answer" in done.stderr and "s3://bucket/runs/" in done.stderr
    assert "Traceback" not in done.stderr
    # retries (2) x botocore attempts (2) x read timeout (1 s), plus back-off and start-up: far below this
    assert elapsed < 60


def test_closed_port_ends_with_exit_2() -> None:
    done, _ = _cli("analyze", "-q", "s3://bucket/runs/", "--storage-option",
                   f"endpoint_url=http://127.0.0.1:{free_port()}", *FAST_FAIL)
    assert done.returncode == 2
    assert "object storage did not answer" in done.stderr and "Traceback" not in done.stderr


def test_endpoint_that_stops_answering_after_the_listing(upload: Callable[[Path, str], str], moto_endpoint: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url = upload(SAMPLE_LOGS, "sample_logs")
    proxy = BlackHole.proxy_to(moto_endpoint)
    real_discover = pipeline.discover

    def discover_then_hang(*args: Any, **kwargs: Any) -> Any:
        found = real_discover(*args, **kwargs)
        assert found.runs
        proxy.hang()
        return found

    monkeypatch.setattr(pipeline, "discover", discover_then_hang)
    try:
        result = _analyze("--no-cache", "--jobs", "1", "--storage-option",
                          f"endpoint_url=http://127.0.0.1:{proxy.port}", *FAST_FAIL, url)
    finally:
        proxy.close()
    assert result.exit_code == 2  # not a report with a WC001 or WC021 per run
    assert "object storage did not answer" in result.stderr
    assert result.stdout == ""


# -- a filesystem that is not installed -------------------------------------------------------------------

def test_missing_filesystem_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = importlib.import_module("fsspec.registry")  # (fsspec.registry is also the name of a mapping)

    def not_installed(protocol: str) -> Any:
        raise ImportError(registry.known_implementations[protocol]["err"])

    monkeypatch.setattr(registry, "get_filesystem_class", not_installed)
    result = _analyze("s3://bucket/runs/")
    assert result.exit_code == 2
    assert "s3:// filesystem is not installed" in result.stderr
    assert "pip install 'warmcheck[s3]'" in result.stderr
    gs = _analyze("gs://bucket/runs/")
    assert gs.exit_code == 2 and "pip install 'warmcheck[gcs]'" in gs.stderr


def test_unknown_scheme_is_a_clear_error() -> None:
    result = _analyze("nosuchfs://bucket/runs/")
    assert result.exit_code == 2
    assert "unknown URL scheme nosuchfs://" in result.stderr


def test_mlflow_stores_on_a_url_are_findings_not_crashes(upload: Callable[[Path, str], str], moto_endpoint: str,
                                                         tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "exp" / "abc" / "metrics").mkdir(parents=True)
    (tree / "exp" / "abc" / "meta.yaml").write_text("run_id: abc\n")
    (tree / "exp" / "abc" / "metrics" / "loss").write_text("1 0.5 1\n")
    (tree / "mlflow.db").write_bytes(b"SQLite format 3\x00" + bytes(100))
    (tree / "metrics.csv").write_bytes((SAMPLE_LOGS / "diverged" / "log.csv").read_bytes())
    url = upload(tree, "t")
    result = _analyze("--no-cache", "--storage-option", f"endpoint_url={moto_endpoint}", url)
    assert result.exit_code == 1, result.output
    runs = {r["run"]: [f["code"] for f in r["findings"]] for r in json.loads(result.stdout)["runs"]}
    assert runs[f"{url}/mlflow.db"] == ["WC001"]
    assert runs[f"{url}/exp/abc"] == ["WC001"]
    assert "WC001" not in runs[f"{url}/metrics.csv"]


# -- large files are read in blocks -----------------------------------------------------------------------

def _big_event_file(path: Path, steps: int) -> int:
    from factories import record_bytes, run_events

    rng = np.random.default_rng(0)
    events = run_events(range(steps), {"train/loss": rng.random(steps), "train/lr": np.linspace(0, 1, steps)})
    path.write_bytes(record_bytes(events))
    return 2 * steps


def test_large_tfrecord_on_s3_is_read_in_bounded_ranges(tmp_path: Path, upload: Callable[[Path, str], str],
                                                        moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs.core

    from warmcheck.readers.tensorboard import read_event_file

    run = tmp_path / "run"
    run.mkdir()
    points = _big_event_file(run / "events.out.tfevents.1.host", 200_000)
    size = (run / "events.out.tfevents.1.host").stat().st_size
    assert size > 2 * storage.BLOCK_SIZE
    url = upload(run, "big") + "/events.out.tfevents.1.host"

    fetched: list[tuple[int, int]] = []
    real_fetch = s3fs.core.S3File._fetch_range

    def spy(self: Any, start: int, end: int) -> bytes:
        data = real_fetch(self, start, end)
        fetched.append((start, len(data)))
        return data

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", spy)
    storage.set_storage_options({"endpoint_url": moto_endpoint})
    read = read_event_file(url)
    assert sum(len(f) for f in read.fragments) == points
    assert not read.findings
    assert len(fetched) >= 2  # not one GET of the whole object
    assert max(n for _, n in fetched) <= 2 * storage.BLOCK_SIZE < size  # a reader chunk plus a read-ahead block
    assert sum(n for _, n in fetched) <= size * 1.5  # each byte fetched about once
