"""Synthetic training runs with realistic noise, and planted spikes, divergences and disguised NaN.

Shared by the unit tests and the calibration benchmark (``bench/calibrate.py``). A healthy loss
falls fast then flattens (``end + (start - end) exp(-t / tau)``) with multiplicative noise that is
larger early in training, correlated from step to step (AR(1)), plus small harmless wobbles
(1.03-1.10x for a few steps) like real data loaders produce; real healthy runs in the corpus show
single-step outliers up to 1.22x, and its truths call a loss "elevated" above 1.25x. The gradient
norm decays with heavier noise. Everything is seeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from warmcheck.model import Format, Fragment, Run, SourceInfo, SourceRead
from warmcheck.readers.assemble import assemble_run


@dataclass
class Synthetic:
    """A run's series, what was planted, and where."""

    loss: np.ndarray
    lr: np.ndarray
    grad_norm: np.ndarray
    warmup: int
    spikes: list[tuple[int, float]] = field(default_factory=list)  # (step, factor)
    divergence: int | None = None
    disguised: int | None = None

    def run(self, name: str = "synthetic") -> Run:
        n = self.loss.shape[0]
        steps = np.arange(n, dtype=np.int64)
        wall = 1.7e9 + steps.astype(float)
        frags = [Fragment("train/loss", steps, self.loss, wall), Fragment("train/lr", steps, self.lr, wall),
                 Fragment("train/grad_norm", steps, self.grad_norm, wall)]
        return assemble_run(name, name, [SourceRead(SourceInfo(name, Format.TFEVENTS), frags)])


def healthy(seed: int, n: int = 600, warmup: int | None = None) -> Synthetic:
    """A healthy run: warmup + cosine LR, a noisy fast early descent, no instability."""
    rng = np.random.default_rng(seed)
    warmup = warmup if warmup is not None else int(rng.integers(20, 120))
    start, end = rng.uniform(6.0, 11.0), rng.uniform(1.5, 3.5)
    tau = rng.uniform(0.05, 0.3) * n
    t = np.arange(n, dtype=float)
    base = end + (start - end) * np.exp(-t / tau)
    sigma = rng.uniform(0.01, 0.03) + rng.uniform(0.02, 0.05) * np.exp(-t / (0.2 * n))  # noisier early
    phi = rng.uniform(0.0, 0.5)
    eps = rng.normal(0.0, 1.0, n)
    ar = np.empty(n)
    ar[0] = eps[0]
    for i in range(1, n):
        ar[i] = phi * ar[i - 1] + math.sqrt(1 - phi**2) * eps[i]
    loss = base * np.exp(sigma * ar)
    for _ in range(int(rng.integers(0, 4))):  # harmless wobbles, below the 1.25x "elevated" line of the
        at, width = int(rng.integers(10, n - 10)), int(rng.integers(1, 6))  # real-run truths
        loss[at : at + width] *= rng.uniform(1.03, 1.10)
    peak = 10 ** rng.uniform(-4.5, -2.5)
    k = np.arange(n, dtype=float)
    lr = np.where(k < warmup, peak * k / warmup, peak * 0.5 * (1 + np.cos(np.pi * (k - warmup) / (n - warmup))))
    gn = (0.4 + 3.0 * np.exp(-t / (0.1 * n))) * np.exp(rng.normal(0, 0.15, n))
    return Synthetic(loss.astype(np.float32).astype(float), lr.astype(np.float32).astype(float),
                     gn.astype(np.float32).astype(float), warmup)


def with_spike(run: Synthetic, at: int, factor: float, width: int = 1, grad_lead: int | None = None) -> Synthetic:
    """Multiply the loss by ``factor`` at ``at``, fading over ``width`` steps (and the grad norm earlier)."""
    for k in range(width):
        if at + k < run.loss.shape[0]:
            run.loss[at + k] *= factor ** (1.0 - k / width)
    if grad_lead is not None and at - grad_lead >= 0:
        run.grad_norm[at - grad_lead] *= 3 * factor
    run.spikes.append((at, factor))
    return run


def with_divergence(run: Synthetic, onset: int, rate: float = 0.15, nan_after: float = 1e4) -> Synthetic:
    """From ``onset`` the loss grows by ``exp(rate)`` per step, and is NaN once ``nan_after`` x larger."""
    n = run.loss.shape[0]
    growth = np.exp(rate * np.maximum(np.arange(n) - onset, 0))
    run.loss = run.loss * growth
    run.grad_norm = run.grad_norm * growth
    blown = np.flatnonzero(growth > nan_after)
    if blown.shape[0]:
        run.loss[blown[0] :] = np.nan
        run.grad_norm[blown[0] :] = np.nan
    run.divergence = onset
    return run


def with_disguised_nan(run: Synthetic, at: int, written: str = "zero") -> Synthetic:
    """HF Trainer's ``logging_nan_inf_filter``: a NaN loss logged as 0.0 (or the running average)."""
    run.grad_norm[at:] = np.nan
    if written == "zero":
        run.loss[at:] = 0.0
    else:
        run.loss[at:] = float(np.mean(run.loss[:at]))
    run.disguised = at
    return run


def with_sustained_spike(run: Synthetic, start: int, length: int, factor: float, ramp: int = 2) -> Synthetic:
    """The loss held at ``factor`` x its healthy value for ``length`` steps from ``start``, rising over
    ``ramp`` steps and coming back down over ``ramp`` steps after it (a plateau, not a single bad batch)."""
    n = run.loss.shape[0]
    k = np.arange(n, dtype=float)
    up = np.clip((k - start + 1) / max(ramp, 1), 0.0, 1.0)
    down = np.clip((start + length + ramp - 1 - k) / max(ramp, 1), 0.0, 1.0)
    run.loss = run.loss * factor ** np.minimum(up, down)
    run.spikes.append((start, factor))
    return run


def with_hidden_blowup(run: Synthetic, onset: int, rate: float = 1.0, nan_after: float = 1e10,
                       written: str = "zero") -> Synthetic:
    """An HF Trainer blow-up: the loss grows by ``exp(rate)`` per step from ``onset`` while finite; once
    ``nan_after`` x up it is NaN, which ``logging_nan_inf_filter`` logs as 0.0 (or the running average)
    beside a NaN gradient norm. ``divergence`` is the onset, ``disguised`` the first filtered step."""
    n = run.loss.shape[0]
    growth = np.exp(np.minimum(rate * np.maximum(np.arange(n) - onset, 0), 700.0))  # float64 ends near e^709
    run.loss = run.loss * growth
    run.grad_norm = run.grad_norm * growth
    blown = np.flatnonzero(growth > nan_after)
    run.divergence = onset
    if blown.shape[0]:
        with_disguised_nan(run, int(blown[0]), written)
    run.divergence = onset
    return run


def with_overflowing_grad_norm(run: Synthetic, onset: int, rate: float = 1.0, inf_after: float = 1e20,
                               nan_after: float = 1e25) -> Synthetic:
    """A plain loop that logs what it computed: the loss grows from ``onset`` and stays finite (huge) while
    the gradient norm has already overflowed to inf (``inf_after`` x up); the loss is NaN once
    ``nan_after`` x up. Nothing is disguised: the finite losses are real."""
    n = run.loss.shape[0]
    growth = np.exp(np.minimum(rate * np.maximum(np.arange(n) - onset, 0), 700.0))
    run.loss = run.loss * growth
    run.grad_norm = np.where(growth > inf_after, np.inf, run.grad_norm * growth)
    run.loss[growth > nan_after] = np.nan
    run.grad_norm[growth > nan_after] = np.nan
    run.divergence = onset
    return run
