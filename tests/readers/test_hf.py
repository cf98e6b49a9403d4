"""HF trainer_state.json reader: log_history to fragments, summary row, NaN tokens, truncation.

``tests/data/realruns/hf_linear_warmup_ratio/trainer_state.json`` is a copy of a file written
by transformers' Trainer (linear schedule, warmup_ratio, logging_steps=1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warmcheck.model import Format, Fragment, SourceRead
from warmcheck.readers.hf import read_trainer_state

REAL = Path(__file__).resolve().parent.parent / "data" / "realruns" / "hf_linear_warmup_ratio"


def _frags(read: SourceRead) -> dict[str, Fragment]:
    return {f.tag: f for f in read.fragments}


def _codes(read: SourceRead) -> list[str]:
    return sorted(f.code for f in read.findings)


def _state(tmp_path: Path, text: str, name: str = "trainer_state.json") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _entry(step: int, **values: object) -> dict[str, object]:
    return {"epoch": step / 100, "step": step, **values}


NONFINITE = """{
  "best_metric": null, "global_step": 50, "max_steps": 50, "logging_steps": 10,
  "log_history": [
    {"epoch": 0.2, "learning_rate": 0.001, "loss": 1.5, "step": 10},
    {"epoch": 0.4, "learning_rate": 0.002, "loss": NaN, "step": 20},
    {"epoch": 0.6, "learning_rate": 0.003, "loss": Infinity, "step": 30},
    {"epoch": 0.6, "eval_loss": 0.9, "step": 30},
    {"epoch": 0.8, "learning_rate": 0.004, "loss": -Infinity, "step": 40},
    {"epoch": 1.0, "step": 50, "total_flos": 1e15, "train_loss": NaN, "train_runtime": 12.5}
  ]
}
"""


def test_log_history_to_fragments_with_nonfinite_tokens(tmp_path: Path) -> None:
    read = read_trainer_state(_state(tmp_path, NONFINITE))
    frags = _frags(read)
    assert set(frags) == {"epoch", "learning_rate", "loss", "eval_loss"}  # no summary keys
    loss = frags["loss"]
    assert loss.steps.tolist() == [10, 20, 30, 40]
    assert loss.values[0] == 1.5 and math.isnan(loss.values[1])
    assert loss.values[2] == math.inf and loss.values[3] == -math.inf
    assert frags["eval_loss"].steps.tolist() == [30] and frags["epoch"].steps.tolist() == [10, 20, 30, 30, 40]
    (note,) = read.findings
    assert note.code == "WC012" and note.details["tokens"] == {"NaN": 2, "Infinity": 1, "-Infinity": 1}
    assert "non-finite" in note.message
    assert read.metadata["trainer_state"] == {"best_metric": None, "global_step": 50, "max_steps": 50,
                                              "logging_steps": 10}
    assert read.metadata["train_summary"]["train_runtime"] == 12.5
    assert read.metadata["train_summary"]["train_loss"] is None  # NaN is not strict JSON
    json.dumps(read.metadata, allow_nan=False)
    assert (read.info.format, read.info.records, read.info.skipped) == (Format.HF_TRAINER_STATE, 6, 0)


def test_truncated_file_keeps_complete_entries_and_names_the_cut(tmp_path: Path) -> None:
    full = json.dumps({"best_metric": None, "global_step": 100,
                       "log_history": [_entry(s, loss=1.0 / s, learning_rate=1e-3) for s in range(10, 101, 10)],
                       "max_steps": 100}, indent=2, sort_keys=True)
    cut = full.index('"step": 80') + 5
    read = read_trainer_state(_state(tmp_path, full[:cut]))
    (tail,) = read.findings
    assert tail.code == "WC003" and "truncated" in tail.message
    assert tail.line == full[:cut].count("\n") + 1 and tail.details["entries_kept"] == 7
    assert _frags(read)["loss"].steps.tolist() == [10, 20, 30, 40, 50, 60, 70]
    assert read.metadata["trainer_state"] == {"best_metric": None, "global_step": 100}


def test_invalid_json_in_the_middle_is_wc014_and_the_rest_is_salvaged(tmp_path: Path) -> None:
    text = '{"log_history": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0} {"step": 3, "loss": 0.5}]}'
    read = read_trainer_state(_state(tmp_path, text))
    (bad,) = read.findings
    assert bad.code == "WC014" and (bad.line, bad.details["column"]) == (1, text.index('{"step": 3') + 1)
    assert _frags(read)["loss"].steps.tolist() == [1, 2, 3]


def test_real_trainer_state() -> None:
    read = read_trainer_state(str(REAL / "trainer_state.json"))
    counts = {f.tag: len(f) for f in read.fragments}
    assert counts == {"epoch": 113, "grad_norm": 113, "learning_rate": 113, "loss": 113}
    lr = _frags(read)["learning_rate"]
    assert lr.steps.tolist() == list(range(1, 114)) and lr.values[:2].tolist() == [0.0, 7.142857142857142e-05]
    state = read.metadata["trainer_state"]
    assert (state["max_steps"], state["logging_steps"], state["train_batch_size"]) == (113, 1, 8)
    assert read.metadata["train_summary"]["train_runtime"] == 1.3819
    assert read.findings == [] and (read.info.records, read.info.skipped) == (114, 0)


def test_entries_without_step_and_non_numeric_values(tmp_path: Path) -> None:
    doc = {"log_history": [
        {"step": 5, "loss": 1.0, "model": "gpt2", "flag": True, "nested": {"a": 2, "b": "x"}},
        {"epoch": 1.0, "predict_loss": 0.4},  # no step: a custom predict() call
        {"step": 6, "loss": "n/a"},
        {"step": 7.0, "loss": "NaN"},
        [1, 2],
    ]}
    read = read_trainer_state(_state(tmp_path, json.dumps(doc)))
    frags = _frags(read)
    assert set(frags) == {"loss", "nested/a"}
    assert frags["loss"].steps.tolist() == [5, 7] and math.isnan(frags["loss"].values[1])
    by_message = {f.message.split(":")[0]: f for f in read.findings}
    assert by_message["key loss"].details == {"cells": 1, "entries": [2]}
    assert _codes(read) == ["WC014", "WC014"]  # bad value, non-object entry
    # An entry without a step (a predict() call) is neither a point nor damage: it is metadata.
    assert read.metadata["entries_without_step"] == [{"epoch": 1.0, "predict_loss": 0.4}]
    assert (read.info.records, read.info.skipped) == (5, 2)
    bad_step = read_trainer_state(_state(tmp_path, json.dumps({"log_history": [{"step": "x", "loss": 1.0}]})))
    assert _codes(bad_step) == ["WC002", "WC014"]


def test_top_level_list_of_entries(tmp_path: Path) -> None:
    entries = [_entry(s, loss=float(s)) for s in (50, 100)] + [{"eval_loss": 0.9, "step": 100}]
    read = read_trainer_state(_state(tmp_path, json.dumps(entries), "training_logs.json"))
    assert _frags(read)["loss"].values.tolist() == [50.0, 100.0] and read.findings == []


def test_not_a_trainer_state_empty_and_unreadable(tmp_path: Path) -> None:
    assert _codes(read_trainer_state(_state(tmp_path, '{"repo": "x", "paths": []}', "SOURCE.json"))) == ["WC002"]
    assert _codes(read_trainer_state(_state(tmp_path, "", "empty.json"))) == ["WC002"]
    assert _codes(read_trainer_state(_state(tmp_path, '{"log_history": []}', "none.json"))) == ["WC002"]
    assert _codes(read_trainer_state(str(tmp_path))) == ["WC001"]
    deep = read_trainer_state(_state(tmp_path, "[" * 100_000, "deep.json"))
    assert "WC003" in _codes(deep) and deep.fragments == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, len(NONFINITE)), st.binary(max_size=8))
def test_never_raises_on_any_prefix(tmp_path: Path, cut: int, junk: bytes) -> None:
    path = tmp_path / "trainer_state.json"
    path.write_bytes(NONFINITE.encode()[:cut] + junk)
    read = read_trainer_state(str(path))
    assert all(f.code != "WC021" for f in read.findings)  # the reader returned (an exception fails the test)
    # Fragments keep the order the points were written in (a cut entry can read "step": 2 after step 10);
    # the run assembled from them has sorted, unique steps.
    from warmcheck.readers.assemble import assemble_run

    run = assemble_run("r", str(tmp_path), [read])
    assert all(np.all(np.diff(s.steps) > 0) for s in run.series)
    assert sum(s.raw_points for s in run.series) == sum(len(f.steps) for f in read.fragments)
