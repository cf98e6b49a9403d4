"""Logs followed while they are written: each poll reads only what was appended since the last.

:class:`EventTailer` follows TensorBoard event files with the resumable
:class:`~warmcheck.readers.tensorboard.EventFileReader`; :class:`FileTailer` is the poll loop the text
logs share, and :mod:`._texttail` its CSV (plain and Lightning ``metrics.csv``), JSONL and
``trainer_state.json`` tailers.

- **Appended files** (CSV, JSONL): the tailer keeps the byte offset of the end of the last complete
  line (a line ends with ``\\n``). A poll reads the bytes from there to the end, holds back the bytes
  after the last newline (a line being written) and parses the complete lines with the whole-file
  readers' own code (:func:`~warmcheck.readers.csvlog.parse_rows`,
  :func:`~warmcheck.readers.jsonl.parse_jsonl`), with true file line numbers. A CSV header is parsed
  once, from the first poll that has it complete. A poll never reports WC002 (a growing file has no
  data *yet*) or WC003 (the last line is being written): :meth:`incomplete_tail` reports the held-back
  bytes once the caller has seen the writer idle.
- **Rewritten files** (:mod:`._follow`): a file that shrank, whose bytes just before the offset
  reached or whose first bytes changed (truncated and written again; PyTorch Lightning's CSVLogger
  rewrites ``metrics.csv`` with a new header when a new metric appears), or that was replaced (a new
  inode, the old one gone) is read again from its start in a new :attr:`generation`: every point of
  the new file is returned and the caller replaces what it got before, so that the points followed
  are those of the final file, as ``analyze`` reads it. A file **rotated** (renamed in its directory,
  a new file at the path) is read to its end under its new name, then the new file continues it in
  the same generation.
- **Files read whole**: ``trainer_state.json`` (Hugging Face rewrites it at every checkpoint), gzip
  and UTF-16 text. Every change re-reads the file with its whole-file reader; if each tag's points
  begin with those returned so far (a digest of their steps and values), only the points after them
  are returned, else the file is a new attempt (a new generation, everything returned).

File-level notes (WC012, WC017) and header findings are reported once per file; an unreadable or
vanished file gives one WC001 until it can be read again. Between polls only offsets, counters, the
header, a digest and count of the points returned per tag and a few finding keys are kept.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, BinaryIO, Protocol

from ..findings import Finding
from ..model import Format, Fragment, SourceInfo, SourceRead
from ._follow import TAIL_BYTES, Change, FileIdentity, points_digest, read_at
from ._text import clean_piece
from .interface import diag
from .tensorboard import EventFileReader
from .tfrecord import Damage, DamageKind

MAX_READ_BYTES = 32 << 20
"""Bytes read per poll at most (a long file is caught up with in pieces; ``poll`` until ``None``)."""
QUOTE_HOLD_BYTES = 1 << 20
"""A CSV quoted field left open holds its lines back (a quoted line break) for at most this many bytes."""

_NOT_TAILABLE = (b"\x1f\x8b", codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # gzip, UTF-16: read whole
_ONCE = frozenset({"WC012", "WC017"})  # file-level notes: once per kind per file
_NOT_LIVE = frozenset({"WC002", "WC003"})  # no data yet / a line being written: never from poll()

ReadWhole = Callable[[str], SourceRead]


class Tailer(Protocol):
    """A log file followed live (what ``warmcheck watch`` polls)."""

    path: str  # filesystem path
    display: str  # the path as shown in findings (SourceInfo.path and Finding.source)
    identity: FileIdentity  # the file being read: rotated away, replaced?
    generation: int  # bumped when the file was rewritten: the caller replaces what it got before

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
    """The tailer for an event file, a CSV, JSONL, ``trainer_state.json`` or W&B run file."""
    if fmt is Format.TFEVENTS:
        return EventTailer(path, display)
    if fmt in (Format.CSV, Format.JSONL, Format.HF_TRAINER_STATE):  # appended lines, or rewritten whole
        from ._texttail import CsvTailer, JsonlTailer, TrainerStateTailer
        return {Format.CSV: CsvTailer, Format.JSONL: JsonlTailer, Format.HF_TRAINER_STATE: TrainerStateTailer}[fmt](
            path, display)
    if fmt is Format.WANDB:  # a W&B run file: appended records, decoded as they come
        from ._wandbtail import WandbTailer
        return WandbTailer(path, display)
    if fmt is Format.MLFLOW:  # an MLflow run (run directory, database row set or server): read whole, new points out
        from ._mlflowtail import MlflowTailer
        return MlflowTailer(path, display)
    raise ValueError(f"no tailer for format {fmt.value!r}")


class EventTailer:
    """A TensorBoard event file followed live: the resumable reader, from the offset reached so far.

    An incomplete record at the end is left for the next poll (``read(final=False)``), never
    reported by ``poll``; :meth:`incomplete_tail` reports it, as the whole-file read would, once the
    caller has seen the writer idle. A file rewritten or replaced is read again from its start in a
    new :attr:`generation`; a rotated one is read to its end, then the new file at the path continues
    it (:mod:`._follow`).
    """

    def __init__(self, path: str, display: str = "", max_bytes: int = MAX_READ_BYTES) -> None:
        self.path, self.display = path, display or path
        self.identity = FileIdentity(path)
        self.reader = EventFileReader(path, self.display)
        self.max_bytes = max_bytes
        self.generation = 0  # bumped when the file was rewritten: what was returned before is void
        self._size = -1  # at the last poll (-2: it could not be read)
        self._stamp: tuple[int, int] | None = None  # (size, mtime_ns) at the last poll
        self._mark = b""  # the TAIL_BYTES before the offset reached: changed means rewritten
        self._more = False  # the last read stopped at max_bytes: more complete records may follow

    def poll(self) -> SourceRead | None:
        """The records appended since the last poll (about ``max_bytes`` at most); None if nothing new."""
        try:
            at = self.identity.locate(drained=not self._more)
        except OSError as exc:
            if self._size == -2:
                return None  # reported already, until it can be read again
            self._size, self._stamp = -2, None
            return SourceRead(SourceInfo(self.display, Format.TFEVENTS), findings=[diag(
                "WC001", f"cannot read event file: {exc.strerror or exc}", self.display, error=type(exc).__name__)])
        stamp = (at.st.st_size, at.st.st_mtime_ns)
        if at.change in (Change.SAME, Change.ROTATED) and stamp == self._stamp and not self._more:
            return None
        if at.change is Change.REPLACED or (at.change is Change.SAME and self._rewritten(at.path, stamp[0])):
            self._restart(new_generation=True)
        elif at.change is Change.NEXT:
            self._restart(new_generation=False)
        self.reader.scanner.path = at.path  # the name a rotated file has now (the reader keeps its sort key)
        self._size, self._stamp = stamp[0], stamp
        before = self.reader.scanner.offset
        read = self.reader.read(final=False, max_bytes=self.max_bytes)
        self._more = self.reader.scanner.offset - before >= self.max_bytes
        self._mark = read_at(at.path, self.reader.scanner.offset, TAIL_BYTES)
        self.identity.size = stamp[0]
        return read

    def _rewritten(self, path: str, size: int) -> bool:
        """Whether the file at the same inode is no longer the one read: shorter than the offset
        reached, or other bytes just before it (truncated and written again)."""
        offset = self.reader.scanner.offset
        return offset > 0 and (size < offset or read_at(path, offset, TAIL_BYTES) != self._mark)

    def _restart(self, new_generation: bool) -> None:
        """Read the file at the path from its start: a new attempt (``new_generation``) or the file
        that continues a rotated one."""
        self.generation += new_generation
        self.reader = EventFileReader(self.path, self.display)
        self._size, self._stamp, self._mark, self._more = -1, None, b"", False

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


class FileTailer:
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
        self.identity = FileIdentity(path)
        self.generation = 0  # bumped when the file was rewritten: what was returned before is void
        self._stamp: tuple[int, int, int] | None = None  # (size, mtime_ns, inode) at the last poll
        self._more = False  # the last poll stopped at max_bytes
        self._failed = False  # WC001 reported; quiet until the file can be read again
        self._whole = False  # re-read with the whole-file reader on every change
        self._prefix = b""  # first bytes of the file (the CSV header): changed means rewritten
        self._mark = b""  # the TAIL_BYTES before ``offset``: changed means rewritten
        self._incomplete: Finding | None = None  # whole-file reading: the reader's WC003
        self._last: dict[str, int] = {}  # tag -> highest step returned (the tags known to be numeric)
        self._digests: dict[str, tuple[int, bytes]] = {}  # whole-file reading: tag -> (points, digest) returned
        self._seen: set[tuple[object, ...]] = set()  # keys of file-level findings reported
        self._meta: dict[str, Any] = {}  # metadata as last returned
        self._records = self._skipped = 0  # in the file as read since the last rewrite
        self._sent_records = self._sent_skipped = 0  # returned so far

    # -- the protocol --------------------------------------------------------------------------

    @property
    def reads_whole(self) -> bool:
        """Whether each change is read with the whole-file reader (``trainer_state.json``, gzip, UTF-16)."""
        return self._whole

    @property
    def prefix_bytes(self) -> int:
        """How many bytes at the start of the file each poll compares (the CSV header, a JSONL first line)."""
        return len(self._prefix)

    def poll(self) -> SourceRead | None:
        """What is new since the last poll (see the module docstring); ``None`` if nothing changed."""
        self.bytes_read = 0
        try:
            at = self.identity.locate(drained=not self._more)
        except OSError as exc:
            return self._unreadable(exc)
        st = at.st
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if at.change in (Change.SAME, Change.ROTATED) and stamp == self._stamp and not self._more:
            return None
        if at.change is not Change.SAME and at.change is not Change.ROTATED:
            self._rewind(new_generation=at.change is Change.REPLACED)
        self._stamp = stamp
        try:
            read = self._read_whole(at.path, st) if self._whole else self._read_appended(at.path, st)
        except OSError as exc:
            return self._unreadable(exc)
        self.identity.size = st.st_size
        return read

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
            with open(self.identity.reading, "rb") as fh:
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

    def _read_appended(self, path: str, st: os.stat_result) -> SourceRead | None:
        with open(path, "rb") as fh:
            if self.offset and not self._continues(fh, st):
                self._rewind(new_generation=True)
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
            return self._read_whole(path, st)
        self._failed, self._more = False, more
        base = self.offset
        self._end = base + len(data)
        self._mark = (self._mark + data[:end])[-TAIL_BYTES:]
        fragments, findings, meta = self._take(data[:end], base)
        return self._result(self._newer(fragments), self._fresh(findings, self._header_lines()), meta)

    def _continues(self, fh: BinaryIO, st: os.stat_result) -> bool:
        """Whether the file is the one read so far, appended to (else it was rewritten in place): not
        shorter, the same bytes just before ``offset`` (ending in a newline) and the same first bytes
        (the CSV header). Another inode is told by :class:`FileIdentity`."""
        if st.st_size < self._end:
            return False
        start = max(0, self.offset - TAIL_BYTES)
        fh.seek(start)
        before = fh.read(self.offset - start)
        self.bytes_read += len(before)
        if before != self._mark or not before.endswith(b"\n"):
            return False
        fh.seek(0)
        self.bytes_read += len(self._prefix)
        return fh.read(len(self._prefix)) == self._prefix

    def _rewind(self, new_generation: bool) -> None:
        """Read the file from its start: rewritten (``new_generation``: forget what was returned from
        it, the caller replaces it), or a new file continuing a rotated one (its points are new)."""
        self.offset = self._end = self._lines = 0
        self._records = self._skipped = self._sent_records = self._sent_skipped = 0
        self._prefix = self._mark = b""
        self._more, self._stamp, self._incomplete = False, None, None
        self._digests.clear()
        if new_generation:
            self.generation += 1
            self._last.clear()
            self._seen.clear()
            self._meta.clear()
        self._restart()

    def _read_whole(self, path: str, st: os.stat_result) -> SourceRead | None:
        read = self._reader()(path)
        findings = [replace(f, source=self.display) if f.source == path else f for f in read.findings]
        for f in findings:
            if f.code == "WC001":
                return self._unreadable(f)
        fragments = [f for f in read.fragments if len(f)]
        if not self._extends(fragments):
            self._rewind(new_generation=True)
        self._failed, self._more, self._end = False, False, st.st_size
        self._incomplete = next((f for f in findings if f.code == "WC003"), None)
        self._records, self._skipped = read.info.records, read.info.skipped
        return self._result(self._since(fragments), self._fresh(findings, 0, whole=True), read.metadata)

    def _extends(self, fragments: Sequence[Fragment]) -> bool:
        """Whether a file read whole begins, tag by tag, with the points returned from it so far."""
        by_tag = {f.tag: f for f in fragments}
        for tag, (n, digest) in self._digests.items():
            f = by_tag.get(tag)
            if f is None or len(f) < n or points_digest(f.steps[:n], f.values[:n]) != digest:
                return False
        return True

    def _since(self, fragments: Sequence[Fragment]) -> list[Fragment]:
        """A file read whole: each tag's points after those returned before (by position)."""
        out = []
        for frag in fragments:
            n = self._digests.get(frag.tag, (0, b""))[0]
            self._digests[frag.tag] = (len(frag), points_digest(frag.steps, frag.values))
            if len(frag) > n:
                out.append(frag if n == 0 else Fragment(frag.tag, frag.steps[n:], frag.values[n:],
                                                        frag.wall_times[n:]))
        return self._newer(out)

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

    def _newer(self, fragments: Iterable[Fragment]) -> list[Fragment]:
        """The non-empty fragments; their tags are known to be numeric from now on."""
        out = []
        for frag in fragments:
            if not len(frag):
                continue
            last = self._last.get(frag.tag)
            top = int(frag.steps.max())
            self._last[frag.tag] = top if last is None else max(last, top)
            out.append(frag)
        return out

    def _fresh(self, findings: Iterable[Finding], header_lines: int, whole: bool = False) -> list[Finding]:
        """Findings not reported before (in this generation): WC002/WC003 never, file-level ones once."""
        out = []
        for f in findings:
            if f.code in _NOT_LIVE:
                continue
            if whole or f.code in _ONCE or f.line is None or f.line <= header_lines:
                key = _key(f)
                if key in self._seen:
                    continue
                self._seen.add(key)
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


def _key(f: Finding) -> tuple[object, ...]:
    """What makes a finding the same across polls: its kind (code and detail names) and where it is,
    except for the file-level notes (WC012, WC017), of which each kind is reported once."""
    kind = (f.code, *sorted(f.details))
    return kind if f.code in _ONCE else (*kind, f.tag, f.step, f.line)
