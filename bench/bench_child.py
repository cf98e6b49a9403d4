#!/usr/bin/env python
"""One baseline read in a fresh process; ``run_bench.py`` starts this file once per sample.

Usage::

    python bench/bench_child.py tbparse PATH [--tensors] [--dir-name]
    python bench/bench_child.py ea PATH
    python bench/bench_child.py rustboard-count PORT     # points a running data server serves

Prints one JSON line ``{"import_s", "read_s", "points", ...}`` on stdout. ``import_s`` is the
reader library's import; ``read_s`` is the read alone (imports excluded), measured here because
the parent can only see the whole process. Only the standard library is imported before the
clock starts, so the whole-process time the parent measures is interpreter start + library
import + read + exit, the same things ``warmcheck analyze`` pays for.

Nothing beyond counting points happens after the read: decoding tensors or summing values would
add seconds to the baselines' whole-process time that their users never pay.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def run_dirs(root: str) -> list[str]:
    """Every directory under ``root`` (itself included) that holds a ``tfevents`` file, sorted.

    EventAccumulator reads one directory, not a tree; this is the walk ``EventMultiplexer``'s
    ``AddRunsFromDirectory`` does.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if any("tfevents" in f for f in filenames):
            found.append(dirpath)
    return sorted(found)


def read_tbparse(path: str, tensors: bool, dir_name: bool) -> dict[str, Any]:
    """``SummaryReader(path).scalars`` (or ``.tensors`` where TF2 scalars land)."""
    t0 = time.perf_counter()
    from tbparse import SummaryReader

    t1 = time.perf_counter()
    extra = {"dir_name"} if dir_name else None
    reader = SummaryReader(path, extra_columns=extra)
    df = reader.tensors if tensors else reader.scalars
    t2 = time.perf_counter()
    return {"import_s": t1 - t0, "read_s": t2 - t1, "points": int(len(df)),
            "attribute": "tensors" if tensors else "scalars"}


def read_ea(path: str) -> dict[str, Any]:
    """One ``EventAccumulator`` per run dir, keeping every point of scalars and tensors."""
    t0 = time.perf_counter()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    t1 = time.perf_counter()
    # size 0 = keep all; without "tensors": 0 TF2 scalars are sampled down to 10 per tag.
    guidance = {"scalars": 0, "tensors": 0}
    accs = []  # kept alive to the end, as a caller holding the data would
    points = 0
    dirs = run_dirs(path)
    for d in dirs:
        acc = EventAccumulator(d, size_guidance=guidance)
        acc.Reload()
        tags = acc.Tags()
        for tag in tags.get("scalars", []):
            points += len(acc.Scalars(tag))
        for tag in tags.get("tensors", []):
            points += len(acc.Tensors(tag))
        accs.append(acc)
    t2 = time.perf_counter()
    return {"import_s": t1 - t0, "read_s": t2 - t1, "points": points, "run_dirs": len(dirs)}


def count_rustboard(port: int) -> dict[str, Any]:
    """Every scalar point TensorBoard's Rust data server on ``port`` serves, over its gRPC API
    (``ListScalars``, then ``ReadScalars`` with a sample size above any series' length)."""
    import grpc
    from tensorboard.data.proto import data_provider_pb2 as pb
    from tensorboard.data.proto import data_provider_pb2_grpc as rpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 1 << 30)])
    stub = rpc.TensorBoardDataProviderStub(channel)
    scalars = pb.PluginFilter(plugin_name="scalars")
    listing = stub.ListScalars(pb.ListScalarsRequest(experiment_id="", plugin_filter=scalars))
    runs = [r.run_name for r in listing.runs]
    points, series = 0, 0
    for a in range(0, len(runs), 100):  # runs in batches: one reply stays below the message limit
        batch = pb.RunTagFilter(runs=pb.RunFilter(names=runs[a : a + 100]))
        reply = stub.ReadScalars(pb.ReadScalarsRequest(experiment_id="", plugin_filter=scalars, run_tag_filter=batch,
                                                       downsample=pb.Downsample(num_points=1 << 40)))
        for run in reply.runs:
            for tag in run.tags:
                series += 1
                points += len(tag.data.step)
    channel.close()
    return {"points": points, "series": series, "runs": len(runs)}


def main(argv: list[str]) -> int:
    """Dispatch on the reader name; print the result as one JSON line."""
    if len(argv) >= 2 and argv[0] == "rustboard-count":
        print(json.dumps(count_rustboard(int(argv[1]))))
        return 0
    if len(argv) < 2 or argv[0] not in ("tbparse", "ea"):
        print(__doc__, file=sys.stderr)
        return 2
    reader, path, flags = argv[0], argv[1], set(argv[2:])
    if reader == "tbparse":
        result = read_tbparse(path, "--tensors" in flags, "--dir-name" in flags)
    else:
        result = read_ea(path)
    result["reader"] = reader
    print(json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
