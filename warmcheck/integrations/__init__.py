"""Callbacks that run :class:`warmcheck.Monitor` inside a training framework.

- :mod:`warmcheck.integrations.hf`: ``WarmcheckCallback`` for the Hugging Face ``Trainer``
  (``pip install "warmcheck[hf]"``).
- :mod:`warmcheck.integrations.lightning`: ``WarmcheckCallback`` for the Lightning ``Trainer``
  (``pip install "warmcheck[lightning]"``).

Each of those modules imports its framework; this package imports none, and the warmcheck core never
imports a framework. :class:`MonitorCallback` is what both callbacks share: the monitor's life cycle,
which findings stop training, how findings are logged, and that a failure inside warmcheck never ends
a training run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..config import Settings
from ..findings import Finding, Severity
from ..live.monitor import Monitor

STOP_ON = ("WC4",)  # the callbacks' default: stop on NaN/Inf and divergence only
_LEVELS = {Severity.ERROR: logging.ERROR, Severity.WARNING: logging.WARNING, Severity.INFO: logging.INFO}


def stopping(findings: Iterable[Finding], stop_on: Sequence[str]) -> list[Finding]:
    """The error-severity findings whose code starts with one of the ``stop_on`` prefixes."""
    prefixes = tuple(stop_on)
    return [f for f in findings if prefixes and f.severity is Severity.ERROR and f.code.startswith(prefixes)]


def log_findings(logger: logging.Logger, findings: Iterable[Finding]) -> None:
    """One record per finding, at the finding's severity (``error``, ``warning``, ``info``)."""
    for f in findings:
        at = f" step {f.step}" if f.step is not None else ""
        tag = f" [{f.tag}]" if f.tag else ""
        logger.log(_LEVELS[f.severity], "warmcheck: %s %s%s%s: %s", f.code, f.severity.value, at, tag, f.message)


def scalar(value: Any) -> float | None:
    """``value`` as a float (a Python or numpy number, a one-element tensor); ``None`` for anything else."""
    if value is None or isinstance(value, (bool, str)):
        return None
    numel = getattr(value, "numel", None)
    if callable(numel) and numel() != 1:
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return None


class MonitorCallback:
    """The framework-independent half of a warmcheck callback.

    ``settings``: what the analysis expects (a warmup length given here wins over the framework's
    configuration, as a flag wins over a log's metadata). ``stop_on``: error-severity findings whose
    code starts with one of these prefixes stop training (default ``STOP_ON = ("WC4",)``: NaN/Inf and
    divergence only, the findings that mean the training is lost; a warmup mismatch or a spike is
    logged, never a reason to stop by default; ``("WC",)``: any error; ``()``: never). ``every``:
    analyse after this many records (NaN and Inf are analysed at once whatever it says).
    ``logger``: where findings are logged (``warmcheck``).

    ``monitor`` is the current training run's :class:`~warmcheck.Monitor` (``None`` before training
    begins), ``findings`` what it reported, ``stopped_by`` the findings that stopped training. A
    failure inside warmcheck never ends training: it is logged, kept in ``error``, and the analysis of
    that run stops.
    """

    def __init__(self, settings: Settings | None = None, stop_on: Sequence[str] = STOP_ON, every: int = 1,
                 logger: logging.Logger | None = None) -> None:
        if isinstance(stop_on, str):
            raise TypeError("stop_on is a sequence of code prefixes, e.g. ('WC4',), not a string")
        if every < 1:
            raise ValueError("every must be at least 1")
        self.settings = settings
        self.stop_on = tuple(stop_on)
        self.every = every
        self.logger = logger or logging.getLogger("warmcheck")
        self.monitor: Monitor | None = None
        self.stopped_by: list[Finding] = []
        self.error: Exception | None = None
        self.verbose = True  # whether this process logs findings (only the main one, in distributed runs)

    @property
    def findings(self) -> list[Finding]:
        """Every finding reported so far for the current (or last) training run."""
        return self.monitor.findings if self.monitor is not None else []

    @property
    def active(self) -> bool:
        """Whether a run is being analysed (started, not closed, no failure)."""
        return self.monitor is not None and not self.monitor.run.finished and self.error is None

    def start(self, name: str, *, config: Mapping[str, Any] | None = None,
              metadata: Mapping[str, Any] | None = None) -> None:
        """Begin the analysis of a new training run."""
        self.stopped_by, self.error = [], None
        self.monitor = self._safely("Monitor()", lambda: Monitor(self.settings, name=name, every=self.every,
                                                                 config=config, metadata=metadata))

    def record(self, step: int, *, lr: float | None = None, loss: float | None = None,
               grad_norm: float | None = None) -> list[Finding]:
        """Feed one step; log the new findings; the ones that should stop training (logged too)."""
        if not self.active or (lr is None and loss is None and grad_norm is None):
            return []
        monitor = self.monitor
        assert monitor is not None
        new = self._safely("log()", lambda: monitor.log(step, lr=lr, loss=loss, grad_norm=grad_norm)) or []
        self._report(new)
        stop = stopping(new, self.stop_on)
        if stop:
            self.stopped_by.extend(stop)
            if self.verbose:
                self.logger.error("warmcheck: stopping training at step %d (%s)", step,
                                  ", ".join(sorted({f.code for f in stop})))
        return stop

    def finish(self) -> list[Finding]:
        """The training run is over: analyse all of it; log and return what only its end could tell."""
        if not self.active:
            return []
        monitor = self.monitor
        assert monitor is not None
        new = self._safely("close()", monitor.close) or []
        self._report(new)
        return new

    def _safely(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:  # a bug in the monitoring must not end a training run
            self.error = exc
            self.logger.exception("warmcheck: %s failed; no more analysis of this run", what)
            return None

    def _report(self, findings: list[Finding]) -> None:
        if self.verbose and findings:
            log_findings(self.logger, findings)


__all__ = ["STOP_ON", "MonitorCallback", "log_findings", "scalar", "stopping"]
