"""Small bodies of plain numbers are tokenised without pandas (readers/_csvparse._read_simple): the cells
must be exactly those of pandas' C engine (dtype and every bit), and anything outside that domain must be
left to pandas."""

from __future__ import annotations

import random

import numpy as np
import pytest

from warmcheck.readers import _csvparse
from warmcheck.readers._csvparse import Table, _read_c, _read_simple

pytest.importorskip("pandas")


def empty(body: bytes, n: int, delimiter: str = ",") -> Table:
    return Table([np.empty(0, np.float64) for _ in range(n)], 0, 2, "c", body, 0, len(body), delimiter)


def same(a: Table, b: Table) -> None:
    assert a.n_rows == b.n_rows
    assert len(a.columns) == len(b.columns)
    for x, y in zip(a.columns, b.columns, strict=True):
        assert x is not None and y is not None
        assert x.dtype == y.dtype, (x, y)
        assert x.tobytes() == y.tobytes(), (x, y)  # every bit: -0.0, NaN, the last ulp


def number(rng: random.Random) -> str:
    """A number in the domain _read_simple takes: at most 15 digits, a decimal exponent within 10**+-22,
    written the ways loggers write them (ints, fixed point, repr, scientific with either E)."""
    kind = rng.random()
    if kind < 0.2:
        return str(rng.randint(-10**rng.randint(1, 15) + 1, 10**rng.randint(1, 15) - 1))
    if kind < 0.4:
        return f"{rng.uniform(-10, 10) * 10 ** rng.randint(-6, 6):.{rng.randint(1, 8)}g}"
    if kind < 0.7:
        whole = rng.randint(0, 7)
        digits = rng.randint(max(whole, 1), 15 if whole else 14)  # "0." counts its zero: 15 digits in all
        s = "".join(rng.choice("0123456789") for _ in range(digits))
        s = (s[:whole] or "0") + ("." + s[whole:] if s[whole:] else "")
        return ("-" if rng.random() < 0.3 else "") + s
    mant = f"{rng.uniform(1, 10):.{rng.randint(0, 6)}f}"
    return f"{mant}{rng.choice('eE')}{rng.choice(['', '+', '-'])}{rng.randint(0, 15):0{rng.randint(1, 2)}d}"


@pytest.mark.parametrize("seed", range(40))
def test_random_numeric_bodies_equal_pandas_bit_for_bit(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 6)
    rows = rng.randint(1, 300)
    int_cols = {j for j in range(n) if rng.random() < 0.4}
    lines = []
    for _ in range(rows):
        cells = []
        for j in range(n):
            if j in int_cols:
                cells.append(str(rng.randint(-10**9, 10**12)))
            elif rng.random() < 0.05 and len(lines) % 2 and n > 1:  # empty cells (not a blank line),
                # never a whole column of them
                cells.append("")
            else:
                cells.append(number(rng))
        lines.append(",".join(cells))
    eol = "\r\n" if seed % 5 == 0 else "\n"
    body = (eol.join(lines) + (eol if seed % 7 else "")).encode()
    if len(body) > _csvparse.SIMPLE_MAX_BYTES:
        body = body[:body.index(b"\n", _csvparse.SIMPLE_MAX_BYTES // 2) + 1]
    simple = _read_simple(empty(body, n), n)
    assert simple is not None  # every cell is in the domain
    same(simple, _read_c(empty(body, n), n, None))


@pytest.mark.parametrize("body", [
    b"0,1e-05\n1,2.5E+3\n-0,-0.0\n",
    b"1,0.000123456789012345\n",          # 18 digits: left to pandas
    b"1,123456789012345\n2,1234567890123456\n",
    b"10,1e22\n11,1e-22\n",
    b"7,007\n8,-00.5\n",
    b"1,\n2,3\n",                          # an empty cell: float column with NaN
    b"5,9007199254740993\n",               # 2**53 + 1: not the domain
    b"1,1e-30\n2,0.30000000000000004\n",  # beyond Clinger's fast path: only a correctly rounding pandas
])
def test_edge_cases_equal_pandas(body: bytes) -> None:
    simple = _read_simple(empty(body, 2), 2)
    reference = _read_c(empty(body, 2), 2, None)
    if simple is not None:
        same(simple, reference)
    else:
        big_int = any(c.isdigit() and len(c) > 15 for line in body.split() for c in line.split(b","))
        assert big_int or not _csvparse._pandas_rounds_correctly()


@pytest.mark.parametrize("body", [
    b'1,"2"\n',                 # a quote
    b"1,nan\n",                 # a spelling of NaN: text for _csvcells
    b"1,2\n\n3,4\n",            # a blank line is a row of NaN
    b"1,2\r3,4\n",              # a lone CR ends a line in pandas
    b"1,2,3\n",                 # a ragged row
    b"1\n",                     # a short row
    b"1, 2\n",                  # a space
    b"1,1e400\n",               # overflow
    b"1,1e-320\n",              # subnormal
    b"1,12345678901234567\n",   # an integer of 17 digits: pandas' int64
    b"1,.5\n",
    b"1,\xc3\xa9\n",            # not ASCII
    b"1,\n2,\n",                # a column without any number
    b"1,True\n",
])
def test_anything_else_is_left_to_pandas(body: bytes) -> None:
    assert _read_simple(empty(body, 2), 2) is None


def test_large_bodies_are_left_to_pandas() -> None:
    body = b"".join(b"%d,%d.5\n" % (i, i) for i in range(20000))
    assert len(body) > _csvparse.SIMPLE_MAX_BYTES
    assert _read_simple(empty(body, 2), 2) is None


def full_precision(rng: random.Random) -> str:
    """A float as ``repr`` / Lightning / ``%.17g`` write it: up to 17 significant digits, any magnitude
    of a normal double."""
    x = rng.uniform(1, 10) * 10.0 ** rng.randint(-290, 290)
    kind = rng.random()
    if kind < 0.4:
        return repr(x if rng.random() < 0.7 else -x)
    if kind < 0.7:
        out = f"{x:.17g}"
        return out if not out.isdigit() else out + ".5"  # [1e16, 1e17) prints as an integer: out of the domain
    return f"{rng.random():.{rng.randint(16, 19)}f}"


@pytest.mark.parametrize("seed", range(20))
def test_full_precision_floats_equal_a_correctly_rounding_pandas(seed: int) -> None:
    """pandas >= 3.1 parses with fast_float (correctly rounded), so 16-19 digit cells are ``float``'s
    double too: every bit equal on random reprs of every magnitude."""
    if not _csvparse._pandas_rounds_correctly():
        pytest.skip("the installed pandas is older than 3.1: 17-digit cells are left to it")
    rng = random.Random(1000 + seed)
    lines = [f"{i},{full_precision(rng)},{full_precision(rng)}" for i in range(rng.randint(1, 400))]
    body = ("\n".join(lines) + "\n").encode()
    simple = _read_simple(empty(body, 3), 3)
    assert simple is not None
    same(simple, _read_c(empty(body, 3), 3, None))


def test_full_precision_floats_are_left_to_an_older_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_csvparse, "_pandas_rounds_correctly", lambda: False)
    assert _read_simple(empty(b"0,0.30000000000000004\n", 2), 2) is None
    assert _read_simple(empty(b"0,0.3\n", 2), 2) is not None


def test_pandas_version_is_read_without_importing_pandas() -> None:
    import subprocess
    import sys

    code = ("import sys; from warmcheck.readers import _csvparse as c; r = c._pandas_rounds_correctly(); "
            "print(r, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    import pandas as pd

    major, minor = (int(p) for p in pd.__version__.split(".")[:2])
    assert out == [str((major, minor) >= (3, 1)), "False"]
