"""The HTML report in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Each page is loaded from a file:// URL with every other request refused and recorded; each test checks
that the page logged no console error and threw nothing, that it asked for nothing but itself, and
that the plots were drawn (plotly's SVG traces, and screenshots that are neither empty nor uniform).
Zoom, hover and the log-scale toggle are driven with the mouse; hostile run names must show as text.

Skipped, with the reason, when playwright, plotly or chromium is missing (``pip install
'warmcheck[html,test]'``; ``apt-get install chromium``). Playwright's own browser download is never used.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile_inputs import build_hostile_names

from warmcheck.config import Settings
from warmcheck.pipeline import Outcome, analyze
from warmcheck.reporters.escape import visible
from warmcheck.reporters.html_data import short_names

pytest.importorskip("plotly", reason="the HTML report needs plotly.js: pip install 'warmcheck[html]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright: pip install playwright")
CHROMIUM = os.environ.get("WARMCHECK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("browser tests need Debian's chromium (apt-get install chromium)", allow_module_level=True)

from warmcheck.reporters.html import HtmlReporter  # noqa: E402  (after the skips: needs plotly)

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_logs"
REALRUNS = ROOT / "tests" / "data" / "realruns"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
HOSTILE = "</script><script>alert(1)</script><b>bold</b><img src=x onerror=alert(2)>"
TIMEOUT = 90_000  # ms; a loaded 2-core machine parses plotly.js in ~2 s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@dataclasses.dataclass
class Loaded:
    """A page and what it did: console errors, uncaught exceptions, requests, dialogs."""

    page: Any
    url: str
    errors: list[str]
    requests: list[str]
    refused: list[str]
    dialogs: list[str]

    def clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs
        assert self.refused == [], self.refused
        assert set(self.requests) == {self.url}, self.requests

    def js(self, expr: str, arg: Any = None) -> Any:
        return self.page.evaluate(expr, arg)


@pytest.fixture
def load(browser, tmp_path) -> Iterator[Any]:
    contexts: list[Any] = []

    def _load(outcome: Outcome, name: str = "report.html", **kwargs: Any) -> Loaded:
        path = tmp_path / name
        path.write_text(HtmlReporter(**kwargs).render(outcome), encoding="utf-8")
        ctx = browser.new_context(viewport={"width": 1300, "height": 1000})
        contexts.append(ctx)
        page = ctx.new_page()
        url = path.as_uri()
        loaded = Loaded(page, url, [], [], [], [])

        def route(r: Any) -> None:
            if r.request.url == url:
                r.continue_()
            else:
                loaded.refused.append(r.request.url)
                r.abort()

        ctx.route("**/*", route)
        page.on("console", lambda m: loaded.errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: loaded.errors.append(f"pageerror: {e}"))
        page.on("request", lambda r: loaded.requests.append(r.url))
        page.on("dialog", lambda d: (loaded.dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        page.wait_for_function("() => window.__warmcheckReady === true || !!window.__warmcheckError", timeout=TIMEOUT)
        assert page.evaluate("window.__warmcheckError || null") is None
        return loaded

    yield _load
    for ctx in contexts:
        ctx.close()


def plot(loaded: Loaded, key: str) -> dict[str, Any]:
    """What plotly drew for the figure ``data-plot=key``: traces, their SVG line paths, shapes, legend."""
    return loaded.js("""key => {
      const div = document.querySelector('figure.plot[data-plot="' + key + '"] .plotdiv');
      if (!div || !div.data) return null;
      return {
        traces: div.data.map(t => ({name: t.name, n: t.x.length, x: t.x.slice(0, 50), mode: t.mode})),
        paths: Array.from(div.querySelectorAll('.scatterlayer .trace path.js-line'))
          .map(p => p.getAttribute('d').length),
        points: div.querySelectorAll('.scatterlayer .trace .points path').length,
        shapes: (div.layout.shapes || []).map(s => ({x: s.x0, x1: s.x1, name: s.name, type: s.type})),
        legend: Array.from(div.querySelectorAll('.legendtext')).map(t => t.textContent),
        yType: div._fullLayout.yaxis.type,
        xRange: div._fullLayout.xaxis.range,
        yTicks: Array.from(div.querySelectorAll('.ytick text')).map(t => t.textContent),
      };
    }""", key)


def run_index(outcome: Outcome, suffix: str) -> int:
    (i,) = [i for i, r in enumerate(outcome.runs) if r.name.endswith(suffix)]
    return i


def open_run(loaded: Loaded, i: int) -> None:
    loaded.js("i => { location.hash = '#run-' + i; }", i)
    loaded.page.wait_for_function(f"() => window.__warmcheck.runs[{i}] === true", timeout=TIMEOUT)


def image_stats(png: Path) -> tuple[float, int]:
    """The pixel standard deviation and the number of distinct colours of a PNG."""
    from matplotlib.image import imread

    img = imread(png)[:, :, :3]
    colours = np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0).shape[0]
    return float(img.std()), colours


@pytest.fixture(scope="module")
def samples() -> Outcome:
    return analyze([str(SAMPLES)], keep_points=True)


def test_sample_logs_load_clean_and_draw_the_overlays(load, samples, tmp_path):
    loaded = load(samples)
    loaded.clean()
    with_lr = [r.name for r in samples.runs if r.primary(__import__("warmcheck").model.Role.LR)]
    lr = plot(loaded, "overlay-lr")
    loss = plot(loaded, "overlay-loss")
    assert len(lr["traces"]) == len(with_lr) == 12  # a few runs: one trace each, named in the legend
    assert len(lr["paths"]) == 12 and min(lr["paths"]) > 10  # each line really drawn (an "M x,y L x,y..." path)
    assert len(loss["paths"]) == len(samples.runs)
    assert any("loss_spike" in t for t in lr["legend"])
    shot = tmp_path / "overlays.png"
    loaded.page.locator("#overlays").screenshot(path=str(shot))
    std, colours = image_stats(shot)
    assert std > 0.05 and colours > 50, (std, colours)
    # the runs are closed (12 > 10): no run plot is drawn until one is opened
    assert loaded.js("document.querySelectorAll('details.run .js-plotly-plot').length") == 0
    assert loaded.js("Object.keys(window.__warmcheck.runs).length") == 0


def test_a_run_opened_draws_its_marked_plots(load, samples, tmp_path):
    loaded = load(samples)
    i = run_index(samples, "loss_spike")
    open_run(loaded, i)
    loaded.clean()
    assert loaded.js("document.querySelectorAll('details.run .js-plotly-plot').length") == 3  # only this run's
    lr, loss, grad = (plot(loaded, f"run-{i}-{role}") for role in ("lr", "loss", "grad_norm"))
    assert [(s["x"], s["name"]) for s in lr["shapes"]] == [(50, "observed warmup end: step 50 (50 updates below peak)")]
    assert loss["traces"][0]["n"] == 600 and loss["paths"][0] > 1000
    (spike,) = [t for t in loss["traces"] if t["name"].startswith("WC301")]
    assert spike["x"] == [53] and loss["points"] >= 1
    assert any(t["name"].startswith("WC302") and t["x"] == [52] for t in grad["traces"])
    assert grad["yType"] == "log"  # a range over 20x: log from the start, the toggle checked
    shot = tmp_path / "run.png"
    loaded.page.locator(f"#run-{i}").screenshot(path=str(shot))
    std, colours = image_stats(shot)
    assert std > 0.05 and colours > 50, (std, colours)


def test_zoom_hover_and_log_toggle(load, samples):
    loaded = load(samples)
    i = run_index(samples, "loss_spike")
    open_run(loaded, i)
    page = loaded.page
    div = page.locator(f'figure.plot[data-plot="run-{i}-loss"] .plotdiv')
    div.scroll_into_view_if_needed()
    box = page.locator(f'figure.plot[data-plot="run-{i}-loss"] .nsewdrag').first.bounding_box()
    assert box is not None
    # hover: plotly's label shows the step and the value under the mouse
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    hover = f"""document.querySelector('figure.plot[data-plot="run-{i}-loss"] .hoverlayer').textContent"""
    page.wait_for_function(f"() => {hover}.includes('step')", timeout=TIMEOUT)
    assert re.search(r"step \d+\s*[\d.]+", loaded.js(hover)), loaded.js(hover)  # "step 311 2.91346"
    # zoom: drag across a tenth of the plot; the other panels of the run follow
    before = plot(loaded, f"run-{i}-loss")["xRange"]
    y = box["y"] + box["height"] * 0.5
    page.mouse.move(box["x"] + box["width"] * 0.1, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.15, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.2, y, steps=5)
    page.mouse.up()
    page.wait_for_function(f"""() => {{
        const r = document.querySelector('figure.plot[data-plot="run-{i}-lr"] .plotdiv')._fullLayout.xaxis.range;
        return r[1] - r[0] < 100; }}""", timeout=TIMEOUT)
    after = plot(loaded, f"run-{i}-loss")["xRange"]
    assert after[1] - after[0] < (before[1] - before[0]) / 5
    assert plot(loaded, f"run-{i}-lr")["xRange"] == pytest.approx(after)
    # Plotly.relayout, as the page's own code calls it, sets an exact range
    loaded.js(f"""Plotly.relayout(document.querySelector('figure.plot[data-plot="run-{i}-loss"] .plotdiv'),
                                  {{'xaxis.range': [40, 70]}})""")
    assert plot(loaded, f"run-{i}-loss")["xRange"] == [40, 70]
    # log toggle on the LR plot
    lr = plot(loaded, f"run-{i}-lr")
    assert lr["yType"] == "linear"
    page.locator(f'figure.plot[data-plot="run-{i}-lr"] input.logy').click()
    page.wait_for_function(f"""() => document.querySelector('figure.plot[data-plot="run-{i}-lr"] .plotdiv')
                              ._fullLayout.yaxis.type === 'log'""", timeout=TIMEOUT)
    assert plot(loaded, f"run-{i}-lr")["yTicks"] != lr["yTicks"]
    loaded.clean()


def test_configured_and_observed_warmup_ends_on_the_lr_plot(load):
    settings = Settings(warmup_steps=20)
    outcome = analyze([str(SAMPLES / "founding_book_tb")], settings, keep_points=True)
    loaded = load(outcome)  # one run: open at load, drawn when in view
    loaded.page.locator("#run-0 .plots").scroll_into_view_if_needed()
    loaded.page.wait_for_function("() => window.__warmcheck.runs[0] === true", timeout=TIMEOUT)
    loaded.clean()
    lr = plot(loaded, "run-0-lr")
    assert {s["x"] for s in lr["shapes"]} == {27, 20}
    assert "configured: warmup_steps=20 -> warmup ends at step 20" in lr["legend"]
    assert any(t.startswith("observed warmup end: step 27") for t in lr["legend"])


def test_divergence_and_nan_marked_with_a_gap(load):
    outcome = analyze([str(SAMPLES / "diverged")], keep_points=True)
    loaded = load(outcome)
    loaded.page.locator("#run-0 .plots").scroll_into_view_if_needed()
    loaded.page.wait_for_function("() => window.__warmcheck.runs[0] === true", timeout=TIMEOUT)
    loaded.clean()
    loss = plot(loaded, "run-0-loss")
    onset = next(f.step for f in outcome.runs[0].findings if f.code == "WC403")
    assert {onset, 340} <= {s["x"] for s in loss["shapes"]}
    assert loaded.js("""document.querySelector('figure.plot[data-plot="run-0-loss"] .plotdiv').data[0].y
                        .slice(-5).every(v => v === null)""")


def test_hostile_names_show_as_text(load, tmp_path):
    runs = build_hostile_names(tmp_path / "hostile", "small")
    outcome = analyze([str(runs)], Settings(loss_tags=("*/loss",)), keep_points=True)
    first = dataclasses.replace(outcome.runs[0], name=f"{runs}/{HOSTILE}")
    outcome = dataclasses.replace(outcome, runs=(first, *outcome.runs[1:]))
    loaded = load(outcome)
    loaded.clean()  # no alert() dialog, no request for src=x
    assert loaded.js("document.querySelectorAll('script').length") == 3
    assert loaded.js("document.querySelectorAll('main img, main b, main script').length") == 0
    names = loaded.js("""Array.from(document.querySelectorAll('details.run > summary code.name'))
                         .map(e => [e.textContent, (e.querySelector('[title]') || e).getAttribute('title')])""")
    short = short_names([r.name for r in outcome.runs])
    assert short[0] == HOSTILE and short[1].startswith("c_")  # the directory every run is in, left out
    assert names == [[visible(s), None if s == r.name else visible(r.name)]
                     for s, r in zip(short, outcome.runs, strict=True)]
    # a run named like markup, and its tag, in plotly's legend: the characters, not the markup
    i = next(i for i, r in enumerate(outcome.runs) if r.name.endswith("onerror=alert(1)>&amp;<script>/log.jsonl"))
    open_run(loaded, i)
    loss = plot(loaded, f"run-{i}-loss")
    assert "<img src=x onerror=alert(1)>&amp;<script>/loss" in loss["legend"]
    # plotly turns <a href> in a name into an SVG link and <b> into a bold tspan: neither may come from data
    assert loaded.js("document.querySelectorAll('.plotdiv svg a, img, .plotdiv tspan[style*=bold]').length") == 0
    loaded.clean()


def test_realruns_tree(load, tmp_path):
    outcome = analyze([str(REALRUNS)], keep_points=True)
    assert len(outcome.runs) > 30
    loaded = load(outcome)
    loaded.clean()
    lr = plot(loaded, "overlay-lr")
    from warmcheck.model import Role

    with_lr = [r for r in outcome.runs if r.primary(Role.LR) is not None and r.primary(Role.LR).points]
    names = [t["name"] for t in lr["traces"]]
    assert len(names) == 2 and names[0].startswith("stable runs") and names[1].startswith("unstable runs")
    counts = [int(n.rsplit("(", 1)[1].rstrip(")")) for n in names]
    assert sum(counts) == len(with_lr) and counts[1] >= 3
    for suffix in ("diverge_sgd_in_warmup/runs", "early_spike_w25/runs", "hf_cosine_hard_restarts"):
        i = run_index(outcome, suffix)
        open_run(loaded, i)
        panel = plot(loaded, f"run-{i}-loss")
        assert panel["paths"] and panel["paths"][0] > 200
    shot = tmp_path / "realruns.png"
    loaded.page.screenshot(path=str(shot))
    std, colours = image_stats(shot)
    assert std > 0.05 and colours > 50
    loaded.clean()


COMPARE = REALRUNS / "compare"


def compared(run_dir: str) -> Outcome:
    """``warmcheck compare`` of a real run against the two warmup-20 seeds, as an outcome for the report
    (the run with its WC5xx findings, the comparison, the baselines with their points)."""
    cmp = pytest.importorskip("warmcheck.compare")
    if not (COMPARE / run_dir).exists():
        pytest.skip("tests/data/realruns/compare not there")
    refs = [r for d in ("warmup20_seed0", "warmup20_seed1") for r in cmp.load(str(COMPARE / d), Settings())]
    (run,) = cmp.load(str(COMPARE / run_dir), Settings())
    result = cmp.compare(run, refs)
    findings = tuple(sorted((*run.findings, *result.findings), key=lambda f: f.sort_key()))
    run = dataclasses.replace(run, findings=findings)
    return Outcome((run,), (), Settings(), comparison=result.summary, baselines=tuple(refs))


def test_compare_names_both_warmup_ends(load):
    outcome = compared("warmup27_seed0")
    lr_summary = outcome.comparison["lr"]
    loaded = load(outcome)
    loaded.clean()
    lr = plot(loaded, "compare-lr")
    assert [t["name"].split(":")[0] for t in lr["traces"]] == ["run", "baseline", "baseline"]
    ends = (lr_summary["first_diff_step"], lr_summary["run_warmup_end"], lr_summary["baseline_warmup_end"])
    assert {s["x"] for s in lr["shapes"]} == set(ends) and ends[1] != ends[2]
    assert f"run's warmup end: step {ends[1]}" in lr["legend"]
    assert f"baseline's warmup end: step {ends[2]}" in lr["legend"]
    assert len(plot(loaded, "compare-loss")["paths"]) == 3
    verdict = loaded.js("document.querySelector('#comparison ul.verdict').textContent")
    assert "WC501" in verdict and "WC502" not in verdict


def test_compare_marks_where_the_loss_leaves_the_band(load):
    outcome = compared("warmup20_lr3x_seed0")
    loss_summary = outcome.comparison["loss"]
    step, (lo, hi) = loss_summary["first_outside_step"], loss_summary["band"]
    loaded = load(outcome)
    loaded.clean()
    loss = plot(loaded, "compare-loss")
    assert step in {s["x"] for s in loss["shapes"]}
    band = loaded.js("""document.querySelector('figure.plot[data-plot="compare-loss"] .plotdiv').data
                        .filter(t => t.error_y)
                        .map(t => [t.x[0], t.y[0] - t.error_y.array[0], t.y[0] + t.error_y.array[0]])""")
    assert len(band) == 1 and band[0] == pytest.approx([step, lo, hi])
    assert "WC502" in loaded.js("document.querySelector('#comparison ul.verdict').textContent")


def test_sweep_view_table_and_plot(load, samples):
    runs = samples.runs[:3]
    sweep = {"runs": [{"run": r.name, "config": {"warmup_steps": w, "learning_rate": lr}, "unstable": u,
                       "spikes": int(u), "final_loss": 1.5, "findings": {"error": 0, "warning": int(u), "info": 0}}
                      for r, w, lr, u in ((runs[0], 27, 1e-3, False), (runs[1], 20, 3e-3, True),
                                          (runs[2], 20, 1e-3, False))],
             "varied": ["warmup_steps", "learning_rate"],
             "associations": [{"key": "learning_rate", "op": ">=", "value": 3e-3, "unstable": 1, "runs": 1,
                               "other_unstable": 0, "other_runs": 2,
                               "text": "1 of 1 runs with learning_rate >= 0.003 spiked; 0 of 2 otherwise"}]}
    loaded = load(Outcome(runs, (), Settings(), sweep=sweep))
    loaded.clean()
    scatter = plot(loaded, "sweep")
    assert sorted(t["n"] for t in scatter["traces"]) == [1, 2] and scatter["points"] == 3
    assert "1 of 1 runs with learning_rate >= 0.003 spiked" in loaded.js("document.querySelector('#sweep').textContent")
    # sorting the sweep table by a column
    loaded.page.locator("#sweep th", has_text="warmup_steps").click()
    cells = loaded.js("Array.from(document.querySelectorAll('#sweep tbody tr td:nth-child(2)'))"
                      ".map(c => c.textContent)")
    assert cells == ["20", "20", "27"]


def test_run_filter(load, samples):
    loaded = load(samples)
    loaded.page.fill("#run-filter", "founding")
    visible_runs = "Array.from(document.querySelectorAll('details.run')).filter(d => !d.classList.contains('hidden'))"
    shown = loaded.js(visible_runs + ".length")
    assert shown == 2
    assert loaded.js("document.getElementById('run-count').textContent") == f"2 of {len(samples.runs)} runs shown"
    loaded.page.fill("#run-filter", "")
    loaded.page.check("#run-problems")
    worst = loaded.js(visible_runs + ".map(d => d.getAttribute('data-worst'))")
    assert worst and set(worst) <= {"error", "warning"}
    loaded.clean()


def test_sweep_grid_shows_the_unstable_share_per_cell(load, samples):
    cells = [(20, 1e-3), (20, 3e-3), (100, 1e-3), (100, 3e-3)]
    rows = [{"run": r.name, "config": {"warmup_steps": cells[i % 4][0], "learning_rate": cells[i % 4][1]},
             "unstable": cells[i % 4] == (20, 3e-3)} for i, r in enumerate(samples.runs)]
    sweep = {"runs": rows, "varied": ["warmup_steps", "learning_rate"], "associations": []}
    loaded = load(dataclasses.replace(samples, sweep=sweep))
    loaded.clean()
    div = "document.querySelector('figure.plot[data-plot=\"sweep\"] .plotdiv')"
    assert loaded.js(f"{div}.getAttribute('data-grouped')") == "1"
    (trace,) = loaded.js(f"{div}.data.map(t => ({{x: t.x, y: t.y, colour: t.marker.color, text: t.text}}))")
    assert sorted(zip(trace["x"], trace["y"], trace["colour"], strict=True)) == [
        (20, 0.001, 0), (20, 0.003, 1), (100, 0.001, 0), (100, 0.003, 0)]
    assert "warmup_steps = 20, learning_rate = 0.003: 3 of 3 runs unstable" in trace["text"]
    assert loaded.js(f"{div}.querySelectorAll('.scatterlayer .points path').length") == 4
