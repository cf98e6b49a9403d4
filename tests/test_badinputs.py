"""The bad-input corpus: no traceback, documented exit codes, every recoverable point, each problem named.

``tests/data/make_badinputs.py`` (a copy of the shared generator) writes 52 damaged or awkward
inputs with their ground truth; every case is analysed through the CLI, in process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from warmcheck.cli import main

GENERATOR = Path(__file__).parent / "data" / "make_badinputs.py"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("badinputs") / "corpus"
    subprocess.run([sys.executable, str(GENERATOR), str(root)], check=True, capture_output=True)
    return root


def _manifest(corpus: Path) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads((corpus / "manifest.json").read_text())["cases"]}


@pytest.fixture(scope="session")
def manifest(corpus: Path) -> dict[str, dict]:
    return _manifest(corpus)


def test_corpus_has_52_cases(manifest: dict[str, dict]) -> None:
    assert len(manifest) == 52


def _analyse(path: Path) -> tuple[int, dict, str]:
    result = CliRunner().invoke(main, ["analyze", str(path), "--format", "json"], catch_exceptions=False)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    return result.exit_code, json.loads(result.stdout) if result.stdout else {}, result.stderr


def test_every_case(corpus: Path, manifest: dict[str, dict]) -> None:
    failures = []
    for case_id, case in sorted(manifest.items()):
        try:
            _check_case(corpus, case)
        except AssertionError as exc:
            failures.append(f"{case_id}: {exc}")
    assert not failures, "\n".join(failures)


def _check_case(corpus: Path, case: dict) -> None:
    code, doc, err = _analyse(corpus / case["path"])
    assert doc, f"no JSON on stdout (exit {code}): {err}"
    truth = case["truth"]
    runs = doc["runs"]
    series: dict[str, dict] = {}  # per tag, summed over runs (tf_deep_nested has four runs)
    for run in runs:
        for s in run["series"]:
            acc = series.setdefault(s["tag"], {"points": 0, "superseded": 0})
            acc["points"] += s["points"]
            acc["superseded"] += s["superseded"]
    # Every recoverable point: distinct steps plus superseded copies of repeated steps.
    want = truth.get("per_tag_recoverable", truth.get("recoverable_points", {}))
    for tag, n in want.items():
        got = series.get(tag)
        assert got is not None, f"tag {tag!r} missing; have {sorted(series)}"
        assert got["points"] + got["superseded"] == n, f"{tag}: {got['points']}+{got['superseded']} != {n}"
    findings = [*doc["findings"], *(f for r in runs for f in r["findings"])]
    text = " | ".join(f["message"].lower() for f in findings)
    keywords = case["truth"].get("expected_warnings", [])
    if case["id"] == "tf_unreadable" and os.geteuid() == 0:
        keywords = []  # root reads a mode-000 file; tests/readers covers "permission denied"
    for keyword in keywords:
        assert keyword.lower() in text, f"keyword {keyword!r} not in: {text}"
    if not case["truth"].get("expected_warnings"):
        data_codes = [f["code"] for f in findings if f["code"].startswith("WC0") and f["code"] != "WC019"]
        assert not data_codes, f"unexpected data findings {data_codes}: {text}"
    for f in findings:
        if f["code"].startswith("WC0") and f["code"] not in ("WC019", "WC008", "WC009"):
            assert f["source"], f"{f['code']} does not name its file"
    # Exit code as documented: 2 if nothing could be analysed, else 1 iff an error finding.
    analysable = any(s["points"] for s in series.values())
    expected = 2 if not analysable else (1 if any(f["severity"] == "error" for f in findings) else 0)
    assert code == expected, f"exit {code}, expected {expected}"
