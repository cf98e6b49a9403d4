"""Plots: the artists drawn (warmup lines, spike markers, divergence lines), the files written, determinism."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.image import imread
from matplotlib.lines import Line2D

from warmcheck import plots
from warmcheck.cli import main
from warmcheck.config import Settings
from warmcheck.pipeline import analyze

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


def one_run(name: str, settings: Settings | None = None):
    outcome = analyze([str(SAMPLES / name)], settings or Settings())
    assert len(outcome.runs) == 1
    return outcome.runs[0]


def vlines(ax) -> dict[str, float]:
    """label -> x of every vertical line (axvline: two equal x values spanning the axes)."""
    out = {}
    for line in ax.get_lines():
        x = np.asarray(line.get_xdata(), dtype=float)
        if x.shape[0] == 2 and x[0] == x[1] and not line.get_label().startswith("_"):
            out[line.get_label()] = float(x[0])
    return out


def axis_by_ylabel(fig, text: str):
    matches = [ax for ax in fig.axes if text in ax.get_ylabel()]
    assert len(matches) == 1, [ax.get_ylabel() for ax in fig.axes]
    return matches[0]


def test_founding_run_draws_observed_27_and_configured_20():
    run = one_run("founding_book_tb", Settings(warmup_steps=20))
    fig = plots.run_figure(run, Settings(warmup_steps=20))
    lines = vlines(axis_by_ylabel(fig, "learning rate"))
    observed = {label: x for label, x in lines.items() if label.startswith("observed")}
    configured = {label: x for label, x in lines.items() if label.startswith("configured")}
    assert list(observed.values()) == [27.0]
    assert "step 27 (27 updates below peak)" in next(iter(observed))  # no configured ratio: no formula
    assert list(configured.values()) == [20.0]
    assert "warmup_steps=20" in next(iter(configured)) and "step 20" in next(iter(configured))
    assert [ax.get_ylabel() for ax in fig.axes] == ["learning rate", "loss\ntrain/loss"]  # no grad norm logged


def test_founding_run_with_the_books_ratio_names_the_formula():
    settings = Settings(warmup_steps=20, warmup_ratio=0.2)
    fig = plots.run_figure(one_run("founding_book_tb", settings), settings)
    lines = vlines(axis_by_ylabel(fig, "learning rate"))
    (observed,) = [label for label in lines if label.startswith("observed")]
    assert lines[observed] == 27.0 and "int(0.2 x 135)" in observed
    assert [x for label, x in lines.items() if label.startswith("configured")] == [20.0]


def test_without_configuration_only_the_observed_line():
    fig = plots.run_figure(one_run("founding_book_tb"))
    labels = list(vlines(axis_by_ylabel(fig, "learning rate")))
    assert len(labels) == 1 and labels[0].startswith("observed warmup end: step 27")


def test_ratio_configuration_draws_its_candidate():
    settings = Settings(warmup_ratio=0.2, total_steps=135)
    fig = plots.run_figure(one_run("founding_book_tb", settings), settings)
    configured = [x for label, x in vlines(axis_by_ylabel(fig, "learning rate")).items()
                  if label.startswith("configured")]
    assert 27.0 in configured  # int(0.2 x 135) lands on the observed end


def test_sparse_log_draws_a_bracket():
    fig = plots.run_figure(one_run("hf_trainer_state"))
    ax = axis_by_ylabel(fig, "learning rate")
    (label, x), = [(label, x) for label, x in vlines(ax).items() if label.startswith("observed")]
    assert "between 50 and 60" in label and 50 <= x <= 60
    spans = [p for p in ax.patches if p.get_alpha() and p.get_alpha() < 0.5]
    assert len(spans) == 1


def test_spike_marked_on_loss_and_grad_norm():
    run = one_run("loss_spike")
    fig = plots.run_figure(run)
    loss_ax = axis_by_ylabel(fig, "loss")
    markers = [line for line in loss_ax.get_lines() if line.get_marker() == "v"]
    assert [(line.get_label(), float(line.get_xdata()[0])) for line in markers] == [("WC301 spike at step 53", 53.0)]
    grad_ax = axis_by_ylabel(fig, "grad")
    assert any(line.get_marker() == "v" and line.get_label().startswith("WC302") for line in grad_ax.get_lines())
    smoothed = [line for line in loss_ax.get_lines() if line.get_label().startswith("smoothed")]
    assert len(smoothed) == 1


def test_divergence_onset_and_first_nan_marked():
    run = one_run("diverged")
    onset = next(f.step for f in run.findings if f.code == "WC403")
    first_nan = next(f.step for f in run.findings if f.code == "WC401" and f.tag == "loss")
    lines = vlines(axis_by_ylabel(plots.run_figure(run), "loss"))
    assert lines[f"divergence onset: step {onset}"] == onset
    assert lines[f"first NaN/Inf: step {first_nan}"] == first_nan == 340


def test_log_scale_only_when_the_range_asks():
    assert axis_by_ylabel(plots.run_figure(one_run("healthy_cosine")), "loss").get_yscale() == "linear"
    diverged = plots.run_figure(one_run("diverged"))
    loss = one_run("diverged").primary(plots.Role.LOSS)
    finite = loss.values[np.isfinite(loss.values)]
    expected = "log" if finite.max() / finite.min() > 20 else "linear"
    assert axis_by_ylabel(diverged, "loss").get_yscale() == expected


def test_ema_is_tensorboards_debiased_smoothing():
    out = plots.ema(np.array([0.0, 10.0, math.nan, 10.0]), 0.5)
    assert out[0] == 0.0
    assert out[1] == pytest.approx(5.0 / 0.75)  # (0.5*0 + 0.5*10) / (1 - 0.5^2)
    assert math.isnan(out[2])  # non-finite points stay as they are and do not poison the rest
    assert out[3] == pytest.approx(7.5 / 0.875)
    assert np.allclose(plots.ema(np.full(50, 3.0), 0.9), 3.0)  # debiased: a constant stays constant


def test_run_without_known_series_gets_a_placeholder():
    from warmcheck.model import Run

    fig = plots.run_figure(Run(name="empty", path="empty", sources=(), series=()))
    assert [t.get_text() for t in fig.axes[0].texts] == ["no learning-rate, loss or gradient-norm series"]


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_saved_bytes_are_reproducible(tmp_path, suffix):
    run = one_run("loss_spike")
    a = plots.save(plots.run_figure(run), tmp_path / f"a{suffix}").read_bytes()
    b = plots.save(plots.run_figure(run), tmp_path / f"b{suffix}").read_bytes()
    assert a == b and len(a) > 1000


def test_cli_plot_writes_the_founding_picture(tmp_path):
    out = tmp_path / "x.png"
    result = CliRunner().invoke(main, ["plot", str(SAMPLES / "founding_book_tb"), "--warmup-steps", "20", "-o",
                                       str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and f"wrote {out}" in result.stderr
    image = imread(out)
    assert image.shape[0] > 400 and image.shape[1] == 900  # 9 inches at 100 dpi


def test_cli_plot_tree_gives_an_overview(tmp_path):
    out = tmp_path / "all.svg"
    result = CliRunner().invoke(main, ["plot", str(SAMPLES), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0
    runs = len(analyze([str(SAMPLES)]).runs)
    assert runs >= 12
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and f"{runs} runs" in svg  # text kept as text (svg.fonttype none)


@pytest.mark.parametrize("args", [["-o", "x.pdf"], ["-o", "missing/dir/x.png"]])
def test_cli_plot_bad_output_exits_2(tmp_path, args):
    result = CliRunner().invoke(main, ["plot", str(SAMPLES / "founding_book_tb"), *args], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("warmcheck: error: cannot write") and "Traceback" not in result.stderr


def test_cli_plot_nothing_to_draw_exits_2(tmp_path):
    (tmp_path / "notes.txt").write_text("no logs here")
    result = CliRunner().invoke(main, ["plot", str(tmp_path), "-o", str(tmp_path / "x.png")], catch_exceptions=False)
    assert result.exit_code == 2 and not (tmp_path / "x.png").exists()


def test_analyze_plot_dir_one_image_per_run_plus_overview(tmp_path):
    out = tmp_path / "plots"
    result = CliRunner().invoke(main, ["analyze", str(SAMPLES / "loss_spike"), str(SAMPLES / "diverged"),
                                       "--plot-dir", str(out), "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 1  # the divergence; plotting does not change the verdict
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3 and "overview.png" in names
    assert any("loss_spike" in n for n in names) and any("diverged" in n for n in names)
    assert all(n.endswith(".png") for n in names)


def test_file_name_is_safe():
    assert plots.file_name("/runs/exp 1/seed:3") == "runs_exp_1_seed_3"
    assert plots.file_name("///") == "run"


def test_legend_entries_are_labelled_lines():
    fig = plots.run_figure(one_run("founding_book_tb", Settings(warmup_steps=20)), Settings(warmup_steps=20))
    legend = axis_by_ylabel(fig, "learning rate").get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert any("step 27" in t for t in texts) and any("step 20" in t for t in texts)
    assert all(isinstance(h, Line2D) for h in legend.legend_handles)


def test_values_near_the_float64_maximum_are_drawn_scaled(tmp_path):
    rows = [f"{s},{1e-3 * min(1.0, (s + 1) / 10)!r},{1.7e308 * (1 - s / 1000)!r}" for s in range(120)]
    (tmp_path / "log.csv").write_text("step,lr,loss\n" + "\n".join(rows) + "\n")
    (run,) = analyze([str(tmp_path / "log.csv")]).runs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's overflow RuntimeWarnings, or a singular transform
        fig = plots.run_figure(run)
        plots.save(fig, tmp_path / "x.png")
    assert "loss (x 1e308)" in [ax.get_ylabel() for ax in fig.axes]


def test_every_panel_says_what_it_draws_with_a_legend():
    fig = plots.run_figure(one_run("loss_spike"))
    assert [ax.get_ylabel() for ax in fig.axes] == ["learning rate", "loss\ntrain/loss", "grad norm\ntrain/grad_norm"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["", "", "step (as logged)"]  # shared step axis, labelled once
    firsts = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert [texts[0] for texts in firsts] == ["train/lr", "train/loss", "train/grad_norm"]
    assert "smoothed (TensorBoard EMA 0.6)" in firsts[1] and "WC301 spike at step 53" in firsts[1]
    assert "WC302 spike at step 52" in firsts[2]


def test_axis_label_names_the_quantity_and_a_different_tag():
    assert plots.axis_label("loss", "loss") == "loss"
    assert plots.axis_label("loss", "train/loss") == "loss\ntrain/loss"
    assert plots.axis_label("grad norm", "$x$") == "grad norm\n$x$"  # drawn with parse_math=False


def test_overview_panels_have_axis_labels_and_a_legend():
    outcome = analyze([str(SAMPLES / "loss_spike"), str(SAMPLES / "diverged"), str(SAMPLES / "healthy_cosine")])
    fig = plots.overview_figure(outcome.runs)
    loss_axes = [ax for ax in fig.axes if ax.get_ylabel() == "loss"]
    lr_axes = [ax for ax in fig.axes if ax.get_ylabel() == "LR"]
    assert len(loss_axes) == len(lr_axes) == 3
    assert all(ax.get_xlabel() == "step" for ax in loss_axes)
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["loss (left axis)", "learning rate (LR, right axis)", "observed warmup end",
                     "loss spike (WC301) / first NaN-Inf (WC401/402)", "divergence onset (WC403)"]


def test_overview_legend_lists_only_what_is_drawn():
    fig = plots.overview_figure(analyze([str(SAMPLES / "healthy_cosine")]).runs)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["loss (left axis)", "learning rate (LR, right axis)",
                                                          "observed warmup end"]
