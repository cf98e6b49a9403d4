"""The data model every reader produces and every analyzer reads.

A :class:`Run` is a set of named :class:`Series`; each series holds steps (exact int64), values
(float64, NaN and Inf kept) and wall times as numpy arrays, sorted by step with one value per step
after merging. No IO and no pandas here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .findings import Finding

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


class Role(str, enum.Enum):
    """What a series means to the analyses."""

    LR = "lr"
    LOSS = "loss"
    GRAD_NORM = "grad_norm"


class Format(str, enum.Enum):
    """Log formats warmcheck reads (the ``sources[].format`` values in JSON)."""

    TFEVENTS = "tfevents"
    CSV = "csv"
    HF_TRAINER_STATE = "hf-trainer-state"
    JSONL = "jsonl"


@dataclass(frozen=True, slots=True)
class Fragment:
    """Points of one tag from one source, in the order they were written (not yet merged)."""

    tag: str
    steps: IntArray
    values: FloatArray
    wall_times: FloatArray

    def __len__(self) -> int:
        return int(self.steps.shape[0])


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """One file read for a run: ``records`` read, ``skipped`` damaged/unparsable ones."""

    path: str
    format: Format
    records: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class SourceRead:
    """What one reader returns for one file.

    ``findings`` are WC0xx diagnostics with ``run`` left empty; the run assembly fills it in.
    ``restart_steps`` are steps at which the writer signalled a restart (TensorBoard
    ``SessionLog.START``).
    """

    info: SourceInfo
    fragments: Sequence[Fragment] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    findings: Sequence[Finding] = ()
    restart_steps: Sequence[int] = ()
    sort_key: tuple[float, str] = (0.0, "")


@dataclass(frozen=True, slots=True)
class Series:
    """One named series of a run, merged across sources: sorted, unique steps.

    ``superseded`` counts points that were replaced by a later write of the same step (a restart
    or resume); ``raw_points`` is every point read, so ``raw_points == points + superseded``.
    """

    tag: str
    steps: IntArray
    values: FloatArray
    wall_times: FloatArray
    role: Role | None = None
    superseded: int = 0

    @property
    def points(self) -> int:
        """Distinct steps after merging."""
        return int(self.steps.shape[0])

    @property
    def raw_points(self) -> int:
        """Every point read, superseded copies included."""
        return self.points + self.superseded

    @property
    def nonfinite(self) -> int:
        """How many values are NaN or +/-Inf."""
        return int(np.count_nonzero(~np.isfinite(self.values)))


@dataclass(frozen=True, slots=True)
class Run:
    """One training run: the files read, the merged series, metadata and read diagnostics.

    ``series`` is sorted by tag; ``roles`` lists, per role, the tags carrying it, best match first.
    """

    name: str
    path: str
    sources: tuple[SourceInfo, ...]
    series: tuple[Series, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    roles: Mapping[Role, tuple[str, ...]] = field(default_factory=dict)

    def get(self, tag: str) -> Series | None:
        """The series named ``tag``, if any."""
        for s in self.series:
            if s.tag == tag:
                return s
        return None

    def with_role(self, role: Role) -> list[Series]:
        """Series carrying ``role``, best match first (the order role assignment decided)."""
        by_tag = {s.tag: s for s in self.series}
        return [by_tag[t] for t in self.roles.get(role, ()) if t in by_tag]

    def primary(self, role: Role) -> Series | None:
        """The series analyses use for ``role``: the best match, or ``None``."""
        found = self.with_role(role)
        return found[0] if found else None


def empty_fragment(tag: str) -> Fragment:
    """A fragment with no points (used by readers for header-only columns)."""
    return Fragment(tag, np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64))
