"""WC3xx: loss and gradient-norm spikes, each placed in its learning-rate phase."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from ..config import Settings
from ..detectors import Detection, Episode, SpikeParams, detect, filtered_nan
from ..findings import Finding, make
from ..model import Role, Run, Schedule, Series, last_finite


def loss_params(s: Settings) -> SpikeParams:
    """The default detector's thresholds for the loss, from settings."""
    return SpikeParams(z=s.spike_z, min_ratio=s.spike_min_ratio, window=s.spike_window, early_ratio=EARLY_RATIO)


def grad_params(s: Settings) -> SpikeParams:
    """Gradient norms are burstier than losses: the same rule with a higher ratio, and no early rule
    (a gradient norm grows in the first steps by nature)."""
    return replace(loss_params(s), min_ratio=s.grad_spike_min_ratio, early_ratio=None)


EARLY_RATIO = 2.0  # the loss at twice its initial level before the trailing window is full (see SpikeParams)


def lr_phase(step: int, sched: Schedule | None, after: int) -> str:
    """Where ``step`` sits in the LR schedule: warmup, end of warmup, after warmup, at peak, decay."""
    if sched is None:
        return "unknown"
    end = sched.warmup_end_step
    if end is None:
        return "warmup"
    if step < end:
        tenth = max(2, (end - sched.first_step) // 10)
        return "end of warmup" if step >= end - tenth else "warmup"
    if step <= end + after:
        return "just after warmup"
    return "at peak" if sched.decay_shape in ("constant", "wsd", "none") else "decay"


def after_warmup_window(sched: Schedule | None, settings: Settings) -> int:
    """How many steps after the warmup end still count as "just after warmup"."""
    if settings.after_warmup_steps is not None:
        return settings.after_warmup_steps
    warm = sched.warmup_steps if sched is not None and sched.warmup_steps else 0
    return max(20, warm // 2)


# Severity: a spike is a warning (WC301) when it doubles the loss, or holds 1.5x for three consecutive logged
# points, or reaches 1.5x (or holds a median of 1.4x) and stays elevated for 10 steps and 10 points or more,
# the level it held (the median of its points) being itself a spike: >= min_ratio and >= z noise scales
# above the expectation (bad batches mixed with good ones dip inside such a stretch; a very noisy loss
# wanders that far and back without holding a level); anything smaller or shorter is WC304 (info). Per-batch losses
# logged every few steps have heavy tails (a 1.7x single point is a 3-sigma event in some real runs), and
# one bad batch does no lasting harm; a loss held high for many steps does.
MAJOR_RATIO = 2.0
SUSTAINED_RATIO = 1.5
SUSTAINED_POINTS = 3
LONG_STEPS = 10  # steps and logged points
LONG_LEVEL = 1.4  # a median this high is a 1.5x level whose noisy peak measured a little under 1.5x
_CAUSES = "the usual causes: warmup too short, peak LR too high, no gradient clipping"


class SpikeAnalyzer:
    """WC301 loss spikes, WC302 gradient-norm spikes, WC303 clipping saturation."""

    codes = frozenset({"WC301", "WC302", "WC303", "WC304"})

    def check(self, run: Run, settings: Settings) -> Iterator[Finding]:
        """See :class:`~warmcheck.analyzers.interface.Analyzer`."""
        sched = run.schedules[0] if run.schedules else None
        after = after_warmup_window(sched, settings)
        loss, gn = run.primary(Role.LOSS), run.primary(Role.GRAD_NORM)
        found = run.detections or detections(run, settings)
        grad_eps: tuple[Episode, ...] = ()
        if gn is not None and gn.points:
            grad = found["grad_norm"]
            grad_eps = grad.episodes
            for e in grad.episodes:
                if not _is_divergence(e, settings.divergence_ratio):
                    yield self._grad(run, gn, e, sched, after, grad)
            yield from _clipping(run, gn)
        if loss is not None and loss.points:
            loss = true_loss(loss, gn)
            det = found["loss"]
            for e in det.episodes:
                if det.detector == "warmcheck" and _is_divergence(e, settings.divergence_ratio):
                    continue  # a spike that never comes down is a divergence (WC403)
                yield self._loss(run, loss, e, sched, after, det, grad_eps)

    def _loss(self, run: Run, s: Series, e: Episode, sched: Schedule | None, after: int, det: Detection,
              grad_eps: tuple[Episode, ...]) -> Finding:
        phase = lr_phase(e.onset, sched, after)
        lead = _lead(e, grad_eps)
        at = last_finite(s.values)
        last = int(s.steps[at if at is not None else s.steps.shape[0]])  # (an episode has finite points)
        steps = (e.recovered if e.recovered is not None else last + 1) - e.onset
        expected = e.expected_at_peak if e.expected_at_peak is not None else e.expected
        if e.recovered is not None:
            back = (f"elevated for {steps} step{'s' if steps != 1 else ''}, back in its normal band at step "
                    f"{e.recovered}")
        else:
            back = f"not recovered: still elevated at the last logged step {last} ({steps} steps)"
        msg = (f"loss spike at step {e.onset}: {e.peak_value:.4g} at step {e.peak} is {e.ratio:.3g}x the expected "
               f"{expected:.4g}; {back}; LR phase: {phase}")
        if lead is not None:
            msg += f"; the gradient norm spiked {lead} step{'s' if lead != 1 else ''} earlier"
        if phase in ("end of warmup", "just after warmup"):
            msg += f" ({_CAUSES})"
        details: dict[str, object] = {
            "detector": det.detector, "onset_step": e.onset, "peak_step": e.peak, "peak_value": e.peak_value,
            "expected": e.expected, "expected_at_peak": expected, "ratio": e.ratio, "recovered_step": e.recovered,
            "end_step": e.end, "elevated_steps": steps, "elevated_points": e.points, "phase": phase,
            "grad_norm_lead_steps": lead, **{f"threshold_{k}": v for k, v in det.params.items()},
        }
        if e.z == e.z:  # not NaN
            details["z"] = e.z
        held = e.held_ratio if e.held_ratio is not None else 0.0
        level = e.median_ratio if e.median_ratio is not None else 0.0
        level_z = math.log(level) / e.noise if level > 0 and e.noise else 0.0
        min_ratio, z = float(det.params.get("min_ratio", 1.3)), float(det.params.get("z", 4.0))
        if det.detector != "warmcheck":  # the published rules measure no per-point ratios: the peak and length
            held = e.ratio if e.points >= SUSTAINED_POINTS else 0.0
        fired = [name for name, ok in (
            ("major", e.ratio >= MAJOR_RATIO),
            ("sustained", held >= SUSTAINED_RATIO),
            ("long", (e.ratio >= SUSTAINED_RATIO or level >= LONG_LEVEL) and steps >= LONG_STEPS
             and e.points >= LONG_STEPS and level >= min_ratio and level_z >= z)) if ok]
        minor = not fired
        details.update({"held_ratio": e.held_ratio, "median_ratio": e.median_ratio,
                        "threshold_major_ratio": MAJOR_RATIO,
                        "threshold_sustained": f">= {SUSTAINED_RATIO}x at {SUSTAINED_POINTS} consecutive "
                                               "points",
                        "median_z": level_z,
                        "threshold_long": f">= {SUSTAINED_RATIO}x (or a median >= {LONG_LEVEL}x), elevated >= "
                                          f"{LONG_STEPS} steps and points, median >= {min_ratio:g}x and >= {z:g} "
                                          "noise scales",
                        "warning_rules": fired})
        return make("WC304" if minor else "WC301", ("minor " if minor else "") + msg, run=run.name, tag=s.tag,
                    step=e.onset, step_end=e.end, details=details)

    def _grad(self, run: Run, s: Series, e: Episode, sched: Schedule | None, after: int, det: Detection) -> Finding:
        phase = lr_phase(e.onset, sched, after)
        back = f"back by step {e.recovered}" if e.recovered is not None else "not back by the end"
        return make("WC302", f"gradient-norm spike at step {e.onset}: {e.peak_value:.4g} is {e.ratio:.3g}x the "
                    f"expected {e.expected:.4g}; {back}; LR phase: {phase}", run=run.name, tag=s.tag,
                    step=e.onset, step_end=e.end,
                    details={"onset_step": e.onset, "peak_step": e.peak, "peak_value": e.peak_value,
                             "expected": e.expected, "ratio": e.ratio, "z": e.z, "recovered_step": e.recovered,
                             "phase": phase,
                             **{f"threshold_{k}": v for k, v in det.params.items()}})


def detections(run: Run, settings: Settings) -> dict[str, Detection]:
    """Spike detections of a run, computed once: ``loss`` (the configured detector), ``loss:robust``
    (the default detector, which divergence always uses) and ``grad_norm``."""
    out: dict[str, Detection] = {}
    loss, gn = run.primary(Role.LOSS), run.primary(Role.GRAD_NORM)
    if loss is not None and loss.points:
        loss = true_loss(loss, gn)
        robust = detect(loss.steps, loss.values, "warmcheck", loss_params(settings))
        out["loss:robust"] = robust
        out["loss"] = robust if settings.spike_detector == "warmcheck" else detect(
            loss.steps, loss.values, settings.spike_detector, loss_params(settings))
    if gn is not None and gn.points:
        out["grad_norm"] = detect(gn.steps, gn.values, "warmcheck", grad_params(settings))
    return out


def true_loss(loss: Series, gn: Series | None) -> Series:
    """The loss with the values a logger wrote in place of a NaN (0.0 or a repeated average beside a
    non-finite gradient norm, :func:`~warmcheck.detectors.filtered_nan`) set back to NaN."""
    if gn is None or not gn.points or not loss.points:
        return loss
    found = filtered_nan(loss.steps, loss.values, gn.steps, gn.values)
    if found is None:
        return loss
    return replace(loss, values=np.where(found[1], np.nan, loss.values))


def spikes_summary(run: Run) -> dict[str, object] | None:
    """The JSON ``spikes`` object of a run: detector, spike score and episode counts."""
    if not run.detections:
        return None
    out: dict[str, object] = {}
    for key in ("loss", "grad_norm"):
        d = run.detections.get(key)
        if d is None:
            continue
        out[key] = {"detector": d.detector, "score": round(d.score, 6), "episodes": len(d.episodes),
                    "flagged": d.flagged, "evaluated": d.evaluated, "applicable": d.applicable,
                    **({"note": d.note} if d.note else {})}
    return out


def _is_divergence(e: Episode, ratio: float) -> bool:
    """An episode that never comes back down and ends far above where it started (WC403's business)."""
    return e.recovered is None and e.ratio >= ratio


def _lead(e: Episode, grad_eps: tuple[Episode, ...], horizon: int = 20) -> int | None:
    """Steps by which a gradient-norm spike preceded (or coincided with) a loss spike."""
    leads = [e.onset - g.onset for g in grad_eps if 0 <= e.onset - g.onset <= horizon]
    return min(leads) if leads else None


def _clipping(run: Run, s: Series) -> Iterator[Finding]:
    """A logged gradient norm pinned at one value: the post-clip norm, or clipping that always fires."""
    finite, top = 0, -math.inf
    for seg in _finite_chunks(s.values):
        finite += seg.shape[0]
        if seg.shape[0]:
            top = max(top, float(seg.max()))
    if finite < 20:
        return
    tol = 1e-6 * max(abs(top), 1e-12)
    pinned = sum(int(np.count_nonzero(np.abs(seg - top) <= tol)) for seg in _finite_chunks(s.values))
    share = pinned / finite
    if pinned >= 5 and share >= 0.2:
        first = next(a + int(np.argmax(near)) for a, near in _chunks_where(s.values, top, tol) if near.any())
        yield make("WC303", f"gradient norm pinned at {top:.4g} for {share:.0%} of the logged steps: clipping "
                   "saturates (or the logged norm is the clipped one, which hides spikes)", run=run.name, tag=s.tag,
                   step=int(s.steps[first]),
                   details={"clip_value": top, "share": share, "points": pinned, "threshold_share": 0.2})


_CHUNK = 1 << 16  # points at a time: temporaries of a few hundred kilobytes, not of the whole series


def _finite_chunks(values: np.ndarray) -> Iterator[np.ndarray]:
    """The finite values, a chunk at a time (the whole series' finite values, in order)."""
    for a in range(0, values.shape[0], _CHUNK):
        seg = values[a : a + _CHUNK]
        ok = np.isfinite(seg)
        yield seg if ok.all() else seg[ok]


def _chunks_where(values: np.ndarray, top: float, tol: float) -> Iterator[tuple[int, np.ndarray]]:
    """(start, mask) per chunk: the finite values within ``tol`` of ``top``."""
    for a in range(0, values.shape[0], _CHUNK):
        seg = values[a : a + _CHUNK]
        ok = np.isfinite(seg)
        near = np.zeros(seg.shape[0], dtype=bool)
        near[ok] = np.abs(seg[ok] - top) <= tol
        yield a, near
