"""WC4xx: divergence and non-finite values."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..config import Settings
from ..findings import Finding, make
from ..model import Role, Run


def _describe(steps: np.ndarray, values: np.ndarray, limit: int = 4) -> str:
    parts = []
    for s, v in zip(steps[:limit].tolist(), values[:limit].tolist(), strict=True):
        parts.append(f"{'NaN' if np.isnan(v) else ('+Inf' if v > 0 else '-Inf')}@{s}")
    return ", ".join(parts) + (", ..." if steps.shape[0] > limit else "")


class NonFiniteAnalyzer:
    """WC401: the first NaN/Inf of the loss, learning rate or gradient norm."""

    codes = frozenset({"WC401"})

    def check(self, run: Run, settings: Settings) -> Iterator[Finding]:
        """See :class:`~warmcheck.analyzers.interface.Analyzer`."""
        for role in (Role.LOSS, Role.LR, Role.GRAD_NORM):
            s = run.primary(role)
            if s is None:
                continue
            bad = ~np.isfinite(s.values)
            if not bad.any():
                continue
            steps, values = s.steps[bad], s.values[bad]
            first = int(steps[0])
            good_before = s.steps[(s.steps < first) & np.isfinite(s.values)]
            last_good = int(good_before[-1]) if good_before.shape[0] else None
            yield make("WC401", f"{s.tag} non-finite from step {first} ({_describe(steps, values)}; "
                       f"{int(bad.sum())} of {s.points} points)", run=run.name, tag=s.tag, step=first,
                       details={"role": role.value, "first_step": first, "count": int(bad.sum()),
                                "nan": int(np.isnan(values).sum()), "posinf": int((values == np.inf).sum()),
                                "neginf": int((values == -np.inf).sum()), "last_good_step": last_good})
