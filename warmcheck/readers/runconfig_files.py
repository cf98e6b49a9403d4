"""Configuration files found beside a run (Lightning ``hparams.yaml``, ``config.yaml``, ``args.json``...).

Read in the reader stage so analyzers never touch files; the warmup audit takes warmup, total-step
and accumulation settings from them (see :mod:`warmcheck.runconfig`).

These files are input like any log: a file larger than 1 MiB, one that is not valid YAML/JSON, a
YAML file whose aliases expand to more than :data:`MAX_NODES` nodes (an "alias bomb": 9 levels of
10 aliases are 10**9 nodes in 900 bytes) or nest deeper than :data:`MAX_DEPTH`, and a YAML alias that
refers to itself are WC022 (info: the settings in that file are not used), never an internal error.
The YAML node graph is measured before anything is built from it, in time linear in the file.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from .. import storage
from ..findings import Finding
from .interface import diag

NAMES = ("hparams.yaml", "hparams.yml", "config.yaml", "config.yml", "config.json", "args.json",
         "training_args.json", "params.yaml", "params.json", "hyperparameters.yaml")
_MAX_BYTES = 1 << 20
MAX_NODES = 250_000
"""Values a config file may hold with every YAML alias expanded (a 1 MiB file without aliases holds
at most ~500k, real configs a few thousand); the warmup audit walks the expanded document."""
MAX_DEPTH = 100
"""Nesting depth of a config file's mappings and lists (Hydra configs nest about 5-10 deep)."""


def read_config_files(directory: str, shown: str) -> tuple[dict[str, Any], list[Finding]]:
    """Parsed config files in ``directory`` (display names under ``shown``), and WC022 for bad ones."""
    found: dict[str, Any] = {}
    findings: list[Finding] = []
    for name in _present(directory):
        path = storage.join(directory, name)
        label = f"{shown}/{name}" if shown else name
        try:
            if (storage.known_stat(path) or storage.stat(path)).size > _MAX_BYTES:
                findings.append(diag("WC022", f"{name} is larger than 1 MiB; not read", label))
                continue
            text = _read_text(path)
            doc = _json(text) if name.endswith(".json") else _yaml(text)
        except _Refused as exc:
            findings.append(diag("WC022", f"{name} not read: {exc}; its settings were not used", label,
                                 error="limit"))
            continue
        except (OSError, ValueError, RecursionError) as exc:
            reason = "nesting too deep" if isinstance(exc, RecursionError) else \
                (str(exc).splitlines()[0] if str(exc) else "")
            findings.append(diag("WC022", f"{name} could not be parsed ({type(exc).__name__}: {reason}); its "
                                 "settings were not used", label, error=type(exc).__name__))
            continue
        if isinstance(doc, dict):
            found[label] = doc
    return found, findings


def _present(directory: str) -> list[str]:
    """The :data:`NAMES` that are regular files in ``directory`` (``storage.exists``).

    A plain local directory (most runs have none of these files) is asked with one ``os.stat`` per name,
    as ``os.path.isfile`` asks, without the URL checks around each."""
    if storage.is_url(directory) or storage.local_path(directory) != directory:
        return [name for name in NAMES if storage.exists(storage.join(directory, name))]
    out = []
    posix = os.sep == "/"
    prefix = directory if not directory or directory.endswith("/") else directory + "/"  # posixpath.join's
    for name in NAMES:
        try:
            mode = os.stat(prefix + name if posix else os.path.join(directory, name)).st_mode
        except (OSError, ValueError):  # what os.path.isfile reads as "no"
            continue
        if stat.S_ISREG(mode):
            out.append(name)
    return out


class _Refused(ValueError):
    """A config file beyond the bounds on its size, nesting or alias expansion."""


def _json(text: str) -> Any:
    doc = json.loads(text)
    depth, stack = 0, [(doc, 1)]
    while stack:  # JSON has no aliases: only the depth needs a bound (the size is the file's)
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            depth = max(depth, level)
            if depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep")
            stack.extend((v, level + 1) for v in (value.values() if isinstance(value, dict) else value))
    return doc


def _yaml(text: str) -> Any:
    import yaml  # lazy: only runs with a YAML file beside them pay for the import

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None
    finally:
        loader.dispose()


def _check_nodes(root: Any) -> None:
    """Raise :class:`_Refused` when the node graph, aliases expanded, exceeds :data:`MAX_NODES` or
    :data:`MAX_DEPTH`, or when an alias refers to a node that contains it.

    One iterative pass over the distinct nodes (aliases share their anchor's node object): each
    node's expanded size and depth are computed once from its children's.
    """
    from yaml.nodes import MappingNode, SequenceNode

    def children(node: Any) -> list[Any]:
        if isinstance(node, MappingNode):
            return [n for pair in node.value for n in pair]
        return list(node.value) if isinstance(node, SequenceNode) else []

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            kids = children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            continue
        if key in size:
            continue
        if key in depth:  # entered and not finished: the node is its own ancestor
            mark = node.start_mark
            raise _Refused(f"an alias refers to a node that contains it (line {mark.line + 1}): "
                             "self-referential alias")
        depth[key] = -1  # entered
        stack.append((node, True))
        stack.extend((k, False) for k in children(node))
    if depth[id(root)] > MAX_DEPTH:
        raise _Refused(f"nested more than {MAX_DEPTH} levels deep")
    if size[id(root)] > MAX_NODES:
        raise _Refused(f"its aliases expand to {size[id(root)]:,} values, more than {MAX_NODES:,} "
                         "(an alias bomb?)")


def _read_text(path: str) -> str:
    if not storage.is_url(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    from ..cache import object_bytes  # an unchanged object's bytes are kept (warmcheck.cache)

    data = object_bytes(path, lambda: storage.read_bytes(path, _MAX_BYTES + 1)).decode("utf-8", errors="replace")
    return data.replace("\r\n", "\n").replace("\r", "\n")  # as open() in text mode reads it
