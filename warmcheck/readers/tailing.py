"""Logs followed while they are written: each poll reads only what was appended since the last.

:class:`EventTailer` follows TensorBoard event files with the resumable
:class:`~warmcheck.readers.tensorboard.EventFileReader`; the rest of this module does the same for
CSV (plain and Lightning ``metrics.csv``), JSONL and ``trainer_state.json``.

- **Appended files** (CSV, JSONL): the tailer keeps the byte offset of the end of the last complete
  line (a line ends with ``\\n``). A poll reads the bytes from there to the end, holds back the bytes
  after the last newline (a line being written) and parses the complete lines with the whole-file
  readers' own code (:func:`~warmcheck.readers.csvlog.parse_rows`,
  :func:`~warmcheck.readers.jsonl.parse_jsonl`), with true file line numbers. A CSV header is parsed
  once, from the first poll that has it complete. A poll never reports WC002 (a growing file has no
  data *yet*) or WC003 (the last line is being written): :meth:`incomplete_tail` reports the held-back
  bytes once the caller has seen the writer idle.
- **Rewritten files**: a file that shrank, was replaced (new inode), or whose first bytes changed
  (PyTorch Lightning's CSVLogger rewrites ``metrics.csv`` with a new header when a new metric
  appears) is read again from the start, and only points newer than those returned before are
  returned: per tag, steps above the highest step already returned (a new tag: all its points).
- **Files read whole**: ``trainer_state.json`` (Hugging Face rewrites it at every checkpoint), gzip
  and UTF-16 text. Every change re-reads the file with its whole-file reader, with the same per-tag
  filter.

File-level notes (WC012, WC017) and header findings are reported once per file; an unreadable or
vanished file gives one WC001 until it can be read again. Between polls only offsets, counters, the
header, the last step returned per tag and a few finding keys are kept.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, BinaryIO, Protocol

from ..findings import Finding
from ..model import Format, Fragment, SourceInfo, SourceRead
from ._csvparse import split_header
from ._text import clean_piece, count_lines, pick_step
from .interface import diag
from .tensorboard import EventFileReader
from .tfrecord import Damage, DamageKind

MAX_READ_BYTES = 32 << 20
"""Bytes read per poll at most (a long file is caught up with in pieces; ``poll`` until ``None``)."""
QUOTE_HOLD_BYTES = 1 << 20
"""A CSV quoted field left open holds its lines back (a quoted line break) for at most this many bytes."""

_PREFIX_BYTES = 1024  # JSONL: at most this much of the first line is compared at each poll (a rewrite?)
_NOT_TAILABLE = (b"\x1f\x8b", codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # gzip, UTF-16: read whole
_ONCE = frozenset({"WC012", "WC017"})  # file-level notes: once per kind per file
_NOT_LIVE = frozenset({"WC002", "WC003"})  # no data yet / a line being written: never from poll()

ReadWhole = Callable[[str], SourceRead]


class Tailer(Protocol):
    """A log file followed live (what ``warmcheck watch`` polls)."""

    path: str  # filesystem path
    display: str  # the path as shown in findings (SourceInfo.path and Finding.source)

    def poll(self) -> SourceRead | None:
        """What is new since the last poll; ``None`` if the file did not change."""
        ...

    def pending_bytes(self) -> int:
        """Bytes after the last complete line, held back (0 if none)."""
        ...

    def incomplete_tail(self) -> Finding | None:
        """WC003 for the held-back bytes (``None`` if none), for when the writer has gone idle."""
        ...


def tailer_for(path: str, display: str, fmt: Format) -> Tailer:
    """The tailer for an event file, a CSV, JSONL or ``trainer_state.json`` file."""
    if fmt is Format.TFEVENTS:
        return EventTailer(path, display)
    if fmt is Format.CSV:
        return CsvTailer(path, display)
    if fmt is Format.JSONL:
        return JsonlTailer(path, display)
    if fmt is Format.HF_TRAINER_STATE:
        return TrainerStateTailer(path, display)
    raise ValueError(f"no tailer for format {fmt.value!r}")


class EventTailer:
    """A TensorBoard event file followed live: the resumable reader, from the offset reached so far.

    An incomplete record at the end is left for the next poll (``read(final=False)``), never
    reported by ``poll``; :meth:`incomplete_tail` reports it, as the whole-file read would, once the
    caller has seen the writer idle.
    """

    def __init__(self, path: str, display: str = "", max_bytes: int = MAX_READ_BYTES) -> None:
        self.path, self.display = path, display or path
        self.reader = EventFileReader(path, self.display)
        self.max_bytes = max_bytes
        self._size = -1  # at the last poll (-2: it could not be read)
        self._more = False  # the last read stopped at max_bytes: more complete records may follow

    def poll(self) -> SourceRead | None:
        """The records appended since the last poll (about ``max_bytes`` at most); None if nothing new."""
        try:
            size = os.stat(self.path).st_size
        except OSError as exc:
            if self._size == -2:
                return None  # reported already, until it can be read again
            self._size = -2
            return SourceRead(SourceInfo(self.display, Format.TFEVENTS), findings=[diag(
                "WC001", f"cannot read event file: {exc.strerror or exc}", self.display, error=type(exc).__name__)])
        if size == self._size and not self._more:
            return None
        self._size = size
        before = self.reader.scanner.offset
        read = self.reader.read(final=False, max_bytes=self.max_bytes)
        self._more = self.reader.scanner.offset - before >= self.max_bytes
        return read

    def pending_bytes(self) -> int:
        """Bytes after the last complete record: a record being written (or cut off)."""
        return max(0, self._size - self.reader.scanner.offset) if self._size >= 0 else 0

    def incomplete_tail(self) -> Finding | None:
        """The whole-file reader's WC003 for the pending bytes."""
        pending = self.pending_bytes()
        if not pending:
            return None
        scanner = self.reader.scanner
        return self.reader.damage_finding(Damage(DamageKind.TRUNCATED, scanner.offset, pending,
                                                 scanner.record_index))


class _FileTailer:
    """The poll loop shared by the formats: change detection, rewrites, filtering, WC001 and WC003."""

    fmt: Format
    _unit = "rows"  # what rows_kept counts, for messages

    def __init__(self, path: str, display: str = "", max_bytes: int = MAX_READ_BYTES) -> None:
        self.path, self.display = path, display or path
        self.max_bytes = max(1, max_bytes)
        self.offset = 0  # end of the last complete line consumed
        self.bytes_read = 0  # bytes the last poll read from the file
        self._lines = 0  # lines before ``offset``
        self._end = 0  # how far the file was read: ``offset`` plus the held-back bytes
        self._ino = -1
        self._stamp: tuple[int, int, int] | None = None  # (size, mtime_ns, inode) at the last poll
        self._more = False  # the last poll stopped at max_bytes
        self._failed = False  # WC001 reported; quiet until the file can be read again
        self._whole = False  # re-read with the whole-file reader on every change
        self._prefix = b""  # first bytes of the file (the CSV header): changed means rewritten
        self._replay: int | None = None  # after a rewrite: lines of the old file, returned before
        self._incomplete: Finding | None = None  # whole-file reading: the reader's WC003
        self._last: dict[str, int] = {}  # tag -> highest step returned
        self._seen: set[tuple[object, ...]] = set()  # keys of file-level findings reported
        self._meta: dict[str, Any] = {}  # metadata as last returned
        self._records = self._skipped = 0  # in the file as read since the last rewrite
        self._sent_records = self._sent_skipped = 0  # returned so far

    # -- the protocol --------------------------------------------------------------------------

    def poll(self) -> SourceRead | None:
        """What is new since the last poll (see the module docstring); ``None`` if nothing changed."""
        self.bytes_read = 0
        try:
            st = os.stat(self.path)
        except OSError as exc:
            return self._unreadable(exc)
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if stamp == self._stamp and not self._more:
            return None
        self._stamp = stamp
        try:
            return self._read_whole(st) if self._whole else self._read_appended(st)
        except OSError as exc:
            return self._unreadable(exc)

    def pending_bytes(self) -> int:
        """Bytes after the last complete line, held back (0 if none).

        For a file read whole, the held-back size the reader reported for an incomplete end (the
        file's size for a ``trainer_state.json`` cut mid-write), 0 when its last read was complete.
        """
        if self._whole:
            if self._incomplete is None:
                return 0
            held = self._incomplete.details.get("bytes")
            return held if isinstance(held, int) and held > 0 else max(1, self._end)
        return max(0, self._end - self.offset)

    def incomplete_tail(self) -> Finding | None:
        """WC003 for the held-back bytes, once the writer is idle (WC018 if they are only NUL bytes)."""
        if self._whole:
            return self._incomplete
        held = self.pending_bytes()
        if not held:
            return None
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                tail = fh.read(held)
        except OSError:
            return None
        if not tail.strip(b"\x00"):  # a crash artefact, as the whole-file readers say
            nuls: list[Finding] = []
            clean_piece(tail, self.display, nuls, offset=self.offset)
            return nuls[0] if nuls else None
        if tail.isspace():
            return None
        blank = tail[:len(tail) - len(tail.lstrip())]
        line = self._lines + 1 + blank.count(b"\n")
        if b"\n" in tail[len(blank):]:
            what = (f"incomplete record from line {line}: a quoted field is still open where the writer "
                    "stopped")
        else:
            what = f"incomplete last line (no newline) at line {line}: the writer stopped mid-line"
        kept = self._kept()
        return diag("WC003", f"{what}; {len(tail)} bytes after the last complete line were not read, "
                    f"{kept} complete {self._unit} kept", self.display, line=line, bytes=len(tail),
                    rows_kept=kept)

    # -- reading -------------------------------------------------------------------------------

    def _read_appended(self, st: os.stat_result) -> SourceRead | None:
        with open(self.path, "rb") as fh:
            if self.offset and not self._continues(fh, st):
                self._rewind()
            fh.seek(self.offset)
            data = fh.read(self.max_bytes)
            more = len(data) == self.max_bytes
            end = 0
            if self.offset == 0 and data[:2] in _NOT_TAILABLE:
                self._whole = True
            else:
                end = self._usable_end(data)
                if end == 0 and more:  # one line (or header) longer than max_bytes: read all of it
                    data += fh.read()
                    more = False
                    end = self._usable_end(data)
        self.bytes_read += len(data)
        if self._whole:
            return self._read_whole(st)
        self._failed, self._more, self._ino = False, more, st.st_ino
        base, replay = self.offset, self._replay
        self._end = base + len(data)
        fragments, findings, meta = self._take(data[:end], base)
        if not more:
            self._replay = None
        return self._result(self._newer(fragments, replay is not None),
                            self._fresh(findings, self._header_lines(), replay), meta)

    def _continues(self, fh: BinaryIO, st: os.stat_result) -> bool:
        """Whether the file is the one read so far, appended to (else it was rewritten): same inode,
        not shorter, a newline still before ``offset`` and the same first bytes (the CSV header)."""
        if st.st_ino != self._ino or st.st_size < self._end:
            return False
        fh.seek(self.offset - 1)
        self.bytes_read += 1
        if fh.read(1) != b"\n":
            return False
        fh.seek(0)
        self.bytes_read += len(self._prefix)
        return fh.read(len(self._prefix)) == self._prefix

    def _rewind(self) -> None:
        """Forget the file read so far (it was rewritten); keep what was returned from it."""
        self._replay = self._lines if self._replay is None else max(self._replay, self._lines)
        self.offset = self._end = self._lines = 0
        self._records = self._skipped = 0
        self._prefix = b""
        self._restart()

    def _read_whole(self, st: os.stat_result) -> SourceRead | None:
        read = self._reader()(self.path)
        findings = [replace(f, source=self.display) if f.source == self.path else f for f in read.findings]
        for f in findings:
            if f.code == "WC001":
                return self._unreadable(f)
        self._failed, self._more, self._end = False, False, st.st_size
        self._incomplete = next((f for f in findings if f.code == "WC003"), None)
        self._records, self._skipped = read.info.records, read.info.skipped
        return self._result(self._newer(read.fragments, True), self._fresh(findings, 0, None, whole=True),
                            read.metadata)

    def _unreadable(self, problem: OSError | Finding) -> SourceRead | None:
        self._stamp, self._more = None, False
        if self._failed:
            return None
        self._failed = True
        if isinstance(problem, OSError):
            reason = problem.strerror or type(problem).__name__
            problem = diag("WC001", f"cannot read file: {reason}", self.display, errno=problem.errno,
                           error=type(problem).__name__)
        return SourceRead(SourceInfo(self.display, self.fmt), findings=[problem])

    # -- what a poll returns -------------------------------------------------------------------

    def _result(self, fragments: list[Fragment], findings: list[Finding], meta: Mapping[str, Any]) -> SourceRead:
        records = max(0, self._records - self._sent_records)
        skipped = max(0, self._skipped - self._sent_skipped)
        self._sent_records += records
        self._sent_skipped += skipped
        return SourceRead(SourceInfo(self.display, self.fmt, records, skipped), fragments,
                          self._changed(meta), findings)

    def _newer(self, fragments: Iterable[Fragment], only_newer: bool) -> list[Fragment]:
        """Non-empty fragments; with ``only_newer``, only steps above the highest returned for the tag."""
        out = []
        for frag in fragments:
            if not len(frag):
                continue
            last = self._last.get(frag.tag)
            if only_newer and last is not None:
                keep = frag.steps > last
                if not keep.any():
                    continue
                if not keep.all():
                    frag = Fragment(frag.tag, frag.steps[keep], frag.values[keep], frag.wall_times[keep])
            top = int(frag.steps.max())
            self._last[frag.tag] = top if last is None else max(last, top)
            out.append(frag)
        return out

    def _fresh(self, findings: Iterable[Finding], header_lines: int, replay: int | None,
               whole: bool = False) -> list[Finding]:
        """Findings not reported before: WC002/WC003 never, file-level ones once, and after a rewrite
        none about lines read before it."""
        out = []
        for f in findings:
            if f.code in _NOT_LIVE:
                continue
            if whole or f.code in _ONCE or f.line is None or f.line <= header_lines:
                key = _key(f)
                if key in self._seen:
                    continue
                self._seen.add(key)
            elif replay is not None and max(_lines_of(f)) <= replay:
                continue
            out.append(f)
        return out

    def _changed(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """The metadata entries (or, of a dict entry, the keys) that changed since the last poll."""
        out: dict[str, Any] = {}
        for key, value in meta.items():
            old = self._meta.get(key)
            if isinstance(value, dict) and isinstance(old, dict):
                diff = {k: v for k, v in value.items() if k not in old or old[k] != v}
                if diff:
                    out[key] = diff
                    old.update(diff)
            elif key not in self._meta or old != value:
                out[key] = value
                self._meta[key] = dict(value) if isinstance(value, dict) else value
        return out

    # -- per format ----------------------------------------------------------------------------

    def _reader(self) -> ReadWhole:
        raise NotImplementedError

    def _restart(self) -> None:
        """Reset the format's state (the file is read again from its start)."""

    def _usable_end(self, data: bytes) -> int:
        """Length of the prefix of ``data`` (read from ``offset``) that can be parsed now."""
        return data.rfind(b"\n") + 1

    def _take(self, data: bytes, base: int) -> tuple[list[Fragment], list[Finding], dict[str, Any]]:
        """Parse ``data``, complete lines at byte ``base``; advance ``offset`` and the line count."""
        raise NotImplementedError

    def _header_lines(self) -> int:
        return 0

    def _kept(self) -> int:
        return 0


class CsvTailer(_FileTailer):
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
        from .csvlog import delimiter_note, parse_header, parse_rows

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
            self._names, self._delimiter = parse_header(split_header(clean)[0])
            self._prefix = data[:pos]
            self._lines = self._head_lines = header_lines
            self._columns = len(self._names)
            if self._delimiter != ",":
                findings.append(delimiter_note(self.display, self._delimiter))
        if pos < len(data):
            body = data[pos:]
            clean = clean_piece(body, self.display, findings, offset=base + pos, line=self._lines + 1)
            rows = parse_rows(self.display, clean, self._names, self._delimiter, self._lines + 1, findings,
                              self._rows, self._head_lines, self._last.keys())
            self._lines += count_lines(body)
            self._rows += rows.n_data
            self._records += rows.records
            self._skipped += rows.skipped
            self._columns = max(self._columns, len(rows.names))
            if rows.table.engine != "c":
                self._engine = rows.table.engine
            self._text_columns += [n for n in rows.text_columns if n not in self._text_columns]
            del self._text_columns[50:]
            fragments = rows.fragments
        self.offset = base + len(data)
        step = pick_step(self._names)
        meta = {"csv": {"delimiter": self._delimiter, "columns": self._columns, "rows": self._rows,
                        "step_column": None if step is None else self._names[step].strip(),
                        "engine": self._engine, "text_columns": list(self._text_columns)}}
        return fragments, findings, meta


class JsonlTailer(_FileTailer):
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


class TrainerStateTailer(_FileTailer):
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


def _lines_of(f: Finding) -> list[int]:
    lines = [f.line] if f.line is not None else []
    listed = f.details.get("lines")
    if isinstance(listed, list):
        lines += [n for n in listed if isinstance(n, int)]
    return lines or [0]


def _key(f: Finding) -> tuple[object, ...]:
    """What makes a finding the same across polls: its kind (code and detail names) and where it is,
    except for the file-level notes (WC012, WC017), of which each kind is reported once."""
    kind = (f.code, *sorted(f.details))
    return kind if f.code in _ONCE else (*kind, f.tag, f.step, f.line)
