"""TensorBoard event files: every point, TF2 tensors, merging, damage, and fast == protobuf decoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factories import record_bytes, run_events, scalar_event, tensor_event, text_event, version_event, write_events
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto import event_pb2, summary_pb2, types_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from warmcheck.model import Role
from warmcheck.readers import discover, read_spec
from warmcheck.readers.events import decode
from warmcheck.readers.tensorboard import read_event_file
from warmcheck.readers.tfrecord import frame


def _read_dir(path) -> object:
    (spec,) = discover([str(path)]).runs
    return read_spec(spec)


def test_more_than_ten_thousand_points_per_tag_are_all_read(tmp_path) -> None:
    # TensorBoard's default reservoir keeps 10,000 random points per tag and would drop the spike.
    n = 25_000
    loss = np.linspace(4.0, 1.0, n)
    loss[17_171] = 40.0
    write_events(tmp_path / "events.out.tfevents.1700000000.h.1.0",
                 run_events(range(n), {"train/loss": loss, "train/lr": np.full(n, 3e-4)}))
    run = _read_dir(tmp_path)
    s = run.get("train/loss")
    assert s.points == n and s.steps.tolist() == list(range(n))
    assert s.values[17_171] == pytest.approx(40.0)
    assert np.allclose(s.values, loss.astype(np.float32))
    assert run.primary(Role.LR).tag == "train/lr" and run.primary(Role.LOSS).tag == "train/loss"


def test_tensorboard_own_event_file_writer_is_read(tmp_path) -> None:
    w = EventFileWriter(str(tmp_path))
    for s in range(30):
        w.add_event(scalar_event("train/loss", s, 1.0 / (s + 1), 1.7e9 + s))
    w.close()
    s = _read_dir(tmp_path).get("train/loss")
    assert s.points == 30 and s.values[29] == pytest.approx(1 / 30)
    assert s.wall_times[3] == pytest.approx(1.7e9 + 3)


@pytest.mark.parametrize("dtype,content,expected", [
    (types_pb2.DT_FLOAT, True, 0.1), (types_pb2.DT_FLOAT, False, 0.1),
    (types_pb2.DT_DOUBLE, True, 0.1), (types_pb2.DT_DOUBLE, False, 0.1),
    (types_pb2.DT_HALF, True, 0.1), (types_pb2.DT_HALF, False, 0.1),
    (types_pb2.DT_BFLOAT16, True, 0.1), (types_pb2.DT_BFLOAT16, False, 0.1),
    (types_pb2.DT_INT32, True, 7), (types_pb2.DT_INT32, False, 7),
    (types_pb2.DT_INT64, True, 7), (types_pb2.DT_INT64, False, 7),
])
def test_tensor_scalars_of_each_dtype(tmp_path, dtype: int, content: bool, expected: float) -> None:
    events = [version_event()] + [tensor_event("t/x", s, expected * (s + 1), dtype, content=content,
                                               metadata=(s == 0)) for s in range(12)]
    read = read_event_file(write_events(tmp_path / "events.out.tfevents.1.h", events))
    (frag,) = read.fragments
    tol = {types_pb2.DT_HALF: 1e-3, types_pb2.DT_BFLOAT16: 1e-2}.get(dtype, 1e-6)
    assert frag.steps.tolist() == list(range(12))
    assert np.allclose(frag.values, expected * np.arange(1, 13), rtol=tol)
    codes = [f.code for f in read.findings]
    assert codes == (["WC020"] if dtype in (types_pb2.DT_INT32, types_pb2.DT_INT64) else [])


def test_tensors_of_other_plugins_and_text_are_not_scalars(tmp_path) -> None:
    args = '{"warmup_steps": 27, "learning_rate": 0.001}'
    events = [version_event(), text_event("args/text_summary", args),
              tensor_event("hp/x", 0, 1.0, plugin="hparams"),
              tensor_event("loss", 0, 2.0, metadata=True), tensor_event("loss", 1, 1.5, metadata=False)]
    read = read_event_file(write_events(tmp_path / "events.out.tfevents.1.h", events))
    assert [f.tag for f in read.fragments] == ["loss"]
    assert read.fragments[0].values.tolist() == [2.0, 1.5]
    assert read.metadata["text"] == {"args/text_summary": args}
    assert read.metadata["file_version"] == "brain.Event:2"


def test_nan_and_inf_are_kept_as_values(tmp_path) -> None:
    vals = [1.0, math.nan, math.inf, -math.inf, 0.5]
    write_events(tmp_path / "events.out.tfevents.1.h", [scalar_event("loss", s, v) for s, v in enumerate(vals)])
    s = _read_dir(tmp_path).get("loss")
    assert s.points == 5 and s.nonfinite == 3
    assert np.isnan(s.values[1]) and s.values[2] == np.inf and s.values[3] == -np.inf


def test_two_overlapping_event_files_merge_with_the_later_write_winning(tmp_path) -> None:
    first = run_events(range(0, 60), {"loss": np.full(60, 2.0), "lr": np.full(60, 1e-3)})
    second = run_events(range(40, 100), {"loss": np.full(60, 3.0), "lr": np.full(60, 2e-3)})
    # Named so that the later file sorts second by its creation time, as writers name them.
    write_events(tmp_path / "events.out.tfevents.1700003600.h.2.1", second)
    write_events(tmp_path / "events.out.tfevents.1700000000.h.1.0", first)
    run = _read_dir(tmp_path)
    loss = run.get("loss")
    assert loss.points == 100 and loss.superseded == 20
    assert loss.values[39] == 2.0 and loss.values[40] == 3.0 and loss.values[59] == 3.0
    (overlap,) = [f for f in run.findings if f.code == "WC006"]
    assert (overlap.step, overlap.step_end, overlap.details["superseded"]) == (40, 59, 40)


def test_restart_inside_one_file(tmp_path) -> None:
    events = run_events(range(0, 30), {"loss": np.full(30, 2.0)})
    events += [scalar_event("loss", s, 3.0) for s in range(20, 50)]
    write_events(tmp_path / "events.out.tfevents.1.h", events)
    run = _read_dir(tmp_path)
    loss = run.get("loss")
    assert loss.points == 50 and loss.superseded == 10 and loss.raw_points == 60
    assert loss.values[25] == 3.0
    (restart,) = [f for f in run.findings if f.code == "WC006"]
    assert restart.step == 20 and restart.details["superseded"] == 10


def test_shuffled_steps_are_sorted_not_dropped(tmp_path) -> None:
    steps = np.random.default_rng(1).permutation(40)
    write_events(tmp_path / "events.out.tfevents.1.h", [scalar_event("loss", int(s), float(s)) for s in steps])
    run = _read_dir(tmp_path)
    assert run.get("loss").steps.tolist() == list(range(40))
    assert run.get("loss").values.tolist() == [float(s) for s in range(40)]
    assert [f.code for f in run.findings] == ["WC007"]


def test_damaged_file_reports_offset_and_keeps_later_records(tmp_path) -> None:
    data = bytearray(record_bytes(run_events(range(20), {"loss": np.arange(20.0)})))
    data[700] ^= 0x04
    path = tmp_path / "events.out.tfevents.1.h"
    path.write_bytes(bytes(data) + b"\x01\x02")
    read = read_event_file(str(path))
    codes = sorted(f.code for f in read.findings)
    assert codes == ["WC003", "WC004"]
    (frag,) = read.fragments
    assert frag.steps.shape[0] == 19 and frag.steps[-1] == 19
    damaged = next(f for f in read.findings if f.code == "WC004")
    assert damaged.details["offset"] <= 700 < damaged.details["offset"] + damaged.details["bytes_skipped"]


def test_unreadable_file_is_reported_not_raised(tmp_path, monkeypatch) -> None:
    path = write_events(tmp_path / "events.out.tfevents.1.h", run_events(range(3), {"loss": [1, 2, 3]}))
    real_open = open

    def deny(file, *a, **k):
        if str(file) == path:
            raise PermissionError(13, "Permission denied", path)
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", deny)
    read = read_event_file(path)
    assert [f.code for f in read.findings] == ["WC001"] and "Permission denied" in read.findings[0].message
    assert len(read.fragments) == 0


def _protobuf_points(data: bytes) -> list[tuple[str, int, float]]:
    """Reference decoding: tensorboard's Event class, legacy and rank-0 float tensors."""
    out = []
    framed = frame(data)
    for s, n in zip(framed.starts.tolist(), framed.lengths.tolist(), strict=True):
        ev = event_pb2.Event.FromString(data[s : s + n])
        for v in ev.summary.value:
            if v.WhichOneof("value") == "simple_value":
                out.append((v.tag, ev.step, float(np.float32(v.simple_value))))
            elif v.WhichOneof("value") == "tensor":
                t = v.tensor
                val = (np.frombuffer(t.tensor_content, np.float32 if t.dtype == 1 else np.float64)[0]
                       if t.tensor_content else (t.float_val[0] if t.dtype == 1 else t.double_val[0]))
                out.append((v.tag, ev.step, float(val)))
    return out


_tags = st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=40)
_values = st.floats(width=32, allow_nan=False)
_event = st.one_of(
    st.builds(lambda t, s, v, w: scalar_event(t, s, v, w), _tags, st.integers(-(2**63), 2**63 - 1), _values,
              st.floats(0, 2e9)),
    st.builds(lambda t, s, v, c, m: tensor_event(t, s, v, types_pb2.DT_FLOAT, content=c, metadata=m),
              _tags, st.integers(0, 2**40), _values, st.booleans(), st.booleans()),
    st.builds(lambda t, s, v, c: tensor_event(t, s, v, types_pb2.DT_DOUBLE, content=c),
              _tags, st.integers(0, 10**6), st.floats(allow_nan=False), st.booleans()),
    st.builds(lambda s: event_pb2.Event(step=s, summary=summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag="a", simple_value=1.0), summary_pb2.Summary.Value(tag="b", simple_value=2.0)])),
        st.integers(0, 100)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_event, min_size=1, max_size=30))
def test_fast_decoder_agrees_with_protobuf(events: list[event_pb2.Event]) -> None:
    data = record_bytes(events)
    framed = frame(data)
    dec = decode(data, framed.starts, framed.lengths, {})
    got = [(dec.tags[t].decode("utf-8"), s, v) for t, s, v in
           zip(dec.tag_ids.tolist(), dec.steps.tolist(), dec.values.tolist(), strict=True)]
    assert got == _protobuf_points(data)


_ORIGINAL = record_bytes(run_events(range(25), {"train/loss": np.linspace(3, 1, 25), "lr": np.linspace(0, 1, 25)})
                         + [tensor_event("t", s, s / 3) for s in range(5)])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["flip", "cut", "splice", "zero"]), st.integers(0, 10**6),
                          st.binary(min_size=1, max_size=40)), min_size=1, max_size=3))
def test_damaged_files_never_raise_and_never_invent_points(tmp_path_factory, mutations) -> None:
    data = bytearray(_ORIGINAL)
    for kind, at, junk in mutations:
        at %= max(len(data), 1)
        if kind == "flip" and data:
            data[at] ^= junk[0] or 1
        elif kind == "cut":
            del data[at:]
        elif kind == "splice":
            data[at:at] = junk
        else:
            data[at : at + len(junk)] = bytes(len(junk))
    path = tmp_path_factory.mktemp("fuzz") / "events.out.tfevents.1.h"
    path.write_bytes(bytes(data))
    read = read_event_file(str(path))
    got = sorted((f.tag, int(s), float(v)) for f in read.fragments for s, v in
                 zip(f.steps.tolist(), f.values.tolist(), strict=True))
    allowed = sorted(_protobuf_points(_ORIGINAL))
    remaining = list(allowed)
    for p in got:  # multiset inclusion: a corrupted record never surfaces as a value
        assert p in remaining, p
        remaining.remove(p)
