"""The JSON reporter's own indented encoder against ``json.dumps(..., indent=2, allow_nan=False)``:
the report must stay the very text the standard library writes (a CI job may diff two reports)."""

from __future__ import annotations

import enum
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmcheck.reporters.json import indented


class _Tag(str, enum.Enum):
    A = "a"


def _stdlib(value: object, newline: str) -> object:
    try:
        return json.dumps(value, indent=2, allow_nan=False).replace("\n", newline)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)


def _ours(value: object, newline: str) -> object:
    try:
        return indented(value, newline)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)


_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text()
            | st.sampled_from([np.float64(0.1), np.int64(3), _Tag.A, -0.0, 5e-324, 1e300, "##[x", "\u00e9\u2028\0"]))
_values = st.recursive(
    _scalars,
    lambda inner: (st.lists(inner, max_size=5) | st.lists(inner, max_size=3).map(tuple)
                   | st.dictionaries(st.text(max_size=5), inner, max_size=5)
                   | st.dictionaries(st.integers() | st.booleans() | st.sampled_from([_Tag.A, 1.5]), inner,
                                     max_size=2)),
    max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(_values, st.sampled_from(["\n", "\n  ", "\n      "]))
def test_indented_is_json_dumps_with_indent_2(value: object, newline: str) -> None:
    assert _ours(value, newline) == _stdlib(value, newline)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"a": [1, math.nan]}, [{"b": -math.inf}],
                                   {"a": object()}, [object()]])
def test_what_json_dumps_refuses_is_refused_alike(value: object) -> None:
    got, want = _ours(value, "\n"), _stdlib(value, "\n")
    assert isinstance(want, tuple) and got == want


def test_a_whole_report_is_the_text_json_dumps_writes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import synthetic as syn

    from warmcheck.config import Settings
    from warmcheck.pipeline import Outcome, analyze_run
    from warmcheck.reporters.json import JsonReporter, finding_dict, run_dict, series_dict

    runs = tuple(analyze_run(r, Settings()) for r in (syn.healthy(seed=3).run(), syn.healthy(seed=4).run()))
    text = JsonReporter().render(Outcome(runs, (), Settings()))
    doc = json.loads(text)
    # Every run's object as json.dumps lays it out, nested at depth 2 of the report.
    for run, obj in zip(runs, doc["runs"], strict=True):
        want = run_dict(run)
        assert obj == json.loads(json.dumps(want))
        assert json.dumps(want, indent=2).replace("\n", "\n    ") in text
        for s in run.series:
            assert json.dumps(series_dict(s), indent=2).replace("\n", "\n        ") in text
        for f in run.findings:
            assert json.dumps(finding_dict(f), indent=2).replace("\n", "\n        ") in text
