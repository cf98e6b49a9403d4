"""Analyzers: each reads a run and yields findings of its family."""

from __future__ import annotations

from .data import RolesAnalyzer
from .divergence import NonFiniteAnalyzer
from .interface import Analyzer

ALL_ANALYZERS: tuple[Analyzer, ...] = (RolesAnalyzer(), NonFiniteAnalyzer())

__all__ = ["ALL_ANALYZERS", "Analyzer"]
