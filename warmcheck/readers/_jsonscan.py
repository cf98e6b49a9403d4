"""An incremental scan of a ``trainer_state.json``: the ``log_history`` entries one by one, as text arrives.

The file is never held whole nor parsed into one Python object: :class:`HistoryScan` is fed pieces of
text and hands each complete entry to a callback, keeping only the unread part of the current piece.
The fields before ``log_history`` and after it (``best_metric`` ... ``max_steps``, ``logging_steps``)
are parsed as small documents of their own.

Damage costs what is damaged. An entry that does not decode is skipped up to the next place where
an entry decodes again (a ``,`` then ``{``; entries are flat objects), and the scan goes on: one corrupt
byte in entry 50 of 100 loses entry 50, not 50-100. A missing ``,`` between two entries is noted and
costs nothing. What was skipped is recorded as :class:`Region` (lines, entries) for the reader's
finding; a file that ends inside an entry is a truncated tail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

_HISTORY = re.compile(r'"log_history"\s*:\s*\[')
_BLANK = re.compile(r"[ \t\r\n]*")
_NEXT = re.compile(r",[ \t\r\n]*\{|\][ \t\r\n]*(?:,|\}|\Z)")  # the next entry, or the end of the list
MAX_HEAD = 64 << 20  # text before "log_history" (sorted keys put it after ~10 small fields)
MAX_TAIL = 64 << 20  # text after the list (a dozen small fields)
MAX_ENTRY = 16 << 20  # one log_history entry (a few hundred bytes in practice)
_NEAR_END = 64  # a decode error this close to the end of the text read so far may be a cut, not damage
_REGIONS_SHOWN = 10


@dataclass
class Region:
    """Text skipped in ``log_history``: from line/column ``first`` to ``last``, ``entries`` entry starts."""

    first: tuple[int, int]
    last: tuple[int, int]
    entries: int

    def __str__(self) -> str:
        if self.first[0] == self.last[0]:
            return f"line {self.first[0]} col {self.first[1]}-{self.last[1]}"
        return f"lines {self.first[0]}-{self.last[0]}"


@dataclass
class ScanError:
    """Where the JSON first went wrong, as ``json`` says it."""

    line: int
    column: int
    reason: str


@dataclass
class ScanResult:
    """What :class:`HistoryScan` found (see the module docstring)."""

    top: dict[str, object] = field(default_factory=dict)
    found: bool = False  # a log_history list (or a bare list of entries) was found
    entries: int = 0  # entries decoded (objects or not)
    blank: bool = True  # nothing but whitespace was fed
    error: ScanError | None = None  # first damage inside the list (skipped regions, missing commas)
    errors: int = 0  # places with damage inside the list
    regions: list[Region] = field(default_factory=list)  # the first few skipped regions
    skipped_entries: int = 0  # entry starts inside skipped regions
    skipped_regions: int = 0
    truncated: ScanError | None = None  # the file ends inside the list or its closing fields
    truncated_from: int = 0  # the line where the cut entry starts (0: not in an entry)
    outside: ScanError | None = None  # damage in the fields around the list (not a cut)
    eof_line: int = 1
    head_only: str | None = None  # the whole text when no log_history was found in it (small files)


class HistoryScan:
    """Feed text with :meth:`feed`, then call :meth:`finish`; ``on_entry`` gets each decoded entry."""

    def __init__(self, on_entry: Callable[[object], None], parse_constant: Callable[[str], float]) -> None:
        self.on_entry = on_entry
        self.result = ScanResult()
        self._constant = parse_constant
        self._pending: list[str] = []
        self._decoder = json.JSONDecoder(parse_constant=self._token)
        self.buf = ""
        self.pos = 0
        self.base = 0  # offset in the text of buf[0]
        self.noted = -1  # offset of the last missing-comma note (a retry after more text must not repeat it)
        self.lines_before = 0  # newlines before buf[0]
        self.col_before = 0  # characters after the last newline before buf[0]
        self.state = "head"
        self.bare = False
        self.after_entry = False  # an entry was just read: a ',' or the ']' comes next
        self.after_comma = False  # a ',' was just read: an entry comes next
        self.need = 0  # unread text needed before the next decode attempt (an entry cut by a piece)
        self.region: tuple[tuple[int, int], int, int] | None = None  # (start, entries, search position)
        self.region_error: ScanError | None = None
        self.tail: list[str] = []
        self.tail_size = 0
        self.tail_at = (1, 1)  # line and column where the text after the list starts
        self._cursor = (0, 0)  # (index in buf, newlines before it in buf): lines counted once

    def _token(self, token: str) -> float:
        self._pending.append(token)  # counted only when the entry decodes (a retry must not count twice)
        return float(token)

    # ---- feeding --------------------------------------------------------------------------------

    def feed(self, text: str) -> None:
        """More text of the file."""
        if self.result.blank and text and not text.isspace():
            self.result.blank = False
        if self.state == "done":
            return
        if self.state == "tail":
            self._keep_tail(text)
            return
        rest = self.buf[:self.pos]
        if rest:
            newlines = rest.count("\n")
            self.lines_before += newlines
            self.col_before = len(rest) - rest.rfind("\n") - 1 if newlines else self.col_before + len(rest)
        if self.region is not None:  # its search position moves with the text dropped
            first, entries, search = self.region
            self.region = (first, entries, max(0, search - self.pos))
        self.buf = self.buf[self.pos:] + text
        self.base += self.pos
        self.pos = 0
        self._cursor = (0, 0)
        self._run(False)

    def finish(self) -> ScanResult:
        """End of file: settle what is pending and return the result."""
        if self.state not in ("done", "tail"):
            self._run(True)
        r = self.result
        if self.state == "tail":
            r.eof_line = self.tail_at[0] + sum(t.count("\n") for t in self.tail)
            self._finish_tail()
        else:
            r.eof_line = self.lines_before + self.buf.count("\n") + 1
        return r

    def _run(self, eof: bool) -> None:
        while True:
            if self.state == "head":
                more = self._head(eof)
            elif self.state == "entries":
                more = self._entries(eof)
            elif self.state == "resync":
                more = self._resync(eof)
            else:
                return
            if not more:
                return

    # ---- positions ------------------------------------------------------------------------------

    def _where(self, i: int) -> tuple[int, int]:
        """1-based line and column of ``buf[i]``."""
        at, newlines = self._cursor
        if i < at:
            at, newlines = 0, 0
        newlines += self.buf.count("\n", at, i)
        self._cursor = (i, newlines)
        last = self.buf.rfind("\n", 0, i)
        column = i - last if last >= 0 else self.col_before + i + 1
        return self.lines_before + newlines + 1, column

    def _error(self, i: int, reason: str) -> ScanError:
        line, column = self._where(i)
        return ScanError(line, column, reason)

    # ---- states ---------------------------------------------------------------------------------

    def _head(self, eof: bool) -> bool:
        buf = self.buf
        start = _BLANK.match(buf).end()  # type: ignore[union-attr]
        if start == len(buf):
            return False
        if buf[start] == "[":  # a bare list of entries
            self.bare = self.result.found = True
            self.pos, self.state = start + 1, "entries"
            return True
        match = _HISTORY.search(buf)
        if match is not None:
            head = buf[:match.start()].rstrip().rstrip(",")
            try:  # trainer_state.json is written with sorted keys: these are best_metric ... is_*
                top = json.loads(head + "}", parse_constant=self._constant)
                self.result.top = top if isinstance(top, dict) else {}
            except (ValueError, RecursionError):
                pass
            self.result.found = True
            self.pos, self.state = match.end(), "entries"
            return True
        if eof or len(buf) > MAX_HEAD:
            self.result.head_only = buf if eof else None
            self.state = "done"
        return False

    def _entries(self, eof: bool) -> bool:
        buf, decoder, on_entry = self.buf, self._decoder, self.on_entry
        pos = self.pos
        while True:
            pos = _BLANK.match(buf, pos).end()  # type: ignore[union-attr]
            if pos >= len(buf):
                self.pos = pos
                if eof:
                    self.result.truncated = self._error(pos, "the list is not closed")
                    self.state = "done"
                return False
            char = buf[pos]
            if char == ",":
                if not self.after_entry:
                    self._damage(pos, "expecting value")
                self.after_entry, self.after_comma = False, True
                pos += 1
                continue
            if char == "]":
                if self.after_comma:
                    self._damage(pos, "expecting value")
                self.pos, self.state = pos + 1, "tail"
                self.tail_at = self._where(pos + 1)
                self._keep_tail(buf[pos + 1:])
                self.buf, self.pos = "", 0
                return False
            if self.after_entry and self.base + pos != self.noted:
                self.noted = self.base + pos
                self._damage(pos, "expecting ',' delimiter")  # noted; the entry is read all the same
            if not eof and len(buf) - pos < self.need:
                self.pos = pos
                return False
            try:
                entry, end = decoder.raw_decode(buf, pos)
            except RecursionError:
                self._start_region(pos, pos, "nesting too deep")
                self.pos = pos
                return True
            except ValueError as exc:
                if not eof and self._maybe_cut(exc, pos):
                    self.pos, self.need = pos, 2 * (len(buf) - pos) + 1
                    return False
                self._start_region(pos, exc.pos, _reason(exc))  # type: ignore[attr-defined]
                self.pos = pos
                return True
            if end >= len(buf) and not eof:  # a number may go on in the next piece (1428|57): wait
                self._pending.clear()
                self.pos, self.need = pos, len(buf) - pos + 1
                return False
            if self._pending:
                for token in self._pending:
                    self._constant(token)
                self._pending.clear()
            self.need = 0
            self.after_entry, self.after_comma = True, False
            self.result.entries += 1
            pos = end
            on_entry(entry)

    def _maybe_cut(self, exc: ValueError, pos: int) -> bool:
        """Whether a decode error may only mean that the entry goes on in the next piece."""
        self._pending.clear()
        if len(self.buf) - pos > MAX_ENTRY:
            return False
        where = exc.pos  # type: ignore[attr-defined]
        return where >= len(self.buf) - _NEAR_END or str(exc).startswith("Unterminated string")

    def _damage(self, i: int, reason: str) -> None:
        self.result.errors += 1
        if self.result.error is None:
            self.result.error = self._error(i, reason)

    def _start_region(self, start: int, error_at: int, reason: str) -> None:
        self._pending.clear()
        self._damage(error_at, reason)
        self.region_error = self.result.error if self.result.errors == 1 else self._error(error_at, reason)
        first = self._where(start) if self.result.skipped_regions < _REGIONS_SHOWN else (0, 0)
        self.region = (first, 1, start + 1)
        self.state = "resync"

    def _resync(self, eof: bool) -> bool:
        """Find where entries decode again after a damaged one; the text in between is skipped."""
        assert self.region is not None
        first, entries, search = self.region
        buf = self.buf
        while True:
            match = _NEXT.search(buf, search)
            if match is None or (match.group().startswith("]") and match.end() == len(buf) and not eof):
                if eof:
                    self._end_region(len(buf), entries, first, truncated=True)
                    return False
                keep = max(search, len(buf) - _NEAR_END) if match is None else match.start()
                self.region = (first, entries, keep)
                self.pos = max(0, keep - _NEAR_END)  # the skipped text is dropped as the scan goes
                return False
            if match.group().startswith("]"):
                self._end_region(match.start(), entries, first)
                self.pos, self.after_entry, self.after_comma = match.start(), False, False
                return True
            brace = match.end() - 1
            try:
                self._decoder.raw_decode(buf, brace)
            except RecursionError:
                pass
            except ValueError as exc:
                if not eof and self._maybe_cut(exc, brace):
                    self.region = (first, entries, match.start())
                    self.pos, self.need = max(0, match.start() - _NEAR_END), 2 * (len(buf) - brace) + 1
                    return False
            else:
                self._pending.clear()  # decoded again below, in the entries state
                self._end_region(match.start(), entries, first)
                self.pos, self.after_entry, self.after_comma = match.end() - 1, False, True
                return True
            self._pending.clear()
            entries += 1
            search = brace + 1

    def _end_region(self, end: int, entries: int, first: tuple[int, int], *, truncated: bool = False) -> None:
        r = self.result
        if truncated:  # the file ends in the damaged entry: a cut, reported as such (WC003)
            r.truncated = self.region_error
            r.truncated_from = first[0]
            if r.error is self.region_error:
                r.error = None
            r.errors -= 1
        else:
            r.skipped_entries += entries
            r.skipped_regions += 1
            if len(r.regions) < _REGIONS_SHOWN:
                last_char = len(self.buf[:end].rstrip()) - 1
                r.regions.append(Region(first, self._where(max(0, last_char)), entries))
        self.region = self.region_error = None
        self.need = 0
        self.state = "done" if truncated else "entries"

    # ---- the fields after the list --------------------------------------------------------------

    def _keep_tail(self, text: str) -> None:
        if self.tail_size <= MAX_TAIL:
            self.tail.append(text)
            self.tail_size += len(text)

    def _finish_tail(self) -> None:
        text = "".join(self.tail)
        self.tail = []
        r = self.result
        if self.tail_size > MAX_TAIL:
            r.outside = ScanError(*self.tail_at, f"more than {MAX_TAIL >> 20} MiB after log_history; not read")
            return
        if self.bare:
            if text.strip():
                r.outside = _at(self.tail_at, text, len(text) - len(text.lstrip()), "extra data")
            return
        body = text.lstrip()
        skip = len(text) - len(body)
        if body.startswith(","):
            body, skip = body[1:], skip + 1
        try:
            doc = json.loads("{" + body, parse_constant=self._constant)
        except (ValueError, RecursionError) as exc:
            where = max(0, getattr(exc, "pos", 1) - 1) + skip
            error = _at(self.tail_at, text, where, "nesting too deep" if isinstance(exc, RecursionError)
                        else _reason(exc))
            if unbalanced("{" + body):
                r.truncated = error
            else:
                r.outside = error
            return
        if isinstance(doc, dict):
            r.top.update(doc)


def _reason(exc: ValueError) -> str:
    return str(getattr(exc, "msg", exc)).removesuffix(" at").lower()


def _at(start: tuple[int, int], text: str, i: int, reason: str) -> ScanError:
    """The position of ``text[i]`` when ``text`` starts at line/column ``start``."""
    newlines = text.count("\n", 0, i)
    column = i - text.rfind("\n", 0, i) if newlines else start[1] + i
    return ScanError(start[0] + newlines, column, reason)


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def unbalanced(text: str) -> bool:
    """Whether ``text`` looks cut mid-write: an open string, or more brackets opened than closed."""
    rest = _STRINGS.sub("", text)
    return '"' in rest or rest.count("{") + rest.count("[") > rest.count("}") + rest.count("]")
