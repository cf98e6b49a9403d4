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
import importlib.util
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
from .html_data import MAX_POINTS, POINT_BUDGET, dumps, plot_data, short_names
from .html_parts import compare_data, comparison, name_html, plot_figure, sweep, sweep_data, text

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
            sections.append(comparison(outcome.comparison, runs[i].findings if i is not None else ()))
            extra["compare"] = compare_data(outcome.comparison, index, outcome.baselines)
        if isinstance(outcome.sweep, Mapping):
            sections.append(sweep(outcome.sweep, index, short))
            extra["sweep"] = sweep_data(outcome.sweep, index)
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
            + (f"<p class=\"note\">Run names are shown without the <code>{text(prefix)}</code> they all start with."
               "</p>\n" if prefix else "") +
            "<noscript><p class=\"note\">The plots need JavaScript; the tables work without it.</p></noscript>\n"
            "</header>\n")


def _overlays(n: int) -> str:
    return ("<section id=\"overlays\">\n<h2>All runs</h2>\n"
            f"<p>{n} run{'s' if n != 1 else ''} overlaid (many runs: stable ones grey, unstable ones red; "
            "hover names the run, a click opens it).</p>\n<div class=\"plots\">\n"
            + plot_figure("overlay-lr", "learning rate") + plot_figure("overlay-loss", "loss") + "</div>\n</section>\n")


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
            f'<code class="name">{name_html(run.name, short)}</code>'
            f"<span>{text(s.warmup_end)}</span><span>{text(s.audit)}</span><span>{text(s.spikes)}</span>"
            f"<span>{text(s.divergence)}</span></summary>\n<p class=\"info\">{text(info)}</p>\n"
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
        code = f'<a class="code" href="#rule-{text(f.code)}">{text(f.code)}</a>' if f.code in RULES else text(f.code)
        run = ""
        if runs is not None:
            i = runs.get(f.run)
            run = (f'<td><a href="#run-{i}">{name_html(f.run, short or {})}</a></td>' if i is not None
                   else f"<td>{text(f.run or f.source or '-')}</td>")
        step = f' data-v="{f.step}"' if f.step is not None else ""
        rows.append(f'<tr class="row-{f.severity.value}"><td>{code}</td><td>{f.severity.value}</td>{run}'
                    f"<td>{text(f.tag or '-')}</td><td{step}>{text(steps_of(f))}</td><td>{text(f.message)}</td></tr>\n")
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
        out.append(f'<div class="rule" id="rule-{text(rule.code)}"><h3>{text(rule.code)} '
                   f"<code>{text(rule.slug)}</code> "
                   f"<span class=\"sev sev-{rule.severity.value}\">{rule.severity.value}</span> "
                   f"<small>{text(family)}</small></h3><p>{text(rule.summary)}</p><pre>{text(rule.doc)}</pre></div>\n")
    out.append("</section>\n")
    return "".join(out)


__all__ = ["HtmlReporter", "HtmlUnavailableError", "INSTALL_HINT", "plotly_js_path", "dumps"]
