"""Spike detectors over a metric series (loss, gradient norm): pure numpy, no IO.

The default, ``warmcheck``, compares each point with a trailing window that excludes it, on
``log(value)`` so that a spike is a ratio: the expected value follows the window's trend (two
half-window medians; only a falling trend is extrapolated, so the fast early descent never looks
like a spike and a rising stretch is not excused), and the noise scale is the window's median
absolute deviation around that trend (robust to the spikes it is looking for). A point is a spike
when it is ``z`` noise scales and ``min_ratio`` times above the expectation, and also clears the
window's highest value by ``above_max`` (per-batch losses have heavy tails that a MAD understates);
an episode runs until the series is back within ``recover_ratio`` of the level at its onset and stays
there (the median of the next ``recover_points`` points too: one dip inside a long elevated stretch is
not a recovery). Its ratio is the peak over the value expected at the peak: for an episode that
recovered, the line from the level before it to the level after it (a loss that kept falling under the
spike is expected lower and lower), never above the trailing expectation at the onset.
Defaults were set with ``bench/calibrate.py`` (synthetic runs) and checked on real logs.

The named detectors reproduce published rules with their published parameters (see
``domain/prior-art.md``): OLMo-core (6 sigma over the previous 128 values), the OLMo 2 spike score
(values 7 sigma from the rolling mean of the previous 1000), llm-foundry (2x the mean of the last 100,
patience 4), Megatron (10x the largest value seen) and a robust MAD z-score (|z| > 6 over the
trailing 100).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Arr = NDArray[np.float64]

_CHUNK = 1 << 16  # points per chunk of the window statistics: temporaries of a few megabytes

DETECTORS = ("warmcheck", "olmo-core", "olmo2", "llm-foundry", "megatron", "mad")


@dataclass(frozen=True, slots=True)
class SpikeParams:
    """Thresholds of the default detector (``[tool.warmcheck.spikes]``)."""

    z: float = 4.0
    min_ratio: float = 1.3
    above_max: float = 1.05  # and must clear the window's highest value by 5%: heavy-tailed noise
    window: int = 20
    min_history: int = 8
    recover_ratio: float = 1.1
    recover_points: int = 5  # back in band means the median of this many points from there is in band too
    noise_floor: float = 1e-3  # in log units: a perfectly flat window still has 0.1% noise
    # Before the trailing window is full, a point at least this many times the initial level (the median
    # of the first three points), held (the median of it and the next two points too), is a spike too
    # (None: off); one bad batch of a small-batch regression loss reaches it alone. A training loss
    # starts at its highest (an untrained model); twice that, held, is a blow-up, and without warmup it
    # comes in the first steps, before any quiet stretch to compare with exists. Losses only: a gradient
    # norm rises early by nature.
    early_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class Episode:
    """One spike: consecutive elevated points, from onset to the last one before recovery."""

    onset: int  # step
    peak: int  # step of the highest value
    peak_value: float
    expected: float  # the value expected at onset from the trailing window
    ratio: float  # peak_value / expected
    z: float  # noise scales above the expectation at the peak
    end: int  # last step of the episode
    recovered: int | None  # first step back within recover_ratio of the onset level, staying (None: not by the end)
    points: int
    index: int  # position of the onset among the detector's valid points
    expected_at_peak: float | None = None  # the value expected at the peak step (None: ``expected``)
    held_ratio: float | None = None  # the ratio three consecutive points of the episode all reach (None: fewer)
    median_ratio: float | None = None  # the median ratio of the episode's points: the level it held
    noise: float | None = None  # the noise scale at the onset (log units)


@dataclass(frozen=True, slots=True)
class Detection:
    """What one detector found in one series."""

    detector: str
    params: Mapping[str, float]
    episodes: tuple[Episode, ...]
    flagged: int  # spike points
    evaluated: int  # points the detector could judge (enough history)
    applicable: bool = True
    note: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """Spike points per evaluated point (the OLMo-style spike score)."""
        return self.flagged / self.evaluated if self.evaluated else 0.0


def detect(steps: NDArray[np.int64], values: Arr, detector: str = "warmcheck",
           params: SpikeParams | None = None) -> Detection:
    """Run ``detector`` over the finite points of a series."""
    params = params or SpikeParams()
    ok = np.isfinite(values)
    m = int(np.count_nonzero(ok))
    # The common cases: the series' own arrays, no copy (10 million points are 160 MB): every value
    # finite, or the finite ones a prefix (a run that ended in NaN).
    if ok[:m].all():
        st, v = steps[:m], values[:m].astype(np.float64, copy=False)
    else:
        st, v = steps[ok], values[ok].astype(np.float64, copy=False)
    del ok
    if detector == "warmcheck":
        return _robust(st, v, params)
    if detector not in DETECTORS:
        raise ValueError(f"unknown spike detector {detector!r}; choose from {', '.join(DETECTORS)}")
    flags, evaluated, p = _named(detector, v)
    episodes = _episodes_from_flags(st, v, flags, detector)
    extra: dict[str, object] = {}
    if detector == "llm-foundry":  # more than `patience` consecutive outliers is what kills the run
        extra["kill_episodes"] = [e.onset for e in episodes if e.points > 4]
    return Detection(detector, p, tuple(episodes), int(flags.sum()), evaluated, extra=extra)


def _robust(st: NDArray[np.int64], v: Arr, p: SpikeParams) -> Detection:
    params = {"z": p.z, "min_ratio": p.min_ratio, "above_max": p.above_max, "window": p.window,
              "recover_ratio": p.recover_ratio, "recover_points": p.recover_points}
    if v.shape[0] and float(v.min()) <= 0:
        return Detection("warmcheck", params, (), 0, 0, applicable=False,
                         note="values <= 0 (a loss that is not a positive quantity): ratios are undefined")
    y = np.log(v)
    n = y.shape[0]
    # Flags a chunk at a time, keeping the expectation and noise only where a point is flagged: the
    # full-length temporaries of a 10-million-point series would be 80 MB each.
    flagged, at_expected, at_noise = [], [], []
    evaluated = 0
    min_ratio, above_max = math.log(p.min_ratio), math.log(p.above_max)
    first = min(p.min_history, p.window)  # the first point judged: min_history points before it, or a full window
    for a in range(0, n, _CHUNK):
        b = min(n, a + _CHUNK)
        seg = y[a:b]
        evaluated += max(0, b - max(a, first))
        # A spike must clear the window's highest value by above_max: a cheap test (a running maximum)
        # that only a few points pass (about one in window + 1 of pure noise, fewer on a falling loss).
        # The medians, which cost 20 times more, are computed for those points only: the same numbers
        # a full pass gives, row by row.
        cand = np.flatnonzero(seg - _trailing_max(y, p, a, b) >= above_max)
        cand = cand[cand + a >= first]
        expected, noise = _trailing_stats_at(y, p, cand + a)
        excess = seg[cand] - expected
        keep = (excess / noise >= p.z) & (excess >= min_ratio)
        flagged.append(cand[keep] + a)
        at_expected.append(expected[keep])
        at_noise.append(noise[keep])
    spikes, expected_at, noise_at = _joined(flagged, np.int64), _joined(at_expected), _joined(at_noise)
    if p.early_ratio is not None and n > 1:
        params["early_ratio"] = p.early_ratio
        spikes, expected_at, noise_at, more = _early(y, p, spikes, expected_at, noise_at)
        evaluated += more
    episodes: list[Episode] = []
    pos = 0
    while pos < spikes.shape[0]:
        i = int(spikes[pos])
        base = float(expected_at[pos])
        j = recovery(y, i, base, p)
        excess = y[i:j] - _expected_line(y, i, j, base, p)
        k_rel = int(np.argmax(excess))
        k = i + k_rel
        at_peak = float(y[k] - excess[k_rel])
        held = (float(np.lib.stride_tricks.sliding_window_view(excess, 3).min(axis=1).max())
                if excess.shape[0] >= 3 else None)
        episodes.append(Episode(onset=int(st[i]), peak=int(st[k]), peak_value=float(v[k]),
                                expected=float(math.exp(base)), ratio=float(math.exp(y[k] - at_peak)),
                                z=float((y[k] - at_peak) / noise_at[pos]), end=int(st[j - 1]),
                                recovered=int(st[j]) if j < n else None, points=j - i, index=i,
                                expected_at_peak=float(math.exp(at_peak)),
                                held_ratio=float(math.exp(held)) if held is not None else None,
                                median_ratio=float(math.exp(np.median(excess))), noise=float(noise_at[pos])))
        pos = int(np.searchsorted(spikes, j))  # the next flagged point from the recovery on
    return Detection("warmcheck", params, tuple(episodes), int(spikes.shape[0]), evaluated)


def _joined(parts: list[NDArray], dtype: type = np.float64) -> NDArray:
    """The chunks' arrays end to end (one chunk, the usual case: itself)."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _early(y: Arr, p: SpikeParams, spikes: NDArray[np.int64], expected_at: Arr, noise_at: Arr,
           ) -> tuple[NDArray[np.int64], Arr, Arr, int]:
    """The early rule of :class:`SpikeParams` (``early_ratio``) merged into the window rule's flags:
    the flagged indices, their expectations and noise scales, and how many points only it judged."""
    assert p.early_ratio is not None
    head = min(y.shape[0], p.window)  # points judged; two more are looked at (never the whole series)
    judged_only_here = min(head, p.min_history) - 1  # the window rule starts at min_history
    # A couple of dozen values: plain Python, numpy's per-call overhead would cost more (once a run).
    first = y[: head + 2].tolist()
    # The initial level; one spike among the first three does not move it (the middle one, exactly
    # numpy's median of three; of two, their mean).
    y0 = sorted(first[:3])[1] if len(first) >= 3 else float(np.median(y[:3]))
    level = math.log(p.early_ratio)
    high = [x - y0 >= level for x in first]
    # Held, not one bad batch: the point and at least one of the next two (the median of the three).
    early = [i for i in range(1, head) if high[i] and sum(high[i : i + 3]) >= 2]
    if spikes.shape[0]:
        early = sorted(set(early).difference(spikes[: int(np.searchsorted(spikes, head))].tolist()))
    if not early:
        return spikes, expected_at, noise_at, judged_only_here
    new = np.array(early, dtype=np.int64)
    scale = float(1.4826 * np.median(np.abs(np.diff(y[:4])))) if y.shape[0] > 2 else 0.0
    idx = np.concatenate([spikes, new])
    order = np.argsort(idx, kind="stable")
    exp = np.concatenate([expected_at, np.full(new.shape[0], y0)])
    noi = np.concatenate([noise_at, np.full(new.shape[0], max(p.noise_floor, scale))])
    return idx[order], exp[order], noi[order], judged_only_here


def recovery(y: Arr, i: int, base: float, p: SpikeParams) -> int:
    """Index of the first point after ``i`` back within ``recover_ratio`` of ``base`` (log units) whose
    next ``recover_points`` points have their median in that band too; ``len(y)`` when there is none.

    A point that dips into the band while the points after it are still elevated is not a recovery.
    """
    up = math.log(p.recover_ratio)
    n, k = y.shape[0], p.recover_points
    a, size = i + 1, 256  # scanned forward in growing chunks: most episodes end within a few points
    while a < n:
        b = min(n, a + size)
        back = np.flatnonzero(y[a:b] - base <= up)
        if back.shape[0]:
            j = int(back[0]) + a  # the first point back in the band: usually the recovery
            if float(np.median(y[j : j + k])) - base <= up:
                return j
            if back.shape[0] > 1:  # the others' medians together (np.median of each window, row by row)
                later = _first_median_within(y, back[1:] + a, k, base, up)
                if later is not None:
                    return later
        a, size = b, min(size * 2, _CHUNK)
    return n


def _first_median_within(y: Arr, at: NDArray[np.int64], k: int, base: float, up: float) -> int | None:
    """The first of the points ``at`` whose next ``k`` points (fewer at the end) have their median within
    ``up`` of ``base``: ``np.median(y[j : j + k]) - base <= up``, the windows' medians in one call."""
    n = y.shape[0]
    full = at[at <= n - k] if k >= 1 else at[:0]
    if full.shape[0]:
        medians = np.median(np.lib.stride_tricks.sliding_window_view(y, k)[full], axis=1)
        hit = np.flatnonzero(medians - base <= up)
        if hit.shape[0]:
            return int(full[hit[0]])
    for j in at[full.shape[0] :].tolist():  # the last k - 1 points: shorter windows, one by one
        if float(np.median(y[j : j + k])) - base <= up:
            return int(j)
    return None


def _expected_line(y: Arr, i: int, j: int, base: float, p: SpikeParams) -> Arr:
    """The value expected at points ``i..j-1`` of an episode (log units).

    Unrecovered: ``base``, the trailing expectation at the onset. Recovered: the line through the median
    of the ``window // 2`` points before the onset and the median of as many points from the recovery
    (each at its centre), so that a loss that kept falling under the spike is expected lower and lower;
    never above ``base``.
    """
    out = np.full(j - i, base)
    n = y.shape[0]
    h = max(p.recover_points, p.window // 2)
    if j >= n or i < 1:
        return out
    before, after = y[max(0, i - h) : i], y[j : j + h]
    x0, y0 = i - (before.shape[0] + 1) / 2.0, float(np.median(before))
    x1, y1 = j + (after.shape[0] - 1) / 2.0, float(np.median(after))
    line = y0 + (y1 - y0) * (np.arange(i, j, dtype=np.float64) - x0) / (x1 - x0)
    return np.minimum(line, base)


def filtered_nan(loss_steps: NDArray[np.int64], loss_values: Arr, gn_steps: NDArray[np.int64],
                 gn_values: Arr) -> tuple[int, NDArray[np.bool_]] | None:
    """Where a logger wrote a NaN loss as a finite value: (first such step, mask of the loss points).

    HF Trainer's ``logging_nan_inf_filter`` (and running-average loggers) write a NaN loss as 0.0, or as
    the average of earlier losses, which then repeats; the gradient norm logged beside it stays
    non-finite. A loss point reads as filtered at a step whose gradient norm is non-finite when it is
    0.0, or a repeat of the previous logged loss, or the first value of such a stretch (within the range
    of the losses before it and followed by a 0.0 or a repeat beside a non-finite gradient norm). A
    finite loss that is larger than every loss before it is a real value, even beside an overflowed
    gradient norm. The mask covers the filtered points from the first one on.
    """
    bad_steps = gn_steps[~np.isfinite(gn_values)]
    n = loss_values.shape[0]
    if bad_steps.shape[0] == 0 or n == 0:
        return None
    beside = np.isin(loss_steps, bad_steps) & np.isfinite(loss_values)  # a finite loss beside a bad norm
    if not beside.any():
        return None
    prev = np.concatenate([[np.nan], loss_values[:-1]])
    with np.errstate(invalid="ignore"):
        repeat = np.isfinite(prev) & (np.abs(loss_values - prev) <= 1e-6 * np.abs(prev))
    filled = beside & ((loss_values == 0.0) | repeat)
    # The average a filter wrote first, which the next points repeat: within the range of the losses before.
    starts = beside & ~filled & np.concatenate([filled[1:], [False]])
    finite = np.where(np.isfinite(loss_values), loss_values, np.nan)
    with np.errstate(invalid="ignore"):
        lo = np.fmin.accumulate(np.concatenate([[np.nan], finite[:-1]]))
        hi = np.fmax.accumulate(np.concatenate([[np.nan], finite[:-1]]))
        starts &= (lo <= loss_values) & (loss_values <= hi)
    mask = filled | starts
    if not mask.any():
        return None
    return int(loss_steps[int(np.argmax(mask))]), mask


def trailing_expectation(y: Arr, p: SpikeParams) -> tuple[Arr, Arr]:
    """For every point, the value expected from the ``window`` points before it, and the noise scale.

    NaN where fewer than ``min_history`` points precede it.
    """
    n = y.shape[0]
    expected, noise = np.empty(n), np.empty(n)
    for a in range(0, n, _CHUNK):
        b = min(n, a + _CHUNK)
        expected[a:b], noise[a:b] = _trailing_stats(y, p, a, b)
    return expected, noise


def _trailing_stats(y: Arr, p: SpikeParams, a: int, b: int) -> tuple[Arr, Arr]:
    """:func:`trailing_expectation` for the points ``a..b-1``: temporaries bounded by the chunk."""
    expected = np.full(b - a, np.nan)
    noise = np.full(b - a, np.nan)
    for start in range(max(a, p.min_history), min(p.window, b)):  # short windows at the start, one by one
        expected[start - a], noise[start - a] = _short_window_stats(y[:start].tolist())
    lo = max(a, p.window)
    if lo < b:
        windows = np.lib.stride_tricks.sliding_window_view(y[lo - p.window : b - 1], p.window)
        expected[lo - a :], noise[lo - a :] = _window_stats(windows)
    return expected, np.maximum(noise, p.noise_floor)


def _trailing_stats_at(y: Arr, p: SpikeParams, at: NDArray[np.int64]) -> tuple[Arr, Arr]:
    """:func:`trailing_expectation` at the points ``at`` only (each with ``min_history`` points or a
    full window before it)."""
    expected, noise = np.empty(at.shape[0]), np.empty(at.shape[0])
    if not at.shape[0]:  # the usual case on a quiet stretch: no point clears the window's maximum
        return expected, noise
    short = at < p.window
    for k in np.flatnonzero(short).tolist():  # short windows at the start, one by one
        expected[k], noise[k] = _short_window_stats(y[: int(at[k])].tolist())
    full = np.flatnonzero(~short)
    if full.shape[0]:
        windows = np.lib.stride_tricks.sliding_window_view(y, p.window)[at[full] - p.window]
        expected[full], noise[full] = _window_stats(windows)
    return expected, np.maximum(noise, p.noise_floor)


def noise_at(y: Arr, p: SpikeParams, i: int) -> float:
    """``trailing_expectation(y, p)[1][i]`` (NaN before the first judged point), from point ``i``'s
    window alone."""
    if i < min(p.min_history, p.window):
        return math.nan
    return float(_trailing_stats_at(y, p, np.array([i], dtype=np.int64))[1][0])


def trailing_max(y: Arr, p: SpikeParams) -> Arr:
    """The highest of the ``window`` points before each point (-inf where there are none)."""
    n = y.shape[0]
    out = np.empty(n)
    for a in range(0, n, _CHUNK):
        b = min(n, a + _CHUNK)
        out[a:b] = _trailing_max(y, p, a, b)
    return out


def _trailing_max(y: Arr, p: SpikeParams, a: int, b: int) -> Arr:
    """:func:`trailing_max` for the points ``a..b-1``."""
    out = np.full(b - a, -np.inf)
    short = min(p.window, b)  # points 1..window-1: the maximum of all the points before (a running maximum)
    if max(a, 1) < short:
        out[max(a, 1) - a : short - a] = np.maximum.accumulate(y[: short - 1])[max(a, 1) - 1 :]
    lo = max(a, p.window)
    if lo < b:
        out[lo - a :] = window_max(y[lo - p.window : b - 1], p.window)
    return out


def window_max(x: Arr, width: int) -> Arr:
    """The maximum of each ``width`` consecutive values of ``x`` (``len(x) - width + 1`` of them).

    Maxima of 1, 2, 4, 8, ... values by doubling, then the window as a sum of those spans: a handful of
    ``np.maximum`` calls instead of a pass over every window's ``width`` values (a maximum is exact, so
    the numbers are those of ``sliding_window_view(x, width).max(axis=1)``)."""
    m = x.shape[0] - width + 1
    if m <= 0:
        return np.empty(0, dtype=x.dtype)
    spans = {1: x}
    span, cur = 1, x
    while span * 2 <= width:
        cur = np.maximum(cur[:-span], cur[span:])
        span *= 2
        spans[span] = cur
    out, off, rest = cur[:m], span, width - span
    while rest:
        step = 1 << (rest.bit_length() - 1)
        out = np.maximum(out, spans[step][off : off + m])
        off, rest = off + step, rest - step
    return out.copy() if width == 1 else out


def _short_window_stats(w: list[float]) -> tuple[float, float]:
    """:func:`_window_stats` for one short window, in plain Python: for a dozen values, numpy's
    per-call overhead costs more than the arithmetic (this runs once per early point of every run)."""
    from statistics import median

    width = len(w)
    half = width // 2
    m_old, m_new = median(w[:half]), median(w[half:])
    c_old, c_new = (half - 1) / 2.0, half + (width - half - 1) / 2.0
    slope = min((m_new - m_old) / (c_new - c_old), 0.0)
    resid = [v - (m_new + slope * (k - c_new)) for k, v in enumerate(w)]
    mid = median(resid)
    mad = 1.4826 * median(abs(r - mid) for r in resid)
    se = 1.2533 * mad * math.sqrt(1.0 / half + 1.0 / (width - half))
    if m_old - m_new < 2.0 * se:
        slope = 0.0
    return m_new + slope * (width - c_new), mad


def _window_stats(w: Arr) -> tuple[Arr, Arr]:
    """Trend-following expectation at the position right after each window row, and the MAD scale."""
    width = w.shape[1]
    half = width // 2
    m_old, m_new = np.median(w[:, :half], axis=1), np.median(w[:, half:], axis=1)
    c_old, c_new = (half - 1) / 2.0, half + (width - half - 1) / 2.0
    slope = np.minimum((m_new - m_old) / (c_new - c_old), 0.0)  # only a falling trend is followed
    pos = np.arange(width, dtype=np.float64)
    trend = m_new[:, None] + slope[:, None] * (pos[None, :] - c_new)
    resid = w - trend
    mad = 1.4826 * np.median(np.abs(resid - np.median(resid, axis=1)[:, None]), axis=1)
    # A fall between the half-window medians smaller than twice its standard error is noise, not a
    # trend: extrapolating it would expect too little and turn ordinary points into "spikes".
    se = 1.2533 * mad * np.sqrt(1.0 / half + 1.0 / (width - half))
    slope = np.where(m_old - m_new >= 2.0 * se, slope, 0.0)
    return m_new + slope * (width - c_new), mad


def _named(detector: str, v: Arr) -> tuple[NDArray[np.bool_], int, dict[str, float]]:
    """Spike flags of the published rules, each test against a window that excludes the point."""
    n = v.shape[0]
    flags = np.zeros(n, dtype=bool)
    if detector == "megatron":
        threshold = 10.0
        running = np.maximum.accumulate(np.abs(v))
        flags[1:] = np.abs(v[1:]) > threshold * running[:-1]
        return flags, max(n - 1, 0), {"threshold": threshold}
    window = {"olmo-core": 128, "olmo2": 1000, "llm-foundry": 100, "mad": 100}[detector]
    if n <= window:
        return flags, 0, {"window": window}
    w = np.lib.stride_tricks.sliding_window_view(v[:-1], window)
    x = v[window:]
    if detector == "olmo-core":
        mean, std = w.mean(axis=1), w.std(axis=1)
        flags[window:] = (std >= 1e-10) & (x > mean + 6.0 * std)
        return flags, n - window, {"window": window, "sigma": 6.0}
    if detector == "olmo2":
        mean, std = w.mean(axis=1), w.std(axis=1)
        flags[window:] = (std >= 1e-10) & (np.abs(x - mean) >= 7.0 * std)
        return flags, n - window, {"window": window, "sigma": 7.0}
    if detector == "llm-foundry":
        flags[window:] = x >= 2.0 * w.mean(axis=1)
        return flags, n - window, {"window": window, "ratio": 2.0, "patience": 4}
    med = np.median(w, axis=1)
    mad = np.median(np.abs(w - med[:, None]), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = 0.6745 * (x - med) / mad
    flags[window:] = (mad > 0) & (z > 6.0)
    return flags, n - window, {"window": window, "z": 6.0}


def _episodes_from_flags(st: NDArray[np.int64], v: Arr, flags: NDArray[np.bool_], name: str) -> list[Episode]:
    """Runs of consecutive flagged points, measured against the last unflagged value before them."""
    out: list[Episode] = []
    idx = np.flatnonzero(flags)
    if idx.shape[0] == 0:
        return out
    breaks = np.flatnonzero(np.diff(idx) > 1) + 1
    for run in np.split(idx, breaks):
        i, j = int(run[0]), int(run[-1])
        before = float(np.median(v[max(0, i - 20) : i])) if i > 0 else float(v[i])
        k = i + int(np.argmax(v[i : j + 1]))
        ratio = float(v[k] / before) if before > 0 else float("inf")
        out.append(Episode(onset=int(st[i]), peak=int(st[k]), peak_value=float(v[k]), expected=before, ratio=ratio,
                           z=float("nan"), end=int(st[j]), recovered=int(st[j + 1]) if j + 1 < st.shape[0] else None,
                           points=j - i + 1, index=i))
    del name
    return out
