"""The HTML report of a 1,000-run sweep: file size, render time, and load time in headless Chromium
(issue 13, part 3).

    python bench/html_bench.py                    # 1,000 runs x 2,000 steps under bench/out/html-tree
    python bench/html_bench.py --runs 200 --reps 1

The tree: one CSV run per directory (step, lr, loss, grad_norm) with an ``hparams.yaml`` beside it
(warmup_steps x learning_rate grid, 3 x 4, plus a seed), so the report has a sweep section; runs with
the highest LR and the shortest warmup spike, a few diverge to NaN. Written once (reused while the
parameters match).

Measured:

* **analyse**: ``warmcheck.pipeline.analyze(tree, keep_points=True, jobs=0)`` (not the report's cost;
  for scale);
* **render**: ``HtmlReporter().render(outcome)`` in this process (median of ``--reps``), and the file size;
* **page load**, each rep in a fresh browser context of Debian's chromium (Playwright): the time to
  DOMContentLoaded (the HTML parsed, plotly.js compiled, the JSON document parsed), the time until the
  overview plots (both overlays and the sweep scatter) are drawn (``window.__warmcheckReady``), the JS
  heap then (CDP ``Performance.getMetrics``), the time to open one run and draw its three plots, and
  the time to filter the run list.

Prints a markdown table, writes bench/out/html-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WARMUPS = (20, 100, 500)
LRS = (1e-4, 3e-4, 1e-3, 3e-3)


def make_tree(root: Path, runs: int, steps: int) -> None:
    """Write ``runs`` CSV runs with hparams.yaml under ``root`` (skipped when the same tree is there)."""
    import numpy as np

    stamp = root / "tree.json"
    spec = {"runs": runs, "steps": steps, "version": 1}
    if stamp.exists() and json.loads(stamp.read_text()) == spec:
        return
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(13)
    s = np.arange(steps)
    for i in range(runs):
        warmup, peak = WARMUPS[i % 3], LRS[(i // 3) % 4]
        d = root / f"w{warmup}_lr{peak:g}" / f"run{i:04d}"
        d.mkdir(parents=True)
        (d / "hparams.yaml").write_text(f"warmup_steps: {warmup}\nlearning_rate: {peak}\nseed: {i}\n")
        lr = np.where(s < warmup, peak * (s + 1) / warmup,
                      peak * (0.1 + 0.45 * (1 + np.cos(np.pi * (s - warmup) / max(steps - warmup, 1)))))
        loss = 2.5 * np.exp(-s / (steps / 4)) + 0.6 + rng.normal(0, 0.02, steps)
        grad = 1.0 * np.exp(-s / (steps / 3)) + 0.3 + np.abs(rng.normal(0, 0.05, steps))
        if peak >= 3e-3 and warmup == 20:  # the unstable corner of the grid
            at = warmup + 5 + i % 40
            loss[at:at + 3] *= 4.0
            grad[at - 1:at + 2] *= 8.0
            if i % 7 == 0:  # and some of it diverges
                loss[steps // 2:] = np.linspace(1, 60, steps - steps // 2) * loss[steps // 2:]
                loss[steps // 2 + 200:] = np.nan
        rows = "".join(f"{k},{float(lr[k])!r},{float(loss[k])!r},{float(grad[k])!r}\n" for k in range(steps))
        (d / "metrics.csv").write_text("step,lr,loss,grad_norm\n" + rows.replace("nan", ""))
    stamp.write_text(json.dumps(spec))


def load_page(browser: Any, url: str, run: int) -> dict[str, float]:
    """One page load in a fresh context: the figures of the module docstring (ms, MB)."""
    ctx = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded", timeout=600_000)
    page.wait_for_function("() => window.__warmcheckReady === true", timeout=600_000, polling=50)
    wall = time.perf_counter() - t0
    timing = page.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0];
        return {dcl: n.domContentLoadedEventEnd, ready: window.__warmcheckReadyAt, start: window.__warmcheckStartAt,
                parsed: window.__warmcheckParsedAt,
                fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null}; }""")
    cdp = ctx.new_cdp_session(page)
    cdp.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    t1 = time.perf_counter()
    page.evaluate(f"() => {{ location.hash = '#run-{run}'; }}")
    page.wait_for_function(f"() => window.__warmcheck.runs[{run}] === true", timeout=600_000, polling=20)
    open_ms = (time.perf_counter() - t1) * 1000
    t2 = time.perf_counter()
    page.fill("#run-filter", "lr0.003")
    shown = page.evaluate("() => document.getElementById('run-count').textContent")
    filter_ms = (time.perf_counter() - t2) * 1000
    ctx.close()
    if errors:
        raise SystemExit(f"page errors: {errors[:5]}")
    return {"dom_content_loaded_ms": timing["dcl"], "overview_ready_ms": timing["ready"], "wall_ready_s": wall,
            "first_paint_ms": timing["fcp"] or 0.0,
            "script_start_ms": timing["start"], "json_parse_ms": timing["parsed"] - timing["start"],
            "overview_draw_ms": timing["ready"] - timing["parsed"],
            "js_heap_mb": metrics.get("JSHeapUsedSize", 0) / 2**20, "dom_nodes": metrics.get("Nodes", 0),
            "open_run_ms": open_ms, "filter_ms": filter_ms, "filter_shown": shown}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=HERE / "out" / "html-tree")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from warmcheck.pipeline import analyze
    from warmcheck.reporters.html import HtmlReporter

    t = time.perf_counter()
    make_tree(args.dir, args.runs, args.steps)
    print(f"tree: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    t = time.perf_counter()
    outcome = analyze([str(args.dir)], keep_points=True, jobs=0)
    analyse_s = time.perf_counter() - t
    print(f"analyse: {analyse_s:.1f} s, {len(outcome.runs)} runs", file=sys.stderr)
    reporter = HtmlReporter()
    renders, page = [], ""
    for _ in range(args.reps):
        t = time.perf_counter()
        page = reporter.render(outcome)
        renders.append(time.perf_counter() - t)
    out = HERE / "out" / "html-report.html"
    out.write_text(page, encoding="utf-8")
    size = out.stat().st_size
    loads = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        for rep in range(args.reps):
            loads.append(load_page(browser, out.as_uri(), run=len(outcome.runs) // 2))
            print(f"load {rep + 1}: {loads[-1]}", file=sys.stderr)
        browser.close()
    med = {k: statistics.median(x[k] for x in loads) for k in loads[0] if isinstance(loads[0][k], (int, float))}
    plotly = reporter.plotly.stat().st_size
    result: dict[str, Any] = {
        "runs": len(outcome.runs), "steps": args.steps, "analyse_s": analyse_s,
        "render_s": statistics.median(renders), "file_mb": size / 1e6, "plotly_js_mb": plotly / 1e6,
        "data_mb": (size - plotly) / 1e6, "loads": loads, "median": med,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
        "filter_shown": loads[0]["filter_shown"],
    }
    (HERE / "out" / "html-results.json").write_text(json.dumps(result, indent=2))
    rows = [("runs x steps", f"{len(outcome.runs)} x {args.steps} (lr, loss, grad norm)"),
            ("analyse (keep_points, jobs=0)", f"{analyse_s:.1f} s"),
            ("render (HtmlReporter.render)", f"{result['render_s']:.2f} s"),
            ("file size", f"{size / 1e6:.1f} MB (plotly.js {plotly / 1e6:.1f} MB)"),
            ("first contentful paint (header, tables)", f"{med['first_paint_ms'] / 1000:.2f} s"),
            ("DOMContentLoaded", f"{med['dom_content_loaded_ms'] / 1000:.2f} s"),
            ("overview plots drawn", f"{med['overview_ready_ms'] / 1000:.2f} s"),
            ("- of which: HTML + plotly.js parsed", f"{med['script_start_ms'] / 1000:.2f} s"),
            ("- JSON document parsed", f"{med['json_parse_ms']:.0f} ms"),
            ("- overlays + sweep scatter drawn", f"{med['overview_draw_ms']:.0f} ms"),
            ("JS heap after load", f"{med['js_heap_mb']:.0f} MB"),
            ("DOM nodes", f"{med['dom_nodes']:.0f}"),
            ("open one run (3 plots)", f"{med['open_run_ms']:.0f} ms"),
            ("filter the run list", f"{med['filter_ms']:.0f} ms ({result['filter_shown']})")]
    print(f"| measure | median of {args.reps} |\n|---|---|")
    print("\n".join(f"| {a} | {b} |" for a, b in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
