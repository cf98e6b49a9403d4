"""JSON records (HF ``log_history`` entries, JSONL lines) to fragments, shared by hf.py and jsonl.py.

A key becomes a series when at least one record gives it a JSON number. Strings in such a key
that spell a number ("NaN", "1e-4") are points too; other values there (words, bools, lists)
are counted as unparsable. Keys that never hold a number (run names, flags) are not series.
``null`` is a missing value, like an empty CSV cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..findings import Finding, make
from ..model import Fragment
from ._text import WALL_TIME_KEYS, format_lines, parse_number, parse_step, pick_step
from .interface import diag


class NonFiniteTokens:
    """``parse_constant`` hook for :mod:`json`: accepts bare NaN/Infinity/-Infinity and counts them
    (``json.load`` takes them silently; strict JSON has no such tokens)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, token: str) -> float:
        self.counts[token] = self.counts.get(token, 0) + 1
        return float(token)  # float() reads 'NaN', 'Infinity' and '-Infinity'

    def finding(self, source: str) -> Finding | None:
        """WC012 naming the tokens and how often each occurred, or ``None`` if there were none."""
        if not self.counts:
            return None
        parts = ", ".join(f"{tok} x{n}" for tok, n in self.counts.items())
        return diag("WC012", f"bare non-finite JSON tokens accepted as numbers ({parts}); they are not "
                    "standard JSON", source, tokens=dict(self.counts))


def flatten(obj: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested dicts joined with '/': ``{"train": {"loss": 1}}`` -> ``{"train/loss": 1}``."""
    out: dict[str, object] = {}
    for key, value in obj.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def json_safe(value: object, depth: int = 0) -> object:
    """``value`` made strictly JSON-serialisable: non-finite floats become ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)) or depth > 16:
        return value if depth <= 16 else None
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v, depth + 1) for v in value]
    return None


@dataclass
class _Key:
    steps: list[int] = field(default_factory=list)
    values: list[object] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    where: list[int] = field(default_factory=list)
    numeric: bool = False


class Collector:
    """Accumulates records in file order; ``where`` names the location unit ('line' or 'entry')."""

    def __init__(self, source: str, where: str = "line") -> None:
        self.source, self.where = source, where
        self.plural = {"entry": "entries"}.get(where, where + "s")
        self.keys: dict[str, _Key] = {}
        self.bad_steps: list[int] = []
        self.rounded: list[tuple[int, object]] = []
        self.records = 0

    def add(self, record: Mapping[str, object], loc: int, step_key: str | None, index: int) -> None:
        """One flattened record at ``loc``; ``index`` is its step when there is no step key."""
        self.records += 1
        step = index
        if step_key is not None:
            parsed, rounded = parse_step(record.get(step_key))
            if parsed is None:
                self.bad_steps.append(loc)
                return
            if rounded:
                self.rounded.append((loc, record.get(step_key)))
            step = parsed
        wall = _wall_time(record)
        for name, value in record.items():
            if name == step_key or value is None:
                continue
            key = self.keys.get(name)
            if key is None:
                key = self.keys[name] = _Key()
            key.numeric |= isinstance(value, (int, float)) and not isinstance(value, bool)
            key.steps.append(step)
            key.values.append(value)
            key.walls.append(wall)
            key.where.append(loc)

    def _n(self, count: int) -> str:
        return f"{count} {self.where if count == 1 else self.plural}"

    def _at(self, message: str, locs: list[int], tag: str | None, **details: object) -> Finding:
        """A WC014 naming ``locs`` (line numbers, or entry indices in details only)."""
        details[self.plural] = locs[:10]
        return make("WC014", message, source=self.source, tag=tag, details=details,
                    line=locs[0] if self.where == "line" and locs else None)

    def build(self, step_key: str | None) -> tuple[list[Fragment], list[Finding], int]:
        """Fragments, findings (bad steps, bad values, empty keys) and the number skipped."""
        findings: list[Finding] = []
        skipped = len(self.bad_steps)
        unit, units = self.where, self.plural
        if self.bad_steps:
            locs = self.bad_steps
            findings.append(self._at(f"{self._n(len(locs))} skipped: no valid integer {step_key!r} at "
                                     f"{units} {format_lines(locs)}", locs, step_key, rows=len(locs)))
        if self.rounded:
            loc, raw = self.rounded[0]
            findings.append(self._at(f"non-integer step {raw!r} at {unit} {loc} rounded down "
                                     f"({self._n(len(self.rounded))}); kept",
                                     [w for w, _ in self.rounded], step_key, rows=len(self.rounded)))
        fragments = []
        for name, key in self.keys.items():
            if not key.numeric:
                continue
            frag, bad = _fragment(name, key)
            fragments.append(frag)
            if bad:
                skipped += len(bad)
                findings.append(self._at(f"key {name}: {len(bad)} value(s) are not numbers and were "
                                         f"skipped, at {units} {format_lines(bad)}", bad, name,
                                         cells=len(bad)))
            if name == "" or name.endswith("/") or "//" in name:
                findings.append(diag("WC011", f"key {name!r} has an empty name part", self.source, tag=name))
        return fragments, findings, skipped


def _fragment(name: str, key: _Key) -> tuple[Fragment, list[int]]:
    keep: list[int] = []
    values: list[float] = []
    bad: list[int] = []
    for i, value in enumerate(key.values):
        try:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(value)
            number = parse_number(value) if isinstance(value, str) else float(value)
        except (ValueError, OverflowError):
            bad.append(key.where[i])
            continue
        if number is not None:
            keep.append(i)
            values.append(number)
    idx = np.asarray(keep, dtype=np.intp)
    frag = Fragment(name, np.asarray(key.steps, dtype=np.int64)[idx] if keep else np.empty(0, np.int64),
                    np.asarray(values, dtype=np.float64),
                    np.asarray(key.walls, dtype=np.float64)[idx] if keep else np.empty(0, np.float64))
    return frag, bad


def _wall_time(record: Mapping[str, object]) -> float:
    for name in WALL_TIME_KEYS:
        value = record.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 1e8 < value < 1e11:
            return float(value)
    return math.nan


def pick_key(keys: Iterable[str]) -> str | None:
    """The step key among ``keys`` (see :data:`~warmcheck.readers._text.STEP_KEYS`)."""
    names = list(keys)
    idx = pick_step(names)
    return names[idx] if idx is not None else None
