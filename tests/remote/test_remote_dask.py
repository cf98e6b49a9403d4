"""Runs on object storage analysed on a dask cluster: a real moto S3 server on 127.0.0.1, the real s3fs
client, and a real dask.distributed LocalCluster (a scheduler and 2 worker processes). The workers read
the objects themselves, with the storage options the client was given (they carry no options of their
own); an object deleted after the listing is one WC001; an endpoint that stops answering is exit 2."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from s3env import AWS_ENV as _AWS_ENV
from s3env import FAST_FAIL, SAMPLE_LOGS, BlackHole

from warmcheck import pipeline

pytest.importorskip("distributed", reason="the dask extra (warmcheck[dask]) is not installed")

from distributed import LocalCluster  # noqa: E402

from warmcheck.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A scheduler and 2 single-threaded worker processes on 127.0.0.1; its address. The workers'
    environment has moto's dummy credentials (as a real worker has its own), never an endpoint."""
    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=0,
                      dashboard_address=":0", silence_logs=50, env=dict(_AWS_ENV))
    try:
        yield lc.scheduler_address
    finally:
        lc.close()


def _analyze(*args: str) -> Result:
    return CliRunner().invoke(main, ["analyze", "--format", "json", "-q", "--no-cache", *args],
                              catch_exceptions=False)


def test_sample_logs_on_s3_analysed_on_the_cluster_give_the_local_report(
        cluster: str, upload: Callable[[Path, str], str], moto_endpoint: str) -> None:
    url = upload(SAMPLE_LOGS, "team/sample_logs")
    endpoint = ("--storage-option", f"endpoint_url={moto_endpoint}")
    here = _analyze("--jobs", "1", *endpoint, url)
    there = _analyze("--scheduler", cluster, *endpoint, url)
    assert there.exit_code == here.exit_code == 1, there.stderr
    assert there.stdout == here.stdout  # byte for byte
    disk = _analyze("--jobs", "1", str(SAMPLE_LOGS))
    assert there.stdout.replace(url, str(SAMPLE_LOGS)) == disk.stdout
    runs = json.loads(there.stdout)["runs"]
    assert len(runs) >= 12 and all(r["series"] for r in runs if r["run"].endswith(("_tb", "log.csv")))
    assert not [f for r in runs for f in r["findings"] if f["code"] in ("WC001", "WC021")]


def test_an_object_deleted_after_the_listing_is_one_wc001_on_the_cluster(
        cluster: str, upload: Callable[[Path, str], str], moto_endpoint: str, s3: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = upload(SAMPLE_LOGS, "sample_logs")
    victim = f"{url}/diverged/log.csv"
    real_discover = pipeline.discover

    def discover_then_delete(*args: Any, **kwargs: Any) -> Any:
        found = real_discover(*args, **kwargs)
        s3.rm(victim)
        return found

    monkeypatch.setattr(pipeline, "discover", discover_then_delete)
    result = _analyze("--scheduler", cluster, "--storage-option", f"endpoint_url={moto_endpoint}", url)
    assert result.exit_code == 1, result.stderr
    monkeypatch.undo()
    report = json.loads(result.stdout.replace(url, str(SAMPLE_LOGS)))
    runs = {r["run"]: r for r in report["runs"]}
    gone = runs.pop(str(SAMPLE_LOGS / "diverged" / "log.csv"))
    assert [f["code"] for f in gone["findings"]] == ["WC001"] and gone["series"] == []
    expected = json.loads(_analyze("--jobs", "1", str(SAMPLE_LOGS)).stdout)
    others = {r["run"]: r for r in expected["runs"] if r["run"] != str(SAMPLE_LOGS / "diverged" / "log.csv")}
    assert runs == others  # the rest of the report is complete


def test_an_endpoint_that_stops_answering_is_exit_2_not_a_finding_per_run(
        cluster: str, upload: Callable[[Path, str], str], moto_endpoint: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers' requests time out: the StorageError raised in a task reaches the client as exit 2
    with the storage message, not as WC021 on every run, and without a traceback."""
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
        result = CliRunner().invoke(main, ["analyze", "--format", "json", "-q", "--no-cache", "--scheduler", cluster,
                                           "--storage-option", f"endpoint_url=http://127.0.0.1:{proxy.port}",
                                           *FAST_FAIL, url])
    finally:
        proxy.close()
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert any(line.startswith("warmcheck: error: ") and "object storage did not answer" in line
               for line in result.stderr.splitlines()), result.stderr
    assert "Traceback" not in result.stderr and "WC021" not in result.stderr


def test_a_task_carries_the_listing_of_its_runs_directories(
        upload: Callable[[Path, str], str], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker has no listing of its own: the task brings what the client's listing says about its runs'
    directories, so the worker makes one GET per object (no HEAD to open it, no request per config-file
    name), and the report is the same as when the worker asks."""
    from aiobotocore import endpoint

    from warmcheck import dask_engine, storage
    from warmcheck.config import Settings
    from warmcheck.readers import discover, is_training_csv
    from warmcheck.reporters.json import run_dict

    url = upload(SAMPLE_LOGS, "sample_logs")
    settings = Settings(storage_options={"endpoint_url": moto_endpoint})
    storage.set_storage_options(settings.storage_options)
    specs = [dask_engine.absolute(s) for s in discover([url], is_training_csv).runs]
    listing = dask_engine._ListingIndex().for_specs(specs)
    assert listing is not None and len(listing.prefixes) == len(specs)
    storage.forget_listings()  # as on a worker

    calls: list[str] = []
    real = endpoint.AioEndpoint._send_request

    async def spy(self: Any, request_dict: Any, operation_model: Any) -> Any:
        calls.append(operation_model.name)
        return await real(self, request_dict, operation_model)

    monkeypatch.setattr(endpoint.AioEndpoint, "_send_request", spy)
    informed = dask_engine.analyze_chunk(specs, settings, False, None, listing)
    objects = sum(len(dask_engine._all_files(s)) for s in specs)
    assert set(calls) == {"GetObject"} and objects <= len(calls) <= objects + 2, calls  # + config files read
    assert storage.known_stat(listing.entries[0][0]) is None  # nothing left behind on the worker
    calls.clear()
    asking = dask_engine.analyze_chunk(specs, settings, False, None, None)
    assert {"HeadObject", "GetObject"} <= set(calls)  # what the listing saves
    assert [[run_dict(r) for r in runs] for runs in informed] == [[run_dict(r) for r in runs] for runs in asking]
