"""``--format html`` and ``--html FILE`` on analyze and compare (issue 13): the page is written whole,
the other report is unchanged, and without the extra the command says which to install (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("plotly", reason="the HTML report needs the warmcheck[html] extra (plotly)")

ROOT = Path(__file__).resolve().parent.parent
CMP = ROOT / "tests" / "data" / "realruns" / "compare"


def _wc(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "warmcheck", *map(str, args), "--isolated", "--no-cache"],
                          capture_output=True, text=True, timeout=300, env=env)


def test_analyze_writes_the_page_beside_an_unchanged_json_report(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    with_html = _wc("analyze", ROOT / "sample_logs", "--format", "json", "-q", "--html", page)
    plain = _wc("analyze", ROOT / "sample_logs", "--format", "json", "-q")
    assert with_html.returncode == plain.returncode == 1
    assert with_html.stdout == plain.stdout  # the points the page needs change nothing in the report
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "Plotly" in html and "https://" not in html.split("<script", 1)[0]  # plotly.js inlined
    names = [r["run"] for r in json.loads(plain.stdout)["runs"]]
    assert all(json.dumps(n)[1:-1].split("/")[-1] in html for n in names)


def test_compare_html_to_stdout_carries_the_comparison(tmp_path: Path) -> None:
    p = _wc("compare", CMP / "warmup27_seed0", "--baseline", CMP / "warmup20_seed0", "--format", "html", "-q")
    assert p.returncode == 1, p.stderr
    assert p.stdout.startswith("<!DOCTYPE html>") and "WC501" in p.stdout and 'id="comparison"' in p.stdout


def test_without_plotly_the_command_names_the_extra_before_reading(tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    (shim / "plotly").mkdir(parents=True)
    (shim / "plotly" / "__init__.py").write_text("")  # a plotly without its package data: no plotly.js
    env = {**os.environ, "PYTHONPATH": str(shim)}
    p = _wc("analyze", ROOT / "sample_logs", "--html", tmp_path / "r.html", env=env)
    assert p.returncode == 2 and "warmcheck[html]" in p.stderr and "Traceback" not in p.stderr
    assert "config:" not in p.stderr  # it stopped before the settings were even read
    assert not (tmp_path / "r.html").exists()
