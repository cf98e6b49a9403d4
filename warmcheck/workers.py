"""Worker processes for ``analyze -j N`` that survive a worker being killed.

A worker can die without an exception: the kernel's out-of-memory killer, ``kill -9``, a crash in
a C extension. ``ProcessPoolExecutor`` then fails every pending task with ``BrokenProcessPool``,
and which task killed it is unknown. :func:`resilient_map` keeps every result that came back, runs
the rest of the queue in a new pool, and retries each task that was in flight when the pool broke
once more, alone in a fresh process: a task that kills that process too is reported as a
:class:`WorkerDeath` (with the signal or exit status) instead of its result; the innocent tasks that
were in flight beside it are analysed on their retry.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_connections
from typing import Any

__all__ = ["WorkerDeath", "WorkerFailure", "resilient_map"]


@dataclass(frozen=True, slots=True)
class WorkerDeath:
    """A task whose worker process died twice: in the pool, and again alone in a fresh process."""

    exitcode: int | None  # of the fresh process: negative = killed by that signal (multiprocessing's convention)

    @property
    def signal(self) -> int | None:
        """The signal number that killed the process, or None if it exited."""
        return -self.exitcode if self.exitcode is not None and self.exitcode < 0 else None

    def describe(self) -> str:
        """``killed by signal 9 (SIGKILL)``, ``exit code 3``, or ``cause unknown``."""
        sig = self.signal
        if sig is not None:
            try:
                return f"killed by signal {sig} ({signal.Signals(sig).name})"
            except ValueError:
                return f"killed by signal {sig}"
        return "cause unknown" if self.exitcode is None else f"exit code {self.exitcode}"


@dataclass(frozen=True, slots=True)
class WorkerFailure:
    """A task whose result could not come back from its worker (an exception outside the task's own
    safety net, or a result that cannot be pickled)."""

    error: str


Outcome = Any  # a task's result, a WorkerDeath or a WorkerFailure


def _call_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
    out: list[Any] = []
    for args in chunk:
        try:
            out.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - SystemExit from a library must not end the chunk
            out.append(WorkerFailure(f"{type(exc).__name__}: {exc}"))
    return out


def resilient_map(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], jobs: int, chunksize: int = 1,
                  initializer: Callable[[], None] | None = None,
                  context: multiprocessing.context.BaseContext | None = None) -> Iterator[tuple[int, Outcome]]:
    """``fn(*args[i])`` in ``jobs`` worker processes; yields ``(i, result)`` as results arrive.

    Every index is yielded exactly once: with ``fn``'s result, a :class:`WorkerFailure`, or a
    :class:`WorkerDeath` when the task killed its worker twice. ``initializer`` runs first in every
    worker (``fn`` and it must be picklable by reference under the spawn start method).
    Tasks go to the workers in chunks of at most ``chunksize`` (see :func:`guided_chunks`).
    """
    chunks = deque(guided_chunks(len(args), jobs, chunksize))
    lost: list[int] = []
    pool: ProcessPoolExecutor | None = None
    outstanding: dict[Future[list[Any]], list[int]] = {}
    try:
        while chunks or outstanding:
            if pool is None:
                pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=initializer)
            broken = False
            while chunks and len(outstanding) < jobs + 1 and not broken:
                chunk = chunks[0]
                try:
                    outstanding[pool.submit(_call_chunk, fn, [args[i] for i in chunk])] = chunk
                    chunks.popleft()
                except BrokenProcessPool:
                    broken = True
            if not broken:
                done, _ = wait(outstanding, return_when=FIRST_COMPLETED)
                for future in done:
                    results, chunk = _collect(future, outstanding.pop(future))
                    yield from results
                    lost.extend(chunk)
                    broken = broken or bool(chunk)
            if broken:  # the pool is unusable: keep what finished, retry what was in it
                for future, chunk in outstanding.items():
                    results, chunk = _collect(future, chunk)
                    yield from results
                    lost.extend(chunk)
                outstanding.clear()
                pool.shutdown(wait=True)
                pool = None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    yield from _retry_alone(fn, args, sorted(lost), jobs, initializer, context)


def guided_chunks(n: int, jobs: int, chunksize: int) -> list[list[int]]:
    """``range(n)`` in consecutive chunks of at most ``chunksize`` that shrink towards the end (each a
    quarter of the remaining tasks' share per worker, OpenMP's guided schedule): one call per chunk
    saves the per-task round trips, and the workers still finish together, the last chunks being one
    task each, not one worker's full chunk while the others wait."""
    out: list[list[int]] = []
    at = 0
    while at < n:
        size = max(1, min(chunksize, -(-(n - at) // (4 * max(jobs, 1)))))
        out.append(list(range(at, min(at + size, n))))
        at += size
    return out


def _collect(future: Future[list[Any]], chunk: list[int]) -> tuple[list[tuple[int, Outcome]], list[int]]:
    """The results of a finished chunk, or the chunk's indices to retry if its worker died."""
    try:
        values = future.result()
    except BrokenProcessPool:
        return [], chunk
    except BaseException as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
        failure = WorkerFailure(f"{type(exc).__name__}: {exc}")
        return [(i, failure) for i in chunk], []
    return list(zip(chunk, values, strict=True)), []


def _alone(conn: Connection, initializer: Callable[[], None] | None, fn: Callable[..., Any],
           args: tuple[Any, ...]) -> None:
    if initializer is not None:
        initializer()
    try:
        result: tuple[bool, Any] = (True, fn(*args))
    except BaseException as exc:  # noqa: BLE001
        result = (False, f"{type(exc).__name__}: {exc}")
    try:
        conn.send(result)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result
        conn.send((False, f"{type(exc).__name__}: {exc}"))
    conn.close()


def _retry_alone(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], lost: list[int], jobs: int,
                 initializer: Callable[[], None] | None,
                 context: multiprocessing.context.BaseContext | None) -> Iterator[tuple[int, Outcome]]:
    """Each lost task once more, each in a process of its own (``jobs`` at a time)."""
    ctx = context or multiprocessing.get_context()
    queue = deque(lost)
    running: dict[Connection, tuple[int, multiprocessing.process.BaseProcess]] = {}
    try:
        while queue or running:
            while queue and len(running) < jobs:
                i = queue.popleft()
                receiver, sender = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_alone, args=(sender, initializer, fn, args[i]), daemon=True)  # type: ignore[attr-defined]
                proc.start()
                sender.close()
                running[receiver] = (i, proc)
            for conn in wait_connections(list(running)):
                assert isinstance(conn, Connection)
                i, proc = running.pop(conn)
                try:
                    ok, value = conn.recv()
                except (EOFError, OSError):  # it died before sending its result
                    ok, value = None, None
                conn.close()
                proc.join()
                if ok is None:
                    yield i, WorkerDeath(proc.exitcode)
                else:
                    yield i, value if ok else WorkerFailure(str(value))
    finally:
        for conn, (_, proc) in running.items():
            proc.kill()
            proc.join()
            conn.close()
