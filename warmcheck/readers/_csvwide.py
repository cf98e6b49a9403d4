"""Wide CSVs (per-layer or per-parameter metrics: thousands to a million columns) read as one block.

The regular path (:class:`warmcheck.readers.csvlog.Columns`) keeps a pandas column and several arrays
per CSV column: for a million columns that is gigabytes and minutes. Here each row is split and
converted in one call, into a (rows x columns) float64 block and a mask of the cells that held a
number; a column read in full becomes a fragment whose values are a view of the block and whose steps
(and wall times) are shared by every column, about 300 bytes a column besides its cells. Every cell
is read up to :data:`MAX_CELLS` cells and :data:`MAX_WIDE_COLUMNS` columns; past either, the step
column, the columns named like a metric and then the first ones are read and the rest reported (WC026).

Findings are summarised once per file, not once per column (a million columns must not give a million
findings): non-numeric cells (WC014), empty and duplicate names (WC011, WC015), rows with more fields
than the header (WC016), rows without a valid step (WC014), non-finite values (WC012).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..findings import Finding
from ..model import Fragment, no_wall_times
from ._text import WALL_TIME_KEYS, format_lines, parse_step, pick_step
from .interface import diag

WIDE_COLUMNS = 4096
"""Past this many columns, a CSV is read by this module."""
MAX_WIDE_COLUMNS = 1 << 20
"""Columns read from one CSV at most (a million columns take ~300 MB as series)."""
MAX_CELLS = 1 << 24
"""Cells read from one wide CSV at most (16.7M: 150 MB as numbers and mask)."""


@dataclass
class WideColumns:
    """What :func:`read_wide` made of the rows: what ``read_csv`` needs of a ``Columns``."""

    names: list[str]
    step_name: str | None
    fragments: list[Fragment] = field(default_factory=list)
    text_columns: list[str] = field(default_factory=list)
    n_data: int = 0
    records: int = 0
    skipped: int = 0
    engine: str = "wide"


def read_wide(path: str, body: bytes, first_line: int, raw_names: list[str], delimiter: str,
              findings: list[Finding], select: Callable[[list[str], int], list[int] | None],
              row_offset: int = 0) -> WideColumns:
    """The rows of ``body`` (whole lines from line ``first_line`` of the file) under the header
    ``raw_names``; ``select(names, limit)`` picks the columns to read when there are more than ``limit``;
    ``row_offset`` data rows came before (the step of the first row when there is no step column)."""
    lines = [(first_line + i, ln) for i, ln in enumerate(body.split(b"\n")) if ln.strip()]
    width = len(raw_names)
    limit = min(MAX_WIDE_COLUMNS, max(1, MAX_CELLS // max(1, len(lines))))
    keep = select(raw_names, limit) if width > limit else None
    cols = np.arange(width) if keep is None else np.asarray(keep)
    names, step_idx = _names(path, raw_names, cols, findings, first_line - 1)
    out = WideColumns(names, names[step_idx] if step_idx is not None else None)
    if keep is not None:
        kept = set(keep)
        skipped_col = next(j for j in range(width) if j not in kept)
        findings.append(diag(
            "WC026", f"{width:,} columns x {len(lines):,} rows, more than the {limit:,} columns read from this "
            f"CSV (at most {MAX_WIDE_COLUMNS:,} columns and {MAX_CELLS:,} cells): read the step column, the "
            f"columns named like a metric and the first ones; {width - len(keep):,} columns not read, the first "
            f"of them column {skipped_col + 1} ({raw_names[skipped_col].strip()[:40]})", path,
            line=first_line - 1, columns=width, read=len(keep), not_read=width - len(keep),
            first_not_read=skipped_col + 1))
    block = np.full((len(cols), len(lines)), np.nan)  # C order by column: each column's cells contiguous
    numeric = np.zeros((len(cols), len(lines)), dtype=bool)
    present = np.zeros((len(cols), len(lines)), dtype=bool)
    steps = np.zeros(len(lines), dtype=np.int64)
    bad_steps: list[int] = []
    ragged: list[int] = []
    row_lines: list[int] = []
    r = 0
    step_col = int(cols[step_idx]) if step_idx is not None else None  # its index in the file's rows
    for line_no, raw in lines:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        row = _numbers(text, delimiter, width)
        cells: list[str] = []
        if row is not None:
            step_cell = text.split(delimiter, step_col + 1)[step_col] if step_col is not None else ""
        else:
            cells = next(csv.reader([text], delimiter=delimiter)) if '"' in text else text.split(delimiter)
            if len(cells) > width:
                ragged.append(line_no)
                del cells[width:]
            elif len(cells) < width:
                cells += [""] * (width - len(cells))
            step_cell = cells[step_col] if step_col is not None else ""
        if step_idx is not None:
            step, _ = parse_step(step_cell)
            if step is None:
                bad_steps.append(line_no)
                continue
            steps[r] = step
        if row is not None:
            block[:, r] = row if keep is None else row[cols]
            numeric[:, r] = present[:, r] = True
        else:
            _convert(cells if keep is None else [cells[j] for j in keep], block[:, r], numeric[:, r], present[:, r])
        row_lines.append(line_no)
        r += 1
    out.records = len(lines)
    if step_idx is None:
        steps[:r] = np.arange(row_offset, row_offset + r)
    steps = steps[:r]
    block, numeric, present = block[:, :r], numeric[:, :r], present[:, :r]
    out.n_data = r
    if bad_steps:
        out.skipped += len(bad_steps)
        findings.append(diag("WC014", f"{len(bad_steps)} row(s) skipped: {out.step_name} is not a valid integer "
                             f"step at line(s) {format_lines(bad_steps)}", path, line=bad_steps[0],
                             tag=out.step_name, rows=len(bad_steps), lines=bad_steps[:10]))
    if ragged:
        findings.append(diag("WC016", f"{len(ragged)} row(s) have more fields than the header's {width:,}; the "
                             f"extra fields were not read (first at line {ragged[0]})", path, line=ragged[0],
                             rows=len(ragged), lines=ragged[:10], header_fields=width))
    _fragments(out, path, block, numeric, present, steps, step_idx, row_lines, findings)
    return out


def _names(path: str, raw: list[str], cols: np.ndarray, findings: list[Finding],
           header_line: int) -> tuple[list[str], int | None]:
    """Names of the columns read (empty ones named ``col_N``, repeats ``name#k``), and the step column."""
    names = [raw[j].strip() for j in cols.tolist()]
    empty = [i for i, n in enumerate(names) if not n]
    for i in empty:
        names[i] = f"col_{int(cols[i]) + 1}"
    if empty:
        findings.append(diag("WC011", f"{len(empty)} column(s) have an empty name; kept as col_N (first: column "
                             f"{int(cols[empty[0]]) + 1})", path, line=header_line, columns=[int(cols[i]) + 1
                                                                                            for i in empty[:10]]))
    seen: dict[str, int] = {}
    repeats: list[tuple[int, str]] = []
    taken = set(names)
    for i, n in enumerate(names):
        k = seen.get(n, 0) + 1
        seen[n] = k
        if k > 1:
            new = f"{n}#{k}"
            while new in taken:
                new += "'"
            taken.add(new)
            names[i] = new
            repeats.append((int(cols[i]) + 1, new))
    if repeats:
        findings.append(diag("WC015", f"{len(repeats)} duplicate column name(s); the later ones are kept as "
                             f"name#k (first: column {repeats[0][0]}, kept as {repeats[0][1]})", path,
                             line=header_line, tag=repeats[0][1], columns=[c for c, _ in repeats[:10]]))
    step = pick_step(names)
    return names, step


def _numbers(text: str, delimiter: str, width: int) -> np.ndarray | None:
    """A row whose ``width`` cells are all numbers (NaN/Inf spellings included), parsed by numpy's C
    reader without a Python string per cell; ``None`` for any other row (empty or text cells, another
    width), which is then split and converted cell by cell."""
    try:
        row = np.loadtxt(io.StringIO(text), delimiter=delimiter, dtype=np.float64, ndmin=1, comments=None,
                         quotechar='"')
    except ValueError:
        return None
    return row if row.shape == (width,) else None


def _convert(cells: list[str], values: np.ndarray, numeric: np.ndarray, present: np.ndarray) -> None:
    """One row's cells into ``values`` (NaN where no number), ``numeric`` and ``present`` (non-empty)."""
    try:
        values[:] = np.array(cells, dtype=np.float64)  # the common row: every cell a number, one C loop
        numeric[:] = True
        present[:] = True
        return
    except ValueError:
        pass
    for i, cell in enumerate(cells):  # a row with empty or text cells: cell by cell
        s = cell.strip()
        if not s:
            continue
        present[i] = True
        try:
            values[i] = float(s)
        except ValueError:
            continue
        numeric[i] = True


def _fragments(out: WideColumns, path: str, block: np.ndarray, numeric: np.ndarray, present: np.ndarray,
               steps: np.ndarray, step_idx: int | None, row_lines: list[int], findings: list[Finding]) -> None:
    n = steps.shape[0]
    walls = _wall_times(out.names, block, numeric, step_idx)
    all_numeric = np.asarray(numeric.all(axis=1))
    any_numeric = np.asarray(numeric.any(axis=1))
    any_present = np.asarray(present.any(axis=1))
    names = out.names
    frags = out.fragments
    for j in range(len(names)):
        if j == step_idx:
            continue
        if all_numeric[j]:
            frags.append(Fragment(names[j], steps, block[j], walls))
        elif any_numeric[j]:
            mask = numeric[j]
            frags.append(Fragment(names[j], steps[mask], block[j][mask], walls[mask]))
        elif any_present[j]:
            out.text_columns.append(names[j])
    in_number_columns = any_numeric.copy()
    if step_idx is not None:
        in_number_columns[step_idx] = False
    bad = present & ~numeric & in_number_columns[:, None]
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        out.skipped += n_bad
        cols = np.flatnonzero(bad.any(axis=1))
        j = int(cols[0])
        line = row_lines[int(np.argmax(bad[j]))]
        findings.append(diag("WC014", f"{n_bad} cell(s) in {len(cols)} column(s) are not numbers and were skipped; "
                             f"first in {names[j]} at line {line}", path, line=line, tag=names[j], cells=n_bad,
                             columns=[names[int(c)] for c in cols[:10]]))
    nonfinite: np.ndarray = numeric & ~np.isfinite(block)
    if step_idx is not None:
        nonfinite[step_idx] = False
    if nonfinite.any():
        cols = np.flatnonzero(nonfinite.any(axis=1))
        j = int(cols[0])
        i = int(np.argmax(nonfinite[j]))
        findings.append(diag("WC012", f"non-finite values read as NaN/Inf: {int(np.count_nonzero(nonfinite))} "
                             f"cell(s) in {len(cols)} column(s); first in {names[j]} at step {int(steps[i])} "
                             f"(line {row_lines[i]})", path, line=row_lines[i], tag=names[j], step=int(steps[i]),
                             columns={names[int(c)]: int(np.count_nonzero(nonfinite[c])) for c in cols[:50]}))
    if n == 0:
        findings.append(diag("WC002", "header only, 0 data rows", path, columns=len(names)))
    elif not frags:
        findings.append(diag("WC002", f"no data: no numeric column in {n} data rows", path, rows=n))
    elif step_idx is None:
        findings.append(diag("WC017", "no step column (step, global_step, iteration, iter, ...): the 0-based row "
                             f"number is used as step for {n} rows", path, rows=n, columns=names[:20]))


def _wall_times(names: list[str], block: np.ndarray, numeric: np.ndarray, step_idx: int | None) -> np.ndarray:
    """The wall clock (epoch seconds) of a column named like one, shared by every fragment; else none."""
    n = block.shape[1]
    for j, name in enumerate(names):
        if j != step_idx and name.lower() in WALL_TIME_KEYS and numeric[j].any():
            if 1e8 < float(np.median(block[j][numeric[j]])) < 1e11:  # epoch seconds, not a duration
                return np.where(numeric[j], block[j], np.nan)
    return no_wall_times(n)
