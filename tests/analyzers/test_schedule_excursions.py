"""Brief LR excursions (WC111): found, left out of the schedule's inference; restarts and step decays are not."""

from __future__ import annotations

import numpy as np
import pytest
import schedules as sch
from factories import run_events, write_events

from warmcheck.config import Settings
from warmcheck.findings import RULES
from warmcheck.model import Series
from warmcheck.pipeline import analyze
from warmcheck.schedule import infer_schedule

P = 2e-3


def _series(values: np.ndarray, steps: np.ndarray | None = None) -> Series:
    steps = np.arange(values.shape[0]) if steps is None else steps
    return Series("lr", steps.astype(np.int64), values.astype(np.float64), np.zeros(values.shape[0]))


@pytest.mark.parametrize("decay", ["constant", "cosine"])
def test_x20_for_five_steps_is_an_excursion_not_the_peak(decay: str) -> None:
    lr = sch.hf_constant(P, 50, 450) if decay == "constant" else sch.hf_cosine(P, 50, 450)
    lr[200:205] *= 20
    s = infer_schedule(_series(lr))
    assert (s.warmup_end_step, s.warmup_steps, s.peak_lr) == (50, 50, pytest.approx(P))
    assert s.decay_shape == decay and s.rise_after_peak is None
    (e,) = s.excursions
    assert (e.start, e.end, e.points) == (200, 204, 5) and e.factor == pytest.approx(20, rel=1e-3)
    assert e.before == pytest.approx(lr[199]) and e.after == pytest.approx(lr[205])


def test_lr_zeroed_for_three_steps_during_warmup() -> None:
    lr = sch.hf_cosine(P, 100, 600)
    lr[40:43] = 0.0
    s = infer_schedule(_series(lr))
    assert (s.warmup_end_step, s.warmup_shape) == (100, "linear")
    (e,) = s.excursions
    assert (e.start, e.end) == (40, 42) and e.factor == 0.0


def test_sparse_log_with_one_point_off() -> None:
    lr = sch.hf_cosine(P, 500, 5000)
    steps = np.arange(0, 5000, 50)
    values = lr[steps].copy()
    values[40] *= 0.3  # one logged point (step 2000) at 0.3x
    s = infer_schedule(_series(values, steps))
    assert [(e.start, e.end) for e in s.excursions] == [(2000, 2000)] and s.warmup_end_step == 500


@pytest.mark.parametrize("lr", [
    np.concatenate([sch.hf_cosine(P, 50, 300), sch.hf_cosine(P, 50, 300)]),  # a second warmup: stays
    np.concatenate([np.full(100, P), np.full(100, P / 10), np.full(100, P / 100)]),  # step decay: stays down
    np.concatenate([sch.hf_linear(P, 20, 200)[:150], np.full(150, P)]),  # a jump that stays
    np.repeat(sch.hf_linear(P, 40, 400)[:12], 30),  # a staircase
], ids=["second-warmup", "step-decay", "jump-and-stay", "staircase"])
def test_jumps_that_stay_are_not_excursions(lr: np.ndarray) -> None:
    assert infer_schedule(_series(lr)).excursions == ()


def test_wc111_finding_and_json(tmp_path) -> None:
    lr = sch.hf_constant(P, 50, 450)
    lr[200:205] *= 20
    write_events(tmp_path / "events.out.tfevents.1700000000.h.1.0",
                 run_events(range(450), {"lr": lr, "loss": np.linspace(3, 2, 450)}))
    (run,) = analyze([str(tmp_path)], Settings()).runs
    found = {f.code: f for f in run.findings}
    assert RULES["WC111"].slug == "lr-excursion"
    f = found["WC111"]
    assert (f.step, f.step_end, f.severity.value) == (200, 204, "warning")
    assert "jumped x20 at steps 200..204" in f.message
    assert f.details["factor"] == pytest.approx(20) and f.details["threshold_factor"] == 2.0
    assert not {"WC104", "WC108"} & set(found)
    assert run.schedules[0].as_dict()["excursions"][0]["start"] == 200
    (configured,) = analyze([str(tmp_path)], Settings(warmup_steps=50)).runs
    assert not [g for g in configured.findings if g.code == "WC201"]
