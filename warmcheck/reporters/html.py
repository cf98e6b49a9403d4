"""HTML report: one self-contained page (``--format html``, ``--html FILE``).

Interactive plots per run (LR with the observed and configured warmup ends, loss with its spikes and
divergence, gradient norm: zoom, hover values, a log-scale toggle), every run's LR and loss overlaid,
the run against its baselines (``warmcheck compare``), the sweep view, the findings with each code
linked to its ``warmcheck explain`` text.

Nothing is fetched when the page is viewed: plotly.js (the ``plotly`` package's bundled
``plotly.min.js``, read as a file, the Python package never imported) and the page's own script are
inlined, and a Content-Security-Policy allows no request and no script but those two (by hash). Tables
are rendered here, escaped; the plots are drawn by the script from a JSON document in a
``<script type="application/json">`` element (``<`` written ``\\u003c``) and build their text with
``textContent`` (see ``html_assets/report.js``). Per-run plots are drawn when their run is opened and
scrolled into view, so a 1,000-run page draws two overlays at load, not 3,000 plots.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import importlib.util
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import WarmcheckError
from ..findings import FAMILIES, RULES, Finding, Severity
from ..model import Run
from ..pipeline import Outcome
from .common import steps_of, summarize
from .escape import visible
from .html_data import MAX_POINTS, POINT_BUDGET, dumps, plot_data, short_names

INSTALL_HINT = "pip install 'warmcheck[html]'"
ASSETS = Path(__file__).with_name("html_assets")
OPEN_RUNS = 10  # runs whose section is open when the page loads (their plots drawn when scrolled to)


class HtmlUnavailableError(WarmcheckError):
    """The ``html`` extra (plotly, for its bundled plotly.js) is not installed."""


def plotly_js_path() -> Path:
    """The ``plotly.min.js`` the ``plotly`` package ships, found without importing the package."""
    try:
        spec = importlib.util.find_spec("plotly")
    except (ImportError, ValueError):
        spec = None
    for where in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(where) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    raise HtmlUnavailableError(f"the HTML report needs plotly.js from the plotly package: {INSTALL_HINT}")


@functools.lru_cache(maxsize=4)
def _script(path: Path) -> str:
    """A script's text, safe between ``<script>`` tags (``</script`` and ``<!--`` cannot end or confuse
    the element; the replacements mean the same inside the strings and regexes they could occur in)."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)
    return text.replace("<!--", "<\\!--")


def _asset(name: str) -> str:
    return _script(ASSETS / name)


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _t(value: object) -> str:
    """Data as HTML text: controls and bidi marks shown as escapes (``escape.visible``), markup escaped."""
    return html.escape(visible(str(value)), quote=True)


def _num(value: object) -> str:
    """A cell: ``-`` for nothing, 4 significant digits for a float."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_num(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_num(v) for v in value) or "-"
    return str(value)


def _cell(value: object, cls: str = "") -> str:
    sort = f' data-v="{value}"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return f"<td{sort}{f' class={cls!r}' if cls else ''}>{_t(_num(value))}</td>"


class HtmlReporter:
    """``--format html``. ``max_points``: points drawn per series at most; ``budget``: over all series
    (a 1,000-run page draws fewer per series); ``open_runs``: runs shown open when at most this many."""

    def __init__(self, max_points: int = MAX_POINTS, budget: int = POINT_BUDGET, open_runs: int = OPEN_RUNS) -> None:
        self.plotly = plotly_js_path()  # fails before any analysis when the extra is missing
        self.max_points, self.budget, self.open_runs = max_points, budget, open_runs

    def render(self, outcome: Outcome) -> str:
        """See :class:`~warmcheck.reporters.interface.Reporter`."""
        runs, index = outcome.runs, {r.name: i for i, r in reversed(list(enumerate(outcome.runs)))}
        short = dict(zip((r.name for r in runs), short_names([r.name for r in runs]), strict=True))
        prefix = runs[0].name[:len(runs[0].name) - len(short[runs[0].name])] if runs else ""
        extra: dict[str, Any] = {}
        sections = [_overlays(len(runs))]
        if isinstance(outcome.comparison, Mapping):
            i = index.get(str(outcome.comparison.get("run")))
            sections.append(_comparison(outcome.comparison, runs[i].findings if i is not None else ()))
            extra["compare"] = _compare_data(outcome.comparison, index, outcome.baselines)
        if isinstance(outcome.sweep, Mapping):
            sections.append(_sweep(outcome.sweep, index, short))
            extra["sweep"] = _sweep_data(outcome.sweep, index)
        sections += [_runs(runs, len(runs) <= self.open_runs, short), _findings(outcome, short), _rules()]
        data = plot_data(runs, outcome.baselines, outcome.settings, extra, self.max_points, self.budget)
        limit = int(re.match(r'\{"limit":(\d+)', data).group(1))  # type: ignore[union-attr]
        plotly, script = _script(self.plotly), _asset("report.js")
        csp = (f"default-src 'none'; script-src {_sha256(plotly)} {_sha256(script)}; style-src 'unsafe-inline'; "
               "img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'")
        return "".join([
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            f"<meta name=\"generator\" content=\"warmcheck {__version__}\">\n",
            f"<title>warmcheck: {len(runs)} run{'s' if len(runs) != 1 else ''}</title>\n",
            f"<style>\n{_asset('report.css')}</style>\n</head>\n<body>\n",
            _header(outcome, limit, bool(extra.get("compare")), bool(extra.get("sweep")), prefix),
            "<main>\n", *sections, "</main>\n",
            f"<script type=\"application/json\" id=\"warmcheck-data\">{data}</script>\n",
            f"<script>{plotly}</script>\n<script>{script}</script>\n</body>\n</html>\n",
        ])


def _header(outcome: Outcome, limit: int, compare: bool, sweep: bool, prefix: str) -> str:
    counts = outcome.counts()
    n = len(outcome.runs)
    tally = ", ".join(f'<span class="sev sev-{s.value}">{counts[s]} {s.value}</span>'
                      for s in sorted(counts, key=lambda s: -s.rank))
    links = [("overlays", "all runs"), *([("comparison", "comparison")] if compare else []),
             *([("sweep", "sweep")] if sweep else []), ("runs", "runs"), ("findings", "findings"),
             ("rules", "rules")]
    nav = " ".join(f'<a href="#{a}">{b}</a>' for a, b in links)
    return (f"<header>\n<h1>warmcheck report</h1>\n<p class=\"tally\">{n} run{'s' if n != 1 else ''}: {tally}</p>\n"
            f"<nav>{nav}</nav>\n"
            f"<p class=\"note\">Plots draw at most {limit} points per series: a longer series is downsampled "
            "to the minimum and maximum of each bucket of consecutive steps, its first NaN/Inf and every step "
            "a finding names, so spikes and gaps stay visible. The analysis used every point. "
            "Drag to zoom, double-click to reset, hover for values.</p>\n"
            + (f"<p class=\"note\">Run names are shown without the <code>{_t(prefix)}</code> they all start with."
               "</p>\n" if prefix else "") +
            "<noscript><p class=\"note\">The plots need JavaScript; the tables work without it.</p></noscript>\n"
            "</header>\n")


def _plot(key: str, title: str) -> str:
    return (f'<figure class="plot" data-plot="{key}"><figcaption>{title} '
            '<label class="logtoggle"><input type="checkbox" class="logy"> log y</label></figcaption>'
            '<div class="plotdiv"></div></figure>\n')


def _overlays(n: int) -> str:
    return ("<section id=\"overlays\">\n<h2>All runs</h2>\n"
            f"<p>{n} run{'s' if n != 1 else ''} overlaid (many runs: stable ones grey, unstable ones red; "
            "hover names the run, a click opens it).</p>\n<div class=\"plots\">\n"
            + _plot("overlay-lr", "learning rate") + _plot("overlay-loss", "loss") + "</div>\n</section>\n")


def _name(name: str, short: Mapping[str, str]) -> str:
    """A run's name as shown (without the prefix every run shares), the whole name as its tooltip."""
    shown = short.get(name, name)
    return _t(shown) if shown == name else f'<span title="{_t(name)}">{_t(shown)}</span>'


def _runs(runs: Sequence[Run], open_all: bool, short: Mapping[str, str]) -> str:
    out = ["<section id=\"runs\">\n<h2>Runs</h2>\n<div class=\"filter\">"
           "<input type=\"search\" id=\"run-filter\" placeholder=\"filter runs by name\" aria-label=\"filter runs\">"
           " <label><input type=\"checkbox\" id=\"run-problems\"> only runs with warnings or errors</label>"
           " <span id=\"run-count\"></span></div>\n"
           "<div class=\"runhead\"><span>worst</span><span>run</span><span>warmup end</span><span>audit</span>"
           "<span>spikes</span><span>divergence</span></div>\n"]
    for i, run in enumerate(runs):
        s = summarize(run)
        info = f"{s.points} points, steps {s.steps}." + (f" Schedule {s.schedule}." if s.schedule else "")
        out.append(
            f'<details class="run" id="run-{i}" data-run="{i}" data-worst="{s.worst}"{" open" if open_all else ""}>'
            f'<summary><span class="sev sev-{s.worst}">{s.worst}</span>'
            f'<code class="name">{_name(run.name, short)}</code>'
            f"<span>{_t(s.warmup_end)}</span><span>{_t(s.audit)}</span><span>{_t(s.spikes)}</span>"
            f"<span>{_t(s.divergence)}</span></summary>\n<p class=\"info\">{_t(info)}</p>\n"
            f'<div class="plots" data-run="{i}"></div>\n{_finding_table(run.findings, None)}</details>\n')
    out.append("</section>\n")
    return "".join(out)


def _finding_table(findings: Sequence[Finding], runs: Mapping[str, int] | None,
                   short: Mapping[str, str] | None = None) -> str:
    """Findings as table rows, each code linked to its rule; ``runs``: a run column linking to the run."""
    if not findings:
        return "<p class=\"clean\">No findings.</p>\n"
    head = "<th>code</th><th>severity</th>" + ("<th>run</th>" if runs is not None else "")
    rows = [f"<table class=\"findings sortable\"><thead><tr>{head}<th>tag</th><th>steps</th><th>message</th>"
            "</tr></thead><tbody>\n"]
    for f in findings:
        code = f'<a class="code" href="#rule-{_t(f.code)}">{_t(f.code)}</a>' if f.code in RULES else _t(f.code)
        run = ""
        if runs is not None:
            i = runs.get(f.run)
            run = (f'<td><a href="#run-{i}">{_name(f.run, short or {})}</a></td>' if i is not None
                   else f"<td>{_t(f.run or f.source or '-')}</td>")
        step = f' data-v="{f.step}"' if f.step is not None else ""
        rows.append(f'<tr class="row-{f.severity.value}"><td>{code}</td><td>{f.severity.value}</td>{run}'
                    f"<td>{_t(f.tag or '-')}</td><td{step}>{_t(steps_of(f))}</td><td>{_t(f.message)}</td></tr>\n")
    rows.append("</tbody></table>\n")
    return "".join(rows)


def _findings(outcome: Outcome, short: Mapping[str, str]) -> str:
    index = {r.name: i for i, r in reversed(list(enumerate(outcome.runs)))}
    every = outcome.all_findings()
    worst = sorted(every, key=lambda f: -Severity(f.severity).rank)  # stable: report order within a severity
    return ("<section id=\"findings\">\n<h2>Findings</h2>\n<p>Every finding, errors first; a code links to "
            "what it means (<code>warmcheck explain CODE</code>), a run to its plots.</p>\n"
            + _finding_table(worst, index, short) + "</section>\n")


def _rules() -> str:
    out = ["<section id=\"rules\">\n<h2>Rules</h2>\n<p>What each code detects, why it matters and what to do "
           "(the text of <code>warmcheck explain CODE</code>).</p>\n"]
    for rule in RULES.values():
        family = FAMILIES.get(rule.code[:3], "")
        out.append(f'<div class="rule" id="rule-{_t(rule.code)}"><h3>{_t(rule.code)} <code>{_t(rule.slug)}</code> '
                   f"<span class=\"sev sev-{rule.severity.value}\">{rule.severity.value}</span> "
                   f"<small>{_t(family)}</small></h3><p>{_t(rule.summary)}</p><pre>{_t(rule.doc)}</pre></div>\n")
    out.append("</section>\n")
    return "".join(out)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _sweep(sweep: Mapping[str, Any], index: Mapping[str, int], short: Mapping[str, str]) -> str:
    """The sweep view: what goes with instability, then one row per run (its varied configuration first)."""
    rows = [r for r in _as_list(sweep.get("runs")) if isinstance(r, Mapping)]
    varied = [str(k) for k in _as_list(sweep.get("varied"))]
    assoc = [a for a in _as_list(sweep.get("associations")) if isinstance(a, Mapping)]
    out = ["<section id=\"sweep\">\n<h2>Sweep</h2>\n"]
    if assoc:
        out.append("<p>Configured values that go with instability (a spike, divergence or NaN/Inf):</p>\n"
                   "<ul class=\"assoc\">"
                   + "".join(f"<li>{_t(a.get('text', ''))}</li>" for a in assoc) + "</ul>\n")
    elif varied:
        out.append("<p>No configured value goes with instability.</p>\n")
    else:
        out.append("<p>The runs do not differ in a configured value.</p>\n")
    if varied:
        out.append(_plot("sweep", "the runs by their configuration (red: unstable; a grid cell: the share of its "
                                  "runs that were unstable)"))
    cols = [("configured_warmup", "configured warmup"), ("observed_warmup_end", "observed warmup end"),
            ("peak_lr", "peak LR"), ("peak_step", "peak step"), ("spikes", "spikes"), ("diverged", "diverged"),
            ("nonfinite", "NaN/Inf"), ("unstable", "unstable"), ("final_loss", "final loss")]
    head = "".join(f"<th>{_t(k)}</th>" for k in varied) + "".join(f"<th>{c}</th>" for _, c in cols)
    out.append(f"<details{' open' if len(rows) <= 50 else ''}><summary>the {len(rows)} runs: configuration and "
               "outcome (click a column to sort)</summary>\n"
               f"<table class=\"sweep sortable\"><thead><tr><th>run</th>{head}<th>findings</th></tr></thead><tbody>\n")
    for r in rows:
        name = str(r.get("run", ""))
        i = index.get(name)
        link = f'<a href="#run-{i}">{_name(name, short)}</a>' if i is not None else _t(name)
        config = r.get("config") if isinstance(r.get("config"), Mapping) else {}
        assert isinstance(config, Mapping)
        counts = r.get("findings") if isinstance(r.get("findings"), Mapping) else {}
        assert isinstance(counts, Mapping)
        tally = "/".join(str(counts.get(s.value, 0)) for s in (Severity.ERROR, Severity.WARNING, Severity.INFO))
        out.append(f'<tr{" class=unstable" if r.get("unstable") else ""}><td>{link}</td>'
                   + "".join(_cell(config.get(k)) for k in varied)
                   + "".join(_cell(r.get(k)) for k, _ in cols)
                   + f"<td title=\"error/warning/info\">{tally}</td></tr>\n")
    out.append("</tbody></table>\n</details>\n</section>\n")
    return "".join(out)


def _sweep_data(sweep: Mapping[str, Any], index: Mapping[str, int]) -> dict[str, Any]:
    rows = [r for r in _as_list(sweep.get("runs")) if isinstance(r, Mapping)]
    keys = [str(k) for k in _as_list(sweep.get("varied"))]
    points = []
    for r in rows:
        cfg = r.get("config") if isinstance(r.get("config"), Mapping) else {}
        assert isinstance(cfg, Mapping)
        points.append({"run": index.get(str(r.get("run", ""))), "name": visible(str(r.get("run", ""))),
                       "cfg": {k: cfg.get(k) if isinstance(cfg.get(k), (int, float, str, bool)) else None
                               for k in keys},
                       "unstable": bool(r.get("unstable")), "final_loss": r.get("final_loss")
                       if isinstance(r.get("final_loss"), (int, float)) else None})
    return {"keys": [visible(k) for k in _plot_keys(keys, rows, sweep)], "points": points}


def _plot_keys(keys: Sequence[str], rows: Sequence[Mapping[str, Any]], sweep: Mapping[str, Any]) -> list[str]:
    """The varied keys in the order the sweep plot takes its axes from: those the associations name first,
    keys with a value per run (seeds) last, a key whose values repeat an earlier one's (``lr`` and
    ``peak_lr``) left out."""
    named: list[str] = []
    for a in _as_list(sweep.get("associations")):
        terms = _as_list(a.get("terms")) if isinstance(a, Mapping) else []
        for t in terms or ([a] if isinstance(a, Mapping) else []):
            key = t.get("key") if isinstance(t, Mapping) else None
            if key in keys and key not in named:
                named.append(str(key))

    def column(key: str) -> tuple[str, ...]:
        return tuple(repr(r.get("config", {}).get(key) if isinstance(r.get("config"), Mapping) else None)
                     for r in rows)

    rest = sorted((k for k in keys if k not in named), key=lambda k: len(set(column(k))) == len(rows) > 1)
    chosen: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for key in named + rest:
        col = column(key)
        if col not in seen:
            seen.add(col)
            chosen.append(key)
    return chosen


def _comparison(comp: Mapping[str, Any], findings: Sequence[Finding]) -> str:
    """``warmcheck compare``: the verdict (the run's WC5xx findings), the run, its baselines and tolerances,
    what each check measured, and the run drawn over its baselines."""
    baselines = ", ".join(f"<code>{_t(b)}</code>" for b in _as_list(comp.get("baselines"))) or "-"
    tol = comp.get("tolerance") if isinstance(comp.get("tolerance"), Mapping) else {}
    assert isinstance(tol, Mapping)
    verdict = [f for f in findings if f.code.startswith("WC5")]
    out = ["<section id=\"comparison\">\n<h2>Comparison with the baseline</h2>\n",
           f"<p>Run <code>{_t(comp.get('run', '-'))}</code> against {baselines}"
           + (f"; tolerance {_t(', '.join(f'{k} {_num(v)}' for k, v in tol.items()))}" if tol else "") + ".</p>\n",
           "<ul class=\"verdict\">" + "".join(
               f'<li><span class="sev sev-{f.severity.value}">{f.severity.value}</span> '
               f'<a class="code" href="#rule-{_t(f.code)}">{_t(f.code)}</a> {_t(f.message)}</li>' for f in verdict)
           + "</ul>\n" if verdict else "<p>No difference beyond the tolerance.</p>\n",
           "<div class=\"kvs\">\n"]
    for part, title in (("lr", "learning rate"), ("loss", "loss")):
        section = comp.get(part)
        if isinstance(section, Mapping):
            out.append(f"<table class=\"kv\"><thead><tr><th colspan=\"2\">{title}</th></tr></thead><tbody>\n")
            out += [f"<tr><td>{_t(str(k).replace('_', ' '))}</td>{_cell(v)}</tr>\n" for k, v in section.items()]
            out.append("</tbody></table>\n")
    news = [(key, title) for key, title in (("new_spikes", "new loss spikes at steps"),
                                            ("new_nonfinite", "new NaN/Inf at steps")) if key in comp]
    if news:
        out.append("<table class=\"kv\"><thead><tr><th colspan=\"2\">new instability</th></tr></thead><tbody>\n"
                   + "".join(f"<tr><td>{title}</td>{_cell(_as_list(comp.get(key)))}</tr>\n" for key, title in news)
                   + "</tbody></table>\n")
    out.append("</div>\n<div class=\"plots\">\n" + _plot("compare-lr", "learning rate: run and baselines")
               + _plot("compare-loss", "loss: run and baselines") + "</div>\n</section>\n")
    return "".join(out)


def _compare_data(comp: Mapping[str, Any], index: Mapping[str, int], baselines: Sequence[Run]) -> dict[str, Any]:
    def step(part: str, key: str) -> int | None:
        section = comp.get(part)
        value = section.get(key) if isinstance(section, Mapping) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def steps(key: str) -> list[int]:
        return [s for s in _as_list(comp.get(key)) if isinstance(s, int) and not isinstance(s, bool)]

    run = index.get(str(comp.get("run")))
    loss = comp.get("loss")
    return {"run": run if run is not None else (0 if index else None), "baselines": list(range(len(baselines))),
            "lr_step": step("lr", "first_diff_step"), "loss_step": step("loss", "first_outside_step"),
            "run_warmup_end": step("lr", "run_warmup_end"), "baseline_warmup_end": step("lr", "baseline_warmup_end"),
            "new_spikes": steps("new_spikes"), "new_nonfinite": steps("new_nonfinite"),
            "band": _numbers(loss.get("band")) if isinstance(loss, Mapping) else None,
            "value": _numbers([loss.get("value")]) if isinstance(loss, Mapping) else None}


def _numbers(value: Any) -> list[float] | None:
    """``value`` if it is a list of finite numbers, else None."""
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    return [float(v) for v in value] if ok else None


__all__ = ["HtmlReporter", "HtmlUnavailableError", "INSTALL_HINT", "plotly_js_path", "dumps"]
