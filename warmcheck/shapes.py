"""Closed-form shape fits for learning-rate segments (pure numpy/scipy, no IO).

Each fit returns a :class:`Fit`: the shape's name, a callable model over steps and the residual as
RMS error relative to the segment's value range (0 = exact; a float32-rounded closed form scores
about 1e-7). Warmup ramps are compared against linear, cosine, log (DeepSpeed) and exponential
forms; decays against constant, linear, cosine, inverse-sqrt and exponential. Which one wins is the
smallest residual, with ties (within ``TIE``) going to the simpler shape, listed first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar

Arr = NDArray[np.float64]
TIE = 1e-4


@dataclass(frozen=True, slots=True)
class Fit:
    """A fitted shape: ``model(x)`` evaluates it at (relative) steps ``x``."""

    shape: str
    residual: float
    model: Callable[[Arr], Arr]
    end: float | None = None  # where a ramp tops out, when the shape says


def _residual(y: Arr, pred: Arr) -> float:
    span = float(np.ptp(y)) or float(np.max(np.abs(y))) or 1.0
    return float(np.sqrt(np.mean((y - pred) ** 2)) / span)


def _lstsq(basis: list[Arr], y: Arr) -> Arr:
    coef, *_ = np.linalg.lstsq(np.column_stack(basis), y, rcond=None)
    return np.asarray(coef, dtype=np.float64)


def fit_linear(x: Arr, y: Arr) -> Fit:
    """``a + b x``."""
    a, b = _lstsq([np.ones_like(x), x], y)
    model = lambda t: a + b * t  # noqa: E731
    return Fit("linear", _residual(y, model(x)), model)


def line_coefficients(x: Arr, y: Arr) -> tuple[float, float]:
    """Intercept and slope of the least-squares line."""
    a, b = _lstsq([np.ones_like(x), x], y)
    return float(a), float(b)


def fit_cosine_ramp(x: Arr, y: Arr, open_end: bool = False) -> Fit:
    """Half-cosine rise ``a - b cos(pi (x - x0) / L)`` (OneCycle, WSD cosine warmup).

    ``L`` is the span of the points, or, with ``open_end`` (the top was not logged), searched.
    ``Fit.end`` is where the rise tops out.
    """
    x0, span = float(x[0]), float(x[-1] - x[0]) or 1.0

    def solve(length: float) -> tuple[float, Arr]:
        basis = [np.ones_like(x), np.cos(np.pi * np.clip(x - x0, 0, length) / length)]
        coef = _lstsq(basis, y)
        return float(np.mean((y - basis[0] * coef[0] - basis[1] * coef[1]) ** 2)), coef

    length = span
    if open_end:
        res = minimize_scalar(lambda L: solve(L)[0], bounds=(span, span * 4.0), method="bounded",
                              options={"xatol": 1e-6 * span})
        length = float(res.x)
    _, (a, b) = solve(length)
    model = lambda t: a + b * np.cos(np.pi * np.clip(t - x0, 0, length) / length)  # noqa: E731
    return Fit("cosine", _residual(y, model(x)), model, end=x0 + length)


def fit_log_ramp(x: Arr, y: Arr) -> Fit:
    """DeepSpeed's default warmup: ``a + b ln(max(x - x0, 1))`` (two updates at the minimum)."""
    x0 = float(x[0])
    a, b = _lstsq([np.ones_like(x), np.log(np.maximum(x - x0, 1.0))], y)
    model = lambda t: a + b * np.log(np.maximum(t - x0, 1.0))  # noqa: E731
    return Fit("log", _residual(y, model(x)), model)


def fit_exponential(x: Arr, y: Arr, shape: str = "exponential") -> Fit:
    """``exp(a + b x)`` on the positive points."""
    pos = y > 0
    if pos.sum() < 2:
        return Fit(shape, np.inf, lambda t: np.full_like(t, np.nan))
    a, b = _lstsq([np.ones_like(x[pos]), x[pos]], np.log(y[pos]))
    model = lambda t: np.exp(a + b * t)  # noqa: E731
    return Fit(shape, _residual(y, model(x)), model)


def best_ramp(x: Arr, y: Arr, open_end: bool = False) -> Fit:
    """The warmup shape that fits ``(x, y)`` best (linear preferred on ties).

    ``open_end``: the points stop short of the top (sparse logging), so a cosine rise's length is free.
    """
    if x.shape[0] < 3:
        return fit_linear(x, y) if x.shape[0] == 2 else Fit("linear", 0.0, lambda t: np.full_like(t, y[0]))
    x, y = thin(x, y)
    fits = [fit_linear(x, y), fit_cosine_ramp(x, y, open_end), fit_log_ramp(x, y), fit_exponential(x, y)]
    return _pick(fits)


def _regress(c: Arr, y: Arr) -> tuple[float, float, float]:
    """Least squares ``y = m + A c``: (m, A, sum of squared errors), in closed form."""
    cm, ym = float(c.mean()), float(y.mean())
    dc = c - cm
    var = float(dc @ dc)
    amp = float(dc @ (y - ym)) / var if var > 0 else 0.0
    m = ym - amp * cm
    r = y - m - amp * c
    return m, amp, float(r @ r)


def fit_cosine_arc(x: Arr, y: Arr) -> Fit:
    """A cosine decay whose start ``t0`` and horizon ``L`` are both free: ``m + A (1 + cos(pi (t - t0) / L)) / 2``.

    Unclipped, so it can be extrapolated back before the first point (a decay seen only after a gap).
    """
    from scipy.optimize import minimize

    span = float(x[-1] - x[0]) or 1.0
    scale = float(np.var(y)) * y.shape[0] or 1.0

    def sse(p: Arr) -> float:
        length = max(float(p[1]), 1e-9)
        return _regress(0.5 * (1.0 + np.cos(np.pi * (x - p[0]) / length)), y)[2] / scale

    best = None
    for t0 in (x[0] - 0.3 * span, float(x[0])):
        r = minimize(sse, np.array([t0, span * 1.5]), method="Nelder-Mead",
                     options={"xatol": 1e-6 * span, "fatol": 1e-15, "maxiter": 600})
        if best is None or r.fun < best.fun:
            best = r
    assert best is not None
    t0, length = float(best.x[0]), max(float(best.x[1]), 1e-9)
    m, amp, _ = _regress(0.5 * (1.0 + np.cos(np.pi * (x - t0) / length)), y)
    model = lambda t: m + amp * 0.5 * (1.0 + np.cos(np.pi * (t - t0) / length))  # noqa: E731
    return Fit("cosine", _residual(y, model(x)), model, end=t0)


def extrapolating_decay(x: Arr, y: Arr) -> Fit:
    """The decay model that best explains ``(x, y)`` and can be extrapolated back before ``x[0]``."""
    top = float(np.max(np.abs(y))) or 1.0
    if float(np.ptp(y)) <= 1e-6 * top or x.shape[0] < 3:
        level = float(y[0])
        return Fit("constant", 0.0, lambda t: np.full_like(t, level))
    return _pick([fit_linear(x, y), fit_cosine_arc(x, y), fit_inverse_sqrt(x, y), fit_exponential(x, y)])


def fit_cosine_decay(x: Arr, y: Arr) -> Fit:
    """``m + A (1 + cos(pi (x - x0) / L)) / 2`` with the horizon ``L`` searched, ``m`` and ``A`` solved."""
    x0 = float(x[0])
    span = float(x[-1] - x0) or 1.0

    def solve(length: float) -> tuple[float, Arr]:
        c = 0.5 * (1.0 + np.cos(np.pi * np.clip((x - x0) / length, 0.0, 1.0)))
        coef = _lstsq([np.ones_like(x), c], y)
        return float(np.mean((y - coef[0] - coef[1] * c) ** 2)), coef

    res = minimize_scalar(lambda L: solve(L)[0], bounds=(span * 0.98, span * 4.0), method="bounded",
                          options={"xatol": 1e-6 * span})
    length = float(res.x)
    _, (m, amp) = solve(length)
    model = lambda t: m + amp * 0.5 * (1.0 + np.cos(np.pi * np.clip((t - x0) / length, 0.0, 1.0)))  # noqa: E731
    return Fit("cosine", _residual(y, model(x)), model)


def fit_inverse_sqrt(x: Arr, y: Arr) -> Fit:
    """``1 / sqrt(a + b x)`` (fairseq, HF inverse_sqrt after warmup)."""
    if np.any(y <= 0):
        return Fit("inverse-sqrt", np.inf, lambda t: np.full_like(t, np.nan))
    a, b = _lstsq([np.ones_like(x), x], 1.0 / y**2)
    if b <= 0:
        return Fit("inverse-sqrt", np.inf, lambda t: np.full_like(t, np.nan))
    model = lambda t: 1.0 / np.sqrt(np.maximum(a + b * t, 1e-300))  # noqa: E731
    return Fit("inverse-sqrt", _residual(y, model(x)), model)


def best_decay(x: Arr, y: Arr) -> Fit:
    """The decay shape that fits ``(x, y)`` best (constant, linear, cosine, inverse-sqrt, exponential)."""
    top = float(np.max(np.abs(y))) or 1.0
    if float(np.ptp(y)) <= 1e-6 * top:
        return Fit("constant", 0.0, lambda t: np.full_like(t, y[0]))
    if x.shape[0] < 3:
        return fit_linear(x, y)
    x, y = thin(x, y)
    fits = [fit_linear(x, y), fit_cosine_decay(x, y), fit_inverse_sqrt(x, y), fit_exponential(x, y)]
    best = _pick(fits)
    if best.shape == "cosine" and best.residual > TIE:  # a cosine already under way at the peak
        arc = fit_cosine_arc(x, y)
        return arc if arc.residual < best.residual else best
    return best


def thin(x: Arr, y: Arr, limit: int = 2000) -> tuple[Arr, Arr]:
    """At most ``limit`` evenly spaced points (ends kept): shapes do not need 200,000 of them."""
    if x.shape[0] <= limit:
        return x, y
    idx = np.unique(np.linspace(0, x.shape[0] - 1, limit).round().astype(int))
    return x[idx], y[idx]


def _pick(fits: list[Fit]) -> Fit:
    best = min(f.residual for f in fits)
    for f in fits:  # the first (simplest) shape within TIE of the best
        if f.residual <= best + TIE:
            return f
    return fits[0]  # pragma: no cover
