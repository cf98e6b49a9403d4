"""Incremental analysis of a run that is still being written.

A finished log is analysed once, as a whole. A live run is fed piece by piece and must say what it
sees as soon as it is sure, once, and never what more data could still change. Each finding code
has a :class:`When`:

- ``NOW``: data problems, NaN/Inf, spikes and divergence, reported from a window of the most
  recent points. A spike is reported once it has recovered or has lasted ``hold`` points (so its
  severity and peak are known). A divergence (WC403) is the finished log's verdict on a loss that
  never comes back, so live it waits until nothing but the loss's future could change it: it is
  reported at once when the loss turns NaN/Inf (or the logger hides a NaN), and before that only
  once it has lasted ``hold`` points and runs away (:func:`runaway`: 10x up and still climbing); a
  loss that stays up without climbing, or is coming back down, is judged when the run ends.
- ``SETTLED``: where warmup ended and whether it matches the configuration, reported once the
  warmup is over: the LR has started to decay, or held at its peak for as long as the warmup took
  (at least 20 points). A configured warmup ratio is only judged live when the total it applies to
  is configured (flags, config file, HF's ``max_steps``): the logged length is not the total yet.
- ``END``: what only the whole run can tell (warmup never ends, peak not reached, total steps,
  decay shape, clipping share), reported by :meth:`LiveRun.finish`.

Findings are keyed (:func:`finding_key`) so that a later analysis restating one (with more points
counted in its message) does not print it again.

Memory and time stay bounded: each source's tags are kept in :class:`~.buffer.Retained` stores;
the spike and divergence detectors run on the new points plus ``Limits.window`` before them; the
whole retained run is re-analysed only when it has grown by a quarter since the last time.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..analyzers.divergence import NonFiniteAnalyzer
from ..analyzers.spikes import SpikeAnalyzer
from ..config import Settings
from ..findings import Finding
from ..model import Fragment, Role, Run, Schedule, SourceInfo, SourceRead
from ..pipeline import analyze_run
from ..readers.assemble import assemble_run
from ..runconfig import Configured, configured
from .buffer import Limits, Retained


class When(enum.Enum):
    """When a live run may report a finding code (see the module docstring)."""

    NOW = "now"
    SETTLED = "settled"
    END = "end"


_SETTLED = frozenset({"WC101", "WC105", "WC109", "WC110", "WC201", "WC202", "WC204"})
# WC003 (incomplete tail) is not here: a live source reports it only once the writer is gone.
_END = frozenset({"WC002", "WC019", "WC102", "WC103", "WC104", "WC106", "WC107", "WC108", "WC203",
                  "WC205", "WC206", "WC303"})
_EPISODES = frozenset({"WC301", "WC302", "WC304"})
_WINDOW_CODES = _EPISODES | {"WC401", "WC402", "WC403"}
_WINDOW_ANALYZERS = (SpikeAnalyzer(), NonFiniteAnalyzer())
GROWTH = 1.25  # re-analyse the whole retained run when it has grown by this factor


def when(code: str) -> When:
    """When a live run reports ``code``; codes added later default to the end, the safe choice."""
    if code in _SETTLED:
        return When.SETTLED
    if code in _END:
        return When.END
    if code.startswith("WC0") or code in _WINDOW_CODES:
        return When.NOW
    return When.END


def finding_key(f: Finding) -> tuple[Any, ...]:
    """What makes a finding the same finding across analyses of a growing run.

    One per tag for schedule, audit and divergence findings (later analyses restate them with more
    data); one per episode onset for spikes (WC301 and WC304 are one episode graded two ways); data
    findings by file, step and line.
    """
    if f.code in ("WC301", "WC304"):
        return ("spike", f.tag, f.step)
    if f.code == "WC302":
        return (f.code, f.tag, f.step)
    if f.code[:3] in ("WC1", "WC2", "WC4") or f.code in ("WC019", "WC303"):
        return (f.code, f.tag)
    return (f.code, f.source, f.tag, f.step, f.line)


@dataclass
class _Source:
    info: SourceInfo
    sort_key: tuple[float, str]
    tags: dict[str, Retained] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    restart_steps: list[int] = field(default_factory=list)
    analysed: dict[str, int] = field(default_factory=dict)  # tag -> points written when last analysed


class LiveRun:
    """One run followed live: fed :class:`SourceRead` pieces, it reports each finding once."""

    def __init__(self, name: str, path: str, settings: Settings | None = None, limits: Limits | None = None,
                 config_dir: tuple[str, str] | None = None) -> None:
        self.name, self.path = name, path
        self.settings = (settings or Settings()).for_run(name)
        self.limits = limits or Limits()
        self.config_dir = config_dir  # (directory, shown) to look for hparams.yaml/config.* beside the run
        self.reported: list[Finding] = []
        self.last: Run | None = None  # the latest analysis of the whole retained run
        self.finished = False
        self._keys: set[tuple[Any, ...]] = set()
        self._sources: dict[str, _Source] = {}
        self._queued: list[Finding] = []  # reader findings waiting for the next analysis
        self._deferred: list[Finding] = []  # reader findings only the end may report (no data, ...)
        self._written = 0
        self._written_at_full = 0
        self._schedules: tuple[Schedule, ...] | None = None
        self._extra_metadata: dict[str, Any] = {}

    # -- input ---------------------------------------------------------------------------------

    @property
    def points(self) -> int:
        """Points fed so far (all tags, all sources)."""
        return self._written

    def add(self, key: str, read: SourceRead) -> None:
        """Add what a source yielded since last time (its new fragments, metadata and findings)."""
        src = self._sources.get(key)
        if src is None:
            src = self._sources[key] = _Source(replace(read.info, records=0, skipped=0), read.sort_key)
        src.info = replace(src.info, records=src.info.records + read.info.records,
                           skipped=src.info.skipped + read.info.skipped)
        for k, v in read.metadata.items():
            if isinstance(v, dict) and isinstance(src.metadata.get(k), dict):
                src.metadata[k] = {**src.metadata[k], **v}
            else:
                src.metadata[k] = v
        src.restart_steps = (src.restart_steps + list(read.restart_steps))[-100:]
        for frag in read.fragments:
            store = src.tags.get(frag.tag)
            if store is None:
                store = src.tags[frag.tag] = Retained(frag.tag, self.limits)
            store.extend(frag.steps, frag.values, frag.wall_times)
            self._written += len(frag)
        self._queued.extend(replace(f, run=self.name) for f in read.findings)

    def forget(self, key: str) -> None:
        """Drop the points, metadata and counts a source gave so far: its file was rewritten, and what
        it holds now is fed afresh (the findings reported stay reported, once)."""
        src = self._sources.get(key)
        if src is not None:  # replaced in place: the source keeps its position in the write order
            self._sources[key] = _Source(replace(src.info, records=0, skipped=0), src.sort_key)
            self._written_at_full = 0  # analyse the whole run again at the next poll

    def note(self, findings: Iterable[Finding]) -> None:
        """Findings about the run's files that no read carried (discovery, a writer gone mid-record)."""
        self._queued.extend(replace(f, run=self.name) for f in findings)

    def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Run-level metadata (configuration) that no source carries: the in-process monitor's."""
        self._extra_metadata.update(metadata)

    def feed(self, key: str, read: SourceRead) -> list[Finding]:
        """:meth:`add` then :meth:`analyse`, in pieces small enough that every point is judged at full
        resolution before the store thins it (a first poll of a long finished file, say)."""
        out: list[Finding] = []
        for piece in split_read(read, max(1, (self.limits.tail - self.limits.window - self.limits.context) // 2)):
            self.add(key, piece)
            out.extend(self.analyse())
        return out

    # -- analysis ------------------------------------------------------------------------------

    def analyse(self) -> list[Finding]:
        """Analyse what arrived since last time; the findings reported for the first time."""
        new = self._take_queued()
        if self._written >= max(self._written_at_full * GROWTH, self._written_at_full + 50) or self.last is None:
            new.extend(self._full(final=False))
        if any(s.written > src.analysed.get(t, 0) for src in self._sources.values() for t, s in src.tags.items()):
            new.extend(self._window())
        return new

    def finish(self) -> list[Finding]:
        """The run is over (or no longer watched): analyse all of it; what was not reported yet."""
        if self.finished:
            return []
        self.finished = True
        new = self._take_queued(final=True)
        new.extend(self._window(final=True))
        new.extend(self._full(final=True))
        return new

    def _take_queued(self, final: bool = False) -> list[Finding]:
        queued, self._queued = self._queued, []
        self._deferred.extend(f for f in queued if when(f.code) is not When.NOW)
        now = [f for f in queued if when(f.code) is When.NOW]
        if final:
            now, self._deferred = now + self._deferred, []
        return self._report(f for f in now if self.settings.enabled(f.code))

    def _report(self, findings: Iterable[Finding]) -> list[Finding]:
        out = []
        for f in findings:
            k = finding_key(f)
            if k in self._keys:
                continue
            self._keys.add(k)
            self.reported.append(f)
            out.append(f)
        return out

    def _assemble(self, recent: Mapping[tuple[str, str], int] | None = None) -> Run:
        reads = []
        for src in self._sources.values():
            frags = [store.fragment() if recent is None else store.recent(recent[(src.info.path, tag)])
                     for tag, store in sorted(src.tags.items())]
            reads.append(SourceRead(src.info, frags, src.metadata, (), tuple(src.restart_steps), src.sort_key))
        run = assemble_run(self.name, self.path, reads, self.settings.role_overrides())
        metadata = {**run.metadata, **self._extra_metadata}
        if recent is None and self.config_dir is not None:
            from ..readers.runconfig_files import read_config_files

            configs, _ = read_config_files(*self.config_dir)
            if configs:
                metadata["config_files"] = configs
        return replace(run, metadata=metadata)

    def _window(self, final: bool = False) -> list[Finding]:
        """Spikes, NaN and divergence among the new points, judged with ``window`` points of history;
        ``final``: the run is over, so an episode that has not come back never will."""
        need: dict[tuple[str, str], int] = {}
        truncated: set[str] = set()
        for src in self._sources.values():
            for tag, store in src.tags.items():
                n = store.written - src.analysed.get(tag, 0) + self.limits.window + self.limits.context
                need[(src.info.path, tag)] = n
                src.analysed[tag] = store.written
                if store.written > n:  # the window does not start at the run's first point
                    truncated.add(tag)
        if not need:
            return []
        run = analyze_run(self._assemble(need), self.settings, _WINDOW_ANALYZERS, self._schedules or ())
        # An episode is judged as in the finished log only if its onset has a full trailing history here.
        cut = {s.tag: int(s.steps[min(self.limits.context, s.points - 1)]) for s in run.series
               if s.tag in truncated and s.points}
        hold = max(self.settings.spike_window, 20)
        return self._report(f for f in run.findings if f.code in _WINDOW_CODES and f.step is not None
                            and (f.tag not in cut or f.step >= cut[f.tag])
                            and (final or _held(f, run, hold, self.settings.divergence_ratio)))

    def _full(self, final: bool) -> list[Finding]:
        """Analyse the whole retained run: schedule, audit; at the end, everything."""
        self._written_at_full = self._written
        run = analyze_run(self._assemble(), self.settings)
        self.last = run
        self._schedules = run.schedules
        thinned = any(s.thinned for src in self._sources.values() for s in src.tags.values())
        settled = warmup_settled(run)
        audit_live = live_audit_possible(configured(run, self.settings))
        hold = max(self.settings.spike_window, 20)
        keep = []
        for f in run.findings:
            w = when(f.code)
            if f.code in _WINDOW_CODES:
                ok = not thinned and (final or _held(f, run, hold, self.settings.divergence_ratio))
            elif w is When.SETTLED:
                ok = final or (settled and (not f.code.startswith("WC2") or audit_live))
            elif w is When.END:
                ok = final
            else:
                ok = True
            if ok:
                keep.append(f)
        return self._report(keep)

    def outcome_run(self) -> Run:
        """The run as last analysed, carrying the findings reported so far (for summaries and reports)."""
        base = self.last or Run(self.name, self.path, (), ())
        sources = tuple(src.info for src in self._sources.values())
        return replace(base, sources=sources, findings=tuple(sorted(self.reported, key=Finding.sort_key)))


def _held(f: Finding, run: Run, hold: int, ratio: float) -> bool:
    """Whether a window finding may be reported before the run ends.

    A spike: once it has recovered or lasted ``hold`` points. A divergence: at once when the loss
    turned non-finite (or the logger hid a NaN); otherwise once it has lasted ``hold`` points and is
    still running away (:func:`runaway`), never while it could still come back down to a spike.
    """
    if f.code in ("WC401", "WC402"):
        return True
    role = Role.GRAD_NORM if f.code == "WC302" else Role.LOSS
    s = run.primary(role)
    if s is None or f.step is None:
        return True
    d = f.details
    if f.code == "WC403":
        if d.get("first_nonfinite_step") is not None:
            return True
        since = d.get("detected_step", f.step)
    else:
        if d.get("recovered_step") is not None:
            return True
        since = f.step
    after = int(s.points - np.searchsorted(s.steps, since if isinstance(since, int) else f.step))
    if after < hold:
        return False
    if f.code != "WC403":
        return True
    expected = d.get("expected")
    return isinstance(expected, float) and runaway(s.values, hold, max(RUNAWAY_RATIO, ratio) * expected)


# A loss that runs away is an order of magnitude above its expected value and still climbing. Loss
# spikes that come back are smaller: at most 5x in the calibration set (bench/calibrate.py), 1.6x in
# the real runs; and a spike that has begun to come back down is no longer climbing.
RUNAWAY_RATIO = 10.0
RUNAWAY_GROWTH = 1.1  # the detector's recover_ratio: a rise that 10-point medians show is no noise


def runaway(values: np.ndarray, hold: int, level: float) -> bool:
    """Whether a loss is running away at its newest point: the median of its newest ``hold // 2``
    finite values is at least ``level`` and ``RUNAWAY_GROWTH`` times the median of the ``hold // 2``
    before them."""
    v = values[np.isfinite(values)]
    half = max(hold // 2, 1)
    if v.shape[0] < 2 * half or not level > 0 or bool(np.any(v[-2 * half:] <= 0)):
        return False
    newer, older = float(np.median(v[-half:])), float(np.median(v[-2 * half:-half]))
    return newer >= level and newer >= RUNAWAY_GROWTH * older


def warmup_settled(run: Run) -> bool:
    """Whether the primary LR's warmup is over: decay has begun, or the peak has held as long as
    the warmup took (at least 20 logged points)."""
    if not run.schedules:
        return False
    sched = run.schedules[0]
    if sched.warmup_end_step is None or sched.peak_lr is None:
        return False
    lr = run.primary(Role.LR)
    if lr is None or not lr.points:
        return False
    after = lr.values[lr.steps > sched.warmup_end_step]
    after = after[np.isfinite(after)]
    if after.shape[0] == 0:
        return False
    peak = float(sched.peak_lr)
    if not peak > 0:
        return False  # an LR held at 0 is not a peak (a staircase or a delayed start)
    if after.shape[0] >= 3 and float(after[-1]) < peak * (1 - 1e-3) and float(after.max()) <= peak * (1 + 1e-6):
        return True
    needed = max(20, math.ceil((sched.warmup_steps or 0) / max(sched.log_interval or 1, 1)))
    return after.shape[0] >= needed


def live_audit_possible(cfg: Configured) -> bool:
    """Whether the configured warmup can be judged before the run ends: a length in steps, or a ratio
    of a configured total (not of the logged length, which is still growing)."""
    if cfg.warmup_steps is not None:
        return True
    if cfg.warmup_ratio is None:
        return True  # nothing to audit: WC2xx findings (peak LR) need no total
    return cfg.total_steps is not None or (cfg.epochs is not None and cfg.steps_per_epoch is not None)


def split_read(read: SourceRead, points: int) -> Iterable[SourceRead]:
    """``read`` cut into pieces of at most ``points`` points of its longest tag, by step, in write order."""
    longest = max((len(f) for f in read.fragments), default=0)
    if longest <= points:
        yield read
        return
    pieces = math.ceil(longest / points)
    ref = max(read.fragments, key=len)
    edges = [int(ref.steps[i * points]) for i in range(1, pieces)]
    cuts: list[list[int]] = []
    for f in read.fragments:
        if len(f) > 1 and not bool(np.all(np.diff(f.steps) >= 0)):
            cuts.append([round(len(f) * i / pieces) for i in range(pieces + 1)])  # a restart: cut by position
        else:
            cuts.append([0, *np.searchsorted(f.steps, edges).tolist(), len(f)])
    for i in range(pieces):
        frags = [Fragment(f.tag, f.steps[b[i]:b[i + 1]], f.values[b[i]:b[i + 1]], f.wall_times[b[i]:b[i + 1]])
                 for f, b in zip(read.fragments, cuts, strict=True)]
        yield SourceRead(replace(read.info, records=read.info.records if i == 0 else 0,
                                 skipped=read.info.skipped if i == 0 else 0),
                         frags, read.metadata if i == 0 else {}, read.findings if i == 0 else (),
                         read.restart_steps if i == 0 else (), read.sort_key)


def config_dir_of(path: str, shown: str) -> tuple[str, str]:
    """The (directory, shown directory) of a run's first file, where its config files may lie."""
    return os.path.dirname(path), os.path.dirname(shown)


__all__ = ["LiveRun", "Limits", "When", "when", "finding_key", "runaway", "warmup_settled", "live_audit_possible",
           "split_read", "config_dir_of"]
