"""Closed-form shape fits for learning-rate segments (numpy and :mod:`warmcheck._brent`, no IO).

Each fit returns a :class:`Fit`: the shape's name, a callable model over steps and the residual as
RMS error relative to the segment's value range (0 = exact; a float32-rounded closed form scores
about 1e-7). Warmup ramps are compared against linear, cosine, log (DeepSpeed) and exponential
forms; decays against constant, linear, cosine, inverse-sqrt and exponential. Which one wins is the
smallest residual, with ties (within ``TIE``) going to the simpler shape, listed first.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from ._brent import minimize_bounded

Arr = NDArray[np.float64]
TIE = 1e-4
FREE_FIT = 1e-3  # a ramp shape with a searched parameter is believed only this close (and 10x closer than the rest)
ARC_TRIGGER = 2e-3  # a cosine pinned at the peak fits worse than this: try the free-phase arc (costlier)


@dataclass(frozen=True, slots=True)
class Fit:
    """A fitted shape: ``model(x)`` evaluates it at (relative) steps ``x``."""

    shape: str
    residual: float
    model: Callable[[Arr], Arr]
    end: float | None = None  # where a ramp tops out, when the shape says


F = TypeVar("F", bound=Callable[..., Any])
_HUGE = 1e100  # above this, values are scaled before fitting: squares of 1e308 overflow float64


def scaled(fit: F) -> F:
    """Fit ``y / 2**e`` when ``|y|`` is astronomically large, and scale the result back.

    An LR or loss logged near 1e308 is a real (if broken) input: its squares overflow and every fit
    comes back NaN. Scaling by a power of two is exact; residuals are relative, so unchanged. Fits
    that call one another scale once: the inner call sees values <= 1.
    """
    @functools.wraps(fit)
    def wrapper(x: Arr, y: Arr, *args: Any, **kwargs: Any) -> Any:
        top = float(np.maximum.reduce(np.abs(y), initial=0.0)) if y.shape[0] else 0.0  # np.max, minus its wrappers
        if not top > _HUGE or not np.isfinite(top):
            return fit(x, y, *args, **kwargs)
        e = math.ceil(math.log2(top))  # 2**e itself may not be a float64 (2**1024): use ldexp both ways
        out = fit(x, np.ldexp(y, -e), *args, **kwargs)
        if isinstance(out, Fit):
            inner = out.model
            return Fit(out.shape, out.residual, lambda t: np.ldexp(inner(t), e), end=out.end)
        return tuple(math.ldexp(float(c), e) for c in out)  # line coefficients (intercept, slope)
    return cast(F, wrapper)


def _residual(y: Arr, pred: Arr) -> float:
    # np.ptp, np.max and np.mean spelled as the reductions they run (the same sums; ~10 us less a fit)
    span = float(np.maximum.reduce(y) - np.minimum.reduce(y)) or float(np.maximum.reduce(np.abs(y))) or 1.0
    r = y - pred
    if r.dtype != np.float64 or r.ndim != 1:
        return float(np.sqrt(np.mean(r**2)) / span)
    return float(np.sqrt(np.add.reduce(r * r) / r.shape[0]) / span)


def _line(c: Arr, y: Arr) -> Arr:
    """``[a, b]`` of the least-squares ``y = a + b c``: :func:`_lstsq` of ``[1, c]``, without the ones."""
    n = c.shape[0]
    cm, ym = float(np.add.reduce(c)) / n, float(np.add.reduce(y)) / n
    dc = c - cm
    var = float(dc @ dc)
    b = float(dc @ (y - ym)) / var if var > 0 else 0.0
    return np.array([ym - b * cm, b])


def _lstsq(basis: list[Arr], y: Arr) -> Arr:
    """Least squares for a handful of columns. Shape fits call this thousands of times on small
    arrays, where ``np.linalg.lstsq``'s overhead dominates: two columns are solved in closed form,
    more through the normal equations (well conditioned here: the columns are O(1))."""
    if len(basis) == 2:
        return _line(basis[1], y)
    a = np.column_stack(basis)
    try:
        return np.linalg.solve(a.T @ a, a.T @ y)
    except np.linalg.LinAlgError:
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        return np.asarray(coef, dtype=np.float64)


@scaled
def fit_linear(x: Arr, y: Arr) -> Fit:
    """``a + b x``."""
    a, b = _line(x, y)
    model = lambda t: a + b * t  # noqa: E731
    return Fit("linear", _residual(y, model(x)), model)


@scaled
def line_coefficients(x: Arr, y: Arr) -> tuple[float, float]:
    """Intercept and slope of the least-squares line."""
    a, b = _line(x, y)
    return float(a), float(b)


@scaled
def fit_cosine_ramp(x: Arr, y: Arr, open_end: bool = False) -> Fit:
    """Half-cosine rise ``a - b cos(pi (x - x0) / L)`` (OneCycle, WSD cosine warmup).

    ``L`` is the span of the points, or, with ``open_end`` (the top was not logged), searched.
    ``Fit.end`` is where the rise tops out.
    """
    x0, span = float(x[0]), float(x[-1] - x[0]) or 1.0
    length = span
    if open_end:
        length = search_length(lambda L: np.cos(np.pi * np.clip(x[None, :] - x0, 0, L[:, None]) / L[:, None]), y,
                               span, span * 4.0)
    # solve(length)'s coefficients (its error is not needed), and the model at x from the same column
    col = np.cos(np.pi * _clip(x - x0, 0, length) / length)
    a, b = _lstsq([np.ones_like(x), col], y)
    model = lambda t: a + b * np.cos(np.pi * np.clip(t - x0, 0, length) / length)  # noqa: E731
    return Fit("cosine", _residual(y, a + b * col), model, end=x0 + length)


@scaled
def fit_log_ramp(x: Arr, y: Arr) -> Fit:
    """DeepSpeed's default warmup: ``a + b ln(max(x - x0, 1))`` (two updates at the minimum)."""
    x0 = float(x[0])
    col = np.log(np.maximum(x - x0, 1.0))
    a, b = _line(col, y)
    model = lambda t: a + b * np.log(np.maximum(t - x0, 1.0))  # noqa: E731
    return Fit("log", _residual(y, a + b * col), model)  # model(x), from the column already computed


@scaled
def fit_exponential(x: Arr, y: Arr, shape: str = "exponential") -> Fit:
    """``exp(a + b x)`` on the positive points."""
    pos = y > 0
    if pos.sum() < 2:
        return Fit(shape, np.inf, lambda t: np.full_like(t, np.nan))
    a, b = _line(x[pos], np.log(y[pos]))
    model = lambda t: np.exp(a + b * t)  # noqa: E731
    return Fit(shape, _residual(y, model(x)), model)


@scaled
def best_ramp(x: Arr, y: Arr, open_end: bool = False) -> Fit:
    """The warmup shape that fits ``(x, y)`` best (linear preferred on ties).

    ``open_end``: the points stop short of the top (sparse logging), so a cosine rise's length is free.
    """
    if x.shape[0] < 3:
        return fit_linear(x, y) if x.shape[0] == 2 else Fit("linear", 0.0, lambda t: np.full_like(t, y[0]))
    x, y = thin(x, y)
    linear = fit_linear(x, y)
    if linear.residual <= TIE:  # _pick takes the first fit within TIE of the best (>= 0): the line, and returns it
        return linear
    fits = [linear, fit_cosine_ramp(x, y, open_end), fit_log_ramp(x, y), fit_exponential(x, y)]
    best = _pick(fits)
    if best.residual > TIE:  # freer shapes (a searched time constant, a free start): only when far better
        extra = [fit_saturating(x, y)]
        if open_end and x.shape[0] >= 6:  # four free parameters: a fit needs more points
            extra.append(fit_cosine_rise(x, y))
        good = [f for f in extra if f.residual <= min(FREE_FIT, 0.1 * best.residual)]
        if good:
            return min(good, key=lambda f: f.residual)
    return best


@scaled
def fit_cosine_arc(x: Arr, y: Arr, after: bool = False) -> Fit:
    """A cosine decay whose start and horizon are both free: ``m + A cos(w (t - t0))``, ``w = pi / L``.

    For a fixed frequency the model is linear (``a + b cos(w t) + c sin(w t)``), so only ``w`` is
    searched: a coarse log-spaced grid, then a bounded refinement around the best. Unclipped, so it
    can be extrapolated back before the first point (a decay seen only after a gap); ``Fit.end`` is
    the crest that precedes the data (``after``: the first crest at or after the last point).
    """
    span = float(x[-1] - x[0]) or 1.0
    xc = x - x[0]

    n = float(xc.shape[0])
    sy = float(y.sum())

    def solve(w: float) -> tuple[float, Arr]:
        # Normal equations of y = a + b cos(w x) + c sin(w x), written out: this runs ~30 times per fit.
        cos, sin = np.cos(w * xc), np.sin(w * xc)
        sc, ss = float(cos.sum()), float(sin.sum())
        m = np.array([[n, sc, ss], [sc, float(cos @ cos), float(cos @ sin)], [ss, float(cos @ sin), float(sin @ sin)]])
        rhs = np.array([sy, float(cos @ y), float(sin @ y)])
        try:
            coef = np.linalg.solve(m, rhs)
        except np.linalg.LinAlgError:
            return float("inf"), np.zeros(3)
        r = y - coef[0] - coef[1] * cos - coef[2] * sin
        return float(r @ r), coef

    grid = np.pi / (span * np.geomspace(0.3, 12.0, 12))
    errors = [solve(float(w))[0] for w in grid]
    i = int(np.argmin(errors))
    lo, hi = grid[min(i + 1, grid.shape[0] - 1)], grid[max(i - 1, 0)]
    best, best_err = minimize_bounded(lambda w: solve(w)[0], float(lo), float(hi), xatol=1e-7 * float(hi))
    w = best if best_err <= errors[i] else float(grid[i])
    _, (a, b, c) = solve(w)
    amp, phase = float(np.hypot(b, c)), float(np.arctan2(c, b))
    crest = phase / w  # cos(w (t - crest)) peaks here, in the shifted coordinates
    crest -= (2 * np.pi / w) * np.ceil((crest - 0.0) / (2 * np.pi / w))  # the crest at or before the data
    if after:
        crest += (2 * np.pi / w) * np.ceil((float(xc[-1]) - crest) / (2 * np.pi / w))  # the first at or after
    t0 = float(x[0]) + crest
    model = lambda t: a + amp * np.cos(w * (t - t0))  # noqa: E731
    return Fit("cosine", _residual(y, model(x)), model, end=t0)


@scaled
def fit_cosine_rise(x: Arr, y: Arr) -> Fit:
    """A rising cosine with free start and length (a OneCycle rise logged from a later step); the
    crest after the points is where it tops out (``Fit.end``), and the model holds that level after."""
    arc = fit_cosine_arc(x, y, after=True)
    end = float(arc.end) if arc.end is not None else float(x[-1])
    top = float(arc.model(np.array([end]))[0])
    model = lambda t: np.where(t < end, arc.model(t), top)  # noqa: E731
    return Fit("cosine", arc.residual, model, end=end)


@scaled
def fit_saturating(x: Arr, y: Arr) -> Fit:
    """A saturating exponential rise ``a - b exp(-(x - x0) / tau)``, ``tau`` searched (named "exponential")."""
    x0, span = float(x[0]), float(x[-1] - x[0]) or 1.0
    tau = search_length(lambda L: np.exp(-(x[None, :] - x0) / L[:, None]), y, span / 50.0, span * 20.0)
    a, b = _line(np.exp(-(x - x0) / tau), y)
    if b >= 0:  # not a rise
        return Fit("exponential", np.inf, lambda t: np.full_like(t, np.nan))
    model = lambda t: a + b * np.exp(-(t - x0) / tau)  # noqa: E731
    return Fit("exponential", _residual(y, model(x)), model)


@scaled
def extrapolating_decay(x: Arr, y: Arr) -> Fit:
    """The decay model that best explains ``(x, y)`` and can be extrapolated back before ``x[0]``."""
    top = float(np.max(np.abs(y))) or 1.0
    if float(np.ptp(y)) <= 1e-6 * top or x.shape[0] < 3:
        level = float(y[0])
        return Fit("constant", 0.0, lambda t: np.full_like(t, level))
    return _pick([fit_linear(x, y), fit_cosine_arc(x, y), fit_inverse_sqrt(x, y), fit_exponential(x, y)])


_GRID_STEPS: dict[int, Arr] = {}
_um = getattr(np, "_core", None) or np.core  # numpy 2 / 1: the ufunc np.clip calls, without its wrappers
_clip = _um.umath.clip


def geomspace(lo: float, hi: float, points: int) -> Arr:
    """``np.geomspace(lo, hi, points)``, bit for bit, at a tenth of its cost (~3 us, called ~10 times a fit).

    The same operations as numpy's (``linspace`` of the ``log10`` ends, ``10 **`` those, the ends set
    exactly) for two positive finite floats; anything else goes to numpy.
    """
    if not (0.0 < lo < math.inf and 0.0 < hi < math.inf) or points < 2:
        return np.geomspace(lo, hi, points)
    steps = _GRID_STEPS.get(points)
    if steps is None:
        steps = _GRID_STEPS[points] = np.arange(0, points, dtype=np.float64)
    ls, hs = np.log10(lo), np.log10(hi)
    delta = hs - ls
    step = delta / (points - 1)
    if step == 0:  # numpy's path for denormal steps
        g = steps / (points - 1)
        g *= delta
    else:
        g = steps * step
    g += ls
    g[-1] = hs
    out = np.power(10.0, g)
    out[0], out[-1] = lo, hi
    return out


_ROUNDS: dict[tuple[Any, ...], tuple[Arr, Arr]] = {}
_ROUNDS_MAX = 64  # entries of 32 x <=256 floats (64 KB): 4 MB at most


def _centred(c: Arr) -> tuple[Arr, Arr]:
    """``c`` with each row less its mean (in place), and the rows' squared norms."""
    c -= (np.add.reduce(c, axis=1) / c.shape[1])[:, None]  # what c.mean(axis=1) computes
    return c, np.einsum("ij,ij->i", c, c)


def _round_columns(columns: Callable[[Arr], Arr], grid: Arr, key: tuple[Any, ...]) -> tuple[Arr, Arr]:
    """A round's centred columns and their squared norms. They depend on the steps and the round's
    grid alone (not on ``y``), so runs logged at the same steps share the first round's, and runs whose
    search took the same path (a sweep of one schedule: seeds, peak LRs) share every round's.
    Read-only arrays; a bounded cache."""
    got = _ROUNDS.get(key)
    if got is None:
        c, var = _centred(columns(grid))
        c.flags.writeable = False
        var.flags.writeable = False
        if len(_ROUNDS) >= _ROUNDS_MAX:
            _ROUNDS.clear()
        got = _ROUNDS[key] = (c, var)
    return got


def search_length(columns: Callable[[Arr], Arr], y: Arr, lo: float, hi: float, points: int = 32,
                  rounds: int = 4, key: tuple[Any, ...] | None = None) -> float:
    """The parameter in ``[lo, hi]`` minimising the error of ``y = a + b c(param)``.

    ``columns(params)`` gives ``c`` for many parameters at once (one row each; a new array, which this
    overwrites), so a round costs a few array operations: a log-spaced grid, narrowed around the best
    point round after round (4 rounds of 32: relative precision ~1e-6). Replaces a scalar optimiser's
    30 Python-level calls. Each row's error is ``|yd - b dc|^2`` (``dc``: the row less its mean, ``yd``
    likewise, ``b = dc.yd / dc.dc``), computed in place.

    ``key``: names ``columns`` completely (the family and every step it is evaluated at): a round's
    columns, which depend on nothing else but its grid (``lo``, ``hi``, ``points``), are then computed
    once per key and grid (:func:`_round_columns`).
    """
    grid = geomspace(lo, hi, points)
    best = float(grid[0])
    ym = float(y.mean())
    yd = y - ym
    last = grid.shape[0] - 1
    for _ in range(rounds):
        if key is not None:
            c, var = _round_columns(columns, grid, (key, lo, hi, points))
            b = np.divide(c @ yd, var, out=np.zeros_like(var), where=var > 0)
            c = c * b[:, None]  # a new array: the cached one stays as it is
        else:
            c, var = _centred(columns(grid))
            b = np.divide(c @ yd, var, out=np.zeros_like(var), where=var > 0)
            c *= b[:, None]
        np.subtract(yd, c, out=c)  # the residuals, yd - b dc
        i = int(np.einsum("ij,ij->i", c, c).argmin())
        best = float(grid[i])
        lo, hi = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, last)])
        grid = geomspace(lo, hi, points)
    return best


@scaled
def fit_cosine_decay(x: Arr, y: Arr) -> Fit:
    """``m + A (1 + cos(pi (x - x0) / L)) / 2`` with the horizon ``L`` searched, ``m`` and ``A`` solved."""
    x0 = float(x[0])
    span = float(x[-1] - x0) or 1.0
    xr = x - x0

    def columns(L: Arr) -> Arr:  # 0.5 * (1 + cos(pi * clip((x - x0) / L, 0, 1))), one row per L, in place
        q = xr[None, :] / L[:, None]
        _clip(q, 0.0, 1.0, out=q)
        q *= np.pi
        np.cos(q, out=q)
        q += 1.0
        q *= 0.5
        return q

    key = ("cosine_decay", x.dtype.str, x.shape, x.tobytes())  # columns() depends on x alone
    length = search_length(columns, y, span * 0.98, span * 4.0, key=key)
    # solve(length)'s coefficients (its error is not needed), and model(x), from one cosine
    cos = np.cos(np.pi * _clip((x - x0) / length, 0.0, 1.0))
    m, amp = _line(0.5 * (1.0 + cos), y)
    model = lambda t: m + amp * 0.5 * (1.0 + np.cos(np.pi * np.clip((t - x0) / length, 0.0, 1.0)))  # noqa: E731
    return Fit("cosine", _residual(y, m + amp * 0.5 * (1.0 + cos)), model)


@scaled
def fit_inverse_sqrt(x: Arr, y: Arr) -> Fit:
    """``1 / sqrt(a + b x)`` (fairseq, HF inverse_sqrt after warmup)."""
    if (y <= 0).any():
        return Fit("inverse-sqrt", np.inf, lambda t: np.full_like(t, np.nan))
    a, b = _line(x, 1.0 / y**2)
    if b <= 0:
        return Fit("inverse-sqrt", np.inf, lambda t: np.full_like(t, np.nan))
    model = lambda t: 1.0 / np.sqrt(np.maximum(a + b * t, 1e-300))  # noqa: E731
    return Fit("inverse-sqrt", _residual(y, model(x)), model)


@scaled
def best_decay(x: Arr, y: Arr) -> Fit:
    """The decay shape that fits ``(x, y)`` best (constant, linear, cosine, inverse-sqrt, exponential)."""
    top = float(np.maximum.reduce(np.abs(y))) or 1.0  # np.max and np.ptp, without their wrappers
    if float(np.maximum.reduce(y) - np.minimum.reduce(y)) <= 1e-6 * top:
        return Fit("constant", 0.0, lambda t: np.full_like(t, y[0]))
    if x.shape[0] < 3:
        return fit_linear(x, y)
    x, y = thin(x, y)
    linear = fit_linear(x, y)
    if linear.residual <= TIE:  # nothing can beat an exact line by more than TIE: skip the costly fits
        return linear
    fits = [linear, fit_cosine_decay(x, y), fit_inverse_sqrt(x, y), fit_exponential(x, y)]
    best = _pick(fits)
    if best.shape == "cosine" and best.residual > ARC_TRIGGER:  # a cosine already under way at the peak
        arc = fit_cosine_arc(x, y)
        best = arc if arc.residual < best.residual else best
    if best.residual > TIE and x.shape[0] >= 6:  # a power with a free exponent: only when far better
        poly = fit_polynomial_decay(x, y, best.residual)
        if poly.residual <= min(FREE_FIT, 0.1 * best.residual):
            return poly
    return best


@scaled
def fit_polynomial_decay(x: Arr, y: Arr, beat: float = np.inf) -> Fit:
    """``end + A (1 - (x - x0) / L)^p`` (HF ``polynomial``, power ``p`` > 1): ``p`` and ``L`` searched.

    A coarse pass over a few powers first; the search is refined only if one of them already comes
    within a third of ``beat`` (the residual to beat), so noisy series that no power explains stay cheap.
    """
    x0, span = float(x[0]), float(x[-1] - x[0]) or 1.0
    scale = float(np.maximum.reduce(y) - np.minimum.reduce(y)) or 1.0  # np.ptp
    if 0.0 < beat < np.inf and x.shape[0] >= 3 and _far_from_convex(x, y, math.sqrt(x.shape[0]) * scale * beat / 3):
        return Fit("polynomial", np.inf, lambda t: np.full_like(t, np.nan))  # what the coarse pass would find

    def sse(p: float, rounds: int = 3) -> tuple[float, float, Arr]:
        cols = lambda L: np.clip(1.0 - (x[None, :] - x0) / L[:, None], 0.0, None) ** p  # noqa: E731
        length = search_length(cols, y, span * 0.98, span * 4.0, rounds=rounds)
        basis = [np.ones_like(x), np.clip(1.0 - (x - x0) / length, 0.0, None) ** p]
        coef = _lstsq(basis, y)
        return float(np.sum((y - basis[0] * coef[0] - basis[1] * coef[1]) ** 2)), length, coef

    def rel(err: float) -> float:
        return float(np.sqrt(err / x.shape[0])) / scale

    coarse = [1.5, 2.0, 3.0, 5.0]
    errors = [sse(p, rounds=2)[0] for p in coarse]
    i = int(np.argmin(errors))
    if rel(errors[i]) > beat / 3:
        return Fit("polynomial", np.inf, lambda t: np.full_like(t, np.nan))
    lo, hi = coarse[max(i - 1, 0)] * 0.9, coarse[min(i + 1, len(coarse) - 1)] * 1.1
    p, _ = minimize_bounded(lambda q: sse(q)[0], lo, hi, xatol=1e-4)
    _, length, (a, b) = sse(p)
    if b <= 0:
        return Fit("polynomial", np.inf, lambda t: np.full_like(t, np.nan))
    model = lambda t: a + b * np.clip(1.0 - (t - x0) / length, 0.0, None) ** p  # noqa: E731
    return Fit("polynomial", _residual(y, model(x)), model)


_BUMP_WINDOWS = np.array([(0.0, 1.0), (0.0, 0.5), (0.5, 1.0), (0.0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1.0)])
_EPS = float(np.finfo(np.float64).eps)


def _far_from_convex(x: Arr, y: Arr, level: float) -> bool:
    """True only if every ``a + b g`` with ``g`` convex on ``x`` (so every power ``p >= 1`` decay of
    :func:`fit_polynomial_decay`'s coarse pass, whatever its horizon and sign of ``b``) leaves residuals
    of L2 norm above ``level``, as that pass computes them: then it gives up, and need not run.

    The proof is a dual certificate. A sequence ``z`` on increasing ``x`` is convex iff its second
    divided differences ``D_j(z)`` are all >= 0, so for any weights ``alpha >= 0`` the vector
    ``w = -D^T alpha`` has ``w . z <= 0`` for every convex ``z``, and ``|y - z| >= (w . y) / |w|``
    (Cauchy-Schwarz). ``b < 0`` makes ``a + b g`` concave: ``-w`` bounds the distance to those. The
    weights are smooth bumps over a few windows (a cosine decay is concave, then convex); the best
    bump of each sign counts. Every rounding (of ``w``, of the dot products, of the pass's own columns,
    coefficients and sums, all bounded through ``|b| <= 4.1 |y - mean y|``: a coarse column spans at
    least 0.35 between the first and last point) is charged against the bound, and ``level`` must be
    beaten by 1%. ``False`` (run the pass) whenever an input is not plain finite float64 on strictly
    increasing ``x``.
    """
    return math.isfinite(level) and _convexity_bound(x, y) > 1.01 * level


def _convexity_bound(x: Arr, y: Arr) -> float:
    """A lower bound on the L2 distance from ``y`` to every ``a + b g``, ``g`` convex on ``x``, as
    :func:`_far_from_convex` explains (``-inf`` when declined)."""
    n = x.shape[0]
    if n < 3 or x.dtype != np.float64 or y.dtype != np.float64 or x.ndim != 1 or y.shape != x.shape:
        return -math.inf
    key = x.tobytes()
    if key in _WEIGHTS:
        weights = _WEIGHTS[key]
    else:
        weights = _bump_weights(x)
        if len(_WEIGHTS) >= 64:
            _WEIGHTS.clear()
        _WEIGHTS[key] = weights
    ysum = float(np.add.reduce(y))
    if weights is None or not math.isfinite(ysum):  # finite values (see _bump_weights)
        return -math.inf
    w, size, norm = weights
    yd = y - ysum / n
    yd_norm = math.sqrt(float(yd @ yd))
    top = float(np.maximum.reduce(np.abs(y)))
    zmax = top + 9.0 * yd_norm  # |a + b g| of any coarse-pass fit: |b| <= 4.1 |y - mean|, 0 <= g <= 1
    wy = w @ y
    # rounding: of w's entries (< 16 eps of the terms summed), of w . y and of w . z (n eps of sum |w| |.|)
    err = (2.0 * n * _EPS * top + 16.0 * _EPS * zmax + 2.0 * n * _EPS * zmax) * size
    convex = float(np.maximum.reduce((wy - err) / norm))  # |y - z| >= this for every convex z
    concave = float(np.maximum.reduce((-wy - err) / norm))
    if not (math.isfinite(convex) and math.isfinite(concave)):  # an overflow (or NaN) somewhere: decline
        return -math.inf
    slack = 1e-12 * math.sqrt(n) * (top + zmax)  # the pass's own column, coefficient and sum roundings
    bound = (min(convex, concave) - slack) * (1.0 - 1e-6)
    return bound if math.isfinite(bound) else -math.inf


_WEIGHTS: dict[bytes, tuple[Arr, Arr, Arr] | None] = {}  # x.tobytes() -> _bump_weights(x): runs share steps


def _bump_weights(x: Arr) -> tuple[Arr, Arr, Arr] | None:
    """The part of :func:`_convexity_bound` that depends on the steps alone: the weights ``w``, the sums
    of their terms' sizes and their (inflated) norms; ``None`` (decline) unless the steps are strictly
    increasing and finite and every norm is positive. Read-only arrays (cached)."""
    n = x.shape[0]
    h = x[1:] - x[:-1]
    if not float(np.minimum.reduce(h)) > 0:  # strictly increasing steps (NaN fails too)
        return None
    inv = 1.0 / h
    # finite steps (a sum is finite only if every term is; an overflow just declines)
    if not math.isfinite(float(np.add.reduce(inv))):
        return None
    t = (x[1:-1] - x[0]) / (x[-1] - x[0])
    s = t[None, :] - _BUMP_WINDOWS[:, :1]
    s /= _BUMP_WINDOWS[:, 1:] - _BUMP_WINDOWS[:, :1]
    _clip(s, 0.0, 1.0, out=s)
    s *= 1.0 - s
    alpha = s * s  # one smooth bump per window, >= 0
    left, right = alpha * inv[:-1], alpha * inv[1:]
    w = np.zeros((alpha.shape[0], n))  # w = -D^T alpha, D_j(z) = (z[j+1]-z[j])/h[j] - (z[j]-z[j-1])/h[j-1]
    w[:, :-2] -= left
    w[:, 1:-1] += left + right
    w[:, 2:] -= right
    size = 2.0 * (np.add.reduce(left, axis=1) + np.add.reduce(right, axis=1))  # sum |terms| of each w
    norm = np.sqrt(np.einsum("ij,ij->i", w, w))
    norm *= 1.0 + 2.0 * n * _EPS
    if not float(np.minimum.reduce(norm)) > 0:
        return None
    for a in (w, size, norm):
        a.flags.writeable = False
    return w, size, norm




def thin(x: Arr, y: Arr, limit: int = 256) -> tuple[Arr, Arr]:
    """At most ``limit`` evenly spaced points (ends kept): telling shapes apart needs a few hundred."""
    n = x.shape[0]
    if n <= limit:
        return x, y
    idx = _thin_index(n, limit)
    return x[idx], y[idx]


@functools.lru_cache(maxsize=512)  # the same for every series of n points (a few hundred lengths in a tree)
def _thin_index(n: int, limit: int) -> NDArray[np.intp]:
    idx = np.unique(np.linspace(0, n - 1, limit).round().astype(int))
    idx.flags.writeable = False
    return idx


def _pick(fits: list[Fit]) -> Fit:
    best = min(f.residual for f in fits)
    for f in fits:  # the first (simplest) shape within TIE of the best
        if f.residual <= best + TIE:
            return f
    return fits[0]  # pragma: no cover
