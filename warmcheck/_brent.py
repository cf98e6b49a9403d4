"""Brent's two scalar methods: a bounded minimiser and a bracketing root finder (pure Python).

Why not ``scipy.optimize``: importing it costs 0.3-0.45 s (it pulls in scipy.linalg, scipy.sparse and
the linear-programming solvers), more than a warm ``warmcheck analyze`` of a 10k-run tree spends in
all. A CI gate where one run changed re-analyses that run, and its cosine fit needs one bounded
minimisation and the sparse-logging estimate one root: the import alone broke the "well under a second
beyond listing" budget (issue 12). Both algorithms are the textbook ones, written from R. P. Brent,
*Algorithms for Minimization without Derivatives* (1973), ch. 4 (``zero``) and ch. 5 (``localmin``), in
the form of Forsythe, Malcolm & Moler's ``fmin`` / ``zeroin`` (1977) that ``scipy.optimize.fminbound`` and
``scipy.optimize.brentq`` also implement, with the same tolerances and stopping rules: the tests compare
both with scipy's on a set of functions (``tests/test_brent.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

_GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))  # the golden-section fraction, 0.381966...
_SQRT_EPS = math.sqrt(2.2e-16)
_EPS = 2.220446049250313e-16


def minimize_bounded(f: Callable[[float], float], lo: float, hi: float, xatol: float = 1e-5,
                     maxfun: int = 500) -> tuple[float, float]:
    """``(x, f(x))`` at a local minimum of ``f`` on ``[lo, hi]`` (Brent's ``localmin``): golden-section
    steps, parabolic steps where the last three points allow, and never a step shorter than the
    tolerance ``sqrt(eps) |x| + xatol / 3``. At most ``maxfun`` evaluations."""
    a, b = float(lo), float(hi)
    if not a < b:
        raise ValueError(f"bounds must be increasing, got ({lo}, {hi})")
    # x: the best point so far; w: the second best; v: the previous w
    x = w = v = a + _GOLDEN * (b - a)
    fx = fw = fv = float(f(x))
    calls = 1
    d = e = 0.0  # the last step and the one before it
    mid = 0.5 * (a + b)
    tol1 = _SQRT_EPS * abs(x) + xatol / 3.0
    tol2 = 2.0 * tol1
    while abs(x - mid) > tol2 - 0.5 * (b - a) and calls < maxfun:
        take_golden = True
        if abs(e) > tol1:  # try a parabola through x, w, v
            r = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            before_last, e = e, d
            # accept it only inside the bracket and shorter than half the step before last
            if abs(p) < abs(0.5 * q * before_last) and q * (a - x) < p < q * (b - x):
                d = p / q
                take_golden = False
                u = x + d
                if u - a < tol2 or b - u < tol2:  # too near an end: step by tol1 towards the middle
                    d = math.copysign(tol1, mid - x) if mid != x else tol1
        if take_golden:
            e = (a - x) if x >= mid else (b - x)
            d = _GOLDEN * e
        step = max(abs(d), tol1)
        u = x + (math.copysign(step, d) if d != 0.0 else step)
        fu = float(f(u))
        calls += 1
        if fu <= fx:  # u is the new best: the bracket shrinks to its side of x
            if u >= x:
                a = x
            else:
                b = x
            v, fv, w, fw, x, fx = w, fw, x, fx, u, fu
        else:
            if u < x:
                a = u
            else:
                b = u
            if fu <= fw or w == x:
                v, fv, w, fw = w, fw, u, fu
            elif fu <= fv or v == x or v == w:
                v, fv = u, fu
        mid = 0.5 * (a + b)
        tol1 = _SQRT_EPS * abs(x) + xatol / 3.0
        tol2 = 2.0 * tol1
    return x, fx


def brentq(f: Callable[[float], float], a: float, b: float, xtol: float = 2e-12,
           rtol: float = 4 * _EPS, maxiter: int = 100) -> float:
    """A root of ``f`` in ``[a, b]``, where ``f(a)`` and ``f(b)`` differ in sign (Brent's ``zero``):
    inverse quadratic interpolation or secant steps while they shrink the bracket fast enough, else
    bisection; stops when the bracket is narrower than ``xtol + rtol |x|``. ValueError when ``f(a)``
    and ``f(b)`` have the same sign."""
    xpre, xcur = float(a), float(b)
    fpre, fcur = float(f(xpre)), float(f(xcur))
    if fpre * fcur > 0.0:
        raise ValueError("f(a) and f(b) must have different signs")
    if fpre == 0.0:
        return xpre
    if fcur == 0.0:
        return xcur
    xblk = fblk = spre = scur = 0.0
    for _ in range(maxiter):
        if fpre != 0.0 and fcur != 0.0 and math.copysign(1.0, fpre) != math.copysign(1.0, fcur):
            xblk, fblk = xpre, fpre  # the root is between xcur and xblk
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):  # make xcur the better end
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = 0.5 * (xtol + rtol * abs(xcur))
        sbis = 0.5 * (xblk - xcur)
        if fcur == 0.0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:  # secant
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:  # inverse quadratic interpolation
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2.0 * abs(stry) < min(abs(spre), 3.0 * abs(sbis) - delta):
                spre, scur = scur, stry  # a good short step
            else:
                spre = scur = sbis
        else:
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        xcur += scur if abs(scur) > delta else math.copysign(delta, sbis)
        fcur = float(f(xcur))
    return xcur
