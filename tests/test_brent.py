"""warmcheck._brent against scipy.optimize: the same minimiser (fminbound / minimize_scalar "bounded")
and root finder (brentq), so the same points within the tolerance, on smooth, flat, kinked, noisy and
boundary-minimum functions and on the schedule fits' own objectives."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

from warmcheck._brent import brentq, minimize_bounded

optimize = pytest.importorskip("scipy.optimize", reason="scipy (the test extra) is the reference")


def minimisation_cases() -> list[tuple[str, Callable[[float], float], float, float, float]]:
    rng = np.random.default_rng(7)
    noise = rng.normal(size=4096)
    cases: list[tuple[str, Callable[[float], float], float, float, float]] = [
        ("parabola", lambda x: (x - 1.3) ** 2, -4.0, 5.0, 1e-8),
        ("quartic", lambda x: (x - 0.2) ** 4 + 1.0, -1.0, 3.0, 1e-6),
        ("cos", math.cos, 2.0, 4.5, 1e-9),
        ("abs kink", lambda x: abs(x - 0.7), 0.0, 2.0, 1e-7),
        ("min at lower bound", lambda x: x, 1.0, 2.0, 1e-6),
        ("min at upper bound", lambda x: -x * x, 0.0, 3.0, 1e-6),
        ("flat", lambda x: 5.0, -1.0, 1.0, 1e-5),
        ("step", lambda x: 0.0 if x > 0.31 else 1.0, 0.0, 1.0, 1e-6),
        ("tiny scale", lambda x: (x - 3e-7) ** 2, 1e-7, 9e-7, 1e-12),
        ("huge scale", lambda x: (x - 7.5e5) ** 2, 1e5, 1e6, 1e-2),
        ("noisy", lambda x: (x - 2.0) ** 2 + 1e-3 * noise[int(abs(x) * 997) % 4096], 0.0, 5.0, 1e-6),
    ]
    # the cosine-arc objective of shapes.fit_cosine_arc on a real-looking decay: SSE over the frequency
    t = np.arange(0.0, 400.0)
    y = 1e-5 + 0.5 * (3e-4 - 1e-5) * (1 + np.cos(np.pi * (t + 37.0) / 900.0)) + rng.normal(0, 1e-8, t.size)

    def sse(w: float) -> float:
        basis = np.stack([np.ones_like(t), np.cos(w * t), np.sin(w * t)], axis=1)
        coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
        r = y - basis @ coef
        return float(r @ r)

    cases.append(("cosine-arc objective", sse, np.pi / 4000, np.pi / 300, 1e-7 * np.pi / 300))
    return cases


@pytest.mark.parametrize("name, f, lo, hi, xatol", minimisation_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_minimize_bounded_matches_scipy(name: str, f: Callable[[float], float], lo: float, hi: float,
                                        xatol: float) -> None:
    ours_x, ours_f = minimize_bounded(f, lo, hi, xatol=xatol)
    ref = optimize.minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": xatol})
    assert lo <= ours_x <= hi
    assert ours_f == f(ours_x)
    # the same algorithm and stopping rule: the same point (the tests allow the tolerance, no more)
    assert abs(ours_x - float(ref.x)) <= 2 * xatol + 1e-12 * abs(float(ref.x)), (ours_x, float(ref.x))
    assert ours_f <= float(ref.fun) + 1e-12 * (1 + abs(float(ref.fun)))


@pytest.mark.parametrize("seed", range(30))
def test_minimize_bounded_matches_scipy_on_random_smooth_functions(seed: int) -> None:
    rng = random.Random(seed)
    c, s, k = rng.uniform(-3, 3), rng.uniform(0.1, 4), rng.choice([2, 4, 6])
    wiggle = rng.uniform(0, 0.3)
    f = lambda x: ((x - c) / s) ** k + wiggle * math.sin(5 * x)  # noqa: E731
    lo, hi = c - rng.uniform(0.5, 6), c + rng.uniform(0.5, 6)
    x, fx = minimize_bounded(f, lo, hi, xatol=1e-7)
    ref = optimize.minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
    assert abs(x - float(ref.x)) <= 2e-7 or fx <= float(ref.fun)


def test_minimize_bounded_stops_at_maxfun() -> None:
    calls = []
    minimize_bounded(lambda x: calls.append(x) or (x - 0.5) ** 2, 0.0, 1.0, xatol=1e-300, maxfun=4)
    assert len(calls) == 4


def test_minimize_bounded_rejects_empty_bounds() -> None:
    with pytest.raises(ValueError, match="increasing"):
        minimize_bounded(lambda x: x, 1.0, 1.0)


ROOT_CASES: list[tuple[str, Callable[[float], float], float, float]] = [
    ("linear", lambda x: 3 * x - 1, -5.0, 5.0),
    ("cubic", lambda x: x ** 3 - 2 * x - 5, 2.0, 3.0),
    ("exp", lambda x: math.exp(x) - 10, 0.0, 5.0),
    ("flat then steep", lambda x: math.expm1(20 * (x - 0.9)), 0.0, 1.0),
    ("root at a", lambda x: x - 1.0, 1.0, 2.0),
    ("root at b", lambda x: x - 2.0, 1.0, 2.0),
    ("step", lambda x: -1.0 if x < 0.123 else 1.0, 0.0, 1.0),
    ("cosine switch", lambda x: math.cos(math.pi * x / 300.0) - 0.25, 0.0, 300.0),
]


@pytest.mark.parametrize("name, f, a, b", ROOT_CASES, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("xtol", [2e-12, 1e-6])
def test_brentq_matches_scipy(name: str, f: Callable[[float], float], a: float, b: float, xtol: float) -> None:
    ours = brentq(f, a, b, xtol=xtol)
    ref = float(optimize.brentq(f, a, b, xtol=xtol))
    assert a <= ours <= b
    assert abs(ours - ref) <= 2 * (xtol + 4 * np.finfo(float).eps * abs(ref)), (ours, ref)


def test_brentq_needs_a_sign_change() -> None:
    with pytest.raises(ValueError, match="different signs"):
        brentq(lambda x: x * x + 1, -1.0, 1.0)


def test_the_cli_does_not_import_scipy() -> None:
    """The point of warmcheck._brent: a run that fits a cosine never pays for importing scipy.optimize."""
    code = ("import sys, numpy as np; from warmcheck.shapes import fit_cosine_arc; from warmcheck import sparse; "
            "t = np.arange(0.0, 300.0); fit_cosine_arc(t, 1 + np.cos(np.pi * (t + 20) / 700)); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
