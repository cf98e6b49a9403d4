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
locally is followed on a URL with the same code, findings and WC003 handling; the cost is local disk
space about the size of the followed logs.

A request that fails because the endpoint does not answer raises
:class:`~warmcheck.storage.StorageError` and leaves the tailer as it was (the next poll tries again);
an object deleted or replaced between the listing and the read is left for the next poll's listing.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import weakref
from typing import BinaryIO

from .. import storage
from ..errors import PathError
from ..findings import Finding
from ..model import Format, SourceInfo, SourceRead
from ..readers._follow import FileIdentity
from ..readers.interface import diag
from ..readers.tailing import FileTailer, Tailer, tailer_for

WINDOW = 64 * 1024
"""Bytes before the end of what was read that are fetched again with the new bytes: must be unchanged."""
COPY_BYTES = storage.BLOCK_SIZE  # bytes moved from a remote file to the spool file at a time


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
        self.local = os.path.join(spool.new_dir(), url.rstrip("/").rsplit("/", 1)[-1] or "object")
        self.bytes_fetched = 0  # bytes fetched from the object so far
        self.reads = 0  # times the object was opened for reading so far
        self._synced: storage.FileStat | None = None  # the object as the spool file holds it
        self._inner: Tailer | None = None
        self._failed = False  # WC001 reported; quiet until the object can be read again

    def poll(self) -> SourceRead | None:
        """What is new in the object since the last poll; ``None`` if it did not change. Raises
        :class:`~warmcheck.storage.StorageError` when the endpoint does not answer (nothing changed)."""
        try:
            self._sync()
        except (FileNotFoundError, _Stale):
            pass  # deleted or replaced since the listing: the next listing tells
        except OSError as exc:
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
        return read

    def discard(self) -> None:
        """The object is gone: remove its spool file (what was read from it stays with the watcher)."""
        shutil.rmtree(os.path.dirname(self.local), ignore_errors=True)
        self._inner, self._synced = None, None

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
        old = self._synced.size if self._synced is not None else 0
        if self._synced is None or old == 0 or st.size <= old or not self._appended(st, old):
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
            with open(self.local, "r+b") as out:
                out.seek(old)
                try:
                    self._copy(fh, out)
                    if out.tell() != st.size:
                        raise _Stale()  # the object ended early: it changed since the listing
                except BaseException:
                    out.truncate(old)  # the spool file stays as the tailer last read it
                    raise
        return True

    def _read_whole(self, st: storage.FileStat) -> None:
        """The whole object into a new spool file; it replaces the old one only if its bytes differ."""
        tmp = self.local + ".new"
        try:
            with self._open() as fh, open(tmp, "wb") as out:
                self._copy(fh, out)
                if out.tell() != st.size:
                    raise _Stale()
            if os.path.exists(self.local) and _same_bytes(tmp, self.local):
                os.unlink(tmp)  # uploaded again unchanged
            elif isinstance(self._inner, FileTailer) and self._inner.reads_whole:
                shutil.copyfile(tmp, self.local)  # in place: the tailer tells an extension from a new attempt
                os.unlink(tmp)
            else:
                os.replace(tmp, self.local)  # a new inode: the local tailer reads it as a rewrite
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _open(self) -> BinaryIO:
        self.reads += 1
        try:
            return storage.open_binary(self.path)
        except OSError as exc:
            raise _stale_or(exc) from None

    def _copy(self, fh: BinaryIO, out: BinaryIO) -> None:
        while True:
            try:
                block = fh.read(COPY_BYTES)
            except OSError as exc:
                raise _stale_or(exc) from None
            if not block:
                return
            self.bytes_fetched += len(block)
            out.write(block)


class _Stale(Exception):
    """The object changed between the listing and the read (its ETag no longer matches)."""


def _stale_or(exc: OSError) -> BaseException:
    return _Stale() if exc.errno == errno.ESTALE else exc


def _same_bytes(a: str, b: str) -> bool:
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True
