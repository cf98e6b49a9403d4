"""Every format renders the same shared outcome; output is compared with golden files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml
from outcome import shared_outcome

from warmcheck import __version__
from warmcheck.config import FailOn
from warmcheck.reporters import OutputFormat, make_reporter

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "reporters"
SUFFIX = {"text": "txt", "json": "json", "markdown": "md", "github": "txt", "junit": "xml"}


def _render(fmt: OutputFormat, **kw: object) -> str:
    out = make_reporter(fmt, **kw).render(shared_outcome())  # type: ignore[arg-type]
    return out.replace(f'"warmcheck_version": "{__version__}"', '"warmcheck_version": "<version>"')


@pytest.mark.parametrize("fmt", [f for f in OutputFormat if f is not OutputFormat.HTML], ids=lambda f: f.value)
def test_golden(fmt: OutputFormat, update_golden: bool) -> None:
    path = GOLDEN / f"{fmt.value}.{SUFFIX[fmt.value]}"
    got = _render(fmt)
    if update_golden:
        path.write_text(got)
    assert got == path.read_text()
    if fmt is OutputFormat.JSON:  # also as parsed objects: key order and indentation pinned by the text
        assert json.loads(got) == json.loads(path.read_text())


def test_colour_only_when_asked() -> None:
    assert "\x1b[" not in _render(OutputFormat.TEXT)
    assert "\x1b[31merror\x1b[0m" in _render(OutputFormat.TEXT, colour=True)


_COMMAND = re.compile(r"^::(error|warning|notice)( (?P<props>[^:]*))?::(?P<msg>.*)$")


def test_github_lines_parse_as_workflow_commands() -> None:
    lines = _render(OutputFormat.GITHUB).splitlines()
    assert len(lines) == 6
    for line in lines:
        m = _COMMAND.match(line)
        assert m, line
        props = dict(p.split("=", 1) for p in m.group("props").split(","))
        assert set(props) <= {"file", "line", "title"} and props["title"].startswith("WC")
        assert "%" not in m.group("msg").replace("%25", "").replace("%0A", "").replace("%0D", "")
    assert lines[0].startswith("::warning file=runs/old,title=WC005 symlink-skipped::")
    assert any("%25" in line and "pipe | and 100%25 here" in line for line in lines)  # escaped per the spec


def test_junit_reads_back_as_suites_cases_and_failures(tmp_path) -> None:
    path = tmp_path / "report.xml"
    path.write_text(_render(OutputFormat.JUNIT))
    xml = JUnitXml.fromfile(str(path))
    suites = {s.name: s for s in xml}
    assert list(suites) == ["(discovery)", "runs/book", "runs/clean.csv"]
    book = suites["runs/book"]
    assert book.tests == 5 and book.failures == 1
    failing = {c.name: c for c in book if c.result}
    assert list(failing) == ["WC2xx warmup against the configuration"]
    (fail,) = failing["WC2xx warmup against the configuration"].result
    assert isinstance(fail, Failure) and fail.type == "WC201" and "step 27" in fail.message
    assert suites["runs/clean.csv"].failures == 0
    # With --fail-on warning, the warnings fail too.
    path.write_text(make_reporter(OutputFormat.JUNIT, fail_on=FailOn.WARNING).render(shared_outcome()))
    xml = JUnitXml.fromfile(str(path))
    assert {s.name: s.failures for s in xml} == {"(discovery)": 1, "runs/book": 3, "runs/clean.csv": 0}
