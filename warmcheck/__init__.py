"""warmcheck: where did warmup really end? Training-log analysis to the step."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
