#!/usr/bin/env python3
"""Rewrite the rule table in README.md from the registry (tests/test_rules.py checks it is current)."""

from __future__ import annotations

import re
from pathlib import Path

from warmcheck.findings import rules_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> None:
    text = README.read_text()
    pattern = re.compile(r"(<!-- rules-table[^\n]*-->\n).*?(<!-- /rules-table -->)", re.S)
    README.write_text(pattern.sub(lambda m: m.group(1) + rules_markdown() + "\n" + m.group(2), text))


if __name__ == "__main__":
    main()
