"""The analyzer contract: read a :class:`~warmcheck.model.Run`, yield findings, nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..config import Settings
from ..findings import Finding
from ..model import Run


class Analyzer(Protocol):
    """An analyzer never prints, reads files or exits; thresholds come from ``settings``."""

    codes: frozenset[str]

    def check(self, run: Run, settings: Settings) -> Iterator[Finding]:
        """Yield findings about ``run``."""
        ...
