"""W&B run files (``wandb/run-<date>-<id>/run-<id>.wandb``, ``offline-run-...``): history, config, summary.

Every W&B run, online or offline, writes its transaction log locally: ``wandb_internal_pb2.Record``
protobufs framed as a LevelDB-style log (:mod:`._wandblog`). The records read:

* ``history``: one row per ``wandb.log`` call; every item is a key (``nested_key`` parts joined with
  ``/``, as the W&B UI shows ``{"train": {"lr": x}}``) and a JSON value. Every key given a number is a
  series; its step is the row's step key: the first of warmcheck's step keys present in the first row
  (``trainer/global_step`` as Lightning's WandbLogger logs it, else ``_step``), as in a JSONL export;
  ``_timestamp`` is the wall time. W&B's bookkeeping keys (``_step`` when it is not the step key,
  ``_runtime``, ``_timestamp``) are not series; media and tables (JSON objects) are not points.
* ``run`` and ``config``: the run's configuration, later updates over earlier ones, ``{"value": x}``
  unwrapped as ``config.yaml`` does, in ``metadata["tracker_params"]["W&B config"]`` where the warmup
  audit reads it; the run's id, project, name... in ``metadata["wandb"]``.
* ``summary``: updates applied in order, scalars kept in ``metadata["wandb"]["summary"]``.

The framing is read by warmcheck itself (wandb 0.31's record reader is in its Go core, not in Python);
the records are decoded with the wandb package's own protobuf classes, imported when a file is read:
without the ``warmcheck[wandb]`` extra a ``.wandb`` file gets WC027. Damage is data: a bad chunk is
skipped with its offset (WC004), an end cut mid-record is WC003 (a run still being written or killed),
a file without the W&B header is WC002, a record whose protobuf does not decode is WC014.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import storage
from ..findings import Finding
from ..model import Format, SourceInfo, SourceRead
from ._records import json_safe
from ._wandblog import HEADER_LEN, Damage, DamageKind, LogScanner, Record, check_header
from ._wandbrows import Rows, json_value
from .interface import diag, not_installed

# Record fields (wandb_internal.proto, Record.record_type) decoded; others are skipped unparsed.
_HISTORY, _SUMMARY, _CONFIG, _RUN, _EXIT, _HEADER = 2, 3, 5, 17, 18, 21
_SKIPPED = frozenset({4, 6, 7, 8, 9, 10, 11, 12, 13, 22, 23, 24, 25, 26, 27, 100})
_SUMMARY_KEPT = 1000
_TEXT_KEPT = 200
_MAX_FINDINGS = 10


def read_wandb(path: str) -> SourceRead:
    """Read one W&B run file (the reader contract: damage is data; see ``readers/interface.py``)."""
    info = SourceInfo(path, Format.WANDB)
    try:
        with storage.open_binary(path) as fh:
            size = storage.size_of(fh)
            head = fh.read(HEADER_LEN)
            problem = header_problem(head, size, path, final=True)
            if problem is not None:
                return SourceRead(info, findings=[problem])
            try:
                decoder = RunDecoder(path)
            except ImportError:
                return SourceRead(info, findings=[not_installed(path, "wandb", "wandb", "a W&B run file")])
            decoder.feed(LogScanner().scan(fh, size, final=True))
    except OSError as exc:
        return SourceRead(info, findings=[diag("WC001", f"cannot read W&B run file: {exc.strerror or exc}", path,
                                               error=type(exc).__name__)])
    return decoder.take(final=True)


def header_problem(head: bytes, size: int, path: str, *, final: bool) -> Finding | None:
    """WC002 for a file that is not a W&B run file (or is empty), WC003 for one cut inside its header."""
    if size == 0:
        return diag("WC002", "empty W&B run file (0 bytes)", path) if final else None
    why = check_header(head)
    if why is not None:
        return diag("WC002", f"not a W&B run file: {why}", path, bytes=size)
    if len(head) < HEADER_LEN:
        return diag("WC003", f"truncated W&B run file: {size} bytes, less than its {HEADER_LEN}-byte header",
                    path, offset=0, bytes=size) if final else None
    return None


class RunDecoder:
    """Records to points, config, summary and findings; :meth:`take` hands out what is new.

    Raises ImportError when wandb is not installed (its protobuf classes decode the records).
    """

    def __init__(self, path: str) -> None:
        from google.protobuf.message import DecodeError
        from wandb.proto import wandb_internal_pb2 as pb

        self._parse, self._decode_error = pb.Record.FromString, DecodeError  # type: ignore[attr-defined]
        self.path = path
        self.rows = 0  # history rows read
        self.records = self.skipped = 0  # records read / records lost (damaged or undecodable)
        self.config: dict[str, Any] = {}
        self.summary: dict[str, str] = {}  # name -> JSON text
        self.run: dict[str, Any] = {}
        self.findings: list[Finding] = []
        self._rows = Rows(path, None)
        self._undecodable: list[tuple[int, int]] = []  # (offset, record index)
        self._changed = True  # metadata changed since the last take

    def feed(self, items: Any) -> None:
        """Consume the scanner's records and damage (an iterable of Record | Damage)."""
        for item in items:
            if isinstance(item, Record):
                self.records += 1
                self._record(item)
            else:
                self.findings.append(damage_finding(item, self.path))
                if item.kind is not DamageKind.TRUNCATED:
                    self.skipped += 1

    def _record(self, rec: Record) -> None:
        kind = _field_of(rec.payload)
        if kind in _SKIPPED:
            return
        try:
            r = self._parse(rec.payload)
        except (self._decode_error, ValueError, RuntimeError) as exc:
            self.skipped += 1
            self._undecodable.append((rec.offset, rec.index))
            if len(self._undecodable) == 1:
                self._first_error = str(exc) or type(exc).__name__
            return
        which = "history" if kind == _HISTORY else "summary" if kind == _SUMMARY else r.WhichOneof("record_type")
        if which == "history":
            self._rows.add(r.history, self.rows)
            self.rows += 1
        elif which == "summary":
            self._summary(r.summary)
        elif which == "config":
            self._config(r.config)
        elif which == "run":
            self._run(r.run)
        elif which == "exit":
            self.run["exit_code"] = int(r.exit.exit_code)
            self._changed = True
        elif which == "header":
            self.run["producer"] = r.header.version_info.producer
            self._changed = True

    def _summary(self, summary: Any) -> None:
        # W&B writes a summary update after every history row: the values stay JSON text until take().
        kept = self.summary
        for item in summary.update:
            nk = item.nested_key
            name = (nk[0] if len(nk) == 1 else "/".join(nk)) if nk else item.key
            if name in kept or len(kept) < _SUMMARY_KEPT:
                kept[name] = item.value_json
        for item in summary.remove:
            self.summary.pop("/".join(item.nested_key) if item.nested_key else item.key, None)
        self._changed = True

    def _config(self, config: Any) -> None:
        for item in config.update:
            parts = list(item.nested_key) or [item.key]
            if parts[0] == "_wandb":
                continue
            _set(self.config, parts, _unwrap(json_value(item.value_json)))
        for item in config.remove:
            _unset(self.config, list(item.nested_key) or [item.key])
        self._changed = True

    def _run(self, run: Any) -> None:
        for field in ("run_id", "entity", "project", "display_name", "run_group", "job_type", "sweep_id"):
            value = getattr(run, field)
            if value:
                self.run[field] = value
        if run.tags:
            self.run["tags"] = list(run.tags)
        if run.HasField("start_time"):
            self.run["start_time"] = run.start_time.seconds + run.start_time.nanos / 1e9
        if run.starting_step:
            self.run["starting_step"] = int(run.starting_step)
        if run.resumed:
            self.run["resumed"] = True
        self._config(run.config)
        if run.HasField("summary"):
            self._summary(run.summary)

    def take(self, *, final: bool) -> SourceRead:
        """What was read since the last call: fragments, findings, counts; metadata when it changed."""
        kept, more, skipped = self._rows.build()
        findings = self.findings + more
        if self._undecodable:
            (offset, index), n = self._undecodable[0], len(self._undecodable)
            findings.append(diag("WC014", f"{n} record(s) with a valid checksum do not decode as W&B records "
                                 f"(first: record #{index} at offset {offset}: {self._first_error}); skipped",
                                 self.path, offset=offset, record=index, records=n,
                                 offsets=[o for o, _ in self._undecodable[:_MAX_FINDINGS]]))
            self._undecodable = []
        if final and not any(len(f) for f in kept) and not any(f.code in ("WC002", "WC003") for f in findings):
            findings.append(diag("WC002", f"no data: no numeric history in {self.records} record(s) "
                                 f"({self.rows} history rows)", self.path, records=self.records, rows=self.rows))
        info = SourceInfo(self.path, Format.WANDB, self.records, self.skipped + skipped)
        self.findings, self.records, self.skipped = [], 0, 0
        meta: dict[str, Any] = {}
        if self._changed or final:
            meta = {"wandb": {**self.run, "step_key": self._rows.step_key, "history_rows": self.rows,
                              "summary": _shortened(json_safe(_scalars(self.summary)))},
                    "tracker_params": {"W&B config": _shortened(json_safe(self.config))}}
            self._changed = False
        return SourceRead(info, fragments=kept, metadata=meta, findings=findings)


def damage_finding(d: Damage, path: str) -> Finding:
    """WC003 for an end cut mid-record, WC004 for a damaged stretch skipped."""
    details = {"offset": d.offset, "bytes_skipped": d.nbytes, "kind": d.kind.value, "record": d.record}
    if d.kind is DamageKind.TRUNCATED:
        return diag("WC003", f"truncated final record at offset {d.offset} ({d.nbytes} trailing bytes): the "
                    f"run is still being written or its process was killed; {d.record} complete records read",
                    path, details=details)
    what = {DamageKind.BAD_CHUNK: "damaged chunk(s) (checksum, type or length wrong)",
            DamageKind.ZEROED: "zeroed bytes where records were expected",
            DamageKind.ORPHAN: "the rest of a record whose start was lost",
            DamageKind.UNFINISHED: "a record whose last chunk never came"}[d.kind]
    return diag("WC004", f"{what} at offset {d.offset}: {d.nbytes} bytes skipped before record #{d.record}",
                path, details=details)


def _field_of(payload: bytes) -> int:
    """The field number of a Record's type, peeked from its first bytes (fields are written in number
    order: ``num`` (1) first, then the one ``record_type``); 0 when unsure (the record is parsed)."""
    i, n = 0, len(payload)
    if n and payload[0] == 0x08:  # num: a varint
        i = 1
        while i < n and payload[i] & 0x80:
            i += 1
        i += 1
    if i >= n:
        return 0
    tag = payload[i]
    if tag < 0x80:
        return tag >> 3
    if i + 1 < n and payload[i + 1] < 0x80:
        return ((tag & 0x7F) | payload[i + 1] << 7) >> 3
    return 0


def _scalars(summary: Mapping[str, str]) -> dict[str, Any]:
    """The summary's scalars, decoded, without W&B's bookkeeping (``_runtime``, ``_wandb/...``) and
    media (``weights/_type``, ``weights/bins``...: the keys beside a ``_type``)."""
    media = tuple(name[:-5] for name in summary if name.endswith("/_type"))
    out = {}
    for k, text in summary.items():
        if any(part.startswith("_") for part in k.split("/")) or (media and k.startswith(media)):
            continue
        value = json_value(text)
        if not isinstance(value, (dict, list)):  # media, tables, histograms: not a summary scalar
            out[k] = value
    return out


def _shortened(value: Any) -> Any:
    """Long texts cut to ``_TEXT_KEPT`` characters (a 70 kB note in a config is not worth a report)."""
    if isinstance(value, str) and len(value) > _TEXT_KEPT:
        return f"{value[:_TEXT_KEPT]}... ({len(value)} characters)"
    if isinstance(value, dict):
        return {k: _shortened(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shortened(v) for v in value]
    return value


def _unwrap(value: Any) -> Any:
    """``{"value": x}`` (and ``{"desc": ..., "value": x}``, config.yaml's shape) is ``x``."""
    if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
        return value["value"]
    return value


def _set(doc: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        nxt = doc.get(part)
        if not isinstance(nxt, dict):
            nxt = doc[part] = {}
        doc = nxt
    doc[parts[-1]] = value


def _unset(doc: Mapping[str, Any], parts: list[str]) -> None:
    for part in parts[:-1]:
        nxt = doc.get(part)
        if not isinstance(nxt, dict):
            return
        doc = nxt
    if isinstance(doc, dict):
        doc.pop(parts[-1], None)


__all__ = ["RunDecoder", "damage_finding", "header_problem", "read_wandb"]
