"""``analyze --scheduler tcp://HOST:PORT``: the per-run analysis as tasks on an existing dask.distributed cluster.

The client discovers the runs (it needs the list to report them in order) and sends each task a
few :class:`~warmcheck.readers.discovery.RunSpec` (file paths, made absolute: a worker's working
directory is not the client's), the :class:`~warmcheck.config.Settings` and, for runs on object
storage, what the client's listing says about the runs' directories (:class:`Listing`: the objects'
sizes and ETags, so a worker makes one GET per object, as the client would, instead of a HEAD per
object and a request per config-file name); the worker reads the files itself, analyses them with
:func:`warmcheck.pipeline.analyze_specs` and returns compact runs: every series reduced to the
numbers reporters print (:class:`SeriesSummary`: points, first and last step, non-finite count), so
a run of ten million points comes back as a few hundred bytes. With ``keep_points`` (``--plot-dir``,
which draws the points) the runs come back whole.

Faults: dask itself reschedules the tasks of a worker that died (``distributed.scheduler.allowed-failures``
times). A chunk that still fails with ``KilledWorker`` is split and each of its runs submitted alone;
a run whose task still dies is run once more at the end, alone on the
cluster; if its worker dies again it becomes a WC024 finding, the others are reported. A task that
raises (a worker without warmcheck, a result that cannot be serialised) becomes WC021 for its runs,
except a :class:`~warmcheck.storage.StorageError` (object storage stopped answering the worker): that
ends the sweep with exit 2, as it does locally.
An unreachable scheduler, a cluster without workers, or a scheduler lost mid-sweep is a
:class:`~warmcheck.errors.WarmcheckError` (exit 2). dask is an extra (``warmcheck[dask]``), imported here only.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import storage
from .config import Settings
from .errors import WarmcheckError
from .findings import make
from .model import Run, Series
from .readers.discovery import RunSpec
from .storage import FileStat, StorageError

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler, and for it to have at least one worker
MAX_CHUNK = 32  # runs per task at most: fewer tasks for the scheduler, small retries when a worker dies
MAX_LISTED = 256  # listing entries sent for one run directory at most (a run at the top of a large prefix: none)


class SchedulerError(WarmcheckError):
    """The dask scheduler cannot be reached, has no workers, or was lost during the sweep."""


@dataclass(frozen=True, slots=True)
class SeriesSummary(Series):
    """A series without its points: ``steps`` holds only the first and last step (or nothing),
    ``values`` and ``wall_times`` are empty; ``points`` and ``nonfinite`` are the counts of the
    series the worker read. Every reporter reads only these."""

    count: int = 0
    nonfinite_count: int = 0

    @property
    def points(self) -> int:
        """Distinct steps of the series the worker read."""
        return self.count

    @property
    def nonfinite(self) -> int:
        """NaN or +/-Inf values of the series the worker read."""
        return self.nonfinite_count


def summarize_series(s: Series) -> SeriesSummary:
    """``s`` without its points (see :class:`SeriesSummary`)."""
    ends = s.steps[[0, -1]] if s.points else s.steps[:0]
    empty = np.empty(0, np.float64)
    return SeriesSummary(s.tag, np.array(ends, np.int64), empty, empty, s.role, s.superseded,
                         count=s.points, nonfinite_count=s.nonfinite)


def compact(run: Run) -> Run:
    """``run`` with every series summarised: what every reporter needs, not the points."""
    return replace(run, series=tuple(summarize_series(s) for s in run.series))


@dataclass(frozen=True, slots=True)
class Listing:
    """What the client's listing of a URL prefix says about the run directories of one task: every
    object under each directory in ``prefixes`` (``entries``: URL, stat, the listing's details such as
    the ETag), so that a worker opens the objects without a HEAD and finds the config files beside a run
    (:mod:`warmcheck.readers.runconfig_files`) without asking for each name."""

    prefixes: tuple[str, ...] = ()
    entries: tuple[tuple[str, FileStat, dict[str, Any] | None], ...] = ()


class _ListingIndex:
    """The client's listings (:func:`warmcheck.storage.find`), sorted once, to cut a :class:`Listing` per task."""

    def __init__(self) -> None:
        with storage._lock:
            self.known = dict(storage._known)
            self.details = dict(storage._details)
            self.listed = tuple(storage._listed)
        self.keys = sorted(self.known)

    def for_specs(self, specs: Sequence[RunSpec]) -> Listing | None:
        if not self.listed:
            return None
        prefixes: list[str] = []
        entries: list[tuple[str, FileStat, dict[str, Any] | None]] = []
        for d in sorted({storage.dirname(p) for s in specs for p, _, _ in _all_files(s) if storage.is_url(p)}):
            prefix = d.rstrip("/") + "/"
            if not any(prefix.startswith(p) for p in self.listed):
                continue  # not listed whole by the client: the worker asks, as the client would
            start = bisect.bisect_left(self.keys, prefix)
            end = start
            while end < len(self.keys) and end - start <= MAX_LISTED and self.keys[end].startswith(prefix):
                end += 1
            if end - start > MAX_LISTED:
                continue
            prefixes.append(prefix)
            entries.extend((k, self.known[k], self.details.get(k)) for k in self.keys[start:end])
        return Listing(tuple(prefixes), tuple(entries)) if prefixes else None


def _all_files(spec: RunSpec) -> list[Any]:
    return list(spec.files) + [f for m in spec.members for f in m.files]


def _install(listing: Listing | None) -> Callable[[], None]:
    """Make ``listing`` known to :mod:`warmcheck.storage` in this process; the function that removes
    what it added (entries and prefixes that were not there before: a worker keeps no stale listing
    between tasks, and a client running tasks in its own process keeps its own)."""
    if listing is None:
        return lambda: None
    with storage._lock:
        added = [url for url, _, _ in listing.entries if url not in storage._known]
        prefixes = [p for p in listing.prefixes if p not in storage._listed]
        for url, st, details in listing.entries:
            if url in added:
                storage._known[url] = st
                if details is not None:
                    storage._details[url] = dict(details)
        storage._listed.update(prefixes)

    def remove() -> None:
        with storage._lock:
            storage._listed.difference_update(prefixes)
            for url in added:
                storage._known.pop(url, None)
                storage._details.pop(url, None)

    return remove


def analyze_chunk(specs: Sequence[RunSpec], settings: Settings, keep_points: bool,
                  cache_dir: str | None = None, listing: Listing | None = None) -> list[list[Run]]:
    """The task run on a worker: read and analyse each spec (see :func:`warmcheck.pipeline.analyze_specs`),
    through the client's cache directory of reads (``cache_dir``, None: no cache; a directory the
    worker cannot write costs nothing but the cache, see :mod:`warmcheck.cache`), knowing what the
    client's listing says about the runs' directories (``listing``: no HEAD or LIST per object)."""
    from .cache import ensure
    from .pipeline import analyze_specs

    ensure(cache_dir)
    remove = _install(listing)
    try:
        out = []
        for spec in specs:
            runs = analyze_specs(spec, settings)
            out.append(runs if keep_points else [compact(r) for r in runs])
        return out
    finally:
        remove()


def absolute(spec: RunSpec) -> RunSpec:
    """``spec`` with each local file path made absolute (the shown paths, which reports use, unchanged)."""
    def files(entries: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple((_abs(path), shown, fmt) for path, shown, fmt in entries)

    members = tuple(replace(m, files=files(m.files)) for m in spec.members)
    return replace(spec, files=files(spec.files), members=members)


def _abs(path: str) -> str:
    # URLs (an MLflow tracking server) and paths the client cannot see are sent as they are.
    return os.path.abspath(path) if not os.path.isabs(path) and os.path.lexists(path) else path


def connect(address: str, timeout: float | None = None) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` with at least one worker, or a SchedulerError."""
    try:
        from distributed import Client
    except ImportError:
        raise SchedulerError("--scheduler needs dask.distributed: pip install 'warmcheck[dask]'") from None
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, ValueError, TypeError) as exc:  # TimeoutError is an OSError
        raise SchedulerError(f"cannot reach the dask scheduler at {address}: {type(exc).__name__}: {exc}") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:  # noqa: BLE001 - dask's TimeoutError, or the scheduler going away
        client.close()
        raise SchedulerError(f"the dask scheduler at {address} has no workers (waited {timeout:g} s)") from None
    return client


def analyze_on_cluster(specs: Sequence[RunSpec], settings: Settings, address: str,
                       progress: Callable[[int, int, str], None] | None = None,
                       keep_points: bool = False, cache_dir: str | None = None) -> list[list[Run]]:
    """The runs of each spec, in the order of ``specs``, analysed on the cluster at ``address``
    (the workers read through the cache in ``cache_dir``)."""
    client = connect(address)
    try:
        return list(_sweep(client, [absolute(s) for s in specs], settings, progress, keep_points, cache_dir))
    finally:
        client.close()


def _sweep(client: Any, specs: list[RunSpec], settings: Settings,
           progress: Callable[[int, int, str], None] | None, keep_points: bool,
           cache_dir: str | None = None) -> Iterator[list[Run]]:
    from distributed import as_completed

    index = _ListingIndex()

    def submit(indices: list[int]) -> Any:
        chunk = [specs[i] for i in indices]
        return client.submit(analyze_chunk, chunk, settings, keep_points, cache_dir, index.for_specs(chunk),
                             pure=False)

    total = len(specs)
    threads = max(1, sum(client.nthreads().values()))
    size = max(1, min(MAX_CHUNK, total // (threads * 8)))
    results: dict[int, list[Run]] = {}
    chunks: dict[Any, list[int]] = {}
    for start in range(0, total, size):
        indices = list(range(start, min(start + size, total)))
        chunks[submit(indices)] = indices
    pending = as_completed(list(chunks), loop=client.loop)
    suspects: list[int] = []
    for future in pending:
        indices = chunks.pop(future)
        outcome = _result(future)
        future.release()
        if isinstance(outcome, _Killed):  # which run killed it is unknown, and tasks beside it die too
            if len(indices) > 1:
                for i in indices:
                    single = submit([i])
                    chunks[single] = [i]
                    pending.add(single)
            else:
                suspects.append(indices[0])
            continue
        _keep(results, indices, outcome, specs, progress, total)
    for i in sorted(suspects):  # last, one at a time: nothing else runs beside a run that kills workers
        future = submit([i])
        outcome = _result(future)
        future.release()
        _keep(results, [i], outcome, specs, progress, total)
    for i in range(total):
        yield results.pop(i)


def _keep(results: dict[int, list[Run]], indices: list[int], outcome: list[list[Run]] | _Killed | _Failed,
          specs: list[RunSpec], progress: Callable[[int, int, str], None] | None, total: int) -> None:
    for k, i in enumerate(indices):
        results[i] = _runs(specs[i], outcome, k)
        if progress is not None:
            progress(len(results), total, specs[i].name)


@dataclass(frozen=True, slots=True)
class _Killed:
    attempts: int
    worker: str


@dataclass(frozen=True, slots=True)
class _Failed:
    error: str


def _result(future: Any) -> list[list[Run]] | _Killed | _Failed:
    from distributed import KilledWorker

    try:
        return future.result()
    except StorageError:
        raise  # object storage stopped answering a worker: the whole invocation fails (exit 2), as locally
    except KilledWorker as exc:
        return _Killed(exc.allowed_failures + 1, str(getattr(exc.last_worker, "address", exc.last_worker)))
    except (OSError, RuntimeError) as exc:  # the connection to the scheduler is gone
        if getattr(future.client, "status", "running") != "running":
            raise SchedulerError(f"lost the dask scheduler during the sweep: {type(exc).__name__}: {exc}") from None
        return _Failed(f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a task that raised on its worker
        return _Failed(f"{type(exc).__name__}: {exc}")


def _runs(spec: RunSpec, outcome: list[list[Run]] | _Killed | _Failed, k: int) -> list[Run]:
    if isinstance(outcome, _Killed):
        finding = make("WC024", f"the dask worker analysing this run died {outcome.attempts} times (each time "
                       f"the scheduler moved the task to another worker; the last was {outcome.worker}); "
                       "the run was not analysed", run=spec.name, source=spec.path,
                       details={"exitcode": None, "signal": None, "attempts": outcome.attempts,
                                "worker": outcome.worker})
    elif isinstance(outcome, _Failed):
        finding = make("WC021", f"internal error on the dask worker: {outcome.error}", run=spec.name,
                       details={"exception": outcome.error.split(":", 1)[0]})
    else:
        return outcome[k]
    return [Run(spec.name, spec.path, (), (), findings=(finding,))]


__all__ = ["CONNECT_TIMEOUT", "Listing", "SchedulerError", "SeriesSummary", "analyze_chunk", "analyze_on_cluster",
           "compact", "connect"]
