"""The per-file cache of reads (warmcheck.cache) for objects read from URLs, against a real S3 endpoint
(moto's server on 127.0.0.1, the real s3fs client over HTTP).

An object's entry is keyed on its URL, its size and its version (the ETag the listing gave: no request to
know it), so a warm run sends no GetObject, a re-uploaded object (a new ETag, even at the same size) is
read again alone, an object without a version that identifies its content (memory://: a creation time at
most) is read every time, and a corrupt entry is ignored and rewritten. Reports always equal --no-cache.
The runs are analysed with ``pipeline.analyze`` (points kept: the cache of analysed runs is not used, as
with --plot-dir), so every read goes through the per-file cache.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from s3env import SAMPLE_LOGS

from warmcheck import cache, pipeline, storage
from warmcheck.cache import CacheStats
from warmcheck.config import Settings
from warmcheck.errors import NoRunsError
from warmcheck.reporters import OutputFormat, make_reporter

render = make_reporter(OutputFormat("json")).render


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every request the s3fs client sends, as (operation, object key)."""
    from aiobotocore import endpoint

    seen: list[tuple[str, str]] = []
    real = endpoint.AioEndpoint._send_request

    async def spy(self: Any, request_dict: Any, operation_model: Any) -> Any:
        seen.append((operation_model.name, str(request_dict.get("url_path", ""))))
        return await real(self, request_dict, operation_model)

    monkeypatch.setattr(endpoint.AioEndpoint, "_send_request", spy)
    return seen


@pytest.fixture
def no_active_cache() -> Iterator[None]:
    previous = cache.active()
    yield
    cache.set_active(previous)


def _run(url: str, settings: Settings, directory: Path | None) -> tuple[str, CacheStats | None]:
    """The JSON report of ``url`` read through a fresh cache in ``directory`` (None: no cache) and that
    cache's stats; a fresh listing, as in a new process."""
    storage.forget_listings()
    store = cache.activate(str(directory) if directory is not None else None)
    report = render(pipeline.analyze([url], settings, jobs=1))
    return report, (store.stats if store is not None else None)


def _gets(requests: list[tuple[str, str]]) -> Counter[str]:
    """How many GetObject requests each object got."""
    return Counter(key.lstrip("/") for op, key in requests if op == "GetObject")


def _log_gets(requests: list[tuple[str, str]], before: Counter[str] | None = None) -> Counter[str]:
    """The GETs of ``requests`` but those of ``before`` (a warm run with nothing changed: none)."""
    return _gets(requests) - (before or Counter())


@pytest.fixture
def s3_logs(upload: Callable[[Path, str], str], moto_endpoint: str) -> tuple[str, Settings]:
    return upload(SAMPLE_LOGS, "team/sample_logs"), Settings(storage_options={"endpoint_url": moto_endpoint})


def test_warm_run_sends_no_get_and_the_report_is_the_uncached_one(
        s3_logs: tuple[str, Settings], tmp_path: Path, requests: list[tuple[str, str]],
        no_active_cache: None) -> None:
    url, settings = s3_logs
    plain, _ = _run(url, settings, None)
    assert json.loads(plain)["runs"]
    requests.clear()
    cold, stats = _run(url, settings, tmp_path / "c")
    assert cold == plain
    assert stats is not None and stats.stored > 5 and stats.hits == 0 and stats.uncached == 0
    cold_gets = _gets(requests)
    assert "HeadObject" not in {op for op, _ in requests}  # the version is the listing's ETag: no request
    requests.clear()
    warm, stats = _run(url, settings, tmp_path / "c")
    assert warm == plain  # byte for byte
    assert stats is not None and stats.hits > 5 and stats.read == 0
    assert "HeadObject" not in {op for op, _ in requests}
    # no GET at all: not of a log, nor of a CSV's head (discovery's sniff said yes for this ETag before),
    # nor of the run config file beside the logs (hparams.yaml: its bytes are kept)
    assert _gets(requests) == Counter() and stats.bytes_known == 1
    assert stats.sniffs_known == sum(1 for k in cold_gets if k.endswith(".csv")) == 3
    assert sum(cold_gets.values()) == stats.hits + 2 + 1  # + 2 heads fetched cold, + the config file


def test_a_reuploaded_object_is_the_only_one_read_again(
        s3_logs: tuple[str, Settings], s3: Any, tmp_path: Path, requests: list[tuple[str, str]],
        no_active_cache: None) -> None:
    url, settings = s3_logs
    _run(url, settings, tmp_path / "c")
    requests.clear()
    _run(url, settings, tmp_path / "c")
    unchanged = _gets(requests)
    victim = f"{url}/diverged/log.csv"
    s3.pipe(victim, s3.cat(victim) + b"9999,0.5,1e-4\n")  # appended: a new object, a new ETag
    requests.clear()
    warm, stats = _run(url, settings, tmp_path / "c")
    assert stats is not None and stats.read == stats.misses == stats.stored == 1 and stats.resumed == 0
    # one GET: the head sniffed by discovery is read on into the whole object (the same open file's blocks)
    # or, if not, two; never any other object
    assert set(_log_gets(requests, unchanged)) == {"team/sample_logs/diverged/log.csv"}
    assert warm == _run(url, settings, None)[0]


def test_an_object_replaced_at_the_same_size_is_a_miss(
        s3_logs: tuple[str, Settings], s3: Any, tmp_path: Path, requests: list[tuple[str, str]],
        no_active_cache: None) -> None:
    url, settings = s3_logs
    victim = f"{url}/diverged/log.csv"
    before = s3.cat(victim)
    _run(url, settings, tmp_path / "c")
    requests.clear()
    _run(url, settings, tmp_path / "c")
    unchanged = _gets(requests)
    lines = before.split(b"\n")
    changed = b"\n".join([*lines[:-3], lines[-2], lines[-3], lines[-1]])  # two rows swapped: same bytes, same size
    assert len(changed) == len(before) and changed != before
    s3.pipe(victim, changed)
    requests.clear()
    warm, stats = _run(url, settings, tmp_path / "c")
    assert stats is not None and stats.misses == stats.read == 1 and stats.hits > 5
    # one GET: the head sniffed by discovery is read on into the whole object (the same open file's blocks)
    # or, if not, two; never any other object
    assert set(_log_gets(requests, unchanged)) == {"team/sample_logs/diverged/log.csv"}
    assert warm == _run(url, settings, None)[0]


def test_a_corrupt_entry_is_ignored_and_rewritten(
        s3_logs: tuple[str, Settings], tmp_path: Path, requests: list[tuple[str, str]],
        no_active_cache: None) -> None:
    url, settings = s3_logs
    plain, _ = _run(url, settings, None)
    _, cold = _run(url, settings, tmp_path / "c")
    assert cold is not None
    requests.clear()
    _run(url, settings, tmp_path / "c")
    unchanged = _gets(requests)
    every = sorted((tmp_path / "c").rglob("*.npz"))
    kept = [p for p in every if b'"format": "bytes"' in p.read_bytes()]  # hparams.yaml's bytes
    entries = [p for p in every if p not in kept]
    assert len(entries) == cold.stored and len(kept) == 1
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # truncated
    entries[1].write_bytes(b"not an npz at all")
    kept[0].write_bytes(kept[0].read_bytes()[:-10])
    requests.clear()
    warm, stats = _run(url, settings, tmp_path / "c")
    assert warm == plain
    assert stats is not None and stats.rejected == 2 and stats.read == 2 and stats.stored == 2
    assert stats.bytes_known == 0 and sum(_log_gets(requests, unchanged).values()) == 3
    again, stats = _run(url, settings, tmp_path / "c")
    assert again == plain and stats is not None and stats.read == 0 and stats.bytes_known == 1


def test_a_url_without_a_version_is_read_every_time(tmp_path: Path, no_active_cache: None) -> None:
    """memory:// gives a size and a creation time, which a file rewritten in place keeps: not an identity."""
    mem = fsspec.filesystem("memory")
    for path in sorted((SAMPLE_LOGS / "diverged").rglob("*")):
        if path.is_file():
            mem.pipe(f"/wc-cache/diverged/{path.relative_to(SAMPLE_LOGS / 'diverged').as_posix()}",
                     path.read_bytes())
    try:
        url = "memory://wc-cache/diverged"
        plain, _ = _run(url, Settings(), None)
        for _ in range(2):
            report, stats = _run(url, Settings(), tmp_path / "c")
            assert report == plain
            assert stats is not None and stats.hits == stats.stored == 0 and stats.read == stats.uncached > 0
        assert not list((tmp_path / "c").rglob("*.npz"))
    finally:
        mem.rm("/wc-cache", recursive=True)


def test_which_versions_identify_an_object() -> None:
    from warmcheck.cache import _version_time

    assert _version_time('ETag="abc"') is None and _version_time("generation=17") is None
    assert _version_time("LastModified=1700000000.5") == 1_700_000_000_500_000_000
    assert _version_time("updated=2024-01-02T03:04:05Z") == 1_704_164_645_000_000_000
    for unknown in ("", "created=1700000000.5", "mtime=soon", "size=12"):
        assert _version_time(unknown) == "unknown"


def test_an_object_written_less_than_racy_ns_ago_with_only_a_time_is_not_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_active_cache: None) -> None:
    """An object whose version is only its write time (no ETag) is cached only once that time is
    RACY_NS old, like a local file; then it is a hit."""
    import time

    mem = fsspec.filesystem("memory")
    mem.pipe("/wc-racy/log.csv", (SAMPLE_LOGS / "diverged" / "log.csv").read_bytes())
    written = {"t": time.time()}

    def stat(path: str) -> storage.FileStat:
        return storage.FileStat(mem.info(path.split("://", 1)[1])["size"], f"mtime={written['t']}")

    monkeypatch.setattr(storage, "stat", stat)
    monkeypatch.setattr(storage, "known_stat", lambda path: None)  # (the listing gives its creation time)
    try:
        url = "memory://wc-racy/log.csv"
        plain, _ = _run(url, Settings(), None)
        report, stats = _run(url, Settings(), tmp_path / "c")
        assert report == plain and stats is not None and stats.stored == 0 and stats.uncached == 1
        written["t"] -= 10
        report, stats = _run(url, Settings(), tmp_path / "c")
        assert report == plain and stats is not None and stats.stored == 1
        report, stats = _run(url, Settings(), tmp_path / "c")
        assert report == plain and stats is not None and stats.hits == 1 and stats.read == 0
    finally:
        mem.rm("/wc-racy", recursive=True)


def test_dask_tasks_read_through_the_clients_cache_dir_with_the_listing_they_carry(
        s3_logs: tuple[str, Settings], tmp_path: Path, requests: list[tuple[str, str]],
        no_active_cache: None) -> None:
    """What a worker does (dask_engine.analyze_chunk, in this process): no listing of its own, the task's
    Listing (with the ETags) installed; the second task over the same objects sends no GetObject."""
    from warmcheck import dask_engine
    from warmcheck.readers import discover, is_training_csv
    from warmcheck.reporters.json import run_dict

    url, settings = s3_logs
    storage.set_storage_options(settings.storage_options)
    specs = [dask_engine.absolute(s) for s in discover([url], is_training_csv).runs]
    listing = dask_engine._ListingIndex().for_specs(specs)
    assert listing is not None
    storage.forget_listings()  # as on a worker
    cache.set_active(None)
    directory = str(tmp_path / "c")
    requests.clear()
    cold = dask_engine.analyze_chunk(specs, settings, False, directory, listing)
    cold_gets = _gets(requests)
    assert os.listdir(directory)
    requests.clear()
    warm = dask_engine.analyze_chunk(specs, settings, False, directory, listing)
    assert _gets(requests) == Counter(), _gets(requests)
    assert requests == []  # no HEAD: the task's Listing has the ETags
    assert sum((cold_gets - _gets(requests)).values()) >= 10
    assert [[run_dict(r) for r in runs] for runs in warm] == [[run_dict(r) for r in runs] for runs in cold]
    assert storage.known_stat(listing.entries[0][0]) is None


def test_discoverys_csv_sniff_remembers_a_yes_only(
        upload: Callable[[Path, str], str], moto_endpoint: str, s3: Any, tmp_path: Path,
        requests: list[tuple[str, str]], no_active_cache: None) -> None:
    """A CSV that is not a training log is sniffed on every run (a no is never stored: a failed sniff says
    no too); a yes is kept for that ETag only; a corrupt sniff entry is ignored."""
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "people.csv").write_text("name,age\nada,36\n")
    (tree / "log.csv").write_bytes((SAMPLE_LOGS / "diverged" / "log.csv").read_bytes())
    url = upload(tree, "t")
    settings = Settings(storage_options={"endpoint_url": moto_endpoint})
    plain, _ = _run(url, settings, None)
    _run(url, settings, tmp_path / "c")
    requests.clear()
    warm, stats = _run(url, settings, tmp_path / "c")
    assert warm == plain and stats is not None and stats.sniffs_known == 1 and stats.hits == 1
    assert _gets(requests) == Counter({"t/people.csv": 1})
    sniffs = list((tmp_path / "c").rglob("*.sniff.json"))
    assert len(sniffs) == 1
    sniffs[0].write_text('{"key": ')
    requests.clear()
    again, stats = _run(url, settings, tmp_path / "c")
    assert again == plain and stats is not None and stats.sniffs_known == 0 and stats.hits == 1
    assert _gets(requests) == Counter({"t/people.csv": 1, "t/log.csv": 1})
    s3.pipe(f"{url}/log.csv", b"name,age\nbob,7\n")  # another object under the key: no longer a log...
    for directory in (tmp_path / "c", None):  # ...though its old ETag's yes is stored
        with pytest.raises(NoRunsError):
            _run(url, settings, directory)


def test_warm_cli_run_with_plot_dir_and_forked_workers_needs_no_object(
        upload: Callable[[Path, str], str], moto_endpoint: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, no_active_cache: None) -> None:
    """``analyze --plot-dir`` (the cache of analysed runs is not used: every run is read) with 2 forked
    workers: warm, the endpoint goes silent right after the listing and the report is still the one of
    --no-cache (no worker sent a request: any would time out, exit 2). Cold, the same silence is exit 2."""
    import shutil

    from click.testing import CliRunner
    from s3env import FAST_FAIL, BlackHole

    from warmcheck.cli import main

    url = upload(SAMPLE_LOGS, "logs")
    proxy = BlackHole.proxy_to(moto_endpoint)
    real_discover = pipeline.discover

    def discover_then_hang(*args: Any, **kwargs: Any) -> Any:
        found = real_discover(*args, **kwargs)
        proxy.hang()
        return found

    def analyze(*args: str) -> Any:
        return CliRunner().invoke(main, ["analyze", "--format", "json", "-q", "--jobs", "2", "--storage-option",
                                         f"endpoint_url=http://127.0.0.1:{proxy.port}", *FAST_FAIL, *args, url])

    try:
        plain = analyze("--no-cache")
        assert plain.exit_code == 1, plain.output
        cold = analyze("--cache-dir", str(tmp_path / "c"), "--plot-dir", str(tmp_path / "p1"))
        assert cold.stdout == plain.stdout
        assert len(list((tmp_path / "c").rglob("*.npz"))) >= 10  # written by the workers
        monkeypatch.setattr(pipeline, "discover", discover_then_hang)
        warm = analyze("--cache-dir", str(tmp_path / "c"), "--plot-dir", str(tmp_path / "p2"))
        assert warm.exit_code == 1, warm.output
        assert warm.stdout == plain.stdout
        plots = sorted(p.name for p in (tmp_path / "p1").iterdir())
        assert len(plots) > 5 and sorted(p.name for p in (tmp_path / "p2").iterdir()) == plots
        proxy.forward_to = ("127.0.0.1", int(moto_endpoint.rsplit(":", 1)[1]))
        storage.forget_listings()
        shutil.rmtree(tmp_path / "c")
        cold_again = analyze("--cache-dir", str(tmp_path / "c"), "--plot-dir", str(tmp_path / "p3"))
        assert cold_again.exit_code == 2 and "object storage did not answer" in cold_again.stderr
    finally:
        proxy.close()
