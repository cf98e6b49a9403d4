"""The summary table's "warmup end" says what the schedule line and WC101/WC206 say."""

from __future__ import annotations

import numpy as np

from warmcheck.config import Settings
from warmcheck.model import Format, Role, Run, Series, SourceInfo
from warmcheck.pipeline import analyze_run
from warmcheck.reporters.common import summarize


def _run(steps: np.ndarray, lr: np.ndarray) -> Run:
    n = steps.shape[0]
    series = (Series("loss", steps, np.linspace(3.0, 1.0, n), np.zeros(n), Role.LOSS),
              Series("lr", steps, lr, np.zeros(n), Role.LR))
    run = Run("r.csv", "r.csv", (SourceInfo("r.csv", Format.CSV, n),), series,
              roles={Role.LR: ("lr",), Role.LOSS: ("loss",)})
    return analyze_run(run, Settings())


def test_a_run_at_its_peak_from_step_zero_has_no_warmup() -> None:
    steps = np.arange(0, 400, dtype=np.int64)
    run = _run(steps, np.where(steps < 300, 1e-3, 1e-4))
    codes = {f.code for f in run.findings}
    assert "WC101" in codes and summarize(run).warmup_end == "none"


def test_a_first_log_after_the_step_base_may_hide_a_warmup() -> None:
    steps = np.arange(500, 5000, 500, dtype=np.int64)  # logged every 500 steps, 0-based loop: step 0 not logged
    lr = 1e-3 * (1 - steps / 5000)
    run = _run(steps, lr)
    s = run.schedules[0]
    assert s.no_warmup and s.warmup_end_bracket is not None and s.warmup_end_bracket[1] == 500
    assert "WC101" not in {f.code for f in run.findings}
    assert summarize(run).warmup_end == "before first log"  # not "500": warmup did not end there


def test_a_visible_warmup_still_shows_its_end_step() -> None:
    steps = np.arange(0, 200, dtype=np.int64)
    lr = np.where(steps < 20, 1e-3 * steps / 20, 1e-3 * (1 - (steps - 20) / 180))
    run = _run(steps, lr)
    assert summarize(run).warmup_end == str(run.schedules[0].warmup_end_step) == "20"
