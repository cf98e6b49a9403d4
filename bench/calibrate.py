#!/usr/bin/env python3
"""Calibrate the spike and divergence detectors on synthetic runs with known answers.

    python bench/calibrate.py [--healthy 200] [--per-cell 25] [--diverging 100] [--disguised 50]
                              [--sustained 100] [--hidden-blowups 50]

Runs are made by ``tests/synthetic.py``: healthy runs with a noisy fast early descent (multiplicative,
AR(1)-correlated noise larger early on, small harmless wobbles), the same runs with a spike planted
at a known step (factors 1.3x-5x; in warmup, at its end, just after it, later in decay), with an
exponential divergence from a known onset (growth 2%-60% per step, NaN once 10^4x up), and with a NaN
disguised by the logger (HF: loss written as 0.0 or an average, grad_norm NaN), with a sustained 1.5x
spike (the loss held at 1.5x for 10-40 steps, right after warmup or later), and with a finite blow-up
whose NaN the logger hides (growth 30%-250% per step from a known onset; once 10^6-10^12 x up the loss
is written as 0.0 or a repeated average beside a NaN grad_norm). Every run goes
through the same analysis as ``warmcheck analyze``; the table reports, per detector: false alarms
(WC301/WC403 at warning or error) per healthy run, recall per spike factor (a WC301 whose onset is
within [-1, +2] steps of the planted one; WC304, the info-level minor spike, counts as found),
precision (planted spikes found / all WC301 and WC304 on spiked runs),
divergences found and the onset error, disguised NaN found; sustained spikes reported as a warning
(WC301 starting within [-1, +2] steps of the plateau) and the error of their recovery step (the first
step after the plateau and its ramp down); hidden blow-ups found (WC403 before the hidden NaN, and
WC402 at it) and their onset error. Seeds are fixed: same numbers every run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import synthetic as syn  # noqa: E402

from warmcheck.config import Settings  # noqa: E402
from warmcheck.detectors import DETECTORS  # noqa: E402
from warmcheck.pipeline import analyze_run  # noqa: E402

FACTORS = (1.3, 1.5, 2.0, 3.0, 5.0)
PLACES = ("warmup", "end of warmup", "just after warmup", "later")


def _loud(findings: list, codes: tuple[str, ...]) -> list:
    return [f for f in findings if f.code in codes and f.severity.value != "info"]


def _place(base: syn.Synthetic, where: str, rng: np.random.Generator) -> int:
    w, n = base.warmup, base.loss.shape[0]
    return {"warmup": max(12, w // 2), "end of warmup": max(12, w - 2), "just after warmup": w + 5,
            "later": int(rng.integers(w + 30, n - 20))}[where]


def calibrate(detector: str, healthy: int, per_cell: int, diverging: int, disguised: int, sustained: int = 100,
              hidden_blowups: int = 50) -> dict[str, object]:
    settings = Settings(spike_detector=detector)
    alarms = 0
    for seed in range(healthy):
        n = 400 + (seed * 37) % 800
        alarms += len(_loud(list(analyze_run(syn.healthy(seed, n=n).run(), settings).findings), ("WC301", "WC403")))
    recall: dict[str, float] = {}
    found_total = reported_total = 0
    for factor in FACTORS:
        hits = runs = 0
        for place in PLACES:
            for k in range(per_cell):
                seed = 10_000 + 1000 * PLACES.index(place) + k
                rng = np.random.default_rng(seed)
                base = syn.healthy(seed, n=800)
                at = _place(base, place, rng)
                out = analyze_run(syn.with_spike(base, at, factor).run(), settings).findings
                spikes = [f for f in out if f.code in ("WC301", "WC304")]
                hit = any(at - 1 <= f.step <= at + 2 for f in spikes)
                hits += hit
                runs += 1
                found_total += hit
                reported_total += len(spikes)
        recall[f"{factor:g}x"] = hits / runs
    errors: list[int] = []
    missed = 0
    for k in range(diverging):
        seed = 50_000 + k
        rng = np.random.default_rng(seed)
        base = syn.healthy(seed, n=800)
        onset = int(rng.integers(base.warmup + 20, 600))
        rate = float(np.exp(rng.uniform(np.log(0.02), np.log(0.6))))
        out = [f for f in analyze_run(syn.with_divergence(base, onset, rate).run(), settings).findings
               if f.code == "WC403"]
        if out:
            errors.append(out[0].step - onset)
        else:
            missed += 1
    hidden = 0
    for k in range(disguised):
        seed = 70_000 + k
        base = syn.healthy(seed, n=600)
        at = int(np.random.default_rng(seed).integers(200, 580))
        out = analyze_run(syn.with_disguised_nan(base, at, "zero" if k % 2 else "average").run(), settings).findings
        hidden += any(f.code == "WC402" and f.step == at for f in out)
    sustained_hits = 0
    recovery_errors: list[int] = []
    for k in range(sustained):
        seed = 80_000 + k
        rng = np.random.default_rng(seed)
        base = syn.healthy(seed, n=800)
        length = int(rng.integers(10, 41))
        start = base.warmup + 1 if k % 2 == 0 else int(rng.integers(base.warmup + 30, 700))
        out = analyze_run(syn.with_sustained_spike(base, start, length, 1.5).run(), settings).findings
        warned = [f for f in out if f.code == "WC301" and start - 1 <= f.step <= start + 2]
        sustained_hits += bool(warned)
        if warned and warned[0].details.get("recovered_step") is not None:
            recovery_errors.append(int(warned[0].details["recovered_step"]) - (start + length + 1))
    blowups_found = 0
    blowup_errors: list[int] = []
    for k in range(hidden_blowups):
        seed = 90_000 + k
        rng = np.random.default_rng(seed)
        base = syn.healthy(seed, n=600)
        onset = int(rng.integers(base.warmup + 20, 450))
        rate = float(np.exp(rng.uniform(np.log(0.3), np.log(2.5))))
        run = syn.with_hidden_blowup(base, onset, rate, 10 ** rng.uniform(6, 12), "zero" if k % 2 else "average")
        out = analyze_run(run.run(), settings).findings
        div = [f for f in out if f.code == "WC403" and run.disguised is not None and f.step < run.disguised]
        nan = [f for f in out if f.code == "WC402" and f.step == run.disguised]
        if div and nan:
            blowups_found += 1
            blowup_errors.append(div[0].step - onset)
    return {
        "detector": detector, "false_alarms_per_healthy_run": alarms / healthy, "false_alarms": alarms,
        "healthy_runs": healthy, "recall": recall,
        "recall_1.5x_and_up": float(np.mean([v for k, v in recall.items() if float(k[:-1]) >= 1.5])),
        "precision": found_total / reported_total if reported_total else 1.0,
        "divergences": diverging, "divergences_found": diverging - missed,
        "onset_error_max": int(max(map(abs, errors))) if errors else None,
        "onset_error_mean": float(np.mean(np.abs(errors))) if errors else None,
        "disguised_nan_found": hidden, "disguised_nan_runs": disguised,
        "sustained_runs": sustained, "sustained_warned": sustained_hits,
        "sustained_recall": sustained_hits / sustained if sustained else 1.0,
        "recovery_error_max": int(max(map(abs, recovery_errors))) if recovery_errors else None,
        "recovery_error_mean": float(np.mean(np.abs(recovery_errors))) if recovery_errors else None,
        "hidden_blowup_runs": hidden_blowups, "hidden_blowups_found": blowups_found,
        "hidden_onset_error_max": int(max(map(abs, blowup_errors))) if blowup_errors else None,
        "hidden_onset_error_mean": float(np.mean(np.abs(blowup_errors))) if blowup_errors else None,
    }


def _err(r: dict[str, object], key: str) -> str:
    top, mean = r[f"{key}_error_max"], r[f"{key}_error_mean"]
    return "-" if top is None else f"{top} ({mean:.2f})"


def table(rows: list[dict[str, object]]) -> str:
    head = ("| detector | false alarms / healthy run | " + " | ".join(f"recall {f:g}x" for f in FACTORS)
            + " | precision | divergences found | onset error max (mean) | disguised NaN found"
            + " | sustained 1.5x warned | recovery error max (mean) | hidden blow-ups found | onset error max (mean) |")
    sep = "|" + "---|" * (10 + len(FACTORS))
    lines = [head, sep]
    for r in rows:
        rec = r["recall"]
        assert isinstance(rec, dict)
        lines.append(
            f"| {r['detector']} | {r['false_alarms_per_healthy_run']:.3f} ({r['false_alarms']}/{r['healthy_runs']}) | "
            + " | ".join(f"{rec[f'{f:g}x']:.2f}" for f in FACTORS)
            + f" | {r['precision']:.2f} | {r['divergences_found']}/{r['divergences']} | "
            f"{r['onset_error_max']} ({r['onset_error_mean']:.2f}) | "
            f"{r['disguised_nan_found']}/{r['disguised_nan_runs']} | "
            f"{r['sustained_warned']}/{r['sustained_runs']} | {_err(r, 'recovery')} | "
            f"{r['hidden_blowups_found']}/{r['hidden_blowup_runs']} | {_err(r, 'hidden_onset')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--healthy", type=int, default=200)
    ap.add_argument("--per-cell", type=int, default=25, help="spiked runs per factor and place")
    ap.add_argument("--diverging", type=int, default=100)
    ap.add_argument("--disguised", type=int, default=50)
    ap.add_argument("--sustained", type=int, default=100, help="runs with a sustained 1.5x spike")
    ap.add_argument("--hidden-blowups", type=int, default=50, help="runs with a blow-up behind a filtered NaN")
    ap.add_argument("--detectors", default=",".join(DETECTORS))
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "calibration.json")
    args = ap.parse_args(argv)
    rows = []
    for name in args.detectors.split(","):
        t = time.perf_counter()
        rows.append(calibrate(name, args.healthy, args.per_cell, args.diverging, args.disguised,
                              args.sustained, args.hidden_blowups))
        print(f"{name}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    print(table(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")
    default = rows[0] if rows and rows[0]["detector"] == "warmcheck" else None
    if default is not None:
        ok = (default["recall_1.5x_and_up"] >= 0.95 and default["false_alarms"] == 0
              and default["divergences_found"] == default["divergences"]
              and (default["onset_error_max"] or 0) <= 3
              and default["sustained_recall"] >= 0.95
              and default["hidden_blowups_found"] == default["hidden_blowup_runs"]
              and (default["hidden_onset_error_max"] or 0) <= 3)
        print("default detector meets the targets (recall >= 0.95 on >= 1.5x and on sustained 1.5x, 0 false alarms, "
              f"every divergence and hidden blow-up found, onset error <= 3): "
              f"{'yes' if ok else 'NO'}", file=sys.stderr)
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
