"""warmcheck.Monitor: the founding run fed step by step gives what analyze gives on the finished log."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import warmcheck
from warmcheck import Monitor, Settings, Severity
from warmcheck.model import Role

SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"


def finished(name: str, settings: Settings):
    (run,) = warmcheck.analyze([str(SAMPLES / name)], settings).runs
    return run


def replay(run, monitor: Monitor) -> list[tuple[int | str, str, int | None]]:
    """Feed every logged step of ``run`` to ``monitor``; (call step or "close", code, finding step)."""
    series = {role: run.primary(role) for role in (Role.LR, Role.LOSS, Role.GRAD_NORM)}
    steps = sorted({int(s) for ser in series.values() if ser is not None for s in ser.steps})
    lookup = {role: dict(zip(ser.steps.tolist(), ser.values.tolist(), strict=True))
              for role, ser in series.items() if ser is not None}
    out: list[tuple[int | str, str, int | None]] = []
    for step in steps:
        values = {role.value: lookup[role].get(step) for role in lookup}
        out.extend((step, f.code, f.step) for f in monitor.log(step, **values))
    out.extend(("close", f.code, f.step) for f in monitor.close())
    return out


def signature(findings) -> list[tuple[str, str, int | None]]:
    return sorted((f.code, f.severity.value, f.step) for f in findings)


@pytest.mark.parametrize("settings", [Settings(), Settings(warmup_steps=20), Settings(warmup_ratio=0.2),
                                      Settings(warmup_ratio=0.2, total_steps=135), Settings(warmup_steps=27)])
@pytest.mark.parametrize("every", [1, 10])
def test_founding_run_step_by_step_matches_analyze(settings, every):
    run = finished("founding_book_tb", settings)
    monitor = Monitor(settings, every=every)
    replay(run, monitor)
    assert signature(monitor.findings) == signature(run.findings)


def test_founding_mismatch_arrives_during_the_run():
    run = finished("founding_book_tb", Settings(warmup_steps=20))
    events = replay(run, Monitor(Settings(warmup_steps=20), every=1))
    ((at, code, step),) = events
    assert code == "WC201" and step == 27 and at != "close" and at < 60


@pytest.mark.parametrize("name", ["diverged", "loss_spike", "hf_trainer_state", "warmup_never_ends"])
def test_other_scenarios_match_analyze(name):
    run = finished(name, Settings())
    monitor = Monitor(every=5)
    replay(run, monitor)
    # WC0xx findings are about the log file (here the CSV's "nan" tokens); a monitor has no file.
    assert signature(monitor.findings) == signature(f for f in run.findings if not f.code.startswith("WC0"))


def test_nan_is_returned_by_the_call_that_logs_it_whatever_every_says():
    monitor = Monitor(every=1000)
    for step in range(50):
        assert monitor.log(step, lr=1e-3 * min(1.0, (step + 1) / 10), loss=3.0 - step * 0.01) == []
    found = monitor.log(50, lr=1e-3, loss=math.nan)
    assert [(f.code, f.step, f.severity) for f in found] == [("WC401", 50, Severity.ERROR)]
    assert monitor.failed
    assert monitor.log(51, lr=1e-3, loss=math.nan) == []  # once


def test_disguised_nan_from_a_nan_grad_norm_beside_a_zero_loss():
    monitor = Monitor(every=1)
    for step in range(40):
        assert monitor.log(step, lr=1e-3 * min(1.0, (step + 1) / 10), loss=3.0 - step * 0.01, grad_norm=1.0) == []
    found = monitor.log(40, lr=1e-3, loss=0.0, grad_norm=math.nan)
    assert [f.code for f in found] == ["WC402"]


def test_accepts_numpy_and_tensor_like_values_and_extra_scalars():
    class Tensor:  # what torch's 0-d tensors offer
        def __init__(self, v: float) -> None:
            self.v = v

        def __float__(self) -> float:
            return self.v

    monitor = Monitor(every=1)
    monitor.log(0, lr=np.float32(1e-4), loss=Tensor(2.0), grad_norm=np.float64(1.0), tokens_per_s=1e5)
    monitor.close()
    run = monitor.run.last
    assert run is not None and {s.tag for s in run.series} == {"lr", "loss", "grad_norm", "tokens_per_s"}
    assert run.primary(Role.LOSS).values.tolist() == [2.0]


def test_config_mapping_is_audited_and_named():
    run = finished("founding_book_tb", Settings())
    monitor = Monitor(config={"warmup_steps": 20, "max_steps": 135})
    replay(run, monitor)
    (f,) = monitor.findings
    assert f.code == "WC201" and "monitor config" in f.message


def test_log_after_close_is_an_error():
    monitor = Monitor()
    monitor.log(0, loss=1.0)
    monitor.close()
    assert monitor.close() == []
    with pytest.raises(RuntimeError):
        monitor.log(1, loss=1.0)


def test_every_must_be_positive():
    with pytest.raises(ValueError):
        Monitor(every=0)
