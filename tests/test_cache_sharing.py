"""Two warmcheck processes sharing one cache directory: whole entries only, same reports."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from warmcheck import cache
from warmcheck.model import Format, Fragment, SourceInfo, SourceRead

OLD_NS = time.time_ns() - 3600 * 10**9
KEY = {"cache_format": cache.CACHE_FORMAT, "code": "test", "format": "csv"}


def _tree(root: Path, runs: int) -> None:
    for r in range(runs):
        d = root / f"run{r:03d}"
        d.mkdir(parents=True)
        rows = "".join(f"{i},{min(1.0, i / 20) * 1e-3},{2.0 / (1 + i / 30) + (r % 7) * 0.01}\n" for i in range(120))
        (d / "log.csv").write_text("step,lr,loss\n" + rows)
    for p in root.rglob("*"):
        os.utime(p, ns=(OLD_NS, OLD_NS))


def _analyze(root: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "warmcheck", "analyze", str(root), "--isolated", "-q",
                             "-j", "1", "--format", "json", *flags], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "XDG_CACHE_HOME": str(root.parent / "xdg")})


def test_two_processes_filling_one_cache_dir_report_the_same(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    _tree(root, 120)
    cache_dir = tmp_path / "cache"
    plain = _analyze(root, "--no-cache").communicate()[0]
    both = [_analyze(root, "--cache-dir", str(cache_dir)) for _ in range(2)]  # cold, at the same time
    assert [p.communicate()[0] for p in both] == [plain, plain]
    assert [p.returncode for p in both] == [0, 0]
    names = [p.name for p in cache_dir.rglob("*") if p.is_file()]
    assert not [n for n in names if n.startswith(".tmp")]  # no temporary file left behind
    assert len([n for n in names if n.endswith(".npz")]) == 120  # the reads
    assert len([p for p in cache_dir.glob("runs/*.pkl")]) == 1  # the analysed runs: one manifest
    assert _analyze(root, "--cache-dir", str(cache_dir)).communicate()[0] == plain  # warm
    assert json.loads(plain)["runs"]


def _payload(version: int) -> dict[str, np.ndarray]:
    n = 50_000 + version  # big enough that a write is not one syscall
    read = SourceRead(SourceInfo("x.csv", Format.CSV, n), [Fragment("loss", np.arange(n, dtype=np.int64),
                                                                    np.full(n, float(version)), np.zeros(n))])
    payload = cache._encode(read, KEY)
    assert payload is not None
    return payload


def _writer(entry: str, rounds: int) -> None:
    for i in range(rounds):
        assert cache._write(entry, _payload(i % 3))


def _reader(entry: str, writers_done: Any, out: multiprocessing.Queue[tuple[int, int]]) -> None:
    seen = bad = 0
    while not writers_done.is_set():  # read for as long as anyone writes, however slowly they start
        got = cache._load(entry, KEY)
        if isinstance(got, SourceRead):
            frag = got.fragments[0]
            version = len(frag) - 50_000
            bad += int(not (0 <= version < 3 and np.all(frag.values == version)))
            seen += 1
        elif got != "missing":
            bad += 1
    out.put((seen, bad))


def test_a_reader_never_sees_a_partly_written_entry(tmp_path: Path) -> None:
    entry = str(tmp_path / "cache" / "ab" / "entry.npz")
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[tuple[int, int]] = ctx.Queue()
    writers_done = ctx.Event()
    assert cache._write(entry, _payload(0))  # readers started before the writers find a whole entry
    writers = [ctx.Process(target=_writer, args=(entry, 150)) for _ in range(2)]
    readers = [ctx.Process(target=_reader, args=(entry, writers_done, queue)) for _ in range(2)]
    for p in readers + writers:
        p.start()
    for p in writers:
        p.join(timeout=120)
        assert p.exitcode == 0
    writers_done.set()
    results = [queue.get(timeout=120) for _ in readers]
    for p in readers:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert sum(bad for _, bad in results) == 0
    assert sum(seen for seen, _ in results) > 0
    assert [p.name for p in (tmp_path / "cache" / "ab").iterdir()] == ["entry.npz"]
