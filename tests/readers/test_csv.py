"""CSV reader: the bad-input corpus (csv_* and json_* cases), real logs, and each pandas pitfall.

The corpus is generated into tmp_path by ``tests/data/make_badinputs.py`` (a copy of the shared
generator); the real logs under ``tests/data/realruns`` are copies of small files written by
Lightning's CSVLogger, a nanoGPT-style loop and the LLMs-from-scratch appendix D loop.
"""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warmcheck.model import Format, Fragment, SourceRead
from warmcheck.readers.csvlog import looks_like_training_csv, read_csv
from warmcheck.readers.hf import read_trainer_state

DATA = Path(__file__).resolve().parent.parent / "data"
GENERATOR = DATA / "make_badinputs.py"

# Codes each corpus case must produce, exactly (multiset, sorted).
CORPUS_CODES: dict[str, list[str]] = {
    "csv_ok_baseline": [], "csv_bom": [], "csv_lightning_sparse": [], "csv_wide": [],
    "csv_huge_field": [], "csv_gzip": [],
    "csv_empty": ["WC002"], "csv_header_only": ["WC002"],
    "csv_semicolon": ["WC012"], "csv_missing_step": ["WC017"],
    "csv_step_mixed": ["WC014", "WC014"], "csv_nonfinite": ["WC012"],
    "csv_decimal_comma_semicolon": ["WC012", "WC012"], "csv_decimal_comma_quoted": ["WC012"],
    "csv_partial_last_line": ["WC003"], "csv_ragged_rows": ["WC016"], "csv_dup_columns": ["WC015"],
    "csv_gzip_noext": ["WC012"], "csv_nul_tail": ["WC018"], "csv_latin1": ["WC013"],
    "json_trainer_state_nonfinite": ["WC012"], "json_trainer_state_truncated": ["WC003"],
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    root = tmp_path_factory.mktemp("badinputs") / "corpus"
    subprocess.run([sys.executable, str(GENERATOR), str(root)], check=True, capture_output=True)
    cases = json.loads((root / "manifest.json").read_text())["cases"]
    return root, {c["id"]: c for c in cases}


def _frags(read: SourceRead) -> dict[str, Fragment]:
    return {f.tag: f for f in read.fragments}


def _codes(read: SourceRead) -> list[str]:
    return sorted(f.code for f in read.findings)


def _one(read: SourceRead, code: str):  # noqa: ANN202 - a Finding
    found = [f for f in read.findings if f.code == code]
    assert len(found) == 1, [(f.code, f.message) for f in read.findings]
    return found[0]


def _write(tmp_path: Path, text: str | bytes, name: str = "metrics.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def test_corpus_csv_and_json_cases_are_all_covered(corpus: tuple[Path, dict[str, dict]]) -> None:
    _, cases = corpus
    assert sorted(c for c in cases if c.startswith(("csv_", "json_"))) == sorted(CORPUS_CODES)


@pytest.mark.parametrize("case_id", sorted(CORPUS_CODES))
def test_corpus_case(corpus: tuple[Path, dict[str, dict]], case_id: str) -> None:
    root, cases = corpus
    case = cases[case_id]
    reader = read_csv if case["kind"] == "csv" else read_trainer_state
    read = reader(str(root / case["path"]))
    truth = case["truth"]
    frags = _frags(read)
    for column, n in truth["recoverable_points"].items():
        assert len(frags[column]) == n, column
    assert _codes(read) == CORPUS_CODES[case_id]
    messages = " | ".join(f.message.lower() for f in read.findings)
    for keyword in truth["expected_warnings"]:
        assert keyword.lower() in messages, keyword
    expected = truth.get("expected_columns", {})
    steps = expected.get("step")
    for column, values in expected.items():
        if column == "step":
            continue
        kept = [i for i, v in enumerate(values) if v is not None]
        want = np.array([float(values[i]) for i in kept])  # 'nan'/'inf' strings -> floats
        frag = frags[column]
        assert np.array_equal(frag.values, want, equal_nan=True), column
        assert frag.steps.tolist() == ([steps[i] for i in kept] if steps else kept), column
        assert frag.steps.dtype == np.int64 and frag.values.dtype == np.float64
        assert np.isnan(frag.wall_times).all()
    assert read.info.format == (Format.CSV if case["kind"] == "csv" else Format.HF_TRAINER_STATE)


def test_lightning_sparse_rows_give_each_metric_its_own_cells(corpus: tuple[Path, dict[str, dict]]) -> None:
    root, _ = corpus
    read = read_csv(str(root / "csv_lightning_sparse" / "metrics.csv"))
    frags = _frags(read)
    assert frags["val_loss"].steps.tolist() == [9, 19, 29, 39]
    assert frags["train_loss"].steps.tolist() == list(range(40))
    assert read.info.records == 44 and read.info.skipped == 0 and read.findings == []
    assert read.metadata["csv"]["step_column"] == "step"


def test_step_mixed_skips_bad_steps_with_lines_and_rounds_fractions(
        corpus: tuple[Path, dict[str, dict]]) -> None:
    root, _ = corpus
    read = read_csv(str(root / "csv_step_mixed" / "metrics.csv"))
    skipped, rounded = sorted((f for f in read.findings), key=lambda f: f.line)[::-1]
    assert skipped.details["lines"] == [7, 9, 13] and skipped.line == 7 and skipped.tag == "step"
    assert skipped.details["values"] == ["five", "", "step"]
    assert rounded.line == 6 and rounded.details["values"] == ["4.5"]
    assert _frags(read)["loss"].steps.tolist() == [0, 1, 2, 3, 4, 6, 8, 9, 10, 12]
    assert (read.info.records, read.info.skipped) == (13, 3)


def test_nonfinite_tokens_are_points_and_empty_cells_are_not(corpus: tuple[Path, dict[str, dict]]) -> None:
    root, _ = corpus
    read = read_csv(str(root / "csv_nonfinite" / "metrics.csv"))
    loss = _frags(read)["loss"]
    assert 8 not in loss.steps.tolist() and len(loss) == 11
    assert int(np.count_nonzero(~np.isfinite(loss.values))) == 7
    note = _one(read, "WC012")
    assert (note.step, note.line, note.tag) == (3, 5, "loss")
    assert note.details["columns"] == {"loss": 7}
    assert set(note.details["tokens"]) == {"nan", "NaN", "NAN", "inf", "-inf", "Infinity", "-Infinity"}


def test_partial_last_line_is_dropped_with_its_line(corpus: tuple[Path, dict[str, dict]]) -> None:
    root, _ = corpus
    read = read_csv(str(root / "csv_partial_last_line" / "metrics.csv"))
    tail = _one(read, "WC003")
    assert tail.line == 101 and tail.details["rows_kept"] == 99
    assert "99 complete rows kept" in tail.message
    assert _frags(read)["lr"].steps.tolist() == list(range(99))
    assert (read.info.records, read.info.skipped) == (100, 1)


def test_ragged_rows_keep_the_extra_column(corpus: tuple[Path, dict[str, dict]]) -> None:
    root, _ = corpus
    read = read_csv(str(root / "csv_ragged_rows" / "metrics.csv"))
    ragged = _one(read, "WC016")
    assert ragged.details["lines"] == list(range(12, 22)) and ragged.details["columns"] == ["col_4"]
    assert "lines 12-21" in ragged.message
    col = _frags(read)["col_4"]
    assert col.steps.tolist() == list(range(10, 20)) and col.values.tolist() == [0.9] * 10


def test_duplicate_columns_are_both_kept(corpus: tuple[Path, dict[str, dict]]) -> None:
    root, _ = corpus
    read = read_csv(str(root / "csv_dup_columns" / "metrics.csv"))
    dup = _one(read, "WC015")
    assert (dup.details["first_column"], dup.details["column"], dup.tag) == (2, 4, "loss#2")
    frags = _frags(read)
    assert frags["loss"].values[1] == 2.5180402512050146
    assert frags["loss#2"].values[1] == 2.769844276325516


def test_encoding_gzip_and_nul_details(corpus: tuple[Path, dict[str, dict]]) -> None:
    root, _ = corpus
    latin = _one(read_csv(str(root / "csv_latin1" / "metrics.csv")), "WC013")
    assert (latin.details["offset"], latin.line, latin.details["replaced"]) == (13, 1, 1)
    assert "\ufffd-param" in _frags(read_csv(str(root / "csv_latin1" / "metrics.csv")))
    nul = _one(read_csv(str(root / "csv_nul_tail" / "metrics.csv")), "WC018")
    assert nul.details["nul_bytes"] == 2048
    assert _one(read_csv(str(root / "csv_gzip_noext" / "metrics.csv")), "WC012").details == {
        "compression": "gzip"}
    assert read_csv(str(root / "csv_gzip" / "metrics.csv.gz")).findings == []


def test_header_only_and_empty(corpus: tuple[Path, dict[str, dict]]) -> None:
    root, _ = corpus
    header = read_csv(str(root / "csv_header_only" / "metrics.csv"))
    assert {f.tag: len(f) for f in header.fragments} == {"loss": 0, "lr": 0}
    assert "header only, 0 data rows" in _one(header, "WC002").message
    empty = read_csv(str(root / "csv_empty" / "metrics.csv"))
    assert empty.fragments == () and _one(empty, "WC002").message == "empty file (0 bytes)"


def test_wide_file_reads_every_column(corpus: tuple[Path, dict[str, dict]]) -> None:
    # Its speed is measured in bench/csv_bench.py, not here.
    root, _ = corpus
    read = read_csv(str(root / "csv_wide" / "metrics.csv"))
    assert len(read.fragments) == 20_002 and all(len(f) == 50 for f in read.fragments)


def test_huge_field_is_a_text_column(corpus: tuple[Path, dict[str, dict]]) -> None:
    root, _ = corpus
    read = read_csv(str(root / "csv_huge_field" / "metrics.csv"))
    assert read.metadata["csv"]["text_columns"] == ["config"] and "config" not in _frags(read)


REAL = {
    "lightning_csv_linear15/csv/version_0/metrics.csv": {"epoch": 117, "lr-AdamW": 117, "train_loss": 117},
    "nanogpt_warmup40_log8/log.csv": {"loss": 51, "lr": 51, "time_ms": 51},
    "llmfs_appendix_d_84/train_log.csv": {"epoch": 84, "grad_norm": 84, "lr": 84, "train_loss": 84},
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_logs(name: str) -> None:
    read = read_csv(str(DATA / "realruns" / name))
    assert {f.tag: len(f) for f in read.fragments} == REAL[name]
    assert read.findings == [] and read.info.skipped == 0


def test_real_lightning_values_and_steps() -> None:
    frags = _frags(read_csv(str(DATA / "realruns" / "lightning_csv_linear15" / "csv" / "version_0" / "metrics.csv")))
    lr = frags["lr-AdamW"]
    assert lr.steps[:3].tolist() == [0, 1, 2] and lr.values[0] == 0.00015000000000000001
    nano = _frags(read_csv(str(DATA / "realruns" / "nanogpt_warmup40_log8" / "log.csv")))
    assert nano["lr"].steps[:3].tolist() == [0, 8, 16] and nano["lr"].values[1] == 0.00013170731707317073


def test_bad_cell_costs_one_cell_and_names_its_line(tmp_path: Path) -> None:
    read = read_csv(_write(tmp_path, "step,loss,lr\n0,1.5,0.1\n1,oops,0.2\n2,2.5,0.3\n"))
    bad = _one(read, "WC014")
    assert (bad.tag, bad.line, bad.step, bad.details["cells"]) == ("loss", 3, 1, 1)
    assert _frags(read)["loss"].values.tolist() == [1.5, 2.5]
    assert _frags(read)["lr"].values.tolist() == [0.1, 0.2, 0.3]
    assert read.info.skipped == 1


def test_line_numbers_stay_physical_across_quoted_newlines_and_blank_lines(tmp_path: Path) -> None:
    text = 'step,note,loss\n0,"two\nlines",1.0\n\n1,x,bad\n2,y,3.0\n'
    read = read_csv(_write(tmp_path, text))
    assert _one(read, "WC014").line == 5
    assert _frags(read)["loss"].steps.tolist() == [0, 2] and read.info.records == 3


def test_repeated_header_mid_file_is_one_skipped_row(tmp_path: Path) -> None:
    read = read_csv(_write(tmp_path, "step,loss\n0,1\n1,2\nstep,loss\n2,3\n"))
    assert _one(read, "WC014").details["lines"] == [4]
    assert _frags(read)["loss"].steps.tolist() == [0, 1, 2]


def test_steps_above_2_pow_53_stay_exact(tmp_path: Path) -> None:
    read = read_csv(_write(tmp_path, "step,loss\n9007199254740992,1\n9007199254740993,2\n"))
    assert _frags(read)["loss"].steps.tolist() == [2**53, 2**53 + 1]


def test_nan_token_after_the_first_pandas_chunk_keeps_the_column_numeric(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i / 8}\n" for i in range(300_000))
    read = read_csv(_write(tmp_path, "step,loss\n" + rows + "300000,NAN\n"))
    loss = _frags(read)["loss"]
    assert len(loss) == 300_001 and loss.values[4] == 0.5 and math.isnan(loss.values[-1])


def test_crlf_tab_and_utf16(tmp_path: Path) -> None:
    crlf = read_csv(_write(tmp_path, "step\tloss\r\n0\t1.5\r\n1\t2.5\r\n", "a.tsv"))
    assert _frags(crlf)["loss"].values.tolist() == [1.5, 2.5]
    assert _one(crlf, "WC012").details == {"delimiter": "\t"}
    utf16 = read_csv(_write(tmp_path, "step,loss\n0,1.5\n".encode("utf-16"), "b.csv"))
    assert _frags(utf16)["loss"].values.tolist() == [1.5] and _codes(utf16) == ["WC012"]


def test_empty_column_name_and_wall_time(tmp_path: Path) -> None:
    read = read_csv(_write(tmp_path, "step,,timestamp\n0,1,1700000000.5\n1,2,1700000001.5\n"))
    odd = _one(read, "WC011")
    assert odd.tag == "col_2" and odd.details["column"] == 2
    assert _frags(read)["col_2"].wall_times.tolist() == [1700000000.5, 1700000001.5]


def test_unreadable_paths_are_wc001(tmp_path: Path) -> None:
    assert _codes(read_csv(str(tmp_path))) == ["WC001"]
    missing = read_csv(str(tmp_path / "nope.csv"))
    assert _codes(missing) == ["WC001"] and missing.info.records == 0


def test_unterminated_quote_is_reported(tmp_path: Path) -> None:
    read = read_csv(_write(tmp_path, 'step,loss\n0,1\n1,"2\n2,3\n'))
    quote = [f for f in read.findings if "unterminated quote" in f.message]
    assert len(quote) == 1 and quote[0].line == 3
    assert _frags(read)["loss"].values.tolist() == [1.0]
    assert _codes(read) == ["WC014", "WC014"]  # the quote, and the swallowed cell of column loss


def test_a_log_growing_during_the_read_gives_the_snapshot(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from warmcheck.readers import csvlog

    path = _write(tmp_path, "step,loss\n0,1\n1,2\n")
    real = csvlog.load_text

    def load_then_append(p: str):  # noqa: ANN202 - the writer appends right after our read
        out = real(p)
        with open(p, "a") as fh:
            fh.write("2,3\n3,")
        return out

    monkeypatch.setattr(csvlog, "load_text", load_then_append)
    read = read_csv(path)
    assert _frags(read)["loss"].steps.tolist() == [0, 1] and read.findings == []


def test_looks_like_training_csv(tmp_path: Path) -> None:
    assert looks_like_training_csv(_write(tmp_path, "id,text,label\n1,a,0\n", "metrics.csv"))
    assert looks_like_training_csv(_write(tmp_path, "iter,loss\n0,1\n", "log.csv"))
    assert looks_like_training_csv(_write(tmp_path, "epoch;val/acc\n0;1\n", "a.csv"))
    assert not looks_like_training_csv(_write(tmp_path, "id,text,label\n1,a,0\n", "data.csv"))
    assert not looks_like_training_csv(_write(tmp_path, "", "empty.csv"))
    gz = tmp_path / "log.csv.gz"
    gz.write_bytes(gzip.compress(b"global_step,lr\n0,1\n"))
    assert looks_like_training_csv(str(gz))
    assert not looks_like_training_csv(str(tmp_path))
    assert not looks_like_training_csv(str(tmp_path / "missing.csv"))


def test_large_file_values_equal_pandas(tmp_path: Path) -> None:
    # Its speed against pandas is measured in bench/csv_bench.py, not here.
    import pandas as pd

    n = 200_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"step": np.arange(n), **{k: rng.random(n) for k in "abcde"}})
    path = str(tmp_path / "big.csv")
    frame.to_csv(path, index=False)
    read = _frags(read_csv(path))
    for k in "abcde":
        assert np.array_equal(read[k].values, pd.read_csv(path)[k].to_numpy())
    assert np.array_equal(read["a"].steps, np.arange(n))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["step", "loss", "lr", ",", ";", "\t", '"', "\n", "\r\n", "nan", "NAN",
                                 "1.5", "2,5", "-inf", "", " ", "\x00", "\xb5", "9" * 25, "1e400", "#"]),
                max_size=40), st.booleans())
def test_never_raises_on_arbitrary_text(tmp_path: Path, parts: list[str], compress: bool) -> None:
    data = "".join(parts).encode("utf-8", "surrogateescape")
    read = read_csv(_write(tmp_path, gzip.compress(data) if compress else data, "fuzz.csv"))
    assert all(f.code != "WC021" for f in read.findings)  # the reader returned (an exception fails the test)
    for frag in read.fragments:
        assert frag.steps.dtype == np.int64 and len(frag.steps) == len(frag.values) == len(frag.wall_times)


def test_a_delimiter_inside_a_column_name_does_not_win(tmp_path) -> None:
    from warmcheck.readers._csvparse import sniff_delimiter

    # An OSC escape (or any name) holding ';' in a comma-separated file: the data rows decide.
    assert sniff_delimiter("step,lr,\x1b]0;title\x07loss", "0,0.001,2.5") == ","
    assert sniff_delimiter("step;lr;loss", "0;0,001;2,5") == ";"  # decimal commas: ';' splits like the header
    assert sniff_delimiter("step\tlr;x\tloss", "0\t0.1\t2") == "\t"
    assert sniff_delimiter("step;lr;loss") == ";"  # no data row yet: the header alone
    path = tmp_path / "log.csv"
    path.write_text("step,lr,a;b loss\n" + "".join(f"{s},0.001,{2.5 - s / 100}\n" for s in range(20)))
    read = read_csv(str(path))
    assert {f.tag: len(f) for f in read.fragments} == {"lr": 20, "a;b loss": 20}
