"""Which series is the learning rate, the loss, the gradient norm: documented name rules.

A tag is normalised (lower case, ``-``/space -> ``_``) and matched against ordered patterns per
role; the first pattern that matches ranks the tag, and among tags of equal rank the one with more
points wins. Evaluation/validation/test series never take the learning-rate, loss or grad-norm
role; their losses take ``eval_loss`` instead (reported, never analysed as the training loss).
Explicit overrides (``--lr-tag`` etc., exact names or shell-style globs) replace the rules for
their role.

The rule table below is rendered into the README; keep them in sync (a test checks).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence

from .model import Role, Series

# (role, pattern) in priority order; patterns are full matches on the normalised tag.
RULES: Mapping[Role, tuple[str, ...]] = {
    Role.LR: (
        r"(train/|training/|trainer/|optim/|optimizer/)?(lr|learning_rate)",
        r"lr_[a-z0-9_]+(/pg\d+)?",  # Lightning LearningRateMonitor: lr-AdamW, lr-AdamW/pg1
        r"(epoch|step|batch)_(lr|learning_rate)",  # Keras
        r"(train/samples/)?lr",  # DeepSpeed monitor
        r"(lr|learning_rate)(/|_)(pg|group|param_group)?_?\d+",
        r".*/(lr|learning_rate)",
    ),
    Role.LOSS: (
        r"(train/|training/|trainer/)?loss",
        r"train_loss|training_loss|loss/train|loss/training",
        r"train/(train_)?loss_step|train_loss_step|train/loss_step",
        r"(lm_loss|lm loss|batch_loss|train/lm_loss|train/samples/train_loss)",
        r"(train|training)/[a-z_]*loss",
        r"epoch_loss|train_loss_epoch|train/loss_epoch",
    ),
    Role.GRAD_NORM: (
        r"(train/|training/|trainer/|optim/|optimizer/)?(grad_norm|gradient_norm|grad_norm/total|gnorm)",
        r"(global|total)_grad_norm|grad_norm_total|grad_norm/global",
        r"(train/)?grad_norm(_before_clip|_pre_clip|_unclipped)?",
    ),
    # Only tags with an evaluation component (see _EXCLUDE) take this role; validation before eval before test.
    Role.EVAL_LOSS: (
        r"(eval|evaluation|val|valid|validation)[/_]loss|loss[/_](eval|val|valid|validation)",
        r"(.*[/_])?(val|valid|validation)([/_].*)?[/_]loss(_epoch|_step)?",
        r"(.*[/_])?(eval|evaluation)([/_].*)?[/_]loss(_epoch|_step)?",
        r"(.*[/_])?test([/_].*)?[/_]loss(_epoch|_step)?|loss[/_]test",
    ),
}

_EXCLUDE = re.compile(r"(^|[/_])(val|valid|validation|eval|evaluation|test)([/_]|$)")
_COMPILED = {role: tuple(re.compile(p) for p in pats) for role, pats in RULES.items()}
_ANY = {role: re.compile("|".join(f"(?:{p})" for p in pats)) for role, pats in RULES.items()}  # one test first


def normalise(tag: str) -> str:
    """Lower-case a tag and unify separators (``lr-AdamW/pg1`` -> ``lr_adamw/pg1``)."""
    return re.sub(r"[-\s]+", "_", tag.strip().lower())


def _rank(role: Role, tag: str, norm: str | None = None, is_eval: bool | None = None) -> int | None:
    if norm is None:
        norm = normalise(tag)
    if is_eval is None:
        is_eval = _EXCLUDE.search(norm) is not None
    if is_eval != (role is Role.EVAL_LOSS):  # evaluation series take only the eval_loss role
        return None
    if _ANY[role].fullmatch(norm) is None:  # most tags of a wide log match no pattern
        return None
    for i, pattern in enumerate(_COMPILED[role]):
        if pattern.fullmatch(norm):
            return i
    return None


def assign_roles(series: Sequence[Series],
                 overrides: Mapping[Role, Sequence[str]] | None = None) -> dict[Role, tuple[str, ...]]:
    """Tags carrying each role, best match first. A tag carries at most one role."""
    overrides = overrides or {}
    taken: set[str] = set()
    roles: dict[Role, tuple[str, ...]] = {}
    order = (Role.LR, Role.GRAD_NORM, Role.LOSS, Role.EVAL_LOSS)
    # One pass over the tags, each normalised once (a CSV may hold a million columns): the candidates
    # of every role that is not overridden, with their rank.
    ranked: dict[Role, list[tuple[int, int, str]]] = {role: [] for role in order if not overrides.get(role)}
    for s in series:
        norm = normalise(s.tag)
        is_eval = _EXCLUDE.search(norm) is not None
        for role, found in ranked.items():
            r = _rank(role, s.tag, norm, is_eval)
            if r is not None:
                found.append((r, -s.points, s.tag))
    for role in order:
        wanted = overrides.get(role)
        if wanted:
            tags = [s.tag for s in series if any(fnmatch.fnmatchcase(s.tag, w) for w in wanted)]
            position = {w: i for i, w in enumerate(wanted)}
            tags.sort(key=lambda t: min((position[w] for w in wanted if fnmatch.fnmatchcase(t, w)),
                                        default=len(position)))
        else:
            tags = [t for _, _, t in sorted(ranked[role])]
        tags = [t for t in tags if t not in taken]
        taken.update(tags)
        if tags:
            roles[role] = tuple(tags)
    return roles
