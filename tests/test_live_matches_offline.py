"""Live and offline agree on divergence: every real run and sample log, fed to ``Monitor`` point by point,
never yields a WC403 that ``analyze`` of the finished file does not also report.

The finished log is the reference: whether a loss "never comes back" is only known at its end. Live may
call a divergence later than offline (it waits for a NaN, a runaway or the end), never one the finished
log calls a spike or nothing, and never with an onset earlier than offline's by more than
``ONSET_TOLERANCE`` logged points.

Each log file is checked on its own, and each discovered run (a resumed run's event files together)
as a whole. Every series of the finished run is fed under its own tag, step by step in step order, one
``Monitor.log()`` call per step, analysed after every call up to ``CALLS`` steps (and at once on a NaN or
Inf, as in training); a longer log is analysed every ``ceil(steps / CALLS)`` calls, which keeps the file
fast enough for CI (an analysis of the window costs ~10 ms) and still sees each episode several times
while it is held (a live verdict waits at least 20 points).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from warmcheck import Monitor, Settings
from warmcheck.findings import Finding
from warmcheck.model import Run
from warmcheck.pipeline import analyze
from warmcheck.readers import discover, is_training_csv

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "tests" / "data" / "realruns"
SAMPLES = ROOT / "sample_logs"
CALLS = 500
# A live onset is found on the run so far: the climb's knot (detectors' hinge fit, 20 points after the
# onset) and the walk back from the detected step see fewer points after the onset than the finished
# log does, so they may settle a few points apart. More than this would be a different onset.
ONSET_TOLERANCE = 5


def _targets() -> list[tuple[str, str, list[str]]]:
    """(id, case or scenario, paths to analyse as one run): every log file of every real run and sample
    log, and every discovered run with several files as a whole."""
    out: list[tuple[str, str, list[str]]] = []
    cases = sorted(p for p in REAL.iterdir() if (p / "truth.json").is_file())
    scenarios = sorted(p for p in SAMPLES.iterdir() if p.is_dir())
    for case in [*cases, *scenarios]:
        for spec in discover([str(case)], is_training_csv).runs:
            files = [file for file, _, _ in spec.files]
            for file in files:
                out.append((str(Path(file).relative_to(ROOT)), case.name, [file]))
            if len(files) > 1:
                out.append((str(Path(spec.path).relative_to(ROOT)) + " (run)", case.name, [spec.path]))
    return out


TARGETS = _targets()


def replay(run: Run) -> list[tuple[int | str, Finding]]:
    """Feed every series of ``run`` to a Monitor under its own tag, one call per step; (call step or
    "close", finding) as returned."""
    lookup = {s.tag: dict(zip(s.steps.tolist(), s.values.tolist(), strict=True)) for s in run.series}
    steps = sorted({step for values in lookup.values() for step in values})
    monitor = Monitor(Settings(), name=run.name, every=max(1, math.ceil(len(steps) / CALLS)))
    out: list[tuple[int | str, Finding]] = []
    for step in steps:
        values = {tag: values[step] for tag, values in lookup.items() if step in values}
        out.extend((step, f) for f in monitor.log(step, **values))
    out.extend(("close", f) for f in monitor.close())
    return out


def test_every_real_run_and_sample_log_is_covered():
    covered = {case for _, case, _ in TARGETS}
    assert {p.name for p in REAL.iterdir() if (p / "truth.json").is_file()} <= covered
    assert {p.name for p in SAMPLES.iterdir() if p.is_dir()} <= covered


@pytest.mark.parametrize("paths", [p for _, _, p in TARGETS], ids=[t for t, _, _ in TARGETS])
def test_live_never_reports_a_divergence_the_finished_log_does_not(paths):
    runs = [r for r in analyze(paths, Settings()).runs if r.series]
    assert runs
    for run in runs:
        offline = {f.tag: f for f in run.findings if f.code == "WC403"}
        live = [(at, f) for at, f in replay(run) if f.code == "WC403"]
        for at, f in live:
            assert f.tag in offline, f"{run.name}: live WC403 at call {at} ({f.message}); offline: none"
            assert f.step is not None and offline[f.tag].step is not None
            assert f.step >= offline[f.tag].step - ONSET_TOLERANCE, (
                f"{run.name}: live onset {f.step} (call {at}), offline {offline[f.tag].step}")
        # and the end of the run tells live what the finished log tells (the monitor keeps every point here)
        assert {f.tag for _, f in live} == set(offline), (run.name, [f.message for f in offline.values()])


def _diverged() -> list[tuple[str, int]]:
    """(case, first step whose logged loss is non-finite or a logger's stand-in for NaN) of the real runs
    whose truth says they diverged."""
    out = []
    for p in sorted(REAL.glob("*/truth.json")):
        div = (json.loads(p.read_text()).get("expected_findings") or {}).get("divergence") or {}
        bad = div.get("first_nonfinite_loss_step") or div.get("first_filtered_loss_step")
        if div.get("diverged", bad is not None) and isinstance(bad, int):
            out.append((p.parent.name, bad))
    return out


@pytest.mark.parametrize(("case", "nan_at"), _diverged())
def test_a_real_divergence_is_called_live_no_later_than_its_nan(case, nan_at):
    # Waiting for the end of the run is only for a loss that stays up without running away: these blow up.
    for run in [r for r in analyze([str(REAL / case)], Settings()).runs if r.series]:
        (offline,) = [f for f in run.findings if f.code == "WC403"]
        ((at, live),) = [(at, f) for at, f in replay(run) if f.code == "WC403"]
        assert isinstance(at, int) and at <= nan_at, (run.name, at, nan_at)
        assert offline.step is not None and live.step is not None
        assert abs(live.step - offline.step) <= ONSET_TOLERANCE
