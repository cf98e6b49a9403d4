#!/usr/bin/env python
"""Time ``warmcheck analyze`` against tbparse and TensorBoard's EventAccumulator.

Method (after ``shared/domain/reader-performance.md``):

* every sample is a **fresh child process** started with this interpreter (``sys.executable``),
  timed from ``Popen`` to ``os.wait4``: the whole process, interpreter start and imports included;
* peak RSS is that child's ``ru_maxrss`` from ``os.wait4`` (KiB on Linux), so it includes the
  interpreter and imports. Linux carries the *parent's* peak RSS into a child across
  fork/vfork + exec (``setmax_mm_hiwater_rss`` at exec), so this parent stays lean: no numpy,
  no protobuf, data generated in a subprocess. Its own peak (``parent_maxrss_kib``, about 20 MB)
  is recorded as the floor below which no child RSS can be reported;
* baseline children (``bench_child.py``) also report the read time alone, imports excluded;
* repetitions are interleaved: rep 1 runs every reader on a case, then rep 2, ... The reader order
  is rotated from rep to rep so that no reader always runs first or last;
* cells are medians over reps; the ratios are **medians of per-repetition ratios**, each ratio
  taken from two samples measured back to back in the same rep, which cancels most of the drift
  of a shared machine;
* warmcheck's JSON is checked once per case, in an untimed run, against the point counts in the
  data manifest; the timed runs write to ``/dev/null``.

Usage::

    python bench/make_data.py && python bench/run_bench.py
    python bench/run_bench.py --quick                    # smoke run on tiny data
    python bench/run_bench.py --cases a --reps 1 --readers warmcheck,tbparse
    python bench/run_bench.py --warmcheck-cmd "python -m warmcheck"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CHILD = BENCH_DIR / "bench_child.py"
MAKE_DATA = BENCH_DIR / "make_data.py"
# Same defaults as make_data.py. Not imported from there: that module imports numpy, and any
# memory this parent holds shows up in every child's ru_maxrss (see the module docstring).
CASES = ("a", "b", "c")
DEFAULT_DATA = BENCH_DIR / "out" / "data"
DEFAULT_QUICK_DATA = BENCH_DIR / "out" / "data-quick"

READERS = ("warmcheck", "tbparse", "ea")
LABELS = {"warmcheck": "warmcheck", "tbparse": "tbparse", "ea": "EventAccumulator"}
# ``warmcheck analyze`` exits 1 when it reports findings (the planted spikes should trigger some);
# 2 is an abnormal end. A crash with a traceback is also 1, which the JSON check catches.
WARMCHECK_OK_CODES = (0, 1)


@dataclass
class Sample:
    """One timed child process."""

    case: str
    reader: str
    rep: int
    whole_s: float
    rss_kib: int
    exit_code: int
    ok: bool
    parent_maxrss_kib: int = 0  # floor: a child's ru_maxrss is never below the parent's peak
    read_s: float | None = None
    import_s: float | None = None
    points: int | None = None
    error: str | None = None


@dataclass
class Verification:
    """The untimed check of warmcheck's JSON for one case."""

    case: str
    exit_code: int
    ok: bool
    runs: int | None = None
    series: int | None = None
    points: int | None = None
    expected_runs: int = 0
    expected_points: int = 0
    expected_points_per_series: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class ChildResult:
    """What ``run_child`` observed."""

    whole_s: float
    rss_kib: int
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool


# --------------------------------------------------------------------------------------------
# Running children
# --------------------------------------------------------------------------------------------


def run_child(cmd: Sequence[str], stdout_to_null: bool, timeout: float) -> ChildResult:
    """Run ``cmd`` from the repo root; return wall time, peak RSS and output.

    Output goes to temporary files rather than pipes: we block in ``os.wait4`` (to get this
    child's own rusage) and a full pipe would deadlock a chatty child.
    """
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        stdout: Any = subprocess.DEVNULL if stdout_to_null else out
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=err)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        whole = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # reaped by wait4; tell Popen so it doesn't wait again
        out.seek(0)
        err.seek(0)
        return ChildResult(whole, int(usage.ru_maxrss), code,
                           out.read().decode("utf-8", "replace"),
                           err.read().decode("utf-8", "replace"),
                           timed_out=whole >= timeout and code < 0)


def parent_maxrss_kib() -> int:
    """This process's own peak RSS (KiB): the floor under every child's reported peak."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def tail(text: str, lines: int = 8) -> str:
    """The last ``lines`` non-empty lines of ``text`` (for error messages)."""
    return "\n".join([ln for ln in text.strip().splitlines() if ln.strip()][-lines:])


def warmcheck_base(cmd: str) -> list[str]:
    """Split ``--warmcheck-cmd``; a leading ``python``/``python3`` means this interpreter.

    When the default ``warmcheck`` is not on PATH (not installed, only importable from the repo),
    fall back to ``<this python> -m warmcheck`` run from the repo root.
    """
    parts = shlex.split(cmd)
    if parts and parts[0] in ("python", "python3"):
        parts[0] = sys.executable
    elif parts == ["warmcheck"] and shutil.which("warmcheck") is None:
        print("note: 'warmcheck' is not on PATH; using 'python -m warmcheck' from the repo root",
              file=sys.stderr)
        parts = [sys.executable, "-m", "warmcheck"]
    return parts


def warmcheck_cmd(base: list[str], path: Path) -> list[str]:
    """The measured command: ``warmcheck analyze <case path> --format json``."""
    return [*base, "analyze", str(path), "--format", "json"]


def baseline_cmd(reader: str, case: str, path: Path) -> list[str]:
    """The child command for a baseline reader on ``case``."""
    args = [sys.executable, str(CHILD), reader, str(path)]
    if reader == "tbparse":
        if case == "b":
            args.append("--tensors")  # TF2 scalars land in .tensors; .scalars is empty there
        if case == "c":
            args.append("--dir-name")  # tells the 1000 runs apart
    return args


def sample(reader: str, case: str, rep: int, path: Path, wc_base: list[str], timeout: float) -> Sample:
    """Run one timed child for ``reader`` on ``case`` and turn it into a :class:`Sample`."""
    if reader == "warmcheck":
        r = run_child(warmcheck_cmd(wc_base, path), stdout_to_null=True, timeout=timeout)
        ok = r.exit_code in WARMCHECK_OK_CODES
        err = None if ok else f"exit {r.exit_code}: {tail(r.stderr)}"
        return Sample(case, reader, rep, r.whole_s, r.rss_kib, r.exit_code, ok, parent_maxrss_kib(),
                      error=err)
    r = run_child(baseline_cmd(reader, case, path), stdout_to_null=False, timeout=timeout)
    s = Sample(case, reader, rep, r.whole_s, r.rss_kib, r.exit_code, ok=False,
               parent_maxrss_kib=parent_maxrss_kib())
    if r.exit_code != 0:
        s.error = f"exit {r.exit_code}{' (timeout)' if r.timed_out else ''}: {tail(r.stderr)}"
        return s
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        s.error = f"no JSON from child: {tail(r.stdout)} {tail(r.stderr)}"
        return s
    s.ok, s.read_s, s.import_s, s.points = True, res["read_s"], res["import_s"], res["points"]
    return s


# --------------------------------------------------------------------------------------------
# Checking warmcheck's JSON
# --------------------------------------------------------------------------------------------


def series_counts(doc: Any) -> list[tuple[str, dict[str, int]]]:
    """``[(run name, {tag: points})]`` from warmcheck's JSON report.

    Written against schema 1 (``runs[]`` each with ``run`` and ``series[]`` of ``{tag, points,
    superseded, ...}``). So that a small schema change doesn't break the harness, ``series`` may
    also be an object keyed by tag, and the count is the first integer among
    ``points``/``raw_points``/``n_points``/``count``. Raises ``ValueError`` when no runs or counts
    can be found.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        raise ValueError("JSON has no 'runs' list")
    result = []
    for i, run in enumerate(doc["runs"]):
        name = str(run.get("run") or run.get("name") or run.get("path") or f"#{i}")
        series = run.get("series", [])
        items = series.items() if isinstance(series, dict) else [(s.get("tag"), s) for s in series]
        counts: dict[str, int] = {}
        for tag, obj in items:
            n = next((obj[k] for k in ("points", "raw_points", "n_points", "count")
                      if isinstance(obj, dict) and isinstance(obj.get(k), int)), None)
            if n is None:
                raise ValueError(f"run {name} series {tag!r}: no point count in {sorted(obj)[:12]}")
            counts[str(tag)] = n
        result.append((name, counts))
    return result


def verify_warmcheck(case: str, path: Path, manifest: dict[str, Any], wc_base: list[str],
                     timeout: float) -> Verification:
    """Run warmcheck once (untimed) and compare its per-series point counts to the manifest."""
    spec = manifest["spec"]
    per_series = int(manifest["expected_points_per_series"])
    tags = set(spec["tags"])
    v = Verification(case, exit_code=0, ok=False, expected_runs=len(manifest["run_dirs"]),
                     expected_points=int(manifest["expected_points"]),
                     expected_points_per_series=per_series)
    r = run_child(warmcheck_cmd(wc_base, path), stdout_to_null=False, timeout=timeout)
    v.exit_code = r.exit_code
    if r.exit_code not in WARMCHECK_OK_CODES:
        v.problems.append(f"exit code {r.exit_code}: {tail(r.stderr)}")
    try:
        doc = json.loads(r.stdout)
        runs = series_counts(doc)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        v.problems.append(f"unusable JSON ({exc}); stdout starts {r.stdout[:200]!r}; "
                          f"stderr: {tail(r.stderr)}")
        return v
    v.runs = len(runs)
    v.series = sum(len(c) for _, c in runs)
    v.points = sum(sum(c.values()) for _, c in runs)
    if v.runs != v.expected_runs:
        v.problems.append(f"{v.runs} runs, expected {v.expected_runs}")
    bad = [(name, c) for name, c in runs if c != dict.fromkeys(tags, per_series)]
    for name, c in bad[:5]:
        wrong = {t: n for t, n in c.items() if n != per_series or t not in tags}
        missing = sorted(tags - set(c))
        v.problems.append(f"run {name}: wrong counts {wrong} missing {missing} "
                          f"(expected {per_series} per tag)")
    if len(bad) > 5:
        v.problems.append(f"... and {len(bad) - 5} more runs with wrong counts")
    # Every step is written once, so no point may be "superseded" by a later write of its step.
    superseded = sum(int(ser.get("superseded") or 0) for run in doc["runs"]
                     for ser in (run.get("series") or []) if isinstance(ser, dict))
    if superseded:
        v.problems.append(f"{superseded:,} points reported as superseded, expected 0")
    if v.points != v.expected_points:
        v.problems.append(f"{v.points:,} points in total, expected {v.expected_points:,}")
    v.ok = not v.problems
    return v


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def median_or_none(xs: Sequence[float | int | None]) -> float | None:
    """Median of the non-``None`` values, or ``None`` if there are none."""
    vals = [x for x in xs if x is not None]
    return float(statistics.median(vals)) if vals else None


def summarise(samples: list[Sample], cases: list[str], readers: list[str]) -> dict[str, Any]:
    """Per case and reader medians, plus paired ratios to warmcheck."""
    out: dict[str, Any] = {}
    for case in cases:
        rows: dict[str, Any] = {}
        by_reader = {rd: [s for s in samples if s.case == case and s.reader == rd] for rd in readers}
        for rd, ss in by_reader.items():
            good = [s for s in ss if s.ok]
            pts = sorted({s.points for s in good if s.points is not None})
            rows[rd] = {
                "reps_ok": len(good),
                "reps": len(ss),
                "whole_s": median_or_none([s.whole_s for s in good]),
                "read_s": median_or_none([s.read_s for s in good]),
                "import_s": median_or_none([s.import_s for s in good]),
                "rss_mb": median_or_none([s.rss_kib / 1024 for s in good]),
                "points": pts[0] if len(pts) == 1 else (pts or None),
                "exit_codes": sorted({s.exit_code for s in ss}),
                "errors": [s.error for s in ss if s.error],
            }
        if "warmcheck" in readers:
            wc = {s.rep: s for s in by_reader["warmcheck"] if s.ok}
            for rd in readers:
                if rd == "warmcheck":
                    continue
                ratios = [s.whole_s / wc[s.rep].whole_s for s in by_reader[rd] if s.ok and s.rep in wc]
                rows[rd]["ratio_to_warmcheck"] = median_or_none(ratios)
                rows[rd]["ratios_per_rep"] = ratios
            wc_rss = rows["warmcheck"]["rss_mb"]
            others = [rows[rd]["rss_mb"] for rd in readers if rd != "warmcheck"]
            rows["warmcheck"]["rss_below_all_baselines"] = (
                None if wc_rss is None or not others or None in others
                else all(wc_rss < o for o in others))
        out[case] = rows
    return out


def fmt(x: float | None, spec: str) -> str:
    """Format a number or show a dash."""
    return "—" if x is None else format(x, spec)


def markdown_table(summary: dict[str, Any], verifications: dict[str, Verification],
                   readers: list[str]) -> str:
    """The results as a markdown table (one row per case and reader) plus a per-case summary."""
    lines = [
        "| case | reader | whole-process s | read s | peak RSS MB | points | × warmcheck (whole) | ok reps |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case, rows in summary.items():
        for rd in readers:
            row = rows[rd]
            pts = row["points"]
            pts_s = f"{pts:,}" if isinstance(pts, int) else ("—" if pts is None else str(pts))
            if rd == "warmcheck":
                v = verifications.get(case)
                pts_s = "—" if v is None or v.points is None else f"{v.points:,}"
                if v is not None and not v.ok:
                    pts_s += " ⚠"
                ratio = "1"
            else:
                ratio = fmt(row.get("ratio_to_warmcheck"), ".1f")
            lines.append(
                f"| {case} | {LABELS[rd]} | {fmt(row['whole_s'], '.2f')} | {fmt(row['read_s'], '.2f')} | "
                f"{fmt(row['rss_mb'], '.0f')} | {pts_s} | {ratio} | {row['reps_ok']}/{row['reps']} |")
    if "warmcheck" in readers and len(readers) > 1:
        others = [rd for rd in readers if rd != "warmcheck"]
        head = " | ".join(f"{LABELS[rd]} / warmcheck" for rd in others)
        lines += ["", f"| case | {head} | warmcheck RSS below both | warmcheck points check | exit |",
                  "|---|" + "---:|" * len(others) + "---|---|---:|"]
        for case, rows in summary.items():
            ratios = " | ".join(fmt(rows[rd].get("ratio_to_warmcheck"), ".1f") + "×" for rd in others)
            below = rows["warmcheck"].get("rss_below_all_baselines")
            v = verifications.get(case)
            check = "—" if v is None else ("ok" if v.ok else "FAIL")
            codes = ",".join(str(c) for c in rows["warmcheck"]["exit_codes"])
            lines.append(f"| {case} | {ratios} | {'—' if below is None else ('yes' if below else 'no')} "
                         f"| {check} | {codes} |")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """Versions and machine facts that make a result comparable."""
    versions = {}
    for pkg in ("tensorboard", "tbparse", "protobuf", "numpy", "pandas", "google-crc32c", "warmcheck"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, text=True,
                                capture_output=True, check=False).stdout.strip() or None
    except OSError:
        commit = None
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "packages": versions,
        "git_commit": commit,
    }


def warm_page_cache(case_dir: Path) -> None:
    """Read every file once so that all readers see a warm page cache (as in the reference).

    Reads into one small reused buffer: a large read would raise this process's peak RSS, and
    with it the floor of every child's reported peak.
    """
    buf = bytearray(1 << 20)
    for p in sorted(case_dir.rglob("*")):
        if p.is_file():
            with open(p, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass


def ensure_data(data_dir: Path, cases: list[str], quick: bool) -> dict[str, dict[str, Any]]:
    """Run ``make_data.py`` in a subprocess (a no-op when cached) and load the case manifests."""
    cmd = [sys.executable, str(MAKE_DATA), "--out", str(data_dir), "--cases", ",".join(cases)]
    subprocess.run(cmd + (["--quick"] if quick else []), cwd=REPO_ROOT, check=True)
    manifests = {}
    for case in cases:
        with open(data_dir / f"{case}.manifest.json", encoding="utf-8") as fh:
            manifests[case] = json.load(fh)
    return manifests


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_cases(text: str) -> list[str]:
    """``"a,b,c"`` -> ``["a", "b", "c"]``, rejecting unknown names."""
    cases = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown case(s) {bad}; choose from {','.join(CASES)}")
    return cases


def parse_readers(text: str) -> list[str]:
    """``"warmcheck,tbparse,ea"`` -> list; ``EventAccumulator`` is accepted for ``ea``."""
    names = [{"eventaccumulator": "ea"}.get(r.strip().lower(), r.strip().lower())
             for r in text.split(",") if r.strip()]
    bad = [r for r in names if r not in READERS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown reader(s) {bad}; choose from {','.join(READERS)}")
    return [r for r in READERS if r in names]  # canonical order


def main(argv: list[str] | None = None) -> int:
    """Command line entry point. Exits 1 if any sample failed or warmcheck's counts were wrong."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=parse_cases, default=list(CASES),
                    help="comma list (default a,b,c)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    ap.add_argument("--readers", type=parse_readers, default=list(READERS),
                    help="comma list of warmcheck,tbparse,ea (default all)")
    ap.add_argument("--warmcheck-cmd", default="warmcheck",
                    help='command that runs warmcheck, e.g. "python -m warmcheck" (default warmcheck)')
    ap.add_argument("--quick", action="store_true", help="tiny data (bench/out/data-quick) for a smoke run")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="data dir (default bench/out/data, or data-quick)")
    ap.add_argument("--results", type=Path, default=None,
                    help="JSON output (default bench/out/results.json, results-quick.json with --quick)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per child (default 1800)")
    args = ap.parse_args(argv)

    data_dir: Path = args.data_dir or (DEFAULT_QUICK_DATA if args.quick else DEFAULT_DATA)
    results_path: Path = args.results or (
        BENCH_DIR / "out" / ("results-quick.json" if args.quick else "results.json"))
    readers: list[str] = args.readers
    cases: list[str] = args.cases
    wc_base = warmcheck_base(args.warmcheck_cmd) if "warmcheck" in readers else []
    all_manifests = ensure_data(data_dir, cases, args.quick)
    env = environment()
    env["parent_maxrss_kib_start"] = parent_maxrss_kib()
    if "numpy" in sys.modules:  # would raise every child's RSS floor; see the module docstring
        print("warning: numpy got imported into the benchmark parent; child RSS figures include it",
              file=sys.stderr)
    print(f"python {env['python']} · cpus {env['cpus']} · load {env['loadavg_start']} · "
          f"parent RSS {env['parent_maxrss_kib_start'] / 1024:.0f} MB · "
          f"readers {','.join(readers)} · reps {args.reps} · data {data_dir}", file=sys.stderr)

    samples: list[Sample] = []
    verifications: dict[str, Verification] = {}
    manifests: dict[str, Any] = {}
    for case in cases:
        manifest = all_manifests[case]
        manifests[case] = {k: manifest[k] for k in ("expected_points", "files", "total_bytes",
                                                    "content_sha256", "spec")}
        path = data_dir / case
        warm_page_cache(path)
        if "warmcheck" in readers:
            v = verify_warmcheck(case, path, manifest, wc_base, args.timeout)
            verifications[case] = v
            status = "ok" if v.ok else "PROBLEMS: " + "; ".join(v.problems)
            print(f"[{case}] warmcheck check (untimed): exit {v.exit_code}, runs {v.runs}, "
                  f"series {v.series}, points {v.points} — {status}", file=sys.stderr)
        for rep in range(args.reps):
            order = readers[rep % len(readers):] + readers[:rep % len(readers)]
            for rd in order:
                s = sample(rd, case, rep + 1, path, wc_base, args.timeout)
                samples.append(s)
                extra = f" read {s.read_s:.2f}s" if s.read_s is not None else ""
                pts = "—" if s.points is None else s.points
                print(f"[{case}] rep {rep + 1} {LABELS[rd]:<16} whole {s.whole_s:7.2f}s{extra} "
                      f"rss {s.rss_kib / 1024:6.0f}MB points {pts} exit {s.exit_code}"
                      f"{'' if s.ok else ' FAILED: ' + (s.error or '')}", file=sys.stderr)

    summary = summarise(samples, cases, readers)
    table = markdown_table(summary, verifications, readers)
    print(table)
    results = {
        "environment": env | {"loadavg_end": os.getloadavg(), "parent_maxrss_kib_end": parent_maxrss_kib()},
        "settings": {"cases": cases, "reps": args.reps, "readers": readers, "quick": args.quick,
                     "warmcheck_cmd": wc_base, "data_dir": str(data_dir)},
        "data": manifests,
        "summary": summary,
        "warmcheck_verification": {c: asdict(v) for c, v in verifications.items()},
        "samples": [asdict(s) for s in samples],
        "table_markdown": table,
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    with open(results_path, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2)
        fh.write("\n")
    print(f"results written to {results_path}", file=sys.stderr)
    failed = [s for s in samples if not s.ok] or [v for v in verifications.values() if not v.ok]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
