"""Evaluation loss (issue 11 item 4): WC404 eval loss non-finite, WC405 eval loss rising while train loss falls.

Real runs: ``tests/data/evalruns`` (``scripts/realruns/eval_runs.py``: a tiny model trained on 2,000
characters overfits; the same loop on 150,000 does not; SGD at LR 3.0 diverges and its evaluations turn NaN)
and the realruns that log an eval loss (HF output dir, nanoGPT). Expectations come from each run's
``truth.json`` and ``log.csv`` as written; the rule's edges are checked on small built series.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from warmcheck.analyzers.evaluation import MIN_EVALS, RISE, TRAIN_FALL, EvaluationAnalyzer
from warmcheck.config import Settings
from warmcheck.findings import Finding
from warmcheck.model import Role, Run, Series
from warmcheck.pipeline import analyze

DATA = Path(__file__).resolve().parent.parent / "data"
EVAL = DATA / "evalruns"


def _truth(case: str) -> dict:
    return json.loads((EVAL / case / "truth.json").read_text())


def _run(path: Path) -> Run:
    (run,) = analyze([str(path)], Settings()).runs
    return run


def _found(run: Run, code: str) -> list[Finding]:
    return [f for f in run.findings if f.code == code]


def test_real_overfitting_run_names_its_best_checkpoint() -> None:
    truth = _truth("overfit_small_train")
    run = _run(EVAL / "overfit_small_train" / "log.csv")
    assert run.roles[Role.EVAL_LOSS] == ("eval/loss",)
    (f,) = _found(run, "WC405")
    assert f.severity.value == "warning"
    assert f.details["best_step"] == truth["best_eval"]["step"]
    assert f.details["best_eval"] == truth["best_eval"]["value"]
    assert (f.step_end, f.details["last_eval"]) == (truth["last_eval"]["step"], truth["last_eval"]["value"])
    assert f.step is not None and f.step > truth["best_eval"]["step"]
    assert MIN_EVALS <= f.details["evaluations_above"] <= truth["evals_after_best"]
    # Every evaluation from the onset to the end is at least RISE above the best, read from the log itself.
    evals = _column(EVAL / "overfit_small_train" / "log.csv", "eval/loss")
    best = truth["best_eval"]["value"]
    assert all(v >= best * (1 + RISE) for s, v in evals.items() if s >= f.step)
    assert sum(s >= f.step for s in evals) == f.details["evaluations_above"]
    assert f.details["train_at_last"] <= f.details["train_at_best"] * (1 - TRAIN_FALL)
    assert not _found(run, "WC404")


def test_real_control_run_does_not_overfit() -> None:
    truth = _truth("control_full_train")
    assert truth["best_eval"]["step"] == truth["last_eval"]["step"]  # still improving at the end
    run = _run(EVAL / "control_full_train" / "log.csv")
    assert run.roles[Role.EVAL_LOSS] == ("eval/loss",)
    assert not _found(run, "WC405") and not _found(run, "WC404")


def test_real_diverged_run_reports_its_nan_evaluations() -> None:
    truth = _truth("diverge_eval_nan")
    run = _run(EVAL / "diverge_eval_nan" / "log.csv")
    (f,) = _found(run, "WC404")
    assert f.severity.value == "error" and f.tag == "eval/loss"
    assert f.step == truth["eval_loss_first_nonfinite_step"]
    assert f.details["count"] == f.details["nan"] == truth["eval_loss_nonfinite_count"]
    assert f.details["evaluations"] == len(truth["eval_steps"])
    assert f.details["train_loss_nonfinite_step"] == truth["train_loss_first_nonfinite_step"]
    assert f.details["last_good_step"] == max(s for s in truth["eval_steps"] if s < f.step)
    (nan_train,) = _found(run, "WC401")  # the training loss keeps its own finding
    assert nan_train.step == truth["train_loss_first_nonfinite_step"]
    assert not _found(run, "WC405")


@pytest.mark.parametrize("case,tag", [("hf_output_dir", "eval/loss"), ("nanogpt_warmup40_log8", "eval/val/loss")])
def test_realruns_with_an_eval_loss_keep_it_and_raise_nothing(case: str, tag: str) -> None:
    outcome = analyze([str(DATA / "realruns" / case)], Settings())
    (run,) = outcome.runs
    assert run.roles[Role.EVAL_LOSS][0] == tag
    ev = run.get(tag)
    assert ev is not None and ev.points >= 3 and ev.nonfinite == 0
    assert not [f for f in run.findings if f.code in ("WC404", "WC405")]


def _column(path: Path, name: str) -> dict[int, float]:
    with path.open(newline="") as fh:
        return {int(r["step"]): float(r[name]) for r in csv.DictReader(fh) if r[name]}


# --- the rule's edges, on built series ---------------------------------------------------------------------

def _built(ev_values: list[float], train: np.ndarray | None = None, every: int = 10) -> Run:
    ev_steps = np.arange(1, len(ev_values) + 1, dtype=np.int64) * every
    n = int(ev_steps[-1]) + 1
    loss = train if train is not None else np.linspace(3.0, 1.0, n)
    series = (Series("train/loss", np.arange(n, dtype=np.int64), loss, np.full(n, np.nan), Role.LOSS),
              Series("eval/loss", ev_steps, np.asarray(ev_values, dtype=np.float64),
                     np.full(len(ev_values), np.nan), Role.EVAL_LOSS))
    return Run("r", "r", (), series, roles={Role.LOSS: ("train/loss",), Role.EVAL_LOSS: ("eval/loss",)})


def _check(run: Run) -> list[Finding]:
    return list(EvaluationAnalyzer().check(run, Settings()))


def test_a_rise_through_the_end_is_reported_from_its_onset() -> None:
    (f,) = _check(_built([3.0, 2.5, 2.0, 1.9, 2.1, 2.2, 2.3]))
    assert (f.code, f.step, f.step_end, f.details["best_step"], f.details["evaluations_above"]) == \
        ("WC405", 50, 70, 40, 3)


def test_an_eval_loss_that_comes_back_down_is_not_overfitting() -> None:
    assert _check(_built([3.0, 2.5, 2.0, 1.9, 2.1, 2.2, 2.3, 1.95])) == []


def test_fewer_evaluations_above_than_required_are_not_enough() -> None:
    assert _check(_built([3.0, 2.5, 2.0, 1.9, 2.1, 2.2])) == []  # two above the best


def test_a_rise_smaller_than_the_threshold_is_noise() -> None:
    assert _check(_built([3.0, 2.5, 2.0, 1.9, 1.9 * (1 + RISE * 0.9)] + [1.9 * (1 + RISE * 0.8)] * 3)) == []


def test_a_training_loss_that_rises_too_is_not_overfitting() -> None:
    assert _check(_built([3.0, 2.5, 2.0, 1.9, 2.1, 2.2, 2.3], train=np.linspace(1.0, 3.0, 71))) == []


def test_a_dip_below_the_threshold_restarts_the_stretch() -> None:
    (f,) = _check(_built([3.0, 2.0, 2.2, 2.2, 2.02, 2.3, 2.3, 2.4]))
    assert (f.step, f.details["evaluations_above"], f.details["best_step"]) == (60, 3, 20)


def test_nan_evaluations_are_wc404_and_ignored_by_the_overfitting_rule() -> None:
    found = _check(_built([3.0, 2.5, float("nan"), 2.0, float("inf"), 1.8]))
    assert [(f.code, f.step) for f in found] == [("WC404", 30)]
    d = found[0].details
    assert (d["count"], d["nan"], d["posinf"], d["last_good_step"], d["train_loss_nonfinite_step"]) == \
        (2, 1, 1, 20, None)


def test_no_eval_series_no_finding() -> None:
    run = _built([3.0, 2.0, 2.5, 2.6, 2.7])
    assert _check(Run("r", "r", (), run.series[:1], roles={Role.LOSS: ("train/loss",)})) == []
