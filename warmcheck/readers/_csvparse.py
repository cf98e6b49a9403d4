"""CSV tokenising for :mod:`warmcheck.readers.csvlog`: header, delimiter, and cells per column.

pandas' C engine does the bulk work (it is ~10x faster than the ``csv`` module), with settings
chosen so that nothing is decided behind our back: ``header=None`` so duplicate names are not
mangled into ``loss.1``; ``keep_default_na=False, na_values=['']`` so that only an empty cell is
missing while every spelling of NaN stays text for :mod:`._csvcells` to read (pandas maps 'nan'
but not 'NAN' to NaN, and cannot tell either from an empty cell); ``skip_blank_lines=False`` so
row ``i`` is line ``header_lines + 1 + i``. When the C engine refuses the file (ragged rows,
an unterminated quote) the stdlib ``csv`` module reads it instead, with its field size limit
raised for the 200 KB cell case.
"""

from __future__ import annotations

import csv
import functools
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._text import count_lines

DELIMITERS = (",", ";", "\t")


def _counts(line: str) -> dict[str, int]:
    """How often each candidate delimiter occurs in ``line`` outside quotes."""
    if '"' not in line:
        return {d: line.count(d) for d in DELIMITERS}
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    return counts


def sniff_delimiter(header: str, sample: str = "") -> str:
    """The CSV delimiter, from the header line and (when given) the first data line.

    A delimiter that splits the first data row into as many fields as the header is the one (a
    column name may hold a ';' or a tab, a data row of numbers does not); else the one that occurs
    most often in the header outside quotes (',' on a tie).
    """
    head = _counts(header.replace("\r", "").replace("\n", ""))
    if sample.strip():
        row = _counts(sample.replace("\r", "").replace("\n", ""))
        agree = [d for d in DELIMITERS if row[d] and row[d] == head[d]]
        if agree:
            return max(agree, key=lambda d: (head[d], d == ","))
    best = max(DELIMITERS, key=lambda d: (head[d], d == ","))
    return best if head[best] else ","


def first_line(data: bytes, start: int) -> bytes:
    """The first non-blank complete line at or after ``start`` (b"" if none within 64 KiB)."""
    for m in _EOL.finditer(data, start, min(len(data), start + (1 << 16))):
        line = data[start:m.start()]
        if line.strip():
            return line
        start = m.end()
    return b""


_EOL = re.compile(rb"\r\n|\n|\r")
_NON_BLANK = re.compile(rb"\S")


def split_header(data: bytes) -> tuple[bytes, int, int]:
    """``(header_bytes, body_offset, lines_before_body)``: leading blank lines are skipped, and a
    quoted header field may span lines."""
    pos, skipped = 0, 0
    for m in _EOL.finditer(data):
        if data[pos:m.start()].strip():
            break
        pos, skipped = m.end(), skipped + 1
    end = pos
    for m in _EOL.finditer(data, pos):
        end = m.end()
        if data[pos:end].count(b'"') % 2 == 0:
            break
    else:
        end = len(data)
    header = data[pos:end]
    return header, end, skipped + count_lines(header) + (0 if header.endswith((b"\n", b"\r")) else 1)


@dataclass
class Table:
    """Cells of the body: one array per column, float64 (NaN = empty cell) or object."""

    columns: list[NDArray[np.generic] | None]
    n_rows: int
    first_line: int
    engine: str
    data: bytes = b""
    start: int = 0  # the body is data[start:end]; slicing 20 MB costs more than parsing a column
    end: int = 0
    delimiter: str = ","
    ragged_rows: list[int] = field(default_factory=list)
    error: str | None = None
    c_error: str | None = None  # why pandas' C engine refused the file
    _starts: Sequence[int] | None = None

    def lines(self, rows: Sequence[int] | NDArray[np.intp]) -> list[int]:
        """1-based physical line numbers of the given rows (lines are counted only when needed)."""
        if self._starts is None:
            if self.engine == "c" and count_lines(self.data, self.start, self.end) == self.n_rows:
                self._starts = range(self.n_rows)  # no quoted line breaks: row i is line i
            else:
                self._starts = _scan(self.data[self.start:self.end].decode("utf-8"), self.delimiter)[1]
        return [self.first_line + self._starts[int(r)] for r in rows if int(r) < len(self._starts)]


def read_table(data: bytes, start: int, end: int, n_fields: int, delimiter: str, first_line: int,
               path: str | None = None, *, strict_width: bool = False) -> Table:
    """Tokenise the body ``data[start:end]`` into ``n_fields`` columns, more if rows are ragged.

    ``path``: the file holds exactly these bytes, so pandas may read it directly (a path is read
    ~1.5x faster than the same bytes handed over in a ``BytesIO``).
    ``strict_width``: when the *first* row is wider than ``n_fields``, pandas keeps only the first
    ``n_fields`` fields of every row (with a warning, not an error); with this flag such a body goes
    to the ``csv`` module instead, which keeps the extra fields (a live reader's piece of a file often
    starts at such a row).
    """
    empty = Table([np.empty(0, np.float64) for _ in range(n_fields)], 0, first_line, "c", data, start, end,
                  delimiter)
    if not _NON_BLANK.search(data, start, end):
        return empty
    simple = _read_simple(empty, n_fields)
    if simple is not None:
        return simple
    try:
        return _read_c(empty, n_fields, path, strict_width)
    except Exception as exc:  # noqa: BLE001 - pandas raises ParserError, ValueError, UnicodeError...
        empty.c_error = str(exc)
        return _read_python(empty, n_fields)


SIMPLE_MAX_BYTES = 64 << 10  # bodies up to this size may be parsed without pandas (see _read_simple)
_INT = r"-?[0-9]{1,15}"
# A decimal number; :func:`_simple_float` decides per cell whether ``float`` gives pandas' double.
_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]{1,3})?"
_SIMPLE_CELL = re.compile(_NUMBER)
_INT_CELL = re.compile(_INT)


def _simple_float(cell: str) -> bool:
    """``cell`` (a :data:`_NUMBER`) parses to the double pandas gives it, whichever pandas is installed.

    At most 15 digits and a decimal exponent within 10**±22: the double is a single correctly rounded
    operation on exact operands (Clinger's fast path), which Python's ``float``, pandas' xstrtod and
    fast_float all compute alike. Beyond that (17-digit reprs, as Lightning and ``repr`` write them)
    only a correctly rounding pandas is sure to agree with ``float``: see :func:`_pandas_rounds_correctly`.
    """
    mantissa, _, exp = cell.lower().partition("e")
    digits = mantissa.lstrip("-")
    whole, _, frac = digits.partition(".")
    power = (int(exp) if exp else 0) - len(frac)
    if len(whole) + len(frac) <= 15 and -22 <= power <= 22:
        return True
    if not frac and not exp:
        return False  # an integer of 16+ digits: pandas may keep the column int64 (or uint64)
    if not _pandas_rounds_correctly():
        return False
    significant = (whole + frac).lstrip("0")
    if not significant:
        return True  # a zero
    # the value is 0.d... x 10**magnitude: keep to normal doubles (no overflow, no subnormal), where
    # "correctly rounded" has one answer
    magnitude = power + len(significant)
    return -300 <= magnitude <= 300


@functools.cache
def _pandas_rounds_correctly() -> bool:
    """pandas 3.1 and later parse floats with fast_float (pandas-dev/pandas#64432, "Improved the
    precision of float parsing in read_csv", whatsnew 3.1.0): every decimal string becomes the correctly
    rounded double, as Python's ``float`` gives. Earlier versions' default xstrtod may be off by an
    ulp for more than 15 digits. Read from the distribution's metadata, so pandas is not imported."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("pandas")
    except PackageNotFoundError:
        return False
    parts = re.match(r"(\d+)\.(\d+)", release)
    return parts is not None and (int(parts[1]), int(parts[2])) >= (3, 1)


def _read_simple(table: Table, n_fields: int) -> Table | None:
    """The cells pandas' C engine would give for a small body of plain numbers, without importing pandas
    (~0.3 s of a warm run that re-reads one small CSV, or an appended few rows).

    Only bodies where the result is certain to be pandas' are taken, else None: at most
    :data:`SIMPLE_MAX_BYTES`, ASCII, no quote, no blank line, no lone CR, every row exactly ``n_fields``
    cells, every cell empty or a :data:`_NUMBER` passing :func:`_simple_float`, no column without a
    number. A column of integers (at most 15 digits, none empty) is int64 as pandas infers it; any other
    column float64 with NaN for empty cells (pandas' ``na_values=['']``).
    """
    if table.end - table.start > SIMPLE_MAX_BYTES or n_fields < 1:
        return None
    body = table.data[table.start:table.end]
    if b'"' in body or not body.isascii():
        return None
    text = body.decode("ascii")
    if "\r" in text:
        if "\r" in text.replace("\r\n", ""):
            return None  # pandas ends a line at a lone CR too
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        return None
    columns: list[list[str]] = [[] for _ in range(n_fields)]
    for line in lines:
        cells = line.split(table.delimiter)
        if len(cells) != n_fields or line == "":
            return None
        for j, cell in enumerate(cells):
            columns[j].append(cell)
    arrays: list[NDArray[np.generic] | None] = []
    for cells in columns:
        numbers = [c for c in cells if c]
        if not numbers:
            return None  # an all-empty column: left to pandas
        if len(numbers) == len(cells) and all(_INT_CELL.fullmatch(c) for c in cells):
            arrays.append(np.array([int(c) for c in cells], dtype=np.int64))
            continue
        if not all(_SIMPLE_CELL.fullmatch(c) and _simple_float(c) for c in numbers):
            return None
        arrays.append(np.array([float(c) if c else np.nan for c in cells], dtype=np.float64))
    table.columns = arrays
    table.n_rows = len(lines)
    return table


def _read_c(table: Table, n_fields: int, path: str | None, strict_width: bool = False) -> Table:
    import pandas as pd  # lazy: importing pandas costs ~0.3 s of CLI start-up

    source = path if path is not None else io.BytesIO(table.data[table.start:table.end])
    with warnings.catch_warnings(record=strict_width) as caught:
        warnings.simplefilter("always" if strict_width else "ignore")  # pandas' warnings: we report ourselves
        frame = pd.read_csv(
            source, skiprows=table.first_line - 1 if path else 0,
            sep=table.delimiter, header=None,
            names=list(range(n_fields)),
            index_col=False,  # otherwise extra fields silently become an index instead of an error
            keep_default_na=False, na_values=[""], skip_blank_lines=False, engine="c", quotechar='"',
            # Chunked parsing is faster on tall files and 2x slower on very wide ones. Chunks may
            # give a column floats in one chunk and text in another: _csvcells handles the mix.
            low_memory=n_fields <= 256,
        )
    if caught and any("does not match length of data" in str(w.message) for w in caught):
        raise ValueError("the first row has more fields than the header")
    # frame[j] costs ~20 us per column (20,003 columns: 0.4 s); the private iterator does not.
    fast = getattr(frame, "_iter_column_arrays", None)
    cols = [np.asarray(c) for c in fast()] if fast is not None else \
        [frame[j].to_numpy() for j in frame.columns]
    cols = [c if c.dtype.kind in "fiub" else c.astype(object, copy=False) for c in cols]
    table.columns = list(cols)
    table.n_rows = len(frame)
    return table


def _scan(text: str, delimiter: str) -> tuple[list[list[str]], list[int], str | None]:
    """All records with the 0-based line offset where each starts (the csv module's line_num)."""
    rows: list[list[str]] = []
    starts: list[int] = []
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, min(len(text) + 1, 2**31 - 1)))
    error = None
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
        prev = 0
        for row in reader:
            rows.append(row)
            starts.append(prev)
            prev = reader.line_num
    except csv.Error as exc:
        error = f"{exc} (line {prev + 1} of the data)"
    finally:
        csv.field_size_limit(old)
    return rows, starts, error


def _read_python(table: Table, n_fields: int) -> Table:
    rows, starts, error = _scan(table.data[table.start:table.end].decode("utf-8"), table.delimiter)
    width = max([n_fields, *map(len, rows)])
    ragged = [i for i, r in enumerate(rows) if len(r) > n_fields]
    grid = np.full((len(rows), width), "", dtype=object)
    for i, r in enumerate(rows):
        grid[i, : len(r)] = r
    table.columns = [grid[:, j].copy() for j in range(width)]
    table.n_rows, table.engine, table.ragged_rows, table.error = len(rows), "python", ragged, error
    table._starts = starts
    return table
