"""The caches on a 10k-run tree: listing, reading and the whole CLI, without the cache, cold, warm,
warm with one run changed, and warm with one event file appended (issue 12, part 3).

    python bench/cache_bench.py                 # 10,000 runs under bench/out/cache-tree (about 2 min to write)
    python bench/cache_bench.py --runs 1000     # a quicker look

The tree: one run per directory, a third each TensorBoard event files (lr + loss), CSV and JSONL,
``--steps`` steps each; every file is backdated an hour (files younger than 2 s are read but not
cached, see warmcheck/cache.py). Each figure is one fresh child process (the OS page cache is warm
for all of them: the tree was just written or read). "one changed": one CSV run gets rows appended
after the warm run; that run is read (whole) and analysed again, the 9,999 others come from the
cache of analysed runs (warmcheck/runcache.py) without being opened. "one appended": one event file
gets records appended; only the new bytes are read (resumed from the cached offset).
"listing" is a child that imports the discovery code and lists the tree: the CLI's floor.

Prints a markdown table on stdout, writes bench/out/cache-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OLD_NS = time.time_ns() - 3600 * 10**9


def make_tree(root: Path, runs: int, steps: int) -> None:
    """Write ``runs`` runs (TB / CSV / JSONL in turn) under ``root`` (replaced if it exists)."""
    import numpy as np
    from make_data import scalar_events, warmup_cosine, write_event_file

    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(12)
    for i in range(runs):
        d = root / f"g{i // 1000:02d}" / f"run{i:05d}"
        d.mkdir(parents=True)
        lr = warmup_cosine(steps, 3e-4, steps // 10).astype(np.float32).astype(np.float64)
        loss = (2.5 * np.exp(-np.arange(steps) / (steps / 3)) + 0.5 + rng.normal(0, 0.01, steps))
        loss = loss.astype(np.float32).astype(np.float64)
        if i % 3 == 0:
            write_event_file(d / f"events.out.tfevents.1700000000.bench.{i}.0",
                             scalar_events("simple_value", {"train/lr": lr, "train/loss": loss},
                                           1.7e9 + i * 1000.0, 0.5))
        elif i % 3 == 1:
            rows = "".join(f"{s},{lr[s]!r},{loss[s]!r}\n" for s in range(steps))
            (d / "metrics.csv").write_text("step,lr,loss\n" + rows)
        else:
            (d / "metrics.jsonl").write_text("".join(
                json.dumps({"step": s, "learning_rate": lr[s], "loss": loss[s]}) + "\n" for s in range(steps)))
    for p in root.rglob("*"):
        os.utime(p, ns=(OLD_NS, OLD_NS))


def child(mode: str, root: str, cache_dir: str | None) -> dict[str, Any]:
    """One measurement in this process: ``list`` (discovery) or ``read`` (discovery + every file read)."""
    from warmcheck import cache
    from warmcheck.readers import discover, is_training_csv, read_runs

    store = cache.activate(cache_dir)
    t0 = time.perf_counter()
    found = discover([root], is_training_csv)
    listed = time.perf_counter() - t0
    out: dict[str, Any] = {"runs": len(found.runs), "list_s": listed}
    if mode == "read":
        t1 = time.perf_counter()
        points = 0
        for spec in found.runs:
            for run in read_runs(spec):
                points += sum(s.points for s in run.series)
        out.update(read_s=time.perf_counter() - t1, points=points)
        if store is not None:
            out["stats"] = vars(store.stats)
    return out


def measure(argv: list[str]) -> tuple[float, float, bytes]:
    """Wall seconds, peak RSS (MiB) and stdout of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    data = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, data


def change_one_run(root: Path, runs: int, steps: int, extra: int) -> Path:
    """Append ``extra`` rows to the last CSV run (a run that is still training)."""
    last = max(i for i in range(runs) if i % 3 == 1)
    path = root / f"g{last // 1000:02d}" / f"run{last:05d}" / "metrics.csv"
    with open(path, "a") as fh:
        for s in range(steps, steps + extra):
            fh.write(f"{s},3e-05,{0.5 + 1e-4 * (s - steps)!r}\n")
    return path


def append_events(root: Path, runs: int, steps: int, extra: int) -> Path:
    """Append ``extra`` steps of lr + loss records to the last event-file run (a run still training)."""
    from make_data import RecordFramer
    from tensorboard.compat.proto import event_pb2, summary_pb2

    last = max(i for i in range(runs) if i % 3 == 0)
    [path] = (root / f"g{last // 1000:02d}" / f"run{last:05d}").glob("events.out.tfevents.*")
    framer = RecordFramer()
    out = []
    for s in range(steps, steps + extra):
        for tag, value in (("train/lr", 3e-5), ("train/loss", 0.5 + 1e-4 * (s - steps))):
            v = summary_pb2.Summary.Value(tag=tag, simple_value=value)
            out.append(framer.frame(event_pb2.Event(wall_time=1.8e9 + s, step=s,
                                                    summary=summary_pb2.Summary(value=[v])).SerializeToString()))
    with open(path, "ab") as fh:
        fh.write(b"".join(out))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=0, help="warmcheck analyze -j (0: one per CPU)")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "ROOT", "CACHE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        mode, root, cache_dir = args.child
        print(json.dumps(child(mode, root, None if cache_dir == "-" else cache_dir)))
        return 0
    root = args.out / "cache-tree"
    read_cache, cli_cache = args.out / "cache-read", args.out / "cache-cli"
    for d in (read_cache, cli_cache):
        shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    make_tree(root, args.runs, args.steps)
    print(f"tree: {args.runs} runs x {args.steps} steps written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    me = [sys.executable, str(Path(__file__).resolve())]
    cli = [sys.executable, "-m", "warmcheck", "analyze", str(root), "--isolated", "-q", "--format", "json",
           "-j", str(args.jobs)]
    rows: list[dict[str, Any]] = []

    def step(name: str, argv: list[str], kind: str) -> bytes:
        wall, rss, data = measure(argv)
        row: dict[str, Any] = {"case": name, "kind": kind, "wall_s": wall, "peak_rss_mib": rss}
        if kind != "cli":
            row.update(json.loads(data))
        rows.append(row)
        print(f"{kind:5} {name:12} {wall:7.2f} s  {rss:7.0f} MiB  {row.get('stats', '')}", file=sys.stderr)
        return data

    step("listing", [*me, "--child", "list", str(root), "-"], "list")
    step("no cache", [*me, "--child", "read", str(root), "-"], "read")
    step("cold", [*me, "--child", "read", str(root), str(read_cache)], "read")
    step("warm", [*me, "--child", "read", str(root), str(read_cache)], "read")
    change_one_run(root, args.runs, args.steps, 20)
    step("one changed", [*me, "--child", "read", str(root), str(read_cache)], "read")
    plain = step("no cache", [*cli, "--no-cache"], "cli")
    cold = step("cold", [*cli, "--cache-dir", str(cli_cache)], "cli")
    warm = step("warm", [*cli, "--cache-dir", str(cli_cache)], "cli")
    changed_file = change_one_run(root, args.runs, args.steps + 20, 20)
    changed = step("one changed", [*cli, "--cache-dir", str(cli_cache)], "cli")
    after = step("no cache", [*cli, "--no-cache"], "cli")
    appended_file = append_events(root, args.runs, args.steps, 50)
    appended = step("one appended", [*cli, "--cache-dir", str(cli_cache)], "cli")
    after2 = step("no cache", [*cli, "--no-cache"], "cli")
    same = (plain == cold == warm and changed == after and changed != warm and appended == after2
            and appended != changed)
    size = sum(p.stat().st_size for p in cli_cache.rglob("*.npz"))
    tree = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    doc = {"runs": args.runs, "steps": args.steps, "jobs": args.jobs, "cpus": os.cpu_count(), "rows": rows,
           "reports_identical": same, "cache_bytes": size, "tree_bytes": tree, "changed_file": str(changed_file),
           "appended_file": str(appended_file),
           "manifest_bytes": sum(p.stat().st_size for p in cli_cache.glob("runs/*.pkl"))}
    (args.out / "cache-results.json").write_text(json.dumps(doc, indent=2))
    print("| what | case | wall s | peak RSS MiB | files read |\n|---|---|---:|---:|---:|")
    for r in rows:
        stats = r.get("stats")
        read = "" if r["kind"] == "list" else (str(stats["read"]) if stats
                                             else ("all" if r["kind"] == "read" else ""))
        label = {"list": "discovery only", "read": "discovery + read every file", "cli": "warmcheck analyze"}[r["kind"]]
        print(f"| {label} | {r['case']} | {r['wall_s']:.2f} | {r['peak_rss_mib']:.0f} | {read} |")
    listing = next(r["wall_s"] for r in rows if r["kind"] == "list")
    for r in rows:
        if r["kind"] == "cli" and r["case"] in ("warm", "one changed", "one appended"):
            print(f"\n{r['case']}: {r['wall_s'] - listing:.2f} s beyond listing", end="")
    print(f"\n\ncache: {size / 2**20:.1f} MiB of reads + {doc['manifest_bytes'] / 2**20:.1f} MiB of analysed runs "
          f"for a {tree / 2**20:.1f} MiB tree; JSON reports identical (no cache = cold = warm; one changed "
          f"= no cache after the change; one appended = no cache after the append): {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
