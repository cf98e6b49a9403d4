"""Find the runs under the paths given on the command line.

Rules (documented in the README):

* each PATH is a file or a directory; directories are searched recursively, entries in name order;
* a directory holding event files (``*tfevents*``) is one run, made of all its event files;
* every other recognised log file is a run of its own: ``*.csv``/``*.csv.gz``/``*.tsv`` whose
  header looks like a training log (a step column or a loss/lr-like column; always for
  ``metrics.csv``), ``*.jsonl``/``*.ndjson`` (optionally ``.gz``) and ``trainer_state.json``;
* Hugging Face checkpoints repeat the whole log history: ``checkpoint-N/trainer_state.json`` is
  skipped when the output directory has its own ``trainer_state.json``, and otherwise only the
  highest N is read;
* directories whose name starts with ``.`` are not searched (unless given explicitly);
* symbolic links are followed, but a directory is searched once: a link back into a directory
  already searched, a link to itself and a dangling link are reported (WC005) and skipped;
* a file given explicitly is always read with the reader its name suggests.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import PathError
from ..findings import Finding
from ..model import Format
from .interface import diag

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True, slots=True)
class RunSpec:
    """A run to read: its display name and the files that make it up."""

    name: str
    path: str
    files: tuple[tuple[str, str, Format], ...]  # (filesystem path, display path, format)
    findings: tuple[Finding, ...] = ()


@dataclass
class Discovery:
    """Runs found, plus findings not tied to a run (links skipped outside any run directory)."""

    runs: list[RunSpec] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def classify(name: str) -> Format | None:
    """The format a file name suggests, or ``None``."""
    lower = name.lower()
    if "tfevents" in lower:
        return Format.TFEVENTS
    if lower == "trainer_state.json":
        return Format.HF_TRAINER_STATE
    if lower.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")):
        return Format.JSONL
    if lower.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        return Format.CSV
    return None


def discover(paths: Sequence[str], is_training_csv: Callable[[str], bool] | None = None) -> Discovery:
    """Runs under ``paths``, in a deterministic order. Raises :class:`PathError` for a missing path."""
    out = Discovery()
    visited: set[tuple[int, int]] = set()
    for given in paths:
        shown = _display(given)
        if not os.path.lexists(given):
            raise PathError(f"{given}: no such file or directory")
        try:
            st = os.stat(given)
        except OSError as exc:
            raise PathError(f"{given}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            _walk(given, shown, out, visited, is_training_csv)
        else:
            fmt = classify(os.path.basename(given))
            if fmt is None:
                out.runs.append(RunSpec(shown, shown, (), (diag(
                    "WC002", "not a recognised training log (expected a TensorBoard event file, .csv, "
                    ".jsonl or trainer_state.json)", shown),)))
            else:
                out.runs.append(RunSpec(shown, shown, ((given, shown, fmt),)))
    return out


def _display(path: str) -> str:
    shown = os.path.normpath(path).replace(os.sep, "/")
    return shown


def _walk(root: str, shown_root: str, out: Discovery, visited: set[tuple[int, int]],
          is_training_csv: Callable[[str], bool] | None) -> None:
    stack = [(root, shown_root)]
    superseded_states: set[str] = set()  # HF checkpoint copies of a log history read elsewhere
    while stack:
        directory, shown = stack.pop()
        try:
            st = os.stat(directory)
        except OSError as exc:
            out.findings.append(diag("WC001", f"cannot search directory: {exc.strerror or exc}", shown))
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            out.findings.append(diag("WC005", f"symlink loop: {shown} leads to a directory already "
                                     "searched; skipped", shown))
            continue
        visited.add(key)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            out.findings.append(diag("WC001", f"cannot list directory: {exc.strerror or exc}", shown))
            continue
        events: list[tuple[str, str, Format]] = []
        files: list[tuple[str, str, Format]] = []
        problems: list[Finding] = []
        subdirs: list[tuple[str, str]] = []
        for e in entries:
            shown_e = f"{shown}/{e.name}" if shown != "." else e.name
            kind = _entry_kind(e, shown_e)
            if isinstance(kind, Finding):
                problems.append(kind)
                continue
            if kind == "dir":
                if not e.name.startswith("."):
                    subdirs.append((e.path, shown_e))
                continue
            fmt = classify(e.name)
            if fmt is Format.TFEVENTS:
                events.append((e.path, shown_e, fmt))
            elif fmt is Format.CSV and is_training_csv is not None and not is_training_csv(e.path):
                continue
            elif fmt is not None and e.path not in superseded_states:
                files.append((e.path, shown_e, fmt))
        superseded_states |= _superseded_checkpoints(files, subdirs)
        if events:
            out.runs.append(RunSpec(shown, shown, tuple(events), tuple(problems)))
        else:
            out.findings.extend(problems)
        out.runs.extend(RunSpec(s, s, ((p, s, f),)) for p, s, f in files)
        stack.extend(reversed(subdirs))
    out.runs.sort(key=lambda r: r.name)


def _entry_kind(e: os.DirEntry[str], shown: str) -> str | Finding:
    """'dir', 'file', 'other', or a WC005 finding for a link that cannot be followed."""
    try:
        if e.is_dir():  # follows symlinks
            return "dir"
        if e.is_file():
            return "file"
    except OSError:
        pass
    if not e.is_symlink():
        return "other"
    try:
        target = os.readlink(e.path)
    except OSError:
        target = "?"
    try:
        os.stat(e.path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return diag("WC005", f"cannot resolve {shown}: too many levels of symbolic links "
                        "(symlink loop); skipped", shown, target=target)
        return diag("WC005", f"dangling symlink {shown} -> {target}: skipped", shown, target=target)
    return "other"


def _superseded_checkpoints(files: list[tuple[str, str, Format]], subdirs: list[tuple[str, str]]) -> set[str]:
    """HF checkpoints repeat the log history: keep the output dir's, or else the latest checkpoint's."""
    has_own = any(f is Format.HF_TRAINER_STATE for _, _, f in files)
    checkpoints = [(int(m.group(1)), path) for path, _ in subdirs
                   if (m := _CHECKPOINT.match(os.path.basename(path)))
                   and os.path.isfile(os.path.join(path, "trainer_state.json"))]
    if not checkpoints:
        return set()
    keep = None if has_own else max(checkpoints)[1]
    return {os.path.join(p, "trainer_state.json") for _, p in checkpoints if p != keep}
