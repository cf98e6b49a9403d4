"""WC4xx on the evaluation loss: non-finite evaluation loss, and eval loss rising while train loss falls.

The evaluation loss is the series with the ``eval_loss`` role (HF ``eval_loss``/``eval/loss``,
Lightning ``val_loss``, nanoGPT ``val/loss``, ...; see :mod:`warmcheck.roles`); only its primary
series is checked, as for the training roles.

Overfitting (WC405) is decided on the evaluations themselves, which are few and noisy:

* the best (lowest finite) evaluation loss is at step ``b``;
* every evaluation from some step ``o > b`` to the last one is at least :data:`RISE` above that best
  (relative to its size), and there are at least :data:`MIN_EVALS` of them: the rise is sustained
  and still there when the log ends (an eval loss that came back down is not reported);
* over the same stretch the training loss fell by at least :data:`TRAIN_FALL`: its median over one
  evaluation interval ending at ``b`` against its median over the interval ending at the last
  evaluation (a training loss that is flat or rising too is instability, not overfitting).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..config import Settings
from ..findings import Finding, make
from ..model import Role, Run, Series, last_finite

RISE = 0.05
"""The eval loss stays at least this fraction above its best value (5%)."""
MIN_EVALS = 3
"""...for at least this many consecutive evaluations, through the last one."""
TRAIN_FALL = 0.02
"""...while the training loss fell by at least this fraction (2%) from the best evaluation to the last."""


def _describe(steps: np.ndarray, values: np.ndarray, limit: int = 4) -> str:
    parts = [f"{'NaN' if np.isnan(v) else ('+Inf' if v > 0 else '-Inf')}@{s}"
             for s, v in zip(steps[:limit].tolist(), values[:limit].tolist(), strict=True)]
    return ", ".join(parts) + (", ..." if steps.shape[0] > limit else "")


class EvaluationAnalyzer:
    """WC404 evaluation loss non-finite; WC405 evaluation loss rising while the training loss falls."""

    codes = frozenset({"WC404", "WC405"})

    def check(self, run: Run, settings: Settings) -> Iterator[Finding]:
        """See :class:`~warmcheck.analyzers.interface.Analyzer`."""
        ev = run.primary(Role.EVAL_LOSS)
        if ev is None or not ev.points:
            return
        loss = run.primary(Role.LOSS)
        yield from _nonfinite(run, ev, loss)
        if loss is not None:
            found = overfitting(ev, loss)
            if found is not None:
                yield _overfitting_finding(run, ev, loss, found)


def _nonfinite(run: Run, ev: Series, loss: Series | None) -> Iterator[Finding]:
    bad = ~np.isfinite(ev.values)
    if not bad.any():
        return
    steps, values = ev.steps[bad], ev.values[bad]
    first = int(steps[0])
    at = last_finite(ev.values[: int(np.searchsorted(ev.steps, first))])  # the steps before: a prefix
    good = ev.steps[: 0 if at is None else at + 1]
    train_bad = np.flatnonzero(~np.isfinite(loss.values)) if loss is not None else np.empty(0, np.int64)
    train_first = int(loss.steps[train_bad[0]]) if loss is not None and train_bad.shape[0] else None
    after = f"; the training loss {loss.tag} is non-finite from step {train_first}" \
        if loss is not None and train_first is not None else ""
    yield make("WC404", f"{ev.tag} non-finite from step {first} ({_describe(steps, values)}; "
               f"{int(bad.sum())} of {ev.points} evaluations){after}", run=run.name, tag=ev.tag, step=first,
               details={"first_step": first, "count": int(bad.sum()), "evaluations": ev.points,
                        "nan": int(np.isnan(values).sum()), "posinf": int((values == np.inf).sum()),
                        "neginf": int((values == -np.inf).sum()),
                        "last_good_step": int(good[-1]) if good.shape[0] else None,
                        "train_loss_nonfinite_step": train_first})


def overfitting(ev: Series, loss: Series) -> dict[str, float | int] | None:
    """The sustained rise of ``ev`` while ``loss`` falls (see the module docstring), or ``None``."""
    ok = np.isfinite(ev.values)
    steps, values = ev.steps[ok], ev.values[ok]
    if steps.shape[0] < MIN_EVALS + 1:
        return None
    b = int(np.argmin(values))
    best = float(values[b])
    if best == 0.0:
        return None
    above = values >= best + RISE * abs(best)
    # The stretch: the evaluations after the best one that are all above the threshold, to the last.
    below = np.flatnonzero(~above[b + 1:])
    onset = b + 1 + (int(below[-1]) + 1 if below.shape[0] else 0)
    count = steps.shape[0] - onset
    if count < MIN_EVALS:
        return None
    interval = int(np.median(np.diff(steps)))
    train_start = _train_near(loss, int(steps[b]), interval)
    train_end = _train_near(loss, int(steps[-1]), interval)
    if train_start is None or train_end is None or not train_end <= train_start - TRAIN_FALL * abs(train_start):
        return None
    return {"best_step": int(steps[b]), "best_eval": best, "onset_step": int(steps[onset]),
            "last_step": int(steps[-1]), "last_eval": float(values[-1]),
            "max_eval": float(values[onset:].max()), "evaluations_above": count,
            "rise": (float(values[-1]) - best) / abs(best),
            "train_at_best": train_start, "train_at_last": train_end, "interval": interval}


def _train_near(loss: Series, step: int, interval: int) -> float | None:
    """The median finite training loss over ``(step - interval, step]``, else at the nearest logged step."""
    ok = np.isfinite(loss.values)
    steps, values = loss.steps[ok], loss.values[ok]
    if steps.shape[0] == 0:
        return None
    window = (steps > step - max(interval, 1)) & (steps <= step)
    if window.any():
        return float(np.median(values[window]))
    return float(values[int(np.argmin(np.abs(steps - step)))])


def _overfitting_finding(run: Run, ev: Series, loss: Series, d: dict[str, float | int]) -> Finding:
    return make("WC405", f"{ev.tag} rose from its best {d['best_eval']:.4g} at step {d['best_step']} and stayed "
                f"above it for the last {d['evaluations_above']} evaluations (from step {d['onset_step']}; "
                f"{d['last_eval']:.4g} at step {d['last_step']}, {d['rise']:+.0%}) while {loss.tag} fell from "
                f"{d['train_at_best']:.4g} to {d['train_at_last']:.4g}: overfitting; the best checkpoint is "
                f"at step {d['best_step']}", run=run.name, tag=ev.tag, step=int(d["onset_step"]),
                step_end=int(d["last_step"]),
                details={**d, "train_tag": loss.tag, "rise_threshold": RISE, "min_evaluations": MIN_EVALS,
                         "train_fall_threshold": TRAIN_FALL})
