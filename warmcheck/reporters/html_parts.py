"""Pieces of the HTML report (``html.py``): escaped text and cells, a plot's frame, and the two many-run
sections, the sweep view (JSON ``sweep``) and ``warmcheck compare``'s results (JSON ``comparison``).

Both sections are rendered defensively: the mappings come from other modules (and may grow or lack
keys), so every value is type-checked and anything unexpected is shown as text or left out.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..findings import Finding, Severity
from ..model import Run
from .escape import visible


def text(value: object) -> str:
    """Data as HTML text: controls and bidi marks shown as escapes (``escape.visible``), markup escaped."""
    return html.escape(visible(str(value)), quote=True)


def number(value: object) -> str:
    """A cell: ``-`` for nothing, 4 significant digits for a float."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {number(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(number(v) for v in value) or "-"
    return str(value)


def cell(value: object) -> str:
    """A table cell; a number also as ``data-v`` (the page's table sort compares those numerically)."""
    sort = f' data-v="{value}"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return f"<td{sort}>{text(number(value))}</td>"


def plot_figure(key: str, title: str) -> str:
    """The frame of one plot (``data-plot=key``; the page's script draws into it) with its log-scale toggle."""
    return (f'<figure class="plot" data-plot="{key}"><figcaption>{title} '
            '<label class="logtoggle"><input type="checkbox" class="logy"> log y</label></figcaption>'
            '<div class="plotdiv"></div></figure>\n')


def name_html(name: str, short: Mapping[str, str]) -> str:
    """A run's name as shown (without the prefix every run shares), the whole name as its tooltip."""
    shown = short.get(name, name)
    return text(shown) if shown == name else f'<span title="{text(name)}">{text(shown)}</span>'


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def sweep(sweep: Mapping[str, Any], index: Mapping[str, int], short: Mapping[str, str]) -> str:
    """The sweep view: what goes with instability, then one row per run (its varied configuration first)."""
    rows = [r for r in as_list(sweep.get("runs")) if isinstance(r, Mapping)]
    varied = [str(k) for k in as_list(sweep.get("varied"))]
    assoc = [a for a in as_list(sweep.get("associations")) if isinstance(a, Mapping)]
    out = ["<section id=\"sweep\">\n<h2>Sweep</h2>\n"]
    if assoc:
        out.append("<p>Configured values that go with instability (a spike, divergence or NaN/Inf):</p>\n"
                   "<ul class=\"assoc\">"
                   + "".join(f"<li>{text(a.get('text', ''))}</li>" for a in assoc) + "</ul>\n")
    elif varied:
        out.append("<p>No configured value goes with instability.</p>\n")
    else:
        out.append("<p>The runs do not differ in a configured value.</p>\n")
    if varied:
        out.append(plot_figure("sweep", "the runs by their configuration (red: unstable; a grid cell: the share of its "
                                  "runs that were unstable)"))
    cols = [("configured_warmup", "configured warmup"), ("observed_warmup_end", "observed warmup end"),
            ("peak_lr", "peak LR"), ("peak_step", "peak step"), ("spikes", "spikes"), ("diverged", "diverged"),
            ("nonfinite", "NaN/Inf"), ("unstable", "unstable"), ("final_loss", "final loss")]
    head = "".join(f"<th>{text(k)}</th>" for k in varied) + "".join(f"<th>{c}</th>" for _, c in cols)
    out.append(f"<details{' open' if len(rows) <= 50 else ''}><summary>the {len(rows)} runs: configuration and "
               "outcome (click a column to sort)</summary>\n"
               f"<table class=\"sweep sortable\"><thead><tr><th>run</th>{head}<th>findings</th></tr></thead><tbody>\n")
    for r in rows:
        name = str(r.get("run", ""))
        i = index.get(name)
        link = f'<a href="#run-{i}">{name_html(name, short)}</a>' if i is not None else text(name)
        config = r.get("config") if isinstance(r.get("config"), Mapping) else {}
        assert isinstance(config, Mapping)
        counts = r.get("findings") if isinstance(r.get("findings"), Mapping) else {}
        assert isinstance(counts, Mapping)
        tally = "/".join(str(counts.get(s.value, 0)) for s in (Severity.ERROR, Severity.WARNING, Severity.INFO))
        out.append(f'<tr{" class=unstable" if r.get("unstable") else ""}><td>{link}</td>'
                   + "".join(cell(config.get(k)) for k in varied)
                   + "".join(cell(r.get(k)) for k, _ in cols)
                   + f"<td title=\"error/warning/info\">{tally}</td></tr>\n")
    out.append("</tbody></table>\n</details>\n</section>\n")
    return "".join(out)


def sweep_data(sweep: Mapping[str, Any], index: Mapping[str, int]) -> dict[str, Any]:
    rows = [r for r in as_list(sweep.get("runs")) if isinstance(r, Mapping)]
    keys = [str(k) for k in as_list(sweep.get("varied"))]
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
    for a in as_list(sweep.get("associations")):
        terms = as_list(a.get("terms")) if isinstance(a, Mapping) else []
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


def comparison(comp: Mapping[str, Any], findings: Sequence[Finding]) -> str:
    """``warmcheck compare``: the verdict (the run's WC5xx findings), the run, its baselines and tolerances,
    what each check measured, and the run drawn over its baselines."""
    baselines = ", ".join(f"<code>{text(b)}</code>" for b in as_list(comp.get("baselines"))) or "-"
    tol = comp.get("tolerance") if isinstance(comp.get("tolerance"), Mapping) else {}
    assert isinstance(tol, Mapping)
    verdict = [f for f in findings if f.code.startswith("WC5")]
    out = ["<section id=\"comparison\">\n<h2>Comparison with the baseline</h2>\n",
           f"<p>Run <code>{text(comp.get('run', '-'))}</code> against {baselines}"
           + (f"; tolerance {text(', '.join(f'{k} {number(v)}' for k, v in tol.items()))}" if tol else "") + ".</p>\n",
           "<ul class=\"verdict\">" + "".join(
               f'<li><span class="sev sev-{f.severity.value}">{f.severity.value}</span> '
               f'<a class="code" href="#rule-{text(f.code)}">{text(f.code)}</a> {text(f.message)}</li>'
               for f in verdict)
           + "</ul>\n" if verdict else "<p>No difference beyond the tolerance.</p>\n",
           "<div class=\"kvs\">\n"]
    for part, title in (("lr", "learning rate"), ("loss", "loss")):
        section = comp.get(part)
        if isinstance(section, Mapping):
            out.append(f"<table class=\"kv\"><thead><tr><th colspan=\"2\">{title}</th></tr></thead><tbody>\n")
            out += [f"<tr><td>{text(str(k).replace('_', ' '))}</td>{cell(v)}</tr>\n" for k, v in section.items()]
            out.append("</tbody></table>\n")
    news = [(key, title) for key, title in (("new_spikes", "new loss spikes at steps"),
                                            ("new_nonfinite", "new NaN/Inf at steps")) if key in comp]
    if news:
        out.append("<table class=\"kv\"><thead><tr><th colspan=\"2\">new instability</th></tr></thead><tbody>\n"
                   + "".join(f"<tr><td>{title}</td>{cell(as_list(comp.get(key)))}</tr>\n" for key, title in news)
                   + "</tbody></table>\n")
    out.append("</div>\n<div class=\"plots\">\n" + plot_figure("compare-lr", "learning rate: run and baselines")
               + plot_figure("compare-loss", "loss: run and baselines") + "</div>\n</section>\n")
    return "".join(out)


def compare_data(comp: Mapping[str, Any], index: Mapping[str, int], baselines: Sequence[Run]) -> dict[str, Any]:
    def step(part: str, key: str) -> int | None:
        section = comp.get(part)
        value = section.get(key) if isinstance(section, Mapping) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def steps(key: str) -> list[int]:
        return [s for s in as_list(comp.get(key)) if isinstance(s, int) and not isinstance(s, bool)]

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


