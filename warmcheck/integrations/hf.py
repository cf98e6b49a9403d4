"""``WarmcheckCallback``: the live warmcheck analysis inside a Hugging Face ``Trainer``.

    from warmcheck.integrations.hf import WarmcheckCallback

    callback = WarmcheckCallback()  # stops training on NaN/Inf and divergence only (stop_on=("WC4",))
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
    trainer.train()
    callback.findings  # everything reported, in order

The callback sees exactly what the Trainer logs, every ``logging_steps`` updates: ``loss``,
``learning_rate`` and ``grad_norm`` at ``state.global_step``. These are the points, steps and
conventions of the Trainer's own ``trainer_state.json`` and TensorBoard logs (1-based steps counting
completed updates; since transformers 4.51 the LR logged at step ``s`` is the one update ``s`` used,
before that the next update's), so the analysis is the one ``warmcheck analyze`` makes of those logs.
The TrainingArguments are passed as ``args/text_summary`` (as HF's TensorBoard writer stores them), so
the configured warmup (``warmup_steps``, ``warmup_ratio``, ``lr_scheduler_type``) is audited as from
those logs, with the TrainerState's ``max_steps`` (as in ``trainer_state.json``) as the total a warmup
ratio applies to.

The logged loss is HF's: with ``logging_nan_inf_filter`` (the default) a NaN loss is replaced by an
average of the previous losses and only the gradient norm shows it (WC402).

Every process runs the same analysis on the same numbers (the Trainer gathers the loss across
processes before logging it), so all of them stop together; only the main process logs findings.

This module imports ``transformers``; the warmcheck core never does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError as exc:
    raise ImportError('warmcheck.integrations.hf needs transformers: pip install "warmcheck[hf]" (and torch)') from exc

from ..config import Settings
from . import STOP_ON, MonitorCallback, scalar


class WarmcheckCallback(TrainerCallback, MonitorCallback):
    """Runs a :class:`warmcheck.Monitor` on the Trainer's logs; a stopping finding sets
    ``control.should_training_stop``.

    ``settings``, ``stop_on``, ``every``, ``logger``, and the ``monitor``, ``findings``, ``stopped_by``
    and ``error`` attributes: see :class:`~warmcheck.integrations.MonitorCallback`. ``every`` counts
    logs (one every ``logging_steps`` updates), so the default analyses each one.
    """

    def __init__(self, settings: Settings | None = None, stop_on: Sequence[str] = STOP_ON, every: int = 1,
                 logger: logging.Logger | None = None) -> None:
        MonitorCallback.__init__(self, settings, stop_on, every, logger)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        """Start a new analysis for this ``train()`` call."""
        self.verbose = bool(state.is_world_process_zero)
        name = str(getattr(args, "run_name", None) or getattr(args, "output_dir", None) or "hf-trainer")
        counts = {k: getattr(state, k, None) for k in ("max_steps", "num_train_epochs", "logging_steps")}
        metadata = {"text": {"args/text_summary": args.to_json_string()},
                    "trainer_state": {k: v for k, v in counts.items() if isinstance(v, (int, float)) and v > 0}}
        self.start(name, metadata=metadata)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Analyse one training log; evaluation logs and the end-of-training summary have none of
        ``learning_rate``, ``loss``, ``grad_norm`` and are skipped."""
        if not logs:
            return
        lr, loss, grad_norm = (scalar(logs.get(k)) for k in ("learning_rate", "loss", "grad_norm"))
        if self.record(int(state.global_step), lr=lr, loss=loss, grad_norm=grad_norm):
            control.should_training_stop = True

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        """Analyse the whole run: what only its end can tell."""
        self.finish()


__all__ = ["WarmcheckCallback"]
