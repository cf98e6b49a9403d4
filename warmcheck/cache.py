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

Appended event files are resumed: the entry of a TensorBoard event file whose read was clean (no
finding, some points, read to its last byte) also records the reader's state there (the byte offset,
the record count, the plugin of each tag, for TF2 tensors whose metadata came only with their first
record) and what identifies the bytes up to it (the inode and device, hashes of the first
:data:`HEAD_BYTES` and of the :data:`TAIL_BYTES` before the offset). A file found larger, on the same
inode, with those bytes unchanged, is read from the offset only with the same incremental reader
``watch`` uses (:class:`~warmcheck.readers.tensorboard.EventFileReader`), and the new records are
joined to the cached ones tag by tag: the points, metadata and counts a whole read gives. If the
new records bring any finding (a record being written, damage, an odd tag) the file is read whole
instead, since a finding may depend on the whole file; so is a file rewritten in place (other bytes
at the start or before the offset), a shorter one, or another inode.

Appended CSV and JSONL logs are resumed the same way, from the end of the last complete line: the
entry of a clean read (no finding but the note of a ';' or tab delimiter, not gzip, the file ending
with a line break after a non-blank line) records the same hashes and what the parser needs to go
on (CSV: the header's names and delimiter, its line count, the rows so far, the text columns and the
columns still empty, where the median of a wall-clock column lies; JSONL: nothing beyond the step
key and every key seen so far, in order). The appended lines are parsed by the functions ``watch``
parses appended lines with (:func:`~warmcheck.readers.csvlog.parse_rows`,
:func:`~warmcheck.readers.jsonl.parse_jsonl`), told which columns or keys held numbers before, and
joined series by series. A resumed read must be exactly the whole read, so the file is read whole
whenever that is not certain: the new bytes end mid-line or with blank lines, or bring any finding
(a text cell in a numeric column, extra fields, NUL bytes, bad UTF-8, ...), numbers in a CSV column
that held text or under a JSONL key that held only other values, a better step key, or a step not after the
last one of its series (a restart). A CSV is not resumed either when pandas left one of its numeric
columns as text in either part (such cells are converted one by one, which may round a value
differently from pandas) or a value there is 2**53 or more, when the median of a column named like
a wall clock is not on the same side of the epoch-seconds range in the new rows as before (a whole
read takes that column for wall times by its median), when its step column is not all integers (a
blank line, a missing step), or when it has no step column, ragged rows, more than
:data:`~warmcheck.readers._csvwide.WIDE_COLUMNS` columns (the wide-CSV reader), or is a tracker
export (long key/value tables, W&B panels).

Objects read from URLs (``s3://``, ``gs://``...; see :mod:`warmcheck.storage`) are cached too, read
whole on a miss and never resumed (an object rewritten with more bytes is another object, with another
ETag). Their entry is named by the URL as given and normalised (the protocol chain in lower case, the
path as the filesystem writes it), and keyed on those, a hash of the storage options (another endpoint
is another object), the size and the version: the ETag, generation or MD5 the discovery listing gave (no
request; :func:`~warmcheck.storage.known_stat`), else asked once (a HEAD; :func:`~warmcheck.storage.stat`),
plus the format, code fingerprint and size limits as for a file. Size alone is not an identity: an object
whose version is unknown, or only a creation time (``memory://``: a file rewritten in place keeps it), is
read every time and never stored. The racy rule applies to a version that is only a write time
(``mtime``, ``LastModified``, ``updated``: an object written less than :data:`RACY_NS` before the read
began, by the store's clock, is not stored); an ETag, generation or MD5 changes with every write, so
there the object's age does not matter. A read is stored under the version it was keyed on only if it
is that version's content: never a read with WC001 (the object vanished, was replaced since the listing,
was forbidden); on S3, an object opened with the listing's details is read with range requests
conditional on the listing's ETag (a replaced object fails the read); any other object is asked about
again after the read (one HEAD) and must be unchanged. A warm run therefore sends no request for a
cached object; dask workers do the same with the listing their task carries. Discovery's sniff of a CSV
object's head (is it a training log?) is remembered the same way when it says yes (a small
``.sniff.json`` beside the entries), so a warm run does not fetch the head of each CSV either, nor the
run config files beside the logs (``hparams.yaml``...: their bytes are kept, :meth:`ReadCache.object_bytes`).

Only files are cached (TensorBoard, CSV, JSONL, trainer_state.json, W&B); MLflow stores and servers
are directories, databases or URLs and are always read. Other changed files (trainer_state.json,
W&B, gzip logs) are read again whole. In front of this cache, :mod:`warmcheck.runcache` keeps whole
analysed runs, so that a warm ``analyze`` neither reads nor analyses an unchanged run.
"""

from __future__ import annotations

import contextlib
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
from typing import IO, Any

import numpy as np

from . import storage
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
    resumed: int = 0  # of the files read, those appended to since cached: only the new bytes were read
    uncached: int = 0  # read but not stored: too recent, changed while read, not JSON-exact, not a file
    errors: int = 0  # the cache directory could not be written
    sniffs_known: int = 0  # CSV objects discovery knew for training logs from the cache (no request)
    bytes_known: int = 0  # small objects (run config files) taken from the cache (no request)


@dataclass
class ReadCache:
    """A cache directory; :meth:`read` reads a file through it."""

    directory: str
    stats: CacheStats = field(default_factory=CacheStats)

    def read(self, path: str, fmt: Format, reader: Reader) -> SourceRead:
        """``reader(path)``, from the cache when the file has not changed since it was cached, or
        resumed from the cached offset when it was only appended to (event files, see the module
        docstring)."""
        if storage.is_url(path):
            return self._read_url(path, fmt, reader)
        st = _stat(path) if fmt in CACHED_FORMATS else None
        if st is None:
            return self._uncached(path, reader)
        entry = self.entry_path(path, fmt)
        key = file_key(path, fmt, st)
        found = self._lookup(entry, key)
        if isinstance(found, SourceRead):
            return found
        started = time.time_ns()
        self.stats.read += 1
        resume: dict[str, Any] | None = None
        resumable: tuple[Callable[..., Any], Callable[..., Any]] | None = None
        if fmt is Format.TFEVENTS and _is_event_reader(reader):
            resumable = (lambda old, info: _resume_events(path, old, info, st), lambda: _read_events(path, st))
        elif _is_text_reader(fmt, reader):
            resumable = (lambda old, info: _resume_text(path, fmt, old, info, st), lambda: _read_text(path, fmt, st))
        if resumable is not None:
            resume_from, read_whole = resumable
            old = _load_appended(entry, key) if found == "stale" else None
            got = resume_from(*old) if old is not None else None
            if got is not None:
                self.stats.resumed += 1
            read, resume = got if got is not None else read_whole()
        else:
            read = reader(path)
        after = _stat(path)
        if st.st_mtime_ns > started - RACY_NS or after is None or _stamp(after) != _stamp(st):
            self.stats.uncached += 1
            return read
        self._store(entry, _encode(read, key, resume))
        return read

    def _uncached(self, path: str, reader: Reader) -> SourceRead:
        self.stats.uncached += 1
        self.stats.read += 1
        return reader(path)

    def _store(self, entry: str, payload: dict[str, np.ndarray] | None) -> None:
        """Write an encoded read (None: it does not survive encoding, so it is not cached), counted."""
        if payload is None:
            self.stats.uncached += 1
        elif _write(entry, payload):
            self.stats.stored += 1
        else:
            self.stats.errors += 1

    def _lookup(self, entry: str, key: dict[str, Any]) -> SourceRead | str:
        """:func:`_load`, counted: a hit, a rejected entry or a miss (``"missing"``, ``"stale"``)."""
        found = _load(entry, key)
        if isinstance(found, SourceRead):
            self.stats.hits += 1
        elif found == "rejected":
            self.stats.rejected += 1
        else:
            self.stats.misses += 1
        return found

    def _read_url(self, path: str, fmt: Format, reader: Reader) -> SourceRead:
        """:meth:`read` for an object read from a URL: a hit when the object's size and version (from
        the listing, else asked) are those of its entry; else read whole (never resumed) and stored
        when :func:`_url_cacheable` says the read stands for that version."""
        st = _url_stat(path) if fmt in CACHED_FORMATS else None
        if st is None:
            return self._uncached(path, reader)
        entry = self.entry_path(path, fmt)
        key = url_key(path, fmt, st)
        found = self._lookup(entry, key)
        if isinstance(found, SourceRead):
            return found
        started = time.time_ns()
        self.stats.read += 1
        read = reader(path)
        if not _url_cacheable(path, st, started, read):
            self.stats.uncached += 1
            return read
        self._store(entry, _encode(read, key))
        return read

    def sniff(self, path: str, sniff: Callable[[str], bool]) -> bool:
        """``sniff(path)``, discovery's look at the head of a CSV (is it a training log?), remembered for an
        object read from a URL when it said yes, under the same key as a read (another version of the
        object is sniffed again). A no is never stored: a sniff that failed (the object replaced since
        the listing, an endpoint error) also says no."""
        st = _url_stat(path) if storage.is_url(path) else None
        if st is None:
            return sniff(path)
        entry = self.entry_path(path, Format.CSV)[:-len(".npz")] + ".sniff.json"
        key = {**url_key(path, Format.CSV, st), "format": "csv-sniff"}
        try:
            with open(entry, encoding="utf-8") as fh:
                stored = json.load(fh)
            if isinstance(stored, dict) and stored.get("key") == key and stored.get("training_csv") is True:
                self.stats.sniffs_known += 1
                return True
        except (OSError, ValueError):
            pass
        started = time.time_ns()
        verdict = sniff(path)
        if verdict and _url_cacheable(path, st, started, SourceRead(SourceInfo(path, Format.CSV))):
            text = json.dumps({"key": key, "training_csv": True}, ensure_ascii=True)
            if not _write_text(entry, text):
                self.stats.errors += 1
        return verdict

    def object_bytes(self, path: str, load: Callable[[], bytes]) -> bytes:
        """``load()``, the bytes of a small object read whole (a run's config file beside its logs),
        kept for an object read from a URL under the same key as a read (``"format": "bytes"``) and
        stored by the same rule (:func:`_url_cacheable`); an error of ``load`` is raised and stores
        nothing."""
        st = _url_stat(path) if storage.is_url(path) else None
        if st is None:
            return load()
        ident = json.dumps([path, _url_identity(path), "bytes"], ensure_ascii=True)
        name = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        entry = os.path.join(self.directory, name[:2], name + ".npz")
        key = {**url_key(path, Format.CSV, st), "format": "bytes"}
        try:
            with np.load(entry, allow_pickle=False) as npz:
                header = json.loads(npz["header"].tobytes().decode("ascii"))
                data = npz["data"]
                if isinstance(header, dict) and header.get("key") == key and data.dtype == np.uint8 \
                        and data.ndim == 1 and header.get("length") == data.shape[0]:
                    self.stats.bytes_known += 1
                    return data.tobytes()
        except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile,
                UnicodeDecodeError, AttributeError):
            pass
        started = time.time_ns()
        data_read = load()
        if _url_cacheable(path, st, started, SourceRead(SourceInfo(path, Format.CSV))):
            text = json.dumps({"key": key, "length": len(data_read)}, ensure_ascii=True)
            if not _write(entry, {"header": np.frombuffer(text.encode("ascii"), dtype=np.uint8),
                                  "data": np.frombuffer(data_read, dtype=np.uint8)}):
                self.stats.errors += 1
        return data_read

    def entry_path(self, path: str, fmt: Format) -> str:
        """Where the entry of ``path`` lives: a hash of its identity, never the path itself."""
        where = _url_identity(path) if storage.is_url(path) else os.path.abspath(path)
        ident = json.dumps([path, where, fmt.value], ensure_ascii=True)
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


# ---- objects read from URLs: whole reads keyed on the object's size and version -----------------------

STRONG_VERSIONS = ("ETag", "etag", "generation", "md5Hash", "content_md5")  # change with every write
TIME_VERSIONS = ("mtime", "LastModified", "last_modified", "updated")  # the time of the last write


def url_key(path: str, fmt: Format, st: storage.FileStat) -> dict[str, Any]:
    """:func:`file_key` for an object: the URL as given and normalised, where it is read from (a hash of
    the storage options: another endpoint is another object), its size and version."""
    from .readers._textstream import current_limits

    limits = current_limits()
    # the protocol's defaults are fixed by the protocol (and the code fingerprint): the user's options suffice
    options = json.dumps([storage.protocol(path), storage.storage_options()], sort_keys=True, default=repr)
    return {"cache_format": CACHE_FORMAT, "code": code_fingerprint(), "path": path,
            "url": _url_identity(path), "where": hashlib.sha256(options.encode()).hexdigest()[:32],
            "format": fmt.value, "size": st.size, "stamp": {"size": st.size, "version": st.version},
            "limits": [limits.max_file_size, limits.max_decompressed_size]}


def _url_identity(path: str) -> str:
    """The URL normalised: its protocol chain in lower case and the path inside the filesystem as the
    filesystem writes it (``s3://b//k`` and ``S3://b/k`` alike); the URL itself if that cannot be had."""
    chain, _, rest = path.partition("://")
    chain = chain.lower()
    try:
        if "::" in chain:
            _, inner = storage.filesystem(path)
        else:  # the filesystem's own rule, without making a filesystem (no options, no client)
            from fsspec.registry import get_filesystem_class

            inner = get_filesystem_class(chain)._strip_protocol(chain + "://" + rest)
    except Exception:  # noqa: BLE001 - not installed, bad options: the reader says so
        return path
    return chain + "://" + str(inner)


def _url_stat(path: str) -> storage.FileStat | None:
    """The object's size and version when they identify its content: from the discovery listing (no
    request), else asked (a HEAD); None (read, never cached) when the object cannot be asked about or its
    version is not an identity (none at all, size alone, or a creation time: memory://)."""
    st = storage.known_stat(path)
    if st is None:
        try:
            st = storage.stat(path)
        except (OSError, ValueError):  # missing, forbidden: the reader makes the finding
            return None
    return st if _version_time(st.version) != "unknown" else None


def _version_time(version: str) -> int | None | str:
    """For a version that is a write time (``mtime=...``, ``LastModified=...``): that time in ns since the
    epoch; None for a version that changes with every write (an ETag, a generation, an MD5); ``"unknown"``
    for anything else (no version, a creation time, a time that does not parse)."""
    name, sep, value = version.partition("=")
    if not sep or not value:
        return "unknown"
    if name in STRONG_VERSIONS:
        return None
    if name not in TIME_VERSIONS:
        return "unknown"
    try:
        return int(float(value) * 1e9)
    except ValueError:
        pass
    try:
        from datetime import datetime, timezone

        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return int(when.timestamp() * 1e9)
    except ValueError:
        return "unknown"


def _url_cacheable(path: str, st: storage.FileStat, started: int, read: SourceRead) -> bool:
    """Whether ``read`` is the content of the object at version ``st`` and may be stored under it.

    * not a read that failed (WC001: the object vanished, was replaced since the listing, was forbidden);
    * a version that is a write time must be :data:`RACY_NS` older than the read's start (the racy rule:
      a rewrite within the store's timestamp granularity could keep it); an ETag, a generation or an MD5
      changes with every write, so the object's age does not matter;
    * the read is of that version: on S3 an object opened with the listing's details is read with
      conditional range requests on the listing's ETag (``local_expiry_check``; another object is a
      WC001); otherwise the object is asked about again after the read (one HEAD) and must be unchanged.
    """
    if any(f.code == "WC001" for f in read.findings):
        return False
    when = _version_time(st.version)
    if isinstance(when, str) or (when is not None and when > started - RACY_NS):
        return False
    if (storage.protocol(path) in ("s3", "s3a") and st.version.startswith("ETag=")
            and storage.known_stat(path) == st and path in storage._details
            and storage.options_for(path).get("local_expiry_check", True)):
        return True
    try:
        return storage.stat(path) == st
    except (OSError, ValueError, storage.StorageError):
        return False


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


# ---- appended event files: resumed from the cached offset ----------------------------------------

HEAD_BYTES = 4096  # the first bytes of a file, hashed: a rewritten file differs there...
TAIL_BYTES = 64 << 10  # ...or in the bytes just before the offset reached


def _is_event_reader(reader: Reader) -> bool:
    from .readers.tensorboard import read_event_file

    return reader is read_event_file


def _digest(path: str, offset: int, st: os.stat_result, keep: bool = False) -> dict[str, Any] | None:
    """What tells that the first ``offset`` bytes of ``path`` are still those read: hashes of the
    first :data:`HEAD_BYTES` and of the :data:`TAIL_BYTES` before ``offset``, the inode and device
    (``keep``: the bytes hashed too, as ``head_bytes`` and ``tail_bytes``)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(min(offset, HEAD_BYTES))
            start = max(0, offset - TAIL_BYTES)
            fh.seek(start)
            tail = fh.read(offset - start)
    except OSError:
        return None
    if len(head) != min(offset, HEAD_BYTES) or len(tail) != offset - start:
        return None
    mark: dict[str, Any] = {"offset": offset, "head": hashlib.sha256(head).hexdigest(),
                            "tail": hashlib.sha256(tail).hexdigest(), "ino": st.st_ino, "dev": st.st_dev}
    if keep:
        mark.update(head_bytes=head, tail_bytes=tail)
    return mark


def _read_events(path: str, st: os.stat_result) -> tuple[SourceRead, dict[str, Any] | None]:
    """A whole event file, and the reader's state to resume from (None: not resumable: a read with
    findings, or without points)."""
    from .readers.tensorboard import EventFileReader

    reader = EventFileReader(path)
    read = reader.read(final=True)
    return read, _events_state(path, reader, read, st)


def _events_state(path: str, reader: Any, read: SourceRead, st: os.stat_result) -> dict[str, Any] | None:
    if read.findings or not any(len(f) for f in read.fragments) or reader.scanner.offset != st.st_size:
        return None
    mark = _digest(path, reader.scanner.offset, st)
    if mark is None:
        return None
    return {**mark, "records": reader.scanner.record_index,
            "plugins": sorted([k.hex(), v] for k, v in reader.plugins.items()),
            "odd": sorted(k.hex() for k in reader._odd_tags)}


def _resume_events(path: str, old: SourceRead, state: dict[str, Any],
                   st: os.stat_result) -> tuple[SourceRead, dict[str, Any] | None] | None:
    """``old`` (the read of the file's first ``state["offset"]`` bytes) with the records appended
    since; None when the file is not that file appended to, or the new records have findings (then
    it is read whole: a finding may depend on the whole file)."""
    from .readers.tensorboard import EventFileReader
    from .readers.tfrecord import TFRecordScanner

    offset = state["offset"]
    if old.findings or (st.st_ino, st.st_dev) != (state["ino"], state["dev"]) or st.st_size <= offset:
        return None
    if _digest(path, offset, st) != {k: state[k] for k in ("offset", "head", "tail", "ino", "dev")}:
        return None
    reader = EventFileReader(path)
    reader.scanner = TFRecordScanner(path, offset, int(state["records"]))
    reader.plugins = {bytes.fromhex(k): str(v) for k, v in state["plugins"]}
    reader._odd_tags = {bytes.fromhex(k) for k in state["odd"]}
    new = reader.read(final=True)
    if new.findings:
        return None
    by_tag: dict[str, list[Fragment]] = {}
    for frag in [*old.fragments, *new.fragments]:
        by_tag.setdefault(frag.tag, []).append(frag)
    fragments = [parts[0] if len(parts) == 1 else Fragment(
        tag, np.concatenate([p.steps for p in parts]), np.concatenate([p.values for p in parts]),
        np.concatenate([p.wall_times for p in parts])) for tag, parts in by_tag.items()]
    meta: dict[str, Any] = dict(old.metadata)
    if "file_version" in new.metadata:
        meta["file_version"] = new.metadata["file_version"]
    texts = new.metadata.get("text")
    if isinstance(texts, dict):
        meta["text"] = {**meta.get("text", {}), **texts}
    meta["nonscalar_values"] = int(old.metadata.get("nonscalar_values", 0)) + int(
        new.metadata.get("nonscalar_values", 0))
    if list(meta) != [k for k in ("file_version", "text", "nonscalar_values") if k in meta]:
        meta = {k: meta[k] for k in ("file_version", "text", "nonscalar_values") if k in meta}
    read = SourceRead(SourceInfo(old.info.path, Format.TFEVENTS, old.info.records + new.info.records,
                                 old.info.skipped + new.info.skipped), fragments, meta, [],
                      [*old.restart_steps, *new.restart_steps], sort_key=new.sort_key)
    return read, _events_state(path, reader, read, st)


# ---- appended CSV and JSONL files: read on from the end of the last complete line ------------------

def _is_text_reader(fmt: Format, reader: Reader) -> bool:
    if fmt is Format.CSV:
        from .readers.csvlog import read_csv

        return reader is read_csv
    if fmt is Format.JSONL:
        from .readers.jsonl import read_jsonl

        return reader is read_jsonl
    return False


def _read_text(path: str, fmt: Format, st: os.stat_result) -> tuple[SourceRead, dict[str, Any] | None]:
    """A whole CSV or JSONL file, and the state to read an append on from (None: not resumable)."""
    if fmt is Format.CSV:
        from .readers.csvlog import read_csv_resumable

        read, parser = read_csv_resumable(path)
    else:
        from .readers.jsonl import read_jsonl_resumable

        read, parser = read_jsonl_resumable(path)
        if parser is not None:  # the stat's size: a file that changed while read is not stored
            parser["offset"] = st.st_size
    if parser is None or parser["offset"] != st.st_size:  # (the readers said which findings allow it)
        return read, None
    return read, _text_state(path, st.st_size, st, parser)


def _text_state(path: str, offset: int, st: os.stat_result, parser: dict[str, Any]) -> dict[str, Any] | None:
    """What resumes a text log read up to ``offset``: the hashes (see :func:`_digest`) and the parser's
    state; None unless the bytes before ``offset`` end with a complete, non-blank line and the file
    is not gzip (a gzip stream is not read on from a byte offset)."""
    mark = _digest(path, offset, st, keep=True)
    if mark is None:
        return None
    head, tail = mark.pop("head_bytes"), mark.pop("tail_bytes")
    if head[:2] == b"\x1f\x8b" or not _ends_with_a_line(tail):
        return None
    return {**mark, "parser": {k: v for k, v in parser.items() if k != "offset"}}


def _ends_with_a_line(data: bytes) -> bool:
    """Whether ``data`` ends with a line break after a line that is not blank (the end of the text a
    whole read gives is the end of the file: no partial line, no blank run it would trim)."""
    if not data.endswith(b"\n"):
        return False
    line = data[:-2] if data.endswith(b"\r\n") else data[:-1]
    return bool(line.rsplit(b"\n", 1)[-1].rsplit(b"\r", 1)[-1].strip())


def _resume_text(path: str, fmt: Format, old: SourceRead, state: dict[str, Any],
                 st: os.stat_result) -> tuple[SourceRead, dict[str, Any] | None] | None:
    """``old`` (the read of the file's first ``state["offset"]`` bytes) with the lines appended since,
    parsed by the reader's incremental parser; None when the file is not that file appended to, or
    the new bytes could change what a whole read gives (then it is read whole)."""
    from .readers._textstream import current_limits

    offset = state["offset"]
    if (st.st_ino, st.st_dev) != (state["ino"], state["dev"]) or st.st_size <= offset \
            or st.st_size > current_limits().max_file_size or not isinstance(state.get("parser"), dict):
        return None
    if _digest(path, offset, st) != {k: state[k] for k in ("offset", "head", "tail", "ino", "dev")}:
        return None
    data = _read_range(path, offset, st.st_size)
    if data is None or not _ends_with_a_line(data):
        return None
    parser: dict[str, Any] = state["parser"]
    if fmt is Format.CSV:
        from .readers.csvlog import resume_csv

        got = resume_csv(path, old, parser, data, offset)
        if got is None:
            return None
        read, parser = got
    else:
        from .readers.jsonl import resume_jsonl

        got = resume_jsonl(path, old, parser, data, offset)
        if got is None:
            return None
        read, parser = got
    return read, _text_state(path, st.st_size, st, parser)


def _read_range(path: str, start: int, end: int) -> bytes | None:
    """The bytes ``start:end`` of ``path`` (None if the file no longer has them)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(end - start)
    except OSError:
        return None
    return data if len(data) == end - start else None


# ---- the entry format ------------------------------------------------------------------------------

def _finding_dict(f: Finding) -> dict[str, Any]:
    return {"code": f.code, "severity": f.severity.value, "message": f.message, "run": f.run, "tag": f.tag,
            "step": f.step, "step_end": f.step_end, "source": f.source, "line": f.line, "details": dict(f.details)}


def _finding(d: Mapping[str, Any]) -> Finding:
    return Finding(code=d["code"], severity=Severity(d["severity"]), message=d["message"], run=d["run"],
                   tag=d["tag"], step=d["step"], step_end=d["step_end"], source=d["source"], line=d["line"],
                   details=d["details"])


def _encode(read: SourceRead, key: dict[str, Any],
            resume: dict[str, Any] | None = None) -> dict[str, np.ndarray] | None:
    """The arrays of an entry, or None when the read would not come back exactly as it is.
    ``resume``: the reader's state at the end of the read (an appended file goes on from there)."""
    frags = list(read.fragments)
    walls = [f.wall_times for f in frags if not _no_walls(f)]
    header = {"key": key,
              "info": [read.info.path, read.info.records, read.info.skipped],
              "fragments": [[f.tag, len(f), _no_walls(f)] for f in frags],
              "metadata": dict(read.metadata),
              "findings": [_finding_dict(f) for f in read.findings],
              "restart_steps": [list(read.restart_steps), isinstance(read.restart_steps, tuple)],
              "sort_key": list(read.sort_key)}
    if resume is not None:
        header["resume"] = resume
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


def write_atomically(path: str, suffix: str, write: Callable[[IO[bytes]], object]) -> bool:
    """Write ``path`` atomically: ``write`` fills a temporary file beside it, then ``os.replace``, so
    processes sharing the directory only ever see whole files. False (nothing left behind) when the
    directory cannot be written."""
    tmp = None
    try:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
        return True
    except (OSError, ValueError):
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False


def _write(entry: str, arrays: dict[str, np.ndarray]) -> bool:
    """An ``.npz`` entry, written atomically."""
    return write_atomically(entry, ".npz", lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]


def _write_text(entry: str, text: str) -> bool:
    """A small text entry, written atomically."""
    return write_atomically(entry, ".json", lambda fh: fh.write(text.encode("utf-8")))


def training_csv(path: str, sniff: Callable[[str], bool]) -> bool:
    """Discovery's sniff of a CSV (``sniff(path)``), through the active cache if any (see
    :meth:`ReadCache.sniff`: a yes for an object read from a URL is remembered)."""
    store = _active[0]
    return sniff(path) if store is None else store.sniff(path, sniff)


def object_bytes(path: str, load: Callable[[], bytes]) -> bytes:
    """``load()`` (a small object's bytes), through the active cache if any (see :meth:`ReadCache.object_bytes`)."""
    store = _active[0]
    return load() if store is None else store.object_bytes(path, load)


def _load_appended(entry: str, key: dict[str, Any]) -> tuple[SourceRead, dict[str, Any]] | None:
    """The read stored in ``entry`` and its resume state, when the entry is of this file in an earlier,
    shorter state (everything in its key equal but the size and the stamp) and could be resumed."""
    try:
        with np.load(entry, allow_pickle=False) as npz:
            header = json.loads(npz["header"].tobytes().decode("ascii"))
            stored, resume = header["key"], header.get("resume")
            same = {k: v for k, v in stored.items() if k not in ("size", "stamp")} == \
                {k: v for k, v in key.items() if k not in ("size", "stamp")}
            if not same or not isinstance(resume, dict) or stored["size"] >= key["size"]:
                return None
            read = _decode(header, stored, npz["steps"], npz["values"], npz["walls"])
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile,
            UnicodeDecodeError, AttributeError):
        return None
    return (read, resume) if isinstance(read, SourceRead) else None


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
