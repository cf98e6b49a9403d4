"""The sweep view: per run its configuration and what happened, and which configured values go with
instability.

:func:`profile` condenses one analysed run into a small dict (computed where the run is analysed, so
it travels with the run through worker processes, Dask and the cache of analysed runs, points or no
points). :func:`view` joins the profiles of several runs into the JSON ``sweep`` object: the rows, the
configuration keys whose values differ, and the associations: for each such key, the split of its
values that best separates the unstable runs (a loss spike, divergence or NaN) from the others, by
Fisher's exact test (seeds excepted: they group runs as replicas of one configuration), reported as counts ("4 of 5 runs with warmup_steps <= 10 were unstable; 0 of 7
with warmup_steps >= 40"). The counts are facts; only splits with p <= ``ALPHA`` are listed, the
strongest first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
    associations = []
    for key in varied:
        if "seed" in key.lower():
            continue  # seeds are replicas of a configuration, not an ordered setting: a split of them is chance
        best = _best_split(rows, key)
        if best is not None and best["p"] <= ALPHA:
            associations.append(best)
    associations.sort(key=lambda a: (a["p"], -abs(a["unstable"] / a["runs"] - a["other_unstable"] / a["other_runs"]),
                                     a["key"]))
    return {"runs": rows, "varied": varied, "associations": associations,
            "unstable": sum(bool(r["unstable"]) for r in rows), "groups": _groups(rows, varied)}


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


def _best_split(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any] | None:
    have = [r for r in rows if key in r["config"]]
    values = [r["config"][key] for r in have]
    unstable = [bool(r["unstable"]) for r in have]
    n_unstable = sum(unstable)
    if n_unstable in (0, len(have)):
        return None
    candidates: list[tuple[str, Any, list[bool], Any]] = []
    if all(_is_number(v) for v in values):
        distinct = sorted(set(values))
        for lo, hi in zip(distinct, distinct[1:]):  # noqa: B905 - one shorter by design
            low = [v <= lo for v in values]
            candidates.append(("<=", lo, low, hi))
    else:
        for v in sorted({_hashable(x) for x in values}, key=repr):
            raw = v[1] if isinstance(v, tuple) else v
            candidates.append(("==", raw, [_hashable(x) == v for x in values], None))
    best: dict[str, Any] | None = None
    for op, value, inside, other in candidates:
        a = sum(u for u, i in zip(unstable, inside, strict=True) if i)
        n = sum(inside)
        c, m = n_unstable - a, len(have) - n
        if n == 0 or m == 0:
            continue
        p = _fisher_greater(a, n, c, m) if a / n >= c / m else _fisher_greater(c, m, a, n)
        if a / n < c / m and op == "<=":  # the unstable side is the upper one: say it that way
            op, value, other, a, n, c, m = ">=", other, value, c, m, a, n
        elif a / n < c / m:
            continue  # "== v" with fewer unstable runs than the rest: its complement is not one value
        entry = {"key": key, "op": op, "value": value, "other_value": other, "unstable": a, "runs": n,
                 "other_unstable": c, "other_runs": m, "p": float(f"{p:.4g}")}
        if best is None or (p, -(a / n - c / m)) < (best["p"], -(best["unstable"] / best["runs"]
                                                                    - best["other_unstable"] / best["other_runs"])):
            best = entry
    if best is not None:
        best["text"] = association_text(best, _verb(rows))
    return best


def _verb(rows: Sequence[Mapping[str, Any]]) -> str:
    spiked = any(r["spikes"] for r in rows if r["unstable"])
    broke = any(r["diverged"] or r["nonfinite"] for r in rows if r["unstable"])
    return "spiked or diverged" if spiked and broke else ("spiked" if spiked else "diverged")


def association_text(a: Mapping[str, Any], verb: str = "spiked or diverged") -> str:
    """``4 of 5 runs with warmup_steps <= 10 spiked; 0 of 7 with warmup_steps >= 40``."""
    key, op = a["key"], a["op"]
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
