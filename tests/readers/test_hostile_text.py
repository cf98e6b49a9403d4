"""Hostile text inputs (issue 10 items 3, 4, 6, 7, 8): bounded work, every good point kept, the finding.

Inputs are built small in ``tmp_path`` (the full sizes run in ``bench/hostile_bench.py``): a YAML alias
bomb and self-reference beside a run, gzip text padded with NUL bytes or newlines, a size limit set
low, a CSV wider than the column limit, a trainer_state.json with damaged entries, read in pieces as
small as one byte, and a JSONL key that a nested object flattens onto.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hostile_inputs import BUILDERS

import warmcheck.readers._textstream as textstream
import warmcheck.readers.hf as hf
from warmcheck.cli import main
from warmcheck.config import parse_size, read_table
from warmcheck.model import Fragment, SourceRead
from warmcheck.pipeline import analyze
from warmcheck.readers._textstream import Limits, set_limits
from warmcheck.readers.csvlog import read_csv
from warmcheck.readers.hf import read_trainer_state
from warmcheck.readers.jsonl import read_jsonl
from warmcheck.readers.runconfig_files import MAX_NODES, read_config_files


@pytest.fixture(autouse=True)
def _default_limits() -> Iterator[None]:
    yield
    set_limits(Limits())


def _frags(read: SourceRead) -> dict[str, Fragment]:
    return {f.tag: f for f in read.fragments}


def _points(read: SourceRead) -> int:
    return sum(len(f) for f in read.fragments)


def _codes(read: SourceRead) -> list[str]:
    return sorted(f.code for f in read.findings)


def _log(n: int) -> str:
    return "step,loss,lr\n" + "".join(f"{i},{2.5 - i / 100:.4f},{1e-3 * min(1.0, (i + 1) / 10):.6g}\n"
                                      for i in range(n))


# ---- item 3: config files beside a run ----------------------------------------------------------

def _alias_bomb(levels: int, width: int = 10) -> str:
    lines = ["warmup_steps: 10", "a0: &a0 {" + ", ".join(f"k{j}: lol" for j in range(width)) + "}"]
    lines += [f"a{k}: &a{k} {{" + ", ".join(f"k{j}: *a{k - 1}" for j in range(width)) + "}"
              for k in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_and_self_reference_are_wc022_and_the_run_keeps_its_points(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text(_log(50))
    (run / "hparams.yaml").write_text(_alias_bomb(9))  # 10**9 values when walked, 350 bytes
    (run / "config.yaml").write_text("warmup_steps: 10\nloop: &loop {self: *loop}\n")
    found, problems = read_config_files(str(run), "run")
    assert found == {}
    by_file = {p.source: p for p in problems}
    bomb, loop = by_file["run/hparams.yaml"], by_file["run/config.yaml"]
    assert bomb.code == loop.code == "WC022" and bomb.severity.value == "info"
    assert f"more than {MAX_NODES:,}" in bomb.message and "self-referential alias" in loop.message
    # Through the whole analysis: the points are kept, the configs are data findings, no WC021.
    outcome = analyze([str(run)])
    (r,) = outcome.runs
    assert {s.tag: len(s.steps) for s in r.series} == {"loss": 50, "lr": 50}
    codes = [f.code for f in r.findings]
    assert codes.count("WC022") == 2 and "WC021" not in codes


def test_merge_key_bomb_and_deep_nesting_are_refused_and_a_normal_alias_is_read(tmp_path: Path) -> None:
    merge = ["m0: &m0 {" + ", ".join(f"k{j}: 1" for j in range(10)) + "}"]
    merge += [f"m{k}: &m{k} {{<<: [" + ", ".join([f"*m{k - 1}"] * 10) + "]}" for k in range(1, 9)]
    (tmp_path / "hparams.yaml").write_text("\n".join(merge) + "\n")
    (tmp_path / "config.json").write_text('{"a": ' * 300 + "1" + "}" * 300)
    (tmp_path / "params.yaml").write_text("lr: &lr 0.001\noptim: {lr: *lr}\nwarmup_steps: &w 5\nsched: {warmup: *w}\n")
    (tmp_path / "args.json").write_text("[" * 100_000)
    found, problems = read_config_files(str(tmp_path), "")
    assert found == {"params.yaml": {"lr": 0.001, "optim": {"lr": 0.001}, "warmup_steps": 5, "sched": {"warmup": 5}}}
    messages = {p.source: p.message for p in problems}
    assert set(messages) == {"hparams.yaml", "config.json", "args.json"}
    assert "alias bomb" in messages["hparams.yaml"] and "nested more than" in messages["config.json"]
    assert "nesting too deep" in messages["args.json"]


# ---- item 4: sizes ------------------------------------------------------------------------------

def _gz_csv(path: Path, n: int, padding: bytes) -> Path:
    path.write_bytes(gzip.compress(_log(n).encode() + padding, compresslevel=1))
    return path


def test_gzip_nul_bomb_is_read_in_pieces_and_keeps_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textstream, "_GZIP_OUT", 1 << 16)  # many pieces: the NUL run spans them
    path = _gz_csv(tmp_path / "metrics.csv.gz", 100, bytes(3 << 20))
    read = read_csv(str(path))
    assert {t: len(f) for t, f in _frags(read).items()} == {"loss": 100, "lr": 100}
    (nul,) = [f for f in read.findings if f.code == "WC018"]
    assert nul.details == {"nul_bytes": 3 << 20, "offset": len(_log(100))}


def test_gzip_newline_bomb_keeps_every_row_and_line_numbers_after_a_long_blank_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textstream, "_GZIP_OUT", 1 << 16)
    monkeypatch.setattr(textstream, "_HELD", 1 << 12)  # past this, a blank run is kept as its line count
    tail = _gz_csv(tmp_path / "tail.csv.gz", 100, b"\n" * (2 << 20))
    read = read_csv(str(tail))
    assert _points(read) == 200 and _codes(read) == []
    inner = tmp_path / "inner.csv.gz"
    blank = 300_000
    inner.write_bytes(gzip.compress((_log(10) + "\r\n" * blank + "10,oops,0.001\n11,1.5,0.001\n").encode()))
    read = read_csv(str(inner))
    assert {t: len(f) for t, f in _frags(read).items()} == {"loss": 11, "lr": 12}
    (bad,) = [f for f in read.findings if f.code == "WC014"]
    assert bad.line == 1 + 10 + blank + 1  # header, 10 rows, the blank lines, then the bad cell


def test_decompressed_size_limit_refuses_the_file_with_wc025(tmp_path: Path) -> None:
    path = _gz_csv(tmp_path / "metrics.csv.gz", 100, bytes(4 << 20))
    set_limits(Limits(max_decompressed_size=1 << 20))
    read = read_csv(str(path))
    (refused,) = read.findings
    assert refused.code == "WC025" and refused.severity.value == "error" and read.fragments == ()
    assert "--max-decompressed-size" in refused.message and "max-decompressed-size in [tool.warmcheck]" \
        in refused.message
    assert refused.details["limit_bytes"] == 1 << 20 and refused.details["bytes"] > 1 << 20
    set_limits(Limits())
    assert _points(read_csv(str(path))) == 200  # under the default limit it is read


@pytest.mark.parametrize("reader, name, text", [
    (read_csv, "metrics.csv", _log(200)),
    (read_jsonl, "log.jsonl", "".join(json.dumps({"step": i, "loss": 1.0}) + "\n" for i in range(200))),
    (read_trainer_state, "trainer_state.json", json.dumps({"log_history": [{"step": i, "loss": 1.0}
                                                                           for i in range(200)]})),
])
def test_file_size_limit_refuses_each_text_format(tmp_path: Path, reader, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    set_limits(Limits(max_file_size=len(text) - 1))
    read = reader(str(path))
    assert _codes(read) == ["WC025"] and read.fragments in ((), [])
    assert "--max-file-size" in read.findings[0].message
    set_limits(Limits(max_file_size=len(text)))
    assert _points(reader(str(path))) >= 200


def test_size_limit_flags_and_config_keys(tmp_path: Path) -> None:
    assert parse_size("4GiB") == 4 << 30 and parse_size("500 MB") == 500_000_000 and parse_size(1024) == 1024
    assert parse_size("1.5KiB") == 1536
    for bad in ("4x", "", "0", -1, True, "GiB"):
        with pytest.raises(ValueError):
            parse_size(bad)
    (tmp_path / "warmcheck.toml").write_text('max-file-size = "2KiB"\nmax-decompressed-size = 1048576\n')
    assert read_table(tmp_path / "warmcheck.toml") == {"max_file_size": 2048, "max_decompressed_size": 1 << 20}
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text(_log(300))
    result = CliRunner().invoke(main, ["analyze", str(run), "--format", "json", "--isolated",
                                       "--max-file-size", "1KiB"])
    assert result.exit_code == 2  # nothing could be analysed
    doc = json.loads(result.stdout)
    assert [f["code"] for r in doc["runs"] for f in r["findings"] if f["code"].startswith("WC02")] == ["WC025"]
    result = CliRunner().invoke(main, ["analyze", str(run), "--format", "json", "--isolated"])
    assert sum(s["points"] for r in json.loads(result.stdout)["runs"] for s in r["series"]) == 600


def test_huge_trainer_state_builder_reads_the_same_in_any_piece_size(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = BUILDERS["huge_trainer_state"].build(tmp_path, "small")
    path = str(root / "trainer_state.json")
    whole = read_trainer_state(path)
    monkeypatch.setattr(hf, "_READ", 1000)
    pieces = read_trainer_state(path)
    assert _points(whole) == BUILDERS["huge_trainer_state"].points["small"] == _points(pieces)
    assert [(f.tag, f.steps.tolist(), f.values.tolist()) for f in whole.fragments] == \
        [(f.tag, f.steps.tolist(), f.values.tolist()) for f in pieces.fragments]
    assert whole.metadata == pieces.metadata and whole.metadata["trainer_state"]["max_steps"] == 2000
    assert whole.findings == pieces.findings == []


# ---- item 6: wide CSV ---------------------------------------------------------------------------

def test_csv_wider_than_the_old_column_limit_keeps_every_column(tmp_path: Path) -> None:
    """Item 6: past 32,768 columns every column is still read (as one block, ``readers/_csvwide.py``)."""
    width = 32_768 + 5000  # past the column limit warmcheck had before
    names = ["step", *(f"m{j}" for j in range(width - 3)), "train_loss", "lr"]
    rows = [",".join([str(s), *(str((j + s) % 10) for j in range(width - 3)), str(2.0 - s / 10), "0.001"])
            for s in range(3)]
    path = tmp_path / "metrics.csv"
    path.write_text(",".join(names) + "\n" + "\n".join(rows) + "\n")
    read = read_csv(str(path))
    frags = _frags(read)
    assert len(frags) == width - 1 and all(len(f) == 3 for f in frags.values())
    assert frags["train_loss"].values.tolist() == [2.0, 1.9, 1.8] and frags["lr"].values.tolist() == [0.001] * 3
    assert frags[f"m{width - 4}"].values.tolist() == [float((width - 4 + s) % 10) for s in range(3)]
    assert "WC026" not in _codes(read) and read.metadata["csv"]["columns"] == width


# ---- item 7: damaged trainer_state entries ------------------------------------------------------

def _state_text(n: int = 100) -> str:
    history = [{"epoch": round(s / n, 4), "grad_norm": 1.0 + s % 7 / 10, "learning_rate": 1e-3 * min(1.0, s / 10),
                "loss": round(2.5 - s / (2 * n), 6), "step": s} for s in range(1, n + 1)]
    return json.dumps({"best_metric": None, "global_step": n, "log_history": history, "max_steps": n},
                      indent=2, sort_keys=True)


def _corrupt(text: str, step: int, bad: str = "x") -> tuple[str, int, int]:
    """``text`` with the ':' after "loss" in the entry of ``step`` replaced; the entry's first and last line."""
    end = text.index(f'"step": {step}\n')
    at = text.rindex('"loss":', 0, end) + 6
    first = text.count("\n", 0, text.rindex("{", 0, at)) + 1
    last = text.count("\n", 0, text.index("}", end)) + 1
    return text[:at] + bad + text[at + 1:], first, last


@pytest.mark.parametrize("piece", [1 << 22, 97, 1])
def test_corrupt_byte_in_entry_50_loses_entry_50_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      piece: int) -> None:
    monkeypatch.setattr(hf, "_READ", piece)
    text, first, last = _corrupt(_state_text(), 50)
    path = tmp_path / "trainer_state.json"
    path.write_text(text)
    read = read_trainer_state(str(path))
    steps = [s for s in range(1, 101) if s != 50]
    assert {t: f.steps.tolist() for t, f in _frags(read).items()} == dict.fromkeys(
        ("epoch", "grad_norm", "learning_rate", "loss"), steps)
    (bad,) = read.findings
    assert bad.code == "WC014" and bad.details["entries_kept"] == 99 and bad.details["entries_skipped"] == 1
    assert f"1 damaged entry skipped (lines {first}-{last})" in bad.message
    assert "99 complete log_history entries read" in bad.message
    assert bad.details["regions"] == [[first, 5, last, 5]]  # the entry's "{" .. "}" (line, column)
    assert read.metadata["trainer_state"] == {"best_metric": None, "global_step": 100, "max_steps": 100}
    assert (read.info.records, read.info.skipped) == (99, 1)


def test_two_damaged_entries_and_a_cut_are_each_reported(tmp_path: Path) -> None:
    text, first10, last10 = _corrupt(_state_text(), 10, "!")
    text, first60, last60 = _corrupt(text, 60, "{")
    cut = text.index('"step": 90') + 3  # the file ends inside entry 90
    path = tmp_path / "trainer_state.json"
    path.write_text(text[:cut])
    read = read_trainer_state(str(path))
    assert _frags(read)["loss"].steps.tolist() == [s for s in range(1, 90) if s not in (10, 60)]
    by_code = {f.code: f for f in read.findings}
    assert set(by_code) == {"WC014", "WC003"}
    assert f"2 damaged entries skipped (lines {first10}-{last10}, lines {first60}-{last60})" in by_code["WC014"].message
    assert by_code["WC003"].details["entries_kept"] == 87 and "truncated" in by_code["WC003"].message
    assert by_code["WC003"].line == text[:cut].count("\n") + 1


def test_missing_comma_between_entries_loses_nothing(tmp_path: Path) -> None:
    text = _state_text(20).replace("},\n    {", "}\n    {", 1)
    path = tmp_path / "trainer_state.json"
    path.write_text(text)
    read = read_trainer_state(str(path))
    (note,) = read.findings
    assert note.code == "WC014" and "no entry lost" in note.message and note.details["entries_kept"] == 20
    assert _points(read) == 80


# ---- item 8: a key and a nested object with the same flattened name --------------------------------

def test_jsonl_slash_key_beside_nested_object_keeps_both_series(tmp_path: Path) -> None:
    root = BUILDERS["jsonl_key_collision"].build(tmp_path, "small")
    read = read_jsonl(str(root / "log.jsonl"))
    frags = _frags(read)
    assert set(frags) == {"lr", "train/loss", "train/loss#2"}
    assert np.allclose(frags["train/loss"].values, [2.0 + 1.0 / (s + 1) for s in range(100)])
    assert np.allclose(frags["train/loss#2"].values, [3.0 + 1.0 / (s + 1) for s in range(100)])
    assert _points(read) == BUILDERS["jsonl_key_collision"].points["small"]
    (clash,) = read.findings
    assert clash.code == "WC015" and clash.line == 1 and clash.tag == "train/loss#2"
    assert clash.details == {"name": "train/loss", "kept_as": "train/loss#2", "lines": 100, "first": 1}


def test_trainer_state_entry_collision_is_kept_and_counted(tmp_path: Path) -> None:
    history = [{"step": 1, "eval/loss": 1.0, "eval": {"loss": 2.0}}, {"step": 2, "eval/loss": 0.5},
               {"step": 3, "eval": {"loss": 0.7}, "eval/loss": 0.6}]
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"log_history": history}))
    read = read_trainer_state(str(path))
    frags = _frags(read)
    assert frags["eval/loss"].values.tolist() == [1.0, 0.5, 0.7] and frags["eval/loss#2"].values.tolist() == [2.0, 0.6]
    (clash,) = read.findings
    assert clash.code == "WC015" and clash.details["entries"] == 2 and clash.details["first"] == 0


def test_size_limits_from_settings_apply_to_library_calls(tmp_path) -> None:
    from warmcheck.config import Settings
    from warmcheck.pipeline import analyze

    path = tmp_path / "log.csv"
    path.write_text("step,lr,loss\n" + "".join(f"{s},0.001,{2.5 - s / 1000}\n" for s in range(400)))
    (small,) = analyze([str(path)], Settings(max_file_size=1024)).runs
    assert "WC025" in {f.code for f in small.findings} and not any(s.points for s in small.series)
    (default,) = analyze([str(path)], Settings()).runs  # the limit is per call, not left behind
    assert "WC025" not in {f.code for f in default.findings}
