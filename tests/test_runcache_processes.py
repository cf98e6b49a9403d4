"""The cache of analysed runs across processes: each ``warmcheck`` process has its own hash seed, and the
manifest a warm run looks for must not depend on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE_LOGS = Path(__file__).resolve().parent.parent / "sample_logs"


def test_the_manifest_is_found_whatever_the_hash_seed(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(SAMPLE_LOGS / "healthy_cosine", logs / "healthy_cosine")
    old = 1_600_000_000 * 10**9  # files changed in the last 2 s are not cached
    for p in [logs, *logs.rglob("*")]:
        os.utime(p, ns=(old, old))
    cache_dir = tmp_path / "cache"
    # several flags, so that a set of their names has several possible orders
    args = [sys.executable, "-m", "warmcheck", "analyze", str(logs), "--isolated", "-q", "-j", "1", "--format", "json",
            "--cache-dir", str(cache_dir), "--fail-on", "never", "--spike-detector", "warmcheck", "--grad-accum", "1",
            "--peak-lr", "0.001"]
    outputs = set()
    for seed in range(6):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        done = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert len(list((cache_dir / "runs").glob("*.pkl"))) == 1  # one manifest, reused by every process
