"""The exit policy, as a function and through the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from warmcheck.config import FailOn
from warmcheck.findings import make
from warmcheck.model import Format, Run, Series, SourceInfo
from warmcheck.pipeline import Outcome, exit_code


def _outcome(*codes: str, data: bool = True) -> Outcome:
    series = (Series("loss", np.arange(3, dtype=np.int64), np.ones(3), np.zeros(3)),) if data else ()
    run = Run("r", "r", (SourceInfo("r", Format.CSV),), series,
              findings=tuple(make(c, "m", run="r") for c in codes))
    return Outcome((run,))


@pytest.mark.parametrize("codes,fail_on,exit_zero,expected", [
    ((), FailOn.ERROR, False, 0),                   # clean
    (("WC202",), FailOn.ERROR, False, 0),           # info below the default gate
    (("WC301",), FailOn.ERROR, False, 0),           # warning below the default gate
    (("WC201",), FailOn.ERROR, False, 1),           # error at the gate
    (("WC024",), FailOn.ERROR, False, 1),           # a run whose worker died twice fails the gate
    (("WC301",), FailOn.WARNING, False, 1),         # warning at --fail-on warning
    (("WC202",), FailOn.INFO, False, 1),            # info at --fail-on info
    (("WC201",), FailOn.NEVER, False, 0),
    (("WC201",), FailOn.ERROR, True, 0),            # --exit-zero
])
def test_exit_code_table(codes: tuple[str, ...], fail_on: FailOn, exit_zero: bool, expected: int) -> None:
    assert exit_code(_outcome(*codes), fail_on, exit_zero) == expected


def test_could_not_analyse_wins_over_everything() -> None:
    assert exit_code(_outcome("WC002", data=False), FailOn.ERROR, exit_zero=True) == 2
    assert exit_code(_outcome(data=False), FailOn.NEVER) == 2


def test_every_run_lost_to_dead_workers_could_not_be_analysed() -> None:
    assert exit_code(_outcome("WC024", data=False), FailOn.NEVER) == 2
