"""JSONL reader: flattening, step keys, bad and partial lines, NaN tokens, no step key."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warmcheck.model import Format, Fragment, SourceRead
from warmcheck.readers.jsonl import read_jsonl


def _frags(read: SourceRead) -> dict[str, Fragment]:
    return {f.tag: f for f in read.fragments}


def _codes(read: SourceRead) -> list[str]:
    return sorted(f.code for f in read.findings)


def _write(tmp_path: Path, text: str | bytes, name: str = "log.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def _lines(*records: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_nested_objects_are_flattened_and_kept_in_file_order(tmp_path: Path) -> None:
    text = _lines({"step": 0, "train": {"loss": 2.0, "lr": 1e-4}},
                  {"step": 1, "train": {"loss": 1.5, "lr": 2e-4}, "run": "a"},
                  {"step": 1, "val": {"loss": 1.7}},
                  {"step": 0, "train": {"loss": 2.1}})  # a restart: kept, merged later
    read = read_jsonl(_write(tmp_path, text))
    frags = _frags(read)
    assert set(frags) == {"train/loss", "train/lr", "val/loss"}
    assert frags["train/loss"].steps.tolist() == [0, 1, 0]
    assert frags["train/loss"].values.tolist() == [2.0, 1.5, 2.1]
    assert frags["val/loss"].steps.tolist() == [1]
    assert read.findings == [] and (read.info.format, read.info.records, read.info.skipped) == (Format.JSONL, 4, 0)
    assert read.metadata["jsonl"] == {"step_key": "step", "lines": 4}


def test_bad_lines_are_counted_with_physical_line_numbers(tmp_path: Path) -> None:
    text = ('{"step": 0, "loss": 1.0}\n\n[1, 2]\n{not json\n{"loss": 3.0}\n'
            '{"step": 2.5, "loss": true}\n{"step": 3, "loss": NaN}\n{"step": 4, "loss": "Infinity"}\n')
    read = read_jsonl(_write(tmp_path, text))
    found = {f.message.split(" and ")[0].split(":")[0]: f for f in read.findings}
    assert found["1 line(s) are not valid JSON"].details["lines"] == [4]
    assert found["1 line(s) are JSON but not objects"].details["lines"] == [3]
    assert found["1 line skipped"].line == 5 and found["1 line skipped"].tag == "step"
    assert found["non-integer step 2.5 at line 6 rounded down (1 line); kept"].line == 6
    assert found["key loss"].details == {"cells": 1, "lines": [6]}
    assert found["bare non-finite JSON tokens accepted as numbers (NaN x1); they are not standard JSON"]
    loss = _frags(read)["loss"]
    assert loss.steps.tolist() == [0, 3, 4]
    assert loss.values[0] == 1.0 and math.isnan(loss.values[1]) and loss.values[2] == math.inf
    assert _codes(read) == ["WC012", "WC014", "WC014", "WC014", "WC014", "WC014"]
    assert (read.info.records, read.info.skipped) == (7, 4)


def test_unterminated_last_line(tmp_path: Path) -> None:
    partial = read_jsonl(_write(tmp_path, _lines({"step": 0, "loss": 1.0}) + '{"step": 1, "lo'))
    (tail,) = partial.findings
    assert tail.code == "WC003" and tail.line == 2 and "incomplete last line" in tail.message
    assert _frags(partial)["loss"].steps.tolist() == [0]
    assert (partial.info.records, partial.info.skipped) == (2, 1)
    complete = read_jsonl(_write(tmp_path, _lines({"step": 0, "loss": 1.0}) + '{"step": 1, "loss": 2}', "b.jsonl"))
    assert complete.findings == [] and _frags(complete)["loss"].steps.tolist() == [0, 1]


def test_no_step_key_uses_the_object_line_index(tmp_path: Path) -> None:
    read = read_jsonl(_write(tmp_path, '{"loss": 3}\n\n{"loss": 2}\n{"loss": 1}\n'))
    (note,) = read.findings
    assert note.code == "WC017" and note.details == {"rows": 3}
    assert _frags(read)["loss"].steps.tolist() == [0, 1, 2]


def test_step_key_priority_and_nested_step(tmp_path: Path) -> None:
    wandb = _lines({"_step": 0, "trainer": {"global_step": 10}, "loss": 1.0},
                   {"_step": 1, "trainer": {"global_step": 20}, "loss": 0.5})
    read = read_jsonl(_write(tmp_path, wandb))
    assert read.metadata["jsonl"]["step_key"] == "trainer/global_step"
    assert _frags(read)["loss"].steps.tolist() == [10, 20] and _frags(read)["_step"].values.tolist() == [0, 1]
    upper = read_jsonl(_write(tmp_path, _lines({"Iteration": 7, "loss": 1}), "c.jsonl"))
    assert _frags(upper)["loss"].steps.tolist() == [7]


def test_wall_time_gzip_and_huge_steps(tmp_path: Path) -> None:
    text = _lines({"step": 2**53 + 1, "loss": 1.0, "_timestamp": 1_700_000_000.25})
    path = tmp_path / "log.jsonl.gz"
    path.write_bytes(gzip.compress(text.encode()))
    read = read_jsonl(str(path))
    loss = _frags(read)["loss"]
    assert loss.steps.tolist() == [2**53 + 1] and loss.wall_times.tolist() == [1_700_000_000.25]
    assert read.findings == []


def test_empty_unreadable_and_text_only(tmp_path: Path) -> None:
    assert _codes(read_jsonl(_write(tmp_path, ""))) == ["WC002"]
    assert _codes(read_jsonl(str(tmp_path))) == ["WC001"]
    text_only = read_jsonl(_write(tmp_path, _lines({"step": 1, "msg": "hello"}), "t.jsonl"))
    assert _codes(text_only) == ["WC002"] and text_only.fragments == []


def test_invalid_utf8_and_nul_tail(tmp_path: Path) -> None:
    data = b'{"step": 0, "l\xb5ss": 1.0}\n{"step": 1, "loss": 2.0}\n' + b"\x00" * 64
    read = read_jsonl(_write(tmp_path, data))
    assert _codes(read) == ["WC013", "WC018"]
    assert set(_frags(read)) == {"l\ufffdss", "loss"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(['{"step": 1, "loss": 2}', '{"step": "x"}', "NaN", "[", "{", "}", "\n", "\r",
                                 '"', "\x00", "\xff", '{"a": {"b": {"c": 1e999}}}', "-Infinity", "{}"]),
                max_size=30))
def test_never_raises(tmp_path: Path, parts: list[str]) -> None:
    read = read_jsonl(_write(tmp_path, "".join(parts).encode("utf-8", "surrogateescape"), "fuzz.jsonl"))
    assert all(f.code != "WC021" for f in read.findings)  # the reader returned (an exception fails the test)
    assert all(f.steps.dtype == np.int64 for f in read.fragments)
