#!/usr/bin/env python
"""Peak memory, time and points kept of ``warmcheck analyze`` on issue 10's hostile inputs.

Every builder registered in ``tests/hostile_inputs.py`` is built (by default at ``"full"`` scale,
the issue's sizes; sparse files and gzip keep them small on disk) into a temporary directory, in a
subprocess, and deleted after its measurement. Then ``python -m warmcheck analyze PATH --format json``
runs in a fresh child process:

* under a virtual-memory limit (``RLIMIT_AS``, ``--mem-limit-mib``, default 2048: a blow-up fails
  fast with MemoryError instead of swapping the shared machine) and a wall-clock ``--timeout``;
* peak RSS is the child's ``ru_maxrss`` from ``os.wait4`` (worker processes it reaped included);
  this parent stays lean (no numpy, inputs built in a subprocess) because Linux carries the parent's
  peak RSS into a child at exec (see ``bench/run_bench.py``);
* recorded: wall time, exit code, good points kept (the JSON's ``points`` + ``superseded`` over
  every run and series), the findings' codes, and whether a traceback, WC021 or an "internal
  error" line, or a Python warning (``RuntimeWarning: ...``) appeared.

A row PASSes when there is no traceback, no WC021, no timeout, the exit code is the documented one,
every expected finding code appears, the expected points are kept, and for items 1-4 and 6 (the
issue's acceptance) the peak RSS is under 500 MB.

``--compare DIR`` (a checkout of an older commit) or ``--before-ref REV`` (a temporary git worktree
of REV, removed at the end) runs the same inputs, built by this tree's builders, against that code
too and prints a before/after markdown table. Inputs run one at a time.

Usage::

    python bench/hostile_bench.py                          # full scale, this checkout
    python bench/hostile_bench.py --before-ref ac332dc     # before/after table
    python bench/hostile_bench.py --only event_zero_tail,wide_csv --scale small
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
INPUTS_DIR = REPO_ROOT / "tests"  # where hostile_inputs.py is; --inputs-dir changes it
DEFAULT_RESULTS = BENCH_DIR / "out" / "hostile-results.json"
MEMORY_ITEMS = (1, 2, 3, 4, 6)  # acceptance: under 500 MB peak and every good point kept
MEMORY_BOUND_MB = 500.0

# Run in a subprocess so that the build's memory never raises this parent's peak RSS.
_LIST_SNIPPET = """
import json, sys
sys.path.insert(0, sys.argv[1])
from hostile_inputs import BUILDERS
print(json.dumps({n: {"item": b.item, "description": b.description, "points": dict(b.points),
                      "codes": None if b.codes is None else list(b.codes), "exit_code": b.exit_code,
                      "args": list(b.args), "env": dict(b.env), "scales": list(b.scales)}
                  for n, b in BUILDERS.items()}))
"""
_BUILD_SNIPPET = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from hostile_inputs import BUILDERS
b = BUILDERS[sys.argv[2]]
path = b.build(Path(sys.argv[3]), sys.argv[4])
cwd = b.cwd(path) if b.cwd is not None else None
print(json.dumps({"path": str(path), "cwd": None if cwd is None else str(cwd)}))
"""


@dataclass
class Measurement:
    """One run of the CLI on one input against one checkout."""

    code_dir: str
    exit_code: int | None = None
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    points: int | None = None
    codes: list[str] = field(default_factory=list)
    traceback: bool = False
    py_warning: bool = False  # a Python warning (RuntimeWarning, ...) printed on stderr
    wc021: bool = False
    timed_out: bool = False
    json_ok: bool = False
    has_error: bool = False
    stderr_tail: str = ""
    problems: list[str] = field(default_factory=list)
    verdict: str = ""


@dataclass
class Row:
    """One input: its spec and its measurements (``after`` = this checkout)."""

    name: str
    item: int
    description: str
    scale: str
    expected_points: int | None
    expected_codes: list[str] | None
    expected_exit: int | None
    build_s: float = 0.0
    disk_kib: int = 0
    apparent_mib: float = 0.0
    after: Measurement | None = None
    before: Measurement | None = None


def tail(text: str, lines: int = 6) -> str:
    """The last ``lines`` non-empty lines of ``text``."""
    return "\n".join([ln for ln in text.strip().splitlines() if ln.strip()][-lines:])


def list_builders() -> dict[str, dict[str, Any]]:
    """The registry, read in a subprocess."""
    out = subprocess.run([sys.executable, "-c", _LIST_SNIPPET, str(INPUTS_DIR)], check=True,
                         capture_output=True, text=True, cwd=REPO_ROOT).stdout
    return dict(json.loads(out))


def build(name: str, dest: Path, scale: str, timeout: float) -> tuple[Path, Path | None, float]:
    """Build input ``name`` under ``dest`` in a subprocess; return (path, cwd, seconds)."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _BUILD_SNIPPET, str(INPUTS_DIR), name, str(dest), scale],
                       capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"building {name} failed: {tail(r.stderr)}")
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    return Path(doc["path"]), (Path(doc["cwd"]) if doc["cwd"] else None), time.perf_counter() - t0


def disk_usage(path: Path) -> tuple[int, float]:
    """(KiB allocated on disk, MiB apparent size) of everything under ``path``."""
    blocks = apparent = 0
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        try:
            st = p.lstat()
        except OSError:
            continue
        if p.is_file():
            blocks += st.st_blocks * 512
            apparent += st.st_size
    return blocks // 1024, apparent / 2**20


def _limit_memory(limit_bytes: int) -> Any:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    return preexec


def collect(doc: Any) -> tuple[int, list[str], bool]:
    """Points + superseded over every run and series, the sorted finding codes, and whether any
    finding has error severity, of a JSON report."""
    points = 0
    findings = [f for f in doc.get("findings") or [] if isinstance(f, dict)]
    for run in doc.get("runs") or []:
        for s in run.get("series") or []:
            points += int(s.get("points") or 0) + int(s.get("superseded") or 0)
        findings += [f for f in run.get("findings") or [] if isinstance(f, dict)]
    codes = sorted({str(f.get("code")) for f in findings if f.get("code")})
    return points, codes, any(f.get("severity") == "error" for f in findings)


def run_cli(code_dir: Path, path: Path, cwd: Path | None, args: list[str], extra_env: dict[str, str],
            limit_mib: int, timeout: float) -> Measurement:
    """``python -m warmcheck analyze PATH --format json ARGS`` with ``code_dir``'s warmcheck."""
    m = Measurement(code_dir=str(code_dir))
    env = dict(os.environ)
    env.update(extra_env)
    # The builder's PYTHONPATH (e.g. "." for a sitecustomize hook) first, then the code under test,
    # which must win over the editable install of this checkout.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_env.get("PYTHONPATH"), str(code_dir),
                                                    os.environ.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "warmcheck", "analyze", str(path), "--format", "json", *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd or code_dir, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, env=env, preexec_fn=_limit_memory(limit_mib << 20),
                                start_new_session=True)
        fired = threading.Event()

        def kill() -> None:
            fired.set()
            try:
                os.killpg(proc.pid, 9)  # the CLI and any worker it started
            except ProcessLookupError:
                pass

        killer = threading.Timer(timeout, kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        m.wall_s = time.perf_counter() - t0
        m.exit_code = os.waitstatus_to_exitcode(status)
        proc.returncode = m.exit_code
        m.timed_out = fired.is_set()
        m.peak_rss_mb = usage.ru_maxrss / 1024
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    m.traceback = "Traceback (most recent call last)" in stdout + stderr
    m.py_warning = re.search(r"\b\w*Warning: ", stderr) is not None
    m.stderr_tail = tail(stderr)
    try:
        doc = json.loads(stdout)
        m.points, m.codes, m.has_error = collect(doc)
        m.json_ok = True
    except (ValueError, TypeError, AttributeError):
        m.json_ok = False
    m.wc021 = "WC021" in m.codes or "WC021" in stderr or "internal error" in stderr
    return m


def judge(row: Row, m: Measurement, check_memory: bool) -> None:
    """Fill ``m.problems`` and ``m.verdict`` (PASS/FAIL) against the row's expectations."""
    p = m.problems
    if m.timed_out:
        p.append("timeout")
    if m.traceback:
        p.append("traceback")
    if m.wc021:
        p.append("internal error (WC021)")
    if m.py_warning:
        p.append("Python warning on stderr")
    if not m.json_ok:
        p.append("no JSON report")
    # The documented rule, unless the builder names a code: 2 if nothing could be analysed, else
    # 1 iff an error finding, else 0.
    expected = row.expected_exit
    if expected is None and m.json_ok:
        expected = 2 if not m.points else (1 if m.has_error else 0)
    if expected is not None and m.exit_code != expected:
        p.append(f"exit {m.exit_code}, expected {expected}")
    if row.expected_points is not None and m.points != row.expected_points:
        p.append(f"points {m.points}, expected {row.expected_points}")
    missing = [c for c in row.expected_codes or [] if c not in m.codes]
    if missing:
        p.append(f"missing finding(s) {','.join(missing)}")
    if check_memory and row.item in MEMORY_ITEMS and (m.peak_rss_mb or 0) >= MEMORY_BOUND_MB:
        p.append(f"peak {m.peak_rss_mb:.0f} MB >= {MEMORY_BOUND_MB:.0f} MB")
    m.verdict = "FAIL" if p else "PASS"


def fmt_num(x: float | int | None, spec: str) -> str:
    """A number, or a dash."""
    return "—" if x is None else format(x, spec)


def cell(m: Measurement | None) -> list[str]:
    """Peak MB, time, points, exit cells of one measurement."""
    if m is None:
        return ["—"] * 4
    t = fmt_num(m.wall_s, ".1f") + (" (timeout)" if m.timed_out else "")
    exit_s = fmt_num(m.exit_code, "d")
    if m.traceback or m.wc021:
        exit_s += " " + "+".join(x for x, on in (("traceback", m.traceback), ("WC021", m.wc021)) if on)
    return [fmt_num(m.peak_rss_mb, ".0f"), t, fmt_num(m.points, ",d"), exit_s]


def markdown(rows: list[Row], before: bool) -> str:
    """The results table (before/after columns when a comparison ran)."""
    if before:
        head = ("| item | input | expected points | before: peak MB | time s | points | exit "
                "| after: peak MB | time s | points | exit | codes (after) | verdict |")
        sep = "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---|---|---|"
    else:
        head = "| item | input | expected points | peak MB | time s | points | exit | codes | verdict |"
        sep = "|---:|---|---:|---:|---:|---:|---|---|---|"
    lines = [head, sep]
    for r in rows:
        a = r.after
        codes = ",".join(a.codes) if a else "—"
        verdict = "—" if a is None else a.verdict + (f" ({'; '.join(a.problems)})" if a.problems else "")
        cells = [str(r.item), f"`{r.name}`", fmt_num(r.expected_points, ",d")]
        if before:
            cells += cell(r.before)
        cells += [*cell(a), codes or "—", verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def make_worktree(rev: str) -> Path:
    """``git worktree add`` a detached checkout of ``rev`` in a temp dir."""
    dest = Path(tempfile.mkdtemp(prefix="wc-hostile-before-"))
    dest.rmdir()
    subprocess.run(["git", "worktree", "add", "--detach", str(dest), rev], cwd=REPO_ROOT, check=True,
                   capture_output=True)
    return dest


def remove_worktree(dest: Path) -> None:
    """Undo :func:`make_worktree`."""
    subprocess.run(["git", "worktree", "remove", "--force", str(dest)], cwd=REPO_ROOT, check=False,
                   capture_output=True)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exits 1 if any row FAILs (after)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=("small", "full"), default="full")
    ap.add_argument("--only", default="", help="comma list of input names (default: all)")
    ap.add_argument("--items", default="", help="comma list of issue item numbers (default: all)")
    ap.add_argument("--compare", type=Path, default=None, help="older checkout to compare against")
    ap.add_argument("--before-ref", default=None, help="git revision to compare against (worktree)")
    ap.add_argument("--no-after", action="store_true", help="only run the --compare/--before-ref code")
    ap.add_argument("--mem-limit-mib", type=int, default=2048, help="RLIMIT_AS of the CLI (default 2048)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per CLI run (default 180)")
    ap.add_argument("--build-timeout", type=float, default=600.0)
    ap.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    ap.add_argument("--tmp", type=Path, default=None, help="where inputs are built (default $TMPDIR)")
    ap.add_argument("--inputs-dir", type=Path, default=None,
                    help="directory holding the hostile_inputs.py to use (default tests/)")
    args = ap.parse_args(argv)
    global INPUTS_DIR
    if args.inputs_dir is not None:
        INPUTS_DIR = args.inputs_dir.resolve()

    specs = list_builders()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        ap.error(f"unknown input(s) {unknown}; have {sorted(specs)}")
    if args.items:
        items = {int(x) for x in args.items.split(",") if x.strip()}
        names = [n for n in names if specs[n]["item"] in items]
    names = [n for n in names if args.scale in specs[n]["scales"]]
    names.sort(key=lambda n: (specs[n]["item"], n))

    before_dir: Path | None = args.compare
    worktree: Path | None = None
    if args.before_ref:
        worktree = before_dir = make_worktree(args.before_ref)
    check_memory = args.scale == "full"
    rows: list[Row] = []
    print(f"hostile bench: {len(names)} inputs, scale {args.scale}, RLIMIT_AS {args.mem_limit_mib} MiB, "
          f"timeout {args.timeout:.0f} s, before {before_dir or '—'}", file=sys.stderr)
    try:
        for name in names:
            s = specs[name]
            row = Row(name, s["item"], s["description"], args.scale, s["points"].get(args.scale),
                      s["codes"], s["exit_code"])
            with tempfile.TemporaryDirectory(prefix=f"wc-hostile-{name}-", dir=args.tmp) as tmp:
                path, cwd, row.build_s = build(name, Path(tmp), args.scale, args.build_timeout)
                row.disk_kib, row.apparent_mib = disk_usage(Path(tmp))
                runs: list[tuple[str, Path]] = []
                if before_dir is not None:
                    runs.append(("before", before_dir))
                if not args.no_after:
                    runs.append(("after", REPO_ROOT))
                for label, code_dir in runs:
                    m = run_cli(code_dir, path, cwd, list(s["args"]), dict(s["env"]),
                                args.mem_limit_mib, args.timeout)
                    judge(row, m, check_memory)
                    setattr(row, label, m)
                    print(f"[item {row.item:>2} {name}] {label}: exit {m.exit_code} "
                          f"peak {fmt_num(m.peak_rss_mb, '.0f')} MB {fmt_num(m.wall_s, '.1f')} s "
                          f"points {m.points} codes {','.join(m.codes) or '-'} -> {m.verdict}"
                          f"{' (' + '; '.join(m.problems) + ')' if m.problems else ''}",
                          file=sys.stderr)
            rows.append(row)
    finally:
        if worktree is not None:
            remove_worktree(worktree)

    table = markdown(rows, before=before_dir is not None)
    print(table)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, text=True,
                            capture_output=True, check=False).stdout.strip()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    doc = {"commit": commit, "before": args.before_ref or (str(args.compare) if args.compare else None),
           "scale": args.scale, "mem_limit_mib": args.mem_limit_mib, "timeout_s": args.timeout,
           "python": sys.version.split()[0], "cpus": os.cpu_count(),
           "rows": [asdict(r) for r in rows], "table_markdown": table}
    args.results.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {args.results}", file=sys.stderr)
    return 1 if any(r.after is not None and r.after.verdict == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
