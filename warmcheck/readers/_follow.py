"""Which file a live tailer reads: the same file appended to, a rewritten one, or a rotated one.

A followed log is the file at its path. Between two polls the writer may have

- **appended** to it (same inode, the bytes already read unchanged): the tailer reads on;
- **rewritten it in place** (truncated, then written again: shorter, or the bytes just before the
  offset reached differ) or **replaced it** (a new inode at the path, the old inode gone: deleted, or
  an atomic rename over it): the file is a new attempt; what was read from the old one no longer
  describes the file, so the tailer starts a new *generation* and the watcher replaces the points it
  returned before (``analyze`` of the final file sees only the new attempt);
- **rotated it** (renamed it within its directory, ``RotatingFileHandler`` or ``logrotate``, and
  started a new file at the path): the tailer first reads the rest of the renamed file (rows written
  before the rename), then continues with the new file in the same generation: the run keeps both, as
  ``analyze`` over both files would.

:class:`FileIdentity` tells these apart from ``stat`` and, only when the path no longer holds the
inode being read, one listing of its directory. :func:`points_digest` fingerprints points so that a
file read whole at each change (``trainer_state.json``) can tell an extension from a new attempt.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

HEAD_BYTES = 64
"""Bytes at the start of a rotated file kept to recognise it later (an inode number can be reused)."""
TAIL_BYTES = 32
"""Bytes just before the offset reached, compared at each poll: a same-size rewrite changes them."""


class Change(enum.Enum):
    """What :meth:`FileIdentity.locate` found at the path since the last poll."""

    SAME = "same"  # the file being read (or the first look at the path)
    ROTATED = "rotated"  # the file being read was renamed in its directory: read its rest (``Located.path``)
    NEXT = "next"  # the rotated file is read to its end and a new file is at the path: it continues the log
    REPLACED = "replaced"  # the file being read is gone, another is at the path: a new attempt


@dataclass(frozen=True, slots=True)
class Located:
    path: str  # the filesystem path to read now
    st: os.stat_result
    change: Change


@dataclass
class FileIdentity:
    """The followed path and the inode being read (see the module docstring)."""

    path: str
    reading: str = ""  # where the inode being read is now: ``path``, or the name it was rotated to
    dev: int = -1
    ino: int = -1
    size: int = -1  # of the file being read when the tailer last read it (has a rotated file grown?)
    absorbed: dict[tuple[int, int], bytes] = field(default_factory=dict)  # rotated files read: (dev, ino) -> head

    def __post_init__(self) -> None:
        self.reading = self.reading or self.path

    def locate(self, drained: bool) -> Located:
        """Where to read now. ``drained``: the tailer has read all of the file it was reading (judged
        on its last size); a rotated file is left for the new one only then. Raises ``OSError`` (as
        ``os.stat``) when there is nothing to read."""
        try:
            st: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if self.ino < 0 or (st is not None and (st.st_dev, st.st_ino) == (self.dev, self.ino)):
            if st is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), self.path)
            self._adopt(self.path, st)
            return Located(self.path, st, Change.SAME)
        moved = self.moved()
        if moved is not None:
            where, mst = moved
            if st is None or not drained or mst.st_size != self.size:
                return Located(where, mst, Change.ROTATED)
            self.absorbed[(self.dev, self.ino)] = _head(where)
            self._adopt(self.path, st)
            return Located(self.path, st, Change.NEXT)
        if st is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), self.path)
        self._adopt(self.path, st)
        return Located(self.path, st, Change.REPLACED)

    def moved(self) -> tuple[str, os.stat_result] | None:
        """Where the inode being read now lives in its directory under another name, if it still does."""
        if self.ino < 0:
            return None
        if self.reading != self.path and (found := self._at(self.reading)) is not None:
            return found  # where it was found before: no directory listing
        try:
            with os.scandir(os.path.dirname(self.reading) or ".") as it:
                candidates = [e.path for e in it if e.inode() == self.ino]
        except OSError:
            return None
        for where in candidates:
            if (found := self._at(where)) is not None:
                return found
        return None

    def _at(self, where: str) -> tuple[str, os.stat_result] | None:
        try:
            st = os.stat(where)
        except OSError:
            return None
        if (st.st_dev, st.st_ino) != (self.dev, self.ino) or os.path.abspath(where) == os.path.abspath(self.path):
            return None
        self.reading = where
        return where, st

    def owns(self, path: str, st: os.stat_result) -> bool:
        """Whether ``path`` (another name) is a file this tailer reads or has read to its end after a rotation."""
        key = (st.st_dev, st.st_ino)
        if key == (self.dev, self.ino):
            return os.path.abspath(path) != os.path.abspath(self.path)
        head = self.absorbed.get(key)
        return head is not None and head == _head(path)

    def _adopt(self, path: str, st: os.stat_result) -> None:
        if (st.st_dev, st.st_ino) != (self.dev, self.ino):
            self.size = -1
        self.reading, self.dev, self.ino = path, st.st_dev, st.st_ino


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(HEAD_BYTES)
    except OSError:
        return b""


def read_at(path: str, offset: int, size: int) -> bytes:
    """``size`` bytes of ``path`` ending at ``offset`` (fewer at the start of the file); b"" on error."""
    start = max(0, offset - size)
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            return fh.read(offset - start)
    except OSError:
        return b""


def points_digest(steps: np.ndarray, values: np.ndarray) -> bytes:
    """A fingerprint of points in order (their steps and the exact bits of their values)."""
    pairs = np.empty((steps.shape[0], 2), dtype=np.uint64)
    pairs[:, 0] = steps.astype(np.int64, copy=False).view(np.uint64)
    pairs[:, 1] = values.astype(np.float64, copy=False).view(np.uint64)
    return hashlib.blake2b(pairs.tobytes(), digest_size=16).digest()
