"""Pictures of a run: the LR with where warmup ended (observed and configured), the loss with its
spikes and divergence, the gradient norm. Artefacts, not a report format: ``warmcheck plot`` and
``warmcheck analyze --plot-dir``.

matplotlib's object API with the Agg canvas (no pyplot, no display, no global state), fixed sizes and
no timestamps in the files, so the same run gives the same image.

Run names and tags are data: drawn with their controls shown as escapes and never parsed as
mathtext (``parse_math=False``: a ``$`` in a name is a dollar sign), and file names made from them are
cleaned, bounded and unique (:func:`file_names`).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib import __version__ as mpl_version
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .analyzers.warmup_readings import configured_ends
from .config import Settings
from .errors import WarmcheckError
from .findings import Finding
from .model import Role, Run, Series
from .reporters.escape import visible
from .runconfig import configured

SUFFIXES = (".png", ".svg")
OVERVIEW = "overview.png"
MAX_STEM = 100  # characters of a cleaned run name kept in its file name (+ a hash when cut)
MAX_TITLE = 120  # characters of a name drawn as a title
OBSERVED, CONFIGURED, SPIKE, DIVERGED, NONFINITE = "#1f77b4", "#d62728", "#ff7f0e", "#9467bd", "#000000"


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: a first-order IIR filter, debiased (divided by ``1 - weight^t``)."""
    out = np.empty_like(values, dtype=np.float64)
    last, n = 0.0, 0
    for i, v in enumerate(values.tolist()):
        if not math.isfinite(v):
            out[i] = v
            continue
        n += 1
        last = last * weight + (1 - weight) * v
        out[i] = last / (1 - weight**n)
    return out


_HUGE = 1e300  # matplotlib's limits and log transforms overflow near the float64 maximum


def _in_range(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Values matplotlib can draw: near 1e308 they are divided by a power of ten, named in the label."""
    finite = values[np.isfinite(values)]
    top = float(np.max(np.abs(finite))) if finite.shape[0] else 0.0
    if not top > _HUGE:
        return values, ""
    e = int(math.floor(math.log10(top)))
    return values / 10.0**e, f" (x 1e{e})"


def run_figure(run: Run, settings: Settings | None = None, smoothing: float | None = 0.6) -> Figure:
    """The figure of one analysed run: LR, loss and gradient-norm panels (those that exist)."""
    settings = settings or Settings()
    panels: list[tuple[Role, Series]] = []
    for role in (Role.LR, Role.LOSS, Role.GRAD_NORM):
        series = run.primary(role)
        if series is not None and series.points:
            panels.append((role, series))
    fig = Figure(figsize=(9, 2.6 * max(len(panels), 1) + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(label(run.name, MAX_TITLE), fontsize=10, parse_math=False)
    if not panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no learning-rate, loss or gradient-norm series", ha="center", va="center")
        ax.set_axis_off()
        return fig
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (role, series) in zip(axes, panels, strict=True):
        if role is Role.LR:
            _lr_panel(ax, run, series, settings)
        elif role is Role.LOSS:
            _metric_panel(ax, run, series, smoothing, ("WC301", "WC304"), "loss")
        else:
            _metric_panel(ax, run, series, None, ("WC302",), "grad norm")
    axes[-1].set_xlabel("step (as logged)")
    return fig


def _lr_panel(ax: Axes, run: Run, series: Series, settings: Settings) -> None:
    values, unit = _in_range(series.values)
    ax.plot(series.steps, values, color="#444444", linewidth=1.2, label=label(series.tag))
    ax.set_ylabel("learning rate" + unit)
    sched = next((s for s in run.schedules if s.tag == series.tag), None)
    if sched is not None and sched.warmup_end_step is not None:
        end = sched.warmup_end_step
        why = next((f.details.get("explanation") for f in run.findings
                    if f.code.startswith("WC2") and f.tag == series.tag and f.details.get("explanation")), None)
        what = f"observed warmup end: step {end} ({sched.warmup_steps} updates below peak"
        what += f" = {why})" if why else ")"
        if sched.warmup_end_estimated and sched.warmup_end_bracket:
            lo, hi = sched.warmup_end_bracket
            ax.axvspan(lo, hi, color=OBSERVED, alpha=0.12)
            what = f"observed warmup end: ~step {end} (between {lo} and {hi})"
        ax.axvline(end, color=OBSERVED, linewidth=1.6, label=what)
        cfg = configured(run, settings)
        if cfg.any_warmup:
            for step, formula in configured_ends(cfg, sched):
                ax.axvline(step, color=CONFIGURED, linestyle="--", linewidth=1.4,
                           label=f"configured: {formula} -> warmup ends at step {step}")
    _legend(ax)


def _metric_panel(ax: Axes, run: Run, series: Series, smoothing: float | None, spike_codes: Sequence[str],
                  quantity: str) -> None:
    steps, (values, unit) = series.steps, _in_range(series.values)
    finite = np.isfinite(values)
    ax.plot(steps[finite], values[finite], color="#999999" if smoothing else "#444444", linewidth=0.8,
            marker="." if series.points <= 300 else None, markersize=2, label=label(series.tag))
    if smoothing and finite.sum() > 10:
        ax.plot(steps, ema(values, smoothing), color="#333333", linewidth=1.3,
                label=f"smoothed (TensorBoard EMA {smoothing:g})")
    positive = values[finite & (values > 0)]
    if positive.shape[0] and float(positive.max()) / float(positive.min()) > 20 and (values[finite] > 0).all():
        ax.set_yscale("log")
    ax.set_ylabel(axis_label(quantity, series.tag) + unit, parse_math=False)
    for step, f in _findings(run, series.tag, spike_codes):
        i = int(np.searchsorted(steps, step))
        y = float(values[min(i, values.shape[0] - 1)])
        ax.plot([step], [y], marker="v", color=SPIKE, markersize=8, linestyle="none",
                label=f"{f.code} spike at step {step}")
    for step, _ in _findings(run, series.tag, ("WC403",)):
        ax.axvline(step, color=DIVERGED, linewidth=1.4, label=f"divergence onset: step {step}")
    for step, _ in _findings(run, series.tag, ("WC401", "WC402")):
        ax.axvline(step, color=NONFINITE, linestyle=":", linewidth=1.4, label=f"first NaN/Inf: step {step}")
    _legend(ax)


def axis_label(quantity: str, tag: str) -> str:
    """A y-axis label: what is drawn (``loss``, ``grad norm``) and, below it, the series' tag when it
    says something else (these quantities have no unit: the tag is what tells them apart)."""
    shown = label(tag, 40)
    return quantity if shown.strip().lower() == quantity else f"{quantity}\n{shown}"


def label(text: str, limit: int = MAX_TITLE) -> str:
    """A name as drawn: controls as escapes, cut in the middle beyond ``limit`` characters; a leading
    ``_`` (which hides a legend entry) kept visible by a leading space."""
    text = visible(text)
    if len(text) > limit:
        text = text[:limit // 2 - 1] + "..." + text[-(limit - limit // 2 - 2):]
    return " " + text if text.startswith("_") else text


def _legend(ax: Axes) -> None:
    """The legend, its entries (names of series, formulas) never parsed as mathtext."""
    legend = ax.legend(loc="best", fontsize=7, framealpha=0.85)
    for text in legend.get_texts():
        text.set_parse_math(False)
    ax.grid(alpha=0.25)


def _findings(run: Run, tag: str, codes: Sequence[str]) -> list[tuple[int, Finding]]:
    out = [(f.step, f) for f in run.findings if f.code in codes and f.step is not None and f.tag == tag]
    return out[:20]  # a legend of hundreds of spikes helps nobody


def overview_figure(runs: Sequence[Run], limit: int = 48) -> Figure:
    """Many runs at a glance: one small panel each, loss with the LR on a second axis."""
    shown = list(runs)[:limit]
    cols = min(4, max(1, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    fig = Figure(figsize=(4 * cols, 2.6 * rows + 0.4), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    title = f"{len(runs)} runs" + (f" (first {limit} shown)" if len(runs) > limit else "")
    fig.suptitle(title, fontsize=10)
    drawn: set[str] = set()  # which kinds of lines the legend explains
    for k, run in enumerate(shown):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.set_title(visible(run.name)[-50:], fontsize=7, parse_math=False)
        loss, lr = run.primary(Role.LOSS), run.primary(Role.LR)
        ax.set_xlabel("step", fontsize=6, labelpad=1)
        if loss is not None and loss.points:
            ok = np.isfinite(loss.values)
            values, unit = _in_range(loss.values)
            ax.plot(loss.steps[ok], values[ok], color="#333333", linewidth=0.8)
            ax.set_ylabel("loss" + unit, fontsize=6, labelpad=1)
            drawn.add("loss")
            for f in run.findings:
                if f.code in ("WC301", "WC403", "WC401", "WC402") and f.step is not None:
                    kind = "divergence" if f.code == "WC403" else "spike"
                    ax.axvline(f.step, color=DIVERGED if kind == "divergence" else SPIKE, linewidth=0.8)
                    drawn.add(kind)
        if lr is not None and lr.points:
            twin = ax.twinx()
            values, unit = _in_range(lr.values)
            twin.plot(lr.steps, values, color=OBSERVED, linewidth=0.8)
            twin.set_ylabel("LR" + unit, fontsize=6, color=OBSERVED, labelpad=1)
            twin.tick_params(labelsize=6)
            drawn.add("lr")
            if run.schedules and run.schedules[0].warmup_end_step is not None:
                ax.axvline(run.schedules[0].warmup_end_step, color=OBSERVED, linestyle="--", linewidth=0.8)
                drawn.add("warmup")
        ax.tick_params(labelsize=6)
    handles = [Line2D([], [], color=colour, linestyle=style, linewidth=0.8, label=text)
               for kind, text, colour, style in _OVERVIEW_KEY if kind in drawn]
    if handles:
        fig.legend(handles=handles, loc=_OUTSIDE, ncols=len(handles), fontsize=7, frameon=False)
    return fig


# The overview's legend: what each kind of line is, in the panels' styles.
_OVERVIEW_KEY: tuple[tuple[str, str, str, Literal["-", "--"]], ...] = (
    ("loss", "loss (left axis)", "#333333", "-"),
    ("lr", "learning rate (LR, right axis)", OBSERVED, "-"),
    ("warmup", "observed warmup end", OBSERVED, "--"),
    ("spike", "loss spike (WC301) / first NaN-Inf (WC401/402)", SPIKE, "-"),
    ("divergence", "divergence onset (WC403)", DIVERGED, "-"),
)
# matplotlib >= 3.7 places a figure legend outside the panels under constrained layout.
_OUTSIDE: Literal["outside lower center", "lower right"] = (
    "outside lower center" if tuple(int(x) for x in re.findall(r"\d+", mpl_version)[:2]) >= (3, 7) else "lower right")


def check_image_path(path: str | Path) -> Path:
    """``path`` if it names a PNG or SVG file; else :class:`WarmcheckError` (checked before any work)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise WarmcheckError(f"cannot write {path}: the image must end in .png or .svg")
    return path


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG or SVG (by suffix), without timestamps so the bytes are reproducible.

    Raises :class:`WarmcheckError` when the file cannot be written (a user's problem, not a crash).
    """
    path = check_image_path(path)
    try:
        if path.suffix.lower() == ".svg":
            import matplotlib

            with matplotlib.rc_context({"svg.hashsalt": "warmcheck", "svg.fonttype": "none"}):
                fig.savefig(path, format="svg", metadata={"Date": None})
        else:
            fig.savefig(path, format="png", metadata={"Software": None})
    except OSError as exc:
        raise WarmcheckError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def file_name(run_name: str) -> str:
    """A file name for a run's plot: its path with separators replaced."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_name).strip("_") or "run"


@dataclass(frozen=True)
class FileNames:
    """The PNG name of each run (in order) and the groups of runs whose cleaned names collided."""

    names: list[str]
    collisions: list[list[str]]


def _hashed(stem: str, run_name: str) -> str:
    digest = hashlib.sha256(run_name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{stem}-{digest}"


def file_names(run_names: Sequence[str]) -> FileNames:
    """Unique, bounded PNG names for ``run_names``: the cleaned name (:func:`file_name`) when it is
    unique (ignoring case: macOS and Windows file systems) and at most :data:`MAX_STEM` characters,
    else the cleaned name cut to that length plus a hash of the run name. Runs whose cleaned names
    collide (``a/b`` and ``a_b``, or a run named ``overview``) all get the hash and are returned
    as a collision, for the caller to say so."""
    stems = [file_name(n) for n in run_names]
    by_key: dict[str, list[int]] = {}
    for i, stem in enumerate(stems):
        by_key.setdefault(stem.lower(), []).append(i)
    reserved = OVERVIEW.removesuffix(".png")
    collisions = [[run_names[i] for i in idx] for key, idx in by_key.items() if len(idx) > 1 or key == reserved]
    clashing = {i for group in collisions for i in by_key[file_name(group[0]).lower()]}
    out: list[str] = []
    used = {OVERVIEW}
    for i, (name, stem) in enumerate(zip(run_names, stems, strict=True)):
        candidate = stem if i not in clashing and len(stem) <= MAX_STEM else _hashed(stem[:MAX_STEM], name)
        k = 1
        while (candidate + ".png").lower() in used:  # a name equal to another's hashed one: never overwrite
            k += 1
            candidate = f"{_hashed(stem[:MAX_STEM], name)}-{k}"
        used.add((candidate + ".png").lower())
        out.append(candidate + ".png")
    return FileNames(out, collisions)
