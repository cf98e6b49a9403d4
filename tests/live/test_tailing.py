"""Text tailers: each poll reads only the appended bytes, and the union of the polls is the whole-file read."""

from __future__ import annotations

import builtins
import gzip
import json
import random
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from warmcheck.findings import Finding
from warmcheck.model import Format, SourceRead
from warmcheck.readers import tailing
from warmcheck.readers._texttail import CsvTailer, JsonlTailer
from warmcheck.readers.csvlog import read_csv
from warmcheck.readers.hf import read_trainer_state
from warmcheck.readers.jsonl import read_jsonl
from warmcheck.readers.tailing import Tailer, tailer_for

DATA = Path(__file__).resolve().parent.parent / "data"


def _append(path: Path, data: str | bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)


def _points(reads: Iterable[SourceRead | None]) -> dict[str, tuple[list[int], np.ndarray, np.ndarray]]:
    """Per tag, the points of all reads in order: (steps, values, wall times)."""
    out: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for read in reads:
        for frag in read.fragments if read is not None else ():
            steps, values, walls = out.setdefault(frag.tag, ([], [], []))
            steps += frag.steps.tolist()
            values += frag.values.tolist()
            walls += frag.wall_times.tolist()
    return {tag: (s, np.array(v), np.array(w)) for tag, (s, v, w) in out.items()}


def _assert_same_points(reads: Sequence[SourceRead | None], whole: SourceRead) -> None:
    got, want = _points(reads), _points([whole])
    want = {tag: p for tag, p in want.items() if p[0]}  # header-only columns have no points
    assert sorted(got) == sorted(want)
    for tag, (steps, values, walls) in want.items():
        assert got[tag][0] == steps, tag
        assert np.array_equal(got[tag][1], values, equal_nan=True), tag
        assert np.array_equal(got[tag][2], walls, equal_nan=True), tag


class _Since:
    """The reads of a tailer since its last new generation (a rewrite voids what came before)."""

    def __init__(self, tailer: Tailer) -> None:
        self.tailer, self.generation, self.reads = tailer, tailer.generation, []  # type: ignore[var-annotated]

    def poll(self) -> SourceRead | None:
        read = self.tailer.poll()
        if self.tailer.generation != self.generation:
            self.generation, self.reads = self.tailer.generation, []
        self.reads.append(read)
        return read


def _findings(reads: Iterable[SourceRead | None]) -> list[Finding]:
    return [f for r in reads if r is not None for f in r.findings]


def _codes(reads: Iterable[SourceRead | None]) -> list[str]:
    return sorted(f.code for f in _findings(reads))


def _follow(path: Path, pieces: Sequence[str | bytes], fmt: Format) -> tuple[Tailer, list[SourceRead | None]]:
    """Write ``pieces`` one after the other, polling after each; no poll may report WC002/WC003."""
    tailer = tailer_for(str(path), "shown/" + path.name, fmt)
    path.write_bytes(b"")
    reads: list[SourceRead | None] = [tailer.poll()]
    for piece in pieces:
        _append(path, piece)
        reads.append(tailer.poll())
        assert tailer.poll() is None  # nothing changed since
    assert not {"WC002", "WC003"} & set(_codes(reads))
    return tailer, reads


# -- appended CSV and JSONL -------------------------------------------------------------------------


def test_csv_appended_in_pieces_equals_the_whole_file_read(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    tailer = tailer_for(str(path), "shown/metrics.csv", Format.CSV)
    path.write_bytes(b"")
    reads = [tailer.poll()]
    assert tailer.pending_bytes() == 0 and tailer.incomplete_tail() is None

    _append(path, "epoch,lr,step,train_loss,val_l")  # the header, cut mid-line
    reads.append(tailer.poll())
    assert tailer.pending_bytes() == 30
    assert tailer.incomplete_tail().line == 1  # type: ignore[union-attr]

    _append(path, "oss\n,0.001,0,,\n0,,0,3.9,\n,0.002,1,")  # completes the header; row 3 cut mid-line
    reads.append(tailer.poll())
    tail = tailer.incomplete_tail()
    assert tail is not None and tail.code == "WC003" and tail.line == 4 and tail.source == "shown/metrics.csv"
    assert tail.details["bytes"] == len(",0.002,1,") == tailer.pending_bytes()
    assert "stopped mid-line" in tail.message and "line 4" in tail.message

    _append(path, ",\n0,,1,3.8,\n,0.003,2,,\n0,,2,nan,3.7\n")  # completes it
    reads.append(tailer.poll())
    assert tailer.pending_bytes() == 0 and tailer.incomplete_tail() is None
    _append(path, "0,,3,3.6,\n")
    reads.append(tailer.poll())
    assert tailer.poll() is None

    whole = read_csv(str(path))
    # no WC002/WC003 while growing; the NaN note as the whole-file reader gives it
    assert [(f.code, f.line, f.step, f.details) for f in _findings(reads)] == [
        (f.code, f.line, f.step, f.details) for f in whole.findings] == [
        ("WC012", 7, 2, {"columns": {"train_loss": 1}, "tokens": ["nan"]})]
    _assert_same_points(reads, whole)
    assert _points(reads)["lr"][0] == [0, 1, 2]
    assert sum(r.info.records for r in reads if r) == whole.info.records == 7
    meta: dict[str, Any] = {}
    for r in reads:
        if r is not None:
            for key, value in r.metadata.items():
                meta[key] = {**meta.get(key, {}), **value}
    assert meta == whole.metadata


def test_jsonl_appended_in_pieces_equals_the_whole_file_read(tmp_path: Path) -> None:
    lines = [{"step": s, "train": {"loss": 3.0 - s / 10}, "lr": 1e-4 * s} for s in range(6)]
    text = "".join(json.dumps(x) + "\n" for x in lines)
    cut = text.index("\n") + 10  # mid-way through line 2
    path = tmp_path / "log.jsonl"
    tailer = tailer_for(str(path), "shown/log.jsonl", Format.JSONL)
    path.write_bytes(b"")
    reads = [tailer.poll()]
    _append(path, text[:cut])
    reads.append(tailer.poll())
    tail = tailer.incomplete_tail()
    assert tail is not None and tail.code == "WC003" and tail.line == 2 and tail.details["rows_kept"] == 1
    _append(path, text[cut:] + "not json\n" + '{"step": 6, "lr": 0.0006}\n')
    reads.append(tailer.poll())
    assert tailer.incomplete_tail() is None and tailer.pending_bytes() == 0

    whole = read_jsonl(str(path))
    _assert_same_points(reads, whole)
    assert set(_points(reads)) == {"train/loss", "lr"}
    bad = _findings(reads)
    assert [(f.code, f.line) for f in bad] == [("WC014", 7)]  # the true line number
    assert bad == [f.__class__(**{**_asdict(f), "source": "shown/log.jsonl"}) for f in whole.findings]
    assert sum(r.info.records for r in reads if r) == whole.info.records == 8
    assert sum(r.info.skipped for r in reads if r) == whole.info.skipped == 1


def _asdict(f: Finding) -> dict[str, Any]:
    return {k: getattr(f, k) for k in f.__slots__}  # type: ignore[attr-defined]


def test_csv_without_step_column_continues_the_row_count(tmp_path: Path) -> None:
    pieces = ["loss,lr\n2.0,0.1\n\n1.9,0.2\n", "1.8,", "0.3\n,0.4\n", "1.6,0.5\n1.5,0.6\n"]
    _, reads = _follow(tmp_path / "log.csv", pieces, Format.CSV)
    whole = read_csv(str(tmp_path / "log.csv"))
    _assert_same_points(reads, whole)
    assert _points(reads)["lr"][0] == [0, 1, 2, 3, 4, 5]
    assert _points(reads)["loss"][0] == [0, 1, 2, 4, 5]
    assert _codes(reads) == ["WC017"]  # once, although three polls had rows without a step


def test_semicolon_csv_notes_its_delimiter_once(tmp_path: Path) -> None:
    pieces = ["step;loss;lr\n0;2,5;0,1\n", "1;2,4;0,2\n2;2,3;", "0,3\n3;2,2;0,4\n"]
    _, reads = _follow(tmp_path / "log.csv", pieces, Format.CSV)
    whole = read_csv(str(tmp_path / "log.csv"))
    _assert_same_points(reads, whole)
    assert _points(reads)["loss"][1].tolist() == [2.5, 2.4, 2.3, 2.2]
    notes = [f for f in _findings(reads) if f.code == "WC012"]
    assert sorted(n.message.split(" ")[0] for n in notes) == ["decimal", "semicolon"]  # each once
    assert notes[0].details == {"delimiter": ";"} and notes[0].source == "shown/log.csv"


def test_bad_cell_in_a_later_poll_names_its_true_line(tmp_path: Path) -> None:
    rows = "".join(f"{s},{3 - s / 10}\n" for s in range(10))
    # the last poll has no number in the loss column at all: still a bad cell, not a text column
    pieces = ["step,loss\n" + rows, "10,2.0\n11,oops\n12,1.9\n", "x13,1.8\n14,1.7\n", "15,nope\n"]
    _, reads = _follow(tmp_path / "log.csv", pieces, Format.CSV)
    whole = read_csv(str(tmp_path / "log.csv"))
    _assert_same_points(reads, whole)
    cell, step, last = sorted(_findings(reads), key=lambda f: f.line or 0)
    assert (cell.code, cell.line, cell.tag, cell.step, cell.details["values"]) == ("WC014", 13, "loss", 11, ["oops"])
    assert (step.code, step.line, step.details["lines"]) == ("WC014", 15, [15])
    assert (last.code, last.line, last.tag, last.step) == ("WC014", 17, "loss", 15)
    assert [(f.code, f.line, f.details["lines"]) for f in whole.findings] == [
        ("WC014", 15, [15]), ("WC014", 13, [13, 17])]
    assert sum(r.info.skipped for r in reads if r) == whole.info.skipped == 3
    assert not any(r.metadata.get("csv", {}).get("text_columns") for r in reads if r)


def test_header_findings_are_reported_once_at_the_header_line(tmp_path: Path) -> None:
    pieces = ["\nstep,loss,,loss\n0,2.5,1,2.6\n", "1,2.4,1,2.5\n", "2,2.3,1,2.4\n3,2.2,1,2.3\n"]
    _, reads = _follow(tmp_path / "log.csv", pieces, Format.CSV)
    whole = read_csv(str(tmp_path / "log.csv"))
    _assert_same_points(reads, whole)
    got = [(f.code, f.line, f.tag, f.message) for f in _findings(reads)]
    assert sorted(got) == sorted((f.code, f.line, f.tag, f.message) for f in whole.findings)
    assert sorted(code for code, *_ in got) == ["WC011", "WC015"] and {line for _, line, *_ in got} == {2}


def test_random_cuts_of_real_logs_give_the_whole_file_read(tmp_path: Path) -> None:
    logs = [(DATA / "realruns/lightning_csv_linear15/csv/version_0/metrics.csv", Format.CSV, read_csv),
            (DATA / "realruns/nanogpt_warmup40_log8/log.csv", Format.CSV, read_csv),
            (DATA / "realruns/llmfs_appendix_d_84/train_log.csv", Format.CSV, read_csv)]
    jsonl = tmp_path / "src.jsonl"
    jsonl.write_text("".join(json.dumps({"iter": i, "loss": 4 / (i + 1), "lr": i * 1e-5}) + "\n"
                             for i in range(300)))
    logs.append((jsonl, Format.JSONL, read_jsonl))
    for source, fmt, reader in logs:
        data = source.read_bytes()
        for seed in range(3):
            rnd = random.Random(seed)
            cuts = sorted(rnd.sample(range(1, len(data)), 12))
            pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
            path = tmp_path / f"{seed}_{source.name}"
            tailer, reads = _follow(path, pieces, fmt)
            whole = reader(str(path))
            _assert_same_points(reads, whole)
            assert _codes(reads) == sorted(f.code for f in whole.findings), source
            assert tailer.pending_bytes() == 0


def _messy_jsonl() -> bytes:
    lines = []
    for i in range(200):
        r = random.Random(i).random()
        if r < 0.05:
            lines.append(b"garbage{\n")
        elif r < 0.08:
            lines.append(b"[1, 2]\n")
        elif r < 0.1:
            lines.append(b"\n")
        elif r < 0.12:
            lines.append(b'{"step": %d, "loss": NaN}\r\n' % i)
        elif r < 0.13:
            lines.append(b'{"step": %d, "loss": "x\xe9"}\n' % i)
        elif r < 0.14:
            lines.append(b'{"loss": 1.0}\n')
        else:
            lines.append(json.dumps({"step": i, "train": {"loss": 1 / (i + 1)}, "lr": i * 1e-5, "name": "r"}).encode()
                         + b"\n")
    return b"\xef\xbb\xbf" + b"".join(lines)


def _messy_csv() -> bytes:
    rows = [b"\xef\xbb\xbfstep,loss,lr,note\r\n"]
    for i in range(200):
        r = random.Random(i).random()
        if r < 0.05:
            rows.append(b"%d,oops,0.1,a\r\n" % i)
        elif r < 0.08:
            rows.append(b"x%d,1.0,0.1,b\r\n" % i)
        elif r < 0.1:
            rows.append(b"\r\n")
        elif r < 0.12:
            rows.append(b"%d,NAN,0.1,c\r\n" % i)
        elif r < 0.13:
            rows.append(b"%d,1.5,0.1,\xe9\r\n" % i)
        elif r < 0.15:
            rows.append(b'%d,1.5,0.1,"multi\r\nline"\r\n' % i)
        elif r < 0.17:
            rows.append(b"%d,1.5,0.1,x,9.5\r\n" % i)  # ragged
        else:
            rows.append(b"%d,%f,%f,ok\r\n" % (i, 1 / (i + 1), i * 1e-5))
    return b"".join(rows)


@pytest.mark.parametrize("name", ["messy.csv", "messy.jsonl"])
def test_random_cuts_of_damaged_logs_give_the_whole_file_read(tmp_path: Path, name: str) -> None:
    """BOM, CRLF, blank and bad lines, NaN tokens, invalid UTF-8, quoted line breaks, ragged rows."""
    fmt, reader, data = (Format.CSV, read_csv, _messy_csv()) if name.endswith("csv") else \
        (Format.JSONL, read_jsonl, _messy_jsonl())
    for seed in range(8):
        rnd = random.Random(seed)
        cuts = sorted(rnd.sample(range(1, len(data)), rnd.choice([1, 5, 30, 100])))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        path = tmp_path / f"{seed}{name}"
        _, reads = _follow(path, pieces, fmt)
        whole = reader(str(path))
        _assert_same_points(reads, whole)
        assert {f.code for f in _findings(reads)} == {f.code for f in whole.findings}
        assert sum(r.info.records for r in reads if r) == whole.info.records
        assert sum(r.info.skipped for r in reads if r) == whole.info.skipped
        # every bad line the whole-file read names is named by some poll, with the same number
        lines = {n for f in _findings(reads) if f.code == "WC014" for n in [f.line, *f.details.get("lines", [])]}
        assert {n for f in whole.findings if f.code == "WC014" for n in [f.line, *f.details.get("lines", [])]} <= lines


def test_random_cuts_of_the_bad_input_corpus(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    subprocess.run([sys.executable, str(DATA / "make_badinputs.py"), str(root)], check=True, capture_output=True)
    cases = json.loads((root / "manifest.json").read_text())["cases"]
    for case in cases:
        if not case["id"].startswith("csv_") or case["path"].endswith(".gz"):
            continue
        data = (root / case["path"]).read_bytes()
        wide = case["id"] == "csv_wide"  # 20,003 columns: each poll has a per-column cost
        for seed in range(1 if wide else 2):
            rnd = random.Random(seed)
            n_cuts = min(2 if wide else 10, len(data) - 1)
            cuts = sorted(rnd.sample(range(1, len(data)), n_cuts)) if n_cuts > 0 else []
            pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
            path = tmp_path / f"{seed}_{case['id']}.csv"
            tailer, reads = _follow(path, pieces, Format.CSV)
            whole = read_csv(str(path))
            _assert_same_points(reads, whole)
            live = {f.code for f in _findings(reads)}
            idle = tailer.incomplete_tail()
            if idle is not None:
                live.add(idle.code)
            assert live == {f.code for f in whole.findings} - {"WC002"}, case["id"]


def test_a_quoted_line_break_waits_for_its_closing_quote(tmp_path: Path) -> None:
    pieces = ['step,note,loss\n0,"first\n', 'line",2.5\n1,plain,2.4\n']
    path = tmp_path / "log.csv"
    tailer = tailer_for(str(path), str(path), Format.CSV)
    path.write_bytes(b"")
    _append(path, pieces[0])
    first = tailer.poll()
    assert first is not None and not first.fragments and tailer.pending_bytes() == len('0,"first\n')
    assert "quoted field is still open" in tailer.incomplete_tail().message  # type: ignore[union-attr]
    _append(path, pieces[1])
    second = tailer.poll()
    _assert_same_points([first, second], read_csv(str(path)))
    assert _points([second])["loss"][0] == [0, 1]


def test_invalid_utf8_and_nul_bytes_in_appended_lines(tmp_path: Path) -> None:
    pieces = [b"step,loss\n0,2.5\n", b"1,2.4\n2,\xe9t\xe9\n", b"\x00\x00\x003,2.2\n4,2.1\n"]
    _, reads = _follow(tmp_path / "log.csv", pieces, Format.CSV)
    whole = read_csv(str(tmp_path / "log.csv"))
    _assert_same_points(reads, whole)
    got = {f.code: f for f in _findings(reads)}
    want = {f.code: f for f in whole.findings}
    assert got.keys() == want.keys() == {"WC013", "WC018", "WC014"}
    assert (got["WC013"].line, got["WC013"].details["offset"]) == (4, 24)  # the file's line and offset
    assert got["WC018"].details == {"nul_bytes": 3, "offset": 28}
    for code in got:
        assert (got[code].line, got[code].details, got[code].message) == (
            want[code].line, want[code].details, want[code].message), code


def test_nul_tail_is_reported_as_such_when_idle(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"step,loss\n0,2.5\n" + b"\x00" * 64)
    tailer = tailer_for(str(path), str(path), Format.CSV)
    read = tailer.poll()
    assert read is not None and not read.findings and tailer.pending_bytes() == 64
    nul = tailer.incomplete_tail()
    assert nul is not None and nul.code == "WC018" and nul.details == {"nul_bytes": 64, "offset": 16}
    assert [f.details for f in read_csv(str(path)).findings] == [nul.details]


# -- rewritten files --------------------------------------------------------------------------------


class _LightningLikeWriter:
    """What Lightning's CSVLogger does: append rows; rewrite the file with a new header for a new key."""

    def __init__(self, path: Path) -> None:
        self.path, self.keys = path, []  # type: ignore[var-annotated]

    def save(self, rows: list[dict[str, float]]) -> None:
        import csv

        new = {k for r in rows for k in r} - set(self.keys)
        exists = self.path.exists()
        self.keys = sorted([*self.keys, *new])
        if new and exists:
            with open(self.path, newline="") as fh:
                old = list(csv.DictReader(fh))
            with open(self.path, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.keys)
                writer.writeheader()
                writer.writerows(old)
        with open(self.path, "a" if exists else "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.keys)
            if not exists:
                writer.writeheader()
            writer.writerows(rows)


def test_lightning_header_rewrite_returns_the_new_column_and_no_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    writer = _LightningLikeWriter(path)
    tailer = tailer_for(str(path), str(path), Format.CSV)
    since = _Since(tailer)
    writer.save([{"step": s, "train_loss": 3 - s / 10} for s in range(5)])
    since.poll()
    writer.save([{"step": s, "train_loss": 3 - s / 10} for s in range(5, 8)])
    since.poll()
    assert tailer.generation == 0
    # validation at step 7 adds a column: the whole file is rewritten with a new header, read again
    # from its start in a new generation (the caller replaces what it had: no point twice)
    writer.save([{"step": 7, "val_loss": 2.5, "epoch": 0}, {"step": 8, "train_loss": 2.2}])
    rewritten = since.poll()
    assert rewritten is not None and tailer.generation == 1
    assert {f.tag: f.steps.tolist() for f in rewritten.fragments} == {
        "val_loss": [7], "epoch": [7], "train_loss": list(range(9))}
    writer.save([{"step": s, "train_loss": 3 - s / 10} for s in range(9, 12)])
    since.poll()
    assert tailer.generation == 1 and len(since.reads) == 2  # appended to: the same generation
    _assert_same_points(since.reads, read_csv(str(path)))
    assert sum(r.info.records for r in since.reads if r) == read_csv(str(path)).info.records
    assert _codes(since.reads) == []


def test_real_lightning_csv_writer(tmp_path: Path) -> None:
    csv_logs = pytest.importorskip("lightning.fabric.loggers.csv_logs")
    writer = csv_logs._ExperimentWriter(str(tmp_path / "version_0"))
    path = tmp_path / "version_0" / "metrics.csv"
    tailer = tailer_for(str(path), "metrics.csv", Format.CSV)
    since = _Since(tailer)
    first = since.poll()  # not created yet: WC001 once
    assert first is not None and [f.code for f in first.findings] == ["WC001"]
    for step in range(40):
        writer.log_metrics({"train_loss": 3 - step / 20, "lr-AdamW": 1e-4 * min(step, 10)}, step)
        if step % 10 == 9:
            writer.log_metrics({"val_loss": 2.9 - step / 25, "epoch": step // 10}, step)
        if step % 4 == 3:
            writer.save()
            since.poll()
    whole = read_csv(str(path))
    _assert_same_points(since.reads, whole)
    assert _points(since.reads)["val_loss"][0] == [9, 19, 29, 39]
    assert tailer.generation >= 1  # the header rewrite for val_loss
    assert _codes(since.reads) == []


def test_trainer_state_rewrites_return_only_new_entries(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"

    def save(n: int, *, cut: int | None = None) -> None:
        history = [{"step": s, "loss": 3 - s / 100, "learning_rate": 1e-5 * s, "epoch": s / 50}
                   for s in range(5, 5 * n + 1, 5)]
        history.insert(2, {"step": 10, "eval_loss": 2.9})
        text = json.dumps({"global_step": 5 * n, "max_steps": 100, "log_history": history}, indent=2)
        path.write_text(text[:cut])

    tailer = tailer_for(str(path), "run/trainer_state.json", Format.HF_TRAINER_STATE)
    save(3)
    first = tailer.poll()
    assert first is not None and _points([first])["loss"][0] == [5, 10, 15]
    assert first.metadata["trainer_state"] == {"global_step": 15, "max_steps": 100}
    assert tailer.poll() is None
    save(6)
    second = tailer.poll()
    assert second is not None and {f.tag: f.steps.tolist() for f in second.fragments} == {
        "loss": [20, 25, 30], "learning_rate": [20, 25, 30], "epoch": [20, 25, 30]}
    assert second.metadata == {"trainer_state": {"global_step": 30}}  # only what changed
    assert second.info.records == 3
    save(9, cut=-200)  # caught mid-write: complete entries are taken, nothing is reported yet
    third = tailer.poll()
    assert third is not None and not third.findings and tailer.pending_bytes() > 0
    tail = tailer.incomplete_tail()
    assert tail is not None and tail.code == "WC003" and tail.source == "run/trainer_state.json"
    save(9)
    fourth = tailer.poll()
    assert tailer.pending_bytes() == 0 and tailer.incomplete_tail() is None
    reads = [first, second, third, fourth]
    _assert_same_points(reads, read_trainer_state(str(path)))
    assert _codes(reads) == []


def test_gzip_csv_is_read_whole_on_each_change(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv.gz"
    rows = ["step,loss\n"] + [f"{s},{3 - s / 10}\n" for s in range(12)]
    path.write_bytes(gzip.compress("".join(rows[:6]).encode()))
    tailer = tailer_for(str(path), str(path), Format.CSV)
    first = tailer.poll()
    path.write_bytes(gzip.compress("".join(rows).encode()))
    second = tailer.poll()
    assert _points([first])["loss"][0] == [0, 1, 2, 3, 4] and _points([second])["loss"][0] == list(range(5, 12))
    _assert_same_points([first, second], read_csv(str(path)))
    assert tailer.poll() is None


def test_gzip_content_without_gz_name_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    lines = [json.dumps({"step": s, "loss": 1 / (s + 1)}) + "\n" for s in range(8)]
    path.write_bytes(gzip.compress("".join(lines[:4]).encode()))
    tailer = tailer_for(str(path), str(path), Format.JSONL)
    first = tailer.poll()
    path.write_bytes(gzip.compress("".join(lines).encode()))
    second = tailer.poll()
    _assert_same_points([first, second], read_jsonl(str(path)))
    assert _codes([first, second]) == ["WC012"]  # "gzip although not named .gz", once


def test_a_shrunk_file_is_a_new_generation_with_all_its_points(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 2.0}) + "\n" for s in range(10)))
    tailer = tailer_for(str(path), str(path), Format.JSONL)
    since = _Since(tailer)
    since.poll()
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(8, 12)))  # shorter
    second = since.poll()
    assert tailer.generation == 1
    assert second is not None and _points([second])["loss"][0] == [8, 9, 10, 11]  # none dropped
    _append(path, json.dumps({"step": 12, "loss": 1.0}) + "\n")
    since.poll()
    assert tailer.generation == 1
    _assert_same_points(since.reads, read_jsonl(str(path)))


# -- cost: only the appended bytes are read --------------------------------------------------------


def test_a_poll_reads_only_the_appended_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "metrics.csv"
    header = "step,loss,lr\n"
    path.write_text(header + "".join(f"{s},{3 - s / 1e4},{s * 1e-7}\n" for s in range(20_000)))
    tailer = tailer_for(str(path), str(path), Format.CSV)
    assert tailer.poll() is not None
    size = path.stat().st_size
    assert tailer.offset == size  # type: ignore[attr-defined]

    reads: list[int] = []

    class Counted:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def __enter__(self) -> Counted:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def seek(self, pos: int) -> int:
            return int(self.fh.seek(pos))

        def read(self, n: int = -1) -> bytes:
            data = self.fh.read(n)
            reads.append(len(data))
            return bytes(data)

    monkeypatch.setattr(tailing, "open", lambda *a, **k: Counted(builtins.open(*a, **k)), raising=False)
    new = "".join(f"{s},{3 - s / 1e4},{s * 1e-7}\n" for s in range(20_000, 20_010))
    _append(path, new + "20010,2.")
    read = tailer.poll()
    assert read is not None and _points([read])["loss"][0] == list(range(20_000, 20_010))
    assert tailer.offset == size + len(new)  # type: ignore[attr-defined]
    # the new bytes, the partial line, and the header plus the bytes before the offset reached, to tell
    # an append from a rewrite
    assert sum(reads) == tailer.bytes_read == len(new) + len("20010,2.") + len(header) + tailing.TAIL_BYTES  # type: ignore[attr-defined]
    assert sum(reads) < size / 100


def test_a_long_file_is_caught_up_with_in_bounded_pieces(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1 / (s + 1)}) + "\n" for s in range(500))
                    + json.dumps({"step": 500, "note": "x" * 5000, "loss": 0.001}) + "\n")
    tailer = JsonlTailer(str(path), str(path), max_bytes=2048)
    reads = []
    while (read := tailer.poll()) is not None:
        reads.append(read)
        first_line = len(json.dumps({"step": 0, "loss": 1.0})) + 1  # compared to notice a rewrite
        assert tailer.bytes_read <= 2048 + tailing.TAIL_BYTES + first_line or read.info.records == 1  # 5 KB line: whole
    assert len(reads) > 5
    _assert_same_points(reads, read_jsonl(str(path)))


# -- empty, header-only, unreadable -----------------------------------------------------------------


def test_empty_and_header_only_files_report_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    tailer = tailer_for(str(empty), str(empty), Format.CSV)
    first = tailer.poll()
    assert first is not None and not first.findings and not first.fragments and first.info.records == 0
    assert tailer.poll() is None and tailer.pending_bytes() == 0 and tailer.incomplete_tail() is None
    assert [f.code for f in read_csv(str(empty)).findings] == ["WC002"]  # the whole-file reader says so

    header = tmp_path / "header.csv"
    header.write_text("step,loss,lr\n")
    tailer = tailer_for(str(header), str(header), Format.CSV)
    read = tailer.poll()
    assert read is not None and not read.findings and not read.fragments
    assert read.metadata["csv"]["step_column"] == "step" and read.metadata["csv"]["columns"] == 3
    assert tailer.pending_bytes() == 0 and tailer.incomplete_tail() is None

    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    tailer = tailer_for(str(blank), str(blank), Format.JSONL)
    read = tailer.poll()
    assert read is not None and not read.findings and tailer.incomplete_tail() is None


def test_a_file_deleted_between_polls_gives_one_wc001(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("step,loss\n0,2.5\n1,2.4\n")
    tailer = tailer_for(str(path), "shown.csv", Format.CSV)
    first = tailer.poll()
    path.unlink()
    gone = tailer.poll()
    assert gone is not None and [(f.code, f.source) for f in gone.findings] == [("WC001", "shown.csv")]
    assert gone.info.path == "shown.csv" and "cannot read file" in gone.findings[0].message
    assert tailer.poll() is None  # still gone: said once
    path.write_text("step,loss\n0,2.5\n1,2.4\n2,2.3\n")  # back (a new inode), one row longer
    back = tailer.poll()
    assert back is not None and not back.findings
    assert _points([first, back])["loss"][0] == [0, 1, 2]


def test_an_unreadable_file_gives_wc001_not_an_exception(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 0, "loss": 1}\n')

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(tailing, "open", denied, raising=False)
    tailer = tailer_for(str(path), str(path), Format.JSONL)
    read = tailer.poll()
    assert read is not None and [f.code for f in read.findings] == ["WC001"]
    assert read.findings[0].details == {"errno": 13, "error": "PermissionError"}
    assert tailer.poll() is None
    monkeypatch.undo()
    _append(path, '{"step": 1, "loss": 0.5}\n')
    again = tailer.poll()
    assert again is not None and _points([again])["loss"][0] == [0, 1]


def test_unreadable_trainer_state_and_event_files(tmp_path: Path) -> None:
    tailer = tailer_for(str(tmp_path / "trainer_state.json"), "ts.json", Format.HF_TRAINER_STATE)
    read = tailer.poll()
    assert read is not None and [(f.code, f.source) for f in read.findings] == [("WC001", "ts.json")]
    assert tailer.poll() is None
    events = tailer_for(str(tmp_path / "events.out.tfevents.1"), "e", Format.TFEVENTS)
    read = events.poll()
    assert read is not None and [(f.code, f.source) for f in read.findings] == [("WC001", "e")]
    assert events.poll() is None
    with pytest.raises(ValueError):
        tailer_for(str(tmp_path / "x"), "x", Format.MONITOR)
    assert isinstance(tailer_for("x.csv", "x.csv", Format.CSV), CsvTailer)


def test_a_wide_csv_followed_in_pieces_equals_the_whole_file_read(tmp_path: Path) -> None:
    """Past WIDE_COLUMNS both the whole-file read and watch read every column as one block."""
    from warmcheck.readers._csvwide import WIDE_COLUMNS

    width = WIDE_COLUMNS + 100
    header = "step," + ",".join(f"layer{j}/norm" for j in range(width - 1)) + "\n"
    rows = [f"{s}," + ",".join(str((j + s) % 7) for j in range(width - 1)) + "\n" for s in range(5)]
    path = tmp_path / "metrics.csv"
    _, reads = _follow(path, [header + rows[0], rows[1] + rows[2], rows[3][:50], rows[3][50:] + rows[4]], Format.CSV)
    whole = read_csv(str(path))
    assert whole.metadata["csv"]["engine"] == "wide"
    assert sum(len(f) for f in whole.fragments) == 5 * (width - 1)
    _assert_same_points(reads, whole)


def test_a_long_tracker_export_followed_in_pieces_equals_the_whole_file_read(tmp_path: Path) -> None:
    """A key,value,step table (MLflow's metric history of a real run) is one series per key in watch too."""
    text = (DATA / "evalruns" / "exports" / "mlflow_overfit.csv").read_bytes()
    rng = random.Random(11)
    cuts = sorted(rng.sample(range(1, len(text)), 12))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    path = tmp_path / "history.csv"
    _, reads = _follow(path, pieces, Format.CSV)
    whole = read_csv(str(path))
    assert {f.tag for f in whole.fragments} == {"train/loss", "train/lr", "eval/loss"}
    _assert_same_points(reads, whole)
    assert "WC006" not in _codes(reads)
