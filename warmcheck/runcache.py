"""A cache of analysed runs, so that a re-run over a large tree analyses only the runs that changed.

``warmcheck analyze TREE`` (without ``--plot-dir``) keeps, beside the per-file cache of reads
(:mod:`warmcheck.cache`), ONE manifest file per invocation key: a hash of the paths as given (and
their absolute paths), the :class:`~warmcheck.config.Settings` (thresholds, overrides, the
``[tool.warmcheck]`` settings and where they came from) and the code fingerprint. The manifest maps
each run's key to the run as every reporter needs it: the analysed :class:`~warmcheck.model.Run`
with its series summarised (:func:`warmcheck.dask_engine.compact`: no points). A warm run lists the
tree, stats each run's files, loads this one file and analyses only the runs whose key is not in it.

Beside each run the manifest keeps what the report needs of it without the run itself: its
*facts* (findings per severity and whether it held data: the exit code, the closing line, the
counts in the JSON and markdown reports) and its *pieces*, the text each output format gives of it
(:mod:`warmcheck.reporters.pieces`; text, text with colour, json, github, markdown: one set per
format the tree was reported in). A warm run reported in a format whose pieces are stored joins them
(:func:`warmcheck.pipeline.analyze_pieces`): an unchanged run is neither read, analysed, unpickled
nor rendered. In another format (or JUnit, which needs the whole outcome) the stored runs are
unpickled and rendered, and that format's pieces are added to the manifest. The pieces depend on
the run and the format alone (the manifest is already specific to the paths as given, the settings
and the code; where a run sits in the report, the column widths of the text summary table and every
count are computed when the report is joined).

A run's key is a hash of its :class:`~warmcheck.readers.discovery.RunSpec` (name, files, formats,
joined members, discovery findings) and the identity of every file the analysis reads:

* each log file's :func:`warmcheck.storage.stat` (local: size, mtime, ctime, inode, device; a URL:
  the listing's size and ETag from :func:`warmcheck.storage.known_stat`, no request per file);
* the config files read beside the run (``hparams.yaml``, ``config.json``...,
  :mod:`warmcheck.readers.runconfig_files`): the run directory's own stat (a file added, removed or
  renamed in it changes its mtime) plus the stat of each config file that was there when the entry
  was made (an in-place edit changes its own).

Rules that keep it from ever changing a report:

* A run is taken from the manifest only if its key matches exactly; anything else is analysed.
* A run with a file (or its directory) modified less than :data:`warmcheck.cache.RACY_NS` before the
  analysis began is analysed and not stored; nor is a run read from an MLflow store or server (not
  files), nor one whose files cannot be stat'ed.
* The manifest is written to a temporary file and renamed over the old one (two processes sharing
  a directory only ever see whole manifests; the last writer wins). It holds exactly the runs of the
  last invocation with that key (a run gone from the tree is dropped).
* The manifest is an index (a pickle of builtin values only: no class can be named in it) of spans
  in the data that follows it: each run's pickled compact runs, read by a restricted unpickler
  (only warmcheck's own dataclasses and enums and numpy's array reconstruction can be named in
  them) and only when needed, and its pieces (UTF-8, with the length of each). A manifest that
  names anything else, or is truncated, corrupt, or from another version, is ignored (every run
  analysed) and rewritten; a blob or pieces that do not load make that run a miss.
* Problems of the cache itself (a read-only directory, a full disk) never fail the analysis.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import io
import json
import os
import pickle
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any

from . import storage
from .cache import RACY_NS, code_fingerprint, write_atomically
from .config import Settings
from .model import Format, Run
from .readers.discovery import RunSpec
from .readers.runconfig_files import NAMES as CONFIG_NAMES

MANIFEST_FORMAT = 3
_HEADER = b"warmcheck-runs\0"


@dataclass
class RunCacheStats:
    """What the run cache did in this invocation (tests and benches read it)."""

    hits: int = 0  # runs taken from the manifest
    analysed: int = 0  # runs read and analysed
    stored: int = 0  # of those, runs written to the manifest
    uncached: int = 0  # analysed and not stored: too recent, MLflow, a file that could not be stat'ed
    rejected: int = 0  # 1 when the manifest was there but damaged or foreign (ignored, rewritten)


Facts = tuple[tuple[int, int, int, bool], ...]  # per run: errors, warnings, infos, whether it held data
Pieces = tuple[tuple[str, ...], ...]  # per run: its rendered report pieces in one format


Span = tuple[int, int]  # (offset, length) in the data that follows a manifest's index


@dataclass
class _Entry:
    configs: tuple[tuple[str, int, str], ...]  # config files beside the run: (name, size, version)
    blob: bytes | Span  # the pickled compact runs, or where they are in the manifest read
    facts: Facts = ()  # what the exit code and the closing line need of the runs (see facts_of)
    # by piece format (reporters.pieces): every run's pieces, UTF-8 one after the other (or where they
    # are in the manifest read), and the length in bytes of each
    pieces: dict[str, tuple[bytes | Span, tuple[int, ...]]] = field(default_factory=dict)


@dataclass
class Hit:
    """A run taken from the manifest: its runs (unpickled unless the pieces were asked for and
    stored), their facts and, when asked for and stored, their pieces."""

    runs: list[Run] | None
    facts: Facts
    pieces: Pieces | None


def facts_of(runs: Sequence[Run]) -> Facts:
    """Per run: its findings per severity (error, warning, info) and whether it held any point."""
    out = []
    for run in runs:
        sev = [f.severity.value for f in run.findings]
        out.append((sev.count("error"), sev.count("warning"), sev.count("info"), any(s.points for s in run.series)))
    return tuple(out)


@dataclass
class RunCache:
    """The manifest of one invocation key in ``directory`` (see the module docstring)."""

    directory: str
    paths: tuple[str, ...]
    settings: Settings
    piece: str | None = None  # the piece format reported in (reporters.pieces): see lookup
    stats: RunCacheStats = field(default_factory=RunCacheStats)
    started_ns: int = field(default_factory=time.time_ns)

    def __post_init__(self) -> None:
        settings = replace(self.settings, cache_dir=None, no_cache=False)
        ident = json.dumps([MANIFEST_FORMAT, code_fingerprint(), list(self.paths),
                            [p if storage.is_url(p) else os.path.abspath(p) for p in self.paths],
                            repr(settings)], ensure_ascii=True)
        self.ident = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()
        self.file = os.path.join(self.directory, "runs", self.ident[:40] + ".pkl")
        self._old: dict[str, Any] = {}  # the manifest's index: entries as stored (see _entry)
        self._new: dict[str, _Entry] = {}
        self._data = memoryview(b"")  # the manifest read: the data its index points into
        # the stats of the directories the discovery listed (Discovery.dir_stats): not taken again
        self.dir_stats: dict[str, os.stat_result] = {}
        self._dirty = False

    # -- lookup ------------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the manifest (once, before :meth:`get`)."""
        self._old = self._read()

    def key(self, spec: RunSpec) -> tuple[str, bool] | None:
        """``(key, storable)`` for ``spec``; None when the run cannot be cached (MLflow, a file that
        cannot be stat'ed). ``storable`` is false for a run changed within the racy window."""
        files = spec.files if not spec.members else (*spec.files, *(f for m in spec.members for f in m.files))
        parts: list[Any] = [repr(spec)]
        storable = True
        recent = self.started_ns - RACY_NS
        for path, _, fmt in files:
            if fmt is Format.MLFLOW:
                return None
            if not storage.is_url(path):  # inline (10k runs): size, mtime, ctime, inode, device
                try:
                    lst = os.stat(path)
                except (OSError, ValueError):
                    return None
                storable = storable and lst.st_mtime_ns <= recent
                parts.append((path, lst.st_size, lst.st_mtime_ns, lst.st_ctime_ns, lst.st_ino, lst.st_dev))
                continue
            got = _file_stat(path, self.started_ns)
            if got is None:
                return None
            st, racy = got
            storable = storable and not racy
            parts.append((path, st.size, st.version))
        if files:
            where = storage.dirname(files[0][0]) if storage.is_url(files[0][0]) else os.path.dirname(files[0][0])
            at = _dir_stat(where, self.started_ns, self.dir_stats.get(where))
            if at is None:
                return None
            stamp, racy = at
            storable = storable and not racy
            parts.append(stamp)
        digest = hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()
        return digest, storable

    def get(self, key: str, spec: RunSpec) -> list[Run] | None:
        """The runs stored under ``key``, if their config files are the same; else None."""
        hit = self.lookup(key, spec)
        return None if hit is None else hit.runs

    def lookup(self, key: str, spec: RunSpec, piece: str | None = None) -> Hit | None:
        """The entry stored under ``key``, if its config files are the same; else None. With ``piece``
        (a piece format) and that format's pieces stored, the runs are not unpickled (``Hit.runs`` is
        None); otherwise they are, and a blob that does not load is a miss."""
        entry = _entry(self._old.get(key))
        if entry is None:
            return None
        if entry.configs:  # none: the directory's stat in the key says none was added
            configs = _configs(spec, [name for name, _, _ in entry.configs], self.started_ns)
            if configs is None or configs[0] != entry.configs:
                return None
        stored = entry.pieces.get(piece) if piece is not None else None
        pieces = self._decode(stored, len(entry.facts)) if stored is not None else None
        if pieces is not None:
            self._new[key] = entry
            self.stats.hits += 1
            return Hit(None, entry.facts, pieces)
        try:
            runs = _loads(self._bytes(entry.blob))
        except Exception:  # noqa: BLE001 - anything in a damaged blob: analyse the run
            return None
        if not isinstance(runs, list) or not all(isinstance(r, Run) for r in runs):
            return None
        facts = facts_of(runs)
        if facts != entry.facts:
            entry = replace(entry, facts=facts, pieces={})  # pieces of other runs: never trusted
            self._dirty = True
        self._new[key] = entry
        self.stats.hits += 1
        return Hit(runs, facts, None)

    def add_pieces(self, key: str, piece: str, pieces: Pieces) -> None:
        """Keep the ``piece`` format's pieces of the runs under ``key`` (a hit whose runs were unpickled)."""
        entry = self._new.get(key)
        if entry is not None and len(pieces) == len(entry.facts):
            entry.pieces = {**entry.pieces, piece: _encode(pieces)}
            self._dirty = True

    # -- storing -----------------------------------------------------------------------------------

    def put(self, key: str, spec: RunSpec, runs: list[Run], storable: bool,
            pieces: tuple[str, Pieces] | None = None) -> None:
        """Keep the compact ``runs`` of ``spec`` under ``key`` (unless ``storable`` is false), with
        their ``(piece format, pieces)`` if given."""
        configs = _configs(spec, None, self.started_ns) if storable else None
        if configs is None or configs[1]:
            self.stats.uncached += 1
            return
        try:
            blob = pickle.dumps(runs, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - something that does not pickle: never cached
            self.stats.uncached += 1
            return
        self._new[key] = _Entry(configs[0], blob, facts_of(runs),
                                {pieces[0]: _encode(pieces[1])} if pieces is not None else {})
        self._dirty = True
        self.stats.stored += 1

    def save(self) -> bool:
        """Write the manifest if it changed: exactly the runs seen in this invocation."""
        if not self._dirty and set(self._new) == set(self._old):
            return True
        chunks: list[bytes | memoryview] = []
        at = 0

        def place(data: bytes | Span) -> Span:
            nonlocal at
            raw = self._view(data)
            chunks.append(raw)
            at += len(raw)
            return at - len(raw), len(raw)

        body = {k: (e.configs, e.facts, place(e.blob), {p: (place(d), n) for p, (d, n) in e.pieces.items()})
                for k, e in self._new.items()}
        head = {"format": MANIFEST_FORMAT, "code": code_fingerprint(), "ident": self.ident}
        index = pickle.dumps((head, body), protocol=pickle.HIGHEST_PROTOCOL)
        def write(fh: IO[bytes]) -> None:
            fh.write(_HEADER + struct.pack("<Q", len(index)))
            fh.write(index)
            fh.writelines(chunks)

        return write_atomically(self.file, ".pkl", write)

    def _read(self) -> dict[str, Any]:
        """The index of the manifest (its data is kept in ``self._data``, read by :meth:`_view`).

        The file: the header, the index's length (8 bytes, little-endian), the index (a pickle of
        builtin values only: each entry's configs, facts and the spans of its blob and pieces), then
        the blobs and pieces one after the other."""
        try:
            with open(self.file, "rb") as fh:
                data = fh.read()
        except OSError:
            return {}
        try:
            if not data.startswith(_HEADER):
                raise ValueError("not a manifest")
            start = len(_HEADER) + 8
            (size,) = struct.unpack_from("<Q", data, len(_HEADER))
            if start + size > len(data):
                raise ValueError("truncated")
            view = memoryview(data)
            head, body = _Restricted(io.BytesIO(view[start:start + size]), allow=False).load()
            if head != {"format": MANIFEST_FORMAT, "code": code_fingerprint(), "ident": self.ident}:
                raise ValueError("another version's manifest")
            if not isinstance(body, dict):
                raise ValueError("bad index")
            self._data = view[start + size:]
            return body  # entries are checked when looked up (_entry): most are used once, some never
        except Exception:  # noqa: BLE001 - a damaged or foreign manifest: ignored, rewritten
            self.stats.rejected += 1
            self._dirty = True
            self._data = memoryview(b"")
            return {}

    def _view(self, data: bytes | Span) -> bytes | memoryview:
        """``data``, or the bytes at that span of the manifest read (ValueError: out of it)."""
        if isinstance(data, bytes):
            return data
        at, n = data
        if at < 0 or n < 0 or at + n > len(self._data):
            raise ValueError("span out of the manifest")
        return self._data[at:at + n]

    def _bytes(self, data: bytes | Span) -> bytes:
        return bytes(self._view(data))

    def _decode(self, stored: tuple[bytes | Span, tuple[int, ...]], runs: int) -> Pieces | None:
        """The pieces of ``runs`` runs stored as ``stored`` (see :class:`_Entry`); None if they do not
        decode as that many runs' pieces."""
        try:
            raw = self._view(stored[0])
            lengths = stored[1]
            if not runs:
                return () if not lengths and not raw else None
            if len(lengths) == runs == 1:  # the common case: one run, one piece
                return ((str(raw, "utf-8", "surrogatepass"),),) if lengths[0] == len(raw) else None
            if len(lengths) % runs or sum(lengths) != len(raw):
                return None
            each = len(lengths) // runs
            texts = []
            at = 0
            for n in lengths:
                texts.append(str(raw[at:at + n], "utf-8", "surrogatepass"))
                at += n
            return tuple(tuple(texts[i:i + each]) for i in range(0, len(texts), each))
        except (ValueError, UnicodeError):
            return None


def _entry(stored: Any) -> _Entry | None:
    """An entry of the manifest's index as an :class:`_Entry` (None: absent or not well-formed)."""
    if stored is None:
        return None
    try:
        configs, facts, (bo, bn), pieces = stored
        return _Entry(tuple((str(n), int(s), str(v)) for n, s, v in configs), (int(bo), int(bn)),
                      tuple((int(e), int(w), int(i), bool(a)) for e, w, i, a in facts),
                      {str(p): ((int(o), int(n)), tuple(map(int, lengths))) for p, ((o, n), lengths) in pieces.items()})
    except (TypeError, ValueError, AttributeError):
        return None


def _encode(pieces: Pieces) -> tuple[bytes, tuple[int, ...]]:
    """``pieces`` as stored (see :class:`_Entry`): every string in UTF-8 one after the other, and
    the length of each (the same number of strings per run)."""
    raw = [text.encode("utf-8", "surrogatepass") for run in pieces for text in run]
    if len({len(run) for run in pieces}) > 1:
        raise ValueError("runs with different numbers of pieces")
    return b"".join(raw), tuple(len(r) for r in raw)


def _file_stat(path: str, started_ns: int) -> tuple[storage.FileStat, bool] | None:
    """A file's :class:`~warmcheck.storage.FileStat` and whether it changed within the racy window."""
    if storage.is_url(path):
        known = storage.known_stat(path)
        if known is not None:
            return known, False
        try:
            return storage.stat(path), False
        except OSError:
            return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return storage.local_stat(st), st.st_mtime_ns > started_ns - RACY_NS


def _dir_stat(directory: str, started_ns: int,
              listed: os.stat_result | None = None) -> tuple[tuple[Any, ...], bool] | None:
    """What changes when a file is added to, removed from or renamed in ``directory``. A URL: the
    listing's stats of the config file names (None for those not listed). ``listed``: the stat the
    discovery took of that directory just before listing it (the run's files are those of that
    listing, so its stat is the one that goes with them)."""
    if storage.is_url(directory):
        return tuple((n, storage.known_stat(storage.join(directory, n))) for n in CONFIG_NAMES), False
    try:
        st = listed if listed is not None else os.stat(directory or ".")
    except (OSError, ValueError):
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev), st.st_mtime_ns > started_ns - RACY_NS


def _configs(spec: RunSpec, names: list[str] | None,
             started_ns: int) -> tuple[tuple[tuple[str, int, str], ...], bool] | None:
    """The stats of the config files beside ``spec`` (``names``: these; None: those that exist) and
    whether one changed within the racy window."""
    files = list(spec.files)
    if not files or storage.is_url(files[0][0]):
        return (), False  # a URL run: its config names are in the key already (the listing's stats)
    where = os.path.dirname(files[0][0])
    out = []
    racy = False
    for name in CONFIG_NAMES if names is None else names:
        path = os.path.join(where, name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if names is None:
                continue
            return None
        except (OSError, ValueError):
            return None
        fs = storage.local_stat(st)
        racy = racy or st.st_mtime_ns > started_ns - RACY_NS
        out.append((name, fs.size, fs.version))
    return tuple(out), racy


# ---- the restricted unpickler ----------------------------------------------------------------------

_NUMPY = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy._core.numeric", "_frombuffer"),
          ("numpy.core.numeric", "_frombuffer"), ("numpy._core.multiarray", "_reconstruct"),
          ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
          ("numpy.core.multiarray", "scalar")}
_BUILTINS = {"set", "frozenset", "complex", "slice", "range"}
_allowed: dict[tuple[str, str], Any] = {}


class _Restricted(pickle.Unpickler):
    """Only warmcheck's dataclasses (without ``__post_init__``) and enums, numpy's array
    reconstruction and a few builtin containers can be named (``allow=False``: nothing at all)."""

    def __init__(self, fh: io.BytesIO, allow: bool = True) -> None:
        super().__init__(fh)
        self.allow = allow

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed.get((module, name))
        if found is not None and self.allow:
            return found
        if self.allow:
            ok: Any = None
            if (module, name) in _NUMPY or (module.startswith("numpy.dtypes") and name.endswith("DType")):
                ok = super().find_class(module, name)
            elif module == "builtins" and name in _BUILTINS:
                ok = super().find_class(module, name)
            elif module.startswith("warmcheck.") and "." not in name:
                cls = super().find_class(module, name)
                if isinstance(cls, type) and (issubclass(cls, enum.Enum) or (
                        dataclasses.is_dataclass(cls) and not hasattr(cls, "__post_init__"))):
                    ok = cls
            if ok is not None:
                _allowed[(module, name)] = ok
                return ok
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in the run cache")


def _loads(blob: bytes) -> Any:
    return _Restricted(io.BytesIO(blob)).load()


def analyse_with_cache(cache: RunCache, specs: Sequence[RunSpec]) -> tuple[dict[int, Hit], dict[int, tuple[str, bool]]]:
    """The runs found in the manifest by spec index (in ``cache.piece``: see :meth:`RunCache.lookup`),
    and the keys of the cacheable ones (found or not)."""
    cache.load()
    found: dict[int, Hit] = {}
    keys: dict[int, tuple[str, bool]] = {}
    for i, spec in enumerate(specs):
        key = cache.key(spec)
        if key is None:
            cache.stats.analysed += 1
            cache.stats.uncached += 1
            continue
        hit = cache.lookup(key[0], spec, cache.piece)
        if hit is not None:
            found[i] = hit
            keys[i] = key
        else:
            cache.stats.analysed += 1
            keys[i] = key
    return found, keys


_last: list[RunCacheStats] = []


def set_last_stats(stats: RunCacheStats | None) -> None:
    """Record what the run cache did in the last analysis of this process (see :func:`last_stats`)."""
    _last[:] = [] if stats is None else [stats]


def last_stats() -> RunCacheStats | None:
    """What the run cache did in the last analysis of this process (None: it was not used)."""
    return _last[0] if _last else None


__all__ = ["MANIFEST_FORMAT", "Facts", "Hit", "Pieces", "RunCache", "RunCacheStats", "analyse_with_cache", "facts_of",
           "last_stats", "set_last_stats"]
