"""The run step of the GitHub Action (``action.yml``): ``python -m warmcheck.integrations.github_action``.

The action maps each input to an environment variable (:data:`INPUTS`); none is ever part of a shell
script's text, and none is given to a shell here: paths, baselines and flags reach warmcheck as
``argv`` items (``args`` is split as a shell splits words, by :func:`shlex.split`, which expands and
runs nothing), and the paths come after ``--``, so a path that looks like a flag (``--exit-zero``) is
a path.

What the step does:

1. the gate: ``python -m warmcheck analyze [--isolated] [--fail-on X] ARGS --format github -- PATHS``
   (or ``compare ... --baseline=REF... -- RUN`` when ``baseline`` is set). Its stdout, one workflow
   command per finding, goes to the log (GitHub turns the lines into annotations) and is counted by
   severity for the outputs; its stderr (the configuration used, the closing count line, errors) goes
   to the log as it comes. Its exit code is the step's.
2. the report, unless the gate could not analyse (exit 2): the same command with ``--format markdown
   -o FILE -q`` and ``--html FILE`` when the ``html`` input is set, the markdown appended to
   ``$GITHUB_STEP_SUMMARY`` (cut at GitHub's 1 MiB limit for a step's summary, with a note).
3. outputs in ``$GITHUB_OUTPUT``: ``exit-code``, ``errors``, ``warnings``, ``notices``, ``report`` (the
   HTML file's absolute path, or empty).

Why two runs of warmcheck and not one: a run writes one format, and rendering the markdown or the
annotations here from the JSON report would be a second implementation of the reporters, free to drift
from the CLI's. The second run reads through warmcheck's caches (what was read from each file, and the
analysed runs' report pieces, in the user cache directory or ``--cache-dir``), so it costs a process
start and the cache reads, not a second analysis: on ``sample_logs/`` (12 runs) 1.2 s for the gate,
0.6 s for the report. With ``--no-cache`` in ``args`` the report run reads the logs again.

``--isolated`` is added unless ``config`` is set or ``args`` holds ``--config`` or ``--isolated``: a
repository's own ``pyproject.toml`` is part of the pull request being checked, and must not relax
the gate that judges it (issue 10).
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# environment variable -> the action input it carries (action.yml's run step sets exactly these)
INPUTS: Mapping[str, str] = {
    "INPUT_PATHS": "paths",
    "INPUT_BASELINE": "baseline",
    "INPUT_ARGS": "args",
    "INPUT_CONFIG": "config",
    "INPUT_FAIL_ON": "fail-on",
    "INPUT_HTML": "html",
}
FAIL_ON = ("error", "warning", "info", "never")
SUMMARY_LIMIT = 1024 * 1024  # GitHub refuses a step summary larger than 1 MiB (and shows none of it)
# the action writes the reports itself; --write-golden would make compare write a file and exit 0: no gate
_OWN_FLAGS = ("--format", "--output", "-o", "--html", "--write-golden")
_COMMAND = re.compile(rb"^::(error|warning|notice)[ :]")
_TITLE = "warmcheck action"


class InputError(Exception):
    """An input the action cannot use (reported as an annotation; exit 2)."""


@dataclass(frozen=True)
class Plan:
    """The warmcheck command the inputs describe (without ``python -m warmcheck`` and the format)."""

    command: str  # "analyze" or "compare"
    options: tuple[str, ...]  # everything before the format flags
    paths: tuple[str, ...]  # after "--"
    html: str | None  # absolute path of the HTML report asked for, or None

    def argv(self, *extra: str) -> list[str]:
        """``warmcheck`` arguments: the command, its options, ``extra``, then ``--`` and the paths."""
        return [self.command, *self.options, *extra, "--", *self.paths]


def lines(text: str) -> list[str]:
    """One item per non-blank line, surrounding blanks removed."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def expand(items: Sequence[str]) -> list[str]:
    """Each item as it is when it exists or is a URL; else its glob matches (sorted), else as it is."""
    out: list[str] = []
    for item in items:
        if "://" in item or os.path.lexists(item) or not glob.has_magic(item):
            out.append(item)
            continue
        matches = sorted(glob.glob(item, recursive=True))
        out.extend(matches or [item])
    return out


def split_args(text: str) -> list[str]:
    """``args`` as words, the way a shell splits them (quotes, backslashes); nothing is expanded or run."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InputError(f"args: {exc}") from None
    for word in words:
        flag = word.split("=", 1)[0]
        if flag in _OWN_FLAGS or (word.startswith("-o") and not word.startswith("--")):
            raise InputError(f"args: {word!r}: the action sets --format, --output and --html itself "
                             "(use the html input for the HTML report); --write-golden is not a gate")
    return words


def _has_flag(words: Sequence[str], flag: str) -> bool:
    return any(w == flag or w.startswith(flag + "=") for w in words)


def plan(env: Mapping[str, str], cwd: str | None = None) -> Plan:
    """The command for the inputs in ``env`` (:data:`INPUTS`). Raises :class:`InputError`."""
    get = {name: env.get(var, "") for var, name in INPUTS.items()}
    paths = expand(lines(get["paths"]))
    if not paths:
        raise InputError("paths: nothing to analyze (one path, directory or URL per line)")
    baselines = lines(get["baseline"])
    user = split_args(get["args"])
    options: list[str] = []
    config = get["config"].strip()
    if config:
        options.append(f"--config={config}")
    elif not (_has_flag(user, "--config") or _has_flag(user, "--isolated")):
        options.append("--isolated")
    fail_on = get["fail-on"].strip()
    if fail_on:
        if fail_on not in FAIL_ON:
            raise InputError(f"fail-on: {fail_on!r} is not one of {', '.join(FAIL_ON)}")
        options.append(f"--fail-on={fail_on}")
    options += user
    command = "analyze"
    if baselines:
        if len(paths) != 1:
            raise InputError(f"paths: with a baseline, paths is the one run to compare (got {len(paths)}: "
                             f"{', '.join(paths[:5])})")
        command = "compare"
        options += [f"--baseline={b}" for b in baselines]
    html = get["html"].strip()
    return Plan(command, tuple(options), tuple(paths),
                os.path.abspath(os.path.join(cwd or os.getcwd(), html)) if html else None)


def count(report: bytes) -> dict[str, int]:
    """Workflow commands in a ``--format github`` report, by level (one line per finding)."""
    counts = {"error": 0, "warning": 0, "notice": 0}
    for line in report.splitlines():
        m = _COMMAND.match(line)
        if m:
            counts[m.group(1).decode()] += 1
    return counts


def summary_text(markdown: str, room: int) -> str:
    """``markdown`` as it fits in ``room`` bytes of the step summary: whole lines, and a note when cut."""
    data = markdown.encode("utf-8", "backslashreplace")
    if len(data) <= room:
        return data.decode("utf-8")
    note = ("\n\n*The report was cut here: a job summary holds at most 1 MiB. The whole report is in the "
            "HTML report artifact, or run warmcheck with `--format markdown`.*\n")
    keep = max(0, room - len(note.encode()))
    cut = data[:keep]
    cut = cut[:cut.rfind(b"\n") + 1] if b"\n" in cut else b""
    return cut.decode("utf-8", "ignore") + note


def annotation(level: str, message: str) -> str:
    """A workflow command from the action itself (its message escaped as data)."""
    from ..reporters.escape import gh_data, gh_property, visible

    return f"::{level} title={gh_property(_TITLE)}::{gh_data(visible(message))}"


def set_outputs(path: str | None, values: Mapping[str, str]) -> None:
    """Append ``values`` to ``$GITHUB_OUTPUT`` (multi-line-safe form: ``name<<DELIMITER``)."""
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for name, value in values.items():
            delimiter = f"warmcheck_{secrets.token_hex(8)}"
            f.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(path: str | None, markdown: str) -> None:
    """Append ``markdown`` to ``$GITHUB_STEP_SUMMARY`` (cut to what is left of its 1 MiB)."""
    if not path:
        print("warmcheck action: GITHUB_STEP_SUMMARY is not set; no job summary written", file=sys.stderr)
        return
    used = os.path.getsize(path) if os.path.exists(path) else 0
    with open(path, "a", encoding="utf-8") as f:
        f.write(summary_text(markdown, SUMMARY_LIMIT - used))


def _warmcheck(argv: Sequence[str], stdout: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """``python -m warmcheck ARGV`` with this interpreter; stderr goes to the log as it comes."""
    return subprocess.run([sys.executable, "-m", "warmcheck", *argv], stdout=stdout, check=False)


def run(env: Mapping[str, str]) -> int:
    """The step: gate, report, summary, outputs. Returns the exit code (warmcheck's)."""
    outputs = {"exit-code": "2", "errors": "0", "warnings": "0", "notices": "0", "report": ""}
    try:
        p = plan(env)
    except InputError as exc:
        print(annotation("error", str(exc)), flush=True)
        append_summary(env.get("GITHUB_STEP_SUMMARY"), f"# warmcheck\n\nThe action could not run: {exc}\n")
        set_outputs(env.get("GITHUB_OUTPUT"), outputs)
        return 2
    sys.stdout.flush()
    gate = _warmcheck(p.argv("--format", "github"), stdout=subprocess.PIPE)
    sys.stdout.buffer.write(gate.stdout)
    sys.stdout.flush()
    code = gate.returncode
    counts = count(gate.stdout)
    outputs.update({"exit-code": str(code), "errors": str(counts["error"]), "warnings": str(counts["warning"]),
                    "notices": str(counts["notice"])})
    if code in (0, 1):
        outputs["report"] = _report(p, env, code)
    else:
        append_summary(env.get("GITHUB_STEP_SUMMARY"),
                       f"# warmcheck\n\nwarmcheck could not analyse (exit {code}): the step's log says why.\n")
    set_outputs(env.get("GITHUB_OUTPUT"), outputs)
    return code


def _report(p: Plan, env: Mapping[str, str], code: int) -> str:
    """The markdown report to the step summary and the HTML report; the HTML file's path or ''."""
    extra = ["-q"]
    html = p.html
    if html is not None:
        os.makedirs(os.path.dirname(html), exist_ok=True)
        if os.path.exists(html):
            os.remove(html)  # a report left from an earlier step must not pass for this one's
        extra.append(f"--html={html}")
    with tempfile.TemporaryDirectory(prefix="warmcheck-action-") as tmp:
        md_path = os.path.join(tmp, "report.md")
        report = _warmcheck(p.argv("--format", "markdown", f"--output={md_path}", *extra))
        if report.returncode != code or not os.path.exists(md_path):
            print(annotation("warning", f"the report run of warmcheck exited {report.returncode} (the gate "
                             f"exited {code}): the job summary may be missing or differ"), flush=True)
        if os.path.exists(md_path):
            with open(md_path, encoding="utf-8", errors="backslashreplace") as f:
                append_summary(env.get("GITHUB_STEP_SUMMARY"), f.read())
    return html if html is not None and os.path.isfile(html) else ""


def main() -> None:
    """Entry point of ``python -m warmcheck.integrations.github_action``."""
    sys.exit(run(os.environ))


if __name__ == "__main__":
    main()
