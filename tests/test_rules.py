"""The rule registry: well-formed, complete, emitted by someone, and mirrored in the README."""

from __future__ import annotations

import re
from pathlib import Path

from warmcheck.analyzers import ALL_ANALYZERS
from warmcheck.findings import FAMILIES, RULES, Severity, rules_markdown
from warmcheck.reporters import OutputFormat, make_reporter

ROOT = Path(__file__).resolve().parent.parent


def test_codes_are_well_formed_unique_and_documented() -> None:
    slugs = [r.slug for r in RULES.values()]
    assert len(set(slugs)) == len(slugs)
    for code, rule in RULES.items():
        assert re.fullmatch(r"WC\d{3}", code) and rule.code == code
        assert code[:3] in FAMILIES
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.slug)
        assert isinstance(rule.severity, Severity) and rule.summary.endswith(".")
        for part in ("What it detects:", "Why it matters:", "What to do:"):
            assert part in rule.doc, (code, part)


def test_analyzer_codes_are_registered() -> None:
    for analyzer in ALL_ANALYZERS:
        assert analyzer.codes <= set(RULES), type(analyzer).__name__


def test_every_registered_code_is_emitted_somewhere() -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "warmcheck").rglob("*.py") if p.name != "findings.py")
    for code in RULES:
        assert f'"{code}"' in sources, f"{code} is registered but never emitted"


def test_readme_rule_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- rules-table")[1].split("-->", 1)[1].split("<!-- /rules-table -->")[0]
    assert block.strip() == rules_markdown()


def test_every_output_format_has_a_reporter() -> None:
    for fmt in OutputFormat:
        assert hasattr(make_reporter(fmt), "render")
