"""Hostile and huge inputs of issue 10, as builders shared by the unit tests and the bench.

No warmcheck import: the same builders feed ``tests/test_hostile_badinputs.py`` (``"small"`` scale,
in process) and ``bench/hostile_bench.py`` (``"full"`` scale: the issue's sizes, the CLI in a child
process under ``ulimit -v``, peak RSS measured), and the bench can run them against an older checkout.
Inputs stay small on disk: sparse files (``truncate``/seek), gzip, YAML aliases.

Adding a builder (one surgical insertion per builder, keep to your own names)::

    @register(item=1, description="400 good records + a zero tail (sparse)",
              points={"small": 400, "full": 400}, codes=("WC004",))
    def build_event_zero_tail(dir: Path, scale: str = "small") -> Path:
        ...
        return path_to_analyse

The registry key is the function name without ``build_`` (``event_zero_tail``). Fields:

* ``item``: the issue 10 item number (1-12);
* ``description``: one line, what the input is (the bench prints it);
* ``points``: good points kept per scale: the sum over every run and series of the JSON's
  ``points`` + ``superseded`` (every recoverable point, as in ``tests/test_badinputs.py``);
  ``None`` for a scale means "not checked";
* ``codes``: finding codes that must appear (run or top-level findings), or ``None`` if the item is
  fixed by behaviour only (nothing new is reported);
* ``exit_code``: the expected exit code, or ``None`` for the documented rule: 2 if no point could
  be analysed, else 1 iff an error-severity finding, else 0;
* ``args``: extra CLI arguments after ``analyze PATH --format json`` (e.g. ``("-j", "2")``);
* ``env``: extra environment variables for the CLI;
* ``cwd``: ``None`` (the repo root / the caller's cwd) or a function of the built path returning
  the directory the CLI runs from (item 12: a config in a parent directory);
* ``scales``: the scales the builder supports (both by default).

Builders must be deterministic, write only under ``dir`` and return the path given to ``analyze``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BUILDERS", "Builder", "register", "frame", "scalar_event", "file_version_event",
           "SCALES"]

SCALES = ("small", "full")
BuildFn = Callable[[Path, str], Path]


@dataclass(frozen=True)
class Builder:
    """One registered hostile input."""

    name: str
    build: BuildFn
    item: int
    description: str
    points: Mapping[str, int | None]
    codes: tuple[str, ...] | None
    exit_code: int | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Callable[[Path], Path] | None = None
    scales: tuple[str, ...] = SCALES


BUILDERS: dict[str, Builder] = {}


def register(*, item: int, description: str, points: Mapping[str, int | None],
             codes: tuple[str, ...] | None, exit_code: int | None = None,
             args: tuple[str, ...] = (), env: Mapping[str, str] | None = None,
             cwd: Callable[[Path], Path] | None = None,
             scales: tuple[str, ...] = SCALES) -> Callable[[BuildFn], BuildFn]:
    """Decorator: add ``build_<name>`` to ``BUILDERS`` under ``<name>`` (see the module docstring)."""

    def deco(fn: BuildFn) -> BuildFn:
        name = fn.__name__.removeprefix("build_")
        if name in BUILDERS:
            raise ValueError(f"hostile input {name!r} registered twice")
        BUILDERS[name] = Builder(name=name, build=fn, item=item, description=description,
                                 points=dict(points), codes=codes, exit_code=exit_code,
                                 args=tuple(args), env=dict(env or {}), cwd=cwd,
                                 scales=tuple(scales))
        return fn

    return deco


# --------------------------------------------------------------------------------------------
# Shared encoders (stdlib + google_crc32c when present): TFRecord framing and scalar Events.
# --------------------------------------------------------------------------------------------

try:
    import google_crc32c as _gcrc

    def crc32c(data: bytes) -> int:
        """CRC-32C (Castagnoli)."""
        return int(_gcrc.value(data))
except ImportError:  # pragma: no cover - the pure Python fallback
    _TABLE = []
    for _i in range(256):
        _c = _i
        for _ in range(8):
            _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
        _TABLE.append(_c)

    def crc32c(data: bytes) -> int:
        """CRC-32C (Castagnoli)."""
        crc = 0xFFFFFFFF
        for b in data:
            crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """The masked CRC TFRecord stores."""
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    """One TFRecord: u64 length, u32 masked crc(length), data, u32 masked crc(data)."""
    hdr = struct.pack("<Q", len(payload))
    return hdr + struct.pack("<I", masked_crc(hdr)) + payload + struct.pack("<I", masked_crc(payload))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(num: int, b: bytes) -> bytes:
    return _varint((num << 3) | 2) + _varint(len(b)) + b


def file_version_event(wall: float = 1_700_000_000.0) -> bytes:
    """The ``file_version: "brain.Event:2"`` event every event file starts with."""
    return b"\x09" + struct.pack("<d", wall) + _field_bytes(3, b"brain.Event:2")


def scalar_event(tag: str | bytes, step: int, value: float, wall: float | None = None) -> bytes:
    """An Event holding one ``simple_value`` scalar (torch / tensorboardX style)."""
    tag_b = tag.encode("utf-8") if isinstance(tag, str) else tag
    w = 1_700_000_001.0 + 0.5 * step if wall is None else wall
    val = _field_bytes(1, tag_b) + b"\x15" + struct.pack("<f", value)  # tag, simple_value
    out = b"\x09" + struct.pack("<d", w)
    if step:
        out += b"\x10" + _varint(step)
    return out + _field_bytes(5, _field_bytes(1, val))


# --------------------------------------------------------------------------------------------
# Builders (one function each; see the module docstring).
# --------------------------------------------------------------------------------------------
