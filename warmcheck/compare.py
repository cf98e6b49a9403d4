"""``warmcheck compare``: one run against a baseline (runs or a golden file), as WC5xx findings.

The checks, each on the steps both sides logged:

- **LR schedule** (WC501): the relative difference of the learning rates, the first step where it
  exceeds ``lr_rtol``, and both sides' warmup ends (the warmup audit across runs).
- **Loss band** (WC502): the loss, smoothed by a centred moving average of ``window`` logged points
  (per-batch noise is not a change of training), must stay within ``atol + rtol * |baseline|`` of the
  baseline; with several baselines (seeds) the band is their mean plus or minus ``sigmas`` times their
  spread where that is wider. Megatron-LM's functional tests compare golden loss values per step with a
  tolerance the same way; ``--window 1`` compares raw values.
- **New instability**: loss spikes (WC503) and NaN/Inf/divergence (WC504) that no baseline has.
- **Coverage** (WC505): a series one side lacks, no common steps, a run shorter than its baseline.

A golden file (:func:`golden`) keeps the steps and exact values of a run's LR, loss and grad-norm
series; :func:`read_golden` turns it back into a run that is analysed as a logged one would be.
:func:`load` reads one side (a golden file, or the runs under a path) for the CLI; the rest does no IO.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import __version__
from .config import Settings
from .findings import Finding, make
from .model import FloatArray, Format, IntArray, Role, Run, Series, SourceInfo, no_wall_times

GOLDEN_FORMAT = 1
_GOLDEN_KEY = "warmcheck_golden"
_ROLES = {"lr": Role.LR, "loss": Role.LOSS, "grad_norm": Role.GRAD_NORM}
_SPIKES = ("WC301",)  # spikes that count as new: warnings (a minor WC304 in a run is not a regression)
_BASE_SPIKES = ("WC301", "WC304", "WC403")  # any of these in a baseline near the step: not new
_BROKEN = ("WC401", "WC402", "WC403")


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How close is the same. ``window`` 0: chosen from the number of common steps (see :func:`auto_window`)."""

    rtol: float = 0.1
    atol: float = 0.0
    lr_rtol: float = 1e-4
    window: int = 0
    sigmas: float = 3.0

    def as_dict(self, window: int | None = None) -> dict[str, Any]:
        """JSON form (``comparison.tolerance``), with the window used."""
        return {"rtol": self.rtol, "atol": self.atol, "lr_rtol": self.lr_rtol,
                "window": self.window if window is None else window, "sigmas": self.sigmas}


def auto_window(n: int) -> int:
    """The smoothing window for ``n`` common steps: about 5% of them, odd, 1 to 51 points."""
    w = max(1, min(51, round(n * 0.05)))
    return w if w % 2 else w + 1


# ------------------------------------------------------------------------------------------ golden


def golden(run: Run) -> dict[str, Any]:
    """The golden-values document of ``run``: steps and exact values of its LR, loss and grad norm."""
    series: dict[str, Any] = {}
    for key, role in _ROLES.items():
        s = run.primary(role)
        if s is None or not s.points:
            continue
        series[key] = {"tag": s.tag, "steps": [int(x) for x in s.steps],
                       "values": [_golden_value(float(v)) for v in s.values]}
    return {_GOLDEN_KEY: GOLDEN_FORMAT, "warmcheck_version": __version__, "run": run.name, "series": series}


def golden_text(run: Run) -> str:
    """:func:`golden` as the text written by ``--write-golden`` (floats exact: ``repr`` round-trips)."""
    return json.dumps(golden(run), indent=1, allow_nan=False) + "\n"


def _golden_value(v: float) -> float | str:
    return v if math.isfinite(v) else ("NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))


def looks_golden(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a golden file (its key comes first)."""
    return head.lstrip()[:1] == b"{" and _GOLDEN_KEY.encode() in head[:200]


class GoldenError(ValueError):
    """A golden file that cannot be used."""


def read_golden(data: bytes, path: str) -> Run:
    """The run a golden file describes (series with their roles; not yet analysed)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise GoldenError(f"{path}: not a golden file: {exc}") from None
    if not isinstance(doc, dict) or _GOLDEN_KEY not in doc:
        raise GoldenError(f"{path}: not a golden file (no {_GOLDEN_KEY!r} key)")
    if doc[_GOLDEN_KEY] != GOLDEN_FORMAT:
        raise GoldenError(f"{path}: golden format {doc[_GOLDEN_KEY]!r}; this warmcheck reads {GOLDEN_FORMAT}")
    out: list[Series] = []
    roles: dict[Role, tuple[str, ...]] = {}
    points = 0
    for key, role in _ROLES.items():
        entry = (doc.get("series") or {}).get(key)
        if entry is None:
            continue
        try:
            tag = str(entry["tag"])
            steps = np.asarray(entry["steps"], dtype=np.int64)
            values = np.asarray([float(v) for v in entry["values"]], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise GoldenError(f"{path}: series {key!r} is malformed: {exc}") from None
        if steps.shape != values.shape or steps.ndim != 1:
            raise GoldenError(f"{path}: series {key!r}: {steps.shape[0]} steps but {values.shape[0]} values")
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
        if steps.shape[0] > 1 and np.any(np.diff(steps) == 0):
            raise GoldenError(f"{path}: series {key!r} repeats a step")
        out.append(Series(tag, steps, values, no_wall_times(steps.shape[0]), role))
        roles[role] = (tag,)
        points += steps.shape[0]
    name = str(doc.get("run") or path)
    return Run(name, path, (SourceInfo(path, Format.GOLDEN, points),), tuple(sorted(out, key=lambda s: s.tag)),
               roles=roles)


def load(path: str, settings: Settings) -> list[Run]:
    """The analysed runs at ``path``: a golden file's run, or every run under a path or URL (with points)."""
    from . import storage
    from .errors import WarmcheckError
    from .pipeline import analyze, analyze_run

    head = b""
    if storage.is_url(path) or os.path.isfile(path):
        try:
            with storage.open_binary(path) as fh:
                head = fh.read(256)
        except OSError as exc:
            raise WarmcheckError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if looks_golden(head):
        try:
            data = storage.read_bytes(path)
        except OSError as exc:
            raise WarmcheckError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            run = read_golden(data, path)
        except GoldenError as exc:
            raise WarmcheckError(str(exc)) from None
        return [analyze_run(run, settings.for_run(run.name))]
    return list(analyze([path], settings, keep_points=True).runs)


# ------------------------------------------------------------------------------------------ compare


@dataclass(frozen=True, slots=True)
class Comparison:
    """The outcome of :func:`compare`: the JSON ``comparison`` object and the WC5xx findings."""

    summary: Mapping[str, Any]
    findings: tuple[Finding, ...]


def compare(run: Run, baselines: Sequence[Run], tol: Tolerance = Tolerance()) -> Comparison:
    """Compare ``run`` (analysed: schedules and findings) with ``baselines`` (analysed likewise)."""
    findings: list[Finding] = []
    lr = _compare_lr(run, baselines, tol, findings)
    loss = _compare_loss(run, baselines, tol, findings)
    spikes = _new_spikes(run, baselines, loss.get("window") or 1, findings)
    broken = _new_broken(run, baselines, findings)
    summary = {"run": run.name, "baselines": [b.name for b in baselines],
               "tolerance": tol.as_dict(loss.get("window")), "lr": lr, "loss": loss,
               "new_spikes": spikes, "new_nonfinite": broken}
    return Comparison(summary, tuple(sorted(findings, key=Finding.sort_key)))


def _both(a: Series, b: Series) -> tuple[IntArray, FloatArray, FloatArray]:
    steps, ia, ib = np.intersect1d(a.steps, b.steps, assume_unique=True, return_indices=True)
    return steps, a.values[ia], b.values[ib]


def _missing(run: Run, key: str, role: Role, baselines: Sequence[Run], findings: list[Finding]) -> bool:
    """WC505 when one side lacks the series; whether the comparison can go on."""
    mine = run.primary(role)
    theirs = [b.name for b in baselines if b.primary(role) is None or not b.primary(role).points]  # type: ignore[union-attr]
    if mine is not None and mine.points and not theirs:
        return False
    if mine is None or not mine.points:
        if len(theirs) == len(baselines):
            return True  # neither side has it: nothing to compare, nothing missing
        what = f"this run has no {key} series; the baseline has one"
    else:
        many = len(theirs) > 1
        what = f"the baseline{'s' if many else ''} {', '.join(theirs)} ha{'ve' if many else 's'} no {key} series"
    findings.append(make("WC505", f"{key} not compared: {what}", run=run.name,
                         details={"series": key, "missing_in": "run" if mine is None or not mine.points else theirs}))
    return True


def _compare_lr(run: Run, baselines: Sequence[Run], tol: Tolerance, findings: list[Finding]) -> dict[str, Any] | None:
    if not baselines or _missing(run, "lr", Role.LR, baselines, findings):
        return None
    mine = run.primary(Role.LR)
    assert mine is not None
    worst: dict[str, Any] | None = None
    for base in baselines:
        theirs = base.primary(Role.LR)
        assert theirs is not None
        steps, a, b = _both(mine, theirs)
        if not steps.shape[0]:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.maximum(np.abs(a), np.abs(b))
            rel = np.where(scale > 0, np.abs(a - b) / np.where(scale > 0, scale, 1.0), 0.0)
        rel = np.where(np.isnan(a) & np.isnan(b), 0.0, np.where(np.isnan(rel), np.inf, rel))
        bad = np.flatnonzero(rel > tol.lr_rtol)
        at = int(np.argmax(rel))
        entry = {"tag": mine.tag, "baseline": base.name, "common_steps": int(steps.shape[0]),
                 "max_rel_diff": _num(float(rel[at])), "max_rel_diff_step": int(steps[at]),
                 "first_diff_step": int(steps[bad[0]]) if bad.shape[0] else None,
                 "run_value": _num(float(a[bad[0]])) if bad.shape[0] else None,
                 "baseline_value": _num(float(b[bad[0]])) if bad.shape[0] else None,
                 **_ends(run, "run"), **_ends(base, "baseline")}
        if worst is None or _earlier(entry, worst):
            worst = entry
    if worst is None:
        findings.append(make("WC505", "lr not compared: no step that both this run and the baseline logged",
                             run=run.name, details={"series": "lr"}))
        return None
    if worst["first_diff_step"] is not None:
        findings.append(make("WC501", _lr_message(worst), run=run.name, tag=mine.tag, step=worst["first_diff_step"],
                             details={**worst, "threshold": tol.lr_rtol}))
    return worst


def _earlier(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    fa, fb = a["first_diff_step"], b["first_diff_step"]
    if fa is None or fb is None:
        return fa is not None
    return bool(fa < fb)


def _ends(run: Run, who: str) -> dict[str, Any]:
    s = run.schedules[0] if run.schedules else None
    return {f"{who}_warmup_steps": None if s is None else s.warmup_steps,
            f"{who}_warmup_end": None if s is None else s.warmup_end_step,
            f"{who}_peak_step": None if s is None else s.peak_step,
            f"{who}_peak_lr": None if s is None else _num(s.peak_lr)}


def _lr_message(e: Mapping[str, Any]) -> str:
    msg = (f"learning rate differs from the baseline from step {e['first_diff_step']} "
           f"({e['run_value']:.4g} vs {e['baseline_value']:.4g}; largest relative difference "
           f"{e['max_rel_diff']:.3g} at step {e['max_rel_diff_step']})")
    ends = []
    rp, bp, rw, bw = e["run_peak_step"], e["baseline_peak_step"], e["run_warmup_end"], e["baseline_warmup_end"]
    ru, bu = e["run_warmup_steps"], e["baseline_warmup_steps"]
    if ru != bu:
        ends.append(f"this run warmed up for {_s(ru)} updates, the baseline for {_s(bu)}")
    if rp != bp:
        ends.append(f"this run reached its peak at step {_s(rp)}, the baseline at {_s(bp)}")
    if (rw, bw) != (rp, bp) and rw != bw:  # the warmup ends say more than the peaks (a bracketed or estimated end)
        ends.append(f"warmup ends at {_s(rw)} vs {_s(bw)}")
    if e["run_peak_lr"] is not None and e["baseline_peak_lr"] is not None and \
            not math.isclose(e["run_peak_lr"], e["baseline_peak_lr"], rel_tol=1e-4):
        ends.append(f"peak LR {e['run_peak_lr']:.4g} vs {e['baseline_peak_lr']:.4g}")
    return msg + (": " + "; ".join(ends) if ends else "")


def _s(step: int | None) -> str:
    return "-" if step is None else str(step)


def _num(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


def smooth(values: FloatArray, window: int) -> FloatArray:
    """Centred moving average over ``window`` points (odd); near the ends, over the points there are.
    Non-finite values are left out of every mean (a NaN is WC504's business, not the band's)."""
    if window <= 1:
        return values.astype(np.float64, copy=True)
    ok = np.isfinite(values)
    v = np.where(ok, values, 0.0)
    csum = np.concatenate(([0.0], np.cumsum(v)))
    ccount = np.concatenate(([0], np.cumsum(ok)))
    n = values.shape[0]
    half = window // 2
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    count = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[hi] - csum[lo]) / np.maximum(count, 1), np.nan)


def _compare_loss(run: Run, baselines: Sequence[Run], tol: Tolerance, findings: list[Finding]) -> dict[str, Any]:
    if not baselines or _missing(run, "loss", Role.LOSS, baselines, findings):
        return {}
    mine = run.primary(Role.LOSS)
    assert mine is not None
    theirs = [b.primary(Role.LOSS) for b in baselines]
    steps = mine.steps
    for s in theirs:
        assert s is not None
        steps = np.intersect1d(steps, s.steps, assume_unique=True)
    if not steps.shape[0]:
        findings.append(make("WC505", "loss not compared: no step that this run and every baseline logged",
                             run=run.name, details={"series": "loss"}))
        return {}
    window = tol.window or auto_window(int(steps.shape[0]))
    raw_a = _at(mine, steps)
    raw_bs = [_at(s, steps) for s in theirs if s is not None]
    a = smooth(raw_a, window)
    bs = np.vstack([smooth(v, window) for v in raw_bs])
    center = np.mean(bs, axis=0)
    terms = {"tolerance": tol.atol + tol.rtol * np.abs(center)}
    # Batch noise: what is left of each raw loss around its smoothed curve, its local RMS, and the
    # standard error of the difference of two window means. Tiny noisy runs get a wider band than
    # smooth large ones without a tolerance tuned per run.
    var_a = _local_var(raw_a, a, window)
    var_b = np.mean([_local_var(v, sm, window) for v, sm in zip(raw_bs, bs, strict=True)], axis=0)
    terms["noise"] = tol.sigmas * np.sqrt((var_a + var_b / len(raw_bs)) / window)
    if bs.shape[0] > 1:  # several baselines (seeds): their spread at each step
        terms["seed-spread"] = tol.sigmas * np.std(bs, axis=0, ddof=1)
    names = list(terms)
    stack = np.vstack([np.nan_to_num(terms[n], nan=0.0) for n in names])
    half = np.max(stack, axis=0)
    kinds = np.argmax(stack, axis=0)
    excess = np.abs(a - center) - half
    judged = np.isfinite(a) & np.isfinite(center)
    outside = np.flatnonzero(judged & (excess > 0))
    out: dict[str, Any] = {"tag": mine.tag, "common_steps": int(steps.shape[0]), "window": window,
                           "band_kind": None, "first_outside_step": None, "value": None, "baseline": None, "band": None,
                           "rel_diff": None, "max_excess": _num(float(np.max(np.where(judged, excess, -np.inf))))
                           if judged.any() else None, "max_excess_step": None,
                           "run_last_step": int(mine.steps[-1]),
                           "baseline_last_step": int(min(int(s.steps[-1]) for s in theirs if s is not None))}
    if judged.any():
        worst = int(np.argmax(np.where(judged, excess, -np.inf)))
        out["max_excess_step"] = int(steps[worst])
        out["band_kind"] = names[int(kinds[worst])]
    if outside.shape[0]:
        i = int(outside[0])
        rel = (a[i] - center[i]) / abs(center[i]) if center[i] else math.inf
        out.update(first_outside_step=int(steps[i]), value=_num(float(a[i])), baseline=_num(float(center[i])),
                   band_kind=names[int(kinds[i])],
                   band=[_num(float(center[i] - half[i])), _num(float(center[i] + half[i]))], rel_diff=_num(float(rel)))
        where = "above" if a[i] > center[i] else "below"
        findings.append(make(
            "WC502", f"loss left the baseline's band at step {out['first_outside_step']}: {a[i]:.4g} is {abs(rel):.1%} "
            f"{where} the baseline's {center[i]:.4g} (band {center[i] - half[i]:.4g} to {center[i] + half[i]:.4g}, "
            f"{_band_words(tol, names[int(kinds[i])], bs.shape[0])}; smoothed over {window} logged points); "
            f"{outside.shape[0]} of {steps.shape[0]} common steps outside",
            run=run.name, tag=mine.tag, step=out["first_outside_step"], step_end=int(steps[outside[-1]]),
            details={**out, "steps_outside": int(outside.shape[0]), "threshold": tol.as_dict(window)}))
    if out["run_last_step"] < out["baseline_last_step"]:
        findings.append(make("WC505", f"this run's loss ends at step {out['run_last_step']}, the baseline's at "
                             f"{out['baseline_last_step']}: only the common steps were compared", run=run.name,
                             tag=mine.tag, step=out["run_last_step"],
                             details={"series": "loss", "run_last_step": out["run_last_step"],
                                      "baseline_last_step": out["baseline_last_step"]}))
    return out


def _band_words(tol: Tolerance, kind: str, n: int) -> str:
    if kind == "noise":
        return f"{tol.sigmas:g} standard errors of the batch noise"
    if kind == "seed-spread":
        return f"{tol.sigmas:g} standard deviations of {n} baselines"
    return f"rtol {tol.rtol:g}" + (f", atol {tol.atol:g}" if tol.atol else "")


def _local_var(raw: FloatArray, smoothed: FloatArray, window: int) -> FloatArray:
    """The local variance of ``raw`` around its smoothed curve (over at least 11 points)."""
    resid = raw - smoothed
    return np.nan_to_num(smooth(resid * resid, max(window, 11)), nan=0.0)


def _at(s: Series, steps: IntArray) -> FloatArray:
    return s.values[np.searchsorted(s.steps, steps)]


def _spike_steps(run: Run, codes: Sequence[str]) -> list[int]:
    return [f.step for f in run.findings
            if f.code in codes and f.step is not None and (f.tag is None or _is_loss(run, f.tag))]


def _is_loss(run: Run, tag: str) -> bool:
    s = run.primary(Role.LOSS)
    return s is None or s.tag == tag


def _new_spikes(run: Run, baselines: Sequence[Run], window: int, findings: list[Finding]) -> list[int]:
    near = max(5, window)
    theirs = sorted({s for b in baselines for s in _spike_steps(b, _BASE_SPIKES)})
    new = []
    for f in run.findings:
        if f.code not in _SPIKES or f.step is None or not (f.tag is None or _is_loss(run, f.tag)):
            continue
        if any(abs(f.step - s) <= near for s in theirs):
            continue
        new.append(f.step)
        findings.append(make("WC503", f"new loss spike at step {f.step}, which no baseline has within {near} steps: "
                             f"{f.message}", run=run.name, tag=f.tag, step=f.step, step_end=f.step_end,
                             details={"spike": dict(f.details), "within": near,
                                      "baseline_spikes": theirs[:100]}))
    return new


def _new_broken(run: Run, baselines: Sequence[Run], findings: list[Finding]) -> list[dict[str, Any]]:
    out = []
    for code in _BROKEN:
        mine = [f for f in run.findings if f.code == code]
        if not mine or any(f.code == code for b in baselines for f in b.findings):
            continue
        first = min(mine, key=lambda f: (f.step is None, f.step or 0))
        out.append({"code": code, "step": first.step, "tag": first.tag})
        findings.append(make("WC504", f"{code} ({first.message}), which no baseline has", run=run.name,
                             tag=first.tag, step=first.step, step_end=first.step_end,
                             details={"code": code, "finding": dict(first.details)}))
    return out


__all__ = ["GOLDEN_FORMAT", "Comparison", "GoldenError", "Tolerance", "auto_window", "compare", "golden",
           "golden_text", "looks_golden", "read_golden", "smooth"]
