#!/usr/bin/env python3
"""Calibrate the spike and divergence detectors on synthetic runs with known answers.

    python bench/calibrate.py [--healthy 200] [--per-cell 25] [--diverging 100] [--disguised 50]

Runs are made by ``tests/synthetic.py``: healthy runs with a noisy fast early descent (multiplicative,
AR(1)-correlated noise larger early on, small harmless wobbles), the same runs with a spike planted
at a known step (factors 1.3x-5x; in warmup, at its end, just after it, later in decay), with an
exponential divergence from a known onset (growth 2%-60% per step, NaN once 10^4x up), and with a NaN
disguised by the logger (HF: loss written as 0.0 or an average, grad_norm NaN). Every run goes
through the same analysis as ``warmcheck analyze``; the table reports, per detector: false alarms
(WC301/WC403 at warning or error) per healthy run, recall per spike factor (a WC301 whose onset is
within [-1, +2] steps of the planted one; WC304, the info-level minor spike, counts as found),
precision (planted spikes found / all WC301 and WC304 on spiked runs),
divergences found and the onset error, disguised NaN found. Seeds are fixed: same numbers every run.
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


def calibrate(detector: str, healthy: int, per_cell: int, diverging: int, disguised: int) -> dict[str, object]:
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
    return {
        "detector": detector, "false_alarms_per_healthy_run": alarms / healthy, "false_alarms": alarms,
        "healthy_runs": healthy, "recall": recall,
        "recall_1.5x_and_up": float(np.mean([v for k, v in recall.items() if float(k[:-1]) >= 1.5])),
        "precision": found_total / reported_total if reported_total else 1.0,
        "divergences": diverging, "divergences_found": diverging - missed,
        "onset_error_max": int(max(map(abs, errors))) if errors else None,
        "onset_error_mean": float(np.mean(np.abs(errors))) if errors else None,
        "disguised_nan_found": hidden, "disguised_nan_runs": disguised,
    }


def table(rows: list[dict[str, object]]) -> str:
    head = ("| detector | false alarms / healthy run | " + " | ".join(f"recall {f:g}x" for f in FACTORS)
            + " | precision | divergences found | onset error max (mean) | disguised NaN found |")
    sep = "|" + "---|" * (6 + len(FACTORS))
    lines = [head, sep]
    for r in rows:
        rec = r["recall"]
        assert isinstance(rec, dict)
        lines.append(
            f"| {r['detector']} | {r['false_alarms_per_healthy_run']:.3f} ({r['false_alarms']}/{r['healthy_runs']}) | "
            + " | ".join(f"{rec[f'{f:g}x']:.2f}" for f in FACTORS)
            + f" | {r['precision']:.2f} | {r['divergences_found']}/{r['divergences']} | "
            f"{r['onset_error_max']} ({r['onset_error_mean']:.2f}) | "
            f"{r['disguised_nan_found']}/{r['disguised_nan_runs']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--healthy", type=int, default=200)
    ap.add_argument("--per-cell", type=int, default=25, help="spiked runs per factor and place")
    ap.add_argument("--diverging", type=int, default=100)
    ap.add_argument("--disguised", type=int, default=50)
    ap.add_argument("--detectors", default=",".join(DETECTORS))
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "calibration.json")
    args = ap.parse_args(argv)
    rows = []
    for name in args.detectors.split(","):
        t = time.perf_counter()
        rows.append(calibrate(name, args.healthy, args.per_cell, args.diverging, args.disguised))
        print(f"{name}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    print(table(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")
    default = rows[0] if rows and rows[0]["detector"] == "warmcheck" else None
    if default is not None:
        ok = (default["recall_1.5x_and_up"] >= 0.95 and default["false_alarms"] == 0
              and default["divergences_found"] == default["divergences"]
              and (default["onset_error_max"] or 0) <= 3)
        print(f"default detector meets the targets (recall >= 0.95 on >= 1.5x, 0 false alarms, onset error <= 3): "
              f"{'yes' if ok else 'NO'}", file=sys.stderr)
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
