"""An MLflow run followed live (``warmcheck watch``): the points logged since the last poll.

MLflow stores have no byte offset to resume from (a file-store run is a directory of metric files, a
database or a server answers queries), so each poll that sees a change reads the run whole with
:func:`~warmcheck.readers.mlflow.read_mlflow` and hands out only the points after those returned so
far, when each metric's points begin with them (a digest of their steps and values, as for
``trainer_state.json``). Otherwise the run was rewritten (points deleted, a metric logged again from
the start): a new :attr:`generation`, everything returned, and the caller replaces what it had.

What counts as a change: for a file-store run, the size and modification time of its metric, param
and tag files; for a database, those of the file (and of its ``-wal`` journal); on a server, the run's
latest value, step and timestamp of each metric and its status (one ``runs/get`` request; the history
is read only when they changed). A line being written in a file-store metric is not a
point yet (the whole-run reader leaves it out); "no data yet" (WC002) and that line (WC003) are never
reported while following: the final ``analyze`` of the run reports them if they remain.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..findings import Finding
from ..model import Format, Fragment, SourceInfo, SourceRead
from ._follow import FileIdentity, points_digest
from ._mlflowrest import MlflowServerError, call, is_server_url, parse_url

_NOT_LIVE = frozenset({"WC002", "WC003"})


class MlflowTailer:
    """One MLflow run followed live (the :class:`~warmcheck.readers.tailing.Tailer` protocol)."""

    def __init__(self, path: str, display: str = "") -> None:
        self.path, self.display = path, display or path
        self.identity = FileIdentity(path)  # never located: an MLflow run is not one file to rotate
        self.generation = 0
        self._signature: object = None
        self._returned: dict[str, tuple[int, bytes]] = {}  # tag -> (points returned, their digest)
        self._reported: set[tuple[object, ...]] = set()
        self._seen_metadata = False  # the run's params were handed out (they feed the warmup audit)

    def poll(self) -> SourceRead | None:
        """The points logged since the last poll; ``None`` if the run did not change."""
        signature = self._change_signature()
        if signature is not None and signature == self._signature:
            return None
        self._signature = signature
        from .mlflow import read_mlflow

        whole = read_mlflow(self.path)
        fragments = self._new_points(whole.fragments)
        findings = [f for f in whole.findings if f.code not in _NOT_LIVE and self._first_time(f)]
        if not any(len(f) for f in fragments) and not findings and self._seen_metadata:
            return SourceRead(SourceInfo(self.display, Format.MLFLOW))
        self._seen_metadata = True
        return SourceRead(SourceInfo(self.display, Format.MLFLOW, sum(len(f) for f in fragments)),
                          fragments=fragments, metadata=whole.metadata, findings=findings)

    def pending_bytes(self) -> int:
        """Nothing is held back: a line being written is simply not read yet."""
        return 0

    def incomplete_tail(self) -> Finding | None:
        """Never: see :meth:`pending_bytes`."""
        return None

    def _new_points(self, frags: Sequence[Fragment]) -> list[Fragment]:
        out: list[Fragment] = []
        rewritten = False
        for f in frags:
            count, digest = self._returned.get(f.tag, (0, b""))
            if len(f) < count or (count and points_digest(f.steps[:count], f.values[:count]) != digest):
                rewritten = True
                break
        if rewritten:
            self.generation += 1
            self._returned.clear()
            self._reported.clear()
        for f in frags:
            count = self._returned.get(f.tag, (0, b""))[0]
            self._returned[f.tag] = (len(f), points_digest(f.steps, f.values))
            if len(f) > count:
                out.append(Fragment(f.tag, f.steps[count:], f.values[count:], f.wall_times[count:]))
        return out

    def _first_time(self, f: Finding) -> bool:
        key = (f.code, f.tag, f.step, f.line, *sorted(f.details))
        if key in self._reported:
            return False
        self._reported.add(key)
        return True

    def _change_signature(self) -> object:
        """What changes when the run is written to (``None``: unknown, read the run)."""
        if is_server_url(self.path):
            return _server_signature(self.path)
        if os.path.isdir(self.path):
            stamps = []
            for top in ("metrics", "params", "tags"):
                for directory, dirs, files in os.walk(os.path.join(self.path, top)):
                    dirs.sort()
                    for name in files:
                        try:
                            st = os.stat(os.path.join(directory, name))
                        except OSError:
                            continue
                        stamps.append((directory, name, st.st_size, st.st_mtime_ns))
            try:
                st = os.stat(os.path.join(self.path, "meta.yaml"))
                stamps.append(("", "meta.yaml", st.st_size, st.st_mtime_ns))
            except OSError:
                pass
            return tuple(sorted(stamps))
        db = os.path.dirname(self.path)
        out: list[tuple[int, int, int] | None] = []
        for name in (db, db + "-wal"):
            try:
                st = os.stat(name)
            except OSError:
                out.append(None)
                continue
            out.append((st.st_size, st.st_mtime_ns, st.st_ino))
        return tuple(out)


def _server_signature(path: str) -> object:
    """The run's status and each metric's latest (step, timestamp, value) on the server; ``None`` if the
    server cannot say (the read that follows reports why)."""
    head, _, run_id = path.rstrip("/").rpartition("/")
    try:
        run = call(parse_url(head).base, "runs/get", {"run_id": run_id})["run"]
        latest = sorted((str(m["key"]), str(m.get("step")), str(m.get("timestamp")), str(m.get("value")))
                        for m in run.get("data", {}).get("metrics", ()))
        return str(run["info"].get("status")), str(run["info"].get("end_time")), tuple(latest)
    except (MlflowServerError, KeyError, TypeError, AttributeError):
        return None


__all__ = ["MlflowTailer"]
