"""Logs on object storage (``s3://``, ``gs://``, ``memory://``...) followed by ``warmcheck watch``.

An object cannot be appended to: a log that grows on S3 is uploaded again, whole, under the same key
(a new ETag). Each poll's one listing of the watched prefix (:func:`warmcheck.storage.find`, done by
discovery) gives every object's size and ETag; :class:`RemoteTailer` asks for nothing more about an
object whose size and ETag are those it last read. For one that changed:

- **grew** (larger, new ETag): one ranged read from ``old_size - WINDOW`` to the end. The first
  ``WINDOW`` bytes (the end of what was read before) must equal those already read, else the object
  was rewritten; the bytes after them are the new ones. The read is conditional on the listing's ETag
  (an object replaced again meanwhile is retried at the next poll, never half of one and half of the
  other);
- **shrank**, or the same size with a new ETag, or the window differs: the object is read whole again;
  if its bytes are those read before (an identical re-upload) nothing happens, else it is a rewrite:
  the followed file is replaced and the local tailer starts a new generation (its points replace
  those returned before, as for a local file truncated and written again). A file read whole at
  each change (``trainer_state.json``, gzip) is overwritten in place instead: its tailer tells a
  longer history (Hugging Face saving again) from a new attempt by the points themselves.

The bytes read are kept in a local spool file (one per followed object, in a temporary directory
removed at the end of the watch) that the local tailer of the format
(:func:`~warmcheck.readers.tailing.tailer_for`) follows as it follows any local log: appended bytes
are appended to the spool file, a rewrite replaces it (a new inode). So every format ``watch`` follows
locally is followed on a URL with the same code, findings and WC003 handling. On Linux the blocks the
local tailer has read are freed (``fallocate`` punch-hole; the file keeps its size, reads as zeros
there): an appended log's spool file holds its first 64 KiB, the ``WINDOW`` before the tailer's offset
and what is not read yet; a log read whole at each change (``trainer_state.json``, gzip) is kept whole.
Elsewhere the spool files take the size of the followed logs. An identical re-upload under a new ETag
is told by a digest of the bytes.

A request that fails because the endpoint does not answer raises
:class:`~warmcheck.storage.StorageError` and leaves the tailer as it was (the next poll tries again);
an object deleted or replaced between the listing and the read is left for the next poll's listing.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import sys
import tempfile
import weakref
from typing import Any, BinaryIO

from .. import storage
from ..errors import PathError
from ..findings import Finding
from ..model import Format, SourceInfo, SourceRead
from ..readers._follow import FileIdentity
from ..readers.interface import diag
from ..readers.tailing import EventTailer, FileTailer, Tailer, tailer_for

WINDOW = 64 * 1024
"""Bytes before the end of what was read that are fetched again with the new bytes: must be unchanged."""
COPY_BYTES = storage.BLOCK_SIZE  # bytes moved from a remote file to the spool file at a time
KEEP_HEAD = 64 * 1024  # bytes at the start of a spool file always kept (headers the tailers compare)
TRIM_MIN = 1 << 20  # bytes read by the local tailer freed at a time (at least)
TRIM_ALIGN = 64 * 1024


class Spool:
    """A temporary directory holding the spool files of the followed objects (created when first needed)."""

    def __init__(self) -> None:
        self._dir: str | None = None
        self._count = 0
        self._cleanup: weakref.finalize | None = None  # also at exit, or when the watcher is dropped

    def new_dir(self) -> str:
        """A new empty directory for one object's spool file."""
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="warmcheck-watch-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._count += 1
        path = os.path.join(self._dir, str(self._count))
        os.mkdir(path)
        return path

    def close(self) -> None:
        """Remove the spool files."""
        if self._cleanup is not None:
            self._cleanup()
        self._dir, self._cleanup = None, None


class _NoIdentity(FileIdentity):
    """Objects are not renamed in place: nothing is ever rotated (the Watcher asks)."""

    def moved(self) -> None:
        """Never moved."""
        return None

    def owns(self, path: str, st: os.stat_result) -> bool:
        """Never another name of this object."""
        return False


class RemoteTailer:
    """An object at a URL followed live (the :class:`~warmcheck.readers.tailing.Tailer` protocol)."""

    def __init__(self, url: str, display: str, fmt: Format, spool: Spool) -> None:
        if fmt is Format.MLFLOW:
            raise PathError(f"{url}: MLflow stores are not followed on a URL (copy them to local disk)")
        self.path, self.display, self.fmt = url, display or url, fmt
        self.identity: FileIdentity = _NoIdentity(url)
        self.generation = 0  # the local tailer's: bumped when the object was rewritten
        self.local = ""  # the spool file, made at the first read (a full disk is then this file's WC001)
        self._spool = spool
        self.bytes_fetched = 0  # bytes fetched from the object so far
        self.reads = 0  # times the object was opened for reading so far
        self._synced: storage.FileStat | None = None  # the object as the spool file holds it
        self._digest = hashlib.blake2b(digest_size=32)  # of the object's bytes in the spool file
        self._trimmed = 0  # the spool file's blocks before this offset (after its head) were freed
        self._inner: Tailer | None = None
        self._failed = False  # WC001 reported; quiet until the object can be read again

    def poll(self) -> SourceRead | None:
        """What is new in the object since the last poll; ``None`` if it did not change. Raises
        :class:`~warmcheck.storage.StorageError` when the endpoint does not answer (nothing changed)."""
        try:
            self._sync()
        except _Stale:
            pass  # deleted or replaced since the listing: the next listing tells
        except OSError as exc:  # forbidden, or the spool file could not be written (disk full, removed)
            self._synced = None  # the next poll reads the whole object again (the same bytes: nothing new)
            if self._failed:
                return None
            self._failed = True
            return SourceRead(SourceInfo(self.display, self.fmt), findings=[diag(
                "WC001", f"cannot read file: {exc.strerror or exc}", self.display, errno=exc.errno,
                error=type(exc).__name__)])
        if self._inner is None:
            return None
        read = self._inner.poll()
        self.generation = self._inner.generation
        self._trim()
        return read

    def discard(self) -> None:
        """The object is gone: remove its spool file (what was read from it stays with the watcher)."""
        if self.local:
            shutil.rmtree(os.path.dirname(self.local), ignore_errors=True)
        self._inner, self._synced, self.local = None, None, ""

    def pending_bytes(self) -> int:
        """The local tailer's held-back bytes."""
        return self._inner.pending_bytes() if self._inner is not None else 0

    def incomplete_tail(self) -> Finding | None:
        """The local tailer's WC003 for the held-back bytes."""
        return self._inner.incomplete_tail() if self._inner is not None else None

    # -- bringing the spool file up to date -------------------------------------------------------

    def _sync(self) -> None:
        st = storage.known_stat(self.path)
        if st is None:
            st = storage.stat(self.path)  # not from a listing (a file given explicitly): one HEAD
        if st == self._synced:
            return  # unchanged: no request
        if not self.local:
            self.local = os.path.join(self._spool.new_dir(), self.path.rstrip("/").rsplit("/", 1)[-1] or "object")
        old = self._synced.size if self._synced is not None else 0
        whole = isinstance(self._inner, FileTailer) and self._inner.reads_whole  # it is read whole anyway
        if self._synced is None or old == 0 or st.size <= old or whole or not os.path.exists(self.local) \
                or not self._appended(st, old):  # (a spool file removed by a temporary-files cleaner: again)
            self._read_whole(st)
        self._synced = st
        self._failed = False
        if self._inner is None:
            self._inner = tailer_for(self.local, self.display, self.fmt)

    def _appended(self, st: storage.FileStat, old: int) -> bool:
        """Fetch ``[old - WINDOW, size)`` in one ranged read; if the window is the end of the spool file,
        append the new bytes to it (True); else False (the object was rewritten, nothing written)."""
        start = max(0, old - WINDOW)
        with self._open() as fh:
            fh.seek(start)
            window = fh.read(old - start)
            self.bytes_fetched += len(window)
            with open(self.local, "rb") as mine:
                mine.seek(start)
                if mine.read(old - start) != window:
                    return False
            digest = self._digest.copy()
            with open(self.local, "r+b") as out:
                out.seek(old)
                try:
                    self._copy(fh, out, digest)
                    if out.tell() != st.size:
                        raise _Stale()  # the object ended early: it changed since the listing
                except BaseException:
                    out.truncate(old)  # the spool file stays as the tailer last read it
                    raise
        self._digest = digest
        return True

    def _read_whole(self, st: storage.FileStat) -> None:
        """The whole object into a new spool file; it replaces the old one only if its bytes differ."""
        tmp = self.local + ".new"
        digest = hashlib.blake2b(digest_size=32)
        os.makedirs(os.path.dirname(tmp), exist_ok=True)  # (removed by a temporary-files cleaner?)
        try:
            with self._open() as fh, open(tmp, "wb") as out:
                self._copy(fh, out, digest)
                if out.tell() != st.size:
                    raise _Stale()
            if os.path.exists(self.local) and digest.digest() == self._digest.digest():
                os.unlink(tmp)  # uploaded again unchanged
            elif isinstance(self._inner, FileTailer) and self._inner.reads_whole:
                shutil.copyfile(tmp, self.local)  # in place: the tailer tells an extension from a new attempt
                os.unlink(tmp)
            else:
                os.replace(tmp, self.local)  # a new inode: the local tailer reads it as a rewrite
                self._trimmed = 0
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self._digest = digest

    def _open(self) -> BinaryIO:
        self.reads += 1
        try:
            return storage.open_binary(self.path)
        except OSError as exc:
            raise _stale_or(exc) from None

    def _copy(self, fh: BinaryIO, out: BinaryIO, digest: Any) -> None:
        while True:
            try:
                block = fh.read(COPY_BYTES)
            except OSError as exc:
                raise _stale_or(exc) from None
            if not block:
                return
            self.bytes_fetched += len(block)
            digest.update(block)
            out.write(block)

    def _trim(self) -> None:
        """Free the disk blocks of the spool file the local tailer has read and will not read again:
        all but its first bytes (a header it compares) and the ``WINDOW`` before its offset."""
        inner = self._inner
        if isinstance(inner, FileTailer):
            if inner.reads_whole:
                return
            consumed, head = inner.offset, inner.prefix_bytes
        elif isinstance(inner, EventTailer):
            consumed, head = inner.reader.scanner.offset, 0
        else:
            from ..readers._wandbtail import WandbTailer

            if not isinstance(inner, WandbTailer):
                return
            consumed, head = inner.scanner.offset, 0
        begin = max(self._trimmed, -(-max(head, KEEP_HEAD) // TRIM_ALIGN) * TRIM_ALIGN)
        end = (consumed - WINDOW) // TRIM_ALIGN * TRIM_ALIGN
        if end - begin >= TRIM_MIN and _punch_hole(self.local, begin, end - begin):
            self._trimmed = end


class _Stale(Exception):
    """The object changed between the listing and the read (its ETag no longer matches)."""


def _stale_or(exc: OSError) -> BaseException:
    """The object's own errors: gone or replaced since the listing is for the next poll to tell."""
    return _Stale() if exc.errno == errno.ESTALE or isinstance(exc, FileNotFoundError) else exc


_FALLOC_PUNCH_HOLE = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE (Linux)
_fallocate: Any = None


def _punch_hole(path: str, offset: int, length: int) -> bool:
    """Free ``length`` bytes of ``path``'s blocks from ``offset`` (they read as zeros; the size stays).
    False where the system or filesystem cannot (the spool file then keeps them)."""
    global _fallocate
    if _fallocate is None:
        _fallocate = False
        if sys.platform.startswith("linux"):
            try:
                fn = ctypes.CDLL(None, use_errno=True).fallocate
                fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
                fn.restype = ctypes.c_int
                _fallocate = fn
            except (OSError, AttributeError):
                pass
    if not _fallocate:
        return False
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return False
    try:
        return bool(_fallocate(fd, _FALLOC_PUNCH_HOLE, offset, length) == 0)
    finally:
        os.close(fd)
