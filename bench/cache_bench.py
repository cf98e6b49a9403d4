"""The caches on a 10k-run tree: listing, reading and the whole CLI, without the cache, cold, warm,
warm with one run changed, and warm with one event file appended, per output format (issue 12, part 3).

    python bench/cache_bench.py                 # 10,000 runs under bench/out/cache-tree (about 20 s to write)
    python bench/cache_bench.py --runs 1000     # a quicker look
    python bench/cache_bench.py --formats json --repeat 5

The tree: one run per directory, a third each TensorBoard event files (lr + loss), CSV and JSONL,
``--steps`` steps each; every file is backdated an hour (files younger than 2 s are read but not
cached, see warmcheck/cache.py). Each figure is a fresh child process (the OS page cache is warm
for all of them: the tree was just written or read); the package is snapshotted first (the caches
are keyed on warmcheck's source, which may be edited meanwhile) and compiled to bytecode, as an
installed package is, and PYTHONHASHSEED pinned.

Per format (``--formats``, default text, json, github), each with its own cache directory:
"no cache" (``--no-cache``) and "cold" (an empty cache) are measured ``--repeat-slow`` times (default
once: ~80 s each on 2 cores); "warm" (nothing changed), "one changed" and "one appended" ``--repeat``
times (default 3), and the median is reported. "one changed": before each repetition one CSV run gets
20 rows appended; that run is read (resumed) and analysed again, the 9,999 others come from the
cache of analysed runs (warmcheck/runcache.py) without being opened, unpickled or rendered (their
report pieces are stored). "one appended": before each repetition one event file gets 50 steps of
records appended; only the new bytes are read (resumed from the cached offset).

"listing" is the discovery of the tree (warmcheck.readers.discover: the walk and the rules that make
runs of the files), the CLI's floor. Two figures say what a CLI run costs beyond it:

* **beyond listing** (the gate's figure): the wall time of the whole ``warmcheck analyze`` process
  (interpreter start, imports, settings, listing, the caches, rendering, writing the report to a
  pipe, exit) minus the time ``discover`` took inside that same process;
* **beyond listing process**: the CLI's wall time minus the wall time of a separate process that only
  imports the discovery code and lists the tree (interpreter start and those imports cancel out).

The reports are checked: each format's no cache = cold = every warm run; each format's last "one
appended" = its --no-cache report after all the changes; json's last "one changed" = --no-cache right
after that change. Prints a markdown table on stdout, writes bench/out/cache-results.json.
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
            rows = "".join(f"{s},{float(lr[s])!r},{float(loss[s])!r}\n" for s in range(steps))  # not np.float64(...)
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


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, bytes]:
    """Wall seconds, peak RSS (MiB) and stdout of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
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


def cli_child(timing: str, argv: list[str]) -> None:
    """``warmcheck ARGV`` in this process, writing how long its discovery took to ``timing`` at exit."""
    import atexit

    from warmcheck import pipeline

    spent: list[float] = []
    real = pipeline.discover

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t0)

    pipeline.discover = timed
    atexit.register(lambda: Path(timing).write_text(json.dumps(sum(spent))))
    from warmcheck.cli import main

    main(argv, prog_name="warmcheck")


def median(xs: list[float]) -> float:
    ys = sorted(xs)
    n = len(ys)
    return ys[n // 2] if n % 2 else (ys[n // 2 - 1] + ys[n // 2]) / 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=0, help="warmcheck analyze -j (0: one per CPU)")
    ap.add_argument("--formats", default="text,json,github", help="comma-separated --format values")
    ap.add_argument("--repeat", type=int, default=3, help="runs of listing, warm, one changed, one appended")
    ap.add_argument("--repeat-slow", type=int, default=1, help="runs of no cache and cold")
    ap.add_argument("--reads", action="store_true", help="also time the readers alone (discovery + every file read)")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "ROOT", "CACHE"), help=argparse.SUPPRESS)
    ap.add_argument("--cli-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cli_child:
        cli_child(args.cli_child[0], args.cli_child[1:])
        return 0
    if args.child:
        mode, root, cache_dir = args.child
        print(json.dumps(child(mode, root, None if cache_dir == "-" else cache_dir)))
        return 0
    formats = [f for f in args.formats.split(",") if f]
    root = args.out / "cache-tree"
    read_cache = args.out / "cache-read"
    caches = {fmt: args.out / f"cache-cli-{fmt}" for fmt in formats}
    code = args.out / "cache-code"
    for d in (read_cache, code, *caches.values()):
        shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(HERE.parent / "warmcheck", code / "warmcheck", ignore=shutil.ignore_patterns("__pycache__"))
    # Compiled to bytecode as an installed package is (pip does it): with PYTHONDONTWRITEBYTECODE set (as in
    # some CI images and this one) every process would otherwise compile warmcheck's sources (~0.17 s).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(code)], check=True)
    env = {**os.environ, "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    t0 = time.perf_counter()
    make_tree(root, args.runs, args.steps)
    print(f"tree: {args.runs} runs x {args.steps} steps written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    me = [sys.executable, str(Path(__file__).resolve())]
    timing = args.out / "cache-cli-discover.json"
    rows: list[dict[str, Any]] = []

    def step(name: str, argv: list[str], kind: str, fmt: str = "") -> bytes:
        wall, rss, data = measure(argv, env)
        row: dict[str, Any] = {"case": name, "kind": kind, "format": fmt, "wall_s": wall, "peak_rss_mib": rss}
        if kind == "cli":
            row["discover_s"] = json.loads(timing.read_text())
        else:
            row.update(json.loads(data))
        rows.append(row)
        extra = f"discover {row['discover_s']:.2f} s" if kind == "cli" else row.get("stats", "")
        print(f"{kind:5} {fmt:7} {name:12} {wall:7.2f} s  {rss:7.0f} MiB  {extra}", file=sys.stderr, flush=True)
        return data

    def cli(fmt: str, *more: str) -> list[str]:
        return [*me, "--cli-child", str(timing), "analyze", str(root), "--isolated", "-q", "--format", fmt,
                "-j", str(args.jobs), *more]

    for _ in range(args.repeat):
        step("listing", [*me, "--child", "list", str(root), "-"], "list")
    if args.reads:  # the readers alone, through the cache of reads
        step("no cache", [*me, "--child", "read", str(root), "-"], "read")
        step("cold", [*me, "--child", "read", str(root), str(read_cache)], "read")
        step("warm", [*me, "--child", "read", str(root), str(read_cache)], "read")
    checks: dict[str, bool] = {}
    for fmt in formats:
        plain = [step("no cache", cli(fmt, "--no-cache"), "cli", fmt) for _ in range(args.repeat_slow)]
        cold = []
        for _ in range(args.repeat_slow):
            shutil.rmtree(caches[fmt], ignore_errors=True)
            cold.append(step("cold", cli(fmt, "--cache-dir", str(caches[fmt])), "cli", fmt))
        warm = [step("warm", cli(fmt, "--cache-dir", str(caches[fmt])), "cli", fmt) for _ in range(args.repeat)]
        checks[f"{fmt}: no cache = cold = warm"] = all(r == plain[0] for r in plain + cold + warm)
    steps = args.steps
    changed: dict[str, bytes] = {}
    for _ in range(args.repeat):
        change_one_run(root, args.runs, steps, 20)
        steps += 20
        for fmt in formats:
            changed[fmt] = step("one changed", cli(fmt, "--cache-dir", str(caches[fmt])), "cli", fmt)
    if "json" in formats:
        after = step("no cache", cli("json", "--no-cache"), "cli", "json")
        checks["json: last one changed = no cache after it"] = changed["json"] == after
    appended: dict[str, bytes] = {}
    for k in range(args.repeat):
        append_events(root, args.runs, args.steps + 50 * k, 50)
        for fmt in formats:
            appended[fmt] = step("one appended", cli(fmt, "--cache-dir", str(caches[fmt])), "cli", fmt)
    for fmt in formats:
        after = step("no cache", cli(fmt, "--no-cache"), "cli", fmt)
        checks[f"{fmt}: last one appended = no cache after all changes"] = appended[fmt] == after != changed[fmt]
    same = all(checks.values())
    size = sum(p.stat().st_size for d in caches.values() for p in d.rglob("*.npz"))
    manifests = {fmt: sum(p.stat().st_size for p in d.glob("runs/*.pkl")) for fmt, d in caches.items()}
    tree = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    listing = median([r["wall_s"] for r in rows if r["kind"] == "list"])
    listing_in = median([r["list_s"] for r in rows if r["kind"] == "list"])
    table = []
    for fmt in formats:
        for case in ("no cache", "cold", "warm", "one changed", "one appended"):
            mine = [r for r in rows if r["kind"] == "cli" and r["format"] == fmt and r["case"] == case]
            if case == "no cache":
                mine = mine[:args.repeat_slow]  # before any change
            if not mine:
                continue
            wall = median([r["wall_s"] for r in mine])
            beyond = median([r["wall_s"] - r["discover_s"] for r in mine])
            table.append({"format": fmt, "case": case, "n": len(mine), "wall_s": wall, "beyond_listing_s": beyond,
                          "beyond_listing_process_s": wall - listing,
                          "peak_rss_mib": median([r["peak_rss_mib"] for r in mine])})
    doc = {"runs": args.runs, "steps": args.steps, "jobs": args.jobs, "cpus": os.cpu_count(), "rows": rows,
           "table": table, "listing_process_s": listing, "listing_in_process_s": listing_in, "checks": checks,
           "reports_identical": same, "cache_bytes": size, "tree_bytes": tree, "manifest_bytes": manifests}
    (args.out / "cache-results.json").write_text(json.dumps(doc, indent=2))
    print(f"listing: {listing:.2f} s as a process (median of {args.repeat}; discover itself {listing_in:.2f} s)\n")
    print("| what | case | wall s | peak RSS MiB | files read |\n|---|---|---:|---:|---:|")
    for r in rows:
        if r["kind"] == "read":
            read = str(r["stats"]["read"]) if r.get("stats") else "all"
            print(f"| discovery + read every file | {r['case']} | {r['wall_s']:.2f} | {r['peak_rss_mib']:.0f} | "
                  f"{read} |")
    print("\n| format | case | runs | wall s (median) | beyond listing s | beyond listing process s | peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for t in table:
        print(f"| {t['format']} | {t['case']} | {t['n']} | {t['wall_s']:.2f} | {t['beyond_listing_s']:.2f} | "
              f"{t['beyond_listing_process_s']:.2f} | {t['peak_rss_mib']:.0f} |")
    print(f"\ncache: {size / 2**20:.1f} MiB of reads + "
          + ", ".join(f"{fmt} {b / 2**20:.1f} MiB" for fmt, b in manifests.items())
          + f" of analysed runs (with their pieces) for a {tree / 2**20:.1f} MiB tree")
    for name, ok in checks.items():
        print(f"report check: {name}: {ok}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
