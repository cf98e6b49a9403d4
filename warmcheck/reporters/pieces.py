"""Reports joined from per-run pieces, so that a warm ``analyze`` renders only the runs that changed.

Every format but JUnit is the text of each run, in discovery order, between a head and a tail that
depend only on the findings not tied to a run, the number of runs and the findings per severity
(the JSON ``summary``, the markdown counts line) or on small per-run cells (the text summary table,
whose column widths are computed here over all runs; the markdown summary rows). A run's *pieces*
are those texts: a function of the run alone and of the piece format (the format, and colour for
text). :mod:`warmcheck.runcache` keeps them beside each analysed run (the manifest is already
specific to the paths as given, the settings and warmcheck's code), so that the report of a tree
where one run changed costs one run's rendering and a join. The joined report is byte-identical to
the format's reporter on the whole outcome (tests compare them on every format).
"""

from __future__ import annotations

import json as _json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..model import Run
from ..pipeline import PiecedOutcome, sweep_of
from . import github, json, markdown, text
from .common import summarize
from .sections import extra_lines

Render = Callable[[Run], tuple[str, ...]]


def piece_format(fmt: str, colour: bool = False) -> str | None:
    """The piece format of ``--format fmt`` (None: JUnit, rendered from the whole outcome)."""
    if fmt == "text":
        return "text+colour" if colour else "text"
    return fmt if fmt in ("json", "github", "markdown") else None


def renderer(piece: str) -> Render:
    """The function that gives a run's pieces in the ``piece`` format: the format's texts, then the
    run's profile (its row of the sweep view, as JSON)."""
    inner = _renderer(piece)
    return lambda run: (*inner(run), _json.dumps(run.profile))


def _profiles(outcome: PiecedOutcome) -> list[Mapping[str, Any]]:
    return [p.profile if isinstance(p, Run) else _json.loads(p[-1]) for p in outcome.pieces]


def _renderer(piece: str) -> Render:
    if piece in ("text", "text+colour"):
        reporter = text.TextReporter(colour=piece == "text+colour")
        return lambda run: (reporter.run_text(run), *text.cells(summarize(run)))
    if piece == "json":
        return lambda run: (json.run_text(run),)
    if piece == "github":
        return lambda run: (github.run_text(run),)
    if piece == "markdown":
        return markdown.run_text
    raise ValueError(f"no piece format {piece!r}")


def assemble(piece: str, outcome: PiecedOutcome) -> str | Iterable[str]:
    """The whole report in the ``piece`` format (a string, or its pieces in order). A run given as
    itself (too large to be rendered ahead) is rendered here; in JSON, streamed series by series."""
    sweep = sweep_of(_profiles(outcome))
    if piece == "json":
        return json.document(outcome.findings, outcome.n_runs, outcome.counts(), outcome.settings,
                             (json._run_chunks(p) if isinstance(p, Run) else [p[0]] for p in outcome.pieces),
                             json.sections(sweep))
    render = _renderer(piece)
    done = [render(p) if isinstance(p, Run) else p[:-1] for p in outcome.pieces]
    if piece in ("text", "text+colour"):
        reporter = text.TextReporter(colour=piece == "text+colour")
        return text.assemble([reporter._finding(f) for f in outcome.findings], [p[0] for p in done],
                             [p[1:] for p in done]) + extra_lines(None, sweep, markdown=False)
    if piece == "github":
        return github.assemble(outcome.findings, [p[0] for p in done])
    if piece == "markdown":
        return markdown.assemble(outcome.n_runs, outcome.counts(), outcome.findings,
                                 [(p[0], p[1]) for p in done]) + extra_lines(None, sweep, markdown=True)
    raise ValueError(f"no piece format {piece!r}")


__all__ = ["Render", "assemble", "piece_format", "renderer"]
