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

from ..findings import Finding
from ..model import Format, SourceInfo, SourceRead
from ._records import Collector, NonFiniteTokens, flatten, pick_key
from ._text import format_lines, load_json_text
from .interface import diag


def read_jsonl(path: str) -> SourceRead:
    """Read one JSONL log (the reader contract: damage is data; see ``readers/interface.py``)."""
    info = SourceInfo(path, Format.JSONL)
    text, findings = load_json_text(path, "no JSON lines")
    if text is None:
        return SourceRead(info, findings=findings)
    lines = text.split("\n")
    complete = text.endswith(("\n", "\r"))
    tokens = NonFiniteTokens()
    parsed: list[tuple[int, dict[str, object]]] = []
    bad: list[int] = []
    not_objects: list[int] = []
    records = dropped = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        records += 1
        try:
            obj = json.loads(line, parse_constant=tokens)
        except (ValueError, RecursionError):
            if number == len(lines) and not complete:
                findings.append(_incomplete(path, number, len(parsed)))
                dropped = 1
            else:
                bad.append(number)
            continue
        if isinstance(obj, dict):
            parsed.append((number, flatten(obj)))
        else:
            not_objects.append(number)
    step_key = pick_key(dict.fromkeys(k for _, rec in parsed for k in rec))
    collector = Collector(path, where="line")
    for index, (number, record) in enumerate(parsed):
        collector.add(record, number, step_key, index)
    fragments, more, skipped = collector.build(step_key)
    skipped += len(bad) + len(not_objects) + dropped
    findings += _line_findings(path, bad, not_objects)
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
    meta = {"jsonl": {"step_key": step_key, "lines": records}}
    return SourceRead(SourceInfo(path, Format.JSONL, records, skipped), fragments=fragments,
                      metadata=meta, findings=findings)


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
