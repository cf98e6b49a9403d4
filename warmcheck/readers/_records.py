"""JSON records (HF ``log_history`` entries, JSONL lines) to fragments, shared by hf.py and jsonl.py.

A key becomes a series when at least one record gives it a JSON number. Strings in such a key
that spell a number ("NaN", "1e-4") are points too; other values there (words, bools, lists)
are counted as unparsable. Keys that never hold a number (run names, flags) are not series.
``null`` is a missing value, like an empty CSV cell.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..findings import Finding, make
from ..model import Fragment, no_wall_times
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


class Clashes:
    """Names that two values of one record flatten to (``"train/loss"`` beside ``{"train": {"loss"}}``).

    Both values are kept: the first keeps the name, the later one is ``name#2`` (as a duplicate CSV
    column is); :meth:`finding` reports it (WC015) with the count and the first place. The caller
    sets ``loc`` (line or entry) before flattening each record.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.first: dict[str, tuple[int, str]] = {}
        self.loc = 0

    def hit(self, name: str, kept_as: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.first.setdefault(name, (self.loc, kept_as))

    def findings(self, source: str, where: str) -> list[Finding]:
        """One WC015 per name written twice in a record."""
        out = []
        for name, count in self.counts.items():
            loc, kept = self.first[name]
            units = where if count == 1 else {"entry": "entries"}.get(where, where + "s")
            out.append(make(
                "WC015", f"key {name} is written twice in {count} {units} (a key holding '/' and a nested "
                f"object flatten to the same name), first at {where} {loc}: both kept, the later one as "
                f"{kept}", source=source, tag=kept, line=loc if where == "line" else None,
                details={"name": name, "kept_as": kept, where if count == 1 else units: count, "first": loc}))
        return out


def flatten(obj: Mapping[str, object], clashes: Clashes | None = None) -> Mapping[str, object]:
    """Nested dicts joined with '/': ``{"train": {"loss": 1}}`` -> ``{"train/loss": 1}``.

    A record without nested dicts is returned as it is. Two values flattening to one name are both
    kept (the later as ``name#2``, see :class:`Clashes`), never one silently over the other.
    """
    for value in obj.values():
        if isinstance(value, dict) and value:
            break
    else:
        return obj
    out: dict[str, object] = {}
    _flatten_into(out, obj, "", clashes)
    return out


def _flatten_into(out: dict[str, object], obj: Mapping[str, object], prefix: str, clashes: Clashes | None) -> None:
    for key, value in obj.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            _flatten_into(out, value, name, clashes)
            continue
        if name in out:
            new, n = f"{name}#2", 2
            while new in out or new in obj:
                n += 1
                new = f"{name}#{n}"
            if clashes is not None:
                clashes.hit(name, new)
            name = new
        out[name] = value


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


class _Key:
    """One key's points as compact arrays (16 bytes a point, 24 with wall times), not Python objects."""

    __slots__ = ("steps", "values", "walls", "bad", "numeric")

    def __init__(self) -> None:
        self.steps = array("q")
        self.values = array("d")
        self.walls: array[float] | None = None  # created at the first wall time (NaN before it)
        self.bad = array("q")  # where the values that are not numbers are
        self.numeric = False

    def add(self, step: int, value: float, wall: float) -> None:
        self.steps.append(step)
        self.values.append(value)
        if self.walls is not None:
            self.walls.append(wall)
        elif wall == wall:  # the first wall time: the points before it had none
            self.walls = array("d", [math.nan]) * (len(self.values) - 1)
            self.walls.append(wall)


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
        keys = self.keys
        for name, value in record.items():
            if name == step_key or value is None:
                continue
            key = keys.get(name)
            if key is None:
                key = keys[name] = _Key()
            kind = type(value)
            if kind is float and key.walls is None and wall != wall:  # the usual point, inlined
                key.numeric = True
                key.steps.append(step)
                key.values.append(value)  # type: ignore[arg-type]
                continue
            if kind is float or kind is int:
                key.numeric = True
                try:
                    key.add(step, float(value), wall)  # type: ignore[arg-type]
                except OverflowError:  # an integer beyond float range
                    key.bad.append(loc)
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):  # int/float subclasses
                key.numeric = True
            try:
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise ValueError(value)
                number = parse_number(value) if isinstance(value, str) else float(value)
            except (ValueError, OverflowError):
                key.bad.append(loc)
                continue
            if number is not None:
                key.add(step, number, wall)

    def _n(self, count: int) -> str:
        return f"{count} {self.where if count == 1 else self.plural}"

    def _at(self, message: str, locs: Sequence[int], tag: str | None, **details: object) -> Finding:
        """A WC014 naming ``locs`` (line numbers, or entry indices in details only)."""
        details[self.plural] = list(locs[:10])
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
            fragments.append(_fragment(name, key))
            bad = key.bad
            if bad:
                skipped += len(bad)
                findings.append(self._at(f"key {name}: {len(bad)} value(s) are not numbers and were "
                                         f"skipped, at {units} {format_lines(bad)}", bad, name,
                                         cells=len(bad)))
            if name == "" or name.endswith("/") or "//" in name:
                findings.append(diag("WC011", f"key {name!r} has an empty name part", self.source, tag=name))
        return fragments, findings, skipped


def _fragment(name: str, key: _Key) -> Fragment:
    n = len(key.values)
    if not n:
        return Fragment(name, np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64))
    walls = np.frombuffer(key.walls, dtype=np.float64) if key.walls is not None else no_wall_times(n)
    return Fragment(name, np.frombuffer(key.steps, dtype=np.int64), np.frombuffer(key.values, dtype=np.float64),
                    walls)


_WALL_KEYS = frozenset(WALL_TIME_KEYS)


def _wall_time(record: Mapping[str, object]) -> float:
    if _WALL_KEYS.isdisjoint(record):  # most records: one C-level pass over their few keys
        return math.nan
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
