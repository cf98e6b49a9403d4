"""A W&B run file followed live (``warmcheck watch``): each poll decodes only the records appended.

The scanner (:class:`~warmcheck.readers._wandblog.LogScanner`) keeps the offset of the end of the last
complete record; a poll scans from there to the file's current end with ``final=False``, so a record
being written (a chunk or a multi-chunk record cut by the end of the data) is left for the next poll,
never reported. The decoder (:class:`~warmcheck.readers.wandb.RunDecoder`) keeps the step key, the
config and the summary across polls and hands out only the points decoded since the last one.
:meth:`WandbTailer.incomplete_tail` reports the held-back bytes (WC003) once the caller has seen the
writer idle, as the whole-file read would. A file that shrank, whose bytes before the offset changed,
or that was replaced by another at its path is read again from its start in a new :attr:`generation`.
"""

from __future__ import annotations

import os

from ..findings import Finding
from ..model import Format, SourceInfo, SourceRead
from ._follow import TAIL_BYTES, Change, FileIdentity, read_at
from ._wandblog import HEADER_LEN, Damage, DamageKind, LogScanner
from .interface import diag, not_installed
from .wandb import RunDecoder, damage_finding, header_problem

MAX_READ_BYTES = 32 << 20  # bytes scanned per poll at most (a long file is caught up with in pieces)


class WandbTailer:
    """A ``run-<id>.wandb`` file followed live (the :class:`~warmcheck.readers.tailing.Tailer` protocol)."""

    def __init__(self, path: str, display: str = "", max_bytes: int = MAX_READ_BYTES) -> None:
        self.path, self.display = path, display or path
        self.identity = FileIdentity(path)
        self.max_bytes = max(1, max_bytes)
        self.generation = 0  # bumped when the file was rewritten: what was returned before is void
        self._restart()

    def _restart(self) -> None:
        self.scanner = LogScanner()
        self.decoder: RunDecoder | None = None
        self._size = -1  # at the last poll
        self._stamp: tuple[int, int, int] | None = None  # (size, mtime_ns, inode) at the last poll
        self._mark = b""  # the TAIL_BYTES before the offset reached: changed means rewritten
        self._more = False  # the last poll stopped at max_bytes
        self._failed = False  # WC001 reported; quiet until the file can be read again
        self._refused: str | None = None  # a finding code that ends the reading (WC002, WC027), reported

    def poll(self) -> SourceRead | None:
        """The records appended since the last poll (about ``max_bytes`` at most); None if nothing new."""
        try:
            at = self.identity.locate(drained=not self._more)
        except OSError as exc:
            return self._unreadable(exc)
        st = at.st
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if stamp == self._stamp and not self._more:
            return None
        offset = self.scanner.offset
        if at.change in (Change.REPLACED, Change.NEXT) or (
                self._size >= 0 and (st.st_size < self._size or (offset > HEADER_LEN and
                                                                 read_at(at.path, offset, TAIL_BYTES) != self._mark))):
            self.generation += 1
            self._restart()
        self._stamp, self._size = stamp, st.st_size
        if self._refused is not None:
            return None
        try:
            return self._read(at.path, st.st_size)
        except OSError as exc:
            return self._unreadable(exc)

    def _read(self, path: str, size: int) -> SourceRead | None:
        info = SourceInfo(self.display, Format.WANDB)
        with open(path, "rb") as fh:
            if self.decoder is None:
                problem = header_problem(fh.read(HEADER_LEN), size, self.display, final=False)
                if problem is not None:
                    self._refused = problem.code
                    return SourceRead(info, findings=[problem])
                if size < HEADER_LEN:
                    return SourceRead(info)  # the header is being written
                try:
                    self.decoder = RunDecoder(self.display)
                except ImportError:
                    self._refused = "WC027"
                    return SourceRead(info, findings=[not_installed(self.display, "wandb", "wandb", "a W&B run file")])
            limit = min(size, self.scanner.offset + self.max_bytes)
            self.decoder.feed(self.scanner.scan(fh, limit, final=False))
        self._more = limit < size
        self._failed = False
        self._mark = read_at(path, self.scanner.offset, TAIL_BYTES)
        self.identity.size = size
        return self.decoder.take(final=False)

    def _unreadable(self, exc: OSError) -> SourceRead | None:
        self._stamp, self._more = None, False
        if self._failed:
            return None
        self._failed = True
        return SourceRead(SourceInfo(self.display, Format.WANDB), findings=[diag(
            "WC001", f"cannot read W&B run file: {exc.strerror or exc}", self.display, error=type(exc).__name__)])

    def pending_bytes(self) -> int:
        """Bytes after the last complete record (a record being written, or cut off; 0 if none)."""
        if self._refused is not None or self._size < 0:
            return 0
        return max(0, self._size - self.scanner.offset)

    def incomplete_tail(self) -> Finding | None:
        """The whole-file reader's WC003 (or WC004) for the bytes after the last complete record."""
        if not self.pending_bytes():
            return None
        if self.scanner.offset < HEADER_LEN or self._size < HEADER_LEN:
            return header_problem(read_at(self.path, HEADER_LEN, HEADER_LEN), self._size, self.display, final=True)
        rest = LogScanner()
        rest.offset, rest.records = self.scanner.offset, self.scanner.records
        try:
            with open(self.identity.reading, "rb") as fh:
                tail = [d for d in rest.scan(fh, os.fstat(fh.fileno()).st_size, final=True) if isinstance(d, Damage)]
        except OSError:
            return None
        last = next((d for d in reversed(tail) if d.kind is DamageKind.TRUNCATED), tail[-1] if tail else None)
        return damage_finding(last, self.display) if last is not None else None
