"""``warmcheck.Monitor``: the live analysis inside a training loop, no log files needed.

    monitor = warmcheck.Monitor(warmcheck.Settings(warmup_steps=20))
    for step, batch in enumerate(loader):
        ...
        for finding in monitor.log(step, lr=sched.get_last_lr()[0], loss=loss.item(), grad_norm=norm):
            print(finding.code, finding.step, finding.message)
            if finding.severity is warmcheck.Severity.ERROR:
                stop = True
    monitor.close()

Steps are the numbers you would log: the analysis assumes the same conventions as for a log file
(0-based for a plain loop, 1-based ``global_step`` for HF Trainer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..config import Settings
from ..findings import Finding, Severity
from ..model import Format, Fragment, SourceInfo, SourceRead
from .buffer import Limits
from .engine import LiveRun


class Monitor:
    """Takes ``log(step, lr=..., loss=..., grad_norm=...)`` calls; returns findings as they become sure.

    ``every``: analyse after this many calls (a NaN or Inf is analysed at once, whatever ``every``
    says). The findings a call returns are new: each is returned once. ``close()`` analyses the
    whole run and returns what only the end can tell (warmup never ended, total steps, ...).

    ``config``: the run's configuration as a mapping (``warmup_steps``, ``warmup_ratio``,
    ``max_steps``, ``learning_rate``, ... under any of the names the log readers accept), audited
    like a ``config.yaml`` beside a log. ``metadata``: run metadata as a reader would produce it
    (the HF callback passes TrainingArguments as ``args/text_summary``, as HF's TensorBoard writer does).
    """

    def __init__(self, settings: Settings | None = None, *, name: str = "monitor", every: int = 10,
                 config: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None,
                 limits: Limits | None = None) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.every = every
        self.run = LiveRun(name, name, settings, limits)
        meta: dict[str, Any] = dict(metadata or {})
        if config:
            meta["config_files"] = {**meta.get("config_files", {}), "monitor config": dict(config)}
        if meta:
            self.run.set_metadata(meta)
        self._pending: dict[str, tuple[list[int], list[float], list[float]]] = {}
        self._calls = 0
        self._urgent = False

    @property
    def findings(self) -> list[Finding]:
        """Every finding returned so far, in the order they were returned."""
        return list(self.run.reported)

    @property
    def failed(self) -> bool:
        """Whether an error-severity finding has been returned."""
        return any(f.severity is Severity.ERROR for f in self.run.reported)

    def log(self, step: int, lr: Any = None, loss: Any = None, grad_norm: Any = None, *,
            wall_time: float | None = None, **scalars: Any) -> list[Finding]:
        """Record the values of one step (``None`` = not logged this step); the new findings.

        Values may be Python or numpy numbers or 0-d tensors (anything ``float()`` accepts).
        """
        if self.run.finished:
            raise RuntimeError("Monitor.log() after close()")
        wall = math.nan if wall_time is None else float(wall_time)
        for tag, value in (("lr", lr), ("loss", loss), ("grad_norm", grad_norm), *scalars.items()):
            if value is None:
                continue
            v = float(value)
            steps, values, walls = self._pending.setdefault(tag, ([], [], []))
            steps.append(int(step))
            values.append(v)
            walls.append(wall)
            if not math.isfinite(v):
                self._urgent = True
        self._calls += 1
        if self._urgent or self._calls % self.every == 0:
            return self.flush()
        return []

    def flush(self) -> list[Finding]:
        """Analyse what was logged since the last analysis now; the new findings."""
        self._urgent = False
        if not self._pending:
            return []
        frags = [Fragment(tag, np.asarray(s, np.int64), np.asarray(v, np.float64), np.asarray(w, np.float64))
                 for tag, (s, v, w) in self._pending.items()]
        self._pending = {}
        records = sum(len(f) for f in frags)
        return self.run.feed("monitor", SourceRead(SourceInfo(self.run.name, Format.MONITOR, records), frags))

    def close(self) -> list[Finding]:
        """The run is over: analyse all of it; the findings not returned before."""
        out = self.flush() if not self.run.finished else []
        return out + self.run.finish()
