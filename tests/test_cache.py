"""The cache of reads (warmcheck.cache): same reports cold and warm, only changed files read, and an
entry that is corrupt, truncated or from another version never trusted."""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from warmcheck import cache, pipeline, readers
from warmcheck.cli import main
from warmcheck.findings import make
from warmcheck.model import Format, Fragment, SourceInfo, SourceRead, no_wall_times

SAMPLE_LOGS = Path(__file__).resolve().parent.parent / "sample_logs"
OLD_NS = (time.time_ns() - 3600 * 10**9)  # an hour ago: well outside the "racily clean" window


def backdate(root: Path, ns: int = OLD_NS) -> None:
    """Give every file under ``root`` an old mtime (files younger than 2 s are read but not cached)."""
    for p in [root] if root.is_file() else root.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(ns, ns))


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    shutil.copytree(SAMPLE_LOGS, root)
    (root / "jsonl_run").mkdir()
    (root / "jsonl_run" / "metrics.jsonl").write_text("".join(
        json.dumps({"step": i, "lr": min(1.0, i / 10) * 1e-3, "loss": 3.0 / (1 + i / 50)}) + "\n" for i in range(200)))
    backdate(root)
    return root


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the files each reader really reads (a cache hit reads none)."""
    seen: Counter[str] = Counter()
    real = readers.reader_for

    def counting(fmt: Format) -> Callable[[str], SourceRead]:
        fn = real(fmt)

        def read(path: str) -> SourceRead:
            seen[os.path.basename(path)] += 1
            return fn(path)
        return read
    monkeypatch.setattr(readers, "reader_for", counting)
    return seen


@pytest.fixture(autouse=True)
def _no_cache_left_active(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    yield
    cache.set_active(None)


@pytest.fixture(autouse=True)
def _no_run_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the cache of reads: every run is analysed (tests/test_runcache.py covers
    the cache of analysed runs in front of it)."""
    monkeypatch.setattr(pipeline, "analyse_with_cache", lambda memo, specs: ({}, {}))


def report(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["analyze", "--format", "json", "--isolated", "-j", "1", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout


def entries(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.npz"))


def test_cold_and_warm_reports_are_byte_equal_and_warm_reads_nothing(logs: Path, tmp_path: Path,
                                                                     reads: Counter[str]) -> None:
    cache_dir = tmp_path / "cache"
    plain = report(str(logs), "--no-cache")
    files = sum(reads.values())
    assert files >= 14 and not cache_dir.exists()
    reads.clear()
    assert report(str(logs), "--cache-dir", str(cache_dir)) == plain  # cold
    assert sum(reads.values()) == files
    assert len(entries(cache_dir)) == files
    reads.clear()
    assert report(str(logs), "--cache-dir", str(cache_dir)) == plain  # warm
    assert sum(reads.values()) == 0


def test_only_the_changed_file_is_read_again(logs: Path, tmp_path: Path, reads: Counter[str]) -> None:
    cache_dir = str(tmp_path / "cache")
    report(str(logs), "--cache-dir", cache_dir)
    log = logs / "diverged" / "log.csv"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:200]))  # the run is cut short: the report must change
    backdate(log, OLD_NS + 10**9)
    reads.clear()
    changed = report(str(logs), "--cache-dir", cache_dir)
    assert dict(reads) == {"log.csv": 1}
    assert changed == report(str(logs), "--no-cache")
    reads.clear()
    assert report(str(logs), "--cache-dir", cache_dir) == changed and not reads  # the new state was cached


def test_same_size_rewrite_is_a_miss_even_with_the_old_mtime(logs: Path, tmp_path: Path,
                                                            reads: Counter[str]) -> None:
    cache_dir = str(tmp_path / "cache")
    report(str(logs), "--cache-dir", cache_dir)
    log = logs / "jsonl_run" / "metrics.jsonl"
    text = log.read_text()
    log.write_text(text.replace('"loss": 3.0,', '"loss": 9.0,'))  # same size, another value
    assert len(log.read_text()) == len(text)
    backdate(log)  # the very same mtime as before: the inode change time still differs
    reads.clear()
    cached = report(str(logs), "--cache-dir", cache_dir)
    assert dict(reads) == {"metrics.jsonl": 1}
    assert cached == report(str(logs), "--no-cache")


def test_a_file_written_just_now_is_read_but_not_cached(tmp_path: Path, reads: Counter[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "m.jsonl").write_text("".join(json.dumps({"step": i, "loss": 1.0 / (i + 1)}) + "\n" for i in range(50)))
    cache_dir = tmp_path / "cache"
    first = report(str(run), "--cache-dir", str(cache_dir))
    assert entries(cache_dir) == []  # could still change within the filesystem's timestamp granularity
    backdate(run)
    assert report(str(run), "--cache-dir", str(cache_dir)) == first
    assert len(entries(cache_dir)) == 1


def _corruptions() -> dict[str, Callable[[Path], None]]:
    def truncate(p: Path) -> None:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])

    def empty(p: Path) -> None:
        p.write_bytes(b"")

    def garbage(p: Path) -> None:
        p.write_bytes(os.urandom(4096))

    def flip_a_value(p: Path) -> None:  # a bit flipped inside the stored values: the zip CRC catches it
        data = bytearray(p.read_bytes())
        with zipfile.ZipFile(p) as z:
            info = z.getinfo("values.npy")
        at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 3
        data[at] ^= 0x40
        p.write_bytes(bytes(data))

    def _rewrite_header(p: Path, change: Callable[[dict[str, Any]], None]) -> None:
        with np.load(p) as npz:
            arrays = {k: npz[k] for k in npz.files}
        header = json.loads(arrays["header"].tobytes())
        change(header)
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)

    def older_format(p: Path) -> None:
        _rewrite_header(p, lambda h: h["key"].update(cache_format=0))

    def other_code(p: Path) -> None:  # written by another warmcheck version
        _rewrite_header(p, lambda h: h["key"].update(code="0" * 32))

    def wrong_lengths(p: Path) -> None:
        _rewrite_header(p, lambda h: h["fragments"][0].__setitem__(1, h["fragments"][0][1] + 1))

    def header_not_json(p: Path) -> None:
        with np.load(p) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["header"] = np.frombuffer(b"{not json", dtype=np.uint8)
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)

    return {f.__name__: f for f in (truncate, empty, garbage, flip_a_value, older_format, other_code,
                                    wrong_lengths, header_not_json)}


@pytest.mark.parametrize("damage", sorted(_corruptions()))
def test_a_damaged_or_foreign_entry_is_ignored_and_rewritten(damage: str, logs: Path, tmp_path: Path,
                                                              reads: Counter[str]) -> None:
    cache_dir = tmp_path / "cache"
    target = logs / "healthy_cosine"
    plain = report(str(target), "--no-cache")
    assert report(str(target), "--cache-dir", str(cache_dir)) == plain
    [entry] = entries(cache_dir)
    _corruptions()[damage](entry)
    reads.clear()
    assert report(str(target), "--cache-dir", str(cache_dir)) == plain
    assert sum(reads.values()) == 1
    store = cache.ReadCache(str(cache_dir))
    read = store.read(next(str(p) for p in target.iterdir() if "tfevents" in p.name), Format.TFEVENTS,
                      lambda path: pytest.fail("the rewritten entry should have been used"))  # type: ignore[arg-type, return-value]
    assert store.stats.hits == 1 and read.info.records > 0


def test_cache_problems_never_fail_the_analysis(logs: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    plain = report(str(logs), "--no-cache")
    assert report(str(logs), "--cache-dir", str(blocker / "sub")) == plain


def test_entry_names_are_hashes_inside_the_cache_dir(tmp_path: Path) -> None:
    store = cache.ReadCache(str(tmp_path / "cache"))
    for hostile in ["../../etc/passwd", "a\nb.csv", "/abs/\udc80x.jsonl", "C:\\x.csv", "x" * 5000]:
        entry = Path(store.entry_path(hostile, Format.CSV))
        assert entry.parent.parent == tmp_path / "cache"
        assert len(entry.stem) == 40 and all(c in "0123456789abcdef" for c in entry.stem)


def test_size_limits_are_part_of_the_key(logs: Path, tmp_path: Path) -> None:
    cache_dir = str(tmp_path / "cache")
    target = str(logs / "diverged")
    report(target, "--cache-dir", cache_dir)
    limited = report(target, "--cache-dir", cache_dir, "--max-file-size", "100")
    assert limited == report(target, "--no-cache", "--max-file-size", "100")
    assert "WC025" in limited[1]


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("step,loss\n")
    backdate(path)
    fragments = [Fragment("loss", np.arange(5, dtype=np.int64), np.array([1, np.nan, np.inf, -np.inf, 2.5]),
                          no_wall_times(5)),
                 Fragment("lr", np.array([3, 1], dtype=np.int64), np.array([0.1, 0.2]), np.array([10.0, np.nan])),
                 Fragment("empty", np.zeros(0, np.int64), np.zeros(0), np.zeros(0))]
    original = SourceRead(SourceInfo(str(path), Format.CSV, 7, 2), fragments,
                          {"csv": {"delimiter": ",", "text_columns": ["a"], "none": None}},
                          [make("WC003", "cut", source=str(path), step=4, details={"offset": 12, "kind": "x"})],
                          (3, 9), (12.5, "name"))
    store = cache.ReadCache(str(tmp_path / "cache"))
    store.read(str(path), Format.CSV, lambda p: original)
    back = store.read(str(path), Format.CSV, lambda p: pytest.fail("not a hit"))  # type: ignore[arg-type, return-value]
    assert (store.stats.stored, store.stats.hits, store.stats.read) == (1, 1, 1)
    assert (back.info, back.metadata, list(back.findings), back.restart_steps, back.sort_key) == (
        original.info, original.metadata, list(original.findings), original.restart_steps, original.sort_key)
    for a, b in zip(back.fragments, fragments, strict=True):
        assert a.tag == b.tag and a.steps.dtype == np.int64
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.wall_times, b.wall_times)
    assert back.fragments[0].wall_times.strides == (0,)  # still the memory-free view


@pytest.mark.parametrize("metadata", [{"t": (1, 2)}, {"nan": float("nan")}, {"obj": object()}])
def test_a_read_that_json_would_change_is_not_cached(metadata: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("{}\n")
    backdate(path)
    store = cache.ReadCache(str(tmp_path / "cache"))
    read = SourceRead(SourceInfo(str(path), Format.JSONL), metadata=metadata)
    assert store.read(str(path), Format.JSONL, lambda p: read) is read
    assert store.stats.uncached == 1 and not entries(tmp_path / "cache")


def test_cache_dir_from_the_config_file_is_relative_to_it(logs: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.warmcheck]\ncache-dir = ".wc-cache"\n')
    result = CliRunner().invoke(main, ["analyze", "--config", str(project / "pyproject.toml"), "-q",
                                       str(logs / "healthy_cosine")])
    assert result.exit_code == 0, result.output
    assert len(entries(project / ".wc-cache")) == 1


def test_environment_and_default_dirs(logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = str(logs / "healthy_cosine")
    report(target)  # default: the user cache dir ($XDG_CACHE_HOME/warmcheck here)
    assert len(entries(tmp_path / "xdg-cache" / "warmcheck")) == 1
    monkeypatch.setenv("WARMCHECK_CACHE_DIR", str(tmp_path / "env-cache"))
    report(target)
    assert len(entries(tmp_path / "env-cache")) == 1
    monkeypatch.setenv("WARMCHECK_NO_CACHE", "1")
    monkeypatch.setenv("WARMCHECK_CACHE_DIR", str(tmp_path / "unused"))
    report(target)
    assert not (tmp_path / "unused").exists()


def test_the_cli_leaves_no_cache_active(logs: Path, tmp_path: Path) -> None:
    report(str(logs / "healthy_cosine"), "--cache-dir", str(tmp_path / "cache"))
    assert cache.active() is None


def test_mlflow_stores_and_directories_are_not_cached(tmp_path: Path) -> None:
    store = cache.ReadCache(str(tmp_path / "cache"))
    read = SourceRead(SourceInfo(str(tmp_path), Format.MLFLOW))
    assert store.read(str(tmp_path), Format.MLFLOW, lambda p: read) is read
    assert store.read(str(tmp_path), Format.CSV, lambda p: read) is read  # a directory, not a file
    assert store.stats.uncached == 2 and not (tmp_path / "cache").exists()
