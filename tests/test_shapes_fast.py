"""The fast paths of warmcheck/shapes.py against the straightforward fits (tests/shapes_reference.py):
the same shape, residual, model values and end, bit for bit, on random and synthetic series; and the
polynomial pass's shortcut (``_far_from_convex``) checked as a bound on its own."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapes_reference as ref

from warmcheck import shapes

Arr = np.ndarray


def _series(rng: np.random.Generator, kind: int) -> tuple[Arr, Arr]:
    """Decay-like, rise-like and irregular series on sorted (sometimes gappy, offset) steps."""
    n = int(rng.integers(3, 400))
    gap = int(rng.integers(1, 5))
    x = np.sort(rng.choice(np.arange(n * gap + 5), n, replace=False)).astype(float) + float(rng.integers(0, 10**5))
    t = (x - x[0]) / (x[-1] - x[0])
    peak = float(10 ** rng.uniform(-6, 0))
    if kind == 0:  # cosine to a floor, horizon and start a little off the points (bench case c's shape)
        u = np.clip(t * (1 + rng.uniform(-0.1, 0.5)) - rng.uniform(0, 0.05), 0, 1)
        y = peak * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * u)))
    elif kind == 1:  # a polynomial decay
        y = peak * (1 - t * rng.uniform(0.3, 1.0)) ** rng.uniform(1.0, 4.0) + peak * rng.uniform(0, 0.1)
    elif kind == 2:
        y = peak * np.exp(-t * rng.uniform(0.1, 5))
    elif kind == 3:  # noise around a level
        y = peak * (1 + rng.normal(0, 0.1, n))
    elif kind == 4:
        y = peak / np.sqrt(1 + t * rng.uniform(1, 100))
    elif kind == 5:  # a random walk
        y = peak * np.cumsum(rng.normal(0, 1, n))
    elif kind == 6:  # rises: linear, cosine, saturating
        y = peak * [t, 0.5 - 0.5 * np.cos(np.pi * t * rng.uniform(0.3, 1)), 1 - np.exp(-5 * t)][int(rng.integers(3))]
    else:  # a cosine with a little noise
        y = peak * (0.5 + 0.5 * np.cos(np.pi * t)) * (1 + rng.normal(0, 10 ** rng.uniform(-7, -2), n))
    if rng.random() < 0.5:
        y = y.astype(np.float32).astype(np.float64)  # as most logs store it
    return x, y


def _same(a: ref.Fit, b: shapes.Fit, x: Arr) -> bool:
    probe = np.concatenate([x, np.linspace(x[0] - 50, x[-1] + 50, 41)])
    return (a.shape == b.shape and np.array_equal(np.float64(a.residual), np.float64(b.residual), equal_nan=True)
            and np.array_equal(a.model(probe), b.model(probe), equal_nan=True)
            and np.array_equal(np.float64(np.nan if a.end is None else a.end),
                               np.float64(np.nan if b.end is None else b.end), equal_nan=True))


FITS = [
    ("best_decay", ref.best_decay, shapes.best_decay),
    ("fit_cosine_decay", ref.fit_cosine_decay, shapes.fit_cosine_decay),
    ("best_ramp", ref.best_ramp, shapes.best_ramp),
    ("best_ramp open", lambda x, y: ref.best_ramp(x, y, True), lambda x, y: shapes.best_ramp(x, y, True)),
    ("fit_cosine_ramp open", lambda x, y: ref.fit_cosine_ramp(x, y, True),
     lambda x, y: shapes.fit_cosine_ramp(x, y, True)),
    ("fit_saturating", ref.fit_saturating, shapes.fit_saturating),
    ("extrapolating_decay", ref.extrapolating_decay, shapes.extrapolating_decay),
    ("fit_linear", ref.fit_linear, shapes.fit_linear),
    ("fit_log_ramp", ref.fit_log_ramp, shapes.fit_log_ramp),
    ("fit_exponential", ref.fit_exponential, shapes.fit_exponential),
    ("fit_inverse_sqrt", ref.fit_inverse_sqrt, shapes.fit_inverse_sqrt),
    ("fit_cosine_arc", ref.fit_cosine_arc, shapes.fit_cosine_arc),
]


@pytest.mark.parametrize("seed", range(4))
def test_fits_equal_the_straightforward_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for k in range(120):
        x, y = _series(rng, k % 8)
        for name, slow, fast in FITS:
            with np.errstate(all="ignore"):
                a, b = slow(x, y), fast(x, y)
            assert _same(a, b, x), (name, k, a.shape, b.shape, a.residual, b.residual)


@pytest.mark.parametrize("seed", range(2))
def test_polynomial_fit_equals_the_straightforward_one(seed: int) -> None:
    """Every residual to beat, from one the coarse pass cannot reach to none at all."""
    rng = np.random.default_rng(100 + seed)
    for k in range(48):
        x, y = _series(rng, k % 8)
        x, y = shapes.thin(x, y)
        for beat in (1e-6, 1e-4, 1e-3, 0.02, 0.3, np.inf, np.nan, 0.0):
            with np.errstate(all="ignore"):
                a, b = ref.fit_polynomial_decay(x, y, beat), shapes.fit_polynomial_decay(x, y, beat)
            assert _same(a, b, x), (k, beat, a.residual, b.residual)


def test_geomspace_is_numpys() -> None:
    rng = np.random.default_rng(3)
    for k in range(20000):
        lo = float(10 ** rng.uniform(-12, 12))
        hi = [lo * float(rng.uniform(1, 10)), lo * (1 + float(rng.uniform(0, 1e-6))), lo,
              float(np.nextafter(lo, np.inf)), lo * float(10 ** rng.uniform(0, 8))][k % 5]
        points = 32 if k % 3 else int(rng.integers(2, 40))
        assert np.geomspace(lo, hi, points).tobytes() == shapes.geomspace(lo, hi, points).tobytes(), (lo, hi, points)
    for lo, hi in [(-3.0, -1.0), (2.0, 1.0), (1.0, np.inf)]:  # handed to numpy
        with np.errstate(all="ignore"):
            assert np.array_equal(np.geomspace(lo, hi, 8), shapes.geomspace(lo, hi, 8), equal_nan=True)


def test_search_length_equals_the_straightforward_one() -> None:
    rng = np.random.default_rng(5)
    for k in range(400):
        x, y = shapes.thin(*_series(rng, k % 8))
        x0, span = float(x[0]), float(x[-1] - x[0])
        p = float(rng.uniform(1, 5))
        families = [  # the columns as the reference's fits spell them
            lambda L: 0.5 * (1.0 + np.cos(np.pi * np.clip((x[None, :] - x0) / L[:, None], 0.0, 1.0))),  # noqa: B023
            lambda L: np.exp(-(x[None, :] - x0) / L[:, None]),  # noqa: B023
            lambda L: np.clip(1.0 - (x[None, :] - x0) / L[:, None], 0.0, None) ** p,  # noqa: B023
        ]
        for cols in families:
            rounds = int(rng.integers(1, 5))
            assert ref.search_length(cols, y, span * 0.98, span * 4.0, rounds=rounds) == shapes.search_length(
                cols, y, span * 0.98, span * 4.0, rounds=rounds)


def _coarse_rel(x: Arr, y: Arr) -> float:
    """The best relative RMS of the reference polynomial fit's coarse pass (what it compares with beat / 3)."""
    x0, span = float(x[0]), float(x[-1] - x[0]) or 1.0
    scale = float(np.ptp(y)) or 1.0
    errors = []
    for p in [1.5, 2.0, 3.0, 5.0]:
        cols = lambda L: np.clip(1.0 - (x[None, :] - x0) / L[:, None], 0.0, None) ** p  # noqa: E731, B023
        length = ref.search_length(cols, y, span * 0.98, span * 4.0, rounds=2)
        basis = [np.ones_like(x), np.clip(1.0 - (x - x0) / length, 0.0, None) ** p]
        coef = ref._lstsq(basis, y)
        errors.append(float(np.sum((y - basis[0] * coef[0] - basis[1] * coef[1]) ** 2)))
    return float(np.sqrt(min(errors) / x.shape[0])) / scale


def test_far_from_convex_only_when_the_coarse_pass_fails() -> None:
    """Whenever the shortcut answers, the pass it replaces gives up too; and it answers for cosines."""
    rng = np.random.default_rng(11)
    fired = {0: 0, 7: 0}
    for k in range(600):
        kind = k % 8
        x, y = shapes.thin(*_series(rng, kind))
        if x.shape[0] < 6:
            continue
        rel = _coarse_rel(x, y)
        scale = float(np.ptp(y)) or 1.0
        for beat in (rel * 3 * 0.5, rel * 3 * 0.97, rel * 3 * 1.001, rel * 3 * 2, 1e-4, 1e-3):
            if shapes._far_from_convex(x, y, np.sqrt(x.shape[0]) * scale * beat / 3):
                assert rel > beat / 3, (k, kind, rel, beat)
                fired[kind] = fired.get(kind, 0) + 1
    assert fired[0] > 100  # the clean cosines are decided without the pass


def test_convexity_bound_is_below_every_convex_and_concave_fit() -> None:
    """The certificate itself: never above the distance to a convex (or concave) sequence."""
    rng = np.random.default_rng(13)
    for k in range(3000):
        x, y = _series(rng, k % 8)
        n = x.shape[0]
        t = (x - x[0]) / (x[-1] - x[0])
        if k % 3 == 0:  # a power decay of the pass, any horizon, power >= 1
            g = np.clip(1 - t / rng.uniform(0.5, 4), 0, None) ** rng.uniform(1, 6)
        elif k % 3 == 1:  # any convex sequence: slopes that only grow
            g = np.concatenate([[0.0], np.cumsum(np.sort(rng.normal(0, 1, n - 1)) * np.diff(t))])
        else:  # a line (convex and concave)
            g = t.copy()
        coef = np.linalg.lstsq(np.column_stack([np.ones(n), g]), y, rcond=None)[0]
        for b in (coef[1], -coef[1], 0.5 * coef[1]):  # the best fit, and concave / worse ones
            dist = float(np.sqrt(np.sum((y - coef[0] - b * g) ** 2)))
            assert shapes._convexity_bound(x, y) <= dist, (k, dist)


def test_far_from_convex_declines_unusual_inputs() -> None:
    x = np.arange(20.0)
    y = 0.5 + 0.5 * np.cos(np.pi * x / 19)
    assert shapes._far_from_convex(x, y, 1e-9) and shapes._convexity_bound(x, y) > 0
    assert not shapes._far_from_convex(x[::-1].copy(), y, 1e-9)  # decreasing steps
    assert not shapes._far_from_convex(np.r_[x[:5], x[4:19]], y, 1e-9)  # a repeated step
    assert not shapes._far_from_convex(x, np.r_[y[:-1], np.nan], 1e-9)
    assert not shapes._far_from_convex(x, y.astype(np.float32), 1e-9)
    assert not shapes._far_from_convex(x, y, np.inf)


def test_fits_sharing_steps_equal_the_straightforward_ones() -> None:
    """Series logged at the same steps (the search rounds' columns and the convexity weights come from a
    cache keyed by the steps): each still equals the reference, the first fit and the later ones."""
    rng = np.random.default_rng(21)
    for k in range(40):
        x, _ = _series(rng, k % 8)
        shapes._ROUNDS.clear()
        shapes._WEIGHTS.clear()
        for j in range(6):
            _, y = _series(np.random.default_rng(1000 * k + j), (k + j) % 8)
            y = np.resize(y, x.shape[0])  # any values at these steps
            for name, slow, fast in FITS[:2]:
                with np.errstate(all="ignore"):
                    a, b = slow(x, y), fast(x, y)
                assert _same(a, b, x), (name, k, j)
            for beat in (1e-4, 0.02):
                with np.errstate(all="ignore"):
                    a, b = ref.fit_polynomial_decay(x, y, beat), shapes.fit_polynomial_decay(x, y, beat)
                assert _same(a, b, x), (k, j, beat)
            xt, yt = shapes.thin(x, y)
            fresh = dict(shapes._WEIGHTS)
            shapes._WEIGHTS.clear()
            first = shapes._convexity_bound(xt, yt)
            assert np.float64(first).tobytes() == np.float64(shapes._convexity_bound(xt, yt)).tobytes()
            shapes._WEIGHTS.update(fresh)
    assert any(c[0].flags.writeable is False for c in shapes._ROUNDS.values())


def _plain_convexity_bound(x: Arr, y: Arr) -> float:
    """The certificate as computed before its step-only part was cached. A lower bound on the L2
    distance from ``y`` to every ``a + b g``, ``g`` convex on ``x``, as :func:`_far_from_convex`
    explains (``-inf`` when declined)."""
    n = x.shape[0]
    if n < 3 or x.dtype != np.float64 or y.dtype != np.float64 or x.ndim != 1 or y.shape != x.shape:
        return -math.inf
    h = x[1:] - x[:-1]
    if not float(np.minimum.reduce(h)) > 0:  # strictly increasing steps (NaN fails too)
        return -math.inf
    inv = 1.0 / h
    ysum = float(np.add.reduce(y))
    # finite steps and values (a sum is finite only if every term is; an overflow just declines)
    if not (math.isfinite(float(np.add.reduce(inv))) and math.isfinite(ysum)):
        return -math.inf
    t = (x[1:-1] - x[0]) / (x[-1] - x[0])
    s = t[None, :] - shapes._BUMP_WINDOWS[:, :1]
    s /= shapes._BUMP_WINDOWS[:, 1:] - shapes._BUMP_WINDOWS[:, :1]
    shapes._clip(s, 0.0, 1.0, out=s)
    s *= 1.0 - s
    alpha = s * s  # one smooth bump per window, >= 0
    left, right = alpha * inv[:-1], alpha * inv[1:]
    w = np.zeros((alpha.shape[0], n))  # w = -D^T alpha, D_j(z) = (z[j+1]-z[j])/h[j] - (z[j]-z[j-1])/h[j-1]
    w[:, :-2] -= left
    w[:, 1:-1] += left + right
    w[:, 2:] -= right
    size = 2.0 * (np.add.reduce(left, axis=1) + np.add.reduce(right, axis=1))  # sum |terms| of each w
    yd = y - ysum / n
    yd_norm = math.sqrt(float(yd @ yd))
    top = float(np.maximum.reduce(np.abs(y)))
    zmax = top + 9.0 * yd_norm  # |a + b g| of any coarse-pass fit: |b| <= 4.1 |y - mean|, 0 <= g <= 1
    wy = w @ y
    # rounding: of w's entries (< 16 eps of the terms summed), of w . y and of w . z (n eps of sum |w| |.|)
    err = (2.0 * n * shapes._EPS * top + 16.0 * shapes._EPS * zmax + 2.0 * n * shapes._EPS * zmax) * size
    norm = np.sqrt(np.einsum("ij,ij->i", w, w))
    norm *= 1.0 + 2.0 * n * shapes._EPS
    if not float(np.minimum.reduce(norm)) > 0:
        return -math.inf
    convex = float(np.maximum.reduce((wy - err) / norm))  # |y - z| >= this for every convex z
    concave = float(np.maximum.reduce((-wy - err) / norm))
    if not (math.isfinite(convex) and math.isfinite(concave)):  # an overflow (or NaN) somewhere: decline
        return -math.inf
    slack = 1e-12 * math.sqrt(n) * (top + zmax)  # the pass's own column, coefficient and sum roundings
    bound = (min(convex, concave) - slack) * (1.0 - 1e-6)
    return bound if math.isfinite(bound) else -math.inf


def test_convexity_bound_equals_the_uncached_one() -> None:
    rng = np.random.default_rng(17)
    for k in range(300):
        x, y = _series(rng, k % 8)
        x, y = shapes.thin(x, y)
        if k % 5 == 0:
            shapes._WEIGHTS.clear()
        for yy in (y, y[::-1].copy(), -y, y * 1e300, np.r_[y[:-1], np.nan]):
            with np.errstate(all="ignore"):
                a, b = _plain_convexity_bound(x, yy), shapes._convexity_bound(x, yy)
            assert np.float64(a).tobytes() == np.float64(b).tobytes(), k
    for x in (np.r_[0.0, 1.0, 1.0, 2.0], np.r_[0.0, 1.0, 2.0, np.inf], np.array([0.0, 5e-324, 1e-323])):
        y = np.arange(x.shape[0], dtype=float)
        with np.errstate(all="ignore"):
            assert _plain_convexity_bound(x, y) == shapes._convexity_bound(x, y) == -math.inf


def test_a_sweep_of_one_schedule_shares_every_search_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of one schedule (seeds, peak LRs) take the same search path: the second fit computes no
    columns (every round from the cache) and both still equal the reference, bit for bit."""
    rng = np.random.default_rng(7)
    x = np.arange(40.0, 500.0)
    shape = 0.5 * (1.0 + np.cos(np.pi * (x - 40.0) / 470.0))
    shapes._ROUNDS.clear()
    cached: list[bool] = []
    real = shapes._round_columns

    def counting(columns: object, grid: Arr, key: tuple[object, ...]) -> tuple[Arr, Arr]:
        cached.append(key in shapes._ROUNDS)
        return real(columns, grid, key)  # type: ignore[arg-type]

    monkeypatch.setattr(shapes, "_round_columns", counting)
    first = 1e-5 + 1e-4 * shape
    other = 2e-5 + 3e-4 * shape * (1.0 + 1e-9 * rng.standard_normal(x.shape[0]))  # another peak, a seed
    with np.errstate(all="ignore"):
        assert _same(ref.fit_cosine_decay(x, first), shapes.fit_cosine_decay(x, first), x)
        assert cached == [False] * 4
        cached.clear()
        assert _same(ref.fit_cosine_decay(x, other), shapes.fit_cosine_decay(x, other), x)
        assert cached == [True] * 4
    assert all(not c.flags.writeable and not v.flags.writeable for c, v in shapes._ROUNDS.values())
