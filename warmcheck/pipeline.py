"""``analyze(paths, settings) -> Outcome``: discover, read, analyse, filter, sort."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import cache, storage
from .config import FailOn, Settings
from .errors import NoRunsError
from .findings import Finding, Severity, make
from .model import Run, Schedule
from .readers import discover, is_training_csv, read_runs
from .readers._textstream import Limits, set_limits
from .readers.discovery import RunSpec
from .runcache import Facts, Hit, Pieces, RunCache, analyse_with_cache, facts_of, set_last_stats

if TYPE_CHECKING:  # imported when a run is analysed: a warm run from the cache of analysed runs needs none
    from .analyzers import Analyzer
    from .workers import WorkerDeath, WorkerFailure


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything a reporter needs: the runs (with their findings) and tree-level findings."""

    runs: tuple[Run, ...]
    findings: tuple[Finding, ...] = ()  # not tied to one run (links skipped outside run dirs)
    settings: Settings = Settings()
    # The sweep view over the runs (JSON ``sweep``; see warmcheck.sweep), when there are several.
    sweep: Mapping[str, Any] | None = None
    # ``warmcheck compare``: the comparison (JSON ``comparison``; see warmcheck.compare) and the
    # baseline runs it was compared with (their points, for overlays).
    comparison: Mapping[str, Any] | None = None
    baselines: tuple[Run, ...] = ()

    @property
    def n_runs(self) -> int:
        """How many runs."""
        return len(self.runs)

    def all_findings(self) -> list[Finding]:
        """Tree-level findings, then each run's, in report order."""
        return [*self.findings, *(f for r in self.runs for f in r.findings)]

    def counts(self) -> dict[Severity, int]:
        """Findings per severity."""
        out = {s: 0 for s in Severity}
        for f in self.all_findings():
            out[f.severity] += 1
        return out

    @property
    def analysable(self) -> bool:
        """Whether at least one run held data that could be analysed."""
        return any(s.points for r in self.runs for s in r.series)


@dataclass(frozen=True, slots=True)
class PiecedOutcome:
    """An outcome as a reporter that joins pieces needs it (:mod:`warmcheck.reporters.pieces`): per
    run its facts (findings per severity, whether it held data) and its report pieces in one format,
    then the tree-level findings. See :func:`analyze_pieces`."""

    facts: Facts
    pieces: tuple[tuple[str, ...] | Run, ...]  # a run too large to render ahead: rendered when joined
    findings: tuple[Finding, ...] = ()
    settings: Settings = Settings()

    @property
    def n_runs(self) -> int:
        """How many runs."""
        return len(self.facts)

    def counts(self) -> dict[Severity, int]:
        """Findings per severity (as :meth:`Outcome.counts`)."""
        out = {s: 0 for s in Severity}
        for f in self.findings:
            out[f.severity] += 1
        for e, w, i, _ in self.facts:
            out[Severity.ERROR] += e
            out[Severity.WARNING] += w
            out[Severity.INFO] += i
        return out

    @property
    def analysable(self) -> bool:
        """Whether at least one run held data that could be analysed."""
        return any(a for *_, a in self.facts)


def exit_code(outcome: Outcome | PiecedOutcome, fail_on: FailOn = FailOn.ERROR, exit_zero: bool = False) -> int:
    """The process exit code for an outcome.

    2 when nothing could be analysed (no run held any data): a gate must never pass what it could
    not see. Otherwise 1 when a finding is at or above ``fail_on`` (unless ``exit_zero``), else 0.
    Whole-invocation failures (usage, missing path, no runs, bad config) exit 2 before this.
    """
    if not outcome.analysable:
        return 2
    if exit_zero or fail_on is FailOn.NEVER:
        return 0
    threshold = Severity(fail_on.value).rank
    return 1 if any(n and s.rank >= threshold for s, n in outcome.counts().items()) else 0


AUTO_JOBS_MIN_RUNS = 16  # below this many runs, starting worker processes costs more than it saves
WORKER_CHUNK = 32  # runs a worker takes at a time, at most (smaller towards the end: workers.guided_chunks)


def analyze(paths: Sequence[str], settings: Settings | None = None,
            progress: Callable[[int, int, str], None] | None = None, jobs: int = 1, *,
            worker_init: Callable[[], None] | None = None, start_method: str | None = None,
            scheduler: str | None = None, keep_points: bool = True) -> Outcome:
    """Discover the runs under ``paths`` and analyse each; raises ``NoRunsError`` if none.

    ``jobs``: worker processes (0: one per CPU when there are at least 16 runs). Runs are
    independent, results come back in discovery order, so the outcome does not depend on ``jobs``.
    A run whose worker process dies (the out-of-memory killer, ``kill -9``) is retried once alone
    in a fresh process; if that dies too, the run gets a WC024 finding and the others are reported.
    ``worker_init`` runs first in each worker process; ``start_method``: multiprocessing's
    (``fork``, ``spawn``, ``forkserver``; default: the platform's).
    ``scheduler``: the address of a dask.distributed scheduler; the runs are analysed there instead
    (``jobs`` is ignored; see :mod:`warmcheck.dask_engine`).
    Unless ``keep_points``, the runs come back without their points (series summaries: every
    reporter's numbers, nothing to plot) and, when a cache of reads is active (:mod:`warmcheck.cache`),
    runs whose files have not changed are taken from the cache of analysed runs
    (:mod:`warmcheck.runcache`) instead of being read and analysed again.
    """
    settings = settings or Settings()
    found, by_index, _, _ = _analyse(paths, settings, progress, jobs, worker_init, start_method, scheduler,
                                     keep_points, None)
    runs: list[Run] = [r for i in range(len(found.runs)) for r in by_index[i]]  # discovery order
    return Outcome(tuple(runs), _tree(found, settings), settings, sweep=sweep_of([r.profile for r in runs]))


def sweep_of(profiles: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The sweep view of the runs' profiles (None for a single run)."""
    if len(profiles) < 2:
        return None
    from .sweep import view

    return view(profiles)


def analyze_pieces(paths: Sequence[str], settings: Settings, piece: str,
                   render: Callable[[Run], tuple[str, ...]] | None = None,
                   progress: Callable[[int, int, str], None] | None = None, jobs: int = 1, *,
                   scheduler: str | None = None) -> PiecedOutcome:
    """:func:`analyze` (without points) for a reporter that joins per-run pieces: ``render`` gives a
    run's pieces in the ``piece`` format (default: :func:`warmcheck.reporters.pieces.renderer`, which
    worker processes then call themselves, so that the runs are rendered in parallel and only their
    text comes back). With the cache of analysed runs active, the pieces of an unchanged run come from
    it, so that run is neither analysed, nor unpickled, nor rendered again; the pieces of the others
    are rendered and stored."""
    in_workers = render is None
    if render is None:
        from .reporters import pieces as piece_formats

        render = piece_formats.renderer(piece)
    found, by_index, hits, rendered = _analyse(paths, settings, progress, jobs, None, None, scheduler, False,
                                               (piece, render), in_workers)
    facts: list[tuple[int, int, int, bool]] = []
    pieces: list[tuple[str, ...] | Run] = []
    for i in range(len(found.runs)):
        hit = hits.get(i)
        if hit is not None and hit.pieces is not None:
            facts.extend(hit.facts)
            pieces.extend(hit.pieces)
        elif (done := rendered.get(i)) is not None:  # rendered by a worker, or to be stored in the cache
            facts.extend(done.facts)
            pieces.extend(done.pieces)
        else:
            runs = by_index[i]
            facts.extend(facts_of(runs))
            pieces.extend(render(r) if _small(r) else r for r in runs)
    return PiecedOutcome(tuple(facts), tuple(pieces), _tree(found, settings), settings)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A discovered run's runs as a pieced report needs them: their facts and report pieces, and the
    compact runs themselves only where the parent needs them (to store in the cache of analysed runs).
    What a worker process that rendered them sends back (:func:`analyze_in_worker`)."""

    facts: Facts
    pieces: Pieces
    runs: list[Run] | None = None


PIECE_MAX_ITEMS = 2000  # a run with more series + findings is rendered when the report is written, not kept


def _small(run: Run) -> bool:
    """Whether ``run``'s pieces are rendered ahead and kept: not a run of a million series, whose JSON
    is streamed series by series (:class:`~warmcheck.reporters.json.JsonReporter`), never held."""
    return len(run.series) + len(run.findings) <= PIECE_MAX_ITEMS


def _tree(found: Any, settings: Settings) -> tuple[Finding, ...]:
    return tuple(sorted((f for f in found.findings if settings.enabled(f.code)), key=Finding.sort_key))


def _analyse(paths: Sequence[str], settings: Settings, progress: Callable[[int, int, str], None] | None, jobs: int,
             worker_init: Callable[[], None] | None, start_method: str | None, scheduler: str | None,
             keep_points: bool, pieced: tuple[str, Callable[[Run], tuple[str, ...]]] | None,
             render_in_workers: bool = False,
             ) -> tuple[Any, dict[int, list[Run]], dict[int, Hit], dict[int, Rendered]]:
    """Discover and analyse: the discovery, the runs of each discovered run by index (those not taken
    from the cache of analysed runs as pieces, nor sent back rendered by a worker alone), the cache's
    hits and, by index, the runs rendered in ``pieced``'s format: by a worker (``render_in_workers``:
    with :func:`warmcheck.reporters.pieces.renderer`) or here, to be stored in the cache."""
    if settings.storage_options:  # URL PATHs: the filesystems' options (endpoint, credentials, timeouts)
        storage.set_storage_options(settings.storage_options)
    found = discover(paths, is_training_csv)
    if not found.runs:
        raise NoRunsError("no training logs found under " + ", ".join(paths))
    total = len(found.runs)
    store = cache.active()  # worker processes and dask workers read through the same cache directory
    cache_dir = store.directory if store is not None else None
    by_index: dict[int, list[Run]] = {}
    hits: dict[int, Hit] = {}
    rendered: dict[int, Rendered] = {}
    keys: dict[int, tuple[str, bool]] = {}
    memo: RunCache | None = None
    if cache_dir is not None and not keep_points:  # analysed runs cached too (without points: no plots)
        memo = RunCache(cache_dir, tuple(paths), settings, pieced[0] if pieced is not None else None)
        memo.dir_stats = found.dir_stats
        hits, keys = analyse_with_cache(memo, found.runs)
        by_index = {i: hit.runs for i, hit in hits.items() if hit.runs is not None}
    todo = [i for i in range(total) if i not in hits]
    done = len(hits)

    def step(i: int) -> None:
        nonlocal done
        if progress is not None:
            progress(done, total, found.runs[i].name)
        done += 1

    if todo:
        if jobs == 0:
            jobs = (os.cpu_count() or 1) if len(todo) >= AUTO_JOBS_MIN_RUNS else 1
        jobs = max(1, min(jobs, len(todo)))
        specs = [found.runs[i] for i in todo]
        if scheduler is not None:
            from .dask_engine import analyze_on_cluster
            shifted = None if progress is None else (lambda d, _t, name: progress(len(hits) + d, total, name))
            for i, found_runs in zip(todo, analyze_on_cluster(specs, settings, scheduler, shifted, keep_points,
                                                              cache_dir=cache_dir), strict=True):
                by_index[i] = found_runs
            done = total
        elif jobs == 1:
            for i in todo:
                step(i)
                by_index[i] = _compacted(analyze_specs(found.runs[i], settings), keep_points)
        else:
            import multiprocessing

            from .workers import resilient_map

            context = multiprocessing.get_context(start_method) if start_method else None
            piece = pieced[0] if pieced is not None and render_in_workers else None
            tasks = [(found.runs[i], settings, cache_dir, keep_points, piece, memo is not None) for i in todo]
            for k, result in resilient_map(analyze_in_worker, tasks, jobs, WORKER_CHUNK, worker_init, context):
                i = todo[k]
                step(i)
                if isinstance(result, Rendered):
                    rendered[i] = result
                    if result.runs is not None:
                        by_index[i] = result.runs
                else:
                    by_index[i] = _from_worker(found.runs[i], result)
    if memo is not None:
        for i, (key, storable) in keys.items():
            small = i in by_index and all(_small(r) for r in by_index[i])
            if i not in hits:
                got: tuple[str, Pieces] | None = None
                if pieced is not None and small:
                    if i not in rendered:
                        rendered[i] = Rendered(facts_of(by_index[i]), tuple(pieced[1](r) for r in by_index[i]))
                    got = (pieced[0], rendered[i].pieces)
                memo.put(key, found.runs[i], by_index[i], storable, got)
            elif pieced is not None and hits[i].pieces is None and small:  # stored without this format's pieces
                made = tuple(pieced[1](r) for r in by_index[i])
                hits[i].pieces = made
                memo.add_pieces(key, pieced[0], made)
        memo.save()
    set_last_stats(None if memo is None else memo.stats)
    if progress is not None:
        progress(total, total, "")
    return found, by_index, hits, rendered


def analyze_spec(spec: RunSpec, settings: Settings) -> Run:
    """Read and analyse one discovered run (the joined run; see :func:`analyze_specs`)."""
    return analyze_specs(spec, settings)[0]


def analyze_in_worker(spec: RunSpec, settings: Settings, cache_dir: str | None, keep_points: bool = True,
                      piece: str | None = None, with_runs: bool = True) -> list[Run] | Rendered:
    """:func:`analyze_specs` in a worker process, reading through the cache in ``cache_dir`` (the
    parent's: a forked worker has it already, a spawned one starts without); without
    ``keep_points`` the runs come back compact (see :func:`warmcheck.dask_engine.compact`).

    With a ``piece`` format the worker renders the runs itself (:func:`warmcheck.reporters.pieces.renderer`)
    and sends back their facts and pieces (:class:`Rendered`; the compact runs too if ``with_runs``):
    the rendering is spread over the workers, and the parent unpickles text, not runs. A run too
    large to be rendered ahead (:func:`_small`) comes back as itself, as without ``piece``.
    """
    cache.ensure(cache_dir)
    runs = _compacted(analyze_specs(spec, settings), keep_points)
    if piece is None or not all(_small(r) for r in runs):
        return runs
    from .reporters import pieces

    render = pieces.renderer(piece)
    return Rendered(facts_of(runs), tuple(render(r) for r in runs), runs if with_runs else None)


def _compacted(runs: list[Run], keep_points: bool) -> list[Run]:
    if keep_points:
        return runs
    from .dask_engine import compact

    return [compact(r) for r in runs]


def analyze_specs(spec: RunSpec, settings: Settings) -> list[Run]:
    """Read and analyse one discovered run, plus any joined file its values split off as a run of its own.

    An unexpected exception becomes a WC021 finding, not a crash.
    """
    # The size limits of the text readers, in this process or a worker (spawned ones start with defaults).
    set_limits(Limits(settings.max_file_size, settings.max_decompressed_size))
    if settings.storage_options:
        storage.set_storage_options(settings.storage_options)
    try:
        runs = read_runs(spec, settings.for_run(spec.name).role_overrides())
    except storage.StorageError:
        raise  # object storage stopped answering: the whole invocation fails (exit 2), not this run
    except Exception as exc:  # noqa: BLE001 - the safety net that keeps one bad run from ending all
        return [Run(spec.name, spec.path, (), (), findings=(_internal(spec.name, "reading", exc),))]
    return [analyze_run(run, settings.for_run(run.name)) for run in runs]


def analyze_run(run: Run, settings: Settings, analyzers: Sequence[Analyzer] | None = None,
                schedules: tuple[Schedule, ...] | None = None) -> Run:
    """Infer the LR schedule, run ``analyzers`` (all by default) on ``run``; keep enabled findings, sorted.

    ``schedules``: use these instead of inferring them (a live run's window, placed in the schedule
    inferred from the whole run).
    """
    # Values near 1e308 are real inputs; the arithmetic on them may overflow to inf where a comparison
    # still decides right (and the fits scale them, see shapes.scaled): no RuntimeWarning noise on stderr.
    if analyzers is None:
        from .analyzers import ALL_ANALYZERS

        analyzers = ALL_ANALYZERS
    with np.errstate(over="ignore", invalid="ignore"):
        return _analyze_run(run, settings, analyzers, schedules)


def _analyze_run(run: Run, settings: Settings, analyzers: Sequence[Analyzer],
                 schedules: tuple[Schedule, ...] | None) -> Run:
    from .analyzers.spikes import detections
    from .schedule import infer_schedules

    findings = list(run.findings)
    try:
        run = replace(run, schedules=tuple(infer_schedules(run)) if schedules is None else schedules)
    except Exception as exc:  # noqa: BLE001
        findings.append(_internal(run.name, "inferring the schedule", exc))
    try:
        run = replace(run, detections=detections(run, settings))
    except Exception as exc:  # noqa: BLE001
        findings.append(_internal(run.name, "detecting spikes", exc))
    for analyzer in analyzers:
        if not any(settings.enabled(c) for c in analyzer.codes):
            continue
        try:
            findings.extend(analyzer.check(run, settings))
        except Exception as exc:  # noqa: BLE001
            findings.append(_internal(run.name, f"analysing ({type(analyzer).__name__})", exc))
    # Analyzer findings are about the run; for annotations (GitHub, JUnit) they point at its first file.
    default_source = run.sources[0].path if run.sources else None
    kept = sorted((f if f.source else replace(f, source=default_source) for f in findings
                   if settings.enabled(f.code)), key=Finding.sort_key)
    run = replace(run, findings=tuple(kept))
    try:
        from .sweep import profile

        return replace(run, profile=profile(run, settings))
    except Exception as exc:  # noqa: BLE001
        return replace(run, findings=(*run.findings, _internal(run.name, "summarising the run", exc)))


def _from_worker(spec: RunSpec, result: list[Run] | WorkerDeath | WorkerFailure) -> list[Run]:
    """A worker's runs, or the one finding that stands for a run no worker could return."""
    from .workers import WorkerDeath, WorkerFailure

    if isinstance(result, WorkerDeath):
        finding = make("WC024", f"the worker process analysing this run died twice ({result.describe()}), "
                       "the second time alone in a fresh process; the run was not analysed",
                       run=spec.name, source=spec.path,
                       details={"exitcode": result.exitcode, "signal": result.signal, "attempts": 2})
    elif isinstance(result, WorkerFailure):
        if result.error.startswith("StorageError: "):  # see analyze_specs
            raise storage.StorageError(result.error.removeprefix("StorageError: "))
        finding = make("WC021", f"internal error in the worker process: {result.error}", run=spec.name,
                       details={"exception": result.error.split(":", 1)[0]})
    else:
        return result
    return [Run(spec.name, spec.path, (), (), findings=(finding,))]


def _internal(run: str, stage: str, exc: BaseException) -> Finding:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return make("WC021", f"internal error while {stage}: {type(exc).__name__}: {exc}", run=run,
                details={"exception": type(exc).__name__, "traceback": "".join(tb)})
