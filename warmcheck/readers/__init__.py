"""Readers: discover runs, read each file into fragments, assemble runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from .. import storage
from ..findings import Finding
from ..model import Format, Role, Run, SourceInfo, SourceRead
from .assemble import assemble_run
from .discovery import Discovery, Member, RunSpec, classify, discover
from .interface import ReadFunction, diag
from .joining import eval_misfit, training_difference
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
    if fmt is Format.WANDB:
        from .wandb import read_wandb
        return read_wandb
    if fmt is Format.MLFLOW:
        from .mlflow import read_mlflow
        return read_mlflow
    from .jsonl import read_jsonl
    return read_jsonl


def read_spec(spec: RunSpec, overrides: Mapping[Role, Sequence[str]] | None = None) -> Run:
    """Read every file of a discovered run and assemble it (the joined run; see :func:`read_runs`)."""
    return read_runs(spec, overrides)[0]


def read_runs(spec: RunSpec, overrides: Mapping[Role, Sequence[str]] | None = None) -> list[Run]:
    """Read a discovered run: the run itself, then any joined member its values show to be another run."""
    reads = {shown: _read(path, shown, fmt) for path, shown, fmt in spec.files}
    if len(spec.files) == 1 and not spec.members and spec.files[0][2] is Format.CSV:  # an export of several runs
        from ._csvexport import split_read
        parts = split_read(reads[spec.files[0][1]])
        if parts is not None:
            return [_assembled(f"{spec.name}:{run}", spec.path, spec.files, [read], spec.findings, overrides)
                    for run, read in parts]
    split: list[tuple[Member, Finding]] = []
    in_member = {shown for m in spec.members for _, shown, _ in m.files}
    core = [reads[shown] for _, shown, _ in spec.files if shown not in in_member]
    for m in spec.members:
        mine = [reads[shown] for _, shown, _ in m.files]
        why = training_difference(core, mine) if m.kind == "hf-events" else eval_misfit(core, mine)
        if why is not None:
            split.append((m, _separate(m, spec.name, why)))
    apart = {shown for m, _ in split for _, shown, _ in m.files}
    kept = [f for f in spec.files if f[1] not in apart]
    split_ids = {id(m) for m, _ in split}
    run = _assembled(spec.name, spec.path, kept, [reads[s] for _, s, _ in kept],
                     spec.findings + tuple(f for m in spec.members if id(m) not in split_ids
                                           for f in m.findings), overrides)
    others = [_assembled(m.name, m.name, m.files, [reads[s] for _, s, _ in m.files], m.findings + (note,),
                         overrides) for m, note in split]
    return [run, *others]


def _read(path: str, shown: str, fmt: Format) -> SourceRead:
    from ..cache import active  # a cache of reads, when the CLI turned it on (see warmcheck.cache)

    cache = active()
    try:
        read = reader_for(fmt)(path) if cache is None else cache.read(path, fmt, reader_for(fmt))
    except storage.StorageError:
        raise  # the endpoint, not this file: the invocation ends (exit 2)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one file, not the run or the invocation
        read = SourceRead(SourceInfo(path, fmt), findings=[diag(
            "WC021", f"internal error while reading {shown}: {type(exc).__name__}: {exc}", path,
            exception=type(exc).__name__)])
    # Readers name files by the path they were given; reports use the path as the user gave it.
    return _renamed(read, path, shown)


def _separate(m: Member, run: str, why: str) -> Finding:
    if m.kind == "hf-events":
        text = (f"{m.name} was not joined with {run}'s trainer_state.json: {why}; another training "
                "logged into the same output directory, reported as a run of its own")
    else:
        text = f"{m.name} was not joined with {run} as its evaluation log: {why}; read as a run of its own"
    return diag("WC023", text, m.name, joined_with=run, reason=why)


def _assembled(name: str, path: str, files: Sequence[tuple[str, str, Format]], reads: list[SourceRead],
               findings: tuple[Finding, ...], overrides: Mapping[Role, Sequence[str]] | None) -> Run:
    run = assemble_run(name, path, reads, overrides, consume=True)  # read_runs reads each file for one run
    extra = list(findings)
    if files:
        configs, problems = read_config_files(storage.dirname(files[0][0]), storage.dirname(files[0][1]))
        extra.extend(problems)
        if configs:
            run = replace(run, metadata={**run.metadata, "config_files": configs})
    if extra:
        run = replace(run, findings=tuple(replace(f, run=name) for f in extra) + run.findings)
    return run


def _renamed(read: SourceRead, path: str, shown: str) -> SourceRead:
    if path == shown:
        return read
    findings = [replace(f, source=shown) if f.source == path else f for f in read.findings]
    return replace(read, info=replace(read.info, path=shown), findings=findings)


def is_training_csv(path: str) -> bool:
    """Whether a CSV found in a directory walk looks like a training log (cheap header sniff)."""
    from ..cache import training_csv  # a yes for an unchanged object is remembered (warmcheck.cache)
    from .csvlog import looks_like_training_csv
    return training_csv(path, looks_like_training_csv)


__all__ = ["Discovery", "Member", "RunSpec", "classify", "discover", "read_spec", "read_runs", "reader_for",
           "is_training_csv"]
