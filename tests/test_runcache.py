"""The cache of analysed runs (warmcheck.runcache): a warm analyze re-analyses only the runs that
changed, and its report is byte-identical to one without any cache."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from warmcheck import cache, runcache
from warmcheck.cli import main
from warmcheck.config import Settings
from warmcheck.model import Run
from warmcheck.pipeline import analyze

SAMPLE_LOGS = Path(__file__).resolve().parent.parent / "sample_logs"
OLD_NS = time.time_ns() - 3600 * 10**9


def backdate(root: Path, ns: int = OLD_NS) -> None:
    """Old mtimes for ``root`` and everything under it (what changed less than 2 s ago is not cached)."""
    for p in [root, *root.rglob("*")]:
        os.utime(p, ns=(ns, ns))


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    shutil.copytree(SAMPLE_LOGS, root)
    for r in range(6):
        d = root / "sweep" / f"run{r}"
        d.mkdir(parents=True)
        (d / "metrics.jsonl").write_text("".join(json.dumps(
            {"step": i, "lr": min(1.0, i / 10) * 1e-3, "loss": 3.0 / (1 + i / 50) + r * 0.01}) + "\n"
            for i in range(200)))
    backdate(root)
    return root


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    cache.set_active(None)


def report(*args: str, fmt: str = "json") -> tuple[int, str]:
    result = CliRunner().invoke(main, ["analyze", "--format", fmt, "--isolated", "-j", "1", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout


def stats() -> runcache.RunCacheStats:
    got = runcache.last_stats()
    assert got is not None
    return got


@pytest.mark.parametrize("fmt", ["json", "text", "junit", "github", "markdown"])
def test_warm_report_is_byte_identical_and_analyses_nothing(logs: Path, tmp_path: Path, fmt: str) -> None:
    cache_dir = str(tmp_path / "cache")
    plain = report(str(logs), "--no-cache", fmt=fmt)
    assert runcache.last_stats() is None
    assert report(str(logs), "--cache-dir", cache_dir, fmt=fmt) == plain  # cold
    cold = stats()
    assert cold.hits == 0 and cold.stored >= 15 and cold.stored == cold.analysed - cold.uncached
    assert report(str(logs), "--cache-dir", cache_dir, fmt=fmt) == plain  # warm
    assert (stats().hits, stats().analysed) == (cold.stored, cold.uncached)
    assert len(list((tmp_path / "cache" / "runs").glob("*.pkl"))) == 1


def test_one_changed_run_is_the_only_one_analysed_again(logs: Path, tmp_path: Path) -> None:
    cache_dir = str(tmp_path / "cache")
    report(str(logs), "--cache-dir", cache_dir)
    cached = stats().stored
    log = logs / "sweep" / "run3" / "metrics.jsonl"
    with log.open("a") as fh:
        fh.write(json.dumps({"step": 200, "lr": 1e-3, "loss": 50.0}) + "\n")
    backdate(log, OLD_NS + 10**9)
    changed = report(str(logs), "--cache-dir", cache_dir)
    assert (stats().analysed - stats().uncached, stats().hits) == (1, cached - 1)
    assert changed == report(str(logs), "--no-cache")
    assert report(str(logs), "--cache-dir", cache_dir) == changed and stats().hits == cached


def test_a_config_file_added_or_edited_beside_a_run_is_seen(logs: Path, tmp_path: Path) -> None:
    cache_dir = str(tmp_path / "cache")
    run = logs / "sweep" / "run2"
    report(str(logs), "--cache-dir", cache_dir)
    (run / "hparams.yaml").write_text("warmup_steps: 150\nmax_steps: 200\n")  # a warmup audit now applies
    backdate(run, OLD_NS + 10**9)
    added = report(str(logs), "--cache-dir", cache_dir)
    assert stats().analysed - stats().uncached == 1 and added == report(str(logs), "--no-cache")
    (run / "hparams.yaml").write_text("warmup_steps: 5\nmax_steps: 200\n")  # same size, same dir mtime
    backdate(run / "hparams.yaml", OLD_NS + 2 * 10**9)
    os.utime(run, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    edited = report(str(logs), "--cache-dir", cache_dir)
    assert stats().analysed - stats().uncached == 1 and edited == report(str(logs), "--no-cache")
    assert edited != added


def test_other_settings_use_another_manifest(logs: Path, tmp_path: Path) -> None:
    cache_dir = str(tmp_path / "cache")
    report(str(logs), "--cache-dir", cache_dir)
    other = report(str(logs), "--cache-dir", cache_dir, "--warmup-steps", "7", "--ignore", "WC1")
    assert stats().hits == 0
    assert other == report(str(logs), "--no-cache", "--warmup-steps", "7", "--ignore", "WC1")
    assert len(list((tmp_path / "cache" / "runs").glob("*.pkl"))) == 2


def test_files_changed_just_now_are_analysed_but_not_stored(logs: Path, tmp_path: Path) -> None:
    cache_dir = str(tmp_path / "cache")
    fresh = logs / "sweep" / "run1" / "metrics.jsonl"
    os.utime(fresh)  # now: a same-size rewrite within the timestamp granularity would go unseen
    report(str(logs), "--cache-dir", cache_dir)
    assert stats().uncached >= 1
    report(str(logs), "--cache-dir", cache_dir)
    assert stats().analysed >= 1


@pytest.mark.parametrize("damage", ["truncate", "truncate_index", "garbage", "other_version", "forbidden_global",
                                    "pieces_out_of_bounds", "pieces_bad_utf8", "malformed_entries"])
def test_a_damaged_or_foreign_manifest_is_ignored_and_rewritten(damage: str, logs: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = tmp_path / "cache"
    plain = report(str(logs), "--no-cache")
    report(str(logs), "--cache-dir", str(cache_dir))
    [manifest] = (cache_dir / "runs").glob("*.pkl")
    data = manifest.read_bytes()
    if damage == "truncate":
        manifest.write_bytes(data[: len(data) // 2])
    elif damage == "truncate_index":
        manifest.write_bytes(data[: len(runcache._HEADER) + 8 + 40])
    elif damage == "garbage":
        manifest.write_bytes(os.urandom(2000))
    elif damage == "other_version":
        head, body, region = split_manifest(data)
        manifest.write_bytes(join_manifest({**head, "code": "0" * 32}, body, region))
    elif damage == "forbidden_global":  # a blob that would run code if it were unpickled by pickle.loads
        head, body, region = split_manifest(data)
        marker = tmp_path / "pwned"
        evil = pickle.dumps(_Evil(str(marker)))
        # the stored pieces dropped, so the runs must be unpickled to be reported
        manifest.write_bytes(join_manifest(head, {k: (c, facts, (len(region), len(evil)), {})
                                                  for k, (c, facts, _, _) in body.items()}, region + evil))
    elif damage == "malformed_entries":  # each run analysed again
        head, body, region = split_manifest(data)
        manifest.write_bytes(join_manifest(head, {k: ("x", [None], 3, {}) for k in body}, region))
    elif damage == "pieces_out_of_bounds":  # spans past the end: the runs are unpickled instead
        head, body, region = split_manifest(data)
        manifest.write_bytes(join_manifest(head, {k: (c, f, b, {p: ((len(region), n), lens) for p, ((_, n), lens)
                                                                    in pieces.items()})
                                                  for k, (c, f, b, pieces) in body.items()}, region))
    else:  # pieces that are not UTF-8: the runs are unpickled instead
        head, body, region = split_manifest(data)
        junk = b"\xff" * 64
        manifest.write_bytes(join_manifest(head, {k: (c, f, b, {p: ((len(region), 64), (64,)) for p in pieces})
                                                  for k, (c, f, b, pieces) in body.items()}, region + junk))
    if damage.startswith("pieces"):
        loads = _count_loads(monkeypatch)
        assert report(str(logs), "--cache-dir", str(cache_dir)) == plain
        assert stats().hits == loads[0] >= 15  # every run taken from its pickled runs, none from the pieces
        assert report(str(logs), "--cache-dir", str(cache_dir)) == plain and stats().hits >= 15
        return
    assert report(str(logs), "--cache-dir", str(cache_dir)) == plain
    if damage == "truncate":  # the index is whole: the runs whose data was cut off are analysed again
        assert stats().analysed > stats().uncached
    else:
        assert stats().hits == 0
    if damage == "forbidden_global":
        assert not (tmp_path / "pwned").exists()
    assert report(str(logs), "--cache-dir", str(cache_dir)) == plain and stats().analysed == stats().uncached


def split_manifest(data: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """A manifest's head, index body and data (see RunCache._read)."""
    start = len(runcache._HEADER) + 8
    (size,) = struct.unpack_from("<Q", data, len(runcache._HEADER))
    head, body = pickle.loads(data[start:start + size])
    return head, body, data[start + size:]


def join_manifest(head: dict[str, Any], body: dict[str, Any], region: bytes) -> bytes:
    index = pickle.dumps((head, body))
    return runcache._HEADER + struct.pack("<Q", len(index)) + index + region


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.path}",)


def test_plots_need_points_so_no_run_cache(logs: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report(str(logs / "healthy_cosine"), "--cache-dir", str(tmp_path / "cache"), "--plot-dir", str(tmp_path / "p"))
    assert runcache.last_stats() is None


def test_spawned_workers_read_through_the_parents_cache(logs: Path, tmp_path: Path) -> None:
    cache.activate(str(tmp_path / "cache"))
    first = analyze([str(logs)], Settings(), jobs=2, start_method="spawn")
    entries = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(entries) >= 15  # written by the workers
    stamps = [p.stat().st_mtime_ns for p in entries]
    again = analyze([str(logs)], Settings(), jobs=2, start_method="spawn")
    assert [p.stat().st_mtime_ns for p in entries] == stamps  # hits: nothing rewritten
    assert [r.name for r in again.runs] == [r.name for r in first.runs]


# ---- report pieces (warmcheck.reporters.pieces): a warm run renders only the runs that changed ----------

PIECED = ["text", "json", "github", "markdown"]


@pytest.mark.parametrize("piece", ["text", "text+colour", "json", "github", "markdown"])
@pytest.mark.parametrize("which", ["tree", "one run"])
def test_pieces_join_to_the_reporters_report(logs: Path, piece: str, which: str) -> None:
    from warmcheck.pipeline import analyze_pieces, exit_code
    from warmcheck.reporters import OutputFormat, make_reporter, pieces

    paths = [str(logs)] if which == "tree" else [str(logs / "loss_spike")]
    outcome = analyze(paths, Settings(), keep_points=False)
    pieced = analyze_pieces(paths, Settings(), piece, pieces.renderer(piece))
    fmt = OutputFormat(piece.split("+")[0])
    joined = pieces.assemble(piece, pieced)
    assert "".join([joined] if isinstance(joined, str) else joined) == make_reporter(
        fmt, colour=piece == "text+colour").render(outcome)
    assert (pieced.n_runs, pieced.counts(), pieced.analysable) == (len(outcome.runs), outcome.counts(),
                                                                    outcome.analysable)
    assert exit_code(pieced) == exit_code(outcome) and pieced.findings == outcome.findings


def _count_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = runcache._loads

    def counting(blob: bytes) -> object:
        calls[0] += 1
        return real(blob)

    monkeypatch.setattr(runcache, "_loads", counting)
    return calls


@pytest.mark.parametrize("fmt", PIECED)
def test_a_warm_run_joins_stored_pieces_without_unpickling_a_run(logs: Path, tmp_path: Path, fmt: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = str(tmp_path / "cache")
    plain = report(str(logs), "--no-cache", fmt=fmt)
    assert report(str(logs), "--cache-dir", cache_dir, fmt=fmt) == plain  # cold: pieces stored
    loads = _count_loads(monkeypatch)
    assert report(str(logs), "--cache-dir", cache_dir, fmt=fmt) == plain
    assert loads[0] == 0 and stats().hits >= 15


def test_each_format_adds_its_pieces_to_the_stored_runs(logs: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = str(tmp_path / "cache")
    plain = {fmt: report(str(logs), "--no-cache", fmt=fmt) for fmt in [*PIECED, "junit"]}
    assert report(str(logs), "--cache-dir", cache_dir, fmt="text") == plain["text"]
    cached = stats().stored
    loads = _count_loads(monkeypatch)
    for fmt in ["json", "github", "junit"]:  # no pieces stored for these yet (JUnit never has any)
        loads[0] = 0
        assert report(str(logs), "--cache-dir", cache_dir, fmt=fmt) == plain[fmt]
        assert loads[0] == cached and stats().hits == cached
    for fmt in ["text", "json", "github"]:  # every format's pieces kept side by side
        loads[0] = 0
        assert report(str(logs), "--cache-dir", cache_dir, fmt=fmt) == plain[fmt] and loads[0] == 0


@pytest.mark.parametrize("fmt", PIECED)
def test_one_changed_run_is_the_only_one_rendered_again(logs: Path, tmp_path: Path, fmt: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from warmcheck.reporters import pieces

    cache_dir = str(tmp_path / "cache")
    before = report(str(logs), "--cache-dir", cache_dir, fmt=fmt)
    log = logs / "sweep" / "run3" / "metrics.jsonl"
    with log.open("a") as fh:
        fh.write(json.dumps({"step": 200, "lr": 1e-3, "loss": float("nan")}) + "\n")  # a finding more
    backdate(log, OLD_NS + 10**9)
    rendered: list[str] = []
    real = pieces.renderer

    def spy(piece: str) -> pieces.Render:
        render = real(piece)

        def spied(run: Run) -> tuple[str, ...]:
            rendered.append(run.name)
            return render(run)

        return spied

    monkeypatch.setattr(pieces, "renderer", spy)
    changed = report(str(logs), "--cache-dir", cache_dir, fmt=fmt)
    assert rendered == [str(log)]  # the run of one file is named after it
    assert changed == report(str(logs), "--no-cache", fmt=fmt) and changed != before


@pytest.mark.parametrize("fmt", PIECED)
def test_pieces_rendered_by_worker_processes_make_the_same_report(logs: Path, tmp_path: Path, fmt: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With -j 2 the workers render their runs and send back text: the parent renders none of them,
    and the report is byte for byte the one rendered in one process, with the cache or without."""
    from warmcheck.reporters import pieces

    plain = report(str(logs), "--no-cache", fmt=fmt)
    in_parent: list[str] = []
    real = pieces.renderer

    def spy(piece: str) -> pieces.Render:
        render = real(piece)
        pid = os.getpid()

        def spied(run: Run) -> tuple[str, ...]:
            if os.getpid() == pid:
                in_parent.append(run.name)
            return render(run)

        return spied

    monkeypatch.setattr(pieces, "renderer", spy)  # forked workers inherit it: only the parent's calls count
    assert report(str(logs), "--no-cache", "-j", "2", fmt=fmt) == plain
    cache_dir = str(tmp_path / "cache")
    assert report(str(logs), "--cache-dir", cache_dir, "-j", "2", fmt=fmt) == plain  # cold: stored from workers
    assert stats().stored >= 15
    assert in_parent == []
    monkeypatch.setattr(pieces, "renderer", real)
    loads = _count_loads(monkeypatch)
    assert report(str(logs), "--cache-dir", cache_dir, "-j", "2", fmt=fmt) == plain  # warm: the stored pieces
    assert loads[0] == 0 and stats().hits >= 15


@pytest.mark.parametrize("fmt", PIECED)
def test_the_closing_line_and_exit_code_are_those_without_the_cache(logs: Path, tmp_path: Path, fmt: str) -> None:
    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, ["analyze", "--format", fmt, "--isolated", "-j", "1", str(logs), *args])
        return result.exit_code, result.stdout, result.stderr.splitlines()[-1]

    plain = run("--no-cache")
    assert plain[2].startswith("warmcheck: ") and "(exit" in plain[2]
    assert run("--cache-dir", str(tmp_path / "cache")) == plain  # cold
    assert run("--cache-dir", str(tmp_path / "cache")) == plain  # warm: from the stored facts
    for fail_on in ("warning", "info", "never"):
        assert run("--cache-dir", str(tmp_path / "cache"), "--fail-on", fail_on) == run("--no-cache", "--fail-on",
                                                                                        fail_on)


@pytest.mark.parametrize("limit", [0, 6])
@pytest.mark.parametrize("fmt", PIECED)
def test_runs_too_large_to_keep_as_pieces_are_rendered_when_joined(logs: Path, tmp_path: Path, fmt: str, limit: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from warmcheck import pipeline

    monkeypatch.setattr(pipeline, "PIECE_MAX_ITEMS", limit)  # 0: every run is too large; 6: some are
    cache_dir = str(tmp_path / "cache")
    plain = report(str(logs), "--no-cache", fmt=fmt)
    assert report(str(logs), "--cache-dir", cache_dir, fmt=fmt) == plain
    stored = stats().stored
    large = {r.name for r in analyze([str(logs)], Settings(), keep_points=False).runs
             if len(r.series) + len(r.findings) > limit}
    assert large and (limit == 0 or len(large) < stored)
    loads = _count_loads(monkeypatch)
    assert report(str(logs), "--cache-dir", cache_dir, fmt=fmt) == plain
    assert 0 < loads[0] < stats().hits or limit == 0 and loads[0] == stats().hits  # only the large runs unpickled


def test_a_warm_run_stats_each_run_directory_once(logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = str(tmp_path / "cache")
    plain = report(str(logs), "--no-cache")
    report(str(logs), "--cache-dir", cache_dir)
    runs = {str(logs / "sweep" / f"run{r}") for r in range(6)}
    seen: list[str] = []
    real = os.stat

    def counting(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path) in runs:
            seen.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    assert report(str(logs), "--cache-dir", cache_dir) == plain
    assert sorted(seen) == sorted(runs)  # by the discovery; the run cache keys on that stat
