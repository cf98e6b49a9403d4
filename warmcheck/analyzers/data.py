"""WC0xx checks on the merged run (reader diagnostics are already in ``run.findings``)."""

from __future__ import annotations

from collections.abc import Iterator

from ..config import Settings
from ..findings import Finding, make
from ..model import Role, Run

_TAGS_LISTED = 1000  # the tags named in WC019 details (a CSV may hold a million columns); tags_total counts all


class RolesAnalyzer:
    """WC019: the run has data but no learning-rate or no loss series was recognised."""

    codes = frozenset({"WC019"})

    def check(self, run: Run, settings: Settings) -> Iterator[Finding]:
        """See :class:`~warmcheck.analyzers.interface.Analyzer`."""
        if not any(s.points for s in run.series):
            return
        missing = [name for role, name in ((Role.LR, "learning-rate"), (Role.LOSS, "loss"))
                   if run.primary(role) is None]
        if missing:
            tags = ", ".join(s.tag for s in run.series[:8]) + (", ..." if len(run.series) > 8 else "")
            yield make("WC019", f"no {' and no '.join(missing)} series recognised among: {tags}; "
                       "use --lr-tag / --loss-tag", run=run.name,
                       details={"missing": missing, "tags": [s.tag for s in run.series[:_TAGS_LISTED]],
                                "tags_total": len(run.series)})
