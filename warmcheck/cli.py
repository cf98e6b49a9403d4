"""The command line: the only module that knows click, streams and exit codes.

Exit codes (ruff's convention): 0 analysis completed, no finding at or above ``--fail-on``;
1 at least one such finding; 2 could not analyse (usage error, missing path, no runs found, no
data in any run, internal error). stdout carries only the report; everything for people (progress,
the closing count line, errors) goes to stderr.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import click

from . import __version__
from .config import FailOn, Settings, load_settings, parse_size
from .detectors import DETECTORS
from .errors import WarmcheckError
from .findings import FAMILIES, RULES, Severity, rules_markdown
from .pipeline import Outcome, PiecedOutcome, analyze, analyze_pieces, exit_code
from .reporters import OutputFormat, make_reporter, pieces
from .reporters.escape import ci_json, ci_line, visible

_EXIT_HELP = """Exit codes: 0 no finding at or above --fail-on; 1 at least one; 2 could not analyse
(usage error, missing path, no runs found, no data in any run)."""


class _Size(click.ParamType):
    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(f"{value!r} is not {exc}", param, ctx)


def _tags_option(name: str, what: str) -> Callable[[Any], Any]:
    env = "WARMCHECK_" + name.lstrip("-").upper().replace("-", "_") + "S"  # WARMCHECK_LR_TAGS="a b"
    return click.option(name, multiple=True, metavar="TAG", envvar=env,
                        help=f"Series to use as the {what} (exact name or glob; repeatable). "
                        "Replaces the name rules for that role.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="warmcheck")
def main() -> None:
    """warmcheck: where warmup really ended, and what the loss did, to the step."""


def _storage_option(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, Any]:
    from .storage import options_from
    try:
        return options_from(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _config_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by commands that analyse: configuration, tags and the warmup expectation."""
    for decorator in reversed([
        click.option("--config", "config", type=click.Path(dir_okay=False, path_type=str),
                     help="Read [tool.warmcheck] from this file instead of searching for pyproject.toml."),
        click.option("--isolated", is_flag=True, help="Ignore configuration files."),
        _tags_option("--lr-tag", "learning rate"),
        _tags_option("--loss-tag", "loss"),
        _tags_option("--grad-norm-tag", "gradient norm"),
        click.option("--warmup-steps", type=click.IntRange(min=0), envvar="WARMCHECK_WARMUP_STEPS",
                     help="Configured warmup, in optimizer updates."),
        click.option("--warmup-ratio", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     envvar="WARMCHECK_WARMUP_RATIO", help="Configured warmup as a fraction of the total steps."),
        click.option("--total-steps", type=click.IntRange(min=1), envvar="WARMCHECK_TOTAL_STEPS",
                     help="Configured total optimizer updates (default: the logged run length)."),
        click.option("--epochs", type=click.FloatRange(min=0, min_open=True), envvar="WARMCHECK_EPOCHS",
                     help="Configured epochs."),
        click.option("--steps-per-epoch", type=click.IntRange(min=1), envvar="WARMCHECK_STEPS_PER_EPOCH",
                     help="Batches per epoch (with --grad-accum: dataloader batches, before accumulation)."),
        click.option("--grad-accum", type=click.IntRange(min=1), envvar="WARMCHECK_GRAD_ACCUM",
                     help="Gradient accumulation steps."),
        click.option("--peak-lr", type=click.FloatRange(min=0, min_open=True), envvar="WARMCHECK_PEAK_LR",
                     help="Configured peak learning rate."),
        click.option("--spike-detector", type=click.Choice(list(DETECTORS)), envvar="WARMCHECK_SPIKE_DETECTOR",
                     help="Loss-spike rule: warmcheck (default, robust) or a published one."),
        click.option("--max-file-size", type=_Size(), metavar="SIZE", envvar="WARMCHECK_MAX_FILE_SIZE",
                     help="Text logs (CSV, JSONL, trainer_state.json) larger than this are reported (WC025), "
                     "not read. Default 4GiB."),
        click.option("--max-decompressed-size", type=_Size(), metavar="SIZE",
                     envvar="WARMCHECK_MAX_DECOMPRESSED_SIZE",
                     help="Gzip text logs whose text is larger than this are reported (WC025), not read. "
                     "Default 16GiB."),
        click.option("--cache-dir", type=click.Path(file_okay=False, path_type=str), envvar="WARMCHECK_CACHE_DIR",
                     help="Keep what was read from each log file here; a re-run reads only the files that "
                     "changed. Default: the user cache directory."),
        click.option("--no-cache", is_flag=True, envvar="WARMCHECK_NO_CACHE",
                     help="Read every file, and neither use nor write the cache."),
        click.option("--storage-option", "storage_option", multiple=True, metavar="KEY=VALUE",
                     envvar="WARMCHECK_STORAGE_OPTIONS", callback=_storage_option,
                     help="An option for the filesystem of URL PATHs (s3://, gs://...), repeatable: "
                     "endpoint_url=http://host:9000, anon=true, client_kwargs.region_name=eu-west-1, "
                     "config_kwargs.read_timeout=60. Values are JSON when they parse."),
    ]):
        f = decorator(f)
    return f


def _format_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--format and -o, as analyze and compare take them."""
    f = click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=str),
                     help="Write the report to FILE instead of stdout.")(f)
    return click.option("--format", "fmt", type=click.Choice([f.value for f in OutputFormat]), default="text",
                        show_default=True, help="Report format written to stdout (or --output).")(f)


def _gate_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--fail-on, --exit-zero, --select, --ignore: what makes the exit code."""
    for decorator in reversed([
        click.option("--fail-on", type=click.Choice([f.value for f in FailOn]), default="error", show_default=True,
                     envvar="WARMCHECK_FAIL_ON", help="Lowest severity that makes the exit code 1."),
        click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings are at or above --fail-on."),
        click.option("--select", multiple=True, metavar="PREFIX", envvar="WARMCHECK_SELECT",
                     help="Only report codes with this prefix."),
        click.option("--ignore", multiple=True, metavar="PREFIX", envvar="WARMCHECK_IGNORE",
                     help="Do not report codes with this prefix."),
    ]):
        f = decorator(f)
    return f


def _report_options(f: Callable[..., Any]) -> Callable[..., Any]:
    return _format_options(_gate_options(f))


_SETTING_FLAGS = {"fail_on": "fail_on", "select": "select", "ignore": "ignore", "lr_tag": "lr_tags",
                  "loss_tag": "loss_tags", "grad_norm_tag": "grad_norm_tags", "warmup_steps": "warmup_steps",
                  "warmup_ratio": "warmup_ratio", "total_steps": "total_steps", "epochs": "epochs",
                  "steps_per_epoch": "steps_per_epoch", "grad_accum": "grad_accum", "peak_lr": "peak_lr",
                  "spike_detector": "spike_detector", "max_file_size": "max_file_size",
                  "max_decompressed_size": "max_decompressed_size", "cache_dir": "cache_dir", "no_cache": "no_cache",
                  "storage_option": "storage_options"}


def _settings(ctx: click.Context, params: dict[str, Any]) -> Settings:
    """Flags the user gave (not click defaults) on top of the configuration file."""
    flags: dict[str, Any] = {}
    env: dict[str, Any] = {}
    for param, name in _SETTING_FLAGS.items():
        source = ctx.get_parameter_source(param)
        if param not in params or source not in (click.core.ParameterSource.COMMANDLINE,
                                                 click.core.ParameterSource.ENVIRONMENT):
            continue
        value = params[param]
        if name == "storage_options" and not value:
            continue
        if isinstance(value, tuple):
            value = tuple(value)
        value = FailOn(value) if name == "fail_on" else value
        (env if source is click.core.ParameterSource.ENVIRONMENT else flags)[name] = value
    settings = _run_guarded(lambda: load_settings(flags, params.get("config"), bool(params.get("isolated")),
                                                  env=env), False)
    _use_cache(ctx, settings)
    _use_storage_options(ctx, settings)
    return settings


def _use_storage_options(ctx: click.Context, settings: Settings) -> None:
    """The filesystems of URL PATHs get ``storage_options`` for this command (worker processes get them
    with the settings)."""
    from . import storage

    previous = storage.storage_options()
    ctx.call_on_close(lambda: storage.set_storage_options(previous))
    storage.set_storage_options(settings.storage_options)


def _use_cache(ctx: click.Context, settings: Settings) -> None:
    """Read through the cache of reads for this command (workers forked later inherit it).

    A relative ``cache-dir`` from a configuration file is relative to that file's directory.
    """
    import os

    from . import cache

    previous = cache.active()
    ctx.call_on_close(lambda: cache.set_active(previous))
    directory = settings.cache_dir
    if settings.no_cache:
        directory = None
    elif directory is None:
        directory = cache.default_cache_dir()
    elif "cache_dir" not in settings.fixed and settings.config.path is not None:
        directory = os.path.join(os.path.dirname(settings.config.path), os.path.expanduser(directory))
    cache.activate(directory)


@main.command("analyze", epilog=_EXIT_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@_report_options
@_config_options
@click.option("--plot-dir", type=click.Path(file_okay=False, path_type=str),
              help="Also write one PNG per run, and overview.png, into DIR.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
              help="Also write the HTML report (interactive plots, one self-contained file) to FILE. "
              "Needs warmcheck[html].")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Worker processes; 0 = one per CPU when there are 16 runs or more. Output does not depend on it.")
@click.option("--scheduler", metavar="ADDRESS", envvar="WARMCHECK_SCHEDULER",
              help="Analyse the runs as tasks on this dask.distributed scheduler (tcp://HOST:8786) instead of "
              "--jobs processes; the workers read the files by path. Output does not depend on it. "
              "Needs warmcheck[dask].")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Tracebacks for internal errors.")
@click.pass_context
def analyze_cmd(ctx: click.Context, paths: Sequence[str], fmt: str, output: str | None, exit_zero: bool,
                plot_dir: str | None, html_file: str | None, jobs: int, scheduler: str | None, quiet: bool,
                verbose: bool, **params: Any) -> None:
    """Analyse the training logs under PATH... (files or directories, searched recursively)."""
    for target in (output, html_file):
        if target is not None:  # before any work: a typo costs no analysis
            _run_guarded(lambda t=target: _check_output(t), verbose)  # type: ignore[misc]
    html = _html_reporter(fmt, html_file, verbose)  # a missing extra ends the command before any reading
    settings = _settings(ctx, params)
    if not quiet:  # which file can relax the gate, for the person reading a CI log (issue 10)
        click.echo(f"warmcheck: config: {settings.config.describe()}", err=True)
    colour = output is None and fmt == "text" and sys.stdout.isatty()
    points = plot_dir is not None or html is not None  # the plots need the runs' points
    piece = pieces.piece_format(fmt, colour) if not points else None
    outcome: Outcome | PiecedOutcome
    report: str | Iterable[str]
    # Joined from per-run pieces: worker processes render their runs, and the cache of analysed runs
    # keeps each run's pieces, so that only the runs that changed are rendered again.
    if piece is not None:
        pieced = _run_guarded(lambda: analyze_pieces(paths, settings, piece, None, None if quiet else _progress(),
                                                     jobs, scheduler=scheduler or None), verbose)
        outcome, report = pieced, pieces.assemble(piece, pieced)
    else:
        whole = _run_guarded(lambda: analyze(paths, settings, None if quiet else _progress(), jobs,
                                             scheduler=scheduler or None, keep_points=points), verbose)
        if plot_dir is not None:
            _run_guarded(lambda: _plots(whole, settings, plot_dir, quiet), verbose)
        _write_html(html, whole, html_file, quiet, verbose)
        reporter = html if fmt == "html" and html is not None else \
            make_reporter(OutputFormat(fmt), colour=colour, fail_on=settings.fail_on)
        # A reporter that can stream (JSON) writes piece by piece: a million series never sit in memory as text.
        chunks = getattr(reporter, "chunks", None)
        outcome, report = whole, chunks(whole) if chunks is not None else reporter.render(whole)
    _run_guarded(lambda: _emit(report, output), verbose)
    code = exit_code(outcome, settings.fail_on, exit_zero)
    if not quiet:
        _summary(outcome, code)
    sys.exit(code)


_COMPARE_EXIT = """Exit codes: 0 no finding at or above --fail-on (the run matches its baseline); 1 at least one;
2 could not compare (usage error, missing path, RUN is not one run, no data)."""


@main.command("compare", epilog=_COMPARE_EXIT)
@click.argument("run_path", metavar="RUN", type=click.Path(path_type=str))
@click.option("-b", "--baseline", "baselines", multiple=True, metavar="REF", type=click.Path(path_type=str),
              help="The reference: a run, a directory of runs (seeds: their spread widens the band), or a golden "
              "file from --write-golden. Repeatable.")
@click.option("--write-golden", metavar="FILE", type=click.Path(dir_okay=False, path_type=str),
              help="Write RUN's golden values (steps and exact values of LR, loss, grad norm) to FILE and exit.")
@click.option("--rtol", type=click.FloatRange(min=0), default=0.1, show_default=True, envvar="WARMCHECK_RTOL",
              help="Loss band: relative tolerance around the baseline.")
@click.option("--atol", type=click.FloatRange(min=0), default=0.0, show_default=True, envvar="WARMCHECK_ATOL",
              help="Loss band: absolute tolerance around the baseline.")
@click.option("--lr-rtol", type=click.FloatRange(min=0), default=1e-4, show_default=True, envvar="WARMCHECK_LR_RTOL",
              help="Largest relative LR difference that is the same schedule.")
@click.option("--window", type=click.IntRange(min=0), default=0, show_default=True, envvar="WARMCHECK_WINDOW",
              help="Smooth both losses over this many logged points (centred) before comparing; 0 = about 5%% "
              "of the common steps, 1 = raw values.")
@click.option("--sigmas", type=click.FloatRange(min=0), default=3.0, show_default=True, envvar="WARMCHECK_SIGMAS",
              help="The band is at least this many standard errors of the batch noise (the losses around their "
              "smoothed curves) and, with several baselines, this many standard deviations of their spread.")
@_format_options
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
              help="Also write the HTML report (the run over its baselines) to FILE. Needs warmcheck[html].")
@_gate_options
@_config_options
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Tracebacks for internal errors.")
@click.pass_context
def compare_cmd(ctx: click.Context, run_path: str, baselines: Sequence[str], write_golden: str | None, rtol: float,
                atol: float, lr_rtol: float, window: int, sigmas: float, fmt: str, output: str | None,
                html_file: str | None, exit_zero: bool, quiet: bool, verbose: bool, **params: Any) -> None:
    """Compare the run at RUN with a baseline: LR schedule, loss within a tolerance band, new spikes/NaNs.

    \b
    warmcheck compare runs/pr-123 --baseline runs/main
    warmcheck compare runs/pr-123 --baseline golden.json
    warmcheck compare runs/main --write-golden golden.json
    """
    from . import compare as cmp

    if not baselines and write_golden is None:
        raise click.UsageError("give --baseline REF (a run or a golden file), or --write-golden FILE")
    for target in (output, write_golden, html_file):
        if target is not None:
            _run_guarded(lambda t=target: _check_output(t), verbose)  # type: ignore[misc]
    html = _html_reporter(fmt, html_file, verbose) if baselines else None
    settings = _settings(ctx, params)
    if not quiet:
        click.echo(f"warmcheck: config: {settings.config.describe()}", err=True)
    run = _run_guarded(lambda: _one_run(cmp.load(run_path, settings), run_path), verbose)
    if write_golden is not None:
        doc = cmp.golden(run)
        if not doc["series"]:
            click.echo(f"warmcheck: error: {visible(run_path)} has no LR, loss or grad-norm series to keep", err=True)
            sys.exit(2)
        _run_guarded(lambda: _emit(cmp.golden_text(run), write_golden), verbose)
        if not quiet:
            kept = ", ".join(f"{k} ({len(v['steps'])} points)" for k, v in doc["series"].items())
            click.echo(f"warmcheck: wrote {visible(write_golden)}: {kept}", err=True)
        if not baselines:
            sys.exit(0)
    refs: list[Any] = []
    for ref in baselines:
        found = _run_guarded(lambda r=ref: cmp.load(r, settings), verbose)  # type: ignore[misc]
        refs.extend(found)
    tol = cmp.Tolerance(rtol=rtol, atol=atol, lr_rtol=lr_rtol, window=window, sigmas=sigmas)
    result = _run_guarded(lambda: cmp.compare(run, refs, tol), verbose)
    first_file = run.sources[0].path if run.sources else None  # where annotations point (as analyze's do)
    mine = [f if f.source else replace(f, source=first_file) for f in (*run.findings, *result.findings)
            if f.code.startswith(("WC0", "WC5")) and settings.enabled(f.code)]
    tree = [replace(f, message=f"baseline {b.name}: {f.message}") for b in refs for f in b.findings
            if f.code.startswith("WC0") and settings.enabled(f.code)]
    outcome = Outcome((replace(run, findings=tuple(sorted(mine, key=lambda f: f.sort_key()))),),
                      tuple(tree), settings, comparison=result.summary, baselines=tuple(refs))
    _write_html(html, outcome, html_file, quiet, verbose)
    reporter = html if fmt == "html" and html is not None else \
        make_reporter(OutputFormat(fmt), colour=output is None and fmt == "text" and sys.stdout.isatty(),
                      fail_on=settings.fail_on)
    _run_guarded(lambda: _emit(reporter.render(outcome), output), verbose)
    code = exit_code(outcome, settings.fail_on, exit_zero)
    if not quiet:
        _summary(outcome, code)
    sys.exit(code)


def _html_reporter(fmt: str, html_file: str | None, verbose: bool) -> Any:
    """The HTML reporter when ``--format html`` or ``--html FILE`` asks for it (exit 2 at once when
    warmcheck[html] is not installed), else None."""
    if fmt != "html" and html_file is None:
        return None
    from .reporters.html import HtmlReporter

    return _run_guarded(HtmlReporter, verbose)


def _write_html(reporter: Any, outcome: Outcome, html_file: str | None, quiet: bool, verbose: bool) -> None:
    if reporter is None or html_file is None:
        return
    _run_guarded(lambda: _emit(reporter.render(outcome), html_file), verbose)
    if not quiet:
        click.echo(f"warmcheck: wrote {visible(html_file)}", err=True)


def _one_run(runs: Sequence[Any], path: str) -> Any:
    if len(runs) != 1:
        names = ", ".join(visible(r.name) for r in runs[:5]) + (", ..." if len(runs) > 5 else "")
        raise WarmcheckError(f"{path} holds {len(runs)} runs ({names}); compare takes one run (give its directory)")
    return runs[0]


@main.command("tags")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_config_options
@click.option("-v", "--verbose", is_flag=True, help="Tracebacks for internal errors.")
@click.pass_context
def tags_cmd(ctx: click.Context, paths: Sequence[str], fmt: str, verbose: bool, **params: Any) -> None:
    """List the series of each run: tag, role, points, step range."""
    settings = replace(_settings(ctx, params), select=("WC0",))
    outcome = _run_guarded(lambda: analyze(paths, settings, _progress()), verbose)
    if fmt == "json":
        from .reporters.json import series_dict
        doc = [{"run": r.name, "series": [series_dict(s) for s in r.series]} for r in outcome.runs]
        _emit(ci_json(json.dumps(doc, indent=2)) + "\n", None)
    else:
        lines = []
        for r in outcome.runs:
            lines.append(ci_line(visible(r.name)))
            tags = [visible(s.tag) for s in r.series]  # names are data: controls shown as escapes
            width = max((len(t) for t in tags), default=0)
            for s, tag in zip(r.series, tags, strict=True):
                span = f"{int(s.steps[0])}..{int(s.steps[-1])}" if s.points else "-"
                lines.append(ci_line(f"  {tag:<{width}}  {(s.role.value if s.role else '-'):<9} "
                                     f"{s.points:>8} points  steps {span}"))
        _emit("\n".join(lines) + "\n", None)
    sys.exit(0 if outcome.analysable else 2)


@main.command("plot")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="Image to write: .png or .svg.")
@click.option("--smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.6, show_default=True,
              help="TensorBoard-style EMA weight for the loss (0: raw points only).")
@_config_options
@click.option("-v", "--verbose", is_flag=True, help="Tracebacks for internal errors.")
@click.pass_context
def plot_cmd(ctx: click.Context, paths: Sequence[str], output: str, smoothing: float, verbose: bool,
             **params: Any) -> None:
    """Draw a run: LR with the observed and configured warmup ends, loss with spikes and divergence.

    Several runs under PATH give an overview image instead.
    """
    from . import plots

    _run_guarded(lambda: plots.check_image_path(output), verbose)
    settings = _settings(ctx, params)
    outcome = _run_guarded(lambda: analyze(paths, settings, _progress()), verbose)
    if not outcome.runs:
        click.echo("warmcheck: error: no training logs found to plot", err=True)
        sys.exit(2)
    if len(outcome.runs) == 1:
        fig = plots.run_figure(outcome.runs[0], settings.for_run(outcome.runs[0].name), smoothing or None)
    else:
        fig = plots.overview_figure(outcome.runs)
    path = _run_guarded(lambda: plots.save(fig, output), verbose)
    click.echo(f"warmcheck: wrote {path}", err=True)
    sys.exit(0 if outcome.analysable else 2)


def _plots(outcome: Outcome, settings: Settings, directory: str, quiet: bool) -> None:
    """One PNG per run (names unique and bounded, see ``plots.file_names``), then ``overview.png``.

    A run whose picture cannot be drawn is named on stderr and the others are still written; a
    directory that cannot be created or written is an error (exit 2).
    """
    import os

    from . import plots

    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise WarmcheckError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    names = plots.file_names([run.name for run in outcome.runs])
    written = 0
    for run, name in zip(outcome.runs, names.names, strict=True):
        path = os.path.join(directory, name)
        try:
            plots.save(plots.run_figure(run, settings.for_run(run.name)), path)
        except WarmcheckError:
            raise  # the directory is not writable (full disk, permissions): no point in going on
        except Exception as exc:  # noqa: BLE001 - one run's picture must not cost the others or the report
            click.echo(f"warmcheck: error: cannot plot run {visible(run.name)}: {type(exc).__name__}: "
                       f"{visible(str(exc))}", err=True)
            continue
        written += 1
    if len(outcome.runs) > 1:
        plots.save(plots.overview_figure(outcome.runs), os.path.join(directory, plots.OVERVIEW))
    if not quiet:
        for group in names.collisions:
            click.echo("warmcheck: plot file names: runs " + ", ".join(visible(n) for n in group)
                       + " clean to the same name; each file name carries a hash of its run name", err=True)
        total = len(outcome.runs)
        click.echo(f"warmcheck: wrote {written}{'' if written == total else f' of {total}'} run plot(s)"
                   f"{' and overview.png' if total > 1 else ''} to {visible(directory)}", err=True)


_WATCH_EXIT = """Exit codes: 1 as soon as a finding at or above --exit-on is reported; on Ctrl-C (or SIGTERM,
or --stop-when-idle) the whole runs are analysed once more, then 0 no finding at or above --fail-on,
1 at least one; 2 could not analyse (usage error, missing path, no data in any run)."""


@main.command("watch", epilog=_WATCH_EXIT)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--interval", type=click.FloatRange(min=0.01), default=5.0, show_default=True, metavar="S",
              help="Seconds between polls.")
@click.option("--settle", type=click.FloatRange(min=0), default=30.0, show_default=True, metavar="S",
              help="Seconds a file must stay unchanged before a partly written last record or line is "
              "reported (WC003) and before --stop-when-idle stops.")
@click.option("--exit-on", type=click.Choice(["error", "warning", "info"]), default=None,
              help="Exit 1 at the first finding at or above this severity.")
@click.option("--exec", "exec_cmd", metavar="CMD",
              help="Run CMD (with the shell) for each finding at or above --exec-on, with WARMCHECK_CODE, "
              "WARMCHECK_SEVERITY, WARMCHECK_RUN, WARMCHECK_STEP, WARMCHECK_TAG and WARMCHECK_MESSAGE set "
              "(controls, NUL and lone surrogates in names shown as escapes: \\x00, \\n, \\udc80).")
@click.option("--exec-on", type=click.Choice(["error", "warning", "info"]), default="warning", show_default=True,
              help="Lowest severity that runs --exec.")
@click.option("--state", "state", metavar="FILE", default=None,
              help="File remembering which findings --exec already alerted on, so a restarted watch does not "
              "alert again (default: one per watched paths and command under $XDG_STATE_HOME/warmcheck/watch).")
@click.option("--no-state", is_flag=True, help="Keep no state: after a restart, --exec alerts again.")
@click.option("--stop-when-idle", is_flag=True,
              help="Stop (with the final analysis) once no file has changed for --settle seconds.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one line per finding; json: one JSON object per line (findings, then a summary).")
@click.option("--fail-on", type=click.Choice([f.value for f in FailOn]), default="error", show_default=True,
              envvar="WARMCHECK_FAIL_ON", help="Lowest severity that makes the final exit code 1.")
@click.option("--select", multiple=True, metavar="PREFIX", envvar="WARMCHECK_SELECT",
              help="Only report codes with this prefix.")
@click.option("--ignore", multiple=True, metavar="PREFIX", envvar="WARMCHECK_IGNORE",
              help="Do not report codes with this prefix.")
@_config_options
@click.option("-q", "--quiet", is_flag=True, help="Nothing on stderr but errors.")
@click.option("-v", "--verbose", is_flag=True, help="Tracebacks for internal errors.")
@click.pass_context
def watch_cmd(ctx: click.Context, paths: Sequence[str], interval: float, settle: float, exit_on: str | None,
              exec_cmd: str | None, exec_on: str, state: str | None, no_state: bool, stop_when_idle: bool, fmt: str,
              quiet: bool, verbose: bool, **params: Any) -> None:
    """Follow the training logs under PATH... while they are written; print each new finding once.

    Reads only the bytes appended since the last poll; new runs and new files are picked up.
    """
    from .live.watch import watch_loop

    settings = _settings(ctx, params)
    code = _run_guarded(lambda: watch_loop(
        paths, settings, interval=interval, settle=settle, exit_on=exit_on, exec_cmd=exec_cmd, exec_on=exec_on,
        stop_when_idle=stop_when_idle, fmt=fmt, quiet=quiet, colour=fmt == "text" and sys.stdout.isatty(),
        state="" if no_state else state), verbose)
    sys.exit(code)


@main.command("rules")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
def rules_cmd(fmt: str) -> None:
    """List every finding code: name, default severity, what it detects."""
    if fmt == "json":
        doc = [{"code": r.code, "name": r.slug, "severity": r.severity.value, "summary": r.summary, "doc": r.doc}
               for r in RULES.values()]
        _emit(json.dumps(doc, indent=2) + "\n", None)
    elif fmt == "markdown":
        _emit(rules_markdown() + "\n", None)
    else:
        width = max(len(r.slug) for r in RULES.values())
        rows = [f"{r.code}  {r.slug:<{width}}  {r.severity.value:<7}  {r.summary}\n" for r in RULES.values()]
        _emit("".join(rows), None)


@main.command("explain")
@click.argument("code")
def explain_cmd(code: str) -> None:
    """Explain one finding code (WC201): what it detects, why it matters, what to do."""
    rule = RULES.get(code.upper())
    if rule is None:
        click.echo(f"warmcheck: error: unknown code {code!r}; `warmcheck rules` lists them", err=True)
        sys.exit(2)
    family = FAMILIES.get(rule.code[:3], "")
    _emit(f"{rule.code} {rule.slug} ({rule.severity.value} by default; {family})\n\n{rule.summary}\n\n{rule.doc}\n",
          None)


T = TypeVar("T")


def _run_guarded(fn: Callable[[], T], verbose: bool) -> T:
    """Turn expected failures into a one-line error and exit 2; never show a traceback unasked."""
    try:
        return fn()
    except WarmcheckError as exc:
        click.echo(f"warmcheck: error: {visible(str(exc))}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("warmcheck: interrupted", err=True)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - a crash must not look like "findings" (exit 1)
        if verbose:
            traceback.print_exc()
        click.echo(f"warmcheck: internal error: {type(exc).__name__}: {visible(str(exc))} (run with -v for "
                   "details)", err=True)
        sys.exit(2)


def _emit(text: str | Iterable[str], output: str | None) -> None:
    """Write the report (a string or its pieces); what the stream cannot encode is written as a
    backslash escape, not a crash."""
    pieces = [text] if isinstance(text, str) else text
    if output is None:
        enc = getattr(sys.stdout, "encoding", None) or "utf-8"
        for piece in pieces:
            sys.stdout.write(piece.encode(enc, "backslashreplace").decode(enc))
        sys.stdout.flush()
        return
    try:
        with open(output, "w", encoding="utf-8", errors="backslashreplace") as f:
            for piece in pieces:
                f.write(piece)
    except OSError as exc:
        raise WarmcheckError(f"cannot write {output}: {exc.strerror or exc}") from exc


def _check_output(output: str) -> None:
    """``-o FILE`` must be creatable: its directory exists and FILE is not a directory."""
    import os

    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise WarmcheckError(f"cannot write {output}: no such directory {parent}")
    if os.path.isdir(output):
        raise WarmcheckError(f"cannot write {output}: it is a directory")


def _progress() -> Callable[[int, int, str], None] | None:
    """A one-line progress indicator on stderr, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int, name: str) -> None:
        if total < 2:
            return
        end = "\n" if done == total else ""
        filled = done * 24 // total
        bar = "#" * filled + "-" * (24 - filled)
        sys.stderr.write(f"\r\x1b[2Kwarmcheck [{bar}] {done}/{total} {visible(name)[-50:]}{end}")
        sys.stderr.flush()

    return show


def _summary(outcome: Outcome | PiecedOutcome, code: int) -> None:
    counts = outcome.counts()
    parts = [f"{counts[s]} {s.value}{'s' if counts[s] != 1 and s is not Severity.INFO else ''}"
             for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)]
    n = outcome.n_runs
    tail = "" if outcome.analysable else "; no data could be analysed"
    click.echo(f"warmcheck: {n} run{'s' if n != 1 else ''}, {', '.join(parts)}{tail} (exit {code})", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
