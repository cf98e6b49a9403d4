"""The comparison (``warmcheck compare``) and sweep sections of the text and markdown reports.

Both are rendered from the JSON objects (``comparison``, ``sweep``) so that every format says the same.
Names are data: escaped as in the rest of each format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .escape import md_code, md_text, visible


def _n(x: Any, fmt: str = ".4g") -> str:
    if x is None:
        return "-"
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return format(x, fmt)
    return str(x)


def comparison_facts(c: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(check, result) pairs, plain text (not yet escaped)."""
    out: list[tuple[str, str]] = []
    lr = c.get("lr")
    if lr:
        if lr["first_diff_step"] is None:
            res = (f"same on {lr['common_steps']} common steps (largest relative difference "
                   f"{_n(lr['max_rel_diff'], '.2g')})")
        else:
            res = (f"differs from step {lr['first_diff_step']} (largest relative difference "
                   f"{_n(lr['max_rel_diff'], '.3g')} at step {lr['max_rel_diff_step']})")
        res += (f"; warmup {_n(lr['run_warmup_steps'])} vs {_n(lr['baseline_warmup_steps'])} updates, first at peak "
                f"{_n(lr['run_peak_step'])} vs {_n(lr['baseline_peak_step'])}, peak LR {_n(lr['run_peak_lr'])} vs "
                f"{_n(lr['baseline_peak_lr'])}")
        out.append(("learning rate", res))
    else:
        out.append(("learning rate", "not compared"))
    loss = c.get("loss")
    if loss:
        band = f"{loss['band_kind']} band, smoothed over {loss['window']} points"
        if loss["first_outside_step"] is None:
            res = f"within the band on {loss['common_steps']} common steps ({band})"
        else:
            lo, hi = loss["band"]
            res = (f"leaves the band at step {loss['first_outside_step']}: {_n(loss['value'])} vs "
                   f"{_n(loss['baseline'])} (band {_n(lo)} to {_n(hi)}, {_n(loss['rel_diff'], '+.1%')}; {band})")
        out.append(("loss", res))
    else:
        out.append(("loss", "not compared"))
    spikes = c.get("new_spikes") or []
    out.append(("new loss spikes", ", ".join(f"step {s}" for s in spikes) if spikes else "none"))
    broken = c.get("new_nonfinite") or []
    out.append(("new NaN/Inf or divergence",
                ", ".join(f"{b['code']} at step {_n(b['step'])}" for b in broken) if broken else "none"))
    return out


def comparison_text(c: Mapping[str, Any]) -> list[str]:
    """The text report's comparison block."""
    bases = ", ".join(c.get("baselines") or []) or "-"
    lines = [visible(f"compare: {c.get('run')} against {bases}")]
    lines += [visible(f"  {k}: {v}") for k, v in comparison_facts(c)]
    return lines


def comparison_markdown(c: Mapping[str, Any]) -> list[str]:
    """The markdown report's comparison section."""
    bases = ", ".join(md_code(b, table=False) for b in c.get("baselines") or []) or "-"
    lines = ["", "## Comparison", "", f"{md_code(str(c.get('run')), table=False)} against {bases}", "",
             "| check | result |", "|---|---|"]
    lines += [f"| {md_text(k)} | {md_text(v)} |" for k, v in comparison_facts(c)]
    return lines


_MAX_GROUPS = 10  # lines about configurations run several times (seeds)
_MAX_KEYS = 6  # configuration columns in the sweep table; the JSON has them all
# Shown first when they vary: the canonical names warmcheck.sweep.profile adds, then common ones.
_FIRST = ("warmup_steps", "warmup_ratio", "peak_lr", "lr_scheduler_type", "max_steps", "total_steps",
          "gradient_accumulation_steps", "max_grad_norm", "weight_decay", "seed")


def sweep_rows(sweep: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The sweep table: a header and a row per run (plain text, not yet escaped), or no rows when the
    runs do not differ in any configured value."""
    varied = list(sweep.get("varied") or [])
    if not varied:
        return [], []
    first = [t["key"] for a in sweep.get("associations") or [] for t in a.get("terms") or [a]]
    known = [k for k in _FIRST if k in varied]
    runs = sweep.get("runs") or []
    keys: list[str] = []
    for k in dict.fromkeys(first + known + varied):
        same = [j for j in keys if all((r.get("config") or {}).get(k) == (r.get("config") or {}).get(j) for r in runs)]
        if not same:  # learning_rate beside peak_lr (its canonical name) says nothing more
            keys.append(k)
        if len(keys) == _MAX_KEYS:
            break
    head = ["run", *keys, "warmup end", "peak LR", "spikes", "diverged", "final loss"]
    rows = []
    for r in sweep.get("runs") or []:
        cfg = r.get("config") or {}
        rows.append([str(r["run"]), *(_n(cfg[k], "g") if k in cfg else "-" for k in keys),
                     _n(r.get("observed_warmup_end")), _n(r.get("peak_lr")), str(r.get("spikes", 0)),
                     "NaN" if r.get("nonfinite") else ("yes" if r.get("diverged") else "no"),
                     _n(r.get("final_loss"))])
    return head, rows


def sweep_summary(sweep: Mapping[str, Any]) -> list[str]:
    """The sentences under the table: which configured values go with instability."""
    runs = len(sweep.get("runs") or [])
    unstable = sweep.get("unstable", 0)
    assoc = sweep.get("associations") or []
    out = [f"{unstable} of {runs} runs spiked, diverged or went NaN."]
    tried = sweep.get("splits_tried", 0)
    if assoc:
        out += [f"{a['text']} (Fisher exact p = {a['p']:.2g}; {a['p_adjusted']:.2g} adjusted for the {tried} splits "
                "tried)" for a in assoc]
    elif unstable and sweep.get("varied"):
        out.append(f"No configured value separates them (none of {tried} splits with p <= 0.05 once adjusted "
                   "for trying them all).")
    groups = [g for g in sweep.get("groups") or [] if len(g["runs"]) > 1]
    for g in groups[:_MAX_GROUPS]:  # seeds (or repeats) of one configuration: how they fared together
        cfg = ", ".join(f"{k}={_n(v, 'g')}" for k, v in g["config"].items()) or "one configuration"
        out.append(f"{g['unstable']} of {len(g['runs'])} runs with {cfg} were unstable.")
    if len(groups) > _MAX_GROUPS:
        out.append(f"... and {len(groups) - _MAX_GROUPS} more configurations with several runs (JSON: sweep.groups).")
    return out


def sweep_text(sweep: Mapping[str, Any]) -> list[str]:
    """The text report's sweep block (nothing when the runs share one configuration)."""
    head, rows = sweep_rows(sweep)
    if not rows:
        return []
    grid = [head, *rows]
    widths = [max(len(visible(c[i])) for c in grid) for i in range(len(head))]
    lines = [f"sweep: {len(rows)} runs differ in {', '.join(sweep['varied'][:12])}"
             + (", ..." if len(sweep["varied"]) > 12 else "")]
    for i, c in enumerate(grid):
        lines.append("  " + "  ".join(visible(v).ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    lines += [visible("  " + t) for t in sweep_summary(sweep)]
    return [visible(lines[0])] + lines[1:]


def sweep_markdown(sweep: Mapping[str, Any]) -> list[str]:
    """The markdown report's sweep section (nothing when the runs share one configuration)."""
    head, rows = sweep_rows(sweep)
    if not rows:
        return []
    lines = ["", "## Sweep", "", *(f"- {md_text(t)}" for t in sweep_summary(sweep)), "",
             "| " + " | ".join(md_text(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + md_code(r[0]) + " | " + " | ".join(md_text(c) for c in r[1:]) + " |" for r in rows]
    return lines


def extra_lines(comparison: Mapping[str, Any] | None, sweep: Mapping[str, Any] | None, markdown: bool) -> str:
    """The comparison and sweep blocks that follow the runs in the text (``markdown`` False) or markdown
    report, as text (nothing when neither is given)."""
    from .escape import ci_line

    lines: list[str] = []
    if comparison is not None:
        lines += comparison_markdown(comparison) if markdown else ["", *comparison_text(comparison)]
    if sweep is not None:
        lines += sweep_markdown(sweep) if markdown else ["", *sweep_text(sweep)]
    return "".join(ci_line(line) + "\n" for line in lines)


__all__ = ["comparison_facts", "extra_lines", "comparison_markdown", "comparison_text", "sweep_markdown", "sweep_rows",
           "sweep_summary", "sweep_text"]
