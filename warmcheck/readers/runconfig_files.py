"""Configuration files found beside a run (Lightning ``hparams.yaml``, ``config.yaml``, ``args.json``...).

Read in the reader stage so analyzers never touch files; the warmup audit takes warmup, total-step
and accumulation settings from them (see :mod:`warmcheck.runconfig`).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..findings import Finding
from .interface import diag

NAMES = ("hparams.yaml", "hparams.yml", "config.yaml", "config.yml", "config.json", "args.json",
         "training_args.json", "params.yaml", "params.json", "hyperparameters.yaml")
_MAX_BYTES = 1 << 20


def read_config_files(directory: str, shown: str) -> tuple[dict[str, Any], list[Finding]]:
    """Parsed config files in ``directory`` (display names under ``shown``), and WC022 for bad ones."""
    found: dict[str, Any] = {}
    findings: list[Finding] = []
    for name in NAMES:
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        label = f"{shown}/{name}" if shown else name
        try:
            if os.path.getsize(path) > _MAX_BYTES:
                findings.append(diag("WC022", f"{name} is larger than 1 MiB; not read", label))
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            doc = json.loads(text) if name.endswith(".json") else _yaml(text)
        except (OSError, ValueError) as exc:
            findings.append(diag("WC022", f"{name} could not be parsed ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}); its settings were not used",
                                 label))
            continue
        if isinstance(doc, dict):
            found[label] = doc
    return found, findings


def _yaml(text: str) -> Any:
    import yaml  # lazy: only runs with a YAML file beside them pay for the import

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None
