#!/usr/bin/env python
"""Write the deterministic TensorBoard event files that ``bench/run_bench.py`` reads.

Three cases (see ``bench/README.md`` and ``shared/domain/reader-performance.md``):

* ``a``: one run, one event file, 5 tags x 200,000 steps = 1,000,000 scalars stored as
  ``Summary.Value.simple_value`` (what torch's ``SummaryWriter`` and tensorboardX write).
* ``b``: the same series as TF2 tensor scalars: ``Summary.Value.tensor`` (DT_FLOAT, shape [],
  4-byte ``tensor_content``) with ``metadata.plugin_data.plugin_name = "scalars"`` on every event.
* ``c``: 1,000 runs (10 sweep dirs x 100 run dirs) x 500 steps x 2 tags, ``simple_value``.
* ``d``: case c as a sweep of warmup lengths (run i warms up for 50 + i % 100 steps): no two runs of a
  sweep dir share a schedule, so nothing a run's analysis caches per schedule helps the next.

The output is the same bytes on every run: values come from numpy with a fixed seed, wall times
are a fixed base plus a fixed increment, file names are fixed
(``events.out.tfevents.1700000000.bench.1.0``) and nothing host- or time-dependent is written.
Events are built with TensorBoard's own protobuf classes; the TFRecord framing (length, masked
CRC32C of the length, data, masked CRC32C of the data) is done here with ``google_crc32c``
because TensorBoard's ``RecordWriter`` computes the CRC in pure Python one byte at a time
(minutes for 1M records).

Each case gets a manifest ``<out>/<case>.manifest.json`` (outside the case directory, so that
readers walking the case directory never see it) holding the generation spec, the expected
point counts and the size and SHA-256 of every file. A later run whose spec matches and whose
files still hash the same skips the case. The manifest is what ``run_bench.py`` uses to know the
expected point counts.

Usage::

    python bench/make_data.py                 # full size into bench/out/data
    python bench/make_data.py --quick         # tiny sizes into bench/out/data-quick
    python bench/make_data.py --cases a --force
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import struct
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
from numpy.typing import NDArray

# Bump whenever the bytes written for the same spec change, so that old caches are regenerated.
GENERATOR_VERSION = 1

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "out" / "data"
DEFAULT_QUICK_OUT = BENCH_DIR / "out" / "data-quick"

# Fixed like a real writer's name (``events.out.tfevents.<time>.<host>.<pid>.<n>``), but constant.
EVENT_FILE_NAME = "events.out.tfevents.1700000000.bench.1.0"
BASE_WALL_TIME = 1_700_000_000.0
SEED = 20261129

TAGS_A = ("train/loss", "train/learning_rate", "train/grad_norm", "eval/loss", "throughput")
TAGS_C = ("train/loss", "train/lr")
CASES = ("a", "b", "c", "d", "big")
DEFAULT_CASES = ("a", "b", "c")

# Planted anomalies (full size). In quick mode the steps are moved inside the shorter run.
LOSS_SPIKE_STEP = 123_457
LOSS_SPIKE_FACTOR = 25.0
GRAD_SPIKE_STEP = 77_777
GRAD_SPIKE_FACTOR = 40.0

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class CaseSpec:
    """Everything that determines a case's bytes; stored in the manifest and compared for caching."""

    case: str
    kind: str  # "simple_value" or "tf2_tensor"
    tags: tuple[str, ...]
    steps: int
    sweeps: int  # 0 means: the case directory itself is the single run directory
    runs_per_sweep: int
    loss_spike_step: int | None
    grad_spike_step: int | None
    seed: int = SEED
    generator_version: int = GENERATOR_VERSION

    @property
    def run_dirs(self) -> list[str]:
        """Run directories relative to the case directory (``"."`` for a single-run case)."""
        if self.sweeps == 0:
            return ["."]
        return [f"sweep_{s:02d}/run_{r:03d}" for s in range(self.sweeps) for r in range(self.runs_per_sweep)]

    @property
    def expected_points(self) -> int:
        """Scalar points the case holds in total (every point of every tag of every run)."""
        return len(self.run_dirs) * len(self.tags) * self.steps


def case_specs(quick: bool = False) -> dict[str, CaseSpec]:
    """The three benchmark cases at full size, or tiny versions for a smoke run."""
    steps_ab = 2_000 if quick else 200_000
    loss_spike = LOSS_SPIKE_STEP if steps_ab > LOSS_SPIKE_STEP else steps_ab * 5 // 8 + 7
    grad_spike = GRAD_SPIKE_STEP if steps_ab > GRAD_SPIKE_STEP else steps_ab * 3 // 8 + 7
    sweeps, per_sweep, steps_c = (2, 5, 50) if quick else (10, 100, 500)
    steps_big = 20_000 if quick else 2_000_000
    return {
        "a": CaseSpec("a", "simple_value", TAGS_A, steps_ab, 0, 1, loss_spike, grad_spike),
        "b": CaseSpec("b", "tf2_tensor", TAGS_A, steps_ab, 0, 1, loss_spike, grad_spike),
        "c": CaseSpec("c", "simple_value", TAGS_C, steps_c, sweeps, per_sweep, None, None),
        "d": CaseSpec("d", "simple_value", TAGS_C, steps_c, sweeps, per_sweep, None, None),
        # Case a ten times longer (10M points, ~525 MB): memory must stay flat, cost linear in the size.
        "big": CaseSpec("big", "simple_value", TAGS_A, steps_big, 0, 1, loss_spike, grad_spike),
    }


# --------------------------------------------------------------------------------------------
# Series
# --------------------------------------------------------------------------------------------


def warmup_cosine(steps: int, peak: float, warmup: int, min_ratio: float = 0.1) -> FloatArray:
    """Linear warmup from ``peak/warmup`` to ``peak`` over ``warmup`` steps, then cosine to ``min``.

    This is the HF ``get_cosine_schedule_with_warmup`` shape with a floor, logged once per step.
    """
    s = np.arange(steps, dtype=np.float64)
    lr = np.empty(steps, dtype=np.float64)
    w = s < warmup
    lr[w] = peak * (s[w] + 1.0) / warmup
    progress = (s[~w] - warmup) / max(1, steps - warmup)
    lr[~w] = peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + np.cos(math.pi * progress)))
    return lr


def series_a(spec: CaseSpec) -> dict[str, FloatArray]:
    """The 5 series of cases a and b: LR schedule, noisy decaying losses, grad norm, throughput.

    Values are rounded to float32 here, because that is what both ``simple_value`` and a DT_FLOAT
    tensor store; every reader should then return exactly these numbers.
    """
    n = spec.steps
    rng = np.random.default_rng(spec.seed)
    s = np.arange(n, dtype=np.float64)
    scale = n / 200_000  # keeps the curve shapes the same in quick mode
    lr = warmup_cosine(n, 3e-4, max(10, round(2_000 * scale)))
    smooth = 2.0 + 8.0 * np.exp(-s / (30_000 * scale))
    loss = smooth * (1.0 + 0.03 * rng.standard_normal(n))
    grad = 1.0 + 0.5 * np.exp(-s / (20_000 * scale)) + 0.1 * np.abs(rng.standard_normal(n))
    eval_loss = smooth * 1.05 * (1.0 + 0.01 * rng.standard_normal(n))
    throughput = 12_000.0 + 150.0 * rng.standard_normal(n)
    if spec.loss_spike_step is not None:
        loss[spec.loss_spike_step] *= LOSS_SPIKE_FACTOR
    if spec.grad_spike_step is not None:
        grad[spec.grad_spike_step] *= GRAD_SPIKE_FACTOR
    out = {
        "train/loss": loss,
        "train/learning_rate": lr,
        "train/grad_norm": grad,
        "eval/loss": eval_loss,
        "throughput": throughput,
    }
    return {tag: out[tag].astype(np.float32).astype(np.float64) for tag in spec.tags}


def series_c(spec: CaseSpec, run_index: int) -> dict[str, FloatArray]:
    """Loss and LR of one sweep run: the peak LR depends on the sweep, the noise on the run (and, in case
    d, the warmup length on the run)."""
    n = spec.steps
    rng = np.random.default_rng(spec.seed + 1 + run_index)
    sweep = run_index // spec.runs_per_sweep
    s = np.arange(n, dtype=np.float64)
    warmup = max(2, n // 10) + (run_index % spec.runs_per_sweep if spec.case == "d" else 0)
    lr = warmup_cosine(n, 1e-4 * (sweep + 1), warmup)
    loss = (2.5 + 6.0 * np.exp(-s / (n / 4))) * (1.0 + 0.02 * rng.standard_normal(n))
    out = {"train/loss": loss, "train/lr": lr}
    return {tag: out[tag].astype(np.float32).astype(np.float64) for tag in spec.tags}


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C (same result as tensorboard's pure-Python ``masked_crc32c``)."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class RecordFramer:
    """Frames serialized events as TFRecords; caches the header for each record length.

    Records of one case have only a handful of distinct lengths, so caching the 12-byte header
    (length + its masked CRC) halves the CRC work.
    """

    def __init__(self) -> None:
        self._headers: dict[int, bytes] = {}

    def frame(self, data: bytes) -> bytes:
        """``uint64 length | uint32 masked_crc(length) | data | uint32 masked_crc(data)``."""
        n = len(data)
        header = self._headers.get(n)
        if header is None:
            length = struct.pack("<Q", n)
            header = length + struct.pack("<I", masked_crc32c(length))
            self._headers[n] = header
        return header + data + struct.pack("<I", masked_crc32c(data))


def file_version_event() -> bytes:
    """The ``file_version: "brain.Event:2"`` record every writer puts first."""
    from tensorboard.compat.proto import event_pb2

    ev = event_pb2.Event(wall_time=BASE_WALL_TIME, step=0, file_version="brain.Event:2")
    return ev.SerializeToString(deterministic=True)


def scalar_events(
    kind: str,
    series: dict[str, FloatArray],
    wall_base: float,
    wall_step: float,
) -> Iterator[bytes]:
    """Serialized events, step-major (all tags of step 0, then step 1, ...), one value per event.

    One ``Event`` object per tag is reused and only its step, wall time and value are changed,
    which keeps the protobuf work to one ``SerializeToString`` per record.
    """
    from tensorboard.compat.proto import event_pb2, types_pb2

    tags = list(series)
    n = len(next(iter(series.values())))
    events = []
    values: list[Any] = []
    for tag in tags:
        ev = event_pb2.Event()
        val = ev.summary.value.add()
        val.tag = tag
        if kind == "tf2_tensor":
            # What tf.summary.scalar writes: plugin metadata on every event, scalar float tensor.
            val.metadata.plugin_data.plugin_name = "scalars"
            val.tensor.dtype = types_pb2.DT_FLOAT
            val.tensor.tensor_shape.SetInParent()  # present but with no dims: shape []
            f32 = series[tag].astype("<f4").tobytes()
            values.append([f32[i * 4 : i * 4 + 4] for i in range(n)])
        else:
            values.append(series[tag].tolist())  # float32-exact Python floats
        events.append((ev, val))
    tf2 = kind == "tf2_tensor"
    for step in range(n):
        wall = wall_base + step * wall_step
        for (ev, val), vals in zip(events, values, strict=True):
            ev.step = step
            ev.wall_time = wall
            if tf2:
                val.tensor.tensor_content = vals[step]
            else:
                val.simple_value = vals[step]
            yield ev.SerializeToString(deterministic=True)


def write_event_file(path: Path, records: Iterable[bytes]) -> None:
    """Write framed records to ``path``, batching writes to keep the per-record cost low."""
    framer = RecordFramer()
    path.parent.mkdir(parents=True, exist_ok=True)
    batch: list[bytes] = [framer.frame(file_version_event())]
    with open(path, "wb") as fh:
        for rec in records:
            batch.append(framer.frame(rec))
            if len(batch) >= 65_536:
                fh.write(b"".join(batch))
                batch.clear()
        fh.write(b"".join(batch))


def generate_case(spec: CaseSpec, case_dir: Path) -> None:
    """Write every event file of ``spec`` under ``case_dir`` (which must not exist yet)."""
    if spec.case in ("a", "b", "big"):
        write_event_file(
            case_dir / EVENT_FILE_NAME,
            scalar_events(spec.kind, series_a(spec), BASE_WALL_TIME, 0.5),
        )
        return
    for i, run in enumerate(spec.run_dirs):
        # Runs started one after the other: offset each run's wall clock.
        write_event_file(
            case_dir / run / EVENT_FILE_NAME,
            scalar_events(spec.kind, series_c(spec, i), BASE_WALL_TIME + 1_000.0 * i, 0.5),
        )


# --------------------------------------------------------------------------------------------
# Manifest and cache
# --------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(4 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_files(case_dir: Path) -> list[dict[str, Any]]:
    """Relative path, size and SHA-256 of every file under ``case_dir``, sorted by path."""
    files = sorted(p for p in case_dir.rglob("*") if p.is_file())
    return [
        {"path": p.relative_to(case_dir).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in files
    ]


def content_hash(files: list[dict[str, Any]]) -> str:
    """One SHA-256 over the file list (paths and per-file hashes): the case's identity."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f['path']}\0{f['bytes']}\0{f['sha256']}\n".encode())
    return h.hexdigest()


def manifest_path(out: Path, case: str) -> Path:
    """Where the manifest of ``case`` lives: beside the case directory, not inside it."""
    return out / f"{case}.manifest.json"


def load_manifest(out: Path, case: str) -> dict[str, Any] | None:
    """The stored manifest of ``case``, or ``None`` if missing or unreadable."""
    try:
        with open(manifest_path(out, case), encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
        return data
    except (OSError, ValueError):
        return None


def spec_dict(spec: CaseSpec) -> dict[str, Any]:
    """The spec as JSON-compatible data (tuples become lists, as after a JSON round trip)."""
    d = asdict(spec)
    d["tags"] = list(spec.tags)
    return d


def cache_is_valid(out: Path, spec: CaseSpec) -> bool:
    """True when the manifest's spec matches and the files on disk still hash the same."""
    man = load_manifest(out, spec.case)
    case_dir = out / spec.case
    if man is None or man.get("spec") != spec_dict(spec) or not case_dir.is_dir():
        return False
    return content_hash(describe_files(case_dir)) == man.get("content_sha256")


def ensure_case(out: Path, spec: CaseSpec, force: bool = False, log: bool = True) -> dict[str, Any]:
    """Generate ``spec`` under ``out`` unless a valid cached copy exists; return its manifest.

    Generation goes to a temporary sibling directory that is renamed into place at the end, so
    an interrupted run never leaves a half-written case that looks complete.
    """
    out.mkdir(parents=True, exist_ok=True)
    case_dir = out / spec.case
    if not force and cache_is_valid(out, spec):
        man = load_manifest(out, spec.case)
        assert man is not None
        if log:
            print(f"case {spec.case}: cached ({man['total_bytes'] / 1e6:.1f} MB, "
                  f"sha256 {man['content_sha256'][:12]})", file=sys.stderr)
        return man
    previous = load_manifest(out, spec.case)
    tmp = out / f".{spec.case}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    generate_case(spec, tmp)
    gen_s = time.perf_counter() - t0
    files = describe_files(tmp)
    man = {
        "spec": spec_dict(spec),
        "run_dirs": spec.run_dirs,
        "expected_points": spec.expected_points,
        "expected_points_per_series": spec.steps,
        "files": len(files),
        "total_bytes": sum(f["bytes"] for f in files),
        "content_sha256": content_hash(files),
        "file_list": files,
        "generated_in_s": round(gen_s, 2),
    }
    shutil.rmtree(case_dir, ignore_errors=True)
    os.replace(tmp, case_dir)
    with open(manifest_path(out, spec.case), "w", encoding="utf-8") as fh:
        json.dump(man, fh, indent=2)
        fh.write("\n")
    if log:
        same = ""
        if previous is not None and previous.get("spec") == man["spec"]:
            # A forced regeneration doubles as a determinism check.
            same = ", bytes identical to previous" if previous.get("content_sha256") == man[
                "content_sha256"] else ", BYTES DIFFER from previous generation"
        print(f"case {spec.case}: wrote {len(files)} file(s), {man['total_bytes'] / 1e6:.1f} MB, "
              f"{spec.expected_points:,} points in {gen_s:.1f} s (sha256 {man['content_sha256'][:12]}{same})",
              file=sys.stderr)
    return man


def parse_cases(text: str) -> list[str]:
    """``"a,b,c"`` -> ``["a", "b", "c"]``, rejecting unknown names."""
    cases = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown case(s) {bad}; choose from {','.join(CASES)}")
    return cases


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help=f"output dir (default {DEFAULT_OUT}, or {DEFAULT_QUICK_OUT} with --quick)")
    ap.add_argument("--cases", type=parse_cases, default=list(DEFAULT_CASES),
                    help="comma list of a,b,c,d,big (default a,b,c; big is 10M points, ~525 MB)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    ap.add_argument("--force", action="store_true", help="regenerate even if the cache is valid")
    args = ap.parse_args(argv)
    out: Path = args.out or (DEFAULT_QUICK_OUT if args.quick else DEFAULT_OUT)
    specs = case_specs(args.quick)
    for case in args.cases:
        ensure_case(out, specs[case], force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
