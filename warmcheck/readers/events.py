"""Decode verified TFRecord payloads (``Event`` protos) into scalar points, fast and exactly.

Parsing an Event with protobuf takes 0.3 us; reading its fields from Python takes 1 us more, which
is where TensorBoard's loaders spend their time. Almost every record in a training log is the same
shape: ``Event{wall_time, step, summary{value{tag, simple_value | scalar tensor, metadata?}}}``.
:func:`decode` walks that shape with numpy over all records at once. Any record that deviates in
the slightest (another field, a repeated field, several values, an unusual dtype) goes to
tensorboard's own ``Event`` class, so the fast path never has to be right about anything unusual;
tests check that both paths agree on generated events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from google.protobuf.message import DecodeError
from numpy.typing import NDArray
from tensorboard.compat.proto import event_pb2, summary_pb2, types_pb2

from ._tags import LONG_TAG, unique_tags

IntArray = NDArray[np.int64]
_U8 = NDArray[np.uint8]

# Wire-format keys (field number << 3 | wire type) of the fields the fast path understands.
_EV_WALL, _EV_STEP, _EV_SUMMARY = 0x09, 0x10, 0x2A
_SUM_VALUE = 0x0A
_V_TAG, _V_SIMPLE, _V_NODE, _V_TENSOR, _V_META = 0x0A, 0x15, 0x3A, 0x42, 0x4A
_V_NONSCALAR = (0x1A, 0x22, 0x2A, 0x32)  # old-style histogram, image, histo, audio
_T_DTYPE, _T_SHAPE, _T_CONTENT, _T_FLOAT, _T_DOUBLE = 0x08, 0x12, 0x22, 0x2A, 0x32

_INT_DTYPES = {
    types_pb2.DT_INT8: np.int8, types_pb2.DT_INT16: np.int16, types_pb2.DT_INT32: np.int32,
    types_pb2.DT_INT64: np.int64, types_pb2.DT_UINT8: np.uint8, types_pb2.DT_UINT16: np.uint16,
    types_pb2.DT_UINT32: np.uint32, types_pb2.DT_UINT64: np.uint64, types_pb2.DT_BOOL: np.bool_,
}
_FLOAT_DTYPES = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64,
                 types_pb2.DT_HALF: np.float16}
_SCALAR_PLUGINS = ("", "scalars")  # tensors of other plugins (text, hparams, ...) are not scalars
# Zero bytes appended to a chunk: reads past a garbage position stay in the buffer, and so do the
# u64 words of every tag that unique_tags groups with numpy.
_PAD = LONG_TAG + 16


@dataclass(slots=True)
class Decoded:
    """Scalar points of one chunk in record order, plus what else the records said."""

    tags: list[bytes]  # tag bytes, indexed by ``tag_ids``
    tag_ids: IntArray
    steps: IntArray
    values: NDArray[np.float64]
    wall_times: NDArray[np.float64]
    record_indices: IntArray  # which record each point came from (for error messages)
    plugins: dict[bytes, str] = field(default_factory=dict)  # first metadata seen per tag
    texts: dict[str, str] = field(default_factory=dict)
    file_version: str | None = None
    restart_steps: list[int] = field(default_factory=list)
    undecodable: list[tuple[int, str]] = field(default_factory=list)  # (record position, error)
    integer_tags: set[bytes] = field(default_factory=set)
    nonscalar: int = 0


def decode(data: bytes, starts: IntArray, lengths: IntArray, plugins: dict[bytes, str]) -> Decoded:
    """Decode the payloads ``data[starts[i]:starts[i]+lengths[i]]``.

    ``plugins`` maps tag bytes to the plugin named by the first metadata seen for that tag in
    earlier chunks (TensorBoard takes a tag's metadata from its first event); it is updated.
    """
    padded_bytes = data + bytes(_PAD)
    fast = _fast_path(padded_bytes, len(data), starts, starts + lengths)
    slow_idx = np.flatnonzero(~fast.ok & ~fast.nonscalar)
    out = Decoded([], np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0),
                  np.empty(0), np.empty(0, np.int64), plugins)
    out.nonscalar = int(np.count_nonzero(fast.nonscalar))

    # Tags of fast-path records, then plugin metadata for tags seen for the first time.
    every = bool(fast.ok.all())
    ok_idx = np.arange(starts.shape[0]) if every else np.flatnonzero(fast.ok)
    tag_keys, tag_inverse = unique_tags(padded_bytes, fast.tag_pos if every else fast.tag_pos[ok_idx],
                                        fast.tag_len if every else fast.tag_len[ok_idx])
    if any(key not in plugins for key in tag_keys):
        # The first record with metadata of each tag seen for the first time, in record order.
        with_meta = np.flatnonzero(fast.meta_len[ok_idx] >= 0)
        tids, first = np.unique(tag_inverse[with_meta], return_index=True)
        for tid, j in zip(tids.tolist(), first.tolist(), strict=True):
            key = tag_keys[tid]
            if key not in plugins:
                m = int(ok_idx[with_meta[j]])
                pos, ln = int(fast.meta_pos[m]), int(fast.meta_len[m])
                plugins[key] = _plugin_name(data[pos : pos + ln])
    if fast.is_tensor.any():
        keep = ~fast.is_tensor[ok_idx] | np.array(
            [plugins.get(k, "") in _SCALAR_PLUGINS for k in tag_keys], dtype=bool)[tag_inverse]
        out.nonscalar += int(np.count_nonzero(~keep))  # tensors of other plugins (text, hparams, ...)
        kept = ok_idx[keep] if not keep.all() else ok_idx
        kept_tags = tag_inverse[keep] if kept is not ok_idx else tag_inverse
    else:
        kept, kept_tags = ok_idx, tag_inverse
    if every and kept is ok_idx:  # every record kept: the arrays as they are
        parts = [(kept, kept_tags, fast.steps, fast.values, fast.walls)]
    else:
        parts = [(kept, kept_tags, fast.steps[kept], fast.values[kept], fast.walls[kept])]
    tags = list(tag_keys)
    if slow_idx.shape[0]:
        parts.append(_slow_path(data, starts[slow_idx], lengths[slow_idx], slow_idx, tags, out))
    out.tags = tags
    if len(parts) == 1:  # fast path only: already in record order
        out.record_indices, out.tag_ids, out.steps, out.values, out.wall_times = parts[0]
        return out
    rec = np.concatenate([p[0] for p in parts])
    order = np.argsort(rec, kind="stable")  # record order = write order ("the later write wins")
    out.record_indices = rec[order]
    out.tag_ids = np.concatenate([p[1] for p in parts]).astype(np.int64)[order]
    out.steps = np.concatenate([p[2] for p in parts]).astype(np.int64)[order]
    out.values = np.concatenate([p[3] for p in parts]).astype(np.float64)[order]
    out.wall_times = np.concatenate([p[4] for p in parts]).astype(np.float64)[order]
    return out


@dataclass(slots=True)
class _Fast:
    ok: NDArray[np.bool_]
    nonscalar: NDArray[np.bool_]
    is_tensor: NDArray[np.bool_]
    steps: IntArray
    values: NDArray[np.float64]
    walls: NDArray[np.float64]
    tag_pos: IntArray
    tag_len: IntArray
    meta_pos: IntArray
    meta_len: IntArray


def _fast_path(padded_bytes: bytes, size: int, starts: IntArray, ends: IntArray) -> _Fast:
    """Vectorised walk of the common Event shape; ``ok`` marks records it fully understood.

    ``padded_bytes`` is the chunk plus ``_PAD`` zero bytes, so that every read a few bytes past a
    (possibly garbage) position stays in range; positions are clipped to the record end after each
    step, and ``ok`` remembers every overrun.
    """
    n = starts.shape[0]
    padded = np.frombuffer(padded_bytes, dtype=np.uint8)
    f64 = np.ndarray((len(padded_bytes) - 7,), "<f8", buffer=padded_bytes, strides=(1,))
    f32 = np.ndarray((len(padded_bytes) - 3,), "<f4", buffer=padded_bytes, strides=(1,))
    p = starts.copy()
    ok = np.ones(n, dtype=bool)

    has = (p + 9 <= ends) & (padded[p] == _EV_WALL)
    if has.all():  # every record has a wall time (they all do, written by a real writer): no masks
        walls = f64[p + 1]
        p += 9
    else:
        walls = np.zeros(n)
        walls[has] = f64[p[has] + 1]
        p[has] += 9
    has = (p < ends) & (padded[p] == _EV_STEP)
    # Every position is read as a varint (those without a step read bytes of the padded chunk), then the
    # records without a step keep step 0 and their position: cheaper than masks when most have one.
    v, ln = _varint(padded, p + 1)
    if has.all():
        steps = v.view(np.int64)
        p += 1 + ln
    else:
        steps = np.where(has, v.view(np.int64), 0)
        p += np.where(has, 1 + ln, 0)
    # summary { value { ... } } spanning exactly the rest of the payload
    for key in (_EV_SUMMARY, _SUM_VALUE):
        ok &= (p < ends) & (padded[p] == key)
        body, ln = _varint(padded, p + 1)
        p = p + 1 + ln
        ok &= (p <= ends) & (body <= np.uint64(size)) & (p + body.astype(np.int64) == ends)
        p = np.minimum(p, ends)

    # The canonical legacy scalar, Value{tag, simple_value}, checked in one go; the general field
    # walk runs only on the records that are not exactly that.
    tag_len = padded[p + 1].astype(np.int64)
    canon = ok & (padded[p] == _V_TAG) & (tag_len < 0x80) & (p + 7 + tag_len == ends)
    canon &= padded[np.minimum(p + 2 + tag_len, ends)] == _V_SIMPLE
    if (canon == ok).all():  # every record a plain Value{tag, simple_value} (torch, tensorboardX), or one that
        # the slow path takes (file_version, ...): no field walk. Fields of records that are not ok are never read.
        none, no = np.full(n, -1, np.int64), np.zeros(n, dtype=bool)
        return _Fast(ok, no, no, steps, f32[p + 3 + tag_len].astype(np.float64), walls, p + 2, tag_len, none, none)
    f = _Fields(n)
    f.tag_pos[canon] = p[canon] + 2
    f.tag_len[canon] = tag_len[canon]
    f.val_pos[canon] = p[canon] + 3 + tag_len[canon]
    rest = np.flatnonzero(ok & ~canon)
    if rest.shape[0]:
        ok[rest] = _walk_values(padded, size, p[rest], ends[rest], rest, f)
    values = np.full(n, np.nan)
    simple = ok & (f.val_pos >= 0)
    values[simple] = f32[f.val_pos[simple]]
    is_tensor = ok & (f.ten_pos >= 0)
    if is_tensor.any():
        t_idx = np.flatnonzero(is_tensor)
        t_ok, t_val = _tensor_scalars(padded, f32, f64, f.ten_pos[t_idx], f.ten_len[t_idx])
        ok[t_idx[~t_ok]] = False
        values[t_idx[t_ok]] = t_val[t_ok]
        is_tensor &= ok
    return _Fast(ok, f.nonscalar, is_tensor, steps, values, walls, f.tag_pos, f.tag_len,
                 f.meta_pos, f.meta_len)


class _Fields:
    """Where each Value field starts (-1: absent), for every record of a chunk."""

    def __init__(self, n: int) -> None:
        self.tag_pos, self.tag_len = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
        self.meta_pos, self.meta_len = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
        self.ten_pos, self.ten_len = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
        self.val_pos = np.full(n, -1, np.int64)
        self.nonscalar = np.zeros(n, dtype=bool)


def _walk_values(padded: _U8, size: int, p: IntArray, ends: IntArray, rows: IntArray,
                 f: _Fields) -> NDArray[np.bool_]:
    """General walk of Value fields for records ``rows`` (positions ``p``); returns their ``ok``."""
    n = p.shape[0]
    ok = np.ones(n, dtype=bool)
    p = p.copy()
    nonscalar = np.zeros(n, dtype=bool)
    found = {code: (np.full(n, -1, np.int64), np.full(n, -1, np.int64))
             for code in (_V_TAG, _V_META, _V_TENSOR)}
    val_pos = np.full(n, -1, np.int64)
    for _ in range(6):  # tag, value, node_name, metadata: a handful of fields at most
        live = np.flatnonzero(ok & (p < ends))
        if live.shape[0] == 0:
            break
        key = padded[p[live]]
        s = live[key == _V_SIMPLE]
        ok[s[val_pos[s] >= 0]] = False  # a repeated field: let protobuf decide
        val_pos[s] = p[s] + 1
        p[s] += 5
        delimited = np.isin(key, (_V_TAG, _V_NODE, _V_TENSOR, _V_META) + _V_NONSCALAR)
        ok[live[~delimited & (key != _V_SIMPLE)]] = False
        d = live[delimited]
        if d.shape[0]:
            dkey = padded[p[d]]
            length, ln = _varint(padded, p[d] + 1)
            content = p[d] + 1 + ln
            for code, (pos_arr, len_arr) in found.items():
                sel = dkey == code
                idx = d[sel]
                ok[idx[pos_arr[idx] >= 0]] = False
                pos_arr[idx] = content[sel]
                len_arr[idx] = length[sel].astype(np.int64)
            nonscalar[d[np.isin(dkey, _V_NONSCALAR)]] = True
            over = length > np.uint64(size)
            ok[d[over]] = False
            p[d] = np.where(over, ends[d], content + length.astype(np.int64))
        ok &= p <= ends
        p = np.minimum(p, ends)
    tag_pos = found[_V_TAG][0]
    ten_pos = found[_V_TENSOR][0]
    ok &= (p == ends) & (tag_pos >= 0) & ((val_pos >= 0) ^ (ten_pos >= 0)) & ~nonscalar
    f.nonscalar[rows] = nonscalar & (p == ends)
    f.val_pos[rows] = val_pos
    f.tag_pos[rows], f.tag_len[rows] = found[_V_TAG]
    f.meta_pos[rows], f.meta_len[rows] = found[_V_META]
    f.ten_pos[rows], f.ten_len[rows] = found[_V_TENSOR]
    return ok


def _tensor_scalars(padded: _U8, f32: NDArray[np.float32] | None, f64: NDArray[np.float64] | None,
                    pos: IntArray, length: IntArray) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Rank-0 DT_FLOAT/DT_DOUBLE tensors laid out as TF2 and torch write them; others: not ok."""
    end = pos + length
    ok = padded[pos] == _T_DTYPE
    dtype = padded[pos + 1].astype(np.int64)
    ok &= (dtype == types_pb2.DT_FLOAT) | (dtype == types_pb2.DT_DOUBLE)
    p = pos + 2
    has_shape = padded[p] == _T_SHAPE
    ok &= ~has_shape | (padded[p + 1] == 0)  # an empty TensorShapeProto: rank 0
    p = np.where(has_shape, p + 2, p)
    key, vlen = padded[p], padded[p + 1].astype(np.int64)
    width = np.where(dtype == types_pb2.DT_FLOAT, 4, 8)
    ok &= ((key == _T_CONTENT)
           | ((key == _T_FLOAT) & (dtype == types_pb2.DT_FLOAT))
           | ((key == _T_DOUBLE) & (dtype == types_pb2.DT_DOUBLE)))
    ok &= (vlen == width) & (p + 2 + width == end)
    values = np.full(pos.shape[0], np.nan)
    as_f32 = ok & (width == 4)
    as_f64 = ok & (width == 8)
    if f32 is not None and as_f32.any():
        values[as_f32] = f32[p[as_f32] + 2]
    if f64 is not None and as_f64.any():
        values[as_f64] = f64[p[as_f64] + 2]
    return ok, values


def _varint(padded: _U8, pos: IntArray) -> tuple[NDArray[np.uint64], IntArray]:
    """Decode base-128 varints at ``pos``; a varint longer than 10 bytes reads as length 10."""
    first = padded[pos]
    value = (first & 0x7F).astype(np.uint64)
    length = np.ones(pos.shape[0], dtype=np.int64)
    idx = np.flatnonzero(first >= 0x80)  # most lengths fit in one byte: loop only on the rest
    for k in range(1, 10):
        if idx.shape[0] == 0:
            break
        b = padded[pos[idx] + k]
        value[idx] |= (b & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        length[idx] = k + 1
        idx = idx[b >= 0x80]
    return value, length


def _plugin_name(metadata: bytes) -> str:
    try:
        return str(summary_pb2.SummaryMetadata.FromString(metadata).plugin_data.plugin_name)
    except DecodeError:
        return ""


def _slow_path(data: bytes, starts: IntArray, lengths: IntArray, rec_idx: IntArray,
               tags: list[bytes], out: Decoded) -> tuple[IntArray, IntArray, IntArray, NDArray[np.float64],
                                                         NDArray[np.float64]]:
    """Decode unusual records with tensorboard's ``Event`` class."""
    index = {k: i for i, k in enumerate(tags)}
    recs: list[int] = []
    tids: list[int] = []
    steps: list[int] = []
    vals: list[float] = []
    walls: list[float] = []
    for r, s, ln in zip(rec_idx.tolist(), starts.tolist(), lengths.tolist(), strict=True):
        try:
            ev = event_pb2.Event.FromString(data[s : s + ln])
        except DecodeError as exc:
            out.undecodable.append((r, str(exc) or "DecodeError"))
            continue
        what = ev.WhichOneof("what")
        if what == "file_version":
            out.file_version = ev.file_version
        elif what == "session_log" and ev.session_log.status == event_pb2.SessionLog.START:
            out.restart_steps.append(int(ev.step))
        if what != "summary":
            continue
        for v in ev.summary.value:
            key = v.tag.encode("utf-8")
            if v.HasField("metadata") and key not in out.plugins:
                out.plugins[key] = v.metadata.plugin_data.plugin_name
            kind = v.WhichOneof("value")
            if kind == "simple_value":
                value: float | None = float(v.simple_value)
            elif kind == "tensor":
                value = _tensor_value(v, key, out)
            else:
                out.nonscalar += 1
                continue
            if value is None:
                continue
            recs.append(r)
            tids.append(index.setdefault(key, len(index)))
            if tids[-1] == len(tags):
                tags.append(key)
            steps.append(int(ev.step))
            vals.append(value)
            walls.append(float(ev.wall_time))
    return (np.array(recs, np.int64), np.array(tids, np.int64), np.array(steps, np.int64),
            np.array(vals, np.float64), np.array(walls, np.float64))


def _tensor_value(v: summary_pb2.Summary.Value, key: bytes, out: Decoded) -> float | None:
    """The value of a rank-0 numeric tensor of the scalars plugin; text kept; others skipped."""
    t = v.tensor
    plugin = out.plugins.get(key, "")
    if t.dtype == types_pb2.DT_STRING:
        if t.string_val:
            out.texts[v.tag] = t.string_val[0].decode("utf-8", errors="replace")
        return None
    if plugin not in _SCALAR_PLUGINS or len(t.tensor_shape.dim) != 0:
        out.nonscalar += 1
        return None
    dtype = t.dtype
    if t.tensor_content:
        if dtype == types_pb2.DT_BFLOAT16 and len(t.tensor_content) == 2:
            return _bfloat16(int.from_bytes(t.tensor_content, "little"))
        np_type = _FLOAT_DTYPES.get(dtype) or _INT_DTYPES.get(dtype)
        if np_type is None or len(t.tensor_content) != np.dtype(np_type).itemsize:
            out.nonscalar += 1
            return None
        if dtype in _INT_DTYPES:
            out.integer_tags.add(key)
        return float(np.frombuffer(t.tensor_content, dtype=np_type)[0])
    if dtype == types_pb2.DT_FLOAT and t.float_val:
        return float(np.float32(t.float_val[0]))
    if dtype == types_pb2.DT_DOUBLE and t.double_val:
        return float(t.double_val[0])
    if dtype == types_pb2.DT_HALF and t.half_val:
        return float(np.array(t.half_val[0], np.uint16).view(np.float16))
    if dtype == types_pb2.DT_BFLOAT16 and t.half_val:
        return _bfloat16(t.half_val[0])
    for field_name in ("int_val", "int64_val", "uint32_val", "uint64_val", "bool_val"):
        vals = getattr(t, field_name)
        if dtype in _INT_DTYPES and vals:
            out.integer_tags.add(key)
            return float(vals[0])
    out.nonscalar += 1
    return None


def _bfloat16(bits: int) -> float:
    return float(np.array([bits << 16], np.uint32).view(np.float32)[0])
