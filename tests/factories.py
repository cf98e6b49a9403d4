"""Builders for test inputs: events written with tensorboard's own protobuf classes and writer."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.summary.writer.record_writer import RecordWriter


def scalar_event(tag: str, step: int, value: float, wall_time: float = 1.7e9) -> event_pb2.Event:
    """A legacy scalar (torch SummaryWriter, tensorboardX, Lightning): ``simple_value``."""
    v = summary_pb2.Summary.Value(tag=tag, simple_value=value)
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[v]))


def tensor_event(tag: str, step: int, value: float, dtype: int = types_pb2.DT_FLOAT, *,
                 content: bool = True, metadata: bool = True, plugin: str = "scalars",
                 wall_time: float = 1.7e9) -> event_pb2.Event:
    """A TF2-style rank-0 tensor scalar of ``dtype``, as ``tensor_content`` or a typed ``*_val`` field."""
    t = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto())
    np_types = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64,
                types_pb2.DT_HALF: np.float16, types_pb2.DT_INT32: np.int32,
                types_pb2.DT_INT64: np.int64, types_pb2.DT_UINT8: np.uint8, types_pb2.DT_INT16: np.int16}
    if dtype == types_pb2.DT_BFLOAT16:
        bits = int(np.array([value], np.float32).view(np.uint32)[0] >> 16)
        if content:
            t.tensor_content = bits.to_bytes(2, "little")
        else:
            t.half_val.append(bits)
    elif content:
        t.tensor_content = np.array([value], dtype=np_types[dtype]).tobytes()
    elif dtype == types_pb2.DT_FLOAT:
        t.float_val.append(value)
    elif dtype == types_pb2.DT_DOUBLE:
        t.double_val.append(value)
    elif dtype == types_pb2.DT_HALF:
        t.half_val.append(int(np.array([value], np.float16).view(np.uint16)[0]))
    elif dtype == types_pb2.DT_INT64:
        t.int64_val.append(int(value))
    else:
        t.int_val.append(int(value))
    v = summary_pb2.Summary.Value(tag=tag, tensor=t)
    if metadata:
        v.metadata.plugin_data.plugin_name = plugin
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[v]))


def text_event(tag: str, text: str, step: int = 0) -> event_pb2.Event:
    """A text summary as HF Trainer writes ``args/text_summary`` (plugin ``text``, DT_STRING)."""
    t = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[text.encode()])
    t.tensor_shape.dim.add(size=1)
    v = summary_pb2.Summary.Value(tag=tag, tensor=t)
    v.metadata.plugin_data.plugin_name = "text"
    return event_pb2.Event(wall_time=1.7e9, step=step, summary=summary_pb2.Summary(value=[v]))


def version_event() -> event_pb2.Event:
    return event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2")


def record_bytes(events: Iterable[event_pb2.Event]) -> bytes:
    """TFRecord bytes for ``events``, framed by tensorboard's own RecordWriter."""
    import io

    buf = io.BytesIO()
    writer = RecordWriter(buf)
    for ev in events:
        writer.write(ev.SerializeToString())
    return buf.getvalue()


def write_events(path: str | os.PathLike[str], events: Iterable[event_pb2.Event]) -> str:
    """Write an event file at ``path`` (directories created); returns the path as str."""
    path = str(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(record_bytes(events))
    return path


def run_events(steps: Sequence[int] | range, tags: dict[str, Sequence[float] | np.ndarray],
               wall0: float = 1.7e9) -> list[event_pb2.Event]:
    """The version record then, per step, one scalar event per tag (interleaved like a real writer)."""
    out = [version_event()]
    for i, s in enumerate(steps):
        for tag, values in tags.items():
            out.append(scalar_event(tag, int(s), float(values[i]), wall0 + i))
    return out
