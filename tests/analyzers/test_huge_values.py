"""Values near the float64 maximum (issue 10 item 11): right answers, no RuntimeWarning noise.

A loss or LR logged near 1e308 is a real (broken) input. Squares of such values overflow, so the
shape fits work on values scaled by a power of two (``shapes.scaled``) and the analysis runs under
``np.errstate``: the schedule is still recognised and nothing is printed on stderr.
"""

from __future__ import annotations

import warnings

import numpy as np

from warmcheck.config import Settings
from warmcheck.pipeline import analyze
from warmcheck.shapes import best_decay, fit_linear, line_coefficients


def _write(path, scale: float) -> None:
    n = 400
    s = np.arange(n)
    lr = np.where(s < 40, (s + 1) / 40, 1 - (s - 40) / (n - 40)) * 1.7 * scale
    loss = 1.5 * scale * np.exp(-s / 200) * (1 + 0.05 * np.random.default_rng(0).standard_normal(n))
    loss[300] = 1.79 * scale
    rows = ["step,lr,loss"] + [f"{i},{float(lr[i])!r},{float(loss[i])!r}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")


def test_a_run_near_the_float64_maximum_reads_like_a_normal_one(tmp_path) -> None:
    results = {}
    for scale in (1.0, 1e308):
        path = tmp_path / f"log{scale:g}.csv"
        _write(path, scale)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a RuntimeWarning would fail the test (or become WC021)
            (run,) = analyze([str(path)], Settings()).runs
        s = run.schedules[0]
        codes = sorted(f.code for f in run.findings)
        results[scale] = (s.warmup_end_step, s.warmup_shape, s.decay_shape, codes)
        spike = next(f for f in run.findings if f.code == "WC301")
        assert len(spike.message) < 300 and spike.step == 300
    assert "WC021" not in results[1e308][3] and "WC108" not in results[1e308][3]
    assert results[1e308] == results[1.0]  # the same verdict at any scale
    assert results[1.0][:3] == (39, "linear", "linear")


def test_scaled_fits_return_values_in_the_callers_units() -> None:
    x = np.arange(10, dtype=np.float64)
    y = 1.7e308 - 1e307 * x
    a, b = line_coefficients(x, y)
    assert np.isclose(a, 1.7e308) and np.isclose(b, -1e307)
    fit = fit_linear(x, y)
    assert fit.residual < 1e-9 and np.isclose(fit.model(np.array([5.0]))[0], y[5])
    assert best_decay(x, y).shape == "linear"
