"""The pre-commit hooks of ``.pre-commit-hooks.yaml``: ``python -m warmcheck.integrations.precommit``.

For repositories that commit small training logs (a tiny reference run, golden files of a
regression test). In ``.pre-commit-config.yaml``::

    repos:
      - repo: https://github.com/<owner>/warmcheck
        rev: <tag or commit>
        hooks:
          - id: warmcheck                    # the runs whose logs the commit touches
            # args: [--fail-on, warning, --warmup-ratio, "0.1"]
            # files: ^experiments/.*(tfevents|metrics\\.csv$|trainer_state\\.json$)
          - id: warmcheck-compare            # a run against its golden file
            args: [tests/golden/run/, --baseline, tests/golden/loss.json]
            files: ^tests/golden/

``warmcheck`` (``analyze``): pre-commit passes the changed log files (event files, ``metrics.csv``,
``trainer_state.json``, ``*.jsonl``, after the hook's ``args``). warmcheck's unit is the run, not the
file: two event files of one run given as files would be two runs (and a resume overlap between them
unseen), and a lone ``trainer_state.json`` would lose the event files and the configuration beside it.
So each file stands for the run directory that holds it (:func:`run_paths`): its directory; an HF
output directory for a ``checkpoint-N/trainer_state.json`` or for an event file under its ``runs/``
(when that directory has a ``trainer_state.json``); directories inside another one given are dropped;
a file at the repository root is analysed alone (a walk of the whole repository would also read
every log in a virtualenv or data directory there). A commit that touches two files of one run has
the run analysed once, whole, as ``warmcheck analyze DIR`` would.

``warmcheck-compare`` (``compare``): no file names are passed; the hook's ``args`` name the run and
the baseline(s), and the hook runs when a file matching its ``files`` changes.

Both add ``--isolated`` (as the GitHub Action does) unless ``args`` holds ``--config`` or
``--isolated``: name the configuration with ``--config pyproject.toml`` to use the repository's.
Exit codes are warmcheck's: 1 (a finding at or above ``--fail-on``) and 2 fail the commit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ..readers.discovery import CHECKPOINT_DIR, classify

COMMANDS = ("analyze", "compare")


def split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` as the hook's ``args`` and the file names pre-commit appended after them: the trailing
    words that are existing files with a log's name (what the hook's ``files`` pattern let through)."""
    i = len(argv)
    while i > 0 and _is_log_file(argv[i - 1]):
        i -= 1
    return list(argv[:i]), list(argv[i:])


def _is_log_file(word: str) -> bool:
    return not word.startswith("-") and os.path.isfile(word) and classify(os.path.basename(word)) is not None


def run_path(file: str) -> str:
    """The run directory a changed log file stands for (the file itself at the repository root)."""
    path = os.path.normpath(file)
    directory = os.path.dirname(path)
    if not directory:
        return path
    name = os.path.basename(path)
    if name == "trainer_state.json" and CHECKPOINT_DIR.match(os.path.basename(directory)):
        return os.path.dirname(directory) or directory  # checkpoint-N/trainer_state.json: the output dir
    if "tfevents" in name.lower():
        parts = directory.split(os.sep)
        for i in range(len(parts) - 1, 0, -1):  # <output>/runs/<logging dir>/...: the HF output directory
            output = os.sep.join(parts[:i])
            if parts[i] == "runs" and os.path.isfile(os.path.join(output, "trainer_state.json")):
                return output
    return directory


def run_paths(files: Sequence[str]) -> list[str]:
    """The run paths of ``files``: each once, in order, none inside another one kept."""
    seen: list[str] = []
    for path in (run_path(f) for f in files):
        if path not in seen:
            seen.append(path)
    dirs = [p for p in seen if os.path.isdir(p)]
    return [p for p in seen if not any(d != p and _inside(p, d) for d in dirs)]


def _inside(path: str, directory: str) -> bool:
    return directory == os.curdir or path.startswith(directory.rstrip(os.sep) + os.sep)


def _has_flag(words: Sequence[str], flag: str) -> bool:
    return any(w == flag or w.startswith(flag + "=") for w in words)


def argv_for(command: str, argv: Sequence[str]) -> list[str]:
    """The ``warmcheck`` arguments for the hook ``command`` called with ``argv`` (args, then files)."""
    if command not in COMMANDS:
        raise SystemExit(f"warmcheck pre-commit hook: unknown command {command!r} (one of {', '.join(COMMANDS)})")
    if command == "analyze":
        options, files = split(argv)
        tail = ["--", *run_paths(files)] if files else []
    else:
        options, tail = list(argv), []
    isolated = [] if _has_flag(options, "--config") or _has_flag(options, "--isolated") else ["--isolated"]
    return [command, *isolated, *options, *tail]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m warmcheck.integrations.precommit analyze|compare [ARGS] [FILES]``: runs warmcheck
    (in this process) and exits with its code."""
    from ..cli import main as cli

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit("usage: python -m warmcheck.integrations.precommit analyze|compare [ARGS] [FILES]")
    cli.main(args=argv_for(args[0], args[1:]), prog_name="warmcheck")


if __name__ == "__main__":
    main()
