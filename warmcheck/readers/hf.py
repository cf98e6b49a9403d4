"""Hugging Face ``trainer_state.json``: ``log_history`` entries to fragments, config to metadata.

Each ``log_history`` entry is one ``Trainer.log`` call with its ``step``; every numeric key is a
series (``loss``, ``learning_rate``, ``grad_norm``, ``eval_loss``, ``epoch``, ...). The
end-of-training summary entry (``train_runtime``, ``total_flos``, ``train_loss``) is not a
training step and goes to metadata instead. ``json.dump`` writes NaN/Infinity as bare tokens;
they are accepted and counted. A file cut mid-write keeps every complete entry before the cut.
A bare JSON list of such entries is read the same way.
"""

from __future__ import annotations

import json
import re

from ..findings import Finding
from ..model import Format, SourceInfo, SourceRead
from ._records import Collector, NonFiniteTokens, flatten, json_safe
from ._text import load_json_text
from .interface import diag

_SUMMARY_KEYS = ("train_runtime", "total_flos")
_LOG_HISTORY = re.compile(r'"log_history"\s*:\s*\[')
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def read_trainer_state(path: str) -> SourceRead:
    """Read one ``trainer_state.json`` (the reader contract: damage is data; see ``readers/interface.py``)."""
    info = SourceInfo(path, Format.HF_TRAINER_STATE)
    text, findings = load_json_text(path, "no JSON")
    if text is None:
        return SourceRead(info, findings=findings)
    tokens = NonFiniteTokens()
    try:
        doc: object = json.loads(text, parse_constant=tokens)
        top, entries = _split(doc)
    except (ValueError, RecursionError) as exc:
        tokens = NonFiniteTokens()  # the failed parse counted a prefix; the salvage counts again
        top, entries = _salvage(text, tokens)
        findings.append(_damage(text, exc, len(entries), path))
    if entries is None:
        findings.append(diag("WC002", "no data: not a trainer_state.json (no log_history list)", path))
        return SourceRead(info, findings=findings)
    return _entries(path, info, top, entries, tokens, findings)


def _split(doc: object) -> tuple[dict[str, object], list[object] | None]:
    if isinstance(doc, list):
        return {}, doc
    if isinstance(doc, dict) and isinstance(doc.get("log_history"), list):
        return {k: v for k, v in doc.items() if k != "log_history"}, doc["log_history"]
    return {}, None


def _damage(text: str, exc: Exception, kept: int, path: str) -> Finding:
    line = getattr(exc, "lineno", None)
    col = getattr(exc, "colno", None)
    where = f" at line {line} col {col}" if line is not None else ""
    reason = "nesting too deep" if isinstance(exc, RecursionError) else \
        str(getattr(exc, "msg", exc)).removesuffix(" at").lower()
    rest = _STRINGS.sub("", text)
    if '"' in rest or rest.count("{") + rest.count("[") > rest.count("}") + rest.count("]"):
        eof_line = text.count("\n") + 1
        return diag("WC003", f"truncated JSON{where} ({reason}; the file ends mid-write at line "
                    f"{eof_line}): {kept} complete log_history entries kept", path, line=line, column=col,
                    entries_kept=kept, eof_line=eof_line)
    return diag("WC014", f"invalid JSON{where} ({reason}): {kept} complete log_history entries "
                "recovered around it", path, line=line, column=col, entries_kept=kept)


def _salvage(text: str, tokens: NonFiniteTokens) -> tuple[dict[str, object], list[object]]:
    """Top-level fields before ``log_history`` and every entry that decodes completely."""
    match = _LOG_HISTORY.search(text)
    top: dict[str, object] = {}
    if match is not None:
        pos = match.end()
        head = text[:match.start()].rstrip().rstrip(",")
        try:  # trainer_state.json is written with sorted keys: these are best_metric ... is_*
            parsed = json.loads(head + "}", parse_constant=tokens)
            top = parsed if isinstance(parsed, dict) else {}
        except (ValueError, RecursionError):
            pass
    else:
        stripped = text.lstrip()
        if not stripped.startswith("["):
            return {}, []
        pos = len(text) - len(stripped) + 1
    decoder = json.JSONDecoder(parse_constant=tokens)
    entries: list[object] = []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        try:
            entry, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            break
        entries.append(entry)
    return top, entries


def _entries(path: str, info: SourceInfo, top: dict[str, object], entries: list[object],
             tokens: NonFiniteTokens, findings: list[Finding]) -> SourceRead:
    collector = Collector(path, where="entry")
    summaries: list[object] = []
    unstepped: list[object] = []
    not_objects: list[int] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            not_objects.append(i)
            continue
        if any(k in entry for k in _SUMMARY_KEYS) or ("train_loss" in entry and "loss" not in entry
                                                      and "learning_rate" not in entry):
            summaries.append(json_safe(entry))
            continue
        if "step" not in entry:
            # Trainer.predict()/evaluate() outside training log metrics without a step: not a
            # training point, and not damage either.
            unstepped.append(json_safe(entry))
            continue
        collector.add(flatten(entry), i, "step", i)
    fragments, more, skipped = collector.build("step")
    findings += more
    if not_objects:
        skipped += len(not_objects)
        findings.append(diag("WC014", f"{len(not_objects)} log_history entries are not JSON objects "
                             "and were skipped", path, entries=not_objects[:10]))
    nonfinite = tokens.finding(path)
    if nonfinite is not None:
        findings.append(nonfinite)
    if not any(len(f) for f in fragments):
        findings.append(diag("WC002", f"no data: log_history has {len(entries)} entries and no numeric "
                             "value at a valid step", path, entries=len(entries)))
    meta: dict[str, object] = {"trainer_state": {k: json_safe(v) for k, v in top.items()
                                                 if not isinstance(v, list)}}
    if summaries:
        meta["train_summary"] = summaries[-1]
    if unstepped:
        meta["entries_without_step"] = unstepped
    return SourceRead(SourceInfo(path, info.format, len(entries), skipped), fragments=fragments,
                      metadata=meta, findings=findings)
