"""The sweep view: per run its configuration and what happened, and which configured values go with
instability.

:func:`profile` condenses one analysed run into a small dict (computed where the run is analysed, so
it travels with the run through worker processes, Dask and the cache of analysed runs, points or no
points). :func:`view` joins the profiles of several runs into the JSON ``sweep`` object: the rows, the
configuration keys whose values differ, and the associations: for each such key, the split of its
values that best separates the unstable runs (a loss spike, divergence or NaN) from the others, by
Fisher's exact test (seeds excepted: they group runs as replicas of one configuration), reported as
counts ("4 of 5 runs with warmup_steps <= 10 spiked; 0 of 7 with warmup_steps >= 40"); and the best
pair of such splits ("6 of 6 runs with warmup_steps <= 10 and peak_lr >= 1.3 ...") when it separates
them clearly better than one setting alone. The counts are facts; only splits with p <= ``ALPHA`` are
listed, the strongest first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .model import Role, Run

ALPHA = 0.05  # one-sided Fisher exact p-value at or below which an association is listed
_SPIKES = ("WC301",)
_DIVERGED = ("WC403",)
_NONFINITE = ("WC401", "WC402")
_MAX_CATEGORIES = 12  # a string key with more distinct values is an identifier, not a sweep dimension


def profile(run: Run, settings: Any) -> dict[str, Any]:
    """One run's row of the sweep view (see the module docstring)."""
    from .runconfig import configured, parameters

    config = parameters(run)
    cfg = configured(run, settings)
    # The canonical names first, so that runs configured by different frameworks line up.
    if cfg.warmup_steps is not None:
        config["warmup_steps"] = _int_if_whole(cfg.warmup_steps.value)
    elif cfg.warmup_ratio is not None:
        config["warmup_ratio"] = cfg.warmup_ratio.value
    if cfg.peak_lr is not None:
        config["peak_lr"] = cfg.peak_lr.value
    sched = run.schedules[0] if run.schedules else None
    codes = [f.code for f in run.findings]
    spikes = sum(c in _SPIKES for c in codes)
    diverged = any(c in _DIVERGED for c in codes)
    nonfinite = any(c in _NONFINITE for c in codes)
    loss = run.primary(Role.LOSS)
    final = None
    if loss is not None and loss.values.shape[0]:
        finite = loss.values[np.isfinite(loss.values)]
        final = float(finite[-1]) if finite.shape[0] else None
    severities = [f.severity.value for f in run.findings]
    return {
        "run": run.name,
        "config": dict(sorted(config.items())),
        "configured_warmup": None if cfg.warmup_steps is None else _int_if_whole(cfg.warmup_steps.value),
        "observed_warmup_end": None if sched is None else sched.warmup_end_step,
        "peak_lr": None if sched is None else sched.peak_lr,
        "peak_step": None if sched is None else sched.peak_step,
        "spikes": spikes,
        "diverged": diverged,
        "nonfinite": nonfinite,
        "unstable": bool(spikes or diverged or nonfinite),
        "final_loss": final,
        "findings": {s: severities.count(s) for s in ("error", "warning", "info")},
    }


def _int_if_whole(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def view(profiles: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The JSON ``sweep`` object of several runs' profiles (None for fewer than two runs)."""
    rows = [p for p in profiles if p]
    if len(rows) < 2:
        return None
    varied = _varied(rows)
    verb = _verb(rows)
    singles: list[dict[str, Any]] = []
    splits: dict[str, list[_Split]] = {}
    for key in _distinct_keys(rows, varied):
        splits[key] = _splits(rows, key)
        best = _best(rows, [(s, (s,)) for s in splits[key]])
        if best is not None:
            singles.append(best)
    singles.sort(key=_rank)
    associations = [a for a in singles if a["p"] <= ALPHA]
    # Two settings together ("short warmup AND high peak LR"), when that separates the runs clearly better
    # than either alone: among the keys that say most on their own.
    top = [a["key"] for a in singles[:_PAIR_KEYS]]
    pairs = [(a, b) for n, a in enumerate(top) for b in top[n + 1:]]
    both = _best(rows, [(_and(x, y), (x, y)) for a, b in pairs for x in splits[a] for y in splits[b]])
    if both is not None and both["p"] <= ALPHA and (not singles or both["p"] < 0.5 * singles[0]["p"]):
        associations.insert(0, both)
    for a in associations:
        a["text"] = association_text(a, verb)
    return {"runs": rows, "varied": varied, "associations": associations,
            "unstable": sum(bool(r["unstable"]) for r in rows), "groups": _groups(rows, varied)}


_PAIR_KEYS = 6  # conjunctions are searched among this many keys, the strongest alone first


@dataclass(frozen=True, slots=True)
class _Split:
    """Runs on one side of a configured value: ``member`` per row (None: the row lacks the key)."""

    key: str
    op: str  # "<=", ">=", "=="
    value: Any
    other: Any  # the nearest value on the other side ("<=" / ">="), or None
    member: tuple[bool | None, ...]


def _and(x: _Split, y: _Split) -> _Split:
    member = tuple(None if a is None or b is None else (a and b) for a, b in zip(x.member, y.member, strict=True))
    return _Split(f"{x.key} & {y.key}", "and", None, None, member)


def _distinct_keys(rows: Sequence[Mapping[str, Any]], varied: Sequence[str]) -> list[str]:
    """The varied keys a split is searched on: no seeds (replicas of a configuration, not an ordered
    setting: a split of them is chance), and one key of any that hold the same values in every run
    (``learning_rate`` beside its canonical ``peak_lr``)."""
    keys: list[str] = []
    seen: set[tuple[Any, ...]] = set()
    for key in sorted(varied, key=lambda k: (k not in _CANONICAL, _CANONICAL.index(k) if k in _CANONICAL else 0, k)):
        if "seed" in key.lower():
            continue
        column = tuple(_hashable(r["config"].get(key, _MISSING)) for r in rows)
        if column not in seen:
            seen.add(column)
            keys.append(key)
    return keys


_CANONICAL = ("warmup_steps", "warmup_ratio", "peak_lr")
_MISSING = object()


def _splits(rows: Sequence[Mapping[str, Any]], key: str) -> list[_Split]:
    values = [r["config"].get(key, _MISSING) for r in rows]
    present = [v for v in values if v is not _MISSING]
    out: list[_Split] = []
    if all(_is_number(v) for v in present):
        distinct = sorted(set(present))
        for lo, hi in zip(distinct, distinct[1:]):  # noqa: B905 - one shorter by design
            out.append(_Split(key, "<=", lo, hi, tuple(None if v is _MISSING else v <= lo for v in values)))
            out.append(_Split(key, ">=", hi, lo, tuple(None if v is _MISSING else v >= hi for v in values)))
    else:
        for h in sorted({_hashable(v) for v in present}, key=repr):
            raw = h[1] if isinstance(h, tuple) else h
            out.append(_Split(key, "==", raw, None, tuple(None if v is _MISSING else _hashable(v) == h
                                                            for v in values)))
    return out


def _best(rows: Sequence[Mapping[str, Any]], candidates: Sequence[tuple[_Split, tuple[_Split, ...]]],
          ) -> dict[str, Any] | None:
    """The candidate split whose inside is most clearly the unstable side (Fisher's exact test)."""
    best: dict[str, Any] | None = None
    for split, terms in candidates:
        a = n = c = m = 0
        for r, inside in zip(rows, split.member, strict=True):
            if inside is None:
                continue
            u = bool(r["unstable"])
            if inside:
                n, a = n + 1, a + u
            else:
                m, c = m + 1, c + u
        if n == 0 or m == 0 or a + c in (0, n + m) or a / n <= c / m:
            continue
        entry = {"key": split.key, "op": split.op, "value": split.value, "other_value": split.other,
                 "terms": [{"key": t.key, "op": t.op, "value": t.value} for t in terms],
                 "unstable": a, "runs": n, "other_unstable": c, "other_runs": m,
                 "p": float(f"{_fisher_greater(a, n, c, m):.4g}")}
        if best is None or _rank(entry) < _rank(best):
            best = entry
    return best


def _rank(a: Mapping[str, Any]) -> tuple[float, float, str]:
    return (a["p"], -(a["unstable"] / a["runs"] - a["other_unstable"] / a["other_runs"]), a["key"])


def _groups(rows: Sequence[Mapping[str, Any]], varied: Sequence[str]) -> list[dict[str, Any]]:
    """Runs grouped by their configuration: the varied values but seeds (seeds of one configuration
    are replicas of it), in first-seen order."""
    keys = [k for k in varied if "seed" not in k.lower()]
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        cfg = r["config"]
        ident = tuple(_hashable(cfg.get(k)) for k in keys)
        g = groups.setdefault(ident, {"config": {k: cfg.get(k) for k in keys}, "runs": [], "unstable": 0})
        g["runs"].append(r["run"])
        g["unstable"] += bool(r["unstable"])
    return list(groups.values())


def _varied(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    keys = sorted({k for r in rows for k in r["config"]})
    out = []
    for k in keys:
        values = [r["config"][k] for r in rows if k in r["config"]]
        distinct = {_hashable(v) for v in values}
        if len(distinct) < 2 or len(values) < 2:
            continue
        if all(isinstance(v, str) for v in values) and len(distinct) > _MAX_CATEGORIES:
            continue
        out.append(k)
    return out


def _hashable(v: Any) -> Any:
    return ("b", v) if isinstance(v, bool) else v


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _verb(rows: Sequence[Mapping[str, Any]]) -> str:
    spiked = any(r["spikes"] for r in rows if r["unstable"])
    broke = any(r["diverged"] or r["nonfinite"] for r in rows if r["unstable"])
    return "spiked or diverged" if spiked and broke else ("spiked" if spiked else "diverged")


def association_text(a: Mapping[str, Any], verb: str = "spiked or diverged") -> str:
    """``4 of 5 runs with warmup_steps <= 10 spiked; 0 of 7 with warmup_steps >= 40``."""
    key, op = a["key"], a["op"]
    if op == "and":
        cond = " and ".join(f"{t['key']} {t['op']} {_fmt(t['value'])}" for t in a["terms"])
        return (f"{a['unstable']} of {a['runs']} runs with {cond} {verb}; "
                f"{a['other_unstable']} of {a['other_runs']} others")
    if op == "==":
        rest = f"{a['other_unstable']} of {a['other_runs']} with other values"
    else:
        other_op = ">=" if op == "<=" else "<="
        rest = f"{a['other_unstable']} of {a['other_runs']} with {key} {other_op} {_fmt(a['other_value'])}"
    return f"{a['unstable']} of {a['runs']} runs with {key} {op} {_fmt(a['value'])} {verb}; {rest}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _fisher_greater(a: int, n: int, c: int, m: int) -> float:
    """One-sided Fisher exact test: P(X >= a) for the unstable count X in a group of ``n`` drawn from
    ``n + m`` runs of which ``a + c`` are unstable (hypergeometric tail)."""
    k = a + c
    total = math.comb(n + m, k)
    return min(1.0, sum(math.comb(n, x) * math.comb(m, k - x) for x in range(a, min(n, k) + 1)) / total)


__all__ = ["ALPHA", "association_text", "profile", "view"]
