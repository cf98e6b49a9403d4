"""W&B run file reading speed: ``warmcheck.readers.wandb.read_wandb`` against the wandb library's own reader.

The run is written by the real wandb library (offline, in a child process): ``--rows`` history rows
(default 1,000,000), each ``run.log({"train/loss", "train/lr", "train/grad_norm"}, step=i)``, as a
training logging every update does. Two readers of the same file, each in a fresh child process
(wall time, and peak RSS from ``getrusage``), best of ``--reps``:

* **warmcheck**: ``read_wandb(path)``: its own framing, records peeked and skipped unless they are
  history/config/summary/run, values parsed with ``float()`` first, points into compact arrays;
* **wandb DataStore**: the library's own record reader, ``wandb/sdk/internal/datastore.py``
  (``DataStore.open_for_scan`` + ``scan_data`` until None), every record parsed with
  ``Record.ParseFromString`` and every history item with ``json.loads``, points appended to lists: the
  Python export path the library had. wandb 0.31 moved the reader to its Go core (no Python reader is
  left), so the module is loaded from ``--datastore FILE``: the file from the wandb 0.19.11 wheel
  (``pip download --no-deps wandb==0.19.11`` and unzip ``wandb/sdk/internal/datastore.py``), which
  reads the same format (header version 0). Without it only warmcheck is measured.

    python bench/wandb_bench.py [--rows N] [--keep DIR] [--datastore datastore.py] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "realruns"))


def write_run(out: Path, rows: int) -> tuple[Path, float]:
    """A W&B offline run of ``rows`` history rows under ``out``; (the run file, seconds wandb took)."""
    from wandb_runs import wandb_env

    code = f"""
import math, time, wandb
t = time.perf_counter()
run = wandb.init(project="warmcheck-bench", dir={str(out)!r}, config={{"warmup_steps": 2000, "max_steps": {rows}}},
                 settings=wandb.Settings(x_disable_stats=True, x_disable_meta=True))
for i in range({rows}):
    lr = 3e-4 * min(1.0, (i + 1) / 2000) * 0.5 * (1 + math.cos(math.pi * i / {rows}))
    run.log({{"train/loss": 2.0 + 1.0 / (1 + i / 1000), "train/lr": lr, "train/grad_norm": 1.0 + (i % 7) / 10}}, step=i)
run.finish()
print(time.perf_counter() - t)
"""
    env = {**os.environ, **wandb_env(out / ".wandb-home")}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=out, capture_output=True, text=True, check=True)
    path = next(out.glob("wandb/*run-*/run-*.wandb"))
    return path, float(done.stdout.strip().splitlines()[-1])


_OURS = """
import json, resource, sys, time
from warmcheck.readers.wandb import read_wandb
t = time.perf_counter()
read = read_wandb(sys.argv[1])
dt = time.perf_counter() - t
points = sum(len(f) for f in read.fragments)
print(json.dumps({"s": dt, "points": points, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "findings": [f.code for f in read.findings]}))
"""

_THEIRS = """
import importlib.util, json, resource, sys, time
import wandb
from wandb.proto import wandb_internal_pb2 as pb
wandb._assert_is_internal_process = True  # the DataStore asserts it runs in wandb's internal process
spec = importlib.util.spec_from_file_location("wandb_datastore", sys.argv[2])
ds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ds)
t = time.perf_counter()
store = ds.DataStore()
store.open_for_scan(sys.argv[1])
series = {}
while (data := store.scan_data()) is not None:
    rec = pb.Record()
    rec.ParseFromString(data)
    if rec.WhichOneof("record_type") != "history":
        continue
    row = {"/".join(i.nested_key) if i.nested_key else i.key: json.loads(i.value_json) for i in rec.history.item}
    step = row.pop("_step")
    for key, value in row.items():
        if isinstance(value, (int, float)) and not key.startswith("_"):
            series.setdefault(key, ([], []))
            series[key][0].append(step)
            series[key][1].append(value)
dt = time.perf_counter() - t
print(json.dumps({"s": dt, "points": sum(len(s[0]) for s in series.values()),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(code: str, *args: str, reps: int) -> dict[str, float]:
    """Best wall time (and its peak RSS) of ``code`` run in ``reps`` fresh child processes."""
    best: dict[str, float] | None = None
    for _ in range(reps):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
        got = json.loads(done.stdout.strip().splitlines()[-1])
        if best is None or got["s"] < best["s"]:
            best = got
    assert best is not None
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="write (or reuse) the run under this directory")
    ap.add_argument("--datastore", type=Path, help="wandb/sdk/internal/datastore.py of wandb 0.19.11")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wc-wandb-bench-") as tmp:
        out = (args.keep or Path(tmp)).resolve()
        out.mkdir(parents=True, exist_ok=True)
        found = sorted(out.glob("wandb/*run-*/run-*.wandb"))
        if found:
            path, wrote = found[0], float("nan")
        else:
            t = time.perf_counter()
            path, wrote = write_run(out, args.rows)
            print(json.dumps({"wrote_rows": args.rows, "wandb_log_s": round(wrote, 1),
                              "child_s": round(time.perf_counter() - t, 1)}), flush=True)
        size = path.stat().st_size
        ours = measure(_OURS, str(path), reps=args.reps)
        result: dict[str, object] = {"rows": args.rows, "file_mb": round(size / 2**20, 1),
                                     "warmcheck_s": round(ours["s"], 2), "warmcheck_rss_mb": round(ours["rss_mb"]),
                                     "points": ours["points"], "findings": ours["findings"]}
        if args.datastore is not None:
            theirs = measure(_THEIRS, str(path), str(args.datastore), reps=args.reps)
            assert theirs["points"] == ours["points"], (theirs["points"], ours["points"])
            result.update({"datastore_s": round(theirs["s"], 2), "datastore_rss_mb": round(theirs["rss_mb"]),
                           "ratio": round(ours["s"] / theirs["s"], 2)})
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
