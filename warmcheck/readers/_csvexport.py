"""Tracker CSV exports, recognised by the shape of their header (used by :mod:`.csvlog`).

* **W&B panel export** (a chart's "Export -> CSV"): a step column (``Step``, or the chart's x-axis
  such as ``trainer/global_step``) and then, for every run on the chart, ``<run> - <metric>`` with
  ``<run> - <metric>__MIN`` and ``__MAX`` beside it (the extremes of each plotted bucket; equal to
  the value when nothing was bucketed). Every other column must have that shape. The metric
  columns become the metric's series (``fancy-run-3 - train/loss`` -> ``train/loss``, so the role
  rules see the name the training logged); ``__MIN``/``__MAX`` are dropped (counted in the
  metadata). Several runs in one file: each becomes a run of its own (:func:`split_read`).
* **Long table** (``key,value,step[,timestamp]``, as MLflow's metric history and several dashboards
  export): exactly a text key column (``key``/``metric``/``name``/``tag``), ``value``, ``step``,
  optionally a wall time (``timestamp``/``wall_time``/``time``; milliseconds, as MLflow writes,
  become seconds) and optionally a run column (``run_id``/``run``/``run_name``; several runs are
  split as above). Read as one series per key, not as one ``value`` series whose steps repeat for
  every key (which looked like a restart: WC006).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..findings import Finding
from ..model import Fragment, SourceRead
from ._csvcells import convert_column, convert_steps
from ._csvparse import Table
from ._text import format_lines, parse_number
from .interface import diag

RUNS_IN_FILE = "runs_in_file"
"""Metadata key of a read holding several runs: ``{run: {tag in the file: tag in the run}}``."""

_WANDB = re.compile(r"(?P<run>.+?) - (?P<metric>.+?)(?P<agg>__MIN|__MAX)?")
_KEYS = ("key", "metric", "metric_name", "name", "tag")
_TIMES = ("timestamp", "wall_time", "walltime", "time")
_RUNS = ("run_id", "run", "run_name", "run_uuid")


@dataclass(frozen=True, slots=True)
class LongShape:
    """Column positions of a long ``key,value,step`` table."""

    key: int
    value: int
    step: int
    time: int | None
    run: int | None


def long_shape(names: Sequence[str]) -> LongShape | None:
    """The long-table columns when ``names`` are exactly key, value, step (+ wall time, + run)."""
    low = [n.strip().lower() for n in names]
    if len(set(low)) != len(low):
        return None

    def find(options: tuple[str, ...]) -> int | None:
        hits = [i for i, n in enumerate(low) if n in options]
        return hits[0] if len(hits) == 1 else None

    key, value, step = find(_KEYS), find(("value",)), find(("step",))
    time, run = find(_TIMES), find(_RUNS)
    found = [i for i in (key, value, step, time, run) if i is not None]
    if key is None or value is None or step is None or len(found) != len(low):
        return None
    return LongShape(key, value, step, time, run)


def is_text_cell(line: bytes, delimiter: str, j: int) -> bool:
    """Whether field ``j`` of the data line ``line`` is text (not empty, not a number): a long table's key."""
    cells = next(csv.reader([line.decode("utf-8", "replace")], delimiter=delimiter), [])
    if j >= len(cells) or not cells[j].strip():
        return False
    try:
        parse_number(cells[j])
    except ValueError:
        return True
    return False


def wandb_columns(names: Sequence[str], step_name: str | None) -> dict[str, tuple[str, str, str | None]] | None:
    """``{column: (run, metric, "__MIN"|"__MAX"|None)}`` when the header is a W&B panel export."""
    if step_name is None:
        return None
    out: dict[str, tuple[str, str, str | None]] = {}
    for name in names:
        if name == step_name:
            continue
        m = _WANDB.fullmatch(name)
        if m is None:
            return None
        out[name] = (m["run"], m["metric"], m["agg"])
    return out if any(agg is None for _, _, agg in out.values()) else None


def wandb_fragments(fragments: Sequence[Fragment], columns: dict[str, tuple[str, str, str | None]],
                    meta: dict[str, object]) -> list[Fragment]:
    """The metric fragments of a W&B panel export (see the module docstring); fills ``meta``."""
    runs: dict[str, dict[str, str]] = {}
    dropped = 0
    kept: list[Fragment] = []
    for f in fragments:
        run, metric, agg = columns.get(f.tag, (None, None, None))
        if run is None or metric is None:
            kept.append(f)
            continue
        if agg is not None:
            dropped += 1
            continue
        runs.setdefault(run, {})[f.tag] = metric
        kept.append(f)
    meta["export"] = "wandb-panel"
    meta["runs"] = list(runs)
    meta["aggregate_columns_dropped"] = dropped
    return _per_run(kept, runs, meta)


def _per_run(fragments: list[Fragment], runs: dict[str, dict[str, str]], meta: dict[str, object]) -> list[Fragment]:
    """One run: its fragments take their metric names. Several: the map :func:`split_read` uses."""
    if len(runs) == 1:
        (names,) = runs.values()
        return [replace(f, tag=names[f.tag]) if f.tag in names else f for f in fragments]
    if runs:
        meta[RUNS_IN_FILE] = runs
    return fragments


def long_fragments(path: str, table: Table, names: Sequence[str], shape: LongShape,
                   findings: list[Finding], meta: dict[str, object]) -> tuple[list[Fragment], int]:
    """One fragment per key (per run and key) of a long table, in file order; and the rows skipped
    for want of a key (or of a run, when other rows name theirs). Bad steps and values were already
    reported by the column pass."""
    n = table.n_rows
    cells = [table.columns[j] for j in (shape.key, shape.value, shape.step)]
    if n == 0 or any(c is None for c in cells):
        return [], 0
    key_cells, value_cells, step_cells = cells
    assert key_cells is not None and value_cells is not None and step_cells is not None
    key_code, keys = _codes(key_cells)
    steps = convert_steps(step_cells)
    values = convert_column(value_cells, True)
    valid = steps.ok & values.numeric
    run_cells = table.columns[shape.run] if shape.run is not None else None
    run_code, runs = _codes(run_cells) if run_cells is not None else (np.zeros(n, np.int64), [""])
    skipped = _skip(path, table, valid & (key_code < 0), names[shape.key], findings)
    valid &= key_code >= 0
    if run_cells is not None and runs:  # rows name their run: a row that does not is skipped
        skipped += _skip(path, table, valid & (run_code < 0), names[shape.run or 0], findings)
        valid &= run_code >= 0
    elif run_cells is not None:  # an empty run column
        run_code, runs, run_cells = np.zeros(n, np.int64), [""], None
    several = len(set(run_code[valid].tolist())) > 1
    walls = _walls(table.columns[shape.time] if shape.time is not None else None, n)
    rows = np.flatnonzero(valid)
    label_code, _ = _factorize(run_code[rows] * max(len(keys), 1) + key_code[rows])  # first appearance order
    order = np.argsort(label_code, kind="stable")  # rows of each label, in file order
    bounds = np.searchsorted(label_code[order], np.arange(int(label_code.max(initial=-1)) + 2))
    frags: list[Fragment] = []
    split: dict[str, dict[str, str]] = {}
    for u in range(len(bounds) - 1):
        picked = rows[order[bounds[u]:bounds[u + 1]]]
        key, run = keys[key_code[picked[0]]], runs[run_code[picked[0]]]
        tag = f"{run} - {key}" if several else key
        frags.append(Fragment(tag, steps.steps[picked], values.values[picked], walls[picked]))
        if several:
            split.setdefault(run, {})[tag] = key
    meta["export"] = "long"
    meta["keys"] = len(set(key_code[valid].tolist()))
    if run_cells is not None:
        meta["runs"] = [runs[i] for i in sorted(set(run_code[valid].tolist()))]
    if several:
        meta[RUNS_IN_FILE] = split
    return frags, skipped


def _skip(path: str, table: Table, rows_mask: np.ndarray, column: str, findings: list[Finding]) -> int:
    """WC014 for rows that have a step and a value but no ``column`` cell; how many."""
    skipped = int(np.count_nonzero(rows_mask))
    if skipped:
        lines = table.lines(np.flatnonzero(rows_mask)[:10])
        findings.append(diag("WC014", f"{skipped} row(s) skipped: no {column} at line(s) {format_lines(lines)}",
                             path, line=lines[0] if lines else None, tag=None, rows=skipped, lines=lines))
    return skipped


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd  # already loaded: the table was read with it

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def _codes(cells: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each cell's index in the list of distinct texts (stripped; in order of first appearance), -1 for
    an empty cell. A hash per cell, no Python call per cell (a million rows)."""
    codes, uniques = _factorize(cells)
    texts = [_text(u) for u in uniques.tolist()]
    distinct = list(dict.fromkeys(t for t in texts if t))
    index = {t: i for i, t in enumerate(distinct)}
    remap = np.array([index.get(t, -1) for t in texts] + [-1], dtype=np.int64)  # code -1 -> the last: -1
    return remap[codes], distinct


def _text(cell: object) -> str:
    if cell is None or (isinstance(cell, float) and cell != cell):
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


def _walls(cells: np.ndarray | None, n: int) -> np.ndarray:
    """Wall times in seconds since the epoch (milliseconds converted), NaN when not a clock."""
    if cells is None:
        return np.full(n, np.nan)
    col = convert_column(cells, True)
    vals = np.where(col.numeric, col.values, np.nan)
    finite = vals[np.isfinite(vals)]
    if finite.size == 0:
        return np.full(n, np.nan)
    median = float(np.median(finite))
    if 1e11 < median < 1e14:  # milliseconds (MLflow)
        return vals / 1000.0
    if 1e8 < median < 1e11:
        return vals
    return np.full(n, np.nan)


def split_read(read: SourceRead) -> list[tuple[str, SourceRead]] | None:
    """The runs of a read that holds several (``metadata[RUNS_IN_FILE]``), each as a read of its own
    with its tags renamed; ``None`` for a read of one run.

    A finding about a tag goes to the run of that tag; a finding about the file to every run.
    """
    runs = read.metadata.get(RUNS_IN_FILE)
    if not isinstance(runs, dict) or len(runs) < 2:
        return None
    owner = {tag: run for run, tags in runs.items() for tag in tags}
    meta = {k: v for k, v in read.metadata.items() if k != RUNS_IN_FILE}
    out = []
    for run, tags in runs.items():
        frags = [replace(f, tag=tags[f.tag]) for f in read.fragments if f.tag in tags]
        findings = [replace(f, tag=tags[f.tag]) if f.tag in tags else f for f in read.findings
                    if f.tag is None or owner.get(f.tag, run) == run]
        # A long table's row is one point; a wide export's row holds a point of each of its columns.
        records = sum(len(f) for f in frags) if meta.get("csv", {}).get("export") == "long" else \
            int(np.unique(np.concatenate([f.steps for f in frags])).shape[0]) if frags else 0
        info = replace(read.info, records=records)
        out.append((run, replace(read, info=info, fragments=frags, findings=findings,
                                 metadata={**meta, "tracker_run": run})))
    return out
