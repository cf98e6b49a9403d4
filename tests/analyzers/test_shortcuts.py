"""The shortcuts of the per-run analysis against the straightforward computations they replace.

Each shortcut must give the very numbers of the plain version (the JSON report is compared bit for bit
across versions), so these tests compare with ``==``, on random series with ties, plateaus and spikes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from warmcheck.analyzers import divergence
from warmcheck.analyzers.divergence import _median5, _slow_climb, median5_of
from warmcheck.detectors import SpikeParams, _early, _trailing_max, trailing_max, window_max
from warmcheck.model import Series


def _series(rng: np.random.Generator, n: int) -> np.ndarray:
    y = rng.normal(0, rng.uniform(0.01, 1), n).round(int(rng.integers(0, 4)))  # rounding: ties
    for at in rng.integers(0, n, 5):
        y[at : at + rng.integers(1, 4)] += rng.uniform(-3, 3)
    return y


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 7, 8, 16, 20, 31, 32, 33, 100])
def test_window_max_is_the_maximum_of_every_window(width: int) -> None:
    rng = np.random.default_rng(width)
    for n in (width, width + 1, width + 5, 3 * width + 7, 1000):
        x = _series(rng, n)
        expected = np.array([x[i : i + width].max() for i in range(n - width + 1)])
        got = window_max(x, width)
        assert got.dtype == np.float64 and np.array_equal(got, expected)
    assert window_max(np.arange(3.0), 5).shape == (0,)


@pytest.mark.parametrize("window", [1, 2, 5, 20, 33])
def test_trailing_max_is_the_maximum_of_the_window_before_each_point(window: int) -> None:
    p = replace(SpikeParams(), window=window)
    rng = np.random.default_rng(window)
    for n in (1, 2, window - 1, window, window + 1, 500, 70_000):  # 70,000: more than one chunk
        if n < 1:
            continue
        y = _series(rng, n)
        if n > 10:
            y[3] = np.nan if window % 2 else -np.inf  # a NaN spreads as numpy's max spreads it
        got = trailing_max(y, p)
        for i in [*range(min(n, 2 * window + 3)), *rng.integers(0, n, 200).tolist()]:
            before = y[max(0, i - window) : i]
            want = before.max() if before.shape[0] else -np.inf
            assert got[i] == want or (math.isnan(got[i]) and math.isnan(want)), (n, i)
        a = int(rng.integers(0, n))  # any chunk boundary gives the same numbers
        assert np.array_equal(_trailing_max(y, p, a, n), got[a:], equal_nan=True)


def _early_reference(y: np.ndarray, p: SpikeParams, spikes: np.ndarray, expected_at: np.ndarray,
                     noise_at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The early rule as numpy arrays over the first points (the version before the plain-Python one)."""
    assert p.early_ratio is not None
    head = min(y.shape[0], p.window)
    y0 = float(np.median(y[:3]))
    high = (y[: head + 2] - y0 >= math.log(p.early_ratio)).astype(np.int8)
    ahead = np.convolve(high, np.ones(3, dtype=np.int8))[2 : head + 2]
    early = np.flatnonzero((high[1:head] == 1) & (ahead[1:head] >= 2)) + 1
    judged_only_here = min(head, p.min_history) - 1
    new = np.setdiff1d(early, spikes, assume_unique=True)
    if not new.shape[0]:
        return spikes, expected_at, noise_at, judged_only_here
    scale = float(1.4826 * np.median(np.abs(np.diff(y[:4])))) if y.shape[0] > 2 else 0.0
    idx = np.concatenate([spikes, new])
    order = np.argsort(idx, kind="stable")
    exp = np.concatenate([expected_at, np.full(new.shape[0], y0)])
    noi = np.concatenate([noise_at, np.full(new.shape[0], max(p.noise_floor, scale))])
    return idx[order], exp[order], noi[order], judged_only_here


@pytest.mark.parametrize("seed", range(40))
def test_the_early_rule_in_plain_python_equals_the_array_version(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = replace(SpikeParams(), early_ratio=float(rng.choice([1.5, 2.0, 3.0])),
                window=int(rng.choice([5, 20, 30])), min_history=int(rng.choice([3, 8])))
    for n in (2, 3, 4, 5, 12, 21, 22, 23, 60):
        y = np.log(np.exp(_series(rng, n) * 0.2) * 3.0)
        for at in rng.integers(1, n, int(rng.integers(0, 5))):
            y[at : at + rng.integers(1, 4)] += math.log(rng.uniform(1.5, 4))  # early blow-ups, held or not
        spikes = np.sort(rng.choice(n, int(rng.integers(0, min(n, 6) + 1)), replace=False)).astype(np.int64)
        expected_at, noise_at = rng.normal(size=spikes.shape[0]), rng.uniform(0, 1, spikes.shape[0])
        got = _early(y, p, spikes, expected_at, noise_at)
        want = _early_reference(y, p, spikes, expected_at, noise_at)
        assert got[3] == want[3]
        for g, w in zip(got[:3], want[:3], strict=True):
            assert g.dtype == w.dtype and np.array_equal(g, w)


def test_median5_of_is_numpys_median_of_each_window() -> None:
    for vals in itertools.product(range(5), repeat=5):  # every order, every tie pattern
        x = np.array(vals, dtype=np.float64)
        assert median5_of(x)[0] == np.median(x)
    rng = np.random.default_rng(0)
    for _ in range(300):
        x = _series(rng, int(rng.integers(5, 400)))
        want = np.median(np.lib.stride_tricks.sliding_window_view(x, 5), axis=1)
        assert np.array_equal(median5_of(x), want)
    x = _series(rng, 150_000)  # more than one chunk of _median5
    pad = np.concatenate([[x[0]] * 2, x, [x[-1]] * 2])
    assert np.array_equal(_median5(x), np.median(np.lib.stride_tricks.sliding_window_view(pad, 5), axis=1))


def _slow_climb_reference(loss: Series, nan_at: int | None, ratio: float):  # type: ignore[no-untyped-def]
    """:func:`_slow_climb` without the early exit (the median of 5 of every point first)."""
    st, values = divergence._finite(loss)
    if values.shape[0] < 10 or float(values.min()) <= 0:
        return None
    raw = np.log(values)
    pad = np.concatenate([[raw[0]] * 2, raw, [raw[-1]] * 2])
    y = np.median(np.lib.stride_tricks.sliding_window_view(pad, 5), axis=1)
    low = np.minimum.accumulate(y)
    up = float(y[-1] - low[-1])
    needed = math.log(1.5) if nan_at is not None and nan_at >= int(st[-1]) else math.log(ratio)
    if up < needed:
        return None
    i = int(np.flatnonzero(y - low <= divergence._NEAR_MIN)[-1]) + 1
    if i >= y.shape[0] or np.any(np.diff(y[i:]) < -math.log(1.5)):
        return None
    base = float(math.exp(low[i - 1]))
    i = divergence._hinge(raw, i)
    k = i + int(np.argmax(raw[i:]))
    return int(st[i]), int(st[k]), float(values[k]), base, float(math.exp(raw[k] - low[i - 1]))


@pytest.mark.parametrize("seed", range(60))
def test_slow_climb_decides_as_the_full_smoothing_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 400))
    t = np.arange(n, dtype=np.float64)
    logv = -t / n * rng.uniform(0, 2) + rng.normal(0, rng.uniform(0.01, 0.3), n)
    if seed % 3:  # a climb from a random point, of a random size: some cross the ratio, some not
        at = int(rng.integers(0, n))
        logv[at:] += np.linspace(0, rng.uniform(0, 2.5), n - at)
    if seed % 5 == 0:
        logv[-int(rng.integers(1, 4)):] -= rng.uniform(0, 3)  # an odd low value at the end
    v = np.exp(logv).round(int(rng.integers(2, 6)))
    v[v <= 0] = 1e-3
    s = Series("loss", np.arange(n, dtype=np.int64) * 10, v, np.full(n, np.nan))
    for nan_at, ratio in ((None, 3.0), (None, 1.6), (10 * n, 3.0)):
        got = _slow_climb(s, nan_at, ratio)
        want = _slow_climb_reference(s, nan_at, ratio)
        if want is None:
            assert got is None
        else:
            assert got is not None
            onset, e = got
            assert (onset, e.peak, e.peak_value, e.expected, e.ratio) == want


def _recovery_reference(y: np.ndarray, i: int, base: float, p: SpikeParams) -> int:
    """The recovery point, one candidate at a time over the whole rest of the series."""
    up = math.log(p.recover_ratio)
    for j in range(i + 1, y.shape[0]):
        if y[j] - base <= up and float(np.median(y[j : j + p.recover_points])) - base <= up:
            return j
    return y.shape[0]


@pytest.mark.parametrize("seed", range(30))
def test_recovery_finds_the_point_the_one_by_one_scan_finds(seed: int) -> None:
    from warmcheck.detectors import recovery

    rng = np.random.default_rng(seed)
    n = int(rng.choice([30, 600, 3000]))
    y = _series(rng, n) * 0.1
    i = int(rng.integers(0, n // 2))
    # An elevated stretch with dips back into the band, some held (a recovery), most not.
    y[i : i + int(rng.integers(1, n - i))] += 0.5
    dips = rng.integers(i, n, int(rng.integers(0, 40)))
    y[dips] -= 0.5
    for k in (1, 2, 3, 5, 8):
        p = replace(SpikeParams(), recover_points=k, recover_ratio=float(rng.choice([1.05, 1.1, 1.5])))
        for base in (float(np.median(y[: max(i, 1)])), float(y.min()), float(y.max())):
            assert recovery(y, i, base, p) == _recovery_reference(y, i, base, p)


@pytest.mark.parametrize("params", [{}, {"min_history": 30}, {"window": 7, "min_history": 3}, {"min_history": 2}])
def test_noise_at_one_point_is_the_full_pass_noise(params: dict) -> None:
    from warmcheck.detectors import noise_at, trailing_expectation

    p = replace(SpikeParams(), **params)
    rng = np.random.default_rng(len(params))
    y = _series(rng, 70_000) * 0.1  # more than one chunk of the statistics
    _, noise = trailing_expectation(y, p)
    for i in [*range(40), *rng.integers(0, y.shape[0], 300).tolist(), 65_535, 65_536, 65_537]:
        got, want = noise_at(y, p, i), float(noise[i])
        assert got == want or (math.isnan(got) and math.isnan(want)), i


def test_last_finite_is_the_last_finite_index() -> None:
    from warmcheck.model import last_finite

    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 5, 100, 70_000, 140_000):
        for bad_share in (0.0, 0.5, 0.99, 1.0):
            v = rng.normal(size=n)
            v[rng.random(n) < bad_share] = rng.choice([np.nan, np.inf, -np.inf])
            if n and rng.random() < 0.5:
                v[-int(rng.integers(1, n + 1)):] = np.nan  # a non-finite tail, sometimes all of it
            ok = np.flatnonzero(np.isfinite(v))
            want = int(ok[-1]) if ok.shape[0] else None
            for chunk in (1, 3, 1 << 16):
                assert last_finite(v, chunk) == want


def _smoothed_reference(loss: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ok = np.isfinite(loss.values) & (loss.values > 0)
    st, raw = loss.steps[ok], np.log(loss.values[ok])
    if raw.shape[0] == 0:
        return st, raw, raw
    pad = np.concatenate([[raw[0]] * 2, raw, [raw[-1]] * 2])
    return st, raw, np.median(np.lib.stride_tricks.sliding_window_view(pad, 5), axis=1)


def _climb_start_reference(loss: Series, upto: int) -> int | None:
    """divergence._climb_start over whole-series arrays (the version before the chunked scan)."""
    st, raw, y = _smoothed_reference(loss)
    if upto < 10 or upto >= raw.shape[0]:
        return None
    seg, low = y[: upto + 1], np.minimum.accumulate(y[: upto + 1])
    padded = np.concatenate([np.full(divergence._PLATEAU, np.inf), seg])
    local = np.lib.stride_tricks.sliding_window_view(padded, divergence._PLATEAU + 1).min(axis=1)
    lowest = np.minimum(seg, raw[: upto + 1])
    near = np.flatnonzero((lowest - low <= divergence._NEAR_MIN) | (lowest - local <= divergence._NEAR_MIN))
    i = int(near[-1]) + 1
    if i > upto or np.any(np.diff(y[i : upto + 1]) < -math.log(1.5)):
        return None
    return int(st[divergence._hinge(raw, i)])


def _level_before_reference(loss: Series, onset: int) -> tuple[float, int | None]:
    st, _, y = _smoothed_reference(loss)
    before = np.flatnonzero(st < onset)
    if before.shape[0] == 0:
        return float("nan"), None
    lo = max(0, int(before[-1]) + 1 - divergence._PLATEAU)
    k = lo + int(np.argmin(y[lo : before[-1] + 1]))
    return float(math.exp(y[k])), int(st[k])


def _climbing(rng: np.random.Generator, n: int) -> Series:
    t = np.arange(n, dtype=np.float64)
    logv = -t / n * rng.uniform(0, 2) + rng.normal(0, rng.uniform(0.01, 0.3), n)
    for _ in range(int(rng.integers(1, 3))):  # climbs and plateaus
        at = int(rng.integers(0, n))
        logv[at:] += np.linspace(0, rng.uniform(-1, 3), n - at)
    v = np.exp(logv).round(int(rng.integers(2, 6)))
    kind = rng.integers(0, 4)
    if kind == 1:
        v[-int(rng.integers(1, n // 3)):] = np.nan  # the run ended in NaN: finite points are a prefix
    elif kind == 2:
        v[rng.integers(0, n, 5)] = rng.choice([np.nan, np.inf, 0.0, -1.0], 5)  # holes anywhere
    return Series("loss", np.arange(n, dtype=np.int64) * 3 + 7, v, np.full(n, np.nan))


@pytest.mark.parametrize("seed", range(50))
def test_climb_start_and_level_before_are_the_whole_array_versions(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([40, 300, 3000]))
    loss = _climbing(rng, n)
    if seed % 2:  # small chunks: the scan from the end crosses chunk boundaries
        real = divergence._last_back_near
        monkeypatch.setattr(divergence, "_last_back_near", lambda y, raw: real(y, raw, int(rng.integers(1, 80))))
    valid = int(np.count_nonzero(np.isfinite(loss.values) & (loss.values > 0)))
    for upto in {0, 9, 10, 11, valid // 2, valid - 1, valid, int(rng.integers(0, max(valid, 1)))}:
        assert divergence._climb_start(loss, upto) == _climb_start_reference(loss, upto), upto
    for onset in (int(loss.steps[0]), int(loss.steps[0]) + 1, int(loss.steps[-1]), int(loss.steps[-1]) + 5,
                  int(rng.choice(loss.steps))):
        got, want = divergence._level_before(loss, onset), _level_before_reference(loss, onset)
        assert got == want or (math.isnan(got[0]) and math.isnan(want[0]) and got[1] == want[1])


def test_median5_of_a_range_is_the_whole_series_median_there() -> None:
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 5, 9, 200, 70_000):
        x = _series(rng, n)
        whole = _median5(x)
        for start, stop in ((0, n), (0, 1), (n - 1, n), (n // 3, n // 2 + 1), (max(0, n - 3), n)):
            assert np.array_equal(_median5(x, start, stop), whole[start:stop])
        for chunk in (1, 4, 1000):
            assert np.array_equal(_median5(x, chunk=chunk), whole)


def test_falls_is_any_diff_below_minus_ln_1_5() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        y = np.cumsum(rng.normal(0, 0.3, n))
        i, j = sorted(int(v) for v in rng.integers(0, n + 1, 2))
        want = bool(np.any(np.diff(y[i:j]) < -math.log(1.5)))
        for chunk in (1, 2, 5, 1 << 16):
            assert divergence._falls(y, i, j, chunk) == want


def test_last_near_and_last_back_near_scan_chunks_as_the_whole_arrays() -> None:
    rng = np.random.default_rng(11)
    for _ in range(60):
        n = int(rng.integers(1, 400))
        y = np.cumsum(rng.normal(0, 0.08, n)).round(int(rng.integers(1, 4)))
        raw = y + rng.normal(0, 0.1, n)
        low = np.minimum.accumulate(y)
        want = int(np.flatnonzero(y - low <= divergence._NEAR_MIN)[-1])
        padded = np.concatenate([np.full(divergence._PLATEAU, np.inf), y])
        local = np.lib.stride_tricks.sliding_window_view(padded, divergence._PLATEAU + 1).min(axis=1)
        lowest = np.minimum(y, raw)
        want_back = int(np.flatnonzero((lowest - low <= divergence._NEAR_MIN)
                                       | (lowest - local <= divergence._NEAR_MIN))[-1])
        for chunk in (1, 2, 7, 51, 1 << 16):
            assert divergence._last_near(y, chunk) == want
            assert divergence._last_back_near(y, raw, chunk) == want_back
