"""LiveRun: a run fed piece by piece reports what the finished log reports, each finding once, as soon
as it is sure, and nothing that more data could still take back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import healthy, with_disguised_nan, with_divergence, with_spike

from warmcheck.config import Settings
from warmcheck.findings import Finding
from warmcheck.live.buffer import Limits
from warmcheck.live.engine import RUNAWAY_RATIO, LiveRun, When, config_dir_of, finding_key, runaway, split_read, when
from warmcheck.model import Format, Fragment, SourceInfo, SourceRead
from warmcheck.pipeline import analyze, analyze_run
from warmcheck.readers import discover, is_training_csv, reader_for

SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"


def fed(path: Path, settings: Settings, per: int = 1) -> tuple[LiveRun, list[tuple[object, Finding]]]:
    """Feed every file of the run at ``path`` ``per`` points at a time; (when, finding) as reported."""
    (spec,) = discover([str(path)], is_training_csv).runs
    live = LiveRun(spec.name, spec.path, settings, config_dir=config_dir_of(*spec.files[0][:2]))
    log: list[tuple[object, Finding]] = []
    for file, shown, fmt in spec.files:
        for piece in split_read(reader_for(fmt)(file), per):
            last = max((int(f.steps[-1]) for f in piece.fragments if len(f)), default=None)
            log.extend((last, f) for f in live.feed(shown, piece))
    log.extend(("end", f) for f in live.finish())
    return live, log


def keys(findings) -> list[tuple[str, str, int | None, str | None]]:
    return sorted((f.code, f.severity.value, f.step, f.tag) for f in findings)


@pytest.mark.parametrize("scenario", sorted(p.name for p in SAMPLES.iterdir() if p.is_dir()))
def test_every_sample_reports_what_the_finished_log_reports(scenario):
    settings = Settings()
    batch = analyze([str(SAMPLES / scenario)], settings).runs[0]
    points = max(s.points for s in batch.series)
    _, log = fed(SAMPLES / scenario, settings, per=1 if points <= 600 else 7)  # step by step, or nearly
    found = [f for _, f in log]
    assert keys(found) == keys(batch.findings)
    assert len({finding_key(f) for f in found}) == len(found)  # each once


def test_founding_mismatch_reported_once_warmup_is_over_not_at_the_end():
    _, log = fed(SAMPLES / "founding_book_tb", Settings(warmup_steps=20))
    ((at, f),) = log
    assert f.code == "WC201" and f.step == 27 and "configured warmup_steps=20" in f.message
    assert isinstance(at, int) and 28 <= at <= 60  # after the LR began to fall, long before step 134


def test_a_ratio_of_the_logged_length_waits_for_the_end():
    # 0.2 x (steps logged so far) is not the configured warmup: judging it mid-run would be a false WC201.
    _, log = fed(SAMPLES / "founding_book_tb", Settings(warmup_ratio=0.2))
    assert [(at, f.code) for at, f in log] == [("end", "WC202")]
    assert "int(0.2 x 135)" in log[0][1].message
    _, log = fed(SAMPLES / "founding_book_tb", Settings(warmup_ratio=0.2, total_steps=135))
    ((at, f),) = log
    assert f.code == "WC202" and at != "end"


def test_nan_reported_in_the_piece_that_brings_it():
    _, log = fed(SAMPLES / "diverged", Settings())
    at = {f.code + (f.tag or ""): when_ for when_, f in log}
    assert at["WC401loss"] == 340 and at["WC401grad_norm"] == 340
    assert at["WC403loss"] < 340  # the divergence is called before the loss turns NaN


def test_a_spike_that_comes_back_is_not_called_a_divergence():
    _, log = fed(SAMPLES / "loss_spike", Settings())
    codes = [(at, f.code, f.step) for at, f in log]
    assert ("WC403" not in {c for _, c, _ in codes})
    (spike,) = [(at, step) for at, c, step in codes if c == "WC301"]
    assert spike == (59, 53)  # reported when it recovered, at its onset step


def test_end_only_findings_wait_for_the_end():
    _, log = fed(SAMPLES / "warmup_never_ends", Settings())
    assert [(at, f.code) for at, f in log] == [("end", "WC102")]


def test_timing_classes():
    assert when("WC401") is When.NOW and when("WC004") is When.NOW and when("WC003") is When.NOW
    assert when("WC201") is When.SETTLED and when("WC102") is When.END and when("WC002") is When.END
    assert when("WC999") is When.END  # a code added later is only reported at the end until classified


def synthetic_reads(syn, name="syn"):
    n = syn.loss.shape[0]
    steps = np.arange(n, dtype=np.int64)
    wall = np.full(n, np.nan)
    frags = [Fragment("train/loss", steps, syn.loss, wall), Fragment("train/lr", steps, syn.lr, wall),
             Fragment("train/grad_norm", steps, syn.grad_norm, wall)]
    return SourceRead(SourceInfo(name, Format.TFEVENTS, 3 * n), frags)


@pytest.mark.parametrize("case", ["spike", "divergence", "disguised", "healthy"])
def test_long_run_with_thinned_memory_finds_the_same_instabilities(case):
    syn = healthy(7, n=6000, warmup=200)
    if case == "spike":
        syn = with_spike(syn, 4500, 3.0, width=3)
    elif case == "divergence":
        syn = with_divergence(syn, 5200)
    elif case == "disguised":
        syn = with_disguised_nan(syn, 5500)
    limits = Limits(head=256, middle=256, tail=1024, window=256, context=64)
    live = LiveRun("syn", "syn", Settings(), limits)
    log = []
    for piece in split_read(synthetic_reads(syn), 100):
        log.extend(live.feed("syn", piece))
    log.extend(live.finish())
    retained = live.last
    assert retained is not None and max(s.points for s in retained.series) <= 256 + 256 + 2 * 1024
    batch = analyze_run(syn.run("syn"), Settings())
    unstable = ("WC3", "WC4")
    assert keys(f for f in log if f.code.startswith(unstable)) == keys(
        f for f in batch.findings if f.code.startswith(unstable))
    assert [f.code for f in log if f.code == "WC101"] == []  # the warmup was judged on the retained head


def test_disabled_codes_are_not_reported():
    _, log = fed(SAMPLES / "diverged", Settings(ignore=("WC401",)))
    assert "WC401" not in {f.code for _, f in log} and "WC403" in {f.code for _, f in log}


def fed_synthetic(syn, per: int = 1) -> tuple[list[tuple[object, Finding]], list[Finding]]:
    """``syn`` fed ``per`` points at a time: (last step fed or "end", finding) as reported; and what
    the finished log gives."""
    live = LiveRun("syn", "syn", Settings())
    log: list[tuple[object, Finding]] = []
    for piece in split_read(synthetic_reads(syn), per):
        log.extend((int(piece.fragments[0].steps[-1]), f) for f in live.feed("syn", piece))
    log.extend(("end", f) for f in live.finish())
    return log, list(analyze_run(syn.run("syn"), Settings()).findings)


def bump(syn, at: int, factor: float, width: int):
    """The loss times ``factor ** sin(pi k / width)`` for k < width: a spike that climbs for half its width."""
    k = np.arange(width)
    syn.loss[at : at + width] *= factor ** np.sin(np.pi * k / width)
    return syn


def plateau(syn, at: int, factor: float, width: int):
    syn.loss[at : at + width] *= factor
    return syn


@pytest.mark.parametrize("make", [lambda s: with_spike(s, 180, 4.0, width=30),
                                  lambda s: with_spike(s, 180, 8.0, width=200), lambda s: bump(s, 180, 4.0, 60),
                                  lambda s: bump(s, 180, 8.0, 100), lambda s: plateau(s, 180, 5.0, 200)],
                         ids=["4x-fading-30", "8x-fading-200", "4x-climbing-30", "8x-climbing-50", "5x-for-200"])
def test_a_long_spike_that_comes_back_is_never_called_a_divergence(make):
    # Still up after 20 points, each of these comes back: the finished log calls it a spike (WC301), so
    # live must not say "diverges ... never comes back" first (it did, 20 points after the onset).
    log, batch = fed_synthetic(make(healthy(3, n=600, warmup=50)))
    assert [f.code for f in batch if f.code in ("WC301", "WC403")] == ["WC301"]
    assert "WC403" not in {f.code for _, f in log}
    (at, spike), = [(at, f) for at, f in log if f.code == "WC301"]
    assert spike.step == next(f.step for f in batch if f.code == "WC301")
    assert at != "end" and at >= spike.details["recovered_step"]  # reported once it came back


def test_a_loss_that_stays_up_without_a_nan_is_a_divergence_when_the_run_ends():
    log, batch = fed_synthetic(plateau(healthy(3, n=600, warmup=50), 180, 5.0, 1000))
    (div,) = [f for f in batch if f.code == "WC403"]
    assert [(at, f.code, f.step) for at, f in log if f.code.startswith(("WC3", "WC4"))] == [("end", "WC403", div.step)]


def test_a_runaway_loss_is_called_a_divergence_before_it_turns_nan():
    syn = with_divergence(healthy(3, n=600, warmup=50), 300, rate=0.08, nan_after=1e6)
    log, batch = fed_synthetic(syn)
    (div,) = [f for f in batch if f.code == "WC403"]
    nan_at = div.details["first_nonfinite_step"]
    ((at, f),) = [(at, f) for at, f in log if f.code == "WC403"]
    assert f.step == div.step and isinstance(at, int) and at < nan_at
    # not before it lasted 20 points and ran 10x past the expected loss (RUNAWAY_RATIO)
    assert at >= div.details["detected_step"] + 19
    assert syn.loss[at] >= RUNAWAY_RATIO * div.details["expected"]


def test_runaway_needs_a_tenfold_level_and_a_climb():
    rising = np.exp(np.linspace(0.0, 1.0, 20))  # +5% a point
    assert runaway(rising, 20, 1.0) and not runaway(rising, 20, 3.0)  # 2.7x at the end: not the level
    assert not runaway(rising[::-1], 20, 0.1)  # coming back down
    assert not runaway(np.full(20, 50.0), 20, 10.0)  # up but flat: it could still come back
    assert not runaway(rising[:15], 20, 0.1)  # too few points
    with_nan = np.concatenate([rising, [np.nan]])
    assert runaway(with_nan, 20, 1.0)  # non-finite points are not levels
