"""Analyzers: each reads a run and yields findings of its family."""

from __future__ import annotations

from .data import RolesAnalyzer
from .divergence import NonFiniteAnalyzer
from .evaluation import EvaluationAnalyzer
from .interface import Analyzer
from .schedule import ScheduleAnalyzer
from .spikes import SpikeAnalyzer
from .warmup_audit import WarmupAudit

ALL_ANALYZERS: tuple[Analyzer, ...] = (RolesAnalyzer(), ScheduleAnalyzer(), WarmupAudit(), SpikeAnalyzer(),
                                       NonFiniteAnalyzer(), EvaluationAnalyzer())

__all__ = ["ALL_ANALYZERS", "Analyzer"]
