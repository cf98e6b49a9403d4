"""A per-file cache of what a reader returned, so that a re-run reads only the files that changed.

One entry per log file: an uncompressed ``.npz`` (numpy, no pickle) holding the points of every
fragment (steps, values and wall times, concatenated) and a JSON header (the key, the metadata,
findings, record counts). The entry's *name* is a hash of the file's identity (the path as given,
its absolute path, its format), so a file that changes overwrites its own entry instead of leaving
an orphan; the entry's *key*, checked on every load, is what must match for it to be used: size,
``mtime_ns``, ``ctime_ns``, inode and device (the place where an object store's ETag would go), the
cache format, a fingerprint of warmcheck's source code and the reader size limits.

Rules that keep the cache from ever changing a report:

* An entry is trusted only if it loads completely and its key matches; anything else (a truncated
  or corrupt file, a bad CRC, another version's entry, unexpected fields) is a miss: the file is
  read again and the entry rewritten.
* Entries are written to a temporary file in the same directory and renamed over the old entry
  (``os.replace``), so two processes sharing a directory only ever see whole entries.
* A file modified less than :data:`RACY_NS` before its read began is read but not cached (git's
  "racily clean" problem: a same-size rewrite within the filesystem's timestamp granularity would
  keep the old mtime), nor is a file that changed while it was read.
* A read whose metadata or findings do not survive a JSON round trip unchanged is not cached.
* Problems of the cache itself (a read-only directory, a full disk) never fail the analysis.

Only files are cached (TensorBoard, CSV, JSONL, trainer_state.json, W&B); MLflow stores and servers
are directories, databases or URLs and are always read. A changed file is read again whole: appended
files are not resumed from the cached offset.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .findings import Finding, Severity
from .model import Format, Fragment, SourceInfo, SourceRead, no_wall_times

CACHE_FORMAT = 1
RACY_NS = 2_000_000_000  # files younger than this (at the start of their read) are not cached
CACHED_FORMATS = frozenset({Format.TFEVENTS, Format.CSV, Format.HF_TRAINER_STATE, Format.JSONL, Format.WANDB})

Reader = Callable[[str], SourceRead]


def default_cache_dir() -> str:
    """The user cache directory (``platformdirs`` if installed, else ``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "warmcheck")
    return str(platformdirs.user_cache_dir("warmcheck", appauthor=False))


_FINGERPRINT: list[str] = []


def code_fingerprint() -> str:
    """A hash of warmcheck's own source files: an entry made by other code (another version, an edited
    checkout) never matches. Computed once per process."""
    if not _FINGERPRINT:
        from . import __version__

        digest = hashlib.sha256(__version__.encode())
        root = Path(__file__).resolve().parent
        try:
            for p in sorted(root.rglob("*.py")):
                digest.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
        except OSError:  # pragma: no cover - an unreadable install: the version alone
            pass
        _FINGERPRINT.append(digest.hexdigest()[:32])
    return _FINGERPRINT[0]


@dataclass
class CacheStats:
    """What the cache did in this process (tests and benches read it)."""

    hits: int = 0
    read: int = 0  # files the reader really read (every call that was not a hit)
    misses: int = 0  # no entry, or an entry for another state of the file
    rejected: int = 0  # an entry that was corrupt, truncated or from another version: ignored, rewritten
    stored: int = 0
    uncached: int = 0  # read but not stored: too recent, changed while read, not JSON-exact, not a file
    errors: int = 0  # the cache directory could not be written


@dataclass
class ReadCache:
    """A cache directory; :meth:`read` reads a file through it."""

    directory: str
    stats: CacheStats = field(default_factory=CacheStats)

    def read(self, path: str, fmt: Format, reader: Reader) -> SourceRead:
        """``reader(path)``, from the cache when the file has not changed since it was cached."""
        st = _stat(path) if fmt in CACHED_FORMATS else None
        if st is None:
            self.stats.uncached += 1
            self.stats.read += 1
            return reader(path)
        entry = self.entry_path(path, fmt)
        key = file_key(path, fmt, st)
        found = _load(entry, key)
        if isinstance(found, SourceRead):
            self.stats.hits += 1
            return found
        if found == "rejected":
            self.stats.rejected += 1
        else:
            self.stats.misses += 1
        started = time.time_ns()
        self.stats.read += 1
        read = reader(path)
        after = _stat(path)
        if st.st_mtime_ns > started - RACY_NS or after is None or _stamp(after) != _stamp(st):
            self.stats.uncached += 1
            return read
        payload = _encode(read, key)
        if payload is None:
            self.stats.uncached += 1
        elif _write(entry, payload):
            self.stats.stored += 1
        else:
            self.stats.errors += 1
        return read

    def entry_path(self, path: str, fmt: Format) -> str:
        """Where the entry of ``path`` lives: a hash of its identity, never the path itself."""
        ident = json.dumps([path, os.path.abspath(path), fmt.value], ensure_ascii=True)
        name = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return os.path.join(self.directory, name[:2], name + ".npz")


def file_key(path: str, fmt: Format, st: os.stat_result) -> dict[str, Any]:
    """What must be equal for an entry to stand for the file (``stamp``: where an ETag would go)."""
    from .readers._textstream import current_limits

    limits = current_limits()
    return {"cache_format": CACHE_FORMAT, "code": code_fingerprint(), "path": path,
            "abspath": os.path.abspath(path), "format": fmt.value, "size": st.st_size, "stamp": _stamp(st),
            "limits": [limits.max_file_size, limits.max_decompressed_size]}


def _stamp(st: os.stat_result) -> dict[str, int]:
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino,
            "dev": st.st_dev}


def _stat(path: str) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


_active: list[ReadCache | None] = [None]


def activate(directory: str | None) -> ReadCache | None:
    """Read every file through a cache in ``directory`` from now on in this process (None: no cache).

    Worker processes forked afterwards inherit it.
    """
    _active[0] = ReadCache(os.path.abspath(os.path.expanduser(directory))) if directory else None
    return _active[0]


def ensure(directory: str | None) -> None:
    """Use the cache in ``directory`` (None: none) in this process, keeping the one active if it is the
    same: what a worker process (spawned, or a dask worker) calls before its first read."""
    current = _active[0]
    if directory is None:
        _active[0] = None
    elif current is None or current.directory != os.path.abspath(os.path.expanduser(directory)):
        activate(directory)


def set_active(cache: ReadCache | None) -> None:
    """Make ``cache`` (or none) the one in use, as :func:`active` returned it earlier."""
    _active[0] = cache


def active() -> ReadCache | None:
    """The cache in use in this process, if any (see :func:`activate`)."""
    return _active[0]


# ---- the entry format ------------------------------------------------------------------------------

def _finding_dict(f: Finding) -> dict[str, Any]:
    return {"code": f.code, "severity": f.severity.value, "message": f.message, "run": f.run, "tag": f.tag,
            "step": f.step, "step_end": f.step_end, "source": f.source, "line": f.line, "details": dict(f.details)}


def _finding(d: Mapping[str, Any]) -> Finding:
    return Finding(code=d["code"], severity=Severity(d["severity"]), message=d["message"], run=d["run"],
                   tag=d["tag"], step=d["step"], step_end=d["step_end"], source=d["source"], line=d["line"],
                   details=d["details"])


def _encode(read: SourceRead, key: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays of an entry, or None when the read would not come back exactly as it is."""
    frags = list(read.fragments)
    walls = [f.wall_times for f in frags if not _no_walls(f)]
    header = {"key": key,
              "info": [read.info.path, read.info.records, read.info.skipped],
              "fragments": [[f.tag, len(f), _no_walls(f)] for f in frags],
              "metadata": dict(read.metadata),
              "findings": [_finding_dict(f) for f in read.findings],
              "restart_steps": [list(read.restart_steps), isinstance(read.restart_steps, tuple)],
              "sort_key": list(read.sort_key)}
    try:
        text = json.dumps(header, ensure_ascii=True, allow_nan=False)
        back = json.loads(text)
        exact = (back["metadata"] == dict(read.metadata) and isinstance(read.info.path, str)
                 and [_finding(d) for d in back["findings"]] == list(read.findings)
                 and back["restart_steps"][0] == list(read.restart_steps)
                 and tuple(back["sort_key"]) == tuple(read.sort_key)
                 and all(f.steps.dtype == np.int64 and f.values.dtype == np.float64
                         and f.wall_times.dtype == np.float64 for f in frags))
    except (TypeError, ValueError, KeyError):
        return None
    if not exact:
        return None
    return {"header": np.frombuffer(text.encode("ascii"), dtype=np.uint8),
            "steps": _concat([f.steps for f in frags], np.int64),
            "values": _concat([f.values for f in frags], np.float64),
            "walls": _concat(walls, np.float64)}


def _no_walls(f: Fragment) -> bool:
    """Whether the wall times are the memory-free all-NaN view readers use for logs without a clock."""
    w = f.wall_times
    return w.ndim == 1 and w.shape[0] > 0 and w.strides == (0,) and bool(np.isnan(w[0]))


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _write(entry: str, arrays: dict[str, np.ndarray]) -> bool:
    """Write atomically: a temporary file beside the entry, then ``os.replace``."""
    tmp = None
    try:
        os.makedirs(os.path.dirname(entry), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=os.path.dirname(entry))
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, entry)
        return True
    except (OSError, ValueError):
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def _load(entry: str, key: dict[str, Any]) -> SourceRead | str:
    """The read stored in ``entry`` if it is whole and its key is ``key``; else ``"missing"``,
    ``"stale"`` (another state of the file) or ``"rejected"`` (unreadable, or from another version)."""
    try:
        with np.load(entry, allow_pickle=False) as npz:
            header = json.loads(npz["header"].tobytes().decode("ascii"))
            if not isinstance(header, dict) or not isinstance(header.get("key"), dict):
                return "rejected"
            stored = header["key"]
            if stored.get("cache_format") != CACHE_FORMAT or stored.get("code") != key["code"]:
                return "rejected"
            if stored != key:
                return "stale"
            steps, values, walls = npz["steps"], npz["values"], npz["walls"]
            return _decode(header, key, steps, values, walls)
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile,
            UnicodeDecodeError, AttributeError):
        return "rejected"


def _decode(header: dict[str, Any], key: dict[str, Any], steps: np.ndarray, values: np.ndarray,
            walls: np.ndarray) -> SourceRead | str:
    if steps.dtype != np.int64 or values.dtype != np.float64 or walls.dtype != np.float64:
        return "rejected"
    specs = header["fragments"]
    total = sum(int(n) for _, n, _ in specs)
    with_walls = sum(int(n) for _, n, none in specs if not none)
    if steps.shape != (total,) or values.shape != (total,) or walls.shape != (with_walls,):
        return "rejected"
    fragments = []
    at = wat = 0
    for tag, n, none in specs:
        if not isinstance(tag, str) or not isinstance(n, int) or n < 0:
            return "rejected"
        if none:
            w = no_wall_times(n)
        else:
            w, wat = walls[wat:wat + n], wat + n
        fragments.append(Fragment(tag, steps[at:at + n], values[at:at + n], w))
        at += n
    where, records, skipped = header["info"]
    restarts, as_tuple = header["restart_steps"]
    sort_time, sort_name = header["sort_key"]
    return SourceRead(info=SourceInfo(str(where), Format(key["format"]), int(records), int(skipped)),
                      fragments=fragments, metadata=header["metadata"],
                      findings=[_finding(d) for d in header["findings"]],
                      restart_steps=tuple(restarts) if as_tuple else list(restarts),
                      sort_key=(float(sort_time), str(sort_name)))
