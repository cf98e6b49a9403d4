"""Text logs read in bounded pieces: gzip, UTF-16, NUL bytes and invalid UTF-8 handled on the way.

:class:`TextStream` yields a file's text as valid UTF-8 pieces, holding at most one read (16 MiB of
a plain file, 1 MiB of gzip input and 16 MiB of its output) at a time: a 10 GiB run of NUL bytes
(a preallocated or sparse file, a gzip bomb of zeros) costs time, never memory. Its findings are
those of :func:`warmcheck.readers._text.load_text`, with the same offsets and lines (WC012 gzip
without a .gz name or UTF-16, WC003 truncated or corrupt gzip, WC018 NUL bytes, WC013 invalid UTF-8).

Size limits (:class:`Limits`): a file larger than ``max_file_size`` is not read, a gzip file whose
text exceeds ``max_decompressed_size`` is not read either (WC025 names the limit and how to raise
it). The defaults are far above any real text log: 4 GiB is a CSV of ~100 million rows of 4 columns,
or a trainer_state.json of ~60 million log entries; 16 GiB of gzip text is 4x that, the same log
compressed. They are set once per process from the settings (``max-file-size``,
``max-decompressed-size``) with :func:`set_limits`.
"""

from __future__ import annotations

import codecs
import itertools
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .. import storage
from ..findings import Finding
from .interface import diag

GiB = 1 << 30
_PLAIN_READ = 1 << 28  # a plain file up to 256 MiB is one read and one piece, as it always was
_GZIP_READ = 1 << 20
_GZIP_OUT = 1 << 24
_HELD = 1 << 26  # whitespace at the end of the text held back before only its line breaks are counted
_HELD_MIN = 1 << 12  # trailing whitespace shorter than this stays in its piece (no copy)


@dataclass(frozen=True, slots=True)
class Limits:
    """Sizes beyond which a text log is reported (WC025) and not read."""

    max_file_size: int = 4 * GiB
    max_decompressed_size: int = 16 * GiB


_current = [Limits()]


def set_limits(limits: Limits) -> None:
    """Use ``limits`` for every text log read from now on in this process."""
    _current[0] = limits


def current_limits() -> Limits:
    """The limits in force (see :func:`set_limits`)."""
    return _current[0]


def format_size(n: int) -> str:
    """``4 GiB``, ``1.5 MiB``, ``812 bytes``."""
    for unit, size in (("GiB", GiB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


class TextStream:
    """One text log as clean UTF-8 pieces: iterate :meth:`pieces`, then read the attributes.

    ``ok`` is false when the file could not be read or was refused (the findings say why; pieces
    already yielded must then be discarded). ``size`` is the file's size, ``gzip`` whether it was
    decompressed, ``pristine`` whether the pieces are the file's own bytes (a BOM aside), ``stamp``
    the ``(size, mtime_ns, inode)`` at opening.
    """

    def __init__(self, path: str, limits: Limits | None = None, read_size: int = _PLAIN_READ) -> None:
        self.path = path
        self.limits = limits or current_limits()
        self.read_size = read_size
        self.findings: list[Finding] = []
        self.ok = True
        self.size = 0
        self.gzip = False
        self.stamp = (0, 0, 0)
        self.emitted = 0  # bytes yielded before the BOM was removed (for ``pristine``)

    @property
    def pristine(self) -> bool:
        """The pieces are exactly the file's bytes (BOM aside), so a parser may read the path itself
        (never a URL: a parser would open it without the storage options)."""
        return self.ok and not self.findings and self.emitted == self.size == self.stamp[0] \
            and not storage.is_url(self.path)

    def pieces(self) -> Iterator[bytes]:
        """The text in order, as non-empty pieces of valid UTF-8 (the BOM and NUL bytes removed)."""
        remote = storage.is_url(self.path)
        try:
            if remote:
                fh: BinaryIO = storage.open_binary(self.path)
            else:
                fh = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed in the finally below
        except OSError as exc:
            self._unreadable(exc)
            return
        try:
            if remote:
                self.stamp = storage.stamp(self.path, fh)
            else:
                st = os.fstat(fh.fileno())
                self.stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
            file_size = self.stamp[0]
            if file_size > self.limits.max_file_size:
                self._refuse(f"file is {format_size(file_size)}, larger than the "
                             f"{format_size(self.limits.max_file_size)} limit on text logs", "max-file-size",
                             self.limits.max_file_size, file_size)
                return
            raw = self._raw(fh, file_size)
            first = next(raw, b"")  # sets self.gzip
            yield from self._bom(self._blank_tail(self._utf8(self._nuls(self._decoded(raw, first)))))
            if next(raw, None) is not None:  # stopped early (corrupt gzip): the size is the file's
                self.size = max(self.size, file_size)
        except OSError as exc:
            self._unreadable(exc)
        finally:
            fh.close()

    def _unreadable(self, exc: OSError) -> None:
        self.ok = False
        reason = exc.strerror or type(exc).__name__
        self.findings.append(diag("WC001", f"cannot read file: {reason}", self.path,
                                  errno=exc.errno, error=type(exc).__name__))

    def _refuse(self, what: str, key: str, limit: int, seen: int) -> None:
        self.ok = False
        self.findings.append(diag(
            "WC025", f"{what}; not read (raise it with --{key} or {key} in [tool.warmcheck])", self.path,
            limit=key, limit_bytes=limit, bytes=seen))

    def _raw(self, fh: BinaryIO, expected: int) -> Iterator[bytes]:
        read = fh.read
        head = read(2)
        self.gzip = head == b"\x1f\x8b"
        size = _GZIP_READ if self.gzip else self.read_size
        try:
            fh.seek(0)
            head = b""
        except OSError:  # not seekable (a pipe): the two bytes go in front
            pass
        # A file that fits in one read is read whole (sized from fstat: no 256 MiB buffer reserved).
        chunk = read() if not self.gzip and expected < size else read(size)
        chunk = head + chunk if head else chunk
        while chunk:
            self.size += len(chunk)
            yield chunk
            chunk = read(min(size, max(1 << 16, expected - self.size + 1)))  # no big buffer for the EOF read

    def _decoded(self, raw: Iterator[bytes], first_raw: bytes) -> Iterator[bytes]:
        """Raw bytes, or the gzip members' text; UTF-16 (by its BOM) re-encoded as UTF-8."""
        whole = itertools.chain((first_raw,), raw) if first_raw else raw
        pieces = self._gunzip(whole) if self.gzip else whole
        decoder: codecs.IncrementalDecoder | None = None
        first = True
        for piece in _at_least(pieces, 2):
            if first and piece[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                # PowerShell's '>' writes UTF-16; pandas and the csv module would see NULs everywhere.
                decoder = codecs.getincrementaldecoder("utf-16")("replace")
                self.findings.append(diag("WC012", "file is UTF-16 encoded (byte order mark); decoded as "
                                          "UTF-16", self.path, encoding="utf-16"))
            first = False
            yield decoder.decode(piece).encode("utf-8") if decoder else piece
        if decoder:
            tail = decoder.decode(b"", final=True).encode("utf-8")
            if tail:
                yield tail
        if self.gzip and not self.path.lower().endswith((".gz", ".gzip")):
            self.findings.append(diag("WC012", "file is gzip-compressed although its name does not end in "
                                      ".gz; decompressed it", self.path, compression="gzip"))

    def _gunzip(self, raw: Iterator[bytes]) -> Iterator[bytes]:
        limit = self.limits.max_decompressed_size
        total = 0
        dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        ended = False  # the last member ended: what follows is a new member or NUL padding
        for chunk in raw:
            data = chunk
            while data:
                if ended:
                    if trailing_nuls(data) == len(data):
                        break
                    dec, ended = zlib.decompressobj(16 + zlib.MAX_WBITS), False  # gzip -c a >> log.gz
                try:
                    out = dec.decompress(data, _GZIP_OUT)
                    while True:
                        total += len(out)
                        if total > limit:
                            self._refuse(f"gzip file decompresses to more than {format_size(limit)} (the limit "
                                         f"on decompressed text; {format_size(self.stamp[0])} compressed)",
                                         "max-decompressed-size", limit, total)
                            return
                        if out:
                            yield out
                        if dec.eof or not (len(out) == _GZIP_OUT or dec.unconsumed_tail):
                            break
                        out = dec.decompress(dec.unconsumed_tail, _GZIP_OUT)
                except zlib.error as exc:
                    self.findings.append(diag("WC003", f"gzip data is corrupt ({exc}); the text before it "
                                              "was kept", self.path, recovered_bytes=total))
                    return
                ended = dec.eof
                data = dec.unused_data if ended else b""
        if not ended:
            out = dec.flush()
            if out:
                total += len(out)
                yield out
            self.findings.append(diag("WC003", "gzip stream ends early (truncated .gz); the text before "
                                      "the cut was kept", self.path, recovered_bytes=total))

    def _nuls(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        """Pieces without NUL bytes; a NUL run at the end of the text is reported apart (crash artefact)."""
        pos = 0  # offset of ``piece`` in the decoded text
        inner, first = 0, -1
        run, run_start = 0, 0  # NUL bytes at the end of what was seen so far
        for piece in pieces:
            tail = trailing_nuls(piece)
            if tail == len(piece):
                if not run:
                    run_start = pos
                run += len(piece)
                pos += len(piece)
                continue
            if run:  # NUL bytes followed by text: inside the file
                inner, first = inner + run, run_start if first < 0 else first
            stripped = piece[:len(piece) - tail] if tail else piece
            if b"\x00" in stripped:  # 'in' is a memchr, count is not
                inner += stripped.count(b"\x00")
                if first < 0:
                    first = pos + stripped.find(b"\x00")
                stripped = stripped.replace(b"\x00", b"")
            run = tail
            run_start = pos + len(piece) - run
            pos += len(piece)
            yield stripped
        if run:
            self.findings.append(diag("WC018", f"{run} NUL bytes at end of file from byte offset {run_start} "
                                      "ignored (crash artefact?)", self.path, nul_bytes=run, offset=run_start))
        if inner:
            self.findings.append(diag("WC018", f"{inner} NUL bytes inside the file removed, first at byte "
                                      f"offset {first} (crash artefact?)", self.path, nul_bytes=inner,
                                      offset=first))

    def _utf8(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        """Valid UTF-8: bad sequences replaced with U+FFFD (WC013 names the first and counts them)."""
        carry = b""
        pos = lines = 0  # offset and newlines of what was checked so far
        uncounted = b""  # the last piece, whose newlines are counted only if another piece follows
        first: tuple[int, int] | None = None
        replaced = 0
        for piece in _with_end(pieces):
            if piece is None:
                data, carry = carry, b""
            else:
                data = carry + piece if carry else piece
                cut = _complete(data)
                data, carry = (data[:cut], data[cut:]) if cut < len(data) else (data, b"")
            if not data:
                continue
            if uncounted:
                lines += uncounted.count(b"\n")
                uncounted = b""
            if not data.isascii():
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    if first is None:
                        first = (pos + exc.start, lines + data.count(b"\n", 0, exc.start) + 1)
                    text = data.decode("utf-8", "replace")
                    replaced += text.count("\ufffd") - data.count("\ufffd".encode())
                    fixed = text.encode("utf-8")
                    lines += data.count(b"\n")
                    pos += len(data)
                    yield fixed
                    continue
            if first is None:
                uncounted = data
            pos += len(data)
            yield data
        if first is not None:
            self.findings.append(diag("WC013", f"not valid UTF-8 at byte {first[0]} (line {first[1]}); {replaced} "
                                      "bad byte sequence(s) replaced with U+FFFD", self.path, line=first[1],
                                      offset=first[0], replaced=replaced))

    def _blank_tail(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        """The pieces, with a long run of whitespace at the end of the text cut after its first line
        break (blank lines hold nothing in any text log; a gzip bomb of newlines costs no memory).

        A run is held back while it lasts (up to ``_HELD`` bytes; past that only its line breaks are
        counted) and given back whole, line breaks as LF, when text follows it.
        """
        held: list[bytes] = []
        size = breaks = 0  # bytes held; line breaks past them
        last = b""  # the last byte of the run so far (a CR, then an LF, is one line break)
        first_break = b""  # the run's first line break: all that is kept of it at the end of the file
        for piece in pieces:
            end = len(piece.rstrip())
            if end:
                if held or breaks:
                    yield from held
                    if breaks:
                        yield b"\n" * breaks  # a run of blank lines inside the file: its lines, not its bytes
                    held, size, breaks, first_break = [], 0, 0, b""
                if len(piece) - end <= _HELD_MIN:
                    yield piece
                    continue
                yield piece[:end]
                piece = piece[end:]
            if not first_break:
                at = min((i for i in (piece.find(b"\n"), piece.find(b"\r")) if i >= 0), default=-1)
                if at >= 0:
                    first_break = b"\r\n" if piece[at:at + 2] == b"\r\n" else piece[at:at + 1]
            if size + len(piece) <= _HELD:
                held.append(piece)
                size += len(piece)
            else:
                breaks += piece.count(b"\n") + piece.count(b"\r") - piece.count(b"\r\n") \
                    - (last == b"\r" and piece[:1] == b"\n")
            last = piece[-1:]
        if first_break:  # the run ends the file: keep its first line break, drop the rest
            yield first_break

    def _bom(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        """The pieces without a UTF-8 byte order mark at the start (Excel's would glue itself to 'step')."""
        bom = codecs.BOM_UTF8
        head: bytes | None = b""
        for piece in pieces:
            self.emitted += len(piece)
            if head is not None:
                head += piece
                if len(head) < len(bom):
                    continue
                piece, head = head.removeprefix(bom), None
            if piece:
                yield piece
        if head:
            yield head.removeprefix(bom)


_ZEROS = bytes(1 << 16)


def trailing_nuls(data: bytes) -> int:
    """Length of the run of NUL bytes ending ``data``, found at memcmp speed (``rstrip`` goes byte by
    byte: 4 s per GiB of a zero-filled file)."""
    n = len(data)
    if not n or data[-1]:
        return 0
    end, block = n, len(_ZEROS)
    while end >= block and data[end - block:end] == _ZEROS:
        end -= block
    start = max(0, end - block)
    return n - start - len(data[start:end].rstrip(b"\x00"))


def _at_least(pieces: Iterator[bytes], n: int) -> Iterator[bytes]:
    """``pieces``, the first one made at least ``n`` bytes long (a BOM is looked for in it)."""
    head = b""
    for piece in pieces:
        if head is None:
            yield piece
            continue
        head += piece
        if len(head) >= n:
            yield head
            head = None  # type: ignore[assignment]
    if head:
        yield head


def _with_end(pieces: Iterator[bytes]) -> Iterator[bytes | None]:
    yield from pieces
    yield None


def _complete(data: bytes) -> int:
    """Length of ``data`` without a UTF-8 sequence cut at its end (kept for the next piece)."""
    n = len(data)
    if not n or data[-1] < 0x80:
        return n
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return n - back if back < need else n
        if byte < 0x80:
            return n
    return n
