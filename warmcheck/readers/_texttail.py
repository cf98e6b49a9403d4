"""The text logs followed live: CSV (plain, Lightning ``metrics.csv``, tracker exports), JSONL and
``trainer_state.json``, on the poll loop of :class:`~warmcheck.readers.tailing.FileTailer` (see
:mod:`warmcheck.readers.tailing` for how appends, rewrites and rotations are followed)."""

from __future__ import annotations

import codecs
from typing import Any

from ..findings import Finding
from ..model import Format, Fragment
from ._csvexport import LongShape, is_text_cell, long_fragments, long_shape
from ._csvparse import first_line, split_header
from ._csvwide import WideColumns
from ._text import clean_piece, count_lines, pick_step
from .tailing import MAX_READ_BYTES, QUOTE_HOLD_BYTES, FileTailer, ReadWhole

_PREFIX_BYTES = 1024  # JSONL: at most this much of the first line is compared at each poll (a rewrite?)


class CsvTailer(FileTailer):
    """A CSV log followed live (``.gz`` and UTF-16 files are read whole at each change)."""

    fmt = Format.CSV

    def __init__(self, path: str, display: str = "", max_bytes: int = MAX_READ_BYTES) -> None:
        super().__init__(path, display, max_bytes)
        self._whole = path.lower().endswith((".gz", ".gzip"))
        self._restart()

    def _restart(self) -> None:
        self._names: list[str] | None = None  # the header's raw names, once complete
        self._delimiter = ","
        self._head_lines = 0  # lines up to the end of the header
        self._rows = 0  # data rows so far (the step of the next row when there is no step column)
        self._columns = 0
        self._engine = "c"
        self._text_columns: list[str] = []
        # A long key,value,step table (a tracker export), decided at the first data row as read_csv does.
        self._long: LongShape | None = None
        self._long_decided = False
        self._export: dict[str, Any] = {}

    def _reader(self) -> ReadWhole:
        from .csvlog import read_csv

        return read_csv

    def _header_lines(self) -> int:
        return self._head_lines

    def _kept(self) -> int:
        return self._rows

    def _usable_end(self, data: bytes) -> int:
        pos = 0
        if self._names is None:
            bom = _bom(data, self.offset)
            header, length, _ = split_header(data[bom:])
            if not header.endswith(b"\n") or header.count(b'"') % 2:  # incomplete, or a quote still open
                return 0
            pos = bom + length
        end = data.rfind(b"\n") + 1
        if end > pos and data.find(b'"', pos, end) >= 0:
            safe = _quote_safe_end(data, pos, end)
            if end - safe <= QUOTE_HOLD_BYTES:  # beyond that, the parser reports the open quote
                end = safe
        return max(pos, end)

    def _take(self, data: bytes, base: int) -> tuple[list[Fragment], list[Finding], dict[str, Any]]:
        from .csvlog import Columns, delimiter_note, parse_header, parse_rows

        findings: list[Finding] = []
        fragments: list[Fragment] = []
        pos = 0
        if self._names is None:
            if not data:
                return [], [], {}
            bom = _bom(data, base)
            _, length, header_lines = split_header(data[bom:])
            pos = bom + length
            clean = clean_piece(data[bom:pos], self.display, findings, offset=base + bom)
            self._names, self._delimiter = parse_header(split_header(clean)[0], first_line(data, pos))
            self._prefix = data[:pos]
            self._lines = self._head_lines = header_lines
            self._columns = len(self._names)
            if self._delimiter != ",":
                findings.append(delimiter_note(self.display, self._delimiter))
        if pos < len(data):
            body = data[pos:]
            clean = clean_piece(body, self.display, findings, offset=base + pos, line=self._lines + 1)
            if not self._long_decided:
                self._long_decided = True
                shape = long_shape([n.strip() for n in self._names])
                self._long = shape if shape is not None and is_text_cell(
                    first_line(clean, 0), self._delimiter, shape.key) else None
            long = self._long
            rows = parse_rows(self.display, clean, self._names, self._delimiter, self._lines + 1, findings,
                              self._rows, self._head_lines, self._last.keys(),
                              text=() if long is None else (long.key, long.run))
            self._lines += count_lines(body)
            self._rows += rows.n_data
            self._records += rows.records
            self._skipped += rows.skipped
            self._columns = max(self._columns, len(rows.names))
            engine = rows.engine if isinstance(rows, WideColumns) else rows.table.engine
            if engine != "c":
                self._engine = engine
            self._text_columns += [n for n in rows.text_columns if n not in self._text_columns]
            del self._text_columns[50:]
            fragments = rows.fragments
            if long is not None and isinstance(rows, Columns):  # one series per key, as read_csv gives it
                fragments, skipped = long_fragments(self.display, rows.table, rows.names, long, findings,
                                                    self._export)
                self._skipped += skipped
        self.offset = base + len(data)
        step = pick_step(self._names)
        meta = {"csv": {"delimiter": self._delimiter, "columns": self._columns, "rows": self._rows,
                        "step_column": None if step is None else self._names[step].strip(),
                        "engine": self._engine, "text_columns": list(self._text_columns),
                        **({"export": "long"} if self._long is not None else {})}}
        return fragments, findings, meta


class JsonlTailer(FileTailer):
    """A JSONL log followed live (``.gz`` and UTF-16 files are read whole at each change)."""

    fmt = Format.JSONL
    _unit = "lines"

    def __init__(self, path: str, display: str = "", max_bytes: int = MAX_READ_BYTES) -> None:
        super().__init__(path, display, max_bytes)
        self._whole = path.lower().endswith((".gz", ".gzip"))
        self._restart()

    def _restart(self) -> None:
        self._objects = 0  # object lines so far (the step of the next one when there is no step key)
        self._step_keys: tuple[str, ...] = ()
        self._step_key: str | None = None

    def _reader(self) -> ReadWhole:
        from .jsonl import read_jsonl

        return read_jsonl

    def _kept(self) -> int:
        return self._objects

    def _take(self, data: bytes, base: int) -> tuple[list[Fragment], list[Finding], dict[str, Any]]:
        from .jsonl import parse_jsonl

        if not data:
            return [], [], {}
        findings: list[Finding] = []
        if base == 0:
            self._prefix = data[:min(data.find(b"\n") + 1, _PREFIX_BYTES)]
        bom = _bom(data, base)
        clean = clean_piece(data[bom:], self.display, findings, offset=base + bom, line=self._lines + 1)
        got = parse_jsonl(self.display, clean.decode("utf-8"), findings, first_line=self._lines + 1,
                          first_index=self._objects, step_keys=self._step_keys, numeric=self._last.keys())
        self._lines += data.count(b"\n")
        self._objects += got.objects
        self._records += got.records
        self._skipped += got.skipped
        self._step_keys, self._step_key = got.step_keys, got.step_key
        self.offset = base + len(data)
        return got.fragments, findings, {"jsonl": {"step_key": self._step_key, "lines": self._records}}


class TrainerStateTailer(FileTailer):
    """A Hugging Face ``trainer_state.json``: rewritten whole at each save, so read whole at each change."""

    fmt = Format.HF_TRAINER_STATE

    def __init__(self, path: str, display: str = "", max_bytes: int = MAX_READ_BYTES) -> None:
        super().__init__(path, display, max_bytes)
        self._whole = True

    def _reader(self) -> ReadWhole:
        from .hf import read_trainer_state

        return read_trainer_state


def _bom(data: bytes, base: int) -> int:
    """Length of a UTF-8 byte order mark at the start of the file (``data`` read from ``base``)."""
    return len(codecs.BOM_UTF8) if base == 0 and data.startswith(codecs.BOM_UTF8) else 0


def _quote_safe_end(data: bytes, start: int, end: int) -> int:
    """End of the last line in ``data[start:end]`` after which no quoted CSV field is open."""
    safe = pos = start
    quoted = False
    while (nl := data.find(b"\n", pos, end)) >= 0:
        quoted ^= data.count(b'"', pos, nl) % 2 == 1
        pos = nl + 1
        if not quoted:
            safe = pos
    return safe
