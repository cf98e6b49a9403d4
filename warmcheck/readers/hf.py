"""Hugging Face ``trainer_state.json``: ``log_history`` entries to fragments, config to metadata.

Each ``log_history`` entry is one ``Trainer.log`` call with its ``step``; every numeric key is a
series (``loss``, ``learning_rate``, ``grad_norm``, ``eval_loss``, ``epoch``, ...). The
end-of-training summary entry (``train_runtime``, ``total_flos``, ``train_loss``) is not a
training step and goes to metadata instead. ``json.dump`` writes NaN/Infinity as bare tokens;
they are accepted and counted. A bare JSON list of such entries is read the same way.

The file is scanned entry by entry as it is read (:mod:`._jsonscan`): memory follows the points
kept, not the file (a 600 MB file of 10 million entries is never one Python object). A damaged
entry is skipped up to the next entry that decodes, and the finding names the lines skipped; a file
cut mid-write keeps every complete entry before the cut.
"""

from __future__ import annotations

import json

from ..findings import Finding
from ..model import Format, SourceInfo, SourceRead
from ._jsonscan import MAX_HEAD, HistoryScan, ScanResult, unbalanced
from ._records import Clashes, Collector, NonFiniteTokens, flatten, json_safe
from ._textstream import TextStream
from .interface import diag

_READ = 1 << 22  # 4 MiB of text at a time
_UNSTEPPED_KEPT = 1000


def read_trainer_state(path: str) -> SourceRead:
    """Read one ``trainer_state.json`` (the reader contract: damage is data; see ``readers/interface.py``)."""
    info = SourceInfo(path, Format.HF_TRAINER_STATE)
    stream = TextStream(path, read_size=_READ)
    tokens = NonFiniteTokens()
    history = _History(path)
    scan = HistoryScan(history.add, tokens)
    for piece in stream.pieces():
        scan.feed(piece.decode("utf-8"))
    findings = stream.findings
    if not stream.ok:
        return SourceRead(info, findings=findings)
    result = scan.finish()
    if result.blank:
        findings.append(diag("WC002", "empty file (0 bytes)" if stream.size == 0 else
                             "empty file: no JSON in it", path, bytes=stream.size))
        return SourceRead(info, findings=findings)
    if not result.found:
        findings += _no_history(result, path)
        return SourceRead(info, findings=findings)
    findings += _damage(result, path)
    return history.build(info, result, tokens, findings)


def _no_history(result: ScanResult, path: str) -> list[Finding]:
    text = result.head_only
    if text is None:
        return [diag("WC002", f"no data: no log_history list in the first {MAX_HEAD >> 20} MiB; not a "
                     "trainer_state.json", path)]
    out = []
    try:
        json.loads(text, parse_constant=float)
    except (ValueError, RecursionError) as exc:
        line, col = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        where = f" at line {line} col {col}" if line is not None else ""
        reason = "nesting too deep" if isinstance(exc, RecursionError) else \
            str(getattr(exc, "msg", exc)).removesuffix(" at").lower()
        code, what = ("WC003", "truncated JSON") if unbalanced(text) else ("WC014", "invalid JSON")
        out.append(diag(code, f"{what}{where} ({reason}): no log_history entries found", path, line=line,
                        column=col, entries_kept=0))
    out.append(diag("WC002", "no data: not a trainer_state.json (no log_history list)", path))
    return out


def _damage(r: ScanResult, path: str) -> list[Finding]:
    out = []
    kept = f"{r.entries} complete log_history entr{'y' if r.entries == 1 else 'ies'}"
    if r.error is not None:
        e = r.error
        more = f", and {r.errors - 1} more place(s)" if r.errors > 1 else ""
        if r.skipped_entries:
            spans = ", ".join(map(str, r.regions))
            spans += ", ..." if r.skipped_regions > len(r.regions) else ""
            s = "y" if r.skipped_entries == 1 else "ies"
            skipped = (f"{r.skipped_entries} damaged entr{s} skipped ({spans}), the scan resumed "
                       f"after {'it' if r.skipped_regions == 1 else 'each'}; ")
        else:
            skipped = "no entry lost (a missing ',' or stray one); "
        out.append(diag("WC014", f"invalid JSON at line {e.line} col {e.column} ({e.reason}){more}: "
                        f"{skipped}{kept} read", path, line=e.line, column=e.column, entries_kept=r.entries,
                        entries_skipped=r.skipped_entries, places=r.errors,
                        regions=[[*g.first, *g.last] for g in r.regions]))
    if r.truncated is not None:
        t = r.truncated
        lost = "" if not r.truncated_from else f", line {r.eof_line} not" if r.truncated_from == r.eof_line \
            else f", lines {r.truncated_from}-{r.eof_line} not"
        out.append(diag("WC003", f"truncated JSON at line {t.line} col {t.column} ({t.reason}; the file ends "
                        f"mid-write at line {r.eof_line}): {kept} kept{lost}", path, line=t.line,
                        column=t.column, entries_kept=r.entries, eof_line=r.eof_line))
    if r.outside is not None:
        o = r.outside
        out.append(diag("WC014", f"invalid JSON at line {o.line} col {o.column} ({o.reason}) in the fields "
                        f"after log_history, which were not read: {kept} read", path, line=o.line,
                        column=o.column, entries_kept=r.entries))
    return out


class _History:
    """The entries as they come: points to a collector, the summary and step-less ones to metadata."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.collector = Collector(path, where="entry")
        self.clashes = Clashes()
        self.summary: object = None
        self.unstepped: list[object] = []
        self.not_objects: list[int] = []
        self.n_not_objects = 0
        self.n = 0

    def add(self, entry: object) -> None:
        i = self.n
        self.n += 1
        if not isinstance(entry, dict):
            self.n_not_objects += 1
            if len(self.not_objects) < 10:
                self.not_objects.append(i)
            return
        if "train_runtime" in entry or "total_flos" in entry or (
                "train_loss" in entry and "loss" not in entry and "learning_rate" not in entry):
            self.summary = entry
            return
        if "step" not in entry:
            # Trainer.predict()/evaluate() outside training log metrics without a step: not a
            # training point, and not damage either.
            if len(self.unstepped) < _UNSTEPPED_KEPT:
                self.unstepped.append(json_safe(entry))
            return
        self.clashes.loc = i
        self.collector.add(flatten(entry, self.clashes), i, "step", i)

    def build(self, info: SourceInfo, result: ScanResult, tokens: NonFiniteTokens,
              findings: list[Finding]) -> SourceRead:
        path = self.path
        fragments, more, skipped = self.collector.build("step")
        findings += more
        findings += self.clashes.findings(path, "entry")
        if self.n_not_objects:
            skipped += self.n_not_objects
            findings.append(diag("WC014", f"{self.n_not_objects} log_history entries are not JSON objects "
                                 "and were skipped", path, entries=self.not_objects))
        nonfinite = tokens.finding(path)
        if nonfinite is not None:
            findings.append(nonfinite)
        if not any(len(f) for f in fragments):
            findings.append(diag("WC002", f"no data: log_history has {self.n} entries and no numeric "
                                 "value at a valid step", path, entries=self.n))
        meta: dict[str, object] = {"trainer_state": {k: json_safe(v) for k, v in result.top.items()
                                                     if not isinstance(v, list)}}
        if self.summary is not None:
            meta["train_summary"] = json_safe(self.summary)
        if self.unstepped:
            meta["entries_without_step"] = self.unstepped
        return SourceRead(SourceInfo(path, info.format, self.n, skipped + result.skipped_entries),
                          fragments=fragments, metadata=meta, findings=findings)
