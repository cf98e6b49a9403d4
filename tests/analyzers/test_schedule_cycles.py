"""Standard schedules beyond one decay: polynomial, cosine with restarts, timm cycles, CyclicLR; a
saturating-exponential warmup. Recognised (no WC108), and a scheduled restart is WC104 at info."""

from __future__ import annotations

import numpy as np
import pytest
import schedules as sch
from factories import run_events, write_events

from warmcheck.config import Settings
from warmcheck.model import Series
from warmcheck.pipeline import analyze
from warmcheck.schedule import infer_schedule

P = 1e-3


def _infer(lr: np.ndarray, interval: int = 1):
    steps = np.arange(0, lr.shape[0], interval)
    return infer_schedule(Series("lr", steps.astype(np.int64), lr[steps].astype(np.float32).astype(np.float64),
                                 np.zeros(steps.shape[0])))


@pytest.mark.parametrize("power", [2.0, 3.0])
def test_polynomial_decay(power: float) -> None:
    s = _infer(sch.hf_polynomial(P, 50, 1000, power=power))
    assert (s.warmup_end_step, s.warmup_shape, s.decay_shape) == (50, "linear", "polynomial")
    assert s.cycles is None and s.decay_residual < 1e-3


@pytest.mark.parametrize("interval", [1, 3])
def test_cosine_with_hard_restarts(interval: int) -> None:
    lr = sch.hf_cosine_hard_restarts(P, 30, 630, cycles=4)  # cycles of 150 updates from 30
    s = _infer(lr, interval)
    assert s.decay_shape == "cosine-restarts" and s.cycles is not None
    assert s.cycles.restarts == tuple(int(np.ceil(r / interval) * interval) for r in (180, 330, 480))
    assert abs(s.cycles.length - 150) <= interval and s.cycles.peak_ratio == pytest.approx(1, abs=0.01)


def test_timm_cycles_with_decay() -> None:
    s = _infer(sch.timm_cycles(P, 20, 200, 820, cycle_limit=4, cycle_decay=0.5))
    assert s.warmup_end_step == 20 and s.decay_shape == "cosine-restarts"
    assert s.cycles.restarts == (220, 420, 620) and s.cycles.peak_ratio == pytest.approx(0.5, rel=1e-3)


def test_timm_cycles_growing() -> None:
    s = _infer(sch.timm_cycles(P, 10, 100, 10 + 100 + 200 + 400, cycle_limit=3, cycle_mul=2.0))
    assert s.decay_shape == "cosine-restarts" and s.cycles.restarts == (110, 310) and s.cycles.length == 100


@pytest.mark.parametrize("mode,ratio", [("triangular", 1.0), ("triangular2", 0.5), ("exp_range", None)])
def test_cyclic_lr(mode: str, ratio: float | None) -> None:
    s = _infer(sch.torch_cyclic(1e-4, 2e-3, 60, 600, mode=mode, gamma=0.9995))
    assert (s.warmup_end_step, s.decay_shape) == (60, "cyclic")
    assert s.cycles.restarts == (120, 240, 360, 480) and s.cycles.length == 120
    if ratio is not None:
        assert s.cycles.amplitude_ratio == pytest.approx(ratio, rel=1e-3)


@pytest.mark.parametrize("lr", [
    sch.torch_cosine_annealing(P, 200, 600),  # run past T_max: climbs back up along a cosine
    np.concatenate([sch.hf_cosine(P, 50, 500), sch.hf_cosine(P, 50, 300)]),  # a second warmup
    np.concatenate([sch.hf_linear(P, 50, 300), sch.hf_linear(P, 50, 300)]),  # one triangle-like restart
], ids=["cosine-past-tmax", "second-warmup-cosine", "second-warmup-linear"])
def test_unscheduled_rises_are_not_cycles(lr: np.ndarray) -> None:
    s = _infer(lr)
    assert s.cycles is None and s.rise_after_peak is not None


def test_saturating_exponential_warmup_is_exponential() -> None:
    k = np.arange(75)
    warm = P * (1 - np.exp(-(k + 1) / 15)) / (1 - np.exp(-75 / 15))
    lr = np.concatenate([warm, P * 0.5 * (1 + np.cos(np.pi * np.arange(225) / 225))])
    s = _infer(lr)
    assert (s.warmup_end_step, s.warmup_shape, s.decay_shape) == (74, "exponential", "cosine")


def test_scheduled_restart_is_wc104_info_and_unscheduled_stays_a_warning(tmp_path) -> None:
    for name, lr in (("restarts", sch.hf_cosine_hard_restarts(P, 30, 630, cycles=4)),
                     ("past", sch.torch_cosine_annealing(P, 200, 600))):
        write_events(tmp_path / name / "events.out.tfevents.1700000000.h.1.0",
                     run_events(range(lr.shape[0]), {"lr": lr, "loss": np.linspace(3, 2, lr.shape[0])}))
    runs = {r.name.rsplit("/", 1)[-1]: r for r in analyze([str(tmp_path / "restarts"), str(tmp_path / "past")],
                                                          Settings()).runs}
    found = {f.code: f for f in runs["restarts"].findings}
    assert "WC108" not in found and found["WC104"].severity.value == "info"
    assert found["WC104"].details["scheduled"] is True and found["WC104"].step == 180
    assert "restarts as scheduled" in found["WC104"].message
    past = {f.code: f for f in runs["past"].findings}
    assert past["WC104"].severity.value == "warning" and "scheduled" not in past["WC104"].details
