"""Readers: discover runs, read each file into fragments, assemble runs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ..model import Format, Role, Run, SourceInfo, SourceRead
from .assemble import assemble_run
from .discovery import Discovery, RunSpec, classify, discover
from .interface import ReadFunction, diag
from .runconfig_files import read_config_files


def reader_for(fmt: Format) -> ReadFunction:
    """The read function for ``fmt`` (imported lazily: pandas is only loaded for CSV)."""
    if fmt is Format.TFEVENTS:
        from .tensorboard import read_event_file
        return read_event_file
    if fmt is Format.CSV:
        from .csvlog import read_csv
        return read_csv
    if fmt is Format.HF_TRAINER_STATE:
        from .hf import read_trainer_state
        return read_trainer_state
    from .jsonl import read_jsonl
    return read_jsonl


def read_spec(spec: RunSpec, overrides: Mapping[Role, Sequence[str]] | None = None) -> Run:
    """Read every file of a discovered run and assemble it."""
    reads: list[SourceRead] = []
    for path, shown, fmt in spec.files:
        try:
            read = reader_for(fmt)(path)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one file, not the run or the invocation
            read = SourceRead(SourceInfo(path, fmt), findings=[diag(
                "WC021", f"internal error while reading {shown}: {type(exc).__name__}: {exc}", path,
                exception=type(exc).__name__)])
        # Readers name files by the path they were given; reports use the path as the user gave it.
        reads.append(_renamed(read, path, shown))
    run = assemble_run(spec.name, spec.path, reads, overrides)
    from dataclasses import replace

    extra = list(spec.findings)
    if spec.files:
        directory = os.path.dirname(spec.files[0][0])
        shown = os.path.dirname(spec.files[0][1])
        configs, problems = read_config_files(directory, shown)
        extra.extend(problems)
        if configs:
            run = replace(run, metadata={**run.metadata, "config_files": configs})
    if extra:
        run = replace(run, findings=tuple(replace(f, run=spec.name) for f in extra) + run.findings)
    return run


def _renamed(read: SourceRead, path: str, shown: str) -> SourceRead:
    if path == shown:
        return read
    from dataclasses import replace
    findings = [replace(f, source=shown) if f.source == path else f for f in read.findings]
    return replace(read, info=replace(read.info, path=shown), findings=findings)


def is_training_csv(path: str) -> bool:
    """Whether a CSV found in a directory walk looks like a training log (cheap header sniff)."""
    from .csvlog import looks_like_training_csv
    return looks_like_training_csv(path)


__all__ = ["Discovery", "RunSpec", "classify", "discover", "read_spec", "reader_for", "is_training_csv"]
