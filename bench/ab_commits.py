#!/usr/bin/env python
"""Time one warmcheck command at two commits, alternating, on the same machine in the same run.

The older commit is checked out with ``git worktree`` under ``bench/out/worktrees/<commit>`` (its
bytecode compiled, as ``pip install`` would) and run with that directory first on ``sys.path``; the
newer one is this checkout. Samples alternate old/new so that both see the same machine state; the
ratio is the median of per-pair ratios. Each sample is a fresh process timed from spawn to exit, peak
RSS from ``wait4``.

Usage::

    python bench/ab_commits.py 8e4ca3d -- analyze bench/out/data/c --format json --no-cache
    python bench/ab_commits.py 8e4ca3d --reps 7 -- analyze bench/out/data/a --format json --no-cache
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


def worktree(commit: str) -> Path:
    sha = subprocess.run(["git", "rev-parse", "--short", commit], cwd=REPO_ROOT, check=True, text=True,
                         capture_output=True).stdout.strip()
    where = BENCH_DIR / "out" / "worktrees" / sha
    if not (where / "warmcheck").is_dir():
        where.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--force", "--detach", str(where), sha], cwd=REPO_ROOT,
                       check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(where / "warmcheck")], check=True)
    return where


def run(root: Path, args: list[str]) -> tuple[float, float, int]:
    code = f"import sys; sys.path.insert(0, {str(root)!r}); from warmcheck.cli import main; main()"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="the older commit (any git revision)")
    ap.add_argument("--reps", type=int, default=5)
    argv = sys.argv[1:]
    if "--" not in argv:
        ap.error("give the warmcheck arguments after --")
    cut = argv.index("--")
    ns, args = ap.parse_args(argv[:cut]), argv[cut + 1 :]
    old = worktree(ns.old)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_ROOT / "warmcheck")], check=True)
    samples: dict[str, list[tuple[float, float, int]]] = {"old": [], "new": []}
    for rep in range(ns.reps):
        for label, root in (("old", old), ("new", REPO_ROOT))[:: 1 if rep % 2 == 0 else -1]:
            samples[label].append(run(root, args))
        print(f"rep {rep + 1}: old {samples['old'][-1][0]:.2f} s, new {samples['new'][-1][0]:.2f} s", file=sys.stderr)
    ratios = [o[0] / n[0] for o, n in zip(samples["old"], samples["new"], strict=True)]
    print(f"warmcheck {' '.join(args)}  (median of {ns.reps}, load {os.getloadavg()[0]:.2f})")
    for label in ("old", "new"):
        s = samples[label]
        print(f"  {label} ({ns.old if label == 'old' else 'HEAD'}): {statistics.median(x[0] for x in s):.2f} s, "
              f"peak RSS {statistics.median(x[1] for x in s):.0f} MB, exit {sorted({x[2] for x in s})}")
    print(f"  old / new: {statistics.median(ratios):.2f}x (per pair: {', '.join(f'{r:.2f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
