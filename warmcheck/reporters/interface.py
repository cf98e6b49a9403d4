"""The reporter contract: a pure function of the outcome to a string."""

from __future__ import annotations

from typing import Protocol

from ..pipeline import Outcome


class Reporter(Protocol):
    """Options go to the constructor; ``render`` does no IO."""

    def render(self, outcome: Outcome) -> str:
        """The whole report for ``outcome``."""
        ...
