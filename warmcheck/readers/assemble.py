"""Merge what the readers returned for one run into a :class:`~warmcheck.model.Run`.

Policy for repeated steps (a restart inside one file, a resume into a second file): **the later
write wins**. Sources are ordered by their write order (event files by the creation time in their
name, then name), records within a source by position. Every point is counted; the analysed series
keeps the later value of each step and ``superseded`` says how many earlier values it replaced.
Repeats, out-of-order steps, negative and huge steps and clock jumps are reported, never deleted.

Joined files (:mod:`warmcheck.readers.joining`): a ``trainer_state.json`` read with the event files
of its HF output directory is a second copy of the same log: its tags take the TensorBoard
callback's names, it is ordered after the event files (its float64 values are analysed), and a
step it repeats with the value the event file holds (at float32 precision) is neither a conflict
nor counted as superseded. An evaluation log's series are named ``<file stem>/<column>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace

import numpy as np

from ..findings import Finding
from ..model import Format, Fragment, Role, Run, Series, SourceRead
from ..roles import assign_roles
from .interface import diag
from .joining import file_stem, hf_tb_tag, is_eval_source, renamed, same_values, uses_hf_tb_names

_EXACT_FLOAT = 2**53
_CONCATENATED = 1 << 16  # up to this many steps in a run, the step checks run on all of them at once


def assemble_run(name: str, path: str, reads: Sequence[SourceRead],
                 overrides: Mapping[Role, Sequence[str]] | None = None, *, consume: bool = False) -> Run:
    """Build a run from its sources' reads: merge by step, report repeats, assign roles.

    ``consume``: the caller hands the reads over; their fragment lists are emptied as the series are
    built (each fragment's arrays move into its series), so that a file of a million columns is not
    held twice, as fragments and as series.
    """
    reads, mirrors = _joined(reads)
    findings: list[Finding] = [f for r in reads for f in r.findings]
    float32 = {i for i, r in enumerate(reads) if r.info.format is Format.TFEVENTS}
    by_tag: dict[str, list[tuple[int, Fragment]]] = {}
    ordered = sorted(reads[0].fragments, key=lambda f: f.tag, reverse=True) if len(reads) == 1 else []
    single = len(reads) == 1 and all(a.tag != b.tag for a, b in zip(ordered, ordered[1:], strict=False))
    if not single:
        ordered = []
        for i, r in enumerate(reads):
            for frag in r.fragments:
                by_tag.setdefault(frag.tag, []).append((i, frag))
    increasing = _Increasing()  # each steps array checked once, here and by the merge
    findings.extend(_step_findings(reads, by_tag, float32, mirrors, increasing))
    if single:
        # One file, one fragment per tag (the common case): no grouping (a CSV may hold a million columns).
        if consume and isinstance(reads[0].fragments, list):
            reads[0].fragments.clear()
        series = []
        while ordered:  # in tag order; a consumed fragment is freed once its series holds its arrays
            f = ordered.pop()
            series.append(_merge(f.tag, [(0, f)], mirrors, float32, increasing))
    else:
        series = [_merge(tag, parts, mirrors, float32, increasing) for tag, parts in sorted(by_tag.items())]
    roles = assign_roles(series, overrides)
    role_of = {t: role for role, tags in roles.items() for t in tags}
    series = [replace(s, role=role_of[s.tag]) if s.tag in role_of else s for s in series]
    metadata: dict[str, object] = {}
    for r in reads:
        for k, v in r.metadata.items():
            if isinstance(v, dict) and isinstance(metadata.get(k), dict):
                metadata[k] = {**metadata[k], **v}  # type: ignore[dict-item]
            else:
                metadata[k] = v
    firsts = {r.info.path: int(min(int(f.steps.min()) for f in r.fragments if len(f)))
              for i, r in enumerate(reads) if i and i not in mirrors and any(len(f) for f in r.fragments)}
    if firsts:
        metadata["source_first_steps"] = firsts  # where later files (resumes) take over
    restarts = sorted({s for r in reads for s in r.restart_steps})
    if restarts:
        metadata["restart_steps"] = restarts
    findings = [replace(f, run=name) for f in findings]
    return Run(name=name, path=path, sources=tuple(r.info for r in reads), series=tuple(series),
               metadata=metadata, findings=tuple(findings), roles=roles)


def _joined(reads: Sequence[SourceRead]) -> tuple[list[SourceRead], set[int]]:
    """Reads in write order, joined files renamed; the indices of trainer_state copies of event files."""
    formats = {r.info.format for r in reads}
    hf_mirror = Format.HF_TRAINER_STATE in formats and uses_hf_tb_names(reads)
    has_training_log = any(not is_eval_source(r) for r in reads)
    out: list[SourceRead] = []
    for r in reads:
        if hf_mirror and r.info.format is Format.HF_TRAINER_STATE:
            r = replace(r, fragments=[renamed(f, hf_tb_tag(f.tag)) for f in r.fragments])
        elif has_training_log and len(reads) > 1 and is_eval_source(r):
            stem = file_stem(r.info.path.replace("\\", "/").rsplit("/", 1)[-1])
            r = replace(r, fragments=[renamed(f, f"{stem}/{f.tag}") for f in r.fragments])
        out.append(r)
    out.sort(key=lambda r: (hf_mirror and r.info.format is Format.HF_TRAINER_STATE, r.sort_key))
    mirrors = {i for i, r in enumerate(out) if hf_mirror and r.info.format is Format.HF_TRAINER_STATE}
    return out, mirrors


class _Increasing:
    """Whether a steps array strictly increases, computed once per array object: the columns of a CSV
    share their steps array (a million columns, one check)."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[np.ndarray, bool]] = {}

    def __call__(self, steps: np.ndarray) -> bool:
        hit = self._known.get(id(steps))
        if hit is not None and hit[0] is steps:
            return hit[1]
        answer = _increases(steps)
        self._known[id(steps)] = (steps, answer)  # the array is kept alive, so its id stays its own
        return answer


def _increases(steps: np.ndarray, chunk: int = 1 << 20) -> bool:
    """Whether every step is above the one before (``np.diff(steps) > 0``, its subtraction included),
    a chunk at a time: no full-length temporary (16 MB for 2 million steps)."""
    n = steps.shape[0]
    for a in range(0, n - 1, chunk):
        b = min(n, a + chunk + 1)
        if not (np.subtract(steps[a + 1 : b], steps[a : b - 1]) > 0).all():
            return False
    return True


def _merge(tag: str, parts: list[tuple[int, Fragment]], mirrors: AbstractSet[int] = frozenset(),
           float32: AbstractSet[int] = frozenset(), increasing: _Increasing | None = None) -> Series:
    """One series from fragments in write order: sorted by step, the last write of a step kept.

    A point dropped for a later write of its step counts as superseded, except a copy from a
    ``mirrors`` source holding the same value (at float32 precision against an event file).
    """
    if len(parts) == 1:  # one source: its arrays as they are (10M points are 160 MB; no copy)
        only = parts[0][1]
        steps, values, walls = only.steps, only.values, only.wall_times
    else:
        steps = np.concatenate([f.steps for _, f in parts])
        values = np.concatenate([f.values for _, f in parts])
        walls = np.concatenate([f.wall_times for _, f in parts])
    if not (increasing or _Increasing())(steps):
        # Which source wrote each point: only needed where steps repeat (not on the common sorted path).
        source = np.concatenate([np.full(len(f), i, dtype=np.int64) for i, f in parts])
        order = np.argsort(steps, kind="stable")  # stable: equal steps stay in write order
        steps, values, walls, source = steps[order], values[order], walls[order], source[order]
        last = np.ones(steps.shape[0], dtype=bool)
        last[:-1] = steps[1:] != steps[:-1]
        dropped = np.flatnonzero(~last)
        kept = np.searchsorted(steps, steps[dropped], side="right") - 1
        copy = np.isin(source[dropped], list(mirrors)) | np.isin(source[kept], list(mirrors))
        f32 = np.isin(source[dropped], list(float32)) | np.isin(source[kept], list(float32))
        a, b = values[dropped], values[kept]
        copy &= np.where(f32, same_values(a, b, float32=True), same_values(a, b, float32=False))
        superseded = int(dropped.shape[0] - np.count_nonzero(copy))
        steps, values, walls = steps[last], values[last], walls[last]
    else:
        superseded = 0
    return Series(tag, steps.astype(np.int64, copy=False), values.astype(np.float64, copy=False),
                  walls.astype(np.float64, copy=False), superseded=superseded)


def _step_findings(reads: Sequence[SourceRead], by_tag: Mapping[str, list[tuple[int, Fragment]]],
                   float32: AbstractSet[int] = frozenset(), mirrors: AbstractSet[int] = frozenset(),
                   increasing: _Increasing | None = None) -> list[Finding]:
    out: list[Finding] = []
    for r in reads:
        out.extend(_within_source(r.info.path, list(r.fragments), r.restart_steps, increasing))
    out.extend(_across_sources(reads, by_tag, float32, mirrors))
    all_steps = [f.steps for r in reads for f in r.fragments if len(f)]
    if all_steps:
        negative, lowest, huge, highest = _step_range(all_steps)
        if negative:
            out.append(diag("WC008", f"negative steps ({negative} points, lowest {lowest})",
                            reads[0].info.path, step=lowest, points=negative))
        if huge:
            out.append(diag("WC009", f"{huge} points have steps above 2^53 (highest {highest}); "
                            "kept as exact integers, but they lose precision as floats",
                            reads[0].info.path, step=highest, points=huge))
    return out


def _step_range(arrays: list[np.ndarray]) -> tuple[int, int, int, int]:
    """(negative steps, lowest step, steps beyond +-2^53, highest step) of the steps arrays together.

    Array by array, counting only where the lowest or highest says there is something to count: no
    concatenation of every step of the run (five tags of 2 million points are 80 MB, and ``np.abs`` of
    them 80 MB more). A few points (fewer calls), or anything but integer arrays of one dtype, are
    concatenated, as they were."""
    if (sum(a.shape[0] for a in arrays) <= _CONCATENATED or len({a.dtype for a in arrays}) > 1
            or not np.issubdtype(arrays[0].dtype, np.integer)):
        steps = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
        negative = int(np.count_nonzero(steps < 0))
        lowest = int(steps.min()) if negative else 0
        huge = int(np.count_nonzero(np.abs(steps) > _EXACT_FLOAT))
        return negative, lowest, huge, int(steps.max()) if huge else 0
    negative = huge = 0
    ranges = [(int(a.min()), int(a.max())) for a in arrays]
    for a, (lo, hi) in zip(arrays, ranges, strict=True):
        if lo < 0:
            negative += int(np.count_nonzero(a < 0))
        if not (-_EXACT_FLOAT <= lo and hi <= _EXACT_FLOAT):
            huge += int(np.count_nonzero(np.abs(a) > _EXACT_FLOAT))
    return negative, min(lo for lo, _ in ranges), huge, max(hi for _, hi in ranges)


def _within_source(path: str, frags: list[Fragment], restart_steps: Sequence[int],
                   increasing: _Increasing | None = None) -> list[Finding]:
    """Restarts (a step repeated in one file) and out-of-order steps, one finding per file."""
    out: list[Finding] = []
    repeated = tags_repeated = decreases = 0
    first_back: tuple[int, int] | None = None
    wall_drop: tuple[float, int] | None = None
    increasing = increasing or _Increasing()
    for f in frags:
        if len(f) < 2:
            continue
        if increasing(f.steps):
            walls = f.wall_times
            # Nothing to report: strictly increasing steps, and no wall clock or none that goes back (a
            # drop below, w < 0, needs a later time below an earlier one).
            if _no_walls(walls) or not (walls[1:] < walls[:-1]).any():
                continue
        d = np.diff(f.steps)
        if not (d > 0).all():  # the common case, strictly increasing, needs no sort
            back = np.flatnonzero(d < 0)
            if back.shape[0]:
                decreases += int(back.shape[0])
                k = int(back[0])
                if first_back is None or int(f.steps[k + 1]) < first_back[1]:
                    first_back = (int(f.steps[k]), int(f.steps[k + 1]))
            dup = _conflicting_repeats(f)
            if dup:
                repeated += dup
                tags_repeated += 1
        w = np.diff(f.wall_times)
        drops = np.flatnonzero((w < 0) & (d > 0) & np.isfinite(w))
        if drops.shape[0]:
            k = int(drops[np.argmin(w[drops])])
            if wall_drop is None or w[k] < wall_drop[0]:
                wall_drop = (float(w[k]), int(f.steps[k + 1]))
    if repeated:
        start = first_back[1] if first_back else None
        why = f" (SessionLog.START at step {restart_steps[0]})" if restart_steps else ""
        back_txt = f"step went backwards from {first_back[0]} to {first_back[1]}; " if first_back else ""
        out.append(diag("WC006", f"restart{why}: {back_txt}{repeated} points in {tags_repeated} tags "
                        "duplicate earlier steps; the later write is analysed", path, step=start,
                        superseded=repeated, tags=tags_repeated))
    elif decreases:
        out.append(diag("WC007", f"steps not monotonic ({decreases} backwards steps, no step repeated); "
                        "sorted by step, nothing dropped", path, decreases=decreases,
                        step=first_back[1] if first_back else None))
    if wall_drop is not None:
        out.append(diag("WC010", f"wall_time decreased by {-wall_drop[0]:.0f} s at step {wall_drop[1]}",
                        path, step=wall_drop[1], seconds=-wall_drop[0]))
    return out


def _no_walls(walls: np.ndarray) -> bool:
    """Whether ``walls`` is :func:`~warmcheck.model.no_wall_times` (a broadcast NaN, no memory)."""
    return walls.ndim == 1 and walls.strides == (0,) and (walls.shape[0] == 0 or walls[0] != walls[0])


def _conflicting_repeats(f: Fragment) -> int:
    """Repeated steps whose value differs from the step's previous write.

    A logger that writes the same (step, value) twice (Lightning's ``epoch`` column on train and
    val rows, HF's last ``train/epoch``) has not restarted; only a different value is a conflict.
    """
    order = np.argsort(f.steps, kind="stable")
    steps, values = f.steps[order], f.values[order]
    same_step = steps[1:] == steps[:-1]
    same_value = (values[1:] == values[:-1]) | (np.isnan(values[1:]) & np.isnan(values[:-1]))
    return int(np.count_nonzero(same_step & ~same_value))


def _across_sources(reads: Sequence[SourceRead], by_tag: Mapping[str, list[tuple[int, Fragment]]],
                    float32: AbstractSet[int] = frozenset(), mirrors: AbstractSet[int] = frozenset()) -> list[Finding]:
    """Resume overlaps: steps written by an earlier source and again by a later one.

    A pair of files is reported when at least one repeated step carries a different value; files
    that repeat a step with the same value (HF writes the last ``train/epoch`` into both) are not.
    Against an event file (float32), values are compared at float32 precision; against a
    trainer_state copy of the event files (``mirrors``), only the steps whose values differ count.
    """
    pairs: dict[tuple[int, int], list[int]] = {}  # (earlier, later) -> [points, tags, lo, hi, conflicts]
    for parts in by_tag.values():
        for a in range(len(parts)):
            for b in range(a + 1, len(parts)):
                (ia, fa), (ib, fb) = parts[a], parts[b]
                if ia == ib or not len(fa) or not len(fb):
                    continue
                common, ka, kb = np.intersect1d(fa.steps, fb.steps, return_indices=True)
                if not common.shape[0]:
                    continue
                same = same_values(fa.values[ka], fb.values[kb], float32=ia in float32 or ib in float32)
                conflicts = int(np.count_nonzero(~same))
                if ia in mirrors or ib in mirrors:  # a copy of the same log: only the steps that differ overlap
                    common = common[~same]
                    if not common.shape[0]:
                        continue
                acc = pairs.setdefault((ia, ib), [0, 0, int(common[0]), int(common[-1]), 0])
                acc[0] += int(common.shape[0])
                acc[1] += 1
                acc[2], acc[3] = min(acc[2], int(common[0])), max(acc[3], int(common[-1]))
                acc[4] += conflicts
    out = []
    for (ia, ib), (points, tags, lo, hi, conflicts) in sorted(pairs.items()):
        if not conflicts:
            continue
        earlier, later = reads[ia].info.path, reads[ib].info.path
        out.append(diag("WC006", f"resume overlap: steps {lo}..{hi} in both {_base(earlier)} and "
                        f"{_base(later)} ({points} points in {tags} tags); the later file is analysed",
                        later, step=lo, step_end=hi, superseded=points, tags=tags, earlier=earlier,
                        conflicting=conflicts))
    return out


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]
