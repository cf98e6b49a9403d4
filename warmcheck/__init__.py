"""warmcheck: where did warmup really end? Training-log analysis to the step.

The public API (imported lazily, so ``import warmcheck`` stays cheap)::

    warmcheck.analyze(paths, settings)   # -> Outcome: runs with their findings
    warmcheck.Monitor(settings)          # live analysis inside a training loop
    warmcheck.Settings, warmcheck.Finding, warmcheck.Severity
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "analyze": ("warmcheck.pipeline", "analyze"),
    "Outcome": ("warmcheck.pipeline", "Outcome"),
    "Monitor": ("warmcheck.live.monitor", "Monitor"),
    "Settings": ("warmcheck.config", "Settings"),
    "Finding": ("warmcheck.findings", "Finding"),
    "Severity": ("warmcheck.findings", "Severity"),
}

if TYPE_CHECKING:
    from .config import Settings
    from .findings import Finding, Severity
    from .live.monitor import Monitor
    from .pipeline import Outcome, analyze


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'warmcheck' has no attribute {name!r}")


__all__ = ["Finding", "Monitor", "Outcome", "Settings", "Severity", "__version__", "analyze"]
