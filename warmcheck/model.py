"""The data model every reader produces and every analyzer reads.

A :class:`Run` is a set of named :class:`Series`; each series holds steps (exact int64), values
(float64, NaN and Inf kept) and wall times as numpy arrays, sorted by step with one value per step
after merging. No IO and no pandas here.
"""

from __future__ import annotations

import enum
import math
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
    EVAL_LOSS = "eval_loss"  # an evaluation loss (validation/eval/test): reported, never a training loss


class Format(str, enum.Enum):
    """Log formats warmcheck reads (the ``sources[].format`` values in JSON)."""

    TFEVENTS = "tfevents"
    CSV = "csv"
    HF_TRAINER_STATE = "hf-trainer-state"
    JSONL = "jsonl"
    MONITOR = "monitor"  # fed in-process by warmcheck.Monitor
    WANDB = "wandb"  # a W&B run file, run-<id>.wandb (extra: warmcheck[wandb])
    MLFLOW = "mlflow"  # one MLflow run: file store run directory, SQLite backend or tracking server
    GOLDEN = "golden"  # a golden-values file written by ``warmcheck compare --write-golden``


def no_wall_times(n: int) -> FloatArray:
    """``n`` missing wall times (NaN) that take no memory: a read-only broadcast of one NaN.

    Most CSV, JSONL and trainer_state logs have no wall clock; 10 million points would otherwise
    carry 80 MB of NaN. Nothing writes into a series' arrays, so a read-only view is enough.
    """
    return np.broadcast_to(np.float64(np.nan), (n,))


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
class Convention:
    """How logged steps relate to update indices: ``k = label + delta``; labels start at ``base``."""

    base: int
    delta: int
    reason: str
    # Other deltas the values cannot rule out (empty: the reading is decided). The audit treats a
    # configured warmup that only matches under one of these as ambiguous, never as silently consistent.
    alternatives: tuple[int, ...] = ()

    @property
    def ambiguous(self) -> bool:
        """Whether the log leaves more than one reading of its step labels open."""
        return bool(self.alternatives)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"step_base": self.base, "delta": self.delta, "assumed": self.reason,
                "ambiguous": self.ambiguous, "alternative_deltas": list(self.alternatives)}


@dataclass(frozen=True, slots=True)
class Staircase:
    """A piecewise-constant ramp: the LR held for ``length`` steps at a time."""

    length: int
    plateaus: int
    first_step: int


@dataclass(frozen=True, slots=True)
class Excursion:
    """A brief LR excursion: ``points`` logged steps ``start..end`` at ``factor`` x the surrounding
    curve, which the LR came back to (``before``: the LR just before, ``extreme``: the furthest
    value inside, ``after``: the LR just after)."""

    start: int
    end: int
    factor: float
    points: int
    before: float
    extreme: float
    after: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``runs[].schedule.excursions[]``)."""
        return {"start": self.start, "end": self.end, "factor": float(f"{self.factor:.4g}"), "points": self.points,
                "lr_before": self.before, "lr_extreme": self.extreme, "lr_after": self.after}


@dataclass(frozen=True, slots=True)
class Cycles:
    """A schedule that restarts by design after its first peak: cosine with (hard or warm) restarts,
    timm cosine cycles, CyclicLR. ``length``: the first cycle, in steps (peak to peak);
    ``restarts``: steps where later cycles begin; ``peak_ratio``: each later cycle's peak over the
    previous one's (1 for hard restarts, timm's ``cycle_decay``); ``amplitude_ratio``: the same for
    the height above the trough before it (0.5 for CyclicLR ``triangular2``)."""

    kind: str  # "cosine-restarts" | "cyclic"
    length: int
    restarts: tuple[int, ...]
    peak_ratio: float
    amplitude_ratio: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``runs[].schedule.cycles``)."""
        return {"kind": self.kind, "length": self.length, "restarts": list(self.restarts),
                "peak_ratio": float(f"{self.peak_ratio:.4g}"), "amplitude_ratio": float(f"{self.amplitude_ratio:.4g}")}


@dataclass(frozen=True, slots=True)
class Schedule:
    """The schedule of one LR series (see the module docstring for the definitions)."""

    tag: str
    points: int
    first_step: int
    last_step: int
    log_interval: int
    initial_lr: float
    peak_lr: float
    final_lr: float
    peak_step: int  # first logged step at the warmup's maximum
    warmup_end_step: int | None
    warmup_end_estimated: bool
    warmup_end_bracket: tuple[int, int] | None
    warmup_steps: int | None
    convention: Convention
    warmup_shape: str
    decay_shape: str
    warmup_residual: float | None
    decay_residual: float | None
    total_steps: int
    no_warmup: bool = False
    never_ends: bool = False
    staircase: Staircase | None = None
    rise_after_peak: tuple[int, float, float] | None = None  # (step, LR before, LR after)
    collapse_step: int | None = None
    shortfall: tuple[float, float] | None = None  # (ramp's target, observed peak) when it turned early
    discontinuities: tuple[tuple[int, float, float], ...] = ()
    leading_hold: int = 0  # updates at the starting LR before it first changes (0: not every step logged)
    ramp_repeats: tuple[int, ...] = ()  # steps where the LR repeated inside a rising ramp
    excursions: tuple[Excursion, ...] = ()  # brief excursions, left out of the inference above
    cycles: Cycles | None = None  # restarts the schedule makes by design
    groups: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``runs[].schedule``)."""
        return {
            "tag": self.tag,
            "warmup_end_step": self.warmup_end_step,
            "warmup_end_estimated": self.warmup_end_estimated,
            "warmup_end_bracket": list(self.warmup_end_bracket) if self.warmup_end_bracket else None,
            "warmup_steps": self.warmup_steps,
            "convention": self.convention.as_dict(),
            "peak_lr": self.peak_lr,
            "peak_step": self.peak_step,
            "initial_lr": self.initial_lr,
            "final_lr": self.final_lr,
            "warmup_shape": self.warmup_shape,
            "decay_shape": self.decay_shape,
            "fit_residual": {"warmup": _round(self.warmup_residual), "decay": _round(self.decay_residual)},
            "log_interval": self.log_interval,
            "first_step": self.first_step,
            "last_step": self.last_step,
            "total_steps": self.total_steps,
            "leading_hold": self.leading_hold,
            "ramp_repeats": list(self.ramp_repeats),
            "staircase": None if self.staircase is None else {
                "length": self.staircase.length, "plateaus": self.staircase.plateaus,
                "first_step": self.staircase.first_step},
            "excursions": [e.as_dict() for e in self.excursions],
            "cycles": None if self.cycles is None else self.cycles.as_dict(),
            "groups": list(self.groups),
        }


def _round(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(f"{x:.3g}")


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
    schedules: tuple[Schedule, ...] = ()  # one per learning-rate series, the primary first
    detections: Mapping[str, Any] = field(default_factory=dict)  # spike detections by series key
    profile: Mapping[str, Any] = field(default_factory=dict)  # its row of the sweep view (warmcheck.sweep)

    def get(self, tag: str) -> Series | None:
        """The series named ``tag``, if any."""
        for s in self.series:
            if s.tag == tag:
                return s
        return None

    def with_role(self, role: Role) -> list[Series]:
        """Series carrying ``role``, best match first (the order role assignment decided)."""
        tags = self.roles.get(role, ())
        if not tags:
            return []
        wanted = set(tags)
        by_tag = {s.tag: s for s in self.series if s.tag in wanted}
        return [by_tag[t] for t in tags if t in by_tag]

    def primary(self, role: Role) -> Series | None:
        """The series analyses use for ``role``: the best match, or ``None``."""
        found = self.with_role(role)
        return found[0] if found else None


def last_finite(values: FloatArray, chunk: int = 1 << 16) -> int | None:
    """The index of the last finite value (None: there is none), looked for from the end a chunk at a
    time: no mask or copy of the whole series (the last value, usually)."""
    n = values.shape[0]
    if n and math.isfinite(values[n - 1]):
        return n - 1
    for hi in range(n, 0, -chunk):
        lo = max(0, hi - chunk)
        ok = np.flatnonzero(np.isfinite(values[lo:hi]))
        if ok.shape[0]:
            return lo + int(ok[-1])
    return None


def empty_fragment(tag: str) -> Fragment:
    """A fragment with no points (used by readers for header-only columns)."""
    return Fragment(tag, np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64))
