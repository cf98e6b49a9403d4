"""Shared helpers for text logs (CSV, JSONL, trainer_state.json): bytes in, clean UTF-8 out.

:func:`load_text` turns a file into valid UTF-8 bytes plus the diagnostics of what it had to do on
the way (gzip by magic bytes, UTF-16/UTF-8 BOMs, NUL runs, invalid UTF-8). It never raises.
The step-key list, the number and step parsers shared by the CSV and JSON readers live here too,
so that "what is a number" and "what is a step" mean the same in every text format.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..findings import Finding
from ._textstream import TextStream
from .interface import diag

STEP_KEYS: tuple[str, ...] = (
    "step",                 # Lightning CSVLogger, HF log_history, most hand-written loops
    "global_step",          # HF / TF / LLMs-from-scratch
    "trainer/global_step",  # Lightning + wandb (preferred over wandb's own _step counter)
    "train/global_step",
    "optimizer_step",
    "iteration",            # mmengine, detectron2
    "iter",                 # nanoGPT
    "it",
    "steps",
    "num_updates",          # fairseq
    "updates",
    "update",
    "_step",                # wandb's history counter: a log-call index, only a last resort
    "batch",                # Keras CSVLogger per-batch logs
)
"""Names recognised as the step column/key, best first; matched case-insensitively and exactly
(``epoch`` is deliberately absent: it is not a step axis)."""

WALL_TIME_KEYS: tuple[str, ...] = ("wall_time", "walltime", "_timestamp", "timestamp")
"""Numeric columns/keys read as wall time (seconds since the epoch) when their values look like it."""

_NONFINITE_SPELLINGS = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf",
                                  "infinity", "+infinity", "-infinity"})
_MAX_INT64 = 2**63 - 1


def pick_step(names: Iterable[str]) -> int | None:
    """Index of the step column among ``names`` (first of :data:`STEP_KEYS` present), or ``None``."""
    lowered: dict[str, int] = {}
    for i, name in enumerate(names):
        lowered.setdefault(name.strip().lower(), i)
    for key in STEP_KEYS:
        if key in lowered:
            return lowered[key]
    return None


def is_nonfinite_token(token: str) -> bool:
    """True for the spellings of NaN/Inf accepted in text logs ('nan', 'NAN', '-Infinity', ...)."""
    return token.strip().lower() in _NONFINITE_SPELLINGS


def parse_number(cell: str) -> float | None:
    """A text cell as a float: ``None`` for an empty cell (not logged), ``nan`` for an explicit NaN.

    NaN/Inf tokens are matched case-insensitively (``NAN`` is not in pandas' NA list, which is
    why one such token turns a pandas column into text). Raises ``ValueError`` when the cell is
    not a number. Underscore digit groups are rejected although ``float()`` accepts them: no CSV
    writer produces them and pandas does not read them as numbers either.
    """
    s = cell.strip()
    if not s:
        return None
    if "_" in s:
        raise ValueError(cell)
    return float(s)


def parse_decimal_comma(cell: str) -> float:
    """A cell such as ``2,500000`` (decimal comma, Excel de-DE) as a float; ``ValueError`` otherwise."""
    s = cell.strip()
    if s.count(",") != 1 or "." in s or "_" in s:
        raise ValueError(cell)
    whole, frac = s.split(",")
    if not frac[:1].isdigit() or not (whole.lstrip("+-").isdigit() or whole in ("", "-", "+")):
        raise ValueError(cell)
    return float(s.replace(",", "."))


def parse_step(value: object) -> tuple[int | None, bool]:
    """A step value as an exact int: ``(step, rounded)``; ``(None, False)`` when it is not a step.

    Integers (also as text, '9', '1e1', '2.0') are exact. A finite non-integer (4.5) is rounded
    down and flagged so the caller can warn. Empty, NaN/Inf, words, bools and values outside int64
    are not steps.
    """
    if type(value) is int:  # the usual case first: JSON and csv integers
        return (value, False) if -_MAX_INT64 - 1 <= value <= _MAX_INT64 else (None, False)
    if isinstance(value, bool) or value is None:
        return None, False
    if isinstance(value, numbers.Integral):  # also numpy integers, which must stay exact
        value = int(value)
        return (value, False) if -_MAX_INT64 - 1 <= value <= _MAX_INT64 else (None, False)
    if isinstance(value, str):
        s = value.strip()
        if not s or "_" in s:
            return None, False
        try:
            return parse_step(int(s))
        except ValueError:
            pass
        try:
            value = float(s)
        except ValueError:
            return None, False
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None, False
    if not math.isfinite(f) or not -(2.0**63) <= f < 2.0**63:
        return None, False
    return math.floor(f), not f.is_integer()


def format_lines(lines: Sequence[int], limit: int = 5) -> str:
    """'7, 9, 13' or '7, 9, 13, 15, 17, ...' for messages."""
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (", ..." if len(lines) > limit else "")


def count_lines(data: bytes, start: int = 0, end: int | None = None) -> int:
    """Number of line terminators (LF, CRLF or lone CR) in ``data[start:end]`` (without copying)."""
    end = len(data) if end is None else end
    if data.find(b"\r", start, end) < 0:  # the usual LF-only file: one scan instead of three
        return data.count(b"\n", start, end)
    return data.count(b"\n", start, end) + data.count(b"\r", start, end) - data.count(b"\r\n", start, end)


def tail_start(data: bytes) -> int:
    """Offset of the unterminated last line of ``data`` (``len(data)`` when it ends in a newline)."""
    if not data or data.endswith((b"\n", b"\r")):
        return len(data)
    return max(data.rfind(b"\n"), data.rfind(b"\r")) + 1


@dataclass(frozen=True, slots=True)
class Decoded:
    """A text log as valid UTF-8 bytes (BOM, NUL bytes and bad bytes already dealt with)."""

    data: bytes
    size: int
    gzip: bool = False
    pristine: bool = False  # ``data`` is the file's bytes (a BOM aside): pandas may read the path
    stamp: tuple[int, int, int] = (0, 0, 0)  # (size, mtime_ns, inode) when read: see file_stamp()


def load_text(path: str) -> tuple[Decoded | None, list[Finding]]:
    """Read ``path`` as text: ``(None, [WC001])`` if it cannot be read, ``(None, [WC025])`` if it is
    over a size limit, else the decoded bytes.

    Findings: WC012 gzip without a .gz name or UTF-16, WC003 truncated gzip, WC018 NUL bytes,
    WC013 invalid UTF-8 (first bad byte offset, replaced with U+FFFD). The file is read in pieces
    (:class:`~warmcheck.readers._textstream.TextStream`): NUL runs and gzip bombs of zeros cost no memory.
    """
    stream = TextStream(path)
    pieces = list(stream.pieces())
    if not stream.ok:
        return None, stream.findings
    data = b"".join(pieces)  # one piece (a file under 16 MiB) is returned as is, not copied
    del pieces
    return Decoded(data, stream.size, stream.gzip, stream.pristine, stream.stamp), stream.findings


def file_stamp(path: str) -> tuple[int, int, int] | None:
    """``(size, mtime_ns, inode)`` of ``path`` now, to tell whether a live log changed since read."""
    try:
        return _stamp(os.stat(path))
    except OSError:
        return None


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def clean_piece(data: bytes, path: str, findings: list[Finding], *, offset: int = 0, line: int = 1) -> bytes:
    """What :func:`load_text` does to NUL bytes (WC018) and invalid UTF-8 (WC013), for a piece of a
    file that starts at byte ``offset`` and line ``line`` (a live reader reads only appended bytes):
    the findings name the file's offsets and lines."""
    data = _strip_nuls(data, path, findings, offset)
    if not data.isascii():
        data = _check_utf8(data, path, findings, offset, line)
    return data


def _strip_nuls(data: bytes, path: str, findings: list[Finding], base: int = 0) -> bytes:
    stripped = data.rstrip(b"\x00")
    tail = len(data) - len(stripped)
    if tail:
        findings.append(diag("WC018", f"{tail} NUL bytes at end of file from byte offset "
                             f"{base + len(stripped)} ignored (crash artefact?)", path,
                             nul_bytes=tail, offset=base + len(stripped)))
    inner = stripped.count(b"\x00") if b"\x00" in stripped else 0  # 'in' is a memchr, count is not
    if inner:
        first = base + stripped.find(b"\x00")
        findings.append(diag("WC018", f"{inner} NUL bytes inside the file removed, first at byte "
                             f"offset {first} (crash artefact?)", path, nul_bytes=inner, offset=first))
        stripped = stripped.replace(b"\x00", b"")
    return stripped


def _check_utf8(data: bytes, path: str, findings: list[Finding], base: int = 0, first_line: int = 1) -> bytes:
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError as exc:
        first = exc.start
    text = data.decode("utf-8", "replace")
    replaced = text.count("\ufffd") - data.count("\ufffd".encode())
    line = data.count(b"\n", 0, first) + first_line
    findings.append(diag("WC013", f"not valid UTF-8 at byte {base + first} (line {line}); {replaced} "
                         "bad byte sequence(s) replaced with U+FFFD", path, line=line,
                         offset=base + first, replaced=replaced))
    return text.encode("utf-8")


def load_json_text(path: str, nothing: str) -> tuple[str | None, list[Finding]]:
    """:func:`load_text` for the JSON readers: the text, or ``None`` with WC001 (unreadable) or
    WC002 (empty or blank; ``nothing`` says what is missing, e.g. "no JSON lines")."""
    decoded, findings = load_text(path)
    if decoded is None:
        return None, findings
    text = decoded.data.decode("utf-8")
    if not text.strip():
        findings.append(diag("WC002", "empty file (0 bytes)" if decoded.size == 0 else
                             f"empty file: {nothing} in it", path, bytes=decoded.size))
        return None, findings
    return text, findings
