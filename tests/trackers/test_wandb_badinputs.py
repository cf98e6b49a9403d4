"""W&B bad inputs: flipped bits, truncated copies, zeroed blocks, records that do not decode, files that
are not W&B run files, wandb not installed. Damage is skipped and reported with its offset, never a
traceback. The files are real runs written by the wandb library (``shapes``, ``founding``), then damaged.

The expectations come from walking the chunk headers here (independently of the reader) and decoding
the records with wandb's protobuf classes.
"""

from __future__ import annotations

import shutil
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from warmcheck.cli import main
from warmcheck.readers.wandb import read_wandb

BLOCK = 32768


def _chunks(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(offset, payload length, type) of every chunk of an intact run file."""
    pos = 7
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack_from("<IHB", data, pos)
        yield pos, length, kind
        pos += 7 + length


def _records(data: bytes) -> list[tuple[int, int, Any]]:
    """(offset of the first chunk, end of the last chunk, decoded Record) of every record."""
    from wandb.proto import wandb_internal_pb2 as pb

    out, parts, start = [], b"", 0
    for pos, length, kind in _chunks(data):
        if kind in (1, 2):
            parts, start = b"", pos
        parts += data[pos + 7:pos + 7 + length]
        if kind in (1, 4):
            out.append((start, pos + 7 + length, pb.Record.FromString(parts)))
    return out


def _history_steps(records: list[tuple[int, int, Any]]) -> list[int]:
    return [r.history.step.num for _, _, r in records if r.WhichOneof("record_type") == "history"]


def _write(tmp_path: Path, data: bytes, name: str = "run-x.wandb") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _steps(read: Any, tag: str = "train/loss") -> list[int]:
    return next((f.steps.tolist() for f in read.fragments if f.tag == tag), [])


def _cli(path: str) -> Any:
    result = CliRunner().invoke(main, ["analyze", "--isolated", path])
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def shapes(wandb_realruns: Any) -> bytes:
    return Path(wandb_realruns.wandb_file("shapes")).read_bytes()


def test_the_walk_here_matches_the_reader_on_the_intact_file(shapes: bytes, tmp_path: Path) -> None:
    records = _records(shapes)
    read = read_wandb(_write(tmp_path, shapes))
    assert read.info.records == len(records)
    assert _steps(read) == _history_steps(records) == list(range(400))
    assert any(kind == 3 for _, _, kind in _chunks(shapes))  # records over several blocks exist


def test_a_flipped_payload_bit_loses_that_record_only(shapes: bytes, tmp_path: Path) -> None:
    records = _records(shapes)
    start, end, rec = next(r for r in records if r[2].WhichOneof("record_type") == "history"
                           and r[2].history.step.num == 123 and r[1] - r[0] < BLOCK)
    data = bytearray(shapes)
    data[end - 5] ^= 0x10
    read = read_wandb(_write(tmp_path, bytes(data)))
    wc004 = [f for f in read.findings if f.code == "WC004"]
    assert [(f.details["offset"], f.details["bytes_skipped"]) for f in wc004] == [(start, end - start)]
    assert _steps(read) == [s for s in range(400) if s != 123]
    assert read.info.skipped == 1
    assert _cli(_write(tmp_path, bytes(data), "run-y.wandb")).exit_code in (0, 1)


def test_a_flipped_length_skips_to_the_next_block(shapes: bytes, tmp_path: Path) -> None:
    records = _records(shapes)
    block = 2
    inside = [r for r in records if block * BLOCK < r[0] < (block + 1) * BLOCK - 200 and r[1] <= (block + 1) * BLOCK]
    start, _, _ = inside[len(inside) // 2]
    data = bytearray(shapes)
    data[start + 5] ^= 0x7F  # the high byte of the chunk length: the chunk now claims to cross its block
    read = read_wandb(_write(tmp_path, bytes(data)))
    wc004 = [f for f in read.findings if f.code == "WC004"]
    assert len(wc004) == 1 and wc004[0].details["offset"] == start
    kept = [r for r in records if r[1] <= start or r[0] >= (block + 1) * BLOCK]
    assert _steps(read) == _history_steps(kept)
    resumed = min(r[0] for r in records if r[0] >= (block + 1) * BLOCK)
    assert wc004[0].details["offset"] + wc004[0].details["bytes_skipped"] == resumed


@pytest.mark.parametrize("which", ["block 3", "the block a long record continues in"])
def test_a_zeroed_block_is_skipped_and_the_rest_read(shapes: bytes, tmp_path: Path, which: str) -> None:
    records = _records(shapes)
    block = 3
    if which != "block 3":  # the 50 kB row starts in one block and goes on in the next: its start is lost too
        block = next(r for r in records if r[1] - r[0] > BLOCK and r[0] > BLOCK)[0] // BLOCK + 1
    data = bytearray(shapes)
    data[block * BLOCK:(block + 1) * BLOCK] = bytes(BLOCK)
    read = read_wandb(_write(tmp_path, bytes(data)))
    lost = [r for r in records if r[1] > block * BLOCK and r[0] < (block + 1) * BLOCK]
    kept = [r for r in records if r not in lost]
    assert _steps(read) == _history_steps(kept)
    wc004 = [f for f in read.findings if f.code == "WC004"]
    assert [f.details["offset"] for f in wc004] == [lost[0][0]]
    assert {f.details["kind"] for f in wc004} <= {"zeroed", "orphan", "bad-chunk", "unfinished"}


@pytest.mark.parametrize("where", ["in a single chunk", "inside a record over several blocks", "after a first chunk"])
def test_a_truncated_copy_keeps_every_complete_record(shapes: bytes, tmp_path: Path, where: str) -> None:
    records = _records(shapes)
    if where == "in a single chunk":
        start, end, _ = records[len(records) // 2]
        cut = start + (end - start) // 2
    else:
        start, end, _ = next(r for r in records if r[1] - r[0] > BLOCK and r[0] > BLOCK)  # the 50 kB row
        cut = end - 100 if where == "inside a record over several blocks" else (start // BLOCK + 1) * BLOCK
    read = read_wandb(_write(tmp_path, shapes[:cut]))
    wc003 = [f for f in read.findings if f.code == "WC003"]
    assert [(f.details["offset"], f.details["bytes_skipped"]) for f in wc003] == [(start, cut - start)]
    assert _steps(read) == _history_steps([r for r in records if r[1] <= start])
    assert not [f for f in read.findings if f.code == "WC004"]


def test_a_truncated_header_and_an_empty_file(tmp_path: Path, shapes: bytes) -> None:
    read = read_wandb(_write(tmp_path, shapes[:4]))
    assert [(f.code, f.details["bytes"]) for f in read.findings] == [("WC003", 4)]
    read = read_wandb(_write(tmp_path, b""))
    assert [f.code for f in read.findings] == ["WC002"]


def test_a_record_with_a_valid_checksum_that_does_not_decode(shapes: bytes, tmp_path: Path) -> None:
    records = _records(shapes)
    start, end, _ = next(r for r in records[50:] if r[2].WhichOneof("record_type") == "history" and r[1] - r[0] < 200)
    step = next(r for r in records if r[0] == start)[2].history.step.num
    junk = b"\xff" * (end - start - 7)
    data = bytearray(shapes)
    data[start:end] = struct.pack("<IHB", zlib.crc32(b"\x01" + junk), len(junk), 1) + junk
    read = read_wandb(_write(tmp_path, bytes(data)))
    wc014 = [f for f in read.findings if f.code == "WC014"]
    assert [(f.details["offset"], f.details["records"]) for f in wc014] == [(start, 1)]
    assert _steps(read) == [s for s in range(400) if s != step]


@pytest.mark.parametrize("content", [b"hello, this is not a W&B run\n", b":W&B\xe1\xbe\x01" + bytes(100),
                                     b"\x18\x00\x00\x00\x00\x00\x00\x00\xa3\x7fK\x22" + bytes(40)])
def test_a_file_that_is_not_a_wandb_run_file(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path, content)
    read = read_wandb(path)
    assert [f.code for f in read.findings] == ["WC002"]
    if content.startswith(b":W&B"):
        assert "version 1" in read.findings[0].message
    result = _cli(path)
    assert result.exit_code == 2 and "WC002" in result.output  # nothing could be analysed


def test_random_bytes_after_a_valid_header_never_crash(tmp_path: Path) -> None:
    import random

    # a record that frames correctly is decoded with wandb's classes: without them it is WC027, not damage
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")

    rng = random.Random(11)
    for i in range(20):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 3 * BLOCK)))
        read = read_wandb(_write(tmp_path, b":W&B\xe1\xbe\x00" + body, f"run-{i}.wandb"))
        assert {f.code for f in read.findings} <= {"WC002", "WC003", "WC004", "WC014"}
        assert read.findings


def test_without_wandb_installed_the_file_gets_wc027(shapes: bytes, tmp_path: Path, monkeypatch: Any) -> None:
    for name in [m for m in sys.modules if m == "wandb" or m.startswith("wandb.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "wandb", None)
    path = _write(tmp_path, shapes)
    read = read_wandb(path)
    assert [(f.code, f.details["extra"]) for f in read.findings] == [("WC027", "wandb")]
    result = _cli(path)
    assert result.exit_code == 2 and "WC027" in result.output and 'warmcheck[wandb]' in result.output


def test_a_copied_run_directory_keeps_its_name(wandb_realruns: Any, tmp_path: Path) -> None:
    src = wandb_realruns.runs["founding"]
    dst = tmp_path / "wandb" / src.name
    shutil.copytree(src, dst)
    result = CliRunner().invoke(main, ["analyze", "--isolated", "--format", "json", str(tmp_path)])
    assert f"wandb/{src.name}" in result.output and "run-" in result.output
