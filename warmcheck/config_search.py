"""Where the configuration comes from: the bounded upward search for ``warmcheck.toml`` /
``pyproject.toml`` and the record of what was used (:class:`ConfigOrigin`).

The search starts in the current directory and walks up, but never leaves the project: it stops at
the first project root (a ``pyproject.toml``, with or without a ``[tool.warmcheck]`` table, or a
``warmcheck.toml``), and never goes above the repository root (``.git``, ``.hg``, ``.svn``, ``.jj``),
``$HOME`` or the current filesystem. Outside ``$HOME`` and outside any repository it looks in the
current directory only. So a ``warmcheck.toml`` someone left in a parent directory (``/tmp``, a
shared run tree) cannot switch off the gate of the runs below it. A configuration file owned by
another user (not the caller, not root) or writable by every user is not used either (git does not
trust a repository owned by someone else for the same reason); ``--config`` names one explicitly.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ConfigOrigin", "IgnoredConfig", "search_config", "has_table", "VCS_MARKERS"]

VCS_MARKERS = (".git", ".hg", ".svn", ".jj")  # a repository root: the search never goes above it
_MAX_LEVELS = 256  # a path deeper than this is not a real directory tree


@dataclass(frozen=True, slots=True)
class IgnoredConfig:
    """A configuration file the search saw but did not use, and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class ConfigOrigin:
    """Which configuration file the settings came from.

    ``source``: ``discovered`` (found by the search), ``--config`` (named on the command line),
    ``--isolated`` (files ignored on request) or ``none`` (the search found none).
    ``searched_to``: the last directory the search looked in, ``stopped``: why it stopped there.
    """

    path: str | None = None
    source: str = "none"
    searched_to: str | None = None
    stopped: str | None = None
    ignored: tuple[IgnoredConfig, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The JSON report's top-level ``config`` object."""
        return {"path": self.path, "source": self.source, "searched_to": self.searched_to,
                "stopped": self.stopped, "ignored": [{"path": i.path, "reason": i.reason} for i in self.ignored]}

    def describe(self) -> str:
        """One line for people (stderr)."""
        if self.source == "--isolated":
            text = "none (--isolated)"
        elif self.path is not None:
            text = f"{self.path} ({self.source})"
        else:
            text = f"none found (searched up to {self.searched_to}: {self.stopped})"
        for i in self.ignored:
            text += f"; ignored {i.path}: {i.reason}"
        return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)  # paths are data


def has_table(path: Path) -> bool:
    """Whether ``pyproject.toml`` at ``path`` has a ``[tool.warmcheck]`` table."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from None
    tool = doc.get("tool", {})
    return isinstance(tool, dict) and "warmcheck" in tool


def _device(path: Path) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def _untrusted(path: Path) -> str | None:
    """Why the file at ``path`` may not configure this process, or None if it may."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot stat: {exc.strerror or exc}"
    uid = os.getuid() if hasattr(os, "getuid") else None
    if uid is not None and st.st_uid not in (uid, 0):
        return f"owned by another user (uid {st.st_uid}); pass it with --config to use it"
    if st.st_mode & stat.S_IWOTH:
        return "writable by every user; pass it with --config to use it"
    return None


def search_config(start: Path, home: Path | None = None,
                  device: Callable[[Path], int | None] = _device) -> tuple[Path | None, ConfigOrigin]:
    """The configuration file for a run started in ``start``, and the record of the search.

    The search looks in ``start`` and its parents up to the *boundary*: the repository root (the
    nearest ``.git``, ``.hg``, ``.svn`` or ``.jj``) or ``$HOME``, whichever comes first, never onto
    another filesystem; with neither above ``start`` (a directory outside ``$HOME`` and outside any
    checkout: ``/tmp``, a shared run tree, a container's work directory) it looks in ``start`` only.
    Within that range it stops at the first project root (a ``pyproject.toml`` with or without a
    ``[tool.warmcheck]`` table, or a ``warmcheck.toml``). ``home`` defaults to ``$HOME``; ``device``
    (the filesystem of a directory) is a parameter so the boundary can be tested without a mount.
    """
    here = start.resolve()
    if home is None:
        try:
            home = Path.home().resolve()
        except (RuntimeError, KeyError):  # no $HOME and no passwd entry
            home = None
    full = (here, *here.parents)[:_MAX_LEVELS]
    dev = device(here)
    chain: list[Path] = []
    for directory in full:
        if chain and dev is not None and device(directory) != dev:
            break
        chain.append(directory)
    top, stopped = 0, "outside $HOME and any repository: the current directory only"
    for i, directory in enumerate(chain):
        vcs = next((m for m in VCS_MARKERS if (directory / m).exists()), None)
        if vcs is not None or directory == home:
            top, stopped = i, (f"repository root ({vcs})" if vcs else "$HOME")
            break
    ignored: list[IgnoredConfig] = []
    for directory in chain[:top + 1]:
        for name in ("warmcheck.toml", "pyproject.toml"):
            candidate = directory / name
            if not candidate.is_file() or (name == "pyproject.toml" and not has_table(candidate)):
                continue
            why = _untrusted(candidate)
            if why is None:
                return candidate, ConfigOrigin(str(candidate), "discovered", str(directory), "found",
                                               tuple(ignored))
            ignored.append(IgnoredConfig(str(candidate), why))
        marker = next((m for m in ("pyproject.toml", "warmcheck.toml") if (directory / m).is_file()), None)
        if marker is not None:
            top, stopped = chain.index(directory), f"project root ({marker})"
            break
    last = chain[top]
    above = next((d / "warmcheck.toml" for d in full[full.index(last) + 1:] if (d / "warmcheck.toml").is_file()),
                 None)
    if above is not None:
        ignored.append(IgnoredConfig(str(above), f"above {last}, outside the search"))
    return None, ConfigOrigin(None, "none", str(last), stopped, tuple(ignored))
