#!/usr/bin/env python
"""Where the time of one ``warmcheck analyze PATH --format json --no-cache`` goes, phase by phase.

Each sample is a fresh child process (this file run with ``--child``) that imports warmcheck, wraps
the functions that mark each phase with a timer, and then runs the CLI exactly as the command line
does (``warmcheck.cli.main``); stdout goes to ``/dev/null``. The parent times the child from
``Popen`` to ``wait4`` (the whole process, as ``run_bench.py`` does) and reports, per phase, the
median over ``--reps`` samples:

===================  ==========================================================================
phase                what is timed
===================  ==========================================================================
interpreter          the child's wall time before its first line runs (whole minus what the
                     child measured itself), plus interpreter exit
import               ``import warmcheck.cli`` and what the command imports before reading
discovery            ``discover`` (walking the paths, classifying files)
framing + CRC        ``tfrecord.frame``: record boundaries, every length CRC and data CRC
  of which data CRC  ``tfrecord._data_crc_ok``: the data CRCs alone
file read            the ``read`` calls of the scanner (bytes from the page cache)
decode               ``events.decode``: Event protos to tag ids, steps, values, wall times
assembly             the rest of reading: points grouped by tag, fragments, runs assembled
schedule inference   ``schedule.infer_schedules``
spike/divergence     ``analyzers.spikes.detections`` plus every analyzer's ``check``
profile              ``sweep.profile`` (the run's row for the sweep view)
JSON                 the reporter's chunks written to stdout
other                the child's own time not in any phase above (CLI, settings, exit code)
===================  ==========================================================================

Phases nest only where the table says "of which". Timers wrap a handful of calls per file (one per
8 MiB chunk), so their own cost is negligible.

Usage::

    python bench/make_data.py --cases a && python bench/profile_phases.py bench/out/data/a
    python bench/profile_phases.py bench/out/data/c --reps 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

EXTRA: list[str] = []  # more analyze options (--jobs)

PHASES = ("interpreter", "import", "discovery", "framing + CRC", "of which data CRC", "file read", "decode",
          "assembly", "schedule inference", "spike/divergence detection", "profile", "JSON", "other")


def _child(argv: list[str]) -> int:  # pragma: no cover - runs in the child
    t_start = time.perf_counter()
    spent: dict[str, float] = {}

    def timed(module: object, name: str, phase: str) -> None:
        fn = getattr(module, name)

        def wrapper(*a: object, **k: object) -> object:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[phase] = spent.get(phase, 0.0) + time.perf_counter() - t

        setattr(module, name, wrapper)

    import warmcheck.cli as cli
    from warmcheck import pipeline, schedule, sweep
    from warmcheck.analyzers import ALL_ANALYZERS, spikes
    from warmcheck.readers import tensorboard, tfrecord

    spent["import"] = time.perf_counter() - t_start
    timed(pipeline, "discover", "discovery")
    timed(tfrecord, "frame", "framing + CRC")
    timed(tfrecord, "_data_crc_ok", "of which data CRC")
    timed(tensorboard, "decode", "decode")
    timed(pipeline, "read_runs", "reading")  # everything of reading; assembly = reading - the parts
    timed(schedule, "infer_schedules", "schedule inference")
    timed(spikes, "detections", "spike/divergence detection")
    for analyzer in ALL_ANALYZERS:
        timed(analyzer, "check", "spike/divergence detection")
    timed(sweep, "profile", "profile")
    timed(cli, "_emit", "JSON")

    real_open = tfrecord.storage.open_binary

    def open_binary(path: str):  # type: ignore[no-untyped-def]
        f = real_open(path)
        read = f.read

        def timed_read(*a: object) -> bytes:
            t = time.perf_counter()
            try:
                return read(*a)
            finally:
                spent["file read"] = spent.get("file read", 0.0) + time.perf_counter() - t

        f.read = timed_read
        return f

    tfrecord.storage.open_binary = open_binary
    code = 0
    try:
        cli.main(argv, standalone_mode=False)
    except SystemExit as exc:
        code = int(exc.code or 0)
    spent["child"] = time.perf_counter() - t_start
    spent["exit_code"] = code
    with open(os.environ["WARMCHECK_PHASES_OUT"], "w", encoding="utf-8") as f:
        json.dump(spent, f)
    sys.stdout.flush()
    os._exit(code)  # the parent's clock stops at wait4: a normal exit's teardown is timed too below


def _sample(path: str, out: Path) -> dict[str, float]:
    argv = [sys.executable, __file__, "--child", "analyze", path, "--format", "json", "--no-cache", "-q", *EXTRA]
    env = dict(os.environ, WARMCHECK_PHASES_OUT=str(out))
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    whole = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    spent = json.loads(out.read_text(encoding="utf-8"))
    if spent.get("exit_code") not in (0, 1):
        raise SystemExit(f"warmcheck exited {spent.get('exit_code')}")
    reading = spent.pop("reading", 0.0)
    parts = ("framing + CRC", "file read", "decode")
    phases = {p: spent.get(p, 0.0) for p in PHASES}
    phases["assembly"] = max(0.0, reading - sum(phases[p] for p in parts))
    phases["interpreter"] = whole - spent["child"]
    top = [p for p in PHASES if p not in ("of which data CRC", "other", "interpreter")]
    phases["other"] = max(0.0, spent["child"] - sum(phases[p] for p in top))
    phases["whole process"] = whole
    phases["peak RSS MB"] = usage.ru_maxrss / 1024
    return phases


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--child"]:
        return _child(args_in[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", help="what to analyse (e.g. bench/out/data/a)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write every sample here")
    ap.add_argument("-j", "--jobs", default="1", help="analyze --jobs (default 1: every phase in this process)")
    args = ap.parse_args(args_in)
    EXTRA[:] = ["--jobs", args.jobs]
    out = BENCH_DIR / "out" / "phases-child.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    samples = []
    for rep in range(args.reps):
        samples.append(_sample(args.path, out))
        print(f"rep {rep + 1}/{args.reps}: {samples[-1]['whole process']:.3f} s", file=sys.stderr)
    keys = [*PHASES, "whole process", "peak RSS MB"]
    med = {k: statistics.median(s[k] for s in samples) for k in keys}
    print(f"| phase ({args.path}, median of {args.reps}) | seconds | share |")
    print("|---|---:|---:|")
    for k in keys:
        if k == "peak RSS MB":
            print(f"| {k} | {med[k]:.0f} | |")
        else:
            share = "" if k == "whole process" else f"{100 * med[k] / med['whole process']:.0f}%"
            label = f"&nbsp;&nbsp;{k}" if k.startswith("of which") else k
            print(f"| {label} | {med[k]:.3f} | {share} |")
    if args.json is not None:
        args.json.write_text(json.dumps({"path": args.path, "samples": samples, "median": med}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
