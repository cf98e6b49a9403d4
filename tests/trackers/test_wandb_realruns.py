"""Real trainings logged live to W&B (offline, by the real wandb library) and to TensorBoard: warmcheck
reads the same points from the run file and reports the same schedule and the same findings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from warmcheck.config import Settings
from warmcheck.model import Format, Run
from warmcheck.pipeline import analyze
from warmcheck.readers.wandb import read_wandb

CASES = ["founding", "nan_loss"]


def _only(path: Any) -> Run:
    outcome = analyze([str(path)], Settings())
    assert len(outcome.runs) == 1, [r.name for r in outcome.runs]
    return outcome.runs[0]


def _findings(run: Run) -> list[tuple[Any, ...]]:
    return sorted((f.code, f.tag, f.step, f.step_end) for f in run.findings)


@pytest.mark.parametrize("case", CASES)
def test_wandb_and_tensorboard_read_the_same_points_schedule_and_findings(wandb_realruns: Any, case: str) -> None:
    tb = _only(wandb_realruns.tb(case))
    wb = _only(wandb_realruns.runs[case])
    assert [s.format for s in wb.sources] == [Format.WANDB]
    assert {s.tag for s in tb.series} == {"train/lr", "train/loss", "train/grad_norm"}
    assert {s.tag for s in wb.series} == {s.tag for s in tb.series}
    for ours in wb.series:
        theirs = next(s for s in tb.series if s.tag == ours.tag)
        assert np.array_equal(ours.steps, theirs.steps), ours.tag
        assert np.array_equal(ours.values, theirs.values, equal_nan=True), ours.tag
        assert ours.role == theirs.role, ours.tag
        assert np.all(np.isfinite(ours.wall_times)), ours.tag  # W&B's _timestamp
    assert [s.as_dict() for s in wb.schedules] == [s.as_dict() for s in tb.schedules]
    assert _findings(wb) == _findings(tb)


def test_founding_story_mismatch_from_the_wandb_config(wandb_realruns: Any) -> None:
    """Configured warmup_steps=20 (wandb.init(config=...)), real warmup int(0.2*135)=27 updates: WC201."""
    logged = wandb_realruns.logged("founding")["train/lr"]
    peak_step = int(np.argmax(logged))  # the first update at the peak LR: the last warmup update
    assert peak_step == int(0.2 * 135) - 1
    run = _only(wandb_realruns.runs["founding"])
    assert run.metadata["tracker_params"]["W&B config"] == {"warmup_steps": 20, "max_steps": 135,
                                                            "learning_rate": 3e-3, "lr_scheduler_type": "cosine"}
    wc201 = [f for f in run.findings if f.code == "WC201"]
    assert [(f.step, f.details["observed_warmup_steps"]) for f in wc201] == [(peak_step, peak_step)]
    assert wc201[0].details["configured"] == "warmup_steps=20 (W&B config warmup_steps)"
    assert run.schedules[0].warmup_end_step == peak_step


def test_nan_loss_reported_at_the_first_non_finite_step(wandb_realruns: Any) -> None:
    loss = wandb_realruns.logged("nan_loss")["train/loss"]
    first_bad = next(i for i, v in enumerate(loss) if not math.isfinite(v))
    assert first_bad > 0
    run = _only(wandb_realruns.runs["nan_loss"])
    wc401 = [f for f in run.findings if f.code == "WC401" and f.tag == "train/loss"]
    assert [f.step for f in wc401] == [first_bad]
    series = next(s for s in run.series if s.tag == "train/loss")
    assert series.nonfinite == sum(not math.isfinite(v) for v in loss)


def test_a_wandb_directory_is_one_run_per_run_directory_without_latest_run(wandb_realruns: Any) -> None:
    wandb_dir = wandb_realruns.root / "founding" / "wandb"
    assert (wandb_dir / "latest-run").is_symlink()
    outcome = analyze([str(wandb_dir)], Settings())
    assert [r.name for r in outcome.runs] == [str(wandb_realruns.runs["founding"])]
    assert not [f for f in outcome.all_findings() if f.code == "WC005"]
    explicit = analyze([str(wandb_realruns.wandb_file("founding"))], Settings())
    assert [r.name for r in explicit.runs] == [str(wandb_realruns.runs["founding"])]


def test_record_shapes_keys_config_and_summary(wandb_realruns: Any) -> None:
    """Nested keys joined with '/', a key logged every 10th row, media and texts not series, records
    longer than a block (the run record holding a 70 kB config, a 50 kB text in row 200) read whole."""
    import wandb_runs

    read = read_wandb(str(wandb_realruns.wandb_file("shapes")))
    by_tag = {f.tag: f for f in read.fragments}
    assert sorted(by_tag) == ["eval/acc", "train/loss", "train/lr"]
    rows = wandb_runs.SHAPES_ROWS
    assert by_tag["train/loss"].steps.tolist() == list(range(rows))
    assert by_tag["train/loss"].values.tolist() == [2.0 / (1 + 0.01 * i) for i in range(rows)]
    assert by_tag["train/lr"].values.tolist() == [min(1.0, (i + 1) / 10) * 1e-3 for i in range(rows)]
    assert by_tag["eval/acc"].steps.tolist() == list(range(0, rows, 10))
    assert [f.code for f in read.findings] == []
    assert read.info.skipped == 0
    meta = read.metadata
    config = meta["tracker_params"]["W&B config"]
    assert config["warmup_steps"] == 10 and config["optimizer"] == {"name": "adamw", "betas": [0.9, 0.95]}
    assert config["notes"].endswith("(70000 characters)")
    assert meta["wandb"]["display_name"] == "shapes" and meta["wandb"]["exit_code"] == 0
    assert meta["wandb"]["history_rows"] == rows and meta["wandb"]["step_key"] == "_step"
    assert meta["wandb"]["summary"]["best_loss"] == 0.5
    assert not [k for k in meta["wandb"]["summary"] if k.startswith(("_", "weights"))]
