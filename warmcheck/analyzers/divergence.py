"""WC4xx: divergence and non-finite values, including NaN that the logger disguised."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..config import Settings
from ..detectors import Episode, SpikeParams, detect, filtered_nan, noise_at
from ..findings import Finding, make
from ..model import Role, Run, Series, last_finite
from .spikes import after_warmup_window, loss_params, lr_phase, true_loss


def _describe(steps: np.ndarray, values: np.ndarray, limit: int = 4) -> str:
    parts = []
    for s, v in zip(steps[:limit].tolist(), values[:limit].tolist(), strict=True):
        parts.append(f"{'NaN' if np.isnan(v) else ('+Inf' if v > 0 else '-Inf')}@{s}")
    return ", ".join(parts) + (", ..." if steps.shape[0] > limit else "")


def first_nonfinite(s: Series) -> int | None:
    """Step of the first NaN/Inf value, if any."""
    bad = np.flatnonzero(~np.isfinite(s.values))
    return int(s.steps[bad[0]]) if bad.shape[0] else None


def hidden_nan(loss: Series | None, gn: Series | None) -> tuple[int, np.ndarray] | None:
    """(first step, mask of the loss points) where the logger wrote a NaN loss as a finite value
    (see :func:`warmcheck.detectors.filtered_nan`)."""
    if loss is None or gn is None or not loss.points or not gn.points:
        return None
    return filtered_nan(loss.steps, loss.values, gn.steps, gn.values)


def disguised_nan(loss: Series | None, gn: Series | None) -> tuple[int, str] | None:
    """(step, how) where the logger hid a NaN loss: a filtered loss value beside a NaN/Inf gradient norm."""
    found = hidden_nan(loss, gn)
    if found is None or loss is None:
        return None
    step, _ = found
    value = float(loss.values[int(np.searchsorted(loss.steps, step))])
    how = "0.0" if value == 0.0 else f"{value:.4g} (a repeat or an average of earlier losses)"
    return step, how


class NonFiniteAnalyzer:
    """WC401 first NaN/Inf; WC402 NaN disguised by the logger; WC403 divergence before the NaN."""

    codes = frozenset({"WC401", "WC402", "WC403"})

    def check(self, run: Run, settings: Settings) -> Iterator[Finding]:
        """See :class:`~warmcheck.analyzers.interface.Analyzer`."""
        loss, gn = run.primary(Role.LOSS), run.primary(Role.GRAD_NORM)
        hidden = disguised_nan(loss, gn)
        if hidden is not None and loss is not None and gn is not None:
            step, how = hidden
            yield make("WC402", f"NaN hidden by the logger: {gn.tag} is non-finite at step {step} while {loss.tag} "
                       f"reads {how}; HF Trainer's logging_nan_inf_filter replaces a NaN loss this way",
                       run=run.name, tag=loss.tag, step=step,
                       details={"grad_norm_tag": gn.tag, "loss_value": how, "last_good_step": _last_good(gn, step)})
        for role in (Role.LOSS, Role.LR, Role.GRAD_NORM):
            s = run.primary(role)
            if s is None:
                continue
            bad = ~np.isfinite(s.values)
            if not bad.any():
                continue
            steps, values = s.steps[bad], s.values[bad]
            first = int(steps[0])
            if role is Role.GRAD_NORM and hidden is not None and hidden[0] == first:
                continue  # WC402 already reports this step, with what it means
            yield make("WC401", f"{s.tag} non-finite from step {first} ({_describe(steps, values)}; "
                       f"{int(bad.sum())} of {s.points} points)", run=run.name, tag=s.tag, step=first,
                       details={"role": role.value, "first_step": first, "count": int(bad.sum()),
                                "nan": int(np.isnan(values).sum()), "posinf": int((values == np.inf).sum()),
                                "neginf": int((values == -np.inf).sum()), "last_good_step": _last_good(s, first)})
        if loss is not None and loss.points:
            yield from self._divergence(run, loss, settings, hidden)

    def _divergence(self, run: Run, logged: Series, settings: Settings,
                    hidden: tuple[int, str] | None) -> Iterator[Finding]:
        gn = run.primary(Role.GRAD_NORM)
        loss = true_loss(logged, gn)  # the values a logger wrote for a NaN are NaN again
        real_nan = first_nonfinite(logged)  # WC401's step
        nan_at = first_nonfinite(loss)  # the first step the loss was NaN, disguised or not
        params = loss_params(settings)
        det = (run.detections or {}).get("loss:robust") or detect(loss.steps, loss.values, "warmcheck", params)
        diverged = _diverging_episode(det.episodes, nan_at, settings.divergence_ratio)
        if diverged is not None:
            onset, rule = _departure(loss, diverged, params), "departure"
            climb = _climb_start(loss, diverged.index)
            if climb is not None and climb < onset:  # the earliest defensible onset: where the climb began
                onset, rule = climb, "left_minimum"
        else:  # no spike: a slow climb that the trailing window follows (it is not a spike)
            slow = _slow_climb(loss, nan_at, settings.divergence_ratio)
            if slow is None:
                return
            (onset, diverged), rule = slow, "left_minimum"
        sched = run.schedules[0] if run.schedules else None
        phase = lr_phase(onset, sched, after_warmup_window(sched, settings))
        lr = run.primary(Role.LR)
        lr_at = None
        if lr is not None and lr.points:
            i = int(np.searchsorted(lr.steps, onset, side="right")) - 1
            lr_at = float(lr.values[max(i, 0)])
        last_good = _previous_step(loss, onset)
        level, level_step = _level_before(loss, onset)
        crossed = _first_above(loss, onset, level, settings.divergence_ratio)
        if hidden is not None and (real_nan is None or hidden[0] < real_nan):
            nan_txt = f"; the NaN is hidden by the logger from step {hidden[0]} (WC402)"
        elif real_nan is not None:
            nan_txt = f"; the loss is non-finite from step {real_nan}"
        else:
            nan_txt = ""
        gn_nan = first_nonfinite(gn) if gn is not None and gn.points else None
        if gn_nan is not None and (nan_at is None or gn_nan < nan_at):
            nan_txt += f"; the gradient norm is non-finite from step {gn_nan}"
        how = ("left its lowest level for good" if rule == "left_minimum"
               else "started to climb away from its expected value")
        cross_txt = (f"; above {settings.divergence_ratio:g}x its level before the climb ({level:.4g} at step "
                     f"{level_step}, the lowest of the {_PLATEAU} points before) from step {crossed}"
                     if crossed is not None else "")
        restart = max(int(loss.steps[0]), onset - 100)
        yield make("WC403", f"loss diverges from step {onset} ({phase}): it {how}, reaches "
                   f"{diverged.peak_value:.4g} at step {diverged.peak} ({diverged.ratio:.3g}x the expected "
                   f"{diverged.expected:.4g}) and never comes back{cross_txt}{nan_txt}; last good step {last_good} "
                   f"(a restart point ~100 steps before: {restart})",
                   run=run.name, tag=logged.tag, step=onset, step_end=nan_at,
                   details={"onset_step": onset, "onset_rule": rule, "detected_step": diverged.onset,
                            "level_before_onset": level, "level_step": level_step,
                            "first_step_above_ratio": crossed, "peak_step": diverged.peak,
                            "peak_value": diverged.peak_value, "expected": diverged.expected,
                            "ratio": diverged.ratio, "first_nonfinite_step": nan_at,
                            "first_nonfinite_loss_step": real_nan,
                            "hidden_nan_step": hidden[0] if hidden is not None else None,
                            "first_nonfinite_grad_norm_step": gn_nan, "last_good_step": last_good,
                            "restart_step": restart, "lr_at_onset": lr_at, "phase": phase,
                            "threshold_ratio": settings.divergence_ratio, "threshold_z": params.z,
                            "threshold_min_ratio": params.min_ratio,
                            "threshold_near_minimum": math.exp(_NEAR_MIN)})


def _diverging_episode(episodes: tuple[Episode, ...], nan_at: int | None, ratio: float) -> Episode | None:
    """The episode the run never recovered from: unrecovered and far up, or followed by a NaN."""
    for e in episodes:
        if e.recovered is None and e.ratio >= ratio:
            return e
        if nan_at is not None and e.onset <= nan_at and (e.recovered is None or e.recovered >= nan_at):
            return e
    return None


_NEAR_MIN = math.log(1.1)  # within 10% of the running minimum still counts as "at the minimum"
_PLATEAU = 50  # points: a level held this long after leaving the minimum is where a later climb starts


def _slow_climb(loss: Series, nan_at: int | None, ratio: float) -> tuple[int, Episode] | None:
    """A loss that left its running minimum for good and ends ``ratio`` x above it (or turns NaN 1.5x up).

    The onset is the first step after the last one within 10% of the running minimum.
    """
    st, values = _finite(loss)
    if values.shape[0] < 10:
        return None
    if float(values.min()) <= 0:
        return None  # not a positive quantity (RL objectives, log-likelihood ratios): ratios mean nothing
    raw = np.log(values)
    needed = math.log(1.5) if nan_at is not None and nan_at >= int(st[-1]) else math.log(ratio)
    # The rise is at most the last smoothed value over the lowest raw one (every median of 5 is one of
    # the values): a loss that ends near its lowest (most runs) is decided without smoothing it all.
    if float(_median5(raw[-5:])[-1]) - float(raw.min()) < needed:
        return None
    # A centred median of 5 keeps one odd low value from becoming "the minimum" the run never regains.
    y = _median5(raw)
    # The running minimum of y where it is needed (its end, and before the onset), not at every point.
    up = float(y[-1] - y.min())
    if up < needed:
        return None
    i = _last_near(y) + 1
    if i >= y.shape[0] or _falls(y, i, y.shape[0]):  # a climb, not a saw-tooth
        return None
    base = float(math.exp(y[:i].min()))
    i = _hinge(raw, i)
    k = i + int(np.argmax(raw[i:]))
    e = Episode(onset=int(st[i]), peak=int(st[k]), peak_value=float(values[k]), expected=base,
                ratio=float(math.exp(raw[k] - y[:i].min())), z=float("nan"), end=int(st[-1]), recovered=None,
                points=y.shape[0] - i, index=i)
    return int(st[i]), e


def _positive_log(loss: Series) -> tuple[np.ndarray, np.ndarray]:
    """(steps, log values) of the finite positive points."""
    with np.errstate(invalid="ignore"):
        st, values = _kept(loss, np.isfinite(loss.values) & (loss.values > 0))
    return st, np.log(values)


def _finite(loss: Series) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of the finite points; the series' own arrays (no copy) when all are finite."""
    return _kept(loss, np.isfinite(loss.values))


def _kept(loss: Series, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values where ``ok``: views of the series' arrays when those points are a prefix (a run
    that ended in NaN: its finite points are all those before), else copies."""
    m = int(np.count_nonzero(ok))
    if ok[:m].all():
        return loss.steps[:m], loss.values[:m]
    return loss.steps[ok], loss.values[ok]


def _falls(y: np.ndarray, i: int, j: int, chunk: int = 1 << 16) -> bool:
    """Whether ``y[i:j]`` falls by more than ``ln 1.5`` from one point to the next anywhere
    (``np.any(np.diff(y[i:j]) < -math.log(1.5))``, a chunk at a time)."""
    drop = -math.log(1.5)
    for a in range(i, j - 1, chunk):
        b = min(j, a + chunk + 1)
        if (np.subtract(y[a + 1 : b], y[a : b - 1]) < drop).any():
            return True
    return False


def _median5(raw: np.ndarray, start: int = 0, stop: int | None = None, chunk: int = 1 << 16) -> np.ndarray:
    """The centred median of 5, the ends padded with the first and last value (of the points
    ``start..stop-1``: the same numbers as the whole series' there).

    A chunk of windows at a time: the median of a ``sliding_window_view`` copies its windows (5 values
    a point, 400 MB for 10 million points).
    """
    n = raw.shape[0]
    stop = n if stop is None else stop
    out = np.empty(stop - start)
    for a in range(start, stop, chunk):
        b = min(stop, a + chunk)
        lo, hi = max(0, a - 2), min(n, b + 2)
        part = np.concatenate([np.full(2 - (a - lo), raw[0]), raw[lo:hi], np.full(2 - (hi - b), raw[-1])])
        out[a - start : b - start] = median5_of(part)
    return out


def median5_of(x: np.ndarray) -> np.ndarray:
    """The median of each 5 consecutive values of ``x`` (``len(x) - 4`` of them), NaN-free ``x``.

    Comparisons only (the median of 5 is the median of three: the fifth value, the larger of the two
    pairs' minima and the smaller of their maxima): the very values ``np.median`` picks from each
    window, with no copy of the windows and no partition."""
    m = x.shape[0] - 4
    a, b, c, d, e = x[:m], x[1 : m + 1], x[2 : m + 2], x[3 : m + 3], x[4:]
    f = np.maximum(np.minimum(a, b), np.minimum(c, d))
    g = np.minimum(np.maximum(a, b), np.maximum(c, d))
    return np.maximum(np.minimum(e, f), np.minimum(np.maximum(e, f), g))  # the median of e, f, g


def _last_near(y: np.ndarray, chunk: int = 1 << 16) -> int:
    """The last index where ``y`` is within ``_NEAR_MIN`` of its running minimum (the first index is,
    always), scanned from the end a chunk at a time, the running minimum of each chunk from the minima
    of the chunks before it: no full-length temporary."""
    for a, b, low in _running_min_from_end(y, chunk):
        near = np.flatnonzero(y[a:b] - low <= _NEAR_MIN)
        if near.shape[0]:
            return a + int(near[-1])
    return 0


def _running_min_from_end(y: np.ndarray, chunk: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(a, b, running minimum of y over y[a:b])`` for the chunks of ``y``, the last chunk first; each
    chunk's running minimum from the minima of the chunks before it: no full-length temporary."""
    n = y.shape[0]
    starts = list(range(0, n, chunk))
    before = np.minimum.accumulate([float(y[a : a + chunk].min()) for a in starts])  # min of y[:end of chunk]
    for c in range(len(starts) - 1, -1, -1):
        a, b = starts[c], min(n, starts[c] + chunk)
        low = np.minimum.accumulate(y[a:b])
        if c:
            low = np.minimum(low, before[c - 1])
        yield a, b, low


def _climb_start(loss: Series, upto: int) -> int | None:
    """Step where the climb that reaches point ``upto`` (an index among the finite positive points) began:
    the first point after the last one within 10% of the running minimum (the minimum of a centred
    median of 5, so one lucky low batch is not the minimum; a point counts as back near it when it or
    its median is), refined by a hinge fit. A plateau is not a climb: when the loss settled on a higher
    level after leaving its minimum, the climb starts where it left the lowest level of the
    ``_PLATEAU`` points before (a climb slower than ~0.2% a point counts as such a plateau). None when
    the stretch is a saw-tooth (it fell back by a third or more on the way) rather than one climb."""
    st, raw = _positive_log(loss)
    if upto < 10 or upto >= raw.shape[0]:
        return None
    y = _median5(raw, stop=upto + 1)
    i = _last_back_near(y, raw) + 1
    if i > upto or _falls(y, i, upto + 1):
        return None
    return int(st[_hinge(raw, i)])


def _last_back_near(y: np.ndarray, raw: np.ndarray, chunk: int = 1 << 16) -> int:
    """The last index of ``y`` (a smoothed series) where it or the raw value there is within
    ``_NEAR_MIN`` of the running minimum of ``y`` or of its minimum over the ``_PLATEAU`` points before
    (index 0 is, always); from the end a chunk at a time: the running minimum, the windows' minima and
    the tests of the whole series are never held at once."""
    for a, b, low in _running_min_from_end(y, chunk):
        pa = max(0, a - _PLATEAU)
        padded = np.concatenate([np.full(_PLATEAU - (a - pa), np.inf), y[pa:b]])
        local = np.lib.stride_tricks.sliding_window_view(padded, _PLATEAU + 1).min(axis=1)
        # Back near the minimum on the smoothed series or at one logged point: not left for good yet.
        lowest = np.minimum(y[a:b], raw[a:b])
        near = np.flatnonzero((lowest - low <= _NEAR_MIN) | (lowest - local <= _NEAR_MIN))
        if near.shape[0]:
            return a + int(near[-1])
    return 0


def _level_before(loss: Series, onset: int) -> tuple[float, int | None]:
    """The loss level the climb left: the lowest median of 5 among the ``_PLATEAU`` points before ``onset``."""
    st, raw = _positive_log(loss)
    end = int(np.searchsorted(st, onset))  # the points before onset (the steps are sorted)
    if end == 0:
        return float("nan"), None
    lo = max(0, end - _PLATEAU)
    y = _median5(raw, lo, end)  # the medians of those points only
    k = lo + int(np.argmin(y))
    return float(math.exp(y[k - lo])), int(st[k])


def _first_above(loss: Series, onset: int, level: float, ratio: float) -> int | None:
    """First step from ``onset`` on where the loss is more than ``ratio`` x ``level``."""
    if not level == level:
        return None
    hit = np.flatnonzero((loss.steps >= onset) & np.isfinite(loss.values) & (loss.values > ratio * level))
    return int(loss.steps[hit[0]]) if hit.shape[0] else None


def _hinge(y: np.ndarray, i: int, before: int = 40, after: int = 20) -> int:
    """Refine a climb's start: the knot of the best ``a + b * min(0, t - t0) + r * max(0, t - t0)`` fit
    around ``i`` (two lines meeting at ``t0``, the later one rising and steeper).

    Exponential growth is a straight line in log space, so the knot is where growth began; the
    "left the minimum by 10%" index lags it by ln(1.1)/rate steps, a lot for a slow climb, and more when
    the loss was still falling where the climb began (hence the slope ``b`` before the knot).
    """
    lo, hi = max(0, i - before), min(y.shape[0], i + after)
    t = np.arange(lo, hi, dtype=np.float64)
    seg = y[lo:hi]
    best, best_sse = i, np.inf
    for t0 in range(max(lo + 2, i - 25), min(i + 1, hi - 2)):
        a = np.column_stack([np.ones_like(t), np.minimum(0.0, t - t0), np.maximum(0.0, t - t0)])
        coef, *_ = np.linalg.lstsq(a, seg, rcond=None)
        sse = float(np.sum((seg - a @ coef) ** 2))
        if coef[2] > 0 and coef[2] > coef[1] and sse < best_sse:
            best, best_sse = t0, sse
    return best


def _departure(loss: Series, e: Episode, p: SpikeParams) -> int:
    """Walk back from the detected onset over the points already climbing away from the expectation."""
    ok = np.isfinite(loss.values) & (loss.values > 0)
    st, y = loss.steps[ok], np.log(loss.values[ok])
    i = e.index
    # The noise scale at the onset alone (trailing_expectation's, not the window statistics of every point).
    base, sigma = math.log(e.expected), noise_at(y, p, i) if i < y.shape[0] else p.noise_floor
    floor = max(sigma, math.log(1.05))
    while i > 0 and y[i - 1] - base > floor and y[i - 1] < y[i]:
        i -= 1
    return int(st[_hinge(y, i)])


def _previous_step(s: Series, step: int) -> int | None:
    i = int(np.searchsorted(s.steps, step)) - 1
    return int(s.steps[i]) if i >= 0 else None


def _last_good(s: Series, step: int) -> int | None:
    """The last step before ``step`` with a finite value (the steps are sorted: those before ``step``
    are a prefix; no mask or copy of the series)."""
    at = last_finite(s.values[: int(np.searchsorted(s.steps, step))])
    return int(s.steps[at]) if at is not None else None
