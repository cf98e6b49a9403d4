"""LR schedules from the closed forms in domain/schedule-conventions.md, as each framework logs them.

Every schedule function returns ``LR_used(k)`` for update ``k = 0 .. T-1`` (float64). ``logged``
turns that into what a logger writes: labels ``s = k - delta`` (0-based with delta 0, or 1-based with
delta -1), kept every ``interval`` steps, values rounded to float32 when the format stores float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from warmcheck.model import Series


def hf_linear(P: float, W: int, T: int) -> np.ndarray:
    k = np.arange(T, dtype=float)
    return np.where(k < W, P * k / max(1, W), P * np.maximum(0, (T - k) / max(1, T - W)))


def hf_cosine(P: float, W: int, T: int, cycles: float = 0.5) -> np.ndarray:
    k = np.arange(T, dtype=float)
    prog = (k - W) / max(1, T - W)
    return np.where(k < W, P * k / max(1, W), P * np.maximum(0, 0.5 * (1 + np.cos(2 * np.pi * cycles * prog))))


def hf_constant(P: float, W: int, T: int) -> np.ndarray:
    k = np.arange(T, dtype=float)
    return np.where(k < W, P * k / max(1, W), P)


def hf_inverse_sqrt(P: float, W: int, T: int) -> np.ndarray:
    k = np.arange(T, dtype=float)
    tau = W or 10_000
    return np.where(k < W, P * k / max(1, W), P / np.sqrt(np.maximum((k + tau - W) / tau, 1e-12)))


def hf_wsd(P: float, W: int, T: int, decay: int, m: float = 0.0) -> np.ndarray:
    k = np.arange(T, dtype=float)
    stable_end = T - decay
    warm = P * (m + (1 - m) * k / max(1, W))
    prog = np.clip((k - stable_end) / decay, 0, 1)
    dec = P * (m + (1 - m) * 0.5 * (1 + np.cos(np.pi * prog)))
    return np.where(k < W, warm, np.where(k < stable_end, P, dec))


def hf_cosine_with_min_lr(P: float, W: int, T: int, m: float = 0.1) -> np.ndarray:
    k = np.arange(T, dtype=float)
    prog = (k - W) / max(1, T - W)
    return np.where(k < W, P * k / max(1, W), P * (m + (1 - m) * 0.5 * (1 + np.cos(np.pi * prog))))


def hf_cosine_warmup_with_min_lr(P: float, W: int, T: int, m: float = 0.1) -> np.ndarray:
    k = np.arange(T, dtype=float)
    prog = (k - W + 1) / max(1, T - W)
    return np.where(k < W - 1, P * (k + 1) / W, P * (m + (1 - m) * 0.5 * (1 + np.cos(np.pi * prog))))


def torch_linear_then_cosine(P: float, N: int, T: int, sf: float = 0.1, eta_min: float = 0.0) -> np.ndarray:
    """``SequentialLR([LinearLR(sf, 1.0, N), CosineAnnealingLR(T - N, eta_min)], milestones=[N])``."""
    k = np.arange(T, dtype=float)
    warm = P * (sf + (1 - sf) * np.minimum(N, k) / N)
    cos = eta_min + (P - eta_min) * 0.5 * (1 + np.cos(np.pi * (k - N) / (T - N)))
    return np.where(k < N, warm, cos)


def torch_onecycle(P: float, T: int, pct: float = 0.3, div: float = 25.0, final_div: float = 1e4) -> np.ndarray:
    initial, final = P / div, P / div / final_div
    end1, end2 = float(pct * T) - 1, T - 1.0
    out = []
    for k in range(T):
        if k <= end1:
            frac, start, stop = k / end1, initial, P
        else:
            frac, start, stop = (k - end1) / (end2 - end1), P, final
        out.append(stop + (start - stop) / 2.0 * (math.cos(math.pi * frac) + 1))
    return np.array(out)


def timm_cosine(P: float, warmup_t: int, t_initial: int, T: int, prefix: bool, warmup_lr_init: float = 1e-5,
                lr_min: float = 1e-5) -> np.ndarray:
    out = []
    for t in range(T):
        if t < warmup_t:
            out.append(warmup_lr_init + t * (P - warmup_lr_init) / warmup_t)
        else:
            tt = t - warmup_t if prefix else t
            out.append(lr_min + 0.5 * (P - lr_min) * (1 + math.cos(math.pi * min(tt, t_initial) / t_initial)))
    return np.array(out)


def nanogpt(P: float, W: int, D: int, T: int, min_lr: float) -> np.ndarray:
    out = []
    for it in range(T):
        if it < W:
            out.append(P * (it + 1) / (W + 1))
        elif it > D:
            out.append(min_lr)
        else:
            ratio = (it - W) / (D - W)
            out.append(min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (P - min_lr))
    return np.array(out)


def deepspeed_warmup(P: float, W: int, T: int, kind: str = "log", lo: float = 0.0, decay: bool = False) -> np.ndarray:
    """``WarmupLR``/``WarmupDecayLR``: ``i = k - 1``; two updates at the minimum."""
    W = max(2, W)
    out = []
    for k in range(T):
        i = k - 1
        if i < 0:
            gamma = 0.0
        elif i < W:
            gamma = math.log(i + 1) / math.log(W) if kind == "log" else i / W
        else:
            gamma = max(0.0, (T - i) / max(1.0, T - W)) if decay else 1.0
        out.append(lo + (P - lo) * gamma)
    return np.array(out)


def book_appendix_d(P: float = 1e-3, T: int = 135, ratio: float = 0.2, init: float = 1e-5,
                    min_lr: float = 1e-5) -> np.ndarray:
    W = int(ratio * T)
    out = []
    for k in range(T):
        if k < W:
            out.append(init + k * (P - init) / W)
        else:
            out.append(min_lr + (P - min_lr) * 0.5 * (1 + math.cos(math.pi * (k - W) / (T - W))))
    return np.array(out)


def keras_cosine_decay(P: float, W: int, D: int, init: float = 0.0, alpha: float = 0.0) -> np.ndarray:
    """Keras 3 ``CosineDecay(init, decay_steps=D, warmup_target=P, warmup_steps=W)``: total W + D."""
    k = np.arange(W + D, dtype=float)
    warm = init + (P - init) * k / W
    dec = P * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * np.minimum(k - W, D) / D)) + alpha)
    return np.where(k < W, warm, dec)


def optax_warmup_cosine(P: float, W: int, decay_steps: int, init: float = 0.0, end: float = 0.0) -> np.ndarray:
    """optax ``warmup_cosine_decay_schedule``: ``decay_steps`` includes the warmup."""
    k = np.arange(decay_steps, dtype=float)
    warm = init + (P - init) * k / W
    dec = end + (P - end) * 0.5 * (1 + np.cos(np.pi * (k - W) / (decay_steps - W)))
    return np.where(k < W, warm, dec)


@dataclass(frozen=True)
class Logged:
    series: Series
    k_star: int  # updates below the peak (ground truth)
    first_peak_label: int  # label at which LR_used(k*) is logged


def logged(lr_used: np.ndarray, k_star: int, *, delta: int = 0, interval: int = 1, float32: bool = True,
           tag: str = "lr", one_based: bool | None = None) -> Logged:
    """What a logger writes: label ``s = k - delta``; labels kept when ``s % interval == 0`` (and s >= 1
    for 1-based labels: delta -1, or ``one_based`` for loggers that count completed updates)."""
    k = np.arange(lr_used.shape[0])
    labels = k - delta
    first = 1 if (delta == -1 if one_based is None else one_based) else 0
    keep = (labels % interval == 0) & (labels >= first)
    values = lr_used[keep].astype(np.float32).astype(np.float64) if float32 else lr_used[keep]
    s = labels[keep].astype(np.int64)
    series = Series(tag, s, values, np.zeros(s.shape[0]))
    return Logged(series, k_star, k_star - delta)


def hf_polynomial(P: float, W: int, T: int, power: float = 2.0, end: float = 1e-7) -> np.ndarray:
    """transformers ``get_polynomial_decay_schedule_with_warmup``."""
    k = np.arange(T, dtype=float)
    decay = (P - end) * np.clip(1 - (k - W) / (T - W), 0, 1) ** power + end
    return np.where(k < W, P * k / max(1, W), decay)


def hf_cosine_hard_restarts(P: float, W: int, T: int, cycles: int = 3) -> np.ndarray:
    """transformers ``get_cosine_with_hard_restarts_schedule_with_warmup``."""
    k = np.arange(T, dtype=float)
    prog = (k - W) / max(1, T - W)
    cos = np.where(prog >= 1, 0.0, 0.5 * (1 + np.cos(np.pi * ((cycles * prog) % 1.0))))
    return np.where(k < W, P * k / max(1, W), P * cos)


def timm_cycles(P: float, warmup_t: int, t_initial: int, T: int, cycle_limit: int, cycle_decay: float = 1.0,
                cycle_mul: float = 1.0, lr_min: float = 1e-5, warmup_lr_init: float = 1e-5) -> np.ndarray:
    """timm ``CosineLRScheduler`` with ``warmup_prefix=True`` and several cycles, per update."""
    out = []
    for t in range(T):
        if t < warmup_t:
            out.append(warmup_lr_init + t * (P - warmup_lr_init) / warmup_t)
            continue
        tt = t - warmup_t
        if cycle_mul != 1:
            i = math.floor(math.log(1 - tt / t_initial * (1 - cycle_mul), cycle_mul))
            t_i = cycle_mul**i * t_initial
            t_curr = tt - (1 - cycle_mul**i) / (1 - cycle_mul) * t_initial
        else:
            i, t_i, t_curr = tt // t_initial, t_initial, tt - t_initial * (tt // t_initial)
        if i >= cycle_limit:
            out.append(lr_min)
        else:
            top = P * cycle_decay**i
            out.append(lr_min + 0.5 * (top - lr_min) * (1 + math.cos(math.pi * t_curr / t_i)))
    return np.array(out)


def torch_cyclic(base: float, top: float, up: int, T: int, mode: str = "triangular",
                 gamma: float = 0.999) -> np.ndarray:
    """torch ``CyclicLR`` (step_size_down = step_size_up)."""
    out = []
    for k in range(T):
        cycle = math.floor(1 + k / (2 * up))
        x = 1.0 + k / (2 * up) - cycle
        scale = x / 0.5 if x <= 0.5 else (x - 1) / (0.5 - 1)
        height = (top - base) * scale
        if mode == "triangular2":
            height /= 2.0 ** (cycle - 1)
        elif mode == "exp_range":
            height *= gamma**k
        out.append(base + height)
    return np.array(out)


def torch_cosine_annealing(P: float, t_max: int, T: int, eta_min: float = 0.0) -> np.ndarray:
    """torch ``CosineAnnealingLR`` (no warmup), run for ``T`` steps: past ``t_max`` it climbs back up."""
    k = np.arange(T, dtype=float)
    return eta_min + (P - eta_min) * 0.5 * (1 + np.cos(np.pi * k / t_max))
