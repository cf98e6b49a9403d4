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
them clearly better than one setting alone. The counts are facts. Because the best of many splits
looks significant in random data, each is listed only when its p-value, adjusted for every split
tried (the share of 199 seeded shuffles of the instability labels in which some split separates the
runs at least as well: Westfall and Young's maxT; Bonferroni when splits x runs exceed two million),
is at most ``ALPHA``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .model import Role, Run, last_finite

ALPHA = 0.05  # one-sided Fisher exact p-value at or below which an association is listed
_SPIKES = ("WC301",)
_DIVERGED = ("WC403",)
_NONFINITE = ("WC401", "WC402")
UNSTABLE = _SPIKES + _DIVERGED + _NONFINITE  # a run with one of these spiked, diverged or went NaN/Inf


def is_unstable(run: Run) -> bool:
    """Whether ``run`` spiked (WC301), diverged (WC403) or went NaN/Inf (WC401, WC402)."""
    return any(f.code in UNSTABLE for f in run.findings)
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
        at = last_finite(loss.values)  # no copy of the finite values to read the last one
        final = float(loss.values[at]) if at is not None else None
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
    unstable = np.array([bool(r["unstable"]) for r in rows])
    fisher = _Fisher(len(rows))
    singles: list[dict[str, Any]] = []
    splits: dict[str, list[_Split]] = {}
    for key in _distinct_keys(rows, varied):
        splits[key] = _splits(rows, key)
        best = _best(unstable, fisher, ((s, (s,)) for s in splits[key]))
        if best is not None:
            singles.append(best)
    singles.sort(key=_rank)
    # Two settings together ("short warmup AND high peak LR"): among the keys that say most on their own.
    top = [a["key"] for a in singles[:_PAIR_KEYS]]
    pairs = [_and(x, y) for n, a in enumerate(top) for b in top[n + 1:] for x in splits[a] for y in splits[b]]
    both = _best(unstable, fisher, ((p, p.parts) for p in pairs))
    # The best of many splits looks significant in random data: each association is judged against the
    # best split found when the instability labels are shuffled (maxT, Westfall and Young), so a sweep
    # whose instability has nothing to do with its settings lists nothing 95% of the time.
    family = [s for key in splits for s in splits[key]] + pairs
    judged = [*singles, *([both] if both is not None else [])]
    for a, q in zip(judged, _max_t(unstable, family, [a.pop("_split") for a in judged]), strict=True):
        a["p_adjusted"] = float(f"{q:.4g}")
    associations = [a for a in singles if a["p_adjusted"] <= ALPHA]
    if both is not None and both["p_adjusted"] <= ALPHA and (not singles or both["p"] < 0.5 * singles[0]["p"]):
        associations.insert(0, both)
    for a in associations:
        a["text"] = association_text(a, verb)
    return {"runs": rows, "varied": varied, "associations": associations,
            "unstable": int(unstable.sum()), "groups": _groups(rows, varied), "splits_tried": len(family)}


PERMUTATIONS = 199  # label shuffles for the adjusted p-values (the smallest is 1/200)
# Splits x runs above which Bonferroni over the splits tried replaces the shuffles (conservative, and
# without the splits x runs matrices: a CI gate over 10,000 runs must not spend seconds here).
_PERMUTATION_CELLS = 2_000_000


def _z(inside: NDArray[np.float32], known: NDArray[np.float32], labels: NDArray[np.float32]) -> NDArray[np.float64]:
    """The two-proportion z of each split (rows of ``inside``/``known``) for each labelling (columns of
    ``labels``): how much more often the inside is unstable than the rest."""
    n = inside.sum(axis=1, dtype=np.float64)[:, None]
    m = known.sum(axis=1, dtype=np.float64)[:, None] - n
    a = (inside @ labels).astype(np.float64)  # counts: exact in float32 below 2**24 runs
    k = (known @ labels).astype(np.float64)
    c = k - a
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = k / (n + m)
        se = np.sqrt(rate * (1 - rate) * (1 / n + 1 / m))
        z = (a / n - c / m) / se
    return np.where(np.isfinite(z), z, -np.inf)


def _max_t(unstable: NDArray[np.bool_], family: Sequence[_Split], chosen: Sequence[_Split]) -> list[float]:
    """The p-value of each ``chosen`` split adjusted for the ``family`` of splits tried: the share of
    label shuffles in which some split of the family separates the runs at least as well."""
    if not chosen:
        return []
    if unstable.shape[0] * len(family) > _PERMUTATION_CELLS:
        return [min(1.0, _Fisher(unstable.shape[0]).greater(*_table(s, unstable)) * len(family)) for s in chosen]
    inside = np.array([s.inside for s in family], dtype=np.float32)
    known = np.array([s.known for s in family], dtype=np.float32)
    rng = np.random.default_rng(0)  # the same report every time
    shuffled = np.array([rng.permutation(unstable) for _ in range(PERMUTATIONS)], dtype=np.float32).T
    null_max = _z(inside, known, shuffled).max(axis=0)
    mine = _z(np.array([s.inside for s in chosen], dtype=np.float32),
              np.array([s.known for s in chosen], dtype=np.float32), unstable[:, None].astype(np.float32))[:, 0]
    return [(1 + int(np.count_nonzero(null_max >= z - 1e-12))) / (PERMUTATIONS + 1) for z in mine]


def _table(s: _Split, unstable: NDArray[np.bool_]) -> tuple[int, int, int, int]:
    """(unstable inside, runs inside, unstable outside, runs outside) of a split."""
    n = int(np.count_nonzero(s.inside))
    a = int(np.count_nonzero(s.inside & unstable))
    return a, n, int(np.count_nonzero(s.known & unstable)) - a, int(np.count_nonzero(s.known)) - n


_PAIR_KEYS = 6  # conjunctions are searched among this many keys, the strongest alone first
_MAX_CUTS = 12  # thresholds tried per numeric key: every one between its values, or this many quantiles


@dataclass(frozen=True, slots=True)
class _Split:
    """Runs on one side of a configured value: ``inside`` per row, meaningful where ``known`` (the row
    has the key)."""

    key: str
    op: str  # "<=", ">=", "==", "and"
    value: Any
    other: Any  # the nearest value on the other side ("<=" / ">="), or None
    inside: NDArray[np.bool_]
    known: NDArray[np.bool_]
    parts: tuple[_Split, ...] = ()  # the two splits of an "and"


def _and(x: _Split, y: _Split) -> _Split:
    return _Split(f"{x.key} & {y.key}", "and", None, None, x.inside & y.inside, x.known & y.known, (x, y))


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
    known = np.array([v is not _MISSING for v in values])
    present = [v for v in values if v is not _MISSING]
    out: list[_Split] = []
    if all(_is_number(v) for v in present):
        x = np.array([v if v is not _MISSING else np.nan for v in values], dtype=np.float64)
        distinct = sorted(set(present))
        cuts = list(zip(distinct, distinct[1:]))  # noqa: B905 - one shorter by design
        if len(cuts) > _MAX_CUTS:  # a random search: every value distinct; thresholds at quantiles
            at = np.unique(np.quantile(np.arange(len(cuts)), np.linspace(0, 1, _MAX_CUTS)).round().astype(int))
            cuts = [cuts[k] for k in at]
        for lo, hi in cuts:
            out.append(_Split(key, "<=", lo, hi, known & (x <= lo), known))
            out.append(_Split(key, ">=", hi, lo, known & (x >= hi), known))
    else:
        hashed = [_hashable(v) for v in values]
        for h in sorted({_hashable(v) for v in present}, key=repr):
            raw = h[1] if isinstance(h, tuple) else h
            out.append(_Split(key, "==", raw, None, known & np.array([v == h for v in hashed]), known))
    return out


def _best(unstable: NDArray[np.bool_], fisher: _Fisher, candidates: Iterable[tuple[_Split, tuple[_Split, ...]]],
          ) -> dict[str, Any] | None:
    """The candidate split whose inside is most clearly the unstable side (Fisher's exact test)."""
    best: dict[str, Any] | None = None
    for split, terms in candidates:
        a, n, c, m = _table(split, unstable)
        if n == 0 or m == 0 or a + c in (0, n + m) or a / n <= c / m:
            continue
        entry = {"key": split.key, "op": split.op, "value": split.value, "other_value": split.other,
                 "terms": [{"key": t.key, "op": t.op, "value": t.value} for t in terms],
                 "unstable": a, "runs": n, "other_unstable": c, "other_runs": m,
                 "p": float(f"{fisher.greater(a, n, c, m):.4g}"), "_split": split}
        if best is None or _rank(entry) < _rank(best):
            best = entry
    return best


def _rank(a: Mapping[str, Any]) -> tuple[float, float, str]:
    return (a["p"], -(a["unstable"] / a["runs"] - a["other_unstable"] / a["other_runs"]), a["key"])


def _groups(rows: Sequence[Mapping[str, Any]], varied: Sequence[str]) -> list[dict[str, Any]]:
    """Runs grouped by their configuration: the varied values they have, but seeds (seeds of one
    configuration are replicas of it), in first-seen order. A run with none of them (a plain CSV log
    beside HF runs) is in no group: having no configuration is not a configuration."""
    keys = [k for k in varied if "seed" not in k.lower()]
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        cfg = {k: r["config"][k] for k in keys if k in r["config"]}
        if not cfg:
            continue
        ident = tuple((k, _hashable(v)) for k, v in cfg.items())
        g = groups.setdefault(ident, {"config": cfg, "runs": [], "unstable": 0})
        g["runs"].append(r["run"])
        g["unstable"] += bool(r["unstable"])
    return list(groups.values())


def _varied(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Configured keys with at least two distinct values (a string key with more than
    ``_MAX_CATEGORIES`` is an identifier): one pass over the rows, a set of at most 13 values a key."""
    distinct: dict[str, set[tuple[bool, Any]]] = {}
    count: dict[str, int] = {}
    text: dict[str, bool] = {}  # every value a string
    for r in rows:
        for k, v in r["config"].items():
            seen = distinct.get(k)
            if seen is None:
                distinct[k], count[k], text[k] = {(isinstance(v, bool), v)}, 1, isinstance(v, str)
                continue
            count[k] += 1
            text[k] = text[k] and isinstance(v, str)
            if len(seen) <= _MAX_CATEGORIES:
                seen.add((isinstance(v, bool), v))
    return sorted(k for k, seen in distinct.items()
                  if len(seen) >= 2 and count[k] >= 2 and not (text[k] and len(seen) > _MAX_CATEGORIES))


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


class _Fisher:
    """One-sided Fisher exact tests on tables of up to ``total`` runs, from a table of log factorials
    (a sweep of 100,000 runs sums its hypergeometric tails in floating point, not in huge integers)."""

    def __init__(self, total: int) -> None:
        self.lf = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, total + 1, dtype=np.float64)))))

    def _log_comb(self, n: int | NDArray[np.int64], k: int | NDArray[np.int64]) -> Any:
        return self.lf[n] - self.lf[k] - self.lf[np.subtract(n, k)]

    def greater(self, a: int, n: int, c: int, m: int) -> float:
        """P(X >= a) for the unstable count X in a group of ``n`` drawn from ``n + m`` runs of which
        ``a + c`` are unstable (the hypergeometric tail)."""
        k = a + c
        x = np.arange(a, min(n, k) + 1)
        terms = self._log_comb(n, x) + self._log_comb(m, k - x) - self._log_comb(n + m, k)
        return min(1.0, float(np.exp(terms).sum()))


def _fisher_greater(a: int, n: int, c: int, m: int) -> float:
    """:meth:`_Fisher.greater` for one table."""
    return _Fisher(n + m).greater(a, n, c, m)


__all__ = ["ALPHA", "UNSTABLE", "association_text", "is_unstable", "profile", "view"]
