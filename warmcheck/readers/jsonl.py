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

from ..findings import Finding
from ..model import Format, Fragment, SourceInfo, SourceRead
from ._records import Clashes, Collector, NonFiniteTokens, flatten, pick_key
from ._text import STEP_KEYS, format_lines, load_json_text
from .interface import diag

_STEP_KEYS = frozenset(STEP_KEYS)


def read_jsonl(path: str) -> SourceRead:
    """Read one JSONL log (the reader contract: damage is data; see ``readers/interface.py``)."""
    info = SourceInfo(path, Format.JSONL)
    text, findings = load_json_text(path, "no JSON lines")
    if text is None:
        return SourceRead(info, findings=findings)
    got = parse_jsonl(path, text, findings)
    meta = {"jsonl": {"step_key": got.step_key, "lines": got.records}}
    return SourceRead(SourceInfo(path, Format.JSONL, got.records, got.skipped), fragments=got.fragments,
                      metadata=meta, findings=findings)


@dataclass
class JsonLines:
    """What :func:`parse_jsonl` made of some lines."""

    fragments: list[Fragment]
    records: int  # non-blank lines
    skipped: int
    objects: int  # lines holding a JSON object (their 0-based index is the step without a step key)
    step_key: str | None
    step_keys: tuple[str, ...]  # step-like keys seen so far, first seen first (for the next piece)


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
    return JsonLines(fragments, records, skipped, len(parsed), step_key, seen)


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
