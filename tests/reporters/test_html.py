"""The HTML report without a browser: the page's parts, its escaping, the plot data and its decimation.

What the browser does with the page (plots drawn, no request, zoom, log scale, hostile names shown as
text) is in ``test_html_browser.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.util
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from outcome import shared_outcome

from warmcheck.config import Settings
from warmcheck.errors import WarmcheckError
from warmcheck.findings import RULES
from warmcheck.pipeline import Outcome, analyze
from warmcheck.reporters import html_data
from warmcheck.reporters.html_data import decimate, dumps, numbers, point_limit, short_names

SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"
HOSTILE = "</script><script>alert(1)</script><b>bold</b><img src=x onerror=alert(2)>&amp;\u202eevil"


def _reporter(**kwargs):
    pytest.importorskip("plotly", reason="the HTML report needs the html extra: pip install 'warmcheck[html]'")
    from warmcheck.reporters.html import HtmlReporter

    return HtmlReporter(**kwargs)


class _Tags(HTMLParser):
    """Start tags (with attributes), and each <script>'s text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def parse(page: str) -> _Tags:
    p = _Tags()
    p.feed(page)
    p.close()
    return p


def data_of(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="warmcheck-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def samples() -> Outcome:
    return analyze([str(SAMPLES)], keep_points=True)


# ---- decimation and numbers -------------------------------------------------------------------------------


def test_short_series_are_kept_whole():
    assert decimate(np.arange(10.0), 10).tolist() == list(range(10))


def test_decimation_keeps_extremes_ends_gaps_and_named_steps():
    rng = np.random.default_rng(3)
    values = rng.normal(1.0, 0.01, 100_000)
    values[12_345] = 50.0  # a one-point spike
    values[70_001] = -20.0  # a one-point dip
    values[40_000:40_010] = np.nan  # a gap
    values[90_000] = np.inf
    idx = decimate(values, 2000, keep=[5, 99_998, 55_555])
    assert idx.shape[0] <= 2000 and np.all(np.diff(idx) > 0)
    kept = set(idx.tolist())
    assert {0, 99_999, 12_345, 70_001, 5, 99_998, 55_555} <= kept
    assert 40_000 in kept and 90_000 in kept  # the first NaN/Inf of its bucket: the line breaks there
    # every bucket's minimum and maximum are drawn: the drawn envelope equals the data's
    assert np.nanmax(np.where(np.isfinite(values[idx]), values[idx], np.nan)) == 50.0
    assert np.nanmin(values[idx]) == -20.0


def test_decimation_bounds_the_named_steps():
    idx = decimate(np.zeros(10_000), 100, keep=range(0, 10_000, 7))
    assert idx.shape[0] <= 100


def test_numbers_are_six_significant_digits_and_nonfinite_is_null():
    assert numbers(np.array([1.23456789, 3e-4, 1e20, -0.0])) == "[1.23457,0.0003,1e+20,-0]"
    assert json.loads(numbers(np.array([np.nan, 1.0, np.inf, -np.inf]))) == [None, 1.0, None, None]


def test_point_limit_shares_a_budget():
    assert point_limit(3) == 2000
    assert point_limit(3000) == 500  # 1,000 runs x 3 series within 1.5 M points
    assert point_limit(10**6) == html_data.MIN_POINTS


def test_short_names_leave_out_the_shared_directories():
    assert short_names(["/a/b/x/log.csv", "/a/b/y", "/a/b/z/w"]) == ["x/log.csv", "y", "z/w"]
    assert short_names(["/a/b/x", "/a/b/x/y"]) == ["x", "x/y"]  # each keeps its last component
    assert short_names(["runs/a", "runs/a"]) == ["a", "a"]
    assert short_names(["/a/run"]) == ["/a/run"] and short_names(["x", "/y"]) == ["x", "/y"]


def test_json_in_a_script_element_cannot_close_it():
    text = dumps({"name": HOSTILE, "x": numbers(np.array([1.0]))})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"name": HOSTILE, "x": [1.0]}


# ---- the page ------------------------------------------------------------------------------------------------


def test_missing_plotly_is_an_error_naming_the_extra(monkeypatch):
    from warmcheck.reporters import html

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "plotly" else real(name, *a))
    with pytest.raises(WarmcheckError, match=re.escape("pip install 'warmcheck[html]'")):
        html.HtmlReporter()


def test_plotly_is_read_not_imported():
    import subprocess
    import sys

    pytest.importorskip("plotly")
    code = ("import sys; from warmcheck.reporters.html import HtmlReporter; HtmlReporter(); "
            "print('plotly' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_page_is_self_contained(samples):
    page = _reporter().render(samples)
    tags = parse(page)
    scripts = [a for t, a in tags.tags if t == "script"]
    assert len(scripts) == 3 and scripts[0] == {"type": "application/json", "id": "warmcheck-data"}
    assert all("src" not in a for a in scripts)
    assert not [a for t, a in tags.tags if t in ("link", "img", "iframe", "object", "embed")]
    markup = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)  # plotly.js holds URLs in strings
    assert not re.search(r"(src|href|url)[=(]\"?(https?:)?//", markup)  # nothing to fetch or link to
    assert "plotly.js v" in tags.scripts[1][:300]


def test_csp_allows_exactly_the_two_inline_scripts(samples):
    page = _reporter().render(samples)
    tags = parse(page)
    (csp,) = [a["content"] for t, a in tags.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp is not None and "default-src 'none'" in csp and "connect-src" not in csp
    hashes = re.findall(r"'sha256-([A-Za-z0-9+/=]+)'", csp)
    expected = [base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in tags.scripts[1:]]
    assert hashes == expected


def test_every_run_and_finding_is_there_with_links_to_rules(samples):
    page = _reporter().render(samples)
    tags = parse(page)
    ids = {a.get("id") for _, a in tags.tags}
    assert {f"run-{i}" for i in range(len(samples.runs))} <= ids
    assert {f"rule-{code}" for code in RULES} <= ids
    links = [a["href"] for t, a in tags.tags if t == "a" and (a.get("href") or "").startswith("#rule-")]
    codes = [f.code for f in samples.all_findings()]
    assert len(links) >= len(codes) and {h[len("#rule-"):] for h in links} == set(codes)
    assert all(h[1:] in ids for h in links)
    doc = data_of(page)
    assert [r["name"] for r in doc["runs"]] == [r.name for r in samples.runs]


def test_plot_data_marks_warmup_ends_spikes_and_divergence():
    settings = Settings(warmup_steps=20)
    runs = analyze([str(SAMPLES / n) for n in ("founding_book_tb", "loss_spike", "diverged")], settings).runs
    doc = data_of(_reporter().render(Outcome(runs, (), settings)))
    book, spike, diverged = ({p["role"]: p for p in r["panels"]} for r in doc["runs"])
    assert {(line["kind"], line["x"]) for line in book["lr"]["lines"]} == {("observed", 27), ("configured", 20)}
    assert [m["x"] for m in spike["loss"]["marks"] if m["code"] == "WC301"] == [53]
    assert [m["x"] for m in spike["grad_norm"]["marks"] if m["code"] == "WC302"] == [52]
    lines = {(line["kind"], line["x"]) for line in diverged["loss"]["lines"]}
    onset = next(f.step for f in runs[2].findings if f.code == "WC403")
    assert ("divergence", onset) in lines and ("nonfinite", 340) in lines
    assert diverged["loss"]["y"][-1] is None  # NaN: a gap, not a number
    assert len(book["lr"]["x"]) == book["lr"]["n"] == 135  # short: every point


def test_long_series_are_downsampled_within_the_limit(tmp_path):
    steps = 50_000
    loss = 3.0 * np.exp(-np.arange(steps) / 10_000) + 0.01 * np.sin(np.arange(steps))
    loss[31_337] = 40.0
    rows = "".join(f"{s},{1e-3 * min(1.0, (s + 1) / 500)!r},{float(loss[s])!r}\n" for s in range(steps))
    (tmp_path / "log.csv").write_text("step,lr,loss\n" + rows)
    outcome = analyze([str(tmp_path / "log.csv")], keep_points=True)
    doc = data_of(_reporter(max_points=1000).render(outcome))
    (panels,) = [{p["role"]: p for p in r["panels"]} for r in doc["runs"]]
    assert doc["limit"] == 1000
    assert panels["loss"]["n"] == steps and len(panels["loss"]["x"]) <= 1000
    assert max(panels["loss"]["y"]) == 40.0 and 31_337 in panels["loss"]["x"]
    assert "at most 1000 points per series" in _reporter(max_points=1000).render(outcome)


def test_hostile_names_are_text_everywhere():
    base = shared_outcome()
    run = dataclasses.replace(base.runs[0], name=HOSTILE)
    findings = tuple(dataclasses.replace(f, run=HOSTILE, message=f"{HOSTILE} said") for f in run.findings)
    run = dataclasses.replace(run, findings=findings)
    outcome = Outcome((run, base.runs[1]), base.findings, base.settings,
                      sweep={"runs": [{"run": HOSTILE, "config": {"k<b>": "<i>v</i>"}, "unstable": True}],
                             "varied": ["k<b>"], "associations": [{"text": HOSTILE}]},
                      comparison={"run": HOSTILE, "baselines": [HOSTILE], "lr": {"tag": HOSTILE}})
    page = _reporter().render(outcome)
    assert "<script>alert" not in page and "<img" not in page and "<b>bold" not in page and "<i>v" not in page
    assert "\u202e" not in page  # bidi override shown as an escape (escape.visible), like every other format
    tags = parse(page)
    assert [t for t, _ in tags.tags].count("script") == 3
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert data_of(page)["runs"][0]["name"] == HOSTILE.replace("\u202e", "\\u202e")


def test_sweep_and_comparison_sections_only_when_present(samples):
    plain = Outcome(samples.runs[:2], (), samples.settings)
    page = _reporter().render(plain)
    assert 'id="sweep"' not in page and 'id="comparison"' not in page
    sweep = {"runs": [{"run": samples.runs[0].name, "config": {"warmup_steps": 40, "lr": 3e-3},
                       "configured_warmup": 40, "observed_warmup_end": 40, "peak_lr": 0.003, "peak_step": 40,
                       "spikes": 0, "diverged": True, "nonfinite": True, "unstable": True, "final_loss": None,
                       "findings": {"error": 3, "warning": 0, "info": 0}},
                      {"run": samples.runs[1].name, "config": {"warmup_steps": 27, "lr": 1e-3},
                       "configured_warmup": None, "observed_warmup_end": 27, "peak_lr": 0.001, "peak_step": 27,
                       "spikes": 0, "diverged": False, "nonfinite": False, "unstable": False, "final_loss": 4.1,
                       "findings": {"error": 0, "warning": 0, "info": 0}}],
             "varied": ["warmup_steps", "lr"],
             "associations": [{"key": "lr", "op": ">=", "value": 0.003, "unstable": 1, "runs": 1,
                               "other_unstable": 0, "other_runs": 1,
                               "text": "1 of 1 runs with lr >= 0.003 were unstable; 0 of 1 otherwise"}]}
    comparison = {"run": samples.runs[1].name, "baselines": [samples.runs[2].name],
                  "tolerance": {"rtol": 0.05, "atol": 0.0, "lr_rtol": 1e-3},
                  "lr": {"tag": "train/lr", "common_steps": 135, "max_rel_diff": 0.0, "first_diff_step": None},
                  "loss": {"tag": "train/loss", "common_steps": 135, "first_outside_step": 60, "value": 9.1,
                           "band": [4.0, 4.6], "max_excess": 4.5, "band_kind": "tolerance"},
                  "new_spikes": [60], "new_nonfinite": []}
    full = Outcome(samples.runs[:2], (), samples.settings, sweep=sweep, comparison=comparison,
                   baselines=(samples.runs[2],))
    page = _reporter().render(full)
    assert 'id="sweep"' in page and "1 of 1 runs with lr &gt;= 0.003 were unstable" in page
    assert 'id="comparison"' in page and "first outside step" in page and "tolerance" in page
    doc = data_of(page)
    assert doc["compare"] == {"run": 1, "baselines": [0], "lr_step": None, "loss_step": 60, "run_warmup_end": None,
                              "baseline_warmup_end": None, "new_spikes": [60], "new_nonfinite": [],
                              "band": [4.0, 4.6], "value": [9.1]}
    assert doc["sweep"]["keys"] == ["lr", "warmup_steps"] and [p["run"] for p in doc["sweep"]["points"]] == [0, 1]
    assert [b["name"] for b in doc["baselines"]] == [samples.runs[2].name]


@pytest.mark.parametrize("sweep,comparison", [
    ({"runs": "not a list", "varied": None, "associations": [1, "x", None]}, {"lr": [], "loss": "?"}),
    ({"runs": [None, 3, {"run": 5, "config": []}], "varied": [1, 2]}, {"run": None, "baselines": "x", "new_spikes": 3}),
    ({}, {}),
])
def test_malformed_sections_render_without_failing(samples, sweep, comparison):
    page = _reporter().render(Outcome(samples.runs[:1], (), samples.settings, sweep=sweep, comparison=comparison))
    assert 'id="sweep"' in page and 'id="comparison"' in page
    data_of(page)


def test_sweep_plot_axes_follow_the_associations_without_repeats_or_seeds(samples):
    rows = [{"run": r.name, "config": {"lr": lr, "peak_lr": lr, "seed": i, "warmup_steps": w}}
            for i, (r, lr, w) in enumerate(zip(samples.runs[:4], (1e-3, 3e-3, 1e-3, 3e-3), (20, 20, 100, 100),
                                               strict=True))]
    sweep = {"runs": rows, "varied": ["lr", "peak_lr", "seed", "warmup_steps"],
             "associations": [{"key": "peak_lr & warmup_steps", "op": "and",
                               "terms": [{"key": "peak_lr"}, {"key": "warmup_steps"}], "text": "x"}]}
    doc = data_of(_reporter().render(Outcome(samples.runs[:4], (), samples.settings, sweep=sweep)))
    assert doc["sweep"]["keys"] == ["peak_lr", "warmup_steps", "seed"]  # lr repeats peak_lr; seed: one per run
    assert [p["cfg"]["peak_lr"] for p in doc["sweep"]["points"]] == [1e-3, 3e-3, 1e-3, 3e-3]
