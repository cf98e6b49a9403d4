"""Role rules: the names the README promises, and what must never take a role."""

from __future__ import annotations

import numpy as np
import pytest

from warmcheck.model import Role, Series
from warmcheck.roles import assign_roles


def _series(tag: str, points: int = 10) -> Series:
    return Series(tag, np.arange(points, dtype=np.int64), np.ones(points), np.zeros(points))


@pytest.mark.parametrize("tag,role", [
    ("lr", Role.LR), ("learning_rate", Role.LR), ("train/learning_rate", Role.LR), ("train/lr", Role.LR),
    ("lr-AdamW", Role.LR), ("lr-AdamW/pg1", Role.LR), ("learning-rate", Role.LR),
    ("epoch_learning_rate", Role.LR), ("Train/Samples/lr", Role.LR), ("lr-SGD-momentum", Role.LR),
    ("loss", Role.LOSS), ("train/loss", Role.LOSS), ("train_loss", Role.LOSS), ("loss/train", Role.LOSS),
    ("lm loss", Role.LOSS), ("train_loss_step", Role.LOSS), ("Train/Loss", Role.LOSS),
    ("grad_norm", Role.GRAD_NORM), ("train/grad_norm", Role.GRAD_NORM), ("grad-norm", Role.GRAD_NORM),
    ("gnorm", Role.GRAD_NORM), ("total_grad_norm", Role.GRAD_NORM),
])
def test_documented_names(tag: str, role: Role) -> None:
    assert assign_roles([_series(tag)]) == {role: (tag,)}


@pytest.mark.parametrize("tag", ["train/epoch", "throughput", "val/lr", "eval/runtime", "accuracy",
                                 "interval_loss", "eval/grad_norm"])
def test_names_that_take_no_role(tag: str) -> None:
    assert assign_roles([_series(tag)]) == {}


@pytest.mark.parametrize("tag", ["val_loss", "eval/loss", "validation/loss", "loss/val", "test_loss", "eval_loss",
                                 "valid_loss", "val_loss_epoch", "eval/val/loss", "eval/train/loss"])
def test_evaluation_losses_take_only_the_eval_loss_role(tag: str) -> None:
    assert assign_roles([_series(tag)]) == {Role.EVAL_LOSS: (tag,)}


def test_the_validation_loss_ranks_before_an_evaluation_of_the_training_split() -> None:
    # nanoGPT's eval.csv, joined to its run as eval/<column>: val/loss is the evaluation loss.
    roles = assign_roles([_series("eval/train/loss"), _series("eval/val/loss"), _series("loss"), _series("eval/lr")])
    assert roles == {Role.LOSS: ("loss",), Role.EVAL_LOSS: ("eval/val/loss", "eval/train/loss")}


def test_ranking_prefers_the_better_rule_then_more_points() -> None:
    roles = assign_roles([_series("train/train_loss", 1), _series("train/loss", 100),
                          _series("lr-AdamW/pg2", 50), _series("lr-AdamW/pg1", 50)])
    assert roles[Role.LOSS] == ("train/loss", "train/train_loss")
    assert roles[Role.LR] == ("lr-AdamW/pg1", "lr-AdamW/pg2")


def test_overrides_replace_the_rules_for_their_role() -> None:
    roles = assign_roles([_series("loss"), _series("my/objective"), _series("lr")],
                         {Role.LOSS: ("my/*",)})
    assert roles == {Role.LR: ("lr",), Role.LOSS: ("my/objective",)}
