"""``WarmcheckCallback``: the live warmcheck analysis inside a Lightning ``Trainer``.

    from warmcheck.integrations.lightning import WarmcheckCallback

    callback = WarmcheckCallback(warmcheck.Settings(warmup_steps=500))  # stops on NaN/Inf, divergence
    trainer = lightning.pytorch.Trainer(max_steps=10_000, callbacks=[callback])
    trainer.fit(model, data)
    callback.findings  # everything reported, in order

One record per optimizer step ``k`` (``k = trainer.global_step`` before the step: 0-based, the number
of updates already made), with the same conventions as Lightning's ``LearningRateMonitor`` (``δ = 0``:
the value logged at step ``k`` belongs to update ``k``):

- ``lr``: the learning rate update ``k`` uses, read in ``on_train_batch_start`` (before the step;
  Lightning steps ``interval="step"`` schedulers after it), from the first parameter group of the
  first optimizer;
- ``loss``: the training loss of update ``k``, from ``training_step``'s output (a tensor or a mapping
  with ``"loss"``) in ``on_train_batch_end``;
- ``grad_norm`` (``grad_norm=True``): the total 2-norm of the gradients of the first optimizer's
  parameters in ``on_before_optimizer_step``: after AMP unscaling, before gradient clipping.

Gradient accumulation: a record is one optimizer step, not one micro-batch. The LR is read at the
first micro-batch of the window, ``loss`` is the mean of the window's micro-batch losses (Lightning
divides each by ``accumulate_grad_batches`` before handing it over; the callback undoes that), and
the record is made at the micro-batch whose optimizer step advanced ``global_step``. So the steps are
the same 0, 1, 2, ... with or without accumulation, and a warmup counts updates, as a scheduler
stepped with ``interval="step"`` does. (``LearningRateMonitor`` instead writes one row per micro-batch
under the same step.) A window still open when training ends (no optimizer step) gives its loss only.

The configuration audited: ``settings``, then the module's ``hparams`` (as ``hparams.yaml`` beside a
log would be), then the Trainer's total steps (``max_steps``, or ``estimated_stepping_batches``) and
``accumulate_grad_batches``.

In distributed runs every process analyses its own numbers (the loss is the process's own) and the
stop decision is shared across processes every optimizer step (one boolean all-reduce), so all of
them stop together; only the global-zero process logs findings. Under FSDP or DeepSpeed the gradient
norm is that of the local shards only: pass ``grad_norm=False`` there.

This module imports ``lightning`` (or ``pytorch_lightning`` when only that is installed) and
``torch``; the warmcheck core never does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone package, or none
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError as exc:
        raise ImportError('warmcheck.integrations.lightning needs Lightning: pip install "warmcheck[lightning]" '
                          "(and torch)") from exc
import torch

from ..config import Settings
from . import STOP_ON, MonitorCallback, scalar


class WarmcheckCallback(pl.Callback, MonitorCallback):
    """Runs a :class:`warmcheck.Monitor` on every optimizer step; a stopping finding sets
    ``trainer.should_stop``.

    ``settings``, ``stop_on``, ``logger``, and the ``monitor``, ``findings``, ``stopped_by`` and
    ``error`` attributes: see :class:`~warmcheck.integrations.MonitorCallback`. ``every``: analyse
    after this many optimizer steps (NaN and Inf at once). ``grad_norm``: record the total gradient
    norm. ``name``: the run's name in findings (default: the LightningModule's class name).
    """

    def __init__(self, settings: Settings | None = None, stop_on: Sequence[str] = STOP_ON, every: int = 10,
                 logger: logging.Logger | None = None, grad_norm: bool = True, name: str | None = None) -> None:
        MonitorCallback.__init__(self, settings, stop_on, every, logger)
        self.grad_norm = grad_norm
        self.name = name
        self._reset()

    def _reset(self) -> None:
        self._step: int | None = None  # global_step when the open window's first micro-batch started
        self._lr: float | None = None
        self._losses: list[Any] = []  # per micro-batch, tensors until the window closes
        self._norm: torch.Tensor | None = None

    # -- hooks ---------------------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start a new analysis for this ``fit()`` call."""
        self.verbose = bool(trainer.is_global_zero)
        self._reset()
        self.start(self.name or type(pl_module).__name__, metadata={"config_files": _configuration(trainer, pl_module)})

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        """Open an accumulation window: the LR the coming optimizer step uses."""
        if self._step is not None and trainer.global_step != self._step:
            self._close_window(trainer)  # the last window ended without its on_train_batch_end
        if self._step is None:
            self._step = int(trainer.global_step)
            self._lr = _first_lr(trainer)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        """The gradient norm of this optimizer step (before clipping)."""
        if self.grad_norm and self.active and trainer.optimizers and optimizer is trainer.optimizers[0]:
            self._norm = self._safely("the gradient norm", lambda: total_norm(optimizer))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Add the micro-batch's loss; close the window when an optimizer step was made."""
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            accumulate = trainer.accumulate_grad_batches if pl_module.automatic_optimization else 1
            self._losses.append(loss.detach() * accumulate)
        if self._step is not None and trainer.global_step != self._step:
            self._close_window(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Analyse the whole run: what only its end can tell."""
        self._end(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Training was interrupted: report what the run so far shows."""
        self._end(trainer)

    # -- records -------------------------------------------------------------------------------

    def _close_window(self, trainer: pl.Trainer, stepped: bool = True) -> None:
        step, lr, losses, norm = self._step, self._lr, self._losses, self._norm
        self._reset()
        if step is None:
            return
        if not stepped:  # no optimizer step: the LR was never used, and no gradient norm was taken
            lr, norm = None, None
        loss = self._safely("the loss", lambda: _mean(losses)) if losses and self.active else None
        stop = bool(self.record(step, lr=lr, loss=loss, grad_norm=scalar(norm)))
        if stepped and trainer.world_size > 1:
            shared = bool(trainer.strategy.reduce_boolean_decision(stop, all=False))
            if shared and not stop and self.verbose:
                self.logger.error("warmcheck: stopping training at step %d (another process found an error)", step)
            stop = shared
        if stop:
            trainer.should_stop = True

    def _end(self, trainer: pl.Trainer) -> None:
        if self._step is not None and self._losses:
            self._close_window(trainer, stepped=False)
        self._reset()
        self.finish()


def total_norm(optimizer: torch.optim.Optimizer) -> torch.Tensor | None:
    """The 2-norm of all the gradients of ``optimizer``'s parameters (the norm clipping would compute), as a
    0-d tensor on the first gradient's device: no device sync until it is read."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return None
    get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6: per device and dtype
    if get_total_norm is not None:
        return cast(torch.Tensor, get_total_norm(grads, 2.0))
    norms = [torch.linalg.vector_norm(g, 2.0, dtype=torch.float32) for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]), 2.0)


def _mean(losses: list[torch.Tensor]) -> float | None:
    return scalar(torch.stack([x.float() for x in losses]).mean())


def _first_lr(trainer: pl.Trainer) -> float | None:
    """The LR of the first parameter group of the first optimizer (as ``LearningRateMonitor`` logs it)."""
    optimizers = trainer.optimizers
    if not optimizers or not optimizers[0].param_groups:
        return None
    return scalar(optimizers[0].param_groups[0].get("lr"))


def _configuration(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Mapping[str, Any]]:
    """Config layers for the audit, later names winning: the Trainer's totals, then the module's hparams."""
    counts: dict[str, Any] = {}
    if trainer.max_steps is not None and trainer.max_steps > 0:
        counts["max_steps"] = trainer.max_steps
    else:
        try:
            total = float(trainer.estimated_stepping_batches)
        except Exception:  # an estimate only: Lightning raises when it cannot make one
            total = math.inf
        if math.isfinite(total) and total >= 1:
            counts["max_steps"] = int(total)
    if trainer.accumulate_grad_batches > 1:
        counts["accumulate_grad_batches"] = trainer.accumulate_grad_batches
    layers: dict[str, Mapping[str, Any]] = {}
    if counts:
        layers["Trainer"] = counts
    hparams = getattr(pl_module, "hparams", None)
    if isinstance(hparams, Mapping) and hparams:
        layers["hparams"] = dict(hparams)
    return layers


__all__ = ["WarmcheckCallback", "total_norm"]
