"""Following runs while they are written: :class:`LiveRun` (incremental analysis), the in-process
:class:`~warmcheck.live.monitor.Monitor` and ``warmcheck watch``."""

from __future__ import annotations

from .buffer import Limits, Retained
from .engine import LiveRun, When, finding_key, when

__all__ = ["LiveRun", "Limits", "Retained", "When", "finding_key", "when"]
