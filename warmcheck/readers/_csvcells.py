"""Cells to numbers for :mod:`warmcheck.readers.csvlog`, one column at a time.

A column pandas already parsed as float/int is used as is (NaN there can only be an empty cell,
because NaN spellings were kept as text). A column that came back as ``object`` holds text, and
may mix floats and strings when pandas parsed it in chunks (``low_memory``); only those columns
are coerced cell by cell, so one bad token costs one cell and never turns a column into text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._text import is_nonfinite_token, parse_decimal_comma, parse_number, parse_step

BoolArray = NDArray[np.bool_]


@dataclass
class Column:
    """One column as numbers: ``values`` (NaN where no number), which cells were non-empty
    (``present``) and which held a number (``numeric``)."""

    values: NDArray[np.float64]
    present: BoolArray
    numeric: BoolArray
    parsed: bool = False  # cells were coerced one by one (some may be bad)
    decimal_comma: int = 0
    tokens: set[str] = field(default_factory=set)

    @property
    def bad(self) -> BoolArray:
        """Non-empty cells that are not numbers."""
        return self.present & ~self.numeric


def convert_column(cells: NDArray[np.generic], decimal_comma_ok: bool) -> Column:
    """Numbers of one column; ``decimal_comma_ok`` when a cell like ``2,5`` cannot be two fields
    (';' or tab delimiter, or a quoted cell)."""
    kind = cells.dtype.kind
    if kind == "f":
        values = cells.astype(np.float64, copy=False)
        present = ~np.isnan(values)
        return Column(values, present, present)
    if kind in "iu":
        full = np.ones(cells.shape[0], dtype=bool)
        return Column(cells.astype(np.float64), full, full)
    if kind == "b":  # True/False columns are flags, not metrics
        full = np.ones(cells.shape[0], dtype=bool)
        return Column(np.full(cells.shape[0], np.nan), full, np.zeros_like(full))
    return _convert_cells(cells, decimal_comma_ok)


def _convert_cells(cells: NDArray[np.generic], decimal_comma_ok: bool) -> Column:
    n = cells.shape[0]
    values = np.full(n, np.nan)
    present = np.zeros(n, dtype=bool)
    numeric = np.zeros(n, dtype=bool)
    col = Column(values, present, numeric, parsed=True)
    for i, cell in enumerate(cells.tolist()):
        if isinstance(cell, str):
            try:
                number = parse_number(cell)
            except ValueError:
                present[i] = True
                if decimal_comma_ok:
                    try:
                        values[i] = parse_decimal_comma(cell)
                        numeric[i] = True
                        col.decimal_comma += 1
                    except ValueError:
                        pass
                continue
            if number is None:
                continue
            present[i] = numeric[i] = True
            values[i] = number
            if is_nonfinite_token(cell):
                col.tokens.add(cell.strip())
        elif isinstance(cell, bool):
            present[i] = True
        elif isinstance(cell, (int, float)):
            # A float NaN here is pandas' NA for an empty cell in a chunk it parsed as numbers.
            if not (isinstance(cell, float) and cell != cell):
                present[i] = numeric[i] = True
                values[i] = float(cell)
        elif cell is not None:
            present[i] = True
    return col


@dataclass
class Steps:
    """The step column: exact int64 steps, which rows have one, which were rounded down."""

    steps: NDArray[np.int64]
    ok: BoolArray
    rounded: BoolArray
    present: BoolArray


def convert_steps(cells: NDArray[np.generic]) -> Steps:
    """Exact integer steps; '2.0' and '1e1' are integers, '4.5' is rounded down and flagged,
    anything else (empty, a word, NaN) marks the row as having no step."""
    n = cells.shape[0]
    kind = cells.dtype.kind
    if kind == "i":
        ones = np.ones(n, dtype=bool)
        return Steps(cells.astype(np.int64), ones, np.zeros(n, dtype=bool), ones)
    if kind == "f":
        values = cells.astype(np.float64, copy=False)
        present = ~np.isnan(values)
        ok = np.isfinite(values) & (np.abs(values) < 2.0**63)
        floor = np.floor(np.where(ok, values, 0.0))
        return Steps(floor.astype(np.int64), ok, ok & (floor != values), present)
    steps = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    rounded = np.zeros(n, dtype=bool)
    present = np.zeros(n, dtype=bool)
    for i, cell in enumerate(cells.tolist()):
        if cell is None or (isinstance(cell, float) and cell != cell):
            continue
        if isinstance(cell, str) and not cell.strip():
            continue
        present[i] = True
        step, was_rounded = parse_step(cell)
        if step is not None:
            steps[i], ok[i], rounded[i] = step, True, was_rounded
    return Steps(steps, ok, rounded, present)
