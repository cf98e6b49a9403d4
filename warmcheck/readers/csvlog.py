"""CSV training logs (Lightning ``metrics.csv``, nanoGPT-style loops, Excel exports).

One :class:`~warmcheck.model.Fragment` per numeric column, built from that column's own
non-empty cells (Lightning writes train and validation metrics on separate, sparse rows; a
``dropna()`` across columns would lose most points). The step column is found by name
(:data:`~warmcheck.readers._text.STEP_KEYS`); without one the 0-based row number is the step.
What pandas gets silently wrong on such files (';' delimiter, decimal commas, 'NAN', a partial
last line, a NUL tail, ragged rows, duplicate names) is handled here and reported.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection
from typing import Any

import numpy as np

from .. import storage
from ..findings import Finding
from ..model import Format, Fragment, SourceInfo, SourceRead, empty_fragment
from . import _csvexport as export
from ._csvcells import Column, convert_column, convert_steps
from ._csvparse import Table, first_line, read_table, sniff_delimiter, split_header
from ._csvwide import WIDE_COLUMNS, WideColumns, read_wide
from ._text import (
    STEP_KEYS,
    WALL_TIME_KEYS,
    clean_piece,
    count_lines,
    file_stamp,
    format_lines,
    load_text,
    pick_step,
    tail_start,
)
from .interface import diag

_DELIMITER_NAMES = {";": "semicolon ';'", "\t": "tab"}
_METRIC_WORDS = re.compile(r"(loss|learning[_-]?rate|grad[_-]?norm|accuracy|perplexity)")
_METRIC_TOKENS = frozenset({"lr", "acc", "ppl", "epoch", "loss", "bleu", "f1", "wer"})
_WEAK_STEP_KEYS = frozenset({"it", "batch", "update", "updates", "steps"})
_PRIORITY = re.compile(r"[^\n]*(?:" + _METRIC_WORDS.pattern[1:-1] + r"|(?<![a-z0-9])(?:"
                       + "|".join(sorted(_METRIC_TOKENS)) + r")(?![a-z0-9]))[^\n]*")


def looks_like_training_csv(path: str) -> bool:
    """Cheap header sniff for discovery: a step-like or metric-like column, or a ``metrics.csv``.

    Reads at most the first MiB (gzip-aware); false for unreadable files and unrelated CSVs.
    """
    try:
        name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
        if name in ("metrics.csv", "metrics.csv.gz"):
            return True
        with storage.open_binary(path) as fh:
            head = fh.read(1 << 20)
            if head[:2] == b"\x1f\x8b":
                import gzip

                fh.seek(0)
                with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                    head = gz.read(1 << 20)
        lines = [x for x in head.decode("utf-8", "replace").lstrip("\ufeff").lstrip().splitlines()[:3] if x.strip()]
        if not lines:
            return False
        line = lines[:1]
        names = next(csv.reader(line, delimiter=sniff_delimiter(lines[0], lines[1] if len(lines) > 1 else "")), [])
        return any(_looks_like_log_column(n) for n in names)
    except storage.StorageError:
        raise  # object storage stopped answering: not a CSV to pass over
    except Exception:  # noqa: BLE001 - a sniff must never break discovery
        return False


def _cell_text(cell: object) -> str:
    """A cell as written, for details (a float NaN from pandas is an empty cell)."""
    return "" if isinstance(cell, float) and cell != cell else str(cell)[:20]


def _looks_like_log_column(name: str) -> bool:
    low = name.strip().lower()
    if low in STEP_KEYS and low not in _WEAK_STEP_KEYS:
        return True
    tokens = set(re.split(r"[^a-z0-9]+", low))
    return bool(_METRIC_WORDS.search(low) or tokens & _METRIC_TOKENS)


def read_csv(path: str) -> SourceRead:
    """Read one CSV log (the reader contract: damage is data; see ``readers/interface.py``)."""
    return _read_csv(path, False)[0]


def read_csv_resumable(path: str) -> tuple[SourceRead, dict[str, Any] | None]:
    """:func:`read_csv`, and the parser's state at the end of the file for :func:`resume_csv` (None
    when an append could not be read on from there exactly as a whole read would read it)."""
    return _read_csv(path, True)


def _read_csv(path: str, want_state: bool) -> tuple[SourceRead, dict[str, Any] | None]:
    decoded, findings = load_text(path)
    if decoded is None:
        return SourceRead(SourceInfo(path, Format.CSV), findings=findings), None
    if not decoded.data or decoded.data.isspace():  # isspace() stops at the first non-blank byte
        what = "empty file (0 bytes)" if decoded.size == 0 else \
            f"empty file: no text in its {decoded.size} bytes"
        findings.append(diag("WC002", what, path, bytes=decoded.size))
        return SourceRead(SourceInfo(path, Format.CSV), findings=findings), None
    data = decoded.data
    header, start, header_lines = split_header(data)
    end = max(start, tail_start(data))
    tail = data[end:]
    raw_names, delimiter = parse_header(header, first_line(data, start))
    if delimiter != ",":
        findings.append(delimiter_note(path, delimiter))
    reader: Columns | WideColumns
    if len(raw_names) > WIDE_COLUMNS:  # per-layer metrics: one block, not a pandas column per column
        reader = read_wide(path, data[start:end], header_lines + 1, raw_names, delimiter, findings, select_columns)
        shape, engine = None, reader.engine
    else:
        # pandas reads a path ~1.5x faster than a BytesIO. Only when the bytes are the file's own, no
        # quote can hide a line break, and the file did not change meanwhile (a live log grows;
        # Lightning rewrites metrics.csv when a new metric appears): else the snapshot is parsed.
        direct = decoded.pristine and not tail and b'"' not in data
        table = read_table(data, start, end, len(raw_names), delimiter, header_lines + 1,
                           path if direct else None)
        if direct and file_stamp(path) != decoded.stamp:
            table = read_table(data, start, end, len(raw_names), delimiter, header_lines + 1)
        shape = export.long_shape([n.strip() for n in raw_names])
        if shape is not None and not export.is_text_cell(first_line(data, start), delimiter, shape.key):
            shape = None  # a numeric key column: a wide log whose columns happen to be named so
        reader = Columns(path, table, raw_names, findings, text=() if shape is None else (shape.key, shape.run))
        engine = table.engine
    if tail and not tail.isspace():
        line = header_lines + count_lines(data, start, end) + 1
        findings.append(diag("WC003", f"incomplete last line (no newline) at line {line}: file may "
                             f"still be being written; {reader.n_data} complete rows kept", path,
                             line=line, bytes=len(tail), rows_kept=reader.n_data))
        reader.skipped += 1
        reader.records += 1
    csv_meta: dict[str, object] = {"delimiter": delimiter, "columns": len(reader.names), "rows": reader.n_data,
                                   "step_column": reader.step_name, "engine": engine,
                                   "text_columns": reader.text_columns[:50]}
    fragments = _exported(path, reader, shape, findings, csv_meta)
    meta: dict[str, object] = {"csv": csv_meta}
    if export.RUNS_IN_FILE in csv_meta:
        meta[export.RUNS_IN_FILE] = csv_meta.pop(export.RUNS_IN_FILE)
    read = SourceRead(SourceInfo(path, Format.CSV, reader.records, reader.skipped),
                      fragments=fragments, metadata=meta, findings=findings)
    state = None
    if want_state and isinstance(reader, Columns) and fragments is reader.fragments \
            and findings == _expected_findings(path, delimiter) \
            and decoded.pristine and not decoded.gzip and not tail and list(csv_meta) == _META_KEYS \
            and len(meta) == 1 and _resumable(reader):
        state = {"offset": decoded.size, "names": raw_names, "delimiter": delimiter,
                 "header_lines": header_lines, "lines": header_lines + count_lines(data, start, end),
                 "rows": reader.n_data, "text": reader.text_columns, "walls": _wall_sides(reader),
                 "empty": _empty_columns(reader)}
    return read, state


# ---- appended files: read on from the end of the last read (see warmcheck.cache) -------------------

_META_KEYS = ["delimiter", "columns", "rows", "step_column", "engine", "text_columns"]
_EXACT = 2.0**53  # beyond this, an integer cell parsed as int64 or as a float may round differently


def _expected_findings(path: str, delimiter: str) -> list[Finding]:
    """The findings of a clean CSV: none, or the note that its delimiter is ';' or a tab."""
    return [delimiter_note(path, delimiter)] if delimiter != "," else []


def _resumable(reader: Columns) -> bool:
    """Whether rows parsed on their own give what they give inside the whole file: pandas' C engine,
    a step column of integers, every numeric column parsed by pandas as numbers (a column it left as
    text is converted cell by cell, which may round a cell differently from pandas), values below
    2**53, no extra fields."""
    table = reader.table
    if table.engine != "c" or table.ragged_rows or reader.step_name is None or reader.skipped \
            or len(reader.names) != len(table.columns):
        return False
    tags = {f.tag for f in reader.fragments}
    for name, cells in zip(reader.names, table.columns, strict=True):
        if cells is None:
            return False
        kind = cells.dtype.kind
        if name == reader.step_name:
            if kind != "i":
                return False
        elif name in tags:
            if kind not in "fiu":
                return False
            if len(cells) and float(np.nanmax(np.abs(cells), initial=0.0)) >= _EXACT:
                return False
    return True


def _empty_columns(reader: Columns) -> list[str]:
    """The columns without a cell so far, which pandas read as numbers (all NaN): a column that gets
    its first numbers in appended rows has exactly those rows' points in a whole read."""
    return [name for name, cells in zip(reader.names, reader.table.columns, strict=True)
            if name != reader.step_name and cells is not None and cells.dtype.kind == "f"
            and bool(np.isnan(cells).all())]


def _wall_sides(reader: Columns) -> list[list[str | None]]:
    """For each column named like a wall clock, where the median of its numbers lies: ``in`` the
    epoch-seconds range that makes it the wall time of the rows, ``low`` or ``high`` (None: no
    number). The median of two parts together lies between theirs, so two parts on the same side
    put the whole file there too: the column a whole read takes for wall times is the one each
    part took. (Rows all have a step and a value here, so every row counts, as in ``_wall_times``.)"""
    sides: list[list[str | None]] = []
    tags = {f.tag for f in reader.fragments}
    for name, cells in zip(reader.names, reader.table.columns, strict=True):
        if name == reader.step_name or name.lower() not in WALL_TIME_KEYS:
            continue
        side = None
        if name in tags and cells is not None:
            values = cells.astype(np.float64, copy=False)
            values = values[~np.isnan(values)]
            if len(values):
                median = float(np.median(values))
                side = "in" if 1e8 < median < 1e11 else "low" if median <= 1e8 else "high"
        sides.append([name, side])
    return sides


def resume_csv(path: str, old: SourceRead, state: dict[str, Any], data: bytes,
               offset: int) -> tuple[SourceRead, dict[str, Any]] | None:
    """``old`` (the clean read of a CSV file's first ``offset`` bytes, ``state`` the parser's state
    there, from :func:`read_csv_resumable`) with the complete lines ``data`` appended since: what
    :func:`read_csv` gives for the whole file. Parsed as ``watch`` parses appended rows
    (:func:`parse_rows`, the header's names and delimiter, the columns known to be numeric). None
    when that cannot be guaranteed: the new rows bring a finding, extra fields, numbers in a column
    that held text (or cells pandas did not read as numbers), a column pandas parsed otherwise, or a
    step not after the last one of its column. A column empty so far that gets numbers is a new
    series, in its column's place."""
    if not data.endswith(b"\n") or not data.rstrip() \
            or list(old.findings) != _expected_findings(old.info.path, str(state["delimiter"])):
        return None
    findings: list[Finding] = []
    lines = int(state["lines"])
    clean = clean_piece(data, path, findings, offset=offset, line=lines + 1)
    if findings:
        return None
    tags = [f.tag for f in old.fragments]
    names = [str(n) for n in state["names"]]
    rows = parse_rows(path, clean, names, str(state["delimiter"]), lines + 1, findings, int(state["rows"]),
                      int(state["header_lines"]), numeric=tags)
    if findings or not isinstance(rows, Columns) or rows.records != rows.n_data or not _resumable(rows) \
            or _wall_sides(rows) != state["walls"]:
        return None
    before = {f.tag: f for f in old.fragments}
    new_tags = [f.tag for f in rows.fragments]
    if not set(tags) <= set(new_tags) or any(t not in before and t not in state.get("empty", ()) for t in new_tags):
        return None  # a column that held text (or cells pandas did not read as numbers) now holds numbers
    for new in rows.fragments:
        was = before.get(new.tag)
        if was is not None and len(was) and len(new) and int(new.steps.min()) <= int(was.steps.max()):
            return None  # a step written again (a restart): read whole
    text = set(state["text"]) | set(rows.text_columns)
    text_columns = [n for n in rows.names if n in text]
    csv_meta = dict(old.metadata["csv"])
    csv_meta["rows"] = int(csv_meta["rows"]) + rows.n_data
    csv_meta["text_columns"] = text_columns[:50]
    fragments = [_joined(before.get(g.tag), g) for g in rows.fragments]  # in column order, as a whole read
    read = SourceRead(SourceInfo(old.info.path, Format.CSV, old.info.records + rows.records, 0),
                      fragments=fragments, metadata={"csv": csv_meta}, findings=list(old.findings))
    return read, {**state, "offset": offset + len(data), "lines": lines + count_lines(clean),
                  "rows": int(state["rows"]) + rows.n_data, "text": text_columns,
                  "empty": [n for n in _empty_columns(rows) if n in state.get("empty", ())]}


def _joined(f: Fragment | None, g: Fragment) -> Fragment:
    if f is None or not len(g):
        return g if f is None else f
    if not len(f):
        return g
    return Fragment(f.tag, np.concatenate([f.steps, g.steps]), np.concatenate([f.values, g.values]),
                    np.concatenate([f.wall_times, g.wall_times]))


def _exported(path: str, reader: Columns | WideColumns, shape: export.LongShape | None, findings: list[Finding],
              meta: dict[str, object]) -> list[Fragment]:
    """The fragments of a tracker export read by the shape of its header (see :mod:`._csvexport`),
    or the columns' own fragments."""
    if shape is not None and isinstance(reader, Columns):
        frags, skipped = export.long_fragments(path, reader.table, reader.names, shape, findings, meta)
        reader.skipped += skipped
        return frags
    columns = export.wandb_columns(reader.names, reader.step_name)
    if columns is not None:
        return export.wandb_fragments(reader.fragments, columns, meta)
    return reader.fragments


def parse_header(header: bytes, sample: bytes = b"") -> tuple[list[str], str]:
    """The column names of a header line (valid UTF-8 bytes) and the delimiter sniffed from it and
    from the first data line ``sample``."""
    header_text = header.decode("utf-8")
    delimiter = sniff_delimiter(header_text, sample.decode("utf-8", "replace"))
    return next(csv.reader(io.StringIO(header_text, newline=""), delimiter=delimiter), []), delimiter


def delimiter_note(path: str, delimiter: str) -> Finding:
    """WC012 for a CSV read with a delimiter other than ','."""
    return diag("WC012", f"{_DELIMITER_NAMES[delimiter]}-delimited CSV: read with delimiter {delimiter!r}",
                path, delimiter=delimiter)


def parse_rows(path: str, body: bytes, raw_names: list[str], delimiter: str, first_line: int,
               findings: list[Finding], row_offset: int = 0, header_line: int | None = None,
               numeric: Collection[str] = (), text: Collection[int | None] = ()) -> Columns | WideColumns:
    """Rows of a CSV whose header was already read, parsed as :func:`read_csv` parses a whole file.

    ``body`` holds whole lines (valid UTF-8) starting at line ``first_line`` of the file;
    ``row_offset`` data rows came before them (the step of the first row when there is no step
    column); findings about column names name ``header_line`` (default: the line before the body);
    ``numeric`` names columns that held numbers in earlier rows (their text cells here are bad
    cells, not a text column). Findings are appended to ``findings``, WC002 included when no row
    holds data.
    """
    if len(raw_names) > WIDE_COLUMNS:  # as read_csv reads it: every column, as one block
        return read_wide(path, body, first_line, raw_names, delimiter, findings, select_columns, row_offset)
    table = read_table(body, 0, len(body), len(raw_names), delimiter, first_line, strict_width=True)
    return Columns(path, table, raw_names, findings, row_offset, header_line, numeric, text)


def select_columns(names: list[str], limit: int) -> list[int] | None:
    """The columns to read when there are more than ``limit`` (``None``: all of them): the step column,
    the columns named like a metric (loss, lr, grad_norm, accuracy, ...), then the first ones."""
    if len(names) <= limit:
        return None
    first: list[int] = []
    step = pick_step(names)
    if step is not None:
        first.append(step)
    # One regex pass over the joined header, not a Python call per name (a million names).
    joined = "\n".join(names).lower()
    starts = np.cumsum([0] + [len(n) + 1 for n in names[:-1]])
    for m in _PRIORITY.finditer(joined):
        if len(first) >= limit:
            break
        first.append(int(np.searchsorted(starts, m.start(), "right")) - 1)
    chosen = set(first)
    for j in range(len(names)):
        if len(chosen) >= limit:
            break
        chosen.add(j)
    return sorted(chosen)


class Columns:
    """Turns a :class:`Table` into fragments and findings (one pass, state kept for the caller)."""

    def __init__(self, path: str, table: Table, raw_names: list[str], findings: list[Finding],
                 row_offset: int = 0, header_line: int | None = None, numeric: Collection[str] = (),
                 text: Collection[int | None] = ()) -> None:
        self.path, self.table, self.findings = path, table, findings
        self.numeric = numeric
        self.header_line = table.first_line - 1 if header_line is None else header_line
        self.fragments: list[Fragment] = []
        self.text_columns: list[str] = []
        self.skipped = 0
        self.names = self._names(raw_names)
        step_idx = pick_step(raw_names)
        self.step_name = self.names[step_idx] if step_idx is not None else None
        # ``text``: columns known to hold text (a long table's key and run), not converted cell by cell.
        cols = {j: convert_column(c, True) for j, c in enumerate(table.columns)
                if j != step_idx and c is not None and j not in text}
        self.text_columns.extend(self.names[j] for j in text if j is not None)
        row_present = np.zeros(table.n_rows, dtype=bool)
        for col in cols.values():
            row_present |= col.present
        step_cells = table.columns[step_idx] if step_idx is not None else None
        if step_idx is not None and step_cells is not None:
            steps = convert_steps(step_cells)
            row_present |= steps.present
            valid, step_arr = row_present & steps.ok, steps.steps
            self._report_steps(row_present & ~steps.ok, steps.rounded & valid, step_cells)
        else:
            valid, step_arr = row_present, np.cumsum(row_present, dtype=np.int64) + (row_offset - 1)
        self.n_data = int(np.count_nonzero(row_present))
        self.records = self.n_data
        wall = self._wall_times(cols, valid)
        for j, col in cols.items():
            self._column(self.names[j], col, valid, step_arr, wall, j)
        self._summarise(cols, valid, step_arr, step_idx, raw_names)

    def _names(self, raw: list[str]) -> list[str]:
        names = [n.strip() for n in raw]
        names += [f"col_{j + 1}" for j in range(len(names), len(self.table.columns))]
        if self.table.ragged_rows:
            rows, n = self.table.ragged_rows, len(raw)
            lines = self.table.lines(rows)
            width = len(self.table.columns)
            extra = ", ".join(names[n:])
            where = f"lines {lines[0]}-{lines[-1]}" if lines and lines[-1] - lines[0] == len(lines) - 1 \
                else f"{len(rows)} rows (lines {format_lines(lines)})"
            self.findings.append(diag(
                "WC016", f"{where} have up to {width} fields, header has {n}; extra column kept as "
                f"{extra}", self.path, line=lines[0] if lines else None, rows=len(rows),
                lines=lines[:10], header_fields=n, max_fields=width, columns=names[n:]))
        seen: dict[str, int] = {}
        first_col: dict[str, int] = {}
        for j, name in enumerate(names):
            if not name:
                continue
            seen[name] = seen.get(name, 0) + 1
            if seen[name] == 1:
                first_col[name] = j
                continue
            new = f"{name}#{seen[name]}"
            while new in names:
                new += "'"
            names[j] = new
            self.findings.append(diag(
                "WC015", f"duplicate column name {name} (columns {first_col[name] + 1} and {j + 1}); "
                f"the later one is kept as {new}", self.path, line=self.header_line,
                tag=new, column=j + 1, first_column=first_col[name] + 1))
        return names

    def _report_steps(self, bad: np.ndarray, rounded: np.ndarray, cells: np.ndarray) -> None:
        step_name = self.step_name or "step"
        if bad.any():
            rows = np.flatnonzero(bad)
            lines = self.table.lines(rows[:10])
            self.skipped += len(rows)
            shown = [_cell_text(cells[r]) for r in rows[:5]]
            self.findings.append(diag(
                "WC014", f"{len(rows)} row(s) skipped: {step_name} is not a valid integer step at line(s) "
                f"{format_lines(lines)}", self.path, line=lines[0] if lines else None, tag=step_name,
                rows=len(rows), lines=lines, values=shown))
        if rounded.any():
            rows = np.flatnonzero(rounded)
            lines = self.table.lines(rows[:10])
            shown = [_cell_text(cells[r]) for r in rows[:5]]
            self.findings.append(diag(
                "WC014", f"non-integer step {shown[0]} at line {lines[0]} rounded down"
                + (f" ({len(rows)} rows, lines {format_lines(lines)})" if len(rows) > 1 else "")
                + "; row kept", self.path, line=lines[0], tag=step_name, rows=len(rows),
                lines=lines, values=shown))

    def _wall_times(self, cols: dict[int, Column], valid: np.ndarray) -> np.ndarray:
        for j, col in cols.items():
            if self.names[j].lower() in WALL_TIME_KEYS and col.numeric[valid].any():
                vals = col.values[valid & col.numeric]
                if 1e8 < float(np.median(vals)) < 1e11:  # epoch seconds, not a duration
                    return np.where(col.numeric, col.values, np.nan)
        return np.full(self.table.n_rows, np.nan)

    def _column(self, name: str, col: Column, valid: np.ndarray, steps: np.ndarray,
                wall: np.ndarray, j: int) -> None:
        if self.table.n_rows == 0:
            self.fragments.append(empty_fragment(name))
            return
        if not col.numeric.any() and name not in self.numeric:
            if col.present.any():
                self.text_columns.append(name)
            return
        if not name:
            name = self.names[j] = f"col_{j + 1}"
            self.findings.append(diag("WC011", f"column {j + 1} has an empty name; kept as {name}",
                                      self.path, line=self.header_line, tag=name, column=j + 1))
        mask = valid & col.numeric
        self.fragments.append(Fragment(name, steps[mask], col.values[mask], wall[mask]))
        if not col.parsed:  # pandas parsed every non-empty cell of this column as a number
            return
        bad = np.flatnonzero(col.bad & valid)
        if len(bad):
            lines = self.table.lines(bad[:10])
            self.skipped += len(bad)
            cells = self.table.columns[j]
            shown = [_cell_text(cells[r]) for r in bad[:5]] if cells is not None else []
            self.findings.append(diag(
                "WC014", f"column {name}: {len(bad)} cell(s) are not numbers and were skipped, at "
                f"line(s) {format_lines(lines)} (first {shown[0]!r})", self.path, line=lines[0],
                tag=name, step=int(steps[bad[0]]), cells=len(bad), lines=lines, values=shown))

    def _summarise(self, cols: dict[int, Column], valid: np.ndarray, steps: np.ndarray,
                   step_idx: int | None, raw_names: list[str]) -> None:
        path, table = self.path, self.table
        if table.error:
            self.skipped += 1
            self.findings.append(diag("WC014", f"CSV could not be tokenised further ({table.error}); "
                                      "the rest of the file was skipped", path, error=table.error))
        if table.c_error and "EOF inside string" in table.c_error and table.n_rows:
            line = table.lines([table.n_rows - 1])[0]
            self.findings.append(diag(
                "WC014", f"unterminated quote in the row at line {line}: the rest of the file was read "
                "as one cell", path, line=line, error=table.c_error.strip()))
        if table.n_rows == 0 or self.n_data == 0:
            self.findings.append(diag("WC002", "header only, 0 data rows", path,
                                      columns=len(raw_names)))
            return
        if step_idx is None and any(f.steps.size for f in self.fragments):
            self.findings.append(diag(
                "WC017", "no step column (step, global_step, iteration, iter, ...): the 0-based row "
                f"number is used as step for {self.n_data} rows", path, rows=self.n_data,
                columns=[n for n in self.names if n][:20]))
        if not any(f.steps.size for f in self.fragments):
            why = "no numeric column" if not self.fragments else "no row with a valid step"
            self.findings.append(diag("WC002", f"no data: {why} in {self.n_data} data rows", path,
                                      rows=self.n_data))
        decimal = {self.names[j]: c.decimal_comma for j, c in cols.items() if c.decimal_comma}
        if decimal:
            self.findings.append(diag(
                "WC012", f"decimal comma read as decimal point in column(s) {', '.join(decimal)} "
                f"({sum(decimal.values())} cells)", path, columns=decimal))
        self._nonfinite(cols, valid, steps)

    def _nonfinite(self, cols: dict[int, Column], valid: np.ndarray, steps: np.ndarray) -> None:
        counts: dict[str, int] = {}
        tokens: list[str] = []
        first: tuple[int, str] | None = None
        for j, col in cols.items():
            # NaN in a column pandas parsed itself is an empty cell; only inf can be a value there.
            if not (col.parsed or np.isinf(col.values).any()):
                continue
            hit = np.flatnonzero(valid & col.numeric & ~np.isfinite(col.values))
            if len(hit):
                counts[self.names[j]] = len(hit)
                tokens += sorted(col.tokens - set(tokens))
                if first is None or hit[0] < first[0]:
                    first = (int(hit[0]), self.names[j])
        if first is None:
            return
        line = self.table.lines([first[0]])[0]
        parts = ", ".join(f"{name} {n}" for name, n in counts.items())
        spelled = f" (tokens {', '.join(tokens[:8])})" if tokens else ""
        self.findings.append(diag(
            "WC012", f"non-finite values read as NaN/Inf in column(s) {parts}{spelled}; first at step "
            f"{int(steps[first[0]])} (line {line})", self.path, line=line, tag=first[1],
            step=int(steps[first[0]]), columns=counts, tokens=tokens[:8]))
