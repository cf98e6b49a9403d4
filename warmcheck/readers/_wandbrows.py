"""W&B history rows to points: one pass over each row's items, straight into compact arrays.

A row is a ``HistoryRecord``: items of (``key`` or ``nested_key`` parts, ``value_json``). Values are
parsed with ``float()`` first (it reads ``NaN``/``Infinity`` as W&B writes them) and only what that
refuses goes through JSON: objects and lists (media, tables, histograms) are not points, strings that
spell a number are, other strings and booleans in a key that holds numbers elsewhere are counted and
reported (WC014), like the JSONL reader's values; a key that never holds a number is text, not a
series. ``_timestamp`` is the row's wall time; ``_runtime`` and ``_step``
(unless it is the step key) are W&B's bookkeeping, not series. A million rows of three keys take
about 72 bytes a row (three points of step, value and wall time).
"""

from __future__ import annotations

import json
import math
from array import array
from typing import Any

import numpy as np

from ..findings import Finding, make
from ..model import Fragment
from ._records import Clashes, pick_key
from ._text import format_lines, parse_number, parse_step
from .interface import diag

_DECODE = json.JSONDecoder().decode  # one decoder (json.loads with arguments builds one per call); NaN accepted
_WALL, _RUNTIME, _STEP = "_timestamp", "_runtime", "_step"
_LISTED = 10


def json_value(text: str) -> Any:
    """A ``value_json`` decoded; the text itself when it is not JSON."""
    try:
        return _DECODE(text)
    except (ValueError, RecursionError):
        return text


class _Key:
    __slots__ = ("steps", "values", "walls", "bad", "numeric")

    def __init__(self) -> None:
        self.steps, self.values, self.walls = array("q"), array("d"), array("d")
        self.bad: list[int] = []
        self.numeric = False


class Rows:
    """History rows in file order; :meth:`build` turns what was added into fragments and findings."""

    def __init__(self, source: str, step_key: str | None) -> None:
        self.source = source
        self.step_key = step_key  # chosen at the first row when None (see :meth:`add`)
        self.keys: dict[str, _Key] = {}
        self.bad_steps: list[int] = []
        self.clashes = Clashes()
        self._odd: set[str] = set()  # names reported as odd (WC011), once each

    def add(self, history: Any, row: int) -> None:
        """One ``HistoryRecord``; ``row`` is its index among the file's history rows."""
        items = []
        step_text: str | None = None
        wall = math.nan
        step_key = self.step_key
        if step_key is None:
            names = ["/".join(i.nested_key) if i.nested_key else i.key for i in history.item]
            step_key = self.step_key = pick_key([*names, _STEP]) or _STEP
        for item in history.item:
            nk = item.nested_key
            name = (nk[0] if len(nk) == 1 else "/".join(nk)) if nk else item.key
            if name == step_key:
                step_text = item.value_json
            elif name == _WALL:
                try:
                    wall = float(item.value_json)
                except ValueError:
                    pass
            elif name != _RUNTIME and name != _STEP:
                items.append((name, item.value_json))
        step = self._step(step_text, history, row)
        if step is None:
            return
        if len(items) > 1 and len({n for n, _ in items}) != len(items):
            items = self._renamed(items, row)
        keys = self.keys
        for name, text in items:
            key = keys.get(name)
            if key is None:
                key = keys[name] = _Key()
            try:
                value = float(text)
            except ValueError:
                got = json_value(text)
                if got is None or isinstance(got, (dict, list)):  # missing, or media: not a point
                    continue
                try:
                    number = parse_number(got) if isinstance(got, str) else None
                except (ValueError, OverflowError):
                    number = None
                if number is None:
                    key.bad.append(row)
                    continue
                value = number
            key.numeric = True
            key.steps.append(step)
            key.values.append(value)
            key.walls.append(wall)

    def _step(self, text: str | None, history: Any, row: int) -> int | None:
        if text is None:
            if self.step_key == _STEP and history.HasField("step"):
                return int(history.step.num)
            self.bad_steps.append(row)
            return None
        try:
            return int(text)
        except ValueError:
            step, _ = parse_step(json_value(text))
            if step is None:
                self.bad_steps.append(row)
            return step

    def _renamed(self, items: list[tuple[str, str]], row: int) -> list[tuple[str, str]]:
        """Two values of one row under one name (``"train/loss"`` beside ``{"train": {"loss"}}``): both
        kept, the later as ``name#2`` (see :class:`~warmcheck.readers._records.Clashes`)."""
        seen: set[str] = set()
        out = []
        for name, text in items:
            if name in seen:
                new, n = f"{name}#2", 2
                while new in seen:
                    n += 1
                    new = f"{name}#{n}"
                self.clashes.loc = row
                self.clashes.hit(name, new)
                name = new
            seen.add(name)
            out.append((name, text))
        return out

    def build(self) -> tuple[list[Fragment], list[Finding], int]:
        """Fragments of the numeric keys, findings (rows without a step, values that are not numbers,
        clashing and odd names) and the number of rows or values skipped; the rows are then emptied."""
        findings: list[Finding] = []
        skipped = len(self.bad_steps)
        if self.bad_steps:
            rows = self.bad_steps
            findings.append(make("WC014", f"{len(rows)} history row(s) skipped: no valid integer {self.step_key!r} "
                                 f"at rows {format_lines(rows)}", source=self.source, tag=self.step_key,
                                 details={"rows": len(rows), "history_rows": rows[:_LISTED]}))
        fragments = []
        for name, key in self.keys.items():
            if key.bad and key.numeric:  # words in a key that never holds a number: a text key, not damage
                skipped += len(key.bad)
                findings.append(make("WC014", f"key {name}: {len(key.bad)} value(s) are not numbers and were "
                                     f"skipped, at history rows {format_lines(key.bad)}", source=self.source,
                                     tag=name, details={"cells": len(key.bad), "history_rows": key.bad[:_LISTED]}))
            if not key.numeric:
                continue
            fragments.append(Fragment(name, np.frombuffer(key.steps, dtype=np.int64),
                                      np.frombuffer(key.values, dtype=np.float64),
                                      np.frombuffer(key.walls, dtype=np.float64)))
            if name not in self._odd and (name == "" or name.endswith("/") or "//" in name):
                self._odd.add(name)
                findings.append(diag("WC011", f"key {name!r} has an empty name part", self.source, tag=name))
        findings += self.clashes.findings(self.source, "history row")
        self.keys, self.bad_steps, self.clashes = {}, [], Clashes()
        return fragments, findings, skipped
