#!/usr/bin/env python3
"""Run warmcheck over the shared collection of real public training logs (never copied into the repo).

    python scripts/check_wild.py [/work/shared/data/wild]

Every log must be read without an internal error (WC021) or a traceback, and a run whose
``SOURCE.json`` says nothing alarming should get nothing at warning or error beyond the notes
listed. Prints one line per run: exit code, points, and findings at warning or error.
"""

from __future__ import annotations

import sys
from pathlib import Path

from warmcheck.findings import Severity
from warmcheck.pipeline import analyze


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "/work/shared/data/wild")
    bad = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        outcome = analyze([str(folder)])
        internal = [f for f in outcome.all_findings() if f.code == "WC021"]
        bad += len(internal)
        loud = [f for f in outcome.all_findings() if f.severity is not Severity.INFO]
        points = sum(s.points for r in outcome.runs for s in r.series)
        print(f"{folder.name}: {len(outcome.runs)} runs, {points} points, "
              f"{len(loud)} findings at warning/error{' INTERNAL ERROR' if internal else ''}")
        for f in loud:
            print(f"    {f.code} {f.severity.value} {f.run.removeprefix(str(folder))} {f.message[:140]}")
    print(f"internal errors: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
