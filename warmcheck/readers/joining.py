"""Files that belong to one training run: an HF output directory, an evaluation log beside a training log.

Discovery groups files by where they lie (:mod:`warmcheck.readers.discovery`); the rules here
decide, from the values read, whether a grouped file really belongs to the run, and rename the
series of the joined files so that they merge with the run's own (documented in the README,
"What it reads"):

* **HF output directory.** ``trainer_state.json`` and the TensorBoard callback's event files log
  the same ``Trainer.log`` calls at the same global steps; the callback renames ``loss`` to
  ``train/loss`` and ``eval_loss`` to ``eval/loss`` (``rewrite_logs``), and stores float32. The
  trainer_state's tags take the callback's names, so each series is merged by step. An event
  directory stays with the trainer_state unless its values show a different training (at the
  first step both logged, or at most of the steps both logged, a value differs beyond float32
  rounding); a resumed training agrees on the steps before its checkpoint, so it joins.
* **Evaluation log.** A CSV or JSONL log whose name has ``eval``, ``evaluation``, ``val``,
  ``valid``, ``validation`` or ``test`` as a component (``eval.csv``, ``val_metrics.jsonl``), lying
  in the same directory as exactly one other training log, is that log's evaluation: its series
  are named ``<file stem>/<column>`` (``eval/val/loss``), so they never take a training role, and
  their losses take the ``eval_loss`` role. It joins only when its steps fall inside the training
  log's (from its first step to one logging interval past its last) and, with three or more
  evaluations, span at least half of the training log's steps; otherwise it is read on its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np

from ..model import Format, Fragment, SourceRead

_EVAL_NAME = re.compile(r"(^|[_.])(eval|evaluation|val|valid|validation|test)([_.]|$)")
_LOG_SUFFIXES = (".csv.gz", ".tsv.gz", ".jsonl.gz", ".ndjson.gz", ".csv", ".tsv", ".jsonl", ".ndjson")
HF_PREFIXES = ("train/", "eval/", "test/")


def file_stem(name: str) -> str:
    """``eval.csv.gz`` -> ``eval``: the name without its log suffixes."""
    lower = name.lower()
    for suffix in _LOG_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_eval_name(name: str) -> bool:
    """Whether a log file's name marks it as an evaluation log (``eval.csv``, ``val_log.jsonl``)."""
    stem = re.sub(r"[-\s]+", "_", file_stem(os.path.basename(name)).lower())
    return _EVAL_NAME.search(stem) is not None


def is_eval_source(read: SourceRead) -> bool:
    """An evaluation log: a CSV/JSONL source with an evaluation name (event files never are)."""
    return read.info.format in (Format.CSV, Format.JSONL) and is_eval_name(read.info.path)


def hf_tb_tag(key: str) -> str:
    """The tag HF's TensorBoard callback writes for a ``log_history`` key (``rewrite_logs``)."""
    if key.startswith("eval_"):
        return "eval/" + key[5:]
    if key.startswith("test_"):
        return "test/" + key[5:]
    return "train/" + key


def uses_hf_tb_names(reads: Sequence[SourceRead]) -> bool:
    """Whether event files among ``reads`` carry the HF TensorBoard callback's ``train/`` names."""
    return any(f.tag.startswith(HF_PREFIXES) for r in reads if r.info.format is Format.TFEVENTS
               for f in r.fragments)


def renamed(frag: Fragment, tag: str) -> Fragment:
    """``frag`` under another tag."""
    return Fragment(tag, frag.steps, frag.values, frag.wall_times)


def same_values(a: np.ndarray, b: np.ndarray, float32: bool) -> np.ndarray:
    """Element-wise equality, NaN equal to NaN; at float32 precision when one side was stored as float32."""
    if float32:
        with np.errstate(over="ignore", invalid="ignore"):
            a, b = a.astype(np.float32), b.astype(np.float32)
    return np.asarray((a == b) | (np.isnan(a) & np.isnan(b)))


def training_difference(state: Sequence[SourceRead], events: Sequence[SourceRead]) -> str | None:
    """Why ``events`` are not the training ``state`` (a trainer_state.json) logged, or ``None``.

    Compared at the steps both logged, tag by tag under the callback's names. Different when a
    value differs at the first common step or at more than half of the common points.
    """
    ours = {hf_tb_tag(f.tag): f for r in state for f in r.fragments if len(f)}
    compared: list[tuple[int, str, float, float, bool]] = []  # (first common step, tag, ev, state, equal)
    common = differ = 0
    for r in events:
        for f in r.fragments:
            g = ours.get(f.tag)
            if g is None or not len(f):
                continue
            steps, ka, kb = np.intersect1d(f.steps, g.steps, return_indices=True)
            if not steps.shape[0]:
                continue
            eq = same_values(f.values[ka], g.values[kb], float32=True)
            common += int(steps.shape[0])
            differ += int(np.count_nonzero(~eq))
            compared.append((int(steps[0]), f.tag, float(f.values[ka[0]]), float(g.values[kb[0]]), bool(eq[0])))
    if not common:
        return None  # nothing to compare: a resume after the checkpoint, or no data yet
    first = min(c[0] for c in compared)
    for step, tag, ev, st, equal in sorted(compared):
        if step == first and not equal:
            return (f"at step {step}, the first step both logged, {tag} is {ev:.6g} in the event files and "
                    f"{st:.6g} in trainer_state.json")
    if differ * 2 > common:
        return f"{differ} of the {common} values both logged differ"
    return None


def eval_misfit(train: Sequence[SourceRead], evals: Sequence[SourceRead]) -> str | None:
    """Why an evaluation log's steps do not fit the training log's, or ``None`` when they do."""
    t = _steps(train)
    e = _steps(evals)
    if not e.shape[0] or not t.shape[0]:
        return None
    interval = int(np.median(np.diff(t))) if t.shape[0] > 1 else 1
    lo, hi = int(t[0]), int(t[-1]) + max(interval, 1)
    if int(e[0]) < lo or int(e[-1]) > hi:
        return (f"its steps {int(e[0])}..{int(e[-1])} are not inside the training log's "
                f"{int(t[0])}..{int(t[-1])}")
    if e.shape[0] >= 3 and t[-1] > t[0] and (e[-1] - e[0]) * 2 < (t[-1] - t[0]):
        return (f"its {e.shape[0]} steps span only {int(e[0])}..{int(e[-1])} of the training log's "
                f"{int(t[0])}..{int(t[-1])} (epochs, not steps?)")
    return None


def _steps(reads: Sequence[SourceRead]) -> np.ndarray:
    parts = [f.steps for r in reads for f in r.fragments if len(f)]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)
