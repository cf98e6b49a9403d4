"""Find the runs under the paths given on the command line.

Rules (documented in the README):

* each PATH is a file or a directory; directories are searched recursively, entries in name order;
* a PATH may be a storage URL (``s3://bucket/runs/``, ``gs://``, ``memory://``; ``file://`` is a local
  path): the prefix is listed with one ``find`` call (:mod:`warmcheck.storage`) and the same rules apply to
  the tree of "directories" that listing describes; run names keep the URL as given. MLflow stores
  (file store or SQLite) cannot be read from a URL: each is one run with a WC001 finding saying so;
* a directory holding event files (``*tfevents*``) is one run, made of all its event files;
* every other recognised log file is a run of its own: ``*.csv``/``*.csv.gz``/``*.tsv`` whose
  header looks like a training log (a step column or a loss/lr-like column; always for
  ``metrics.csv``), ``*.jsonl``/``*.ndjson`` (optionally ``.gz``) and ``trainer_state.json``;
* Hugging Face checkpoints repeat the whole log history: ``checkpoint-N/trainer_state.json`` is
  skipped when the output directory has its own ``trainer_state.json``, and otherwise only the
  highest N is read;
* one training, one run: an HF output directory's ``trainer_state.json`` (or its latest
  checkpoint's) joins the event files of the TensorBoard callback's logging directories (the
  output directory itself and everything under its ``runs/``) into a run named after the output
  directory; an evaluation log (``eval.csv``, ``val_log.jsonl``...) joins the one other training
  log of its directory. The read stage may split a joined file off again when its values show it
  is another training (see :mod:`warmcheck.readers.joining`);
* directories whose name starts with ``.`` are not searched (unless given explicitly);
* symbolic links are followed, but a directory is searched once: a link back into a directory
  already searched, a link to itself and a dangling link are reported (WC005) and skipped;
* a file given explicitly is always read with the reader its name suggests;
* W&B: a run file (``run-<id>.wandb``) is a run named after its run directory (``wandb/run-<date>-<id>``,
  ``offline-run-...``); W&B's ``latest-run`` link beside the run directories is not followed;
* MLflow (:mod:`warmcheck.readers.mlflow`): a file-store run directory (``meta.yaml`` and ``metrics/``)
  is one run; an ``mlflow.db`` found in a walk, or any SQLite file given explicitly, is one run per
  MLflow run in it; ``mlflow://HOST:PORT/<experiment>`` is one run per run of the experiment on
  that tracking server (a server that cannot be read raises: exit 2).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from .. import storage
from ..errors import PathError
from ..findings import Finding
from ..model import Format
from .interface import diag
from .joining import is_eval_name

CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")  # an HF checkpoint directory (its step)
_WANDB_RUN_DIR = re.compile(r"^(offline-)?run-")  # wandb/run-<date>-<id>, wandb/offline-run-<date>-<id>
_MLFLOW_DB_NAMES = frozenset({"mlflow.db"})  # MLflow 3's default store, found in a walk (see readers/mlflow.py)

FileEntry = tuple[str, str, Format]  # (filesystem path, display path, format)


@dataclass(frozen=True, slots=True)
class Member:
    """Files joined into a run by where they lie, which the read stage checks against the run's values.

    ``kind``: ``"hf-events"`` (an event directory of an HF output directory) or ``"eval"`` (an
    evaluation log beside a training log). ``name``: the run they form when split off again.
    """

    kind: str
    name: str
    files: tuple[FileEntry, ...]
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class RunSpec:
    """A run to read: its display name and the files that make it up (``members``' files included)."""

    name: str
    path: str
    files: tuple[FileEntry, ...]
    findings: tuple[Finding, ...] = ()
    members: tuple[Member, ...] = ()


@dataclass
class Discovery:
    """Runs found, plus findings not tied to a run (links skipped outside any run directory)."""

    runs: list[RunSpec] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # each local directory listed, as given to os.scandir, and its os.stat (taken before its listing):
    # the cache of analysed runs (warmcheck.runcache) keys a run on its directory's stat without a second one
    dir_stats: dict[str, os.stat_result] = field(default_factory=dict, compare=False, repr=False)


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
    if lower.endswith(".wandb"):
        return Format.WANDB
    return None


def discover(paths: Sequence[str], is_training_csv: Callable[[str], bool] | None = None) -> Discovery:
    """Runs under ``paths``, in a deterministic order. Raises :class:`PathError` for a missing path.

    A PATH is a local path or a storage URL (:mod:`warmcheck.storage`): a URL prefix is listed with one
    ``find`` call and the same rules apply to the tree that listing describes.
    """
    out = Discovery()
    local = _LocalTree()
    for given in paths:
        if "://" in given and _mlflow_url(given):  # an MLflow tracking server: its runs are listed now
            from .mlflow import server_specs
            out.runs.extend(server_specs(given))
            continue
        if storage.is_url(given):
            _discover_url(given, out, is_training_csv)
            continue
        given = storage.local_path(given)
        shown = _display(given)
        if not os.path.lexists(given):
            raise PathError(f"{given}: no such file or directory")
        try:
            st = os.stat(given)
        except OSError as exc:
            raise PathError(f"{given}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            _walk(local, given, shown, out, is_training_csv)
        else:
            _given_file(given, shown, out)
    return out


def _given_file(given: str, shown: str, out: Discovery) -> None:
    """A file given explicitly: read with the reader its name suggests."""
    fmt = classify(given.rstrip("/").rsplit("/", 1)[-1] if storage.is_url(given) else os.path.basename(given))
    if fmt is None and storage.is_url(given) and given.lower().endswith((".db", ".sqlite", ".sqlite3")):
        out.runs.append(RunSpec(shown, shown, (), (_no_mlflow_on_url(shown, "an MLflow SQLite store"),)))
    elif fmt is None and not storage.is_url(given) and _mlflow_db(given):
        from .mlflow import db_specs  # any SQLite file given explicitly is tried as an MLflow store
        out.runs.extend(db_specs(given, shown))
    elif fmt is None:
        out.runs.append(RunSpec(shown, shown, (), (diag(
            "WC002", "not a recognised training log (expected a TensorBoard event file, .csv, "
            ".jsonl or trainer_state.json)", shown),)))
    else:
        out.runs.append(RunSpec(_run_name(shown, fmt), shown, ((given, shown, fmt),)))


def _discover_url(given: str, out: Discovery, is_training_csv: Callable[[str], bool] | None) -> None:
    kind, entries = storage.find(given)
    shown = given.rstrip("/")
    if kind == "file":
        _given_file(shown, shown, out)
    else:
        _walk(_UrlTree(shown, entries), shown, shown, out, is_training_csv)


def _no_mlflow_on_url(shown: str, what: str) -> Finding:
    return diag("WC001", f"{what} cannot be read from a URL (MLflow stores are read from local disk): "
                "copy it to local disk and analyse the copy", shown)


def _mlflow_url(given: str) -> bool:
    from ._mlflowrest import is_server_url
    return is_server_url(given)


def _mlflow_db(path: str) -> bool:
    from ._mlflowsql import is_sqlite
    return is_sqlite(path)


def _display(path: str) -> str:
    shown = os.path.normpath(path).replace(os.sep, "/")
    return shown


# -- the trees searched: a local directory (walked) and a URL prefix (listed once) ---------------------

class _Item(NamedTuple):  # a tuple, not a frozen dataclass: one per directory entry of a 100k-run tree
    """A directory entry: ``kind`` is 'dir', 'file', 'other' or the WC005 finding of a link not followed."""

    name: str
    path: str
    shown: str
    kind: str | Finding
    link: bool = False  # a symbolic link (only looked at for W&B's ``latest-run``)


class _Tree(Protocol):
    local: bool

    def entries(self, directory: str, shown: str, out: Discovery) -> list[_Item] | None:
        """The entries of ``directory`` in name order, or ``None`` (with a finding in ``out``) if it
        cannot be searched."""

    def has_file(self, directory: str, name: str) -> bool:
        """Whether ``directory`` holds a regular file ``name``."""


def _child_shown(shown: str, name: str) -> str:
    return f"{shown}/{name}" if shown != "." else name


class _LocalTree:
    """A local directory tree, walked with ``os.scandir``; a directory is searched once (symlink loops)."""

    local = True

    def __init__(self) -> None:
        self.visited: set[tuple[int, int]] = set()

    def entries(self, directory: str, shown: str, out: Discovery) -> list[_Item] | None:
        try:
            st = os.stat(directory)
        except OSError as exc:
            out.findings.append(diag("WC001", f"cannot search directory: {exc.strerror or exc}", shown))
            return None
        out.dir_stats[directory] = st
        key = (st.st_dev, st.st_ino)
        if key in self.visited:
            out.findings.append(diag("WC005", f"symlink loop: {shown} leads to a directory already "
                                     "searched; skipped", shown))
            return None
        self.visited.add(key)
        try:
            listed = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            out.findings.append(diag("WC001", f"cannot list directory: {exc.strerror or exc}", shown))
            return None
        items = []
        for e in listed:
            name = e.name
            shown_e = f"{shown}/{name}" if shown != "." else name
            items.append(_Item(name, e.path, shown_e, _entry_kind(e, shown_e),
                               name == "latest-run" and e.is_symlink()))
        return items

    def has_file(self, directory: str, name: str) -> bool:
        return os.path.isfile(os.path.join(directory, name))


class _UrlTree:
    """The tree one storage listing describes: directories are the prefixes of the objects' names."""

    local = False

    def __init__(self, root: str, entries: Sequence[storage.Entry]) -> None:
        self.children: dict[str, dict[str, str]] = {root: {}}
        for entry in entries:
            parts = entry.relative.split("/")
            directory = root
            for part in parts[:-1]:
                if not part:
                    break
                self.children[directory].setdefault(part, "dir")
                directory = f"{directory}/{part}"
                self.children.setdefault(directory, {})
            else:
                if parts[-1]:
                    self.children[directory].setdefault(parts[-1], "file")

    def entries(self, directory: str, shown: str, out: Discovery) -> list[_Item] | None:
        names = self.children.get(directory, {})
        return [_Item(name, f"{directory}/{name}", _child_shown(shown, name), kind)
                for name, kind in sorted(names.items())]

    def has_file(self, directory: str, name: str) -> bool:
        return self.children.get(directory, {}).get(name) == "file"


def _walk(tree: _Tree, root: str, shown_root: str, out: Discovery,
          is_training_csv: Callable[[str], bool] | None) -> None:
    found = Discovery()
    _search(tree, root, shown_root, found, is_training_csv)
    out.findings.extend(found.findings)
    out.dir_stats.update(found.dir_stats)
    out.runs.extend(sorted(join_runs(found.runs), key=lambda r: r.name))


def _search(tree: _Tree, root: str, shown_root: str, out: Discovery,
            is_training_csv: Callable[[str], bool] | None) -> None:
    stack = [(root, shown_root)]
    superseded_states: set[str] = set()  # HF checkpoint copies of a log history read elsewhere
    while stack:
        directory, shown = stack.pop()
        entries = tree.entries(directory, shown, out)
        if entries is None:
            continue
        events: list[FileEntry] = []
        files: list[FileEntry] = []
        problems: list[Finding] = []
        subdirs: list[tuple[str, str]] = []
        names = {e.name for e in entries}
        if "meta.yaml" in names:  # an MLflow file-store run: one run; its metrics/params/tags are not searched
            entries = _mlflow_run_dir(tree, directory, shown, entries, names, out)
        for e in entries:
            if e.name == "latest-run" and e.link:  # W&B's link to one of the run directories beside it
                continue
            if isinstance(e.kind, Finding):
                problems.append(e.kind)
                continue
            if e.kind == "dir":
                if not e.name.startswith("."):
                    subdirs.append((e.path, e.shown))
                continue
            fmt = classify(e.name)
            if fmt is Format.TFEVENTS:
                events.append((e.path, e.shown, fmt))
            elif fmt is Format.CSV and is_training_csv is not None and not is_training_csv(e.path):
                continue
            elif e.name in _MLFLOW_DB_NAMES:  # MLflow's SQLite store: one run per MLflow run in it
                if tree.local:
                    from .mlflow import db_specs
                    out.runs.extend(db_specs(e.path, e.shown))
                else:
                    out.runs.append(RunSpec(e.shown, e.shown, (), (_no_mlflow_on_url(e.shown,
                                                                                    "an MLflow SQLite store"),)))
            elif fmt is not None and e.path not in superseded_states:
                files.append((e.path, e.shown, fmt))
        superseded_states |= _superseded_checkpoints(tree, files, subdirs)
        if events:
            out.runs.append(RunSpec(shown, shown, tuple(events), tuple(problems)))
        else:
            out.findings.extend(problems)
        out.runs.extend(RunSpec(_run_name(s, f), s, ((p, s, f),)) for p, s, f in files)
        stack.extend(reversed(subdirs))


def _mlflow_run_dir(tree: _Tree, directory: str, shown: str, entries: list[_Item], names: set[str],
                    out: Discovery) -> list[_Item]:
    """An MLflow file-store run directory becomes one run; the entries left to search."""
    from ._mlflowfile import looks_like_run_dir
    from .mlflow import RUN_DATA_DIRS, file_run_spec
    dirs = {e.name for e in entries if e.kind == "dir"}
    if tree.local:
        mlflow_run = file_run_spec(directory, shown, names, dirs)
    elif looks_like_run_dir(names, dirs):
        mlflow_run = RunSpec(shown, shown, (), (_no_mlflow_on_url(f"{shown}/meta.yaml",
                                                                  "an MLflow file-store run"),))
    else:
        mlflow_run = None
    if mlflow_run is None:
        return entries
    out.runs.append(mlflow_run)
    return [e for e in entries if e.name not in RUN_DATA_DIRS and e.name != "meta.yaml"]


def _run_name(shown: str, fmt: Format) -> str:
    """A run's name: the file's path, but a W&B run file is named after its run directory."""
    if fmt is Format.WANDB and "/" in shown and _WANDB_RUN_DIR.match(shown.rsplit("/", 2)[-2]):
        return shown.rsplit("/", 1)[0]
    return shown


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


def _superseded_checkpoints(tree: _Tree, files: list[FileEntry], subdirs: list[tuple[str, str]]) -> set[str]:
    """HF checkpoints repeat the log history: keep the output dir's, or else the latest checkpoint's."""
    has_own = any(f is Format.HF_TRAINER_STATE for _, _, f in files)
    checkpoints = [(int(m.group(1)), path) for path, _ in subdirs
                   if (m := CHECKPOINT_DIR.match(_basename(path)))
                   and tree.has_file(path, "trainer_state.json")]
    if not checkpoints:
        return set()
    keep = None if has_own else max(checkpoints)[1]
    return {_join(p, "trainer_state.json") for _, p in checkpoints if p != keep}


# Paths in a URL tree are URLs: '/' separated whatever the platform (os.path would mangle them on Windows).
# ("://" in path first: these run for every file of a 100k-run tree.)
def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] if "://" in path and storage.is_url(path) else os.path.basename(path)


def _dirname(path: str) -> str:
    return storage.dirname(path) if "://" in path and storage.is_url(path) else os.path.dirname(path)


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if "://" in path and storage.is_url(path) else os.path.join(path, name)


def join_runs(runs: list[RunSpec]) -> list[RunSpec]:
    """Join the runs of one training found in a walk (HF output directories, evaluation logs)."""
    return _join_eval_logs(_join_hf_output_dirs(runs))


def _output_dir(spec: RunSpec) -> tuple[str, str] | None:
    """(directory, shown) of the HF output directory whose trainer_state.json is ``spec``'s only file."""
    if len(spec.files) != 1 or spec.members or spec.files[0][2] is not Format.HF_TRAINER_STATE:
        return None
    path, shown, _ = spec.files[0]
    directory, shown_dir = _dirname(path), _parent(shown)
    if CHECKPOINT_DIR.match(_basename(directory)):
        directory, shown_dir = _dirname(directory), _parent(shown_dir)
    return directory, shown_dir


def _parent(shown: str) -> str:
    return shown.rsplit("/", 1)[0] if "/" in shown else "."


def _join_hf_output_dirs(runs: list[RunSpec]) -> list[RunSpec]:
    """trainer_state.json + the event directories of its output dir's logging dirs: one run."""
    outputs = {d[0]: (i, d[1]) for i, r in enumerate(runs) if (d := _output_dir(r)) is not None}
    if not outputs:
        return runs
    joined: dict[int, list[RunSpec]] = {}
    taken: set[int] = set()
    for i, r in enumerate(runs):
        if not r.files or any(f is not Format.TFEVENTS for *_, f in r.files):
            continue
        owner = _logging_owner(_dirname(r.files[0][0]), outputs)
        if owner is not None:
            joined.setdefault(owner, []).append(r)
            taken.add(i)
    out = []
    for i, r in enumerate(runs):
        if i in taken:
            continue
        events = joined.get(i)
        if not events:
            out.append(r)
            continue
        members = tuple(Member("hf-events", e.name, e.files, e.findings) for e in events)
        shown = (_output_dir(r) or ("", r.name))[1]
        out.append(RunSpec(shown, shown, r.files + tuple(f for m in members for f in m.files), r.findings,
                           members))
    return out


def _logging_owner(events_dir: str, outputs: dict[str, tuple[int, str]]) -> int | None:
    """The run index of the deepest output dir D with ``events_dir`` == D or under D/runs/.

    Walks up from ``events_dir`` (the first match is the deepest): a dict look-up per ancestor, not a
    comparison with every output dir of the tree (a sweep of thousands of HF runs).
    """
    if events_dir in outputs:
        return outputs[events_dir][0]
    child, parent = events_dir, _dirname(events_dir)
    while parent != child:
        if _basename(child) == "runs" and parent in outputs:
            return outputs[parent][0]
        child, parent = parent, _dirname(parent)
    return None


def _join_eval_logs(runs: list[RunSpec]) -> list[RunSpec]:
    """An evaluation CSV/JSONL joins the one other training log of its directory."""
    by_dir: dict[str, list[int]] = {}
    for i, r in enumerate(runs):
        if r.files:
            by_dir.setdefault(_dirname(r.files[0][0]), []).append(i)
    replaced: dict[int, RunSpec] = {}
    dropped: set[int] = set()
    for directory, idx in by_dir.items():
        evals = [i for i in idx if _is_eval_log(runs[i])]
        train = [i for i in idx if i not in evals and all(_dirname(p) == directory
                                                            for p, _, _ in runs[i].files)]
        if not evals or len(train) != 1:
            continue
        base = runs[train[0]]
        members = base.members + tuple(Member("eval", runs[i].name, runs[i].files, runs[i].findings)
                                       for i in evals)
        replaced[train[0]] = RunSpec(base.name, base.path,
                                     base.files + tuple(f for i in evals for f in runs[i].files),
                                     base.findings, members)
        dropped.update(evals)
    return [replaced.get(i, r) for i, r in enumerate(runs) if i not in dropped]


def _is_eval_log(spec: RunSpec) -> bool:
    return (len(spec.files) == 1 and not spec.members and spec.files[0][2] in (Format.CSV, Format.JSONL)
            and is_eval_name(spec.files[0][1]))
