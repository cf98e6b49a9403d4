"""What ``warmcheck watch --exec`` has already alerted on, remembered across a restart.

A watch killed without a clean shutdown (``kill -9``, the OOM killer, a node lost) and started again
reads its runs from the start and finds the same findings again; ``--exec`` (an alert, a ``scancel``)
must not run a second time for a finding it already ran for. :class:`AlertLog` keeps the keys of the
findings ``--exec`` was started for in a small JSON file:

- **Where.** Only with ``--exec`` (nothing is written otherwise): ``$XDG_STATE_HOME/warmcheck/watch/``
  (default ``~/.local/state/warmcheck/watch/``), one file per watch, named by a hash of the watched
  paths (resolved) and the command, so two watches of other trees or with other commands do not
  share state; or the file the caller names.
- **When.** A key is written after the command has *started* and before waiting for it: a kill while
  the command runs does not start it again, a kill before it started does (at least once, never twice
  once its start is recorded; a kill in the few milliseconds between the start and the state file's
  write, an fsync, starts it again).
- **Safety.** The file is written atomically (a temporary file in the same directory, fsync, rename),
  mode 0600 in a 0700 directory. It is read with ``O_NOFOLLOW``, only if it is a regular file of this
  user of at most :data:`MAX_STATE_BYTES`, and only as this module's JSON (a marker, a version, a list
  of strings). Anything else (corrupt, foreign, a link, too big) is ignored with one warning on
  stderr; a file of this user holding something else is not overwritten unless it lies in the default
  directory (which is warmcheck's), so a mistaken path never destroys a file. A state that cannot be
  written only costs the memory across restarts: the watch itself goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Sequence

from ..findings import Finding

MARKER = "warmcheck-watch-alerts"
VERSION = 1
MAX_STATE_BYTES = 1 << 20
MAX_KEYS = 5000  # the oldest are forgotten beyond this
MAX_KEY_CHARS = 2000


def default_state_path(paths: Sequence[str], exec_cmd: str) -> str:
    """The state file of a watch of ``paths`` running ``exec_cmd`` (see the module docstring)."""
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is invalid and ignored
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    ident = json.dumps({"paths": sorted(os.path.realpath(p) for p in paths), "exec": exec_cmd}, sort_keys=True)
    name = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return os.path.join(base, "warmcheck", "watch", f"{name}.json")


def alert_key(f: Finding) -> str:
    """What identifies a finding alerted on: its run, code, file, tag, step and line."""
    return json.dumps([f.run, f.code, f.source, f.tag, f.step, f.line], ensure_ascii=True)[:MAX_KEY_CHARS]


class AlertLog:
    """The keys of findings ``--exec`` was started for (see the module docstring)."""

    def __init__(self, path: str, owned: bool = False) -> None:
        self.path = path
        self.owned = owned  # in warmcheck's own state directory: a bad file there may be replaced
        self.keys: dict[str, None] = {}  # ordered: the oldest first
        self.writable = True
        self._warned = False
        self._load()

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def add(self, key: str) -> None:
        """Remember ``key`` and write the file (atomically)."""
        self.keys[key] = None
        while len(self.keys) > MAX_KEYS:
            del self.keys[next(iter(self.keys))]
        if self.writable:
            self._write()

    def _load(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return
        except OSError as exc:  # a symbolic link (ELOOP), no permission, a directory...
            self._refuse(f"cannot be read ({exc.strerror or exc})", keep=True)
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
                self._refuse("is not a regular file of this user", keep=True)
                return
            if st.st_size > MAX_STATE_BYTES:
                self._refuse(f"is larger than {MAX_STATE_BYTES} bytes", keep=not self.owned)
                return
            data = os.read(fd, MAX_STATE_BYTES + 1)
        except OSError as exc:
            self._refuse(f"cannot be read ({exc.strerror or exc})", keep=True)
            return
        finally:
            os.close(fd)
        keys = _parse(data)
        if keys is None:
            self._refuse("is not a warmcheck watch state", keep=not self.owned)
            return
        self.keys = dict.fromkeys(keys[-MAX_KEYS:])

    def _refuse(self, why: str, keep: bool) -> None:
        """Ignore the file; ``keep``: never write over it either."""
        self.writable = not keep
        what = "not used" if keep else "replaced"
        self._warn(f"state file {self.path} {why}: {what}; alerts already sent before a restart may be sent again")

    def _warn(self, text: str) -> None:
        if not self._warned:
            self._warned = True
            sys.stderr.write(f"warmcheck: {text}\n")
            sys.stderr.flush()

    def _write(self) -> None:
        directory = os.path.dirname(self.path) or "."
        text = json.dumps({MARKER: VERSION, "alerted": list(self.keys)}, ensure_ascii=True)
        tmp = None
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".alerts-", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            tmp = None
        except OSError as exc:
            self.writable = False
            self._warn(f"cannot write the state file {self.path} ({exc.strerror or exc}); "
                       "alerts sent will be sent again after a restart")
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def _parse(data: bytes) -> list[str] | None:
    """The keys of a state file's bytes, or ``None`` if they are not this module's JSON."""
    try:
        obj = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or obj.get(MARKER) != VERSION:
        return None
    keys = obj.get("alerted")
    if not isinstance(keys, list) or not all(isinstance(k, str) and len(k) <= MAX_KEY_CHARS for k in keys):
        return None
    return keys
