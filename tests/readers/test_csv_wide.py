"""Wide CSVs (more than ``WIDE_COLUMNS`` columns) read as one block: every cell, findings once per file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from warmcheck.readers import _csvwide
from warmcheck.readers.csvlog import read_csv

W = _csvwide.WIDE_COLUMNS + 904  # 5,000 columns: the wide path


def _write(tmp_path: Path, header: list[str], rows: list[list[str]], name: str = "metrics.csv") -> str:
    path = tmp_path / name
    path.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")
    return str(path)


def _by_tag(read):  # noqa: ANN001, ANN202
    return {f.tag: f for f in read.fragments}


def test_every_cell_of_a_wide_numeric_csv_is_a_point(tmp_path: Path) -> None:
    header = ["step"] + [f"layer{j}/grad_norm" for j in range(W - 1)]
    rows = [[str(10 * s)] + [str((j * 7 + s) % 13 / 4) for j in range(W - 1)] for s in range(4)]
    read = read_csv(_write(tmp_path, header, rows))
    assert read.metadata["csv"]["engine"] == "wide"
    frags = _by_tag(read)
    assert len(frags) == W - 1 and sum(len(f) for f in frags.values()) == 4 * (W - 1)
    assert not [f for f in read.findings if f.code in ("WC026", "WC014", "WC002")]
    for j in (0, 1234, W - 2):
        f = frags[f"layer{j}/grad_norm"]
        assert f.steps.tolist() == [0, 10, 20, 30]
        assert f.values.tolist() == [(j * 7 + s) % 13 / 4 for s in range(4)]
    assert read.info.records == 4 and read.info.skipped == 0


def test_wide_path_gives_the_regular_paths_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty cells, NaN spellings and quoted cells: the block path keeps exactly what the column path keeps."""
    rng = np.random.default_rng(3)
    header = ["step"] + [f"m{j}" for j in range(W - 1)]
    rows = []
    for s in range(6):
        cells = [str(s)]
        for _ in range(W - 1):
            u = rng.random()
            cells.append("" if u < 0.1 else "nan" if u < 0.12 else '"2.5"' if u < 0.14 else f"{u:.6f}")
        rows.append(cells)
    path = _write(tmp_path, header, rows)
    wide = _by_tag(read_csv(path))
    monkeypatch.setattr("warmcheck.readers.csvlog.WIDE_COLUMNS", 10**9)
    regular = _by_tag(read_csv(path))
    assert wide.keys() == regular.keys()
    for tag, f in regular.items():
        g = wide[tag]
        assert g.steps.tolist() == f.steps.tolist(), tag
        np.testing.assert_array_equal(g.values, f.values)


def test_text_cells_names_and_rows_are_reported_once_per_file(tmp_path: Path) -> None:
    header = ["step", "loss", "", "loss", "note"] + [f"m{j}" for j in range(W - 5)]
    rows = []
    for s in range(5):
        cells = [str(s), str(2.0 - s / 10), "1", str(s), "fine"] + ["0.5"] * (W - 5)
        rows.append(cells)
    rows[2][6] = "oops"  # one bad cell in a numeric column
    rows[3][7] = "inf"
    rows[4] = rows[4] + ["9", "9"]  # two more fields than the header
    rows.insert(1, ["x"] + ["1"] * (W - 1))  # a row without a valid step
    read = read_csv(_write(tmp_path, header, rows))
    codes = [f.code for f in read.findings]
    for code in ("WC011", "WC015", "WC014", "WC016", "WC012"):
        assert code in codes
    assert codes.count("WC015") == 1 and codes.count("WC011") == 1
    frags = _by_tag(read)
    assert "note" not in frags and read.metadata["csv"]["text_columns"] == ["note"]
    assert "loss#2" in frags and "col_3" in frags
    assert len(frags["m1"]) == 4 and 2 not in frags["m1"].steps.tolist()  # the bad cell is not a point
    assert np.isinf(frags["m2"].values[frags["m2"].steps.tolist().index(3)])
    bad_rows = [f for f in read.findings if f.code == "WC014" and "row(s) skipped" in f.message]
    assert bad_rows and bad_rows[0].line == 3
    assert read.info.skipped == 2  # the row without a step and the bad cell


def test_no_step_column_uses_the_row_number(tmp_path: Path) -> None:
    header = [f"m{j}" for j in range(W)]
    rows = [[str(s)] * W for s in range(3)]
    read = read_csv(_write(tmp_path, header, rows))
    assert "WC017" in [f.code for f in read.findings]
    assert _by_tag(read)["m42"].steps.tolist() == [0, 1, 2]


def test_past_the_cell_budget_the_metric_columns_are_read_and_the_rest_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_csvwide, "MAX_CELLS", 3 * 4500)
    header = ["step"] + [f"m{j}" for j in range(W - 2)] + ["train/loss"]
    rows = [[str(s)] + ["1"] * (W - 2) + [str(3 - s)] for s in range(3)]
    read = read_csv(_write(tmp_path, header, rows))
    [note] = [f for f in read.findings if f.code == "WC026"]
    assert note.details["read"] == 4500 and note.details["not_read"] == W - 4500
    frags = _by_tag(read)
    assert frags["train/loss"].values.tolist() == [3.0, 2.0, 1.0] and len(frags) == 4499
