"""JSON Lines logs: one JSON object per line, with a step key.

Nested objects are flattened with '/' (``{"train": {"loss": 1}}`` is the series ``train/loss``).
The step key is the best of :data:`~warmcheck.readers._text.STEP_KEYS` present in any line; a
line without it is skipped and counted. With no step key anywhere, the 0-based index of the
object line is the step (WC017). Blank lines are ignored; a line that is not a JSON object is
counted with its line number; an unterminated last line that does not parse is a write in
progress (WC003), one that parses is kept.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from ..findings import Finding
from ..model import Format, Fragment, SourceInfo, SourceRead, no_wall_times
from ._records import Clashes, Collector, NonFiniteTokens, flatten, pick_key
from ._text import STEP_KEYS, clean_piece, format_lines, load_json_text
from .interface import diag

_STEP_KEYS = frozenset(STEP_KEYS)


def read_jsonl(path: str) -> SourceRead:
    """Read one JSONL log (the reader contract: damage is data; see ``readers/interface.py``)."""
    return _read_jsonl(path)[0]


def read_jsonl_resumable(path: str) -> tuple[SourceRead, dict[str, Any] | None]:
    """:func:`read_jsonl`, and what :func:`resume_jsonl` needs to go on from the end of the file (the
    keys seen, in order); None when the read has findings or no step key."""
    read, got = _read_jsonl(path)
    if got is None or read.findings or got.step_key is None:
        return read, None
    return read, {"keys": list(got.keys)}


def _read_jsonl(path: str) -> tuple[SourceRead, JsonLines | None]:
    info = SourceInfo(path, Format.JSONL)
    text, findings = load_json_text(path, "no JSON lines")
    if text is None:
        return SourceRead(info, findings=findings), None
    got = parse_jsonl(path, text, findings)
    meta = {"jsonl": {"step_key": got.step_key, "lines": got.records}}
    return SourceRead(SourceInfo(path, Format.JSONL, got.records, got.skipped), fragments=got.fragments,
                      metadata=meta, findings=findings), got


@dataclass
class JsonLines:
    """What :func:`parse_jsonl` made of some lines."""

    fragments: list[Fragment]
    records: int  # non-blank lines
    skipped: int
    objects: int  # lines holding a JSON object (their 0-based index is the step without a step key)
    step_key: str | None
    step_keys: tuple[str, ...]  # step-like keys seen so far, first seen first (for the next piece)
    keys: tuple[str, ...] = ()  # every key with a value (the step key aside), first seen first


def parse_jsonl(path: str, text: str, findings: list[Finding], *, first_line: int = 1, first_index: int = 0,
                step_keys: Sequence[str] = (), numeric: Collection[str] = ()) -> JsonLines:
    """Parse JSONL ``text`` whose first line is line ``first_line`` of the file, after ``first_index``
    object lines, and whose earlier lines had the step-like keys ``step_keys`` and numbers under the
    keys ``numeric`` (series even where these lines give them no number); findings (WC002 when no
    line holds a number) are appended to ``findings``."""
    lines = text.split("\n")
    complete = text.endswith(("\n", "\r"))
    tokens = NonFiniteTokens()
    parsed: list[tuple[int, Mapping[str, object]]] = []
    clashes = Clashes()
    bad: list[int] = []
    not_objects: list[int] = []
    records = dropped = 0
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        records += 1
        try:
            obj = json.loads(line, parse_constant=tokens)
        except (ValueError, RecursionError):
            if number == len(lines) + first_line - 1 and not complete:
                findings.append(_incomplete(path, number, len(parsed)))
                dropped = 1
            else:
                bad.append(number)
            continue
        if isinstance(obj, dict):
            clashes.loc = number
            parsed.append((number, flatten(obj, clashes)))
        else:
            not_objects.append(number)
    keys = dict.fromkeys(chain(step_keys, (k for _, rec in parsed for k in rec)))
    step_key = pick_key(keys)
    collector = Collector(path, where="line")
    for index, (number, record) in enumerate(parsed, start=first_index):
        collector.add(record, number, step_key, index)
    for name in numeric:
        if name in collector.keys:
            collector.keys[name].numeric = True
    fragments, more, skipped = collector.build(step_key)
    skipped += len(bad) + len(not_objects) + dropped
    findings += _line_findings(path, bad, not_objects)
    findings += clashes.findings(path, "line")
    findings += more
    nonfinite = tokens.finding(path)
    if nonfinite is not None:
        findings.append(nonfinite)
    has_points = any(len(f) for f in fragments)
    if step_key is None and has_points:
        findings.append(diag(
            "WC017", "no step key (step, global_step, iteration, iter, ...) in any line: the 0-based index of "
            f"the {len(parsed)} object lines is used as step", path, rows=len(parsed)))
    if not has_points:
        findings.append(diag("WC002", f"no data: no numeric value in {records} non-blank lines", path,
                             lines=records))
    seen = tuple(k for k in keys if k.strip().lower() in _STEP_KEYS)
    return JsonLines(fragments, records, skipped, len(parsed), step_key, seen, tuple(collector.keys))


def _incomplete(path: str, line: int, kept: int) -> Finding:
    return diag("WC003", f"incomplete last line (no newline) at line {line}: file may still be being "
                f"written; {kept} complete lines kept", path, line=line, rows_kept=kept)


def _line_findings(path: str, bad: list[int], not_objects: list[int]) -> list[Finding]:
    out = []
    if bad:
        out.append(diag("WC014", f"{len(bad)} line(s) are not valid JSON and were skipped, at line(s) "
                        f"{format_lines(bad)}", path, line=bad[0], lines=bad[:10], count=len(bad)))
    if not_objects:
        out.append(diag("WC014", f"{len(not_objects)} line(s) are JSON but not objects and were skipped, "
                        f"at line(s) {format_lines(not_objects)}", path, line=not_objects[0],
                        lines=not_objects[:10], count=len(not_objects)))
    return out


def resume_jsonl(path: str, old: SourceRead, state: dict[str, Any], data: bytes,
                 offset: int) -> tuple[SourceRead, dict[str, Any]] | None:
    """``old`` (the clean read of a JSONL file's first ``offset`` bytes, which end with a line break;
    ``state`` from :func:`read_jsonl_resumable`) with the complete lines ``data`` appended since:
    what :func:`read_jsonl` gives for the whole file. Parsed as ``watch`` parses appended lines
    (:func:`parse_jsonl` with the step key and the numeric keys of the earlier lines); a key never
    seen before is a new series after the earlier ones, as in a whole read. None when that cannot be
    guaranteed: the new lines bring a finding, numbers under a key that held only other values, a
    better step key, or a step not after the last one of its key. (Line numbers only name findings,
    and any finding means None: the lines before ``offset`` are not counted.)"""
    meta = old.metadata.get("jsonl")
    if old.findings or not isinstance(meta, dict) or list(old.metadata) != ["jsonl"] \
            or not isinstance(meta.get("step_key"), str) or not data.endswith(b"\n") or not data.strip():
        return None
    findings: list[Finding] = []
    clean = clean_piece(data, path, findings, offset=offset)
    if findings:
        return None
    tags = [f.tag for f in old.fragments]
    seen = [str(k) for k in state["keys"]]
    got = parse_jsonl(path, clean.decode("utf-8"), findings,
                      first_index=int(meta["lines"]), step_keys=(meta["step_key"],), numeric=tags)
    new = {f.tag: f for f in got.fragments}
    known = set(seen)
    if findings or got.skipped or got.step_key != meta["step_key"] \
            or any(t in known for t in new if t not in set(tags)):
        return None
    fragments = []
    for f in old.fragments:
        g = new.get(f.tag)
        if g is None or not len(g):
            fragments.append(f)
            continue
        if len(f) and int(g.steps.min()) <= int(f.steps.max()):
            return None  # a step written again (a restart): read whole
        walls = no_wall_times(len(f) + len(g)) if _no_walls(f) and _no_walls(g) else \
            np.concatenate([f.wall_times, g.wall_times])
        fragments.append(Fragment(f.tag, np.concatenate([f.steps, g.steps]), np.concatenate([f.values, g.values]),
                                  walls))
    fragments += [g for g in got.fragments if g.tag not in known]  # first seen now: after the others
    records = int(meta["lines"]) + got.records
    read = SourceRead(SourceInfo(old.info.path, Format.JSONL, old.info.records + got.records, old.info.skipped),
                      fragments=fragments, metadata={"jsonl": {"step_key": got.step_key, "lines": records}},
                      findings=[])
    return read, {"keys": seen + [k for k in got.keys if k not in known]}


def _no_walls(f: Fragment) -> bool:
    w = f.wall_times
    return w.ndim == 1 and w.strides == (0,) and (not len(w) or bool(np.isnan(w[0])))
