"""Cost of following a live run: one poll after 1,000 appended records, as the file grows.

``warmcheck watch`` must read only the bytes appended since the last poll and analyse incrementally,
so the cost of a poll should depend on what was appended, not on how long the file already is. For
event files of 10k, 100k and 1M records (three tags: lr, loss, grad_norm) this measures:

- the first poll (catching up with the whole file),
- then ``--rounds`` times: append 1,000 records, poll; the time of each poll and the bytes it read,
- the resident memory after catching up and the points the run retains.

``--runs K`` also follows K runs of ``--records-per-run`` records each, for memory against the
number of runs (bounded per run by :class:`warmcheck.live.buffer.Limits`).

    python bench/watch_bench.py                # ~2 minutes
    python bench/watch_bench.py --runs 100     # + 100 runs of 100k records (~10 minutes, 400 MB of files)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_data import BASE_WALL_TIME, RecordFramer, file_version_event  # noqa: E402

from warmcheck.config import Settings  # noqa: E402
from warmcheck.live.watch import Watcher  # noqa: E402

TAGS = 3


def series(start: int, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` steps of a healthy run from step ``start``: warmup + cosine LR, decaying noisy loss and grad norm."""
    rng = np.random.default_rng(seed + start)
    t = np.arange(start, start + n, dtype=np.float64)
    total = 1_000_000 / TAGS
    lr = np.where(t < 2000, 3e-4 * (t + 1) / 2000, 3e-5 + 0.5 * (3e-4 - 3e-5) * (1 + np.cos(np.pi * t / total)))
    loss = (2.0 + 8.0 * np.exp(-t / 3000)) * np.exp(0.02 * rng.standard_normal(n))
    gn = (0.5 + 2.0 * np.exp(-t / 5000)) * np.exp(0.1 * rng.standard_normal(n))
    return {"train/lr": lr.astype(np.float32), "train/loss": loss.astype(np.float32),
            "train/grad_norm": gn.astype(np.float32)}


def write_steps(path: Path, start: int, n_steps: int) -> None:
    """Append ``n_steps`` steps (x3 tags) starting at ``start`` as framed event records."""
    from tensorboard.compat.proto import event_pb2

    framer = RecordFramer()
    data = series(start, n_steps)
    chunks = []
    if start == 0:
        chunks.append(framer.frame(file_version_event()))
    evs = {tag: event_pb2.Event() for tag in data}
    vals = {}
    for tag, ev in evs.items():
        v = ev.summary.value.add()
        v.tag = tag
        vals[tag] = (v, data[tag].tolist())
    for i in range(n_steps):
        for tag, ev in evs.items():
            ev.step = start + i
            ev.wall_time = BASE_WALL_TIME + start + i
            v, values = vals[tag]
            v.simple_value = values[i]
            chunks.append(framer.frame(ev.SerializeToString(deterministic=True)))
    with open(path, "ab") as f:
        f.write(b"".join(chunks))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_size(root: Path, records_total: int, rounds: int) -> dict[str, object]:
    run = root / f"run_{records_total}"
    run.mkdir()
    path = run / "events.out.tfevents.1700000000.bench.1.0"
    steps = records_total // TAGS
    for lo in range(0, steps, 50_000):
        write_steps(path, lo, min(50_000, steps - lo))
    size = os.path.getsize(path)
    watcher = Watcher([str(run)], Settings(), settle=1e9)
    t = time.perf_counter()
    watcher.poll()
    catch_up = time.perf_counter() - t
    live = watcher.runs[str(run)].live
    tailer = next(iter(watcher.runs[str(run)].files.values())).tailer
    times, read = [], []
    step = steps
    per_round = 1000 // TAGS + 1  # 1,002 records
    for _ in range(rounds):
        write_steps(path, step, per_round)
        step += per_round
        before = tailer.reader.scanner.offset  # type: ignore[attr-defined]
        t = time.perf_counter()
        watcher.poll()
        times.append(time.perf_counter() - t)
        read.append(tailer.reader.scanner.offset - before)  # type: ignore[attr-defined]
    retained = max(s.points for s in live.last.series) if live.last else 0
    return {"records": records_total, "file_mb": round(size / 2**20, 1),
            "catch_up_s": round(catch_up, 2), "poll_ms_median": round(1000 * statistics.median(times), 2),
            "poll_ms_mean": round(1000 * statistics.fmean(times), 2),
            "poll_ms_max": round(1000 * max(times), 2),
            "bytes_read_per_poll": int(statistics.median(read)), "retained_points_per_tag": retained,
            "rss_mb": round(rss_mb(), 1)}


def many_runs(root: Path, runs: int, per_run: int) -> dict[str, object]:
    base = root / "many"
    for k in range(runs):
        d = base / f"run_{k:03d}"
        d.mkdir(parents=True)
        path = d / "events.out.tfevents.1700000000.bench.1.0"
        steps = per_run // TAGS
        for lo in range(0, steps, 50_000):
            write_steps(path, lo, min(50_000, steps - lo))
    before = rss_mb()
    watcher = Watcher([str(base)], Settings(), settle=1e9)
    t = time.perf_counter()
    watcher.poll()
    elapsed = time.perf_counter() - t
    return {"runs": runs, "records_per_run": per_run, "catch_up_s": round(elapsed, 1),
            "rss_mb_before": round(before, 1), "rss_mb_after": round(rss_mb(), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--runs", type=int, default=0, help="also follow this many runs (memory against runs)")
    ap.add_argument("--records-per-run", type=int, default=100_000)
    args = ap.parse_args()
    from warmcheck.schedule import infer_schedules  # noqa: F401 - import costs outside the timed polls

    with tempfile.TemporaryDirectory(prefix="wc-watch-bench-") as tmp:
        root = Path(tmp)
        results = [one_size(root, int(n), args.rounds) for n in args.sizes.split(",")]
        for r in results:
            print(json.dumps(r))
        if args.runs:
            print(json.dumps(many_runs(root, args.runs, args.records_per_run)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
