"""warmcheck analyze on object storage: N generated runs on a local S3 endpoint (moto's server on
127.0.0.1, the real s3fs client over HTTP), without the cache, cold, warm, and warm with one run changed
(issue 12's bench).

    python bench/s3_bench.py --dask 2         # 10,000 runs (about 10 minutes on the shared 2-core VM)
    python bench/s3_bench.py --runs 1000      # a quicker look, without the dask row
    python bench/s3_bench.py --quick          # 300 runs, a smoke run

The tree is the one of bench/cache_bench.py (a third each TensorBoard event files, CSV and JSONL; lr +
loss, ``--steps`` steps; one file per run), written to a local directory and uploaded to a bucket of a
``python -m moto.server`` subprocess (its own process: its memory and CPU are not the bench's or the
CLI's). Every figure is one fresh child process, ``python -m warmcheck analyze s3://BUCKET/runs/
--format json -q --storage-option endpoint_url=... -j J``:

- ``listing``: a child that lists the prefix with ``warmcheck.storage.find`` (one ListObjectsV2 page per
  1,000 keys): the floor of every command below;
- ``no cache`` (``--no-cache``), ``cold`` (an empty ``--cache-dir``), ``warm`` (the same again);
- ``one changed``: one CSV object uploaded again with one more row, then the warm cache dir;
- ``local disk``: the same tree from the local directory, ``--no-cache`` (for scale);
- with ``--dask N``: ``--no-cache --scheduler`` on a LocalCluster of N single-threaded workers started by
  the bench (their environment has the dummy credentials; the endpoint comes with each task).

The JSON reports are compared: no cache = cold = warm = the local disk's after the URL prefix is
replaced by the local path; one changed = ``--no-cache`` after the change (and differs from warm) = dask.
Requests are counted from the moto server's request log (werkzeug logs one line per request).
Peak RSS is the child's ``ru_maxrss`` from ``os.wait4``: the largest of the CLI process and the worker
processes it waited for (not their sum). The bench process stays lean (no numpy) because Linux carries
a parent's peak RSS into children at exec.

Prints a markdown table on stdout, writes bench/out/s3-results.json; exits 1 if a report differs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUCKET = "wc-bench"
PREFIX = "runs"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
_REQUEST = re.compile(r'"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/')
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours the lines of some answers


# -- children (run as ``s3_bench.py --child MODE ...``) ---------------------------------------------------

def _make(root: str, runs: str, steps: str) -> None:
    sys.path.insert(0, str(HERE))
    from cache_bench import make_tree

    make_tree(Path(root), int(runs), int(steps))


def _s3(endpoint: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing", skip_instance_cache=True,
                             use_listings_cache=False)


def _upload(endpoint: str, root: str, *files: str) -> None:
    """The whole tree (no ``files``) into a new bucket, or the ``files`` given (paths under ``root``) again."""
    fs = _s3(endpoint)
    if not files:
        fs.mkdir(BUCKET)
        fs.put(root.rstrip("/") + "/", f"{BUCKET}/{PREFIX}", recursive=True)
        return
    for f in files:
        fs.put_file(f, f"{BUCKET}/{PREFIX}/{os.path.relpath(f, root)}")


def _list(endpoint: str, url: str) -> None:
    from warmcheck import storage

    storage.set_storage_options({"endpoint_url": endpoint})
    t = time.perf_counter()
    kind, entries = storage.find(url)
    print(json.dumps({"kind": kind, "objects": len(entries), "list_s": time.perf_counter() - t}))


def _cluster(workers: str) -> None:
    """A dask LocalCluster (``workers`` single-threaded worker processes) until stdin closes; its address
    on stdout. The workers inherit this process's environment: the dummy credentials, not the endpoint."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=int(workers), threads_per_worker=1, host="127.0.0.1", scheduler_port=0,
                      dashboard_address=":0", silence_logs=50) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()


# -- the parent ------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Moto:
    """``python -m moto.server`` on a free port of 127.0.0.1, its request log in a file."""

    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self._fh, stderr=subprocess.STDOUT, env={**os.environ, **AWS_ENV})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the moto server did not start")

    def lines(self) -> int:
        """Lines in the request log so far (after the server has written what it answered)."""
        time.sleep(0.3)
        with open(self.log, "rb") as fh:
            return sum(1 for _ in fh)

    def requests_since(self, start: int) -> dict[str, int]:
        """Requests logged after line ``start``, by kind: LIST (ListObjectsV2), GET, HEAD, PUT, other."""
        time.sleep(0.3)
        counts: Counter[str] = Counter()
        with open(self.log, "rb") as fh:
            for i, raw in enumerate(fh):
                if i < start:
                    continue
                m = _REQUEST.search(_COLOUR.sub("", raw.decode("utf-8", "replace")))
                if m is None:
                    continue
                method, target = m.groups()
                kind = "LIST" if method == "GET" and "list-type=" in target else method
                counts[kind if kind in ("LIST", "GET", "HEAD", "PUT") else "other"] += 1
        return dict(counts)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._fh.close()


def measure(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int, bytes, bytes]:
    """Wall seconds, peak RSS (MiB), exit code, stdout and stderr of one child process (run in ``cwd``:
    ``python -m`` puts the working directory first on sys.path, so not the checkout)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env, cwd=cwd)
        assert proc.stdout is not None
        data = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), data, err.read()


def change_one_run(root: Path, runs: int, steps: int) -> Path:
    """One more row in the last CSV run (a run still training); the file's path."""
    last = max(i for i in range(runs) if i % 3 == 1)
    path = root / f"g{last // 1000:02d}" / f"run{last:05d}" / "metrics.csv"
    with open(path, "a") as fh:
        fh.write(f"{steps},3e-05,0.5\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=0, help="warmcheck analyze -j (0: one per CPU)")
    ap.add_argument("--dask", type=int, default=0, metavar="WORKERS",
                    help="also --no-cache with --scheduler on a LocalCluster of this many workers (0: not)")
    ap.add_argument("--quick", action="store_true", help="300 runs: a smoke run")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        mode, *rest = args.child
        children: dict[str, Callable[..., None]] = {"make": _make, "upload": _upload, "list": _list,
                                                   "cluster": _cluster}
        children[mode](*rest)
        return 0
    if args.quick:
        args.runs = min(args.runs, 300)
    work = args.out / ("s3-quick" if args.quick else "s3")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tree, cache_dir = work / "tree", work / "cache"
    # A snapshot of the package: the caches are keyed on warmcheck's source (warmcheck.cache.code_fingerprint),
    # so an edit in the checkout during the bench would make "warm" cold again.
    code = work / "code"
    shutil.copytree(ROOT / "warmcheck", code / "warmcheck", ignore=shutil.ignore_patterns("__pycache__"))
    head = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    env = {**os.environ, **AWS_ENV, "XDG_CACHE_HOME": str(work / "xdg-cache"),
           "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    subprocess.run([*me, "make", str(tree), str(args.runs), str(args.steps)], check=True, env=env)
    tree_bytes = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    say(f"tree: {args.runs} runs x {args.steps} steps, {tree_bytes / 2**20:.1f} MiB, "
        f"written in {time.perf_counter() - t0:.1f} s")
    moto = Moto(work / "moto.log")
    rows: list[dict[str, Any]] = []
    try:
        mark = moto.lines()
        t0 = time.perf_counter()
        subprocess.run([*me, "upload", moto.endpoint, str(tree)], check=True, env=env)
        say(f"upload: {time.perf_counter() - t0:.1f} s, {moto.requests_since(mark)}")
        url = f"s3://{BUCKET}/{PREFIX}/"
        cli = [sys.executable, "-m", "warmcheck", "analyze", "--isolated", "-q", "--format", "json",
               "-j", str(args.jobs), "--storage-option", f"endpoint_url={moto.endpoint}"]

        def step(case: str, argv: list[str]) -> bytes:
            mark = moto.lines()
            wall, rss, code, data, err = measure(argv, env, work)
            row: dict[str, Any] = {"case": case, "wall_s": wall, "peak_rss_mib": rss, "exit": code,
                                   "requests": moto.requests_since(mark)}
            if case == "listing":
                row.update(json.loads(data))
            elif code not in (0, 1):
                raise RuntimeError(f"{case}: exit {code}: {err.decode(errors='replace')[-2000:]}")
            row["manifests"] = sorted(p.name for p in (cache_dir / "runs").glob("*.pkl"))
            rows.append(row)
            say(f"{case:26} {wall:7.2f} s {rss:6.0f} MiB exit {code} requests {row['requests']} "
                f"manifests {len(row['manifests'])}")
            return data

        step("listing", [*me, "list", moto.endpoint, url])
        plain = step("no cache", [*cli, "--no-cache", url])
        cold = step("cold", [*cli, "--cache-dir", str(cache_dir), url])
        warm = step("warm", [*cli, "--cache-dir", str(cache_dir), url])
        local = step("local disk, no cache", [*cli, "--no-cache", str(tree)])
        changed_file = change_one_run(tree, args.runs, args.steps)
        subprocess.run([*me, "upload", moto.endpoint, str(tree), str(changed_file)], check=True, env=env)
        changed = step("one changed", [*cli, "--cache-dir", str(cache_dir), url])
        after = step("no cache, after the change", [*cli, "--no-cache", url])
        on_dask = None
        if args.dask:
            cluster = subprocess.Popen([*me, "cluster", str(args.dask)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       env=env, cwd=work, text=True)
            try:
                assert cluster.stdout is not None
                address = cluster.stdout.readline().strip()
                on_dask = step(f"dask LocalCluster ({args.dask} workers), no cache",
                               [*cli, "--no-cache", "--scheduler", address, url])
            finally:
                assert cluster.stdin is not None
                cluster.stdin.close()
                cluster.wait(60)
    finally:
        moto.stop()
    as_local = plain.replace(url.rstrip("/").encode(), str(tree).encode())
    checks = {"no cache = cold = warm": plain == cold == warm,
              "S3 = local disk (paths normalised)": as_local == local,
              "one changed = no cache after the change": changed == after,
              "one changed differs from warm": changed != warm}
    if on_dask is not None:
        checks["dask = no cache after the change"] = on_dask == after
    runs = len(json.loads(plain)["runs"])
    doc = {"commit": head.stdout.strip(), "runs": args.runs, "runs_reported": runs, "steps": args.steps,
           "jobs": args.jobs, "cpus": os.cpu_count(),
           "tree_bytes": tree_bytes, "endpoint": "moto.server (subprocess)", "rows": rows, "checks": checks,
           "cache_bytes": sum(p.stat().st_size for p in cache_dir.rglob("*") if p.is_file())}
    (args.out / ("s3-results-quick.json" if args.quick else "s3-results.json")).write_text(json.dumps(doc, indent=2))
    print(f"{args.runs} runs ({tree_bytes / 2**20:.1f} MiB) on moto's S3 server, -j {args.jobs}, "
          f"code {doc['commit']}:\n")
    print("| case | wall s | runs/s | peak RSS MiB | requests (LIST / GET / HEAD) |\n|---|---:|---:|---:|---|")
    for r in rows:
        q = r["requests"]
        reqs = "—" if r["case"].startswith("local") else f"{q.get('LIST', 0)} / {q.get('GET', 0)} / {q.get('HEAD', 0)}"
        rate = f"{runs / r['wall_s']:,.0f}" if r["case"] != "listing" else "—"
        print(f"| {r['case']} | {r['wall_s']:.2f} | {rate} | {r['peak_rss_mib']:.0f} | {reqs} |")
    print()
    for name, ok in checks.items():
        print(f"- {name}: {ok}")
    shutil.rmtree(tree, ignore_errors=True)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
