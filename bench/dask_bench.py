"""analyze on a dask LocalCluster vs --jobs: runs/s and the client's peak memory (issue 12, part 2).

    python bench/dask_bench.py [--runs 100000] [--workers 2] [--dir DIR]

Writes N small CSV runs (120 points each) once, then analyses them in a fresh Python process per
mode, which reports its own wall time and peak RSS (the client only: workers are other processes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

_CHILD = """
import json, resource, sys, time
from warmcheck.pipeline import analyze
paths, jobs, scheduler = json.loads(sys.argv[1])
t = time.perf_counter()
out = analyze(paths, jobs=jobs, scheduler=scheduler, keep_points=False)
print(json.dumps({"runs": len(out.runs), "seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_runs(root: str, n: int) -> None:
    lines = ["step,lr,loss"] + [f"{s},{1e-3 * min(1, (s + 1) / 10):.6g},{3.0 / (1 + s / 20):.6g}" for s in range(120)]
    text = "\n".join(lines) + "\n"
    for i in range(n):
        d = os.path.join(root, f"{i // 1000:03d}", f"run_{i:06d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "metrics.csv"), "w") as f:
            f.write(text)


def measure(root: str, jobs: int, scheduler: str | None) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([[root], jobs, scheduler])],
                          capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["runs_per_s"] = result["runs"] / result["seconds"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir")
    args = ap.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="dask-bench-")
    if not os.path.isdir(os.path.join(root, "000")):
        write_runs(root, args.runs)
    from distributed import LocalCluster

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, host="127.0.0.1", scheduler_port=0,
                      dashboard_address=":0", silence_logs=50) as cluster:
        dask_result = measure(root, 1, cluster.scheduler_address)
    jobs_result = measure(root, args.workers, None)
    print(json.dumps({"runs": args.runs, "workers": args.workers, "dask": dask_result, "jobs": jobs_result},
                     indent=2))


if __name__ == "__main__":
    main()
