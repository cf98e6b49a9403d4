"""Names are data (issue 10 items 10 and 11): hostile run names and tags through every output.

The runs come from ``hostile_inputs.build_hostile_names``: each hostile string is a JSONL key, a CSV
header and a run directory's name. Every format goes through the CLI; the terminal path once in a
real subprocess on a pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile_inputs import HOSTILE_NAMES, build_hostile_names
from hypothesis import given
from hypothesis import strategies as st
from junitparser import JUnitXml
from markdown_it import MarkdownIt

from warmcheck import plots
from warmcheck.cli import main
from warmcheck.reporters.escape import ci_line, md_code, md_text, visible

LOSS_TAG = ("--loss-tag", "*/loss")
# What must never reach a terminal, a CI log or an XML file from data: C0/C1 controls (but the line
# feed between lines), DEL, bidi controls, line separators, noncharacters and lone surrogates.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                 "\ufeff\ufffe\uffff\ud800-\udfff]")
COMMAND = re.compile(r"^::(error|warning|notice) (?P<props>[^:]*)::(?P<msg>.*)$")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_hostile_names(tmp_path_factory.mktemp("hostile"), "small"))


@pytest.fixture(scope="module")
def doc(runs: str) -> dict:
    """The JSON report: the exact names, the reference every other format is checked against."""
    result = CliRunner().invoke(main, ["analyze", runs, "--format", "json", *LOSS_TAG], catch_exceptions=False)
    assert result.exit_code == 1, result.stderr
    return json.loads(result.stdout)


def analyze(runs: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["analyze", runs, *LOSS_TAG, *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def no_line_is_a_command(text: str) -> None:
    for line in text.splitlines():
        assert not line.lstrip().startswith("::"), line
        assert "##[" not in line, line


def test_json_keeps_every_name_exactly(doc: dict) -> None:
    tags = {s["tag"] for r in doc["runs"] for s in r["series"]}
    jsonl = {s["tag"] for r in doc["runs"] if r["run"].endswith(".jsonl") for s in r["series"]}
    assert {f"{name}/loss" for name in HOSTILE_NAMES.values()} <= jsonl <= tags  # NUL and surrogates too
    assert any(re.search("[\udc80-\udcff]", r["run"]) for r in doc["runs"])  # a non-UTF-8 byte in a dir name
    failing = [f for r in doc["runs"] for f in r["findings"] if f["code"] == "WC401"]
    assert {f["tag"] for f in failing} >= {f"{name}/loss" for name in HOSTILE_NAMES.values()}


def test_json_text_holds_no_command(runs: str) -> None:
    code, out, _ = analyze(runs, "--format", "json")
    assert code == 1
    no_line_is_a_command(out)
    assert "##\\u005b" in out  # the ##[ of a name, escaped; json.loads gives it back (test above)


def test_text_shows_names_with_their_controls_escaped(runs: str, doc: dict) -> None:
    code, out, err = analyze(runs)
    assert code == 1 and "Traceback" not in err
    assert not RAW.search(out), RAW.search(out)
    no_line_is_a_command(out)
    for name in HOSTILE_NAMES.values():  # every name is shown, as its visible form
        assert visible(f"{name}/loss").replace("##[", "##\\x5b") in out
    assert "\\x1b[31mred" in out and "x\\n::error file=README.md::injected" in out and "\\u202eevil" in out
    assert "nul\\x00byte" in out and "lone\\udc80\\ud800" in out
    assert sum(line.startswith(("  WC401", "  WC301")) for line in out.splitlines()) >= len(doc["runs"]) - 1


def test_github_every_line_is_one_of_warmchecks_annotations(runs: str, doc: dict) -> None:
    code, out, _ = analyze(runs, "--format", "github")
    assert code == 1
    lines = out.splitlines()
    findings = [f for r in doc["runs"] for f in r["findings"]] + doc["findings"]
    assert len(lines) == len(findings)
    for line in lines:
        m = COMMAND.match(line)
        assert m, line
        props = dict(p.split("=", 1) for p in m.group("props").split(","))
        assert set(props) <= {"file", "line", "title"} and re.fullmatch(r"WC\d{3} [a-z-]+", props["title"])
        assert not RAW.search(line)
        for value in (*props.values(), m.group("msg")):
            # %, CR and LF escaped everywhere; : and , in properties (GitHub's workflow-command rules)
            assert "%" not in re.sub("%(25|0D|0A|3A|2C)", "", value)
        assert ":" not in props.get("file", "") and "::" not in m.group("props")
    messages = [re.sub("%25", "%", m.group("msg")) for m in map(COMMAND.match, lines) if m]
    assert any("x\\n::error file=README.md::injected/loss" in m for m in messages)  # shown, not obeyed


def cells(row: str) -> list[str]:
    """A GFM table row split as GitHub splits it (``\\|`` does not split a cell)."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def test_markdown_tables_stay_intact_and_render_no_html_links_or_images(runs: str, doc: dict) -> None:
    code, out, _ = analyze(runs, "--format", "markdown")
    assert code == 1
    assert not RAW.search(out)
    no_line_is_a_command(out)
    rows = [line for line in out.splitlines() if line.startswith("|")]
    widths = {6: 0, 5: 0, 4: 0}
    for row in rows:
        n = len(cells(row))
        assert n in widths, row
        widths[n] += 1
    assert widths[6] == len(doc["runs"]) + 2  # header, rule, one row per run
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    html = md.render(out)
    assert "<img" not in html and "<script" not in html and "<a " not in html
    trs = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    assert len(trs) == sum(1 for row in rows if not set(row) <= set("|-"))  # every row is a table row
    assert all(len(re.findall("<t[hd][ >]", tr)) == len(cells(row))
               for tr, row in zip(trs, [r for r in rows if not set(r) <= set("|-")], strict=True))
    # the names are there, as text: the link's words and the HTML, escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "[click](http://evil.example)" in html


def test_junit_parses_with_junitparser_and_an_xml_parser(runs: str, doc: dict, tmp_path: Path) -> None:
    code, out, _ = analyze(runs, "--format", "junit", "-o", str(tmp_path / "report.xml"))
    assert code == 1 and out == ""
    text = (tmp_path / "report.xml").read_text(encoding="utf-8")
    assert not RAW.search(text)
    no_line_is_a_command(text)
    root = ET.fromstring(text.encode())
    suites = [s.name for s in JUnitXml.fromfile(str(tmp_path / "report.xml"))]
    assert suites == [visible(r["run"]) for r in doc["runs"]]
    assert root.get("failures") == str(len(doc["runs"]))  # one WC4xx failure per run


def test_tags_lists_every_series(runs: str, doc: dict) -> None:
    result = CliRunner().invoke(main, ["tags", runs], catch_exceptions=False)
    assert result.exit_code == 0 and not RAW.search(result.stdout)
    no_line_is_a_command(result.stdout)
    assert len(result.stdout.splitlines()) == len(doc["runs"]) + sum(len(r["series"]) for r in doc["runs"])
    result = CliRunner().invoke(main, ["tags", runs, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0
    assert [r["run"] for r in json.loads(result.stdout)] == [r["run"] for r in doc["runs"]]


def test_plot_dir_writes_one_uniquely_named_png_per_run(runs: str, doc: dict, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    code, _, err = analyze(runs, "--plot-dir", str(out), "--format", "json")
    assert code == 1 and "Traceback" not in err and "cannot plot" not in err
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == len(doc["runs"]) + 1 and "overview.png" in names
    assert all(len(n.encode()) <= 120 and re.fullmatch(r"[A-Za-z0-9._-]+\.png", n) for n in names)
    assert len({n.lower() for n in names}) == len(names)
    assert f"wrote {len(doc['runs'])} run plot(s) and overview.png" in err
    # runs/j_a/b and runs/j_a_b clean to the same name: said, and both written with a hash
    assert "plot file names: runs" in err and "j_a/b/log.jsonl" in err and "j_a_b/log.jsonl" in err
    assert sum("runs_j_a_b_log.jsonl-" in n for n in names) == 2


def test_plot_file_names_unique_bounded_and_say_their_collisions() -> None:
    names = plots.file_names(["a/b", "a_b", "A_B", "x" * 250, "y" * 250, "overview", "c"])
    assert names.names[-1] == "c.png" and len(set(n.lower() for n in names.names)) == 7
    assert all(n.lower().startswith("a_b-") for n in names.names[:3]) and "overview.png" not in names.names
    assert all(len(n) <= plots.MAX_STEM + 15 for n in names.names)
    assert names.collisions == [["a/b", "a_b", "A_B"], ["overview"]]


@given(st.lists(st.text(max_size=300), max_size=12))
def test_plot_file_names_never_overwrite(run_names: list[str]) -> None:
    names = plots.file_names(run_names).names
    assert len({n.lower() for n in names} | {"overview.png"}) == len(names) + 1
    assert all(len(n) <= plots.MAX_STEM + 15 and n.endswith(".png") for n in names)


@given(st.text())
def test_visible_output_is_one_safe_line(text: str) -> None:
    shown = visible(text)
    assert not RAW.search(shown) and "\n" not in shown
    shown.encode("utf-8")  # lone surrogates are escapes now
    elem = ET.Element("a", b=shown)
    elem.text = shown
    back = ET.fromstring(ET.tostring(elem, encoding="unicode"))  # legal XML 1.0, read back the same
    assert (back.text or "") == shown and back.get("b") == shown
    line = ci_line(shown)
    assert not line.lstrip().startswith("::") and "##[" not in line


@given(st.text())
def test_markdown_text_and_code_render_as_one_cell(text: str) -> None:
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    for cell in (md_text(text), md_code(text)):
        html = md.render(f"| a | b |\n|---|---|\n| x | {cell} |\n")
        assert len(re.findall("<td", html)) == 2
        assert "<img" not in html and "<a " not in html


def test_output_to_a_missing_directory_is_an_error_before_any_work(runs: str, tmp_path: Path) -> None:
    code, out, err = analyze(runs, "-o", str(tmp_path / "nonexistent" / "dir" / "x"))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.splitlines()[-1].startswith("warmcheck: error: cannot write") and "no such directory" in err


def _cli(*args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "warmcheck.cli", *args], capture_output=True, timeout=300,
                          check=False, **kw)  # type: ignore[call-overload]


def test_terminal_gets_only_warmchecks_own_escapes(runs: str) -> None:
    """The text report on a real pseudo-terminal (colour on): the only ESC bytes are the severity colours."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "warmcheck.cli", "analyze", runs, *LOSS_TAG, "-q"],
                            stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(leader)
    out = b"".join(chunks).decode("utf-8")  # strict: no lone surrogate reached the terminal
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
    assert "\x1b[31merror\x1b[0m" in out
    assert not RAW.search(re.sub("\x1b\\[(3[136]|0)m", "", out).replace("\r", ""))  # a pty turns \n into \r\n


def test_stdout_that_cannot_encode_names_gets_escapes_not_a_traceback(runs: str) -> None:
    done = _cli("analyze", runs, *LOSS_TAG, "-q", env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    done.stdout.decode("ascii")
    assert b"\\u202eevil" in done.stdout


def test_watch_exec_runs_for_a_name_holding_nul(runs: str, tmp_path: Path) -> None:
    run = next(p for p in Path(runs).iterdir() if p.name == "j_nul0byte")
    record = tmp_path / "alerts.txt"
    done = _cli("watch", str(run), *LOSS_TAG, "--stop-when-idle", "--settle", "0", "--interval", "0.05",
                "--exec-on", "error", "--exec", f'printf "%s|%s\\n" "$WARMCHECK_CODE" "$WARMCHECK_TAG" >> {record}')
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr and b"embedded null byte" not in done.stderr
    assert record.read_text().splitlines() == ["WC401|nul\\x00byte/loss"]
    assert b"nul\\x00byte/loss" in done.stdout and b"\x00" not in done.stdout
