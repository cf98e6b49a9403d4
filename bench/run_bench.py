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
import re
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
CASES = ("a", "b", "c", "d", "big")
DEFAULT_CASES = ("a", "b", "c")
DEFAULT_DATA = BENCH_DIR / "out" / "data"
DEFAULT_QUICK_DATA = BENCH_DIR / "out" / "data-quick"

READERS = ("warmcheck", "rustboard", "rustboard-checksum", "tbparse", "ea")
LABELS = {"warmcheck": "warmcheck", "rustboard": "Rust data server",
          "rustboard-checksum": "Rust data server --checksum", "tbparse": "tbparse", "ea": "EventAccumulator"}
# The 10M-point case is for warmcheck and the Rust server: tbparse and EventAccumulator would need minutes
# and gigabytes there (ask for them with --readers to run them anyway).
BIG_CASE_READERS = ("warmcheck", "rustboard", "rustboard-checksum")
RUSTBOARD_LINE = re.compile(r"Finished load cycle \(([0-9.]+)(ns|µs|us|ms|s)\)")
RUSTBOARD_UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
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
    """The measured command: ``warmcheck analyze <case path> --format json --no-cache``.

    ``--no-cache``: every sample reads and analyses every byte. With the default cache of reads the
    second sample would be a cache hit (0.3 s for case a), which no baseline gets.
    """
    return [*base, "analyze", str(path), "--format", "json", "--no-cache"]


def baseline_cmd(reader: str, case: str, path: Path) -> list[str]:
    """The child command for a baseline reader on ``case``."""
    args = [sys.executable, str(CHILD), reader, str(path)]
    if reader == "tbparse":
        if case == "b":
            args.append("--tensors")  # TF2 scalars land in .tensors; .scalars is empty there
        if case in ("c", "d"):
            args.append("--dir-name")  # tells the 1000 runs apart
    return args


def rustboard_binary() -> str | None:
    """The ``tensorboard-data-server`` binary that ships inside the tensorboard wheel (None: not there)."""
    try:
        from tensorboard_data_server import server_binary  # a tiny module: no numpy in this parent
    except ImportError:
        return None
    return server_binary()


def rustboard_sample(case: str, rep: int, path: Path, timeout: float, count: bool, checksum: bool = False,
                     ) -> Sample:
    """TensorBoard's Rust data server loading ``path`` once, every point kept, timed as it reports.

    ``server --logdir PATH --reload once --samples-per-plugin scalars=all --port 0 -v`` logs "Finished
    load cycle (T)" when every file is loaded: ``read_s`` is that T (its own figure, its start-up
    excluded), ``whole_s`` the time from spawning it to that line. The server then keeps serving: with
    ``count``, a child asks it over gRPC for every scalar point (untimed), then it is killed; its peak
    RSS is read from ``wait4``. By default it checks the data CRC of a record only when the record does not
    parse; ``checksum`` adds ``--checksum`` (every record's, as warmcheck always does).
    """
    binary = rustboard_binary()
    s = Sample(case, "rustboard-checksum" if checksum else "rustboard", rep, 0.0, 0, 0, ok=False,
               parent_maxrss_kib=parent_maxrss_kib())
    if binary is None:
        s.error = "tensorboard-data-server binary not found"
        return s
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        cmd = [binary, "--logdir", str(path), "--reload", "once", "--samples-per-plugin", "scalars=all",
               "--port", "0", "--port-file", str(port_file), "--host", "127.0.0.1", "-v"]
        if checksum:
            cmd.append("--checksum")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace")
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        log: list[str] = []
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                log.append(line)
                m = RUSTBOARD_LINE.search(line)
                if m:
                    s.whole_s = time.perf_counter() - t0
                    s.read_s = float(m.group(1)) * RUSTBOARD_UNITS[m.group(2)]
                    break
            if s.read_s is not None and count:
                port = int(port_file.read_text().strip())
                r = run_child([sys.executable, str(CHILD), "rustboard-count", str(port)], False, timeout)
                s.points = json.loads(r.stdout.strip().splitlines()[-1])["points"] if r.exit_code == 0 else None
        finally:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            killer.cancel()
            if proc.stderr is not None:
                proc.stderr.close()
    s.rss_kib = int(usage.ru_maxrss)
    s.ok = s.read_s is not None
    if not s.ok:
        s.error = f"no 'Finished load cycle' line: {tail(''.join(log))}"
    return s


def sample(reader: str, case: str, rep: int, path: Path, wc_base: list[str], timeout: float) -> Sample:
    """Run one timed child for ``reader`` on ``case`` and turn it into a :class:`Sample`."""
    if reader in ("rustboard", "rustboard-checksum"):
        return rustboard_sample(case, rep, path, timeout, count=rep == 1, checksum=reader == "rustboard-checksum")
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
        by_reader = {rd: ss for rd, ss in by_reader.items() if ss}  # readers not run on this case (big)
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
        if "warmcheck" in by_reader:
            wc = {s.rep: s for s in by_reader["warmcheck"] if s.ok}
            for rd in by_reader:
                if rd == "warmcheck":
                    continue
                ratios = [s.whole_s / wc[s.rep].whole_s for s in by_reader[rd] if s.ok and s.rep in wc]
                rows[rd]["ratio_to_warmcheck"] = median_or_none(ratios)
                rows[rd]["ratios_per_rep"] = ratios
            for rd, suffix in (("rustboard", ""), ("rustboard-checksum", "_checksum")):
                if rd not in by_reader:
                    continue
                # The issue's measure: warmcheck's whole process over the server's own load-cycle time.
                load = [wc[s.rep].whole_s / s.read_s for s in by_reader[rd] if s.ok and s.rep in wc and s.read_s]
                rows["warmcheck"]["whole_over_rust_load" + suffix] = median_or_none(load)
                rows["warmcheck"]["whole_over_rust_load_per_rep" + suffix] = load
                pts = [s.points for s in by_reader[rd] if s.points is not None]
                rows[rd]["points"] = pts[0] if pts else None
            wc_rss = rows["warmcheck"]["rss_mb"]
            others = [rows[rd]["rss_mb"] for rd in by_reader if rd != "warmcheck"]
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
    """The results as a markdown table (one row per case and reader) plus a per-case summary.

    For the Rust data server, "read s" is its own load-cycle figure and "whole-process s" the time from
    spawning it to the end of that cycle.
    """
    lines = [
        "| case | reader | whole-process s | read s | peak RSS MB | points | × warmcheck (whole) | ok reps |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case, rows in summary.items():
        for rd in [r for r in readers if r in rows]:
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
                ratio = fmt(row.get("ratio_to_warmcheck"), ".2f" if rd == "rustboard" else ".1f")
            lines.append(
                f"| {case} | {LABELS[rd]} | {fmt(row['whole_s'], '.2f')} | {fmt(row['read_s'], '.2f')} | "
                f"{fmt(row['rss_mb'], '.0f')} | {pts_s} | {ratio} | {row['reps_ok']}/{row['reps']} |")
    if "warmcheck" in readers and len(readers) > 1:
        lines += ["", "| case | warmcheck whole / Rust load | ... / Rust --checksum load | others / warmcheck "
                  "(whole process) | warmcheck RSS below all | warmcheck points check | exit |",
                  "|---|---:|---:|---|---|---|---:|"]
        for case, rows in summary.items():
            if "warmcheck" not in rows:
                continue
            others = " · ".join(f"{LABELS[rd]} {fmt(rows[rd].get('ratio_to_warmcheck'), '.2f')}×"
                                for rd in readers if rd in rows and rd != "warmcheck")
            below = rows["warmcheck"].get("rss_below_all_baselines")
            v = verifications.get(case)
            check = "—" if v is None else ("ok" if v.ok else "FAIL")
            codes = ",".join(str(c) for c in rows["warmcheck"]["exit_codes"])
            lines.append(f"| {case} | {fmt(rows['warmcheck'].get('whole_over_rust_load'), '.2f')} "
                         f"| {fmt(rows['warmcheck'].get('whole_over_rust_load_checksum'), '.2f')} | {others} "
                         f"| {'—' if below is None else ('yes' if below else 'no')} | {check} | {codes} |")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """Versions and machine facts that make a result comparable."""
    versions = {}
    for pkg in ("tensorboard", "tensorboard-data-server", "tbparse", "protobuf", "numpy", "pandas",
                "google-crc32c", "warmcheck"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, text=True,
                                capture_output=True, check=False).stdout.strip() or None
    except OSError:
        commit = None
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_model": cpu,
        "memory_gib": mem_gib,
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "packages": versions,
        "git_commit": commit,
    }


def compile_bytecode() -> None:
    """Write warmcheck's ``.pyc`` files, as ``pip install`` does: a source checkout run with
    ``PYTHONDONTWRITEBYTECODE`` set would otherwise compile every module in every sample (+0.2 s)."""
    import importlib.util  # the spec only: warmcheck itself (and numpy) is not imported into this parent

    spec = importlib.util.find_spec("warmcheck")
    if spec is None or not spec.submodule_search_locations:
        return
    for location in spec.submodule_search_locations:
        subprocess.run([sys.executable, "-m", "compileall", "-q", location], check=False,
                       stdout=subprocess.DEVNULL)


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
    names = [{"rust": "rustboard", "tensorboard-data-server": "rustboard"}.get(r, r) for r in names]
    bad = [r for r in names if r not in READERS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown reader(s) {bad}; choose from {','.join(READERS)}")
    return [r for r in READERS if r in names]  # canonical order


def main(argv: list[str] | None = None) -> int:
    """Command line entry point. Exits 1 if any sample failed or warmcheck's counts were wrong."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=parse_cases, default=list(DEFAULT_CASES),
                    help="comma list of a,b,c,d,big (default a,b,c; big: 10M points, ~525 MB)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    ap.add_argument("--readers", type=parse_readers, default=None,
                    help="comma list of warmcheck,rustboard,rustboard-checksum,tbparse,ea (default all; "
                    "warmcheck and the Rust server on big)")
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
    readers: list[str] = args.readers or list(READERS)
    cases: list[str] = args.cases
    wc_base = warmcheck_base(args.warmcheck_cmd) if "warmcheck" in readers else []
    if "warmcheck" in readers:
        compile_bytecode()
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
        case_readers = readers if args.readers or case != "big" else [r for r in readers if r in BIG_CASE_READERS]
        for rep in range(args.reps):
            order = case_readers[rep % len(case_readers):] + case_readers[:rep % len(case_readers)]
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
