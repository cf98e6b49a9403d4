"""The GitHub Action (action.yml) run locally: its steps' shell text, with the environment the runner
would give it, on shipped logs. Nothing is downloaded: the install step runs against a stand-in
``python3`` that records what it was asked; the run step runs the real script with this interpreter."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from warmcheck.integrations import github_action as script

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_logs"
COMPARE = ROOT / "tests" / "data" / "realruns" / "compare"  # real HF Trainer runs (issue 13)
ACTION: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
STEPS: list[dict[str, Any]] = ACTION["runs"]["steps"]
_EXPR = re.compile(r"^\$\{\{\s*(.+?)\s*\}\}$")


def _step(step_id: str) -> dict[str, Any]:
    [step] = [s for s in STEPS if s.get("id") == step_id]
    return step


def _evaluate(value: str, inputs: Mapping[str, str], context: Mapping[str, str]) -> str:
    """An env value of a step: a single ``${{ inputs.X }}`` or ``${{ <context> }}`` expression."""
    m = _EXPR.match(value)
    assert m, f"env value {value!r} is not a single expression"
    expr = m.group(1)
    if expr.startswith("inputs."):
        name = expr[len("inputs."):]
        assert name in ACTION["inputs"], f"{name} is not an input of the action"
        return inputs.get(name, str(ACTION["inputs"][name].get("default", "")))
    return context[expr]


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("WARMCHECK_", "INPUT_", "GITHUB_"))}


def _outputs(path: Path) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` parsed as the runner parses it (``name=value`` and ``name<<DELIMITER``)."""
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            out[name] = "\n".join(lines[i + 1:end])
            i = end + 1
        else:
            name, value = line.split("=", 1)
            out[name] = value
            i += 1
    return out


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str], summary: Path, output: Path) -> None:
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.summary = summary.read_text(encoding="utf-8")
        self.outputs = _outputs(output)

    def commands(self, level: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(f"::{level} ")]


def run_step(workspace: Path, inputs: Mapping[str, str], summary_before: str = "") -> Result:
    """The action's run step as the runner runs it: its ``run`` text in a file, ``bash --noprofile
    --norc -eo pipefail FILE``, the step's env evaluated from ``inputs``, in the workspace."""
    step = _step("warmcheck")
    runner = workspace.parent / f"runner-{workspace.name}"
    runner.mkdir(exist_ok=True)
    summary, output = runner / "summary.md", runner / "output.txt"
    summary.write_text(summary_before, encoding="utf-8")
    output.write_text("", encoding="utf-8")
    env = _base_env()
    env.update({k: _evaluate(v, inputs, {"steps.install.outputs.python": sys.executable})
                for k, v in step["env"].items()})
    env.update({"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output), "RUNNER_TEMP": str(runner)})
    (runner / "step.sh").write_text(step["run"], encoding="utf-8")
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(runner / "step.sh")],
                          cwd=workspace, env=env, capture_output=True, text=True, timeout=300, check=False)
    return Result(proc, summary, output)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A checked-out repository: the shipped logs under ``sample_logs/``, and a ``.git`` (the project root)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".git").mkdir()
    shutil.copytree(SAMPLES, ws / "sample_logs", ignore=shutil.ignore_patterns("*.md"))
    return ws


def _json_counts(workspace: Path, *paths: str) -> dict[str, int]:
    proc = subprocess.run([sys.executable, "-m", "warmcheck", "analyze", "--isolated", "-q", "--format", "json",
                           *paths], cwd=workspace, capture_output=True, text=True, check=False)
    summary = json.loads(proc.stdout)["summary"]
    return {"error": summary["error"], "warning": summary["warning"], "info": summary["info"]}


# ------------------------------------------------------------------------------------- action.yml


def test_action_is_a_composite_with_the_documented_inputs_and_outputs() -> None:
    assert ACTION["runs"]["using"] == "composite"
    inputs = ACTION["inputs"]
    assert {"paths", "baseline", "args", "config", "fail-on", "html", "artifact-name", "version", "extras",
            "python-version"} <= set(inputs)
    assert inputs["paths"]["required"] is True
    assert inputs["html"]["default"] == "warmcheck-report.html"
    assert inputs["artifact-name"]["default"] == "warmcheck-report"
    for name in ("baseline", "args", "config", "fail-on", "version", "extras", "python-version"):
        assert inputs[name]["default"] == "", name
    for name, spec in inputs.items():
        assert spec.get("description"), name
    for name in ("exit-code", "errors", "warnings", "notices", "report"):
        assert ACTION["outputs"][name]["value"] == f"${{{{ steps.warmcheck.outputs.{name} }}}}"


def test_steps_setup_install_run_upload() -> None:
    setup, install, run, upload = STEPS
    assert setup["uses"] == "actions/setup-python@v5"
    assert setup["if"] == "inputs.python-version != ''"
    assert install["id"] == "install" and install["shell"] == "bash"
    assert run["id"] == "warmcheck" and run["shell"] == "bash"
    assert upload["uses"] == "actions/upload-artifact@v4"
    assert "always()" in upload["if"] and "steps.warmcheck.outputs.report != ''" in upload["if"]
    assert upload["with"]["path"] == "${{ steps.warmcheck.outputs.report }}"
    assert upload["with"]["name"] == "${{ inputs.artifact-name }}"


def test_no_expression_in_any_shell_text() -> None:
    """Inputs reach the shell only as environment variables: ``${{ }}`` in a ``run`` text would be
    pasted into the script before bash reads it (a path ``$(curl ...)`` would run)."""
    runs = [s["run"] for s in STEPS if "run" in s]
    assert len(runs) == 2
    for text in runs:
        assert "${{" not in text


def test_run_step_passes_every_input_the_script_reads() -> None:
    step = _step("warmcheck")
    env = step["env"]
    for var, name in script.INPUTS.items():
        assert env[var] == f"${{{{ inputs.{name} }}}}", var
    assert env["WARMCHECK_ACTION_PYTHON"] == "${{ steps.install.outputs.python }}"
    assert step["run"].strip() == '"$WARMCHECK_ACTION_PYTHON" -m warmcheck.integrations.github_action'
    # no input is read from a variable warmcheck itself reads (WARMCHECK_FAIL_ON would be the CLI's)
    assert not [k for k in env if k.startswith("WARMCHECK_") and k != "WARMCHECK_ACTION_PYTHON"]


# --------------------------------------------------------------------------------- the run step


def test_sample_logs_annotations_summary_outputs(workspace: Path) -> None:
    r = run_step(workspace, {"paths": "sample_logs", "html": ""}, summary_before="earlier step's summary\n")
    assert r.code == 1, r.stderr
    expected = _json_counts(workspace, "sample_logs")
    assert expected["error"] == 3 and expected["warning"] == 5  # the shipped scenarios (sample_logs/README.md)
    assert r.outputs["exit-code"] == "1"
    assert (r.outputs["errors"], r.outputs["warnings"], r.outputs["notices"]) == \
        (str(expected["error"]), str(expected["warning"]), str(expected["info"]))
    assert len(r.commands("error")) == 3 and len(r.commands("warning")) == 5
    assert any(c.startswith("::error file=sample_logs/diverged/log.csv,title=WC403 divergence::")
               for c in r.commands("error"))
    assert r.outputs["report"] == ""
    # appended, after what an earlier step wrote; the markdown report as `--format markdown` writes it
    assert r.summary.startswith("earlier step's summary\n# warmcheck\n")
    assert "12 runs: 3 error, 5 warning, 4 info" in r.summary
    assert "| `sample_logs/diverged/log.csv` |" in r.summary
    assert "| WC403 | error |" in r.summary
    assert "config: none (--isolated)" in r.stderr
    assert "(exit 1)" in r.stderr


def test_clean_run_passes(workspace: Path) -> None:
    r = run_step(workspace, {"paths": "sample_logs/healthy_cosine", "html": ""})
    assert r.code == 0, r.stderr
    assert r.outputs["exit-code"] == "0"
    assert (r.outputs["errors"], r.outputs["warnings"]) == ("0", "0")
    assert not r.commands("error") and not r.commands("warning")
    assert "1 run: 0 error, 0 warning" in r.summary and "No findings." in r.summary


def test_fail_on(workspace: Path) -> None:
    default = run_step(workspace, {"paths": "sample_logs/loss_spike", "html": ""})
    strict = run_step(workspace, {"paths": "sample_logs/loss_spike", "html": "", "fail-on": "warning"})
    assert default.code == 0 and strict.code == 1
    assert default.outputs["warnings"] == strict.outputs["warnings"] == "1"
    assert strict.commands("warning")[0].startswith("::warning file=sample_logs/loss_spike/")


def test_multi_line_paths_and_globs(workspace: Path) -> None:
    r = run_step(workspace, {"paths": "  sample_logs/div*  \n\nsample_logs/healthy_cosine\n", "html": ""})
    assert r.code == 1
    assert "2 runs:" in r.summary
    assert "`sample_logs/diverged/log.csv`" in r.summary and "`sample_logs/healthy_cosine`" in r.summary


def test_repository_configuration_does_not_change_the_gate(workspace: Path) -> None:
    """The checked-out pyproject.toml belongs to the pull request: it is ignored (--isolated) unless
    the workflow names a configuration."""
    (workspace / "pyproject.toml").write_text('[tool.warmcheck]\nfail-on = "never"\nignore = ["WC4"]\n')
    isolated = run_step(workspace, {"paths": "sample_logs/diverged", "html": ""})
    assert isolated.code == 1 and isolated.outputs["errors"] == "3"
    assert "config: none (--isolated)" in isolated.stderr
    named = run_step(workspace, {"paths": "sample_logs/diverged", "html": "", "config": "pyproject.toml"})
    assert named.code == 0 and named.outputs["errors"] == "0"
    assert "config: " in named.stderr and "pyproject.toml" in named.stderr
    in_args = run_step(workspace, {"paths": "sample_logs/diverged", "html": "", "args": "--config pyproject.toml"})
    assert in_args.code == 0


def test_args_are_words_not_shell(workspace: Path) -> None:
    r = run_step(workspace, {"paths": "sample_logs/founding_book_tb", "html": "",
                             "args": "--warmup-steps 20 --ignore 'WC2 02'"})
    assert r.code == 1  # WC201: the book's text says 20, its code gives 27
    assert any("title=WC201 warmup-mismatch" in c for c in r.commands("error"))


def test_inputs_cannot_run_commands(workspace: Path) -> None:
    hostile = {
        "paths": "$(touch pwned-paths)\n`touch pwned-backtick`\nsample_logs/healthy_cosine; touch pwned-semicolon",
        "args": "--select '$(touch pwned-args)'",
        "baseline": "",
        "config": "$(touch pwned-config)",
        "fail-on": "",
        "html": "$(touch pwned-html).html",
    }
    r = run_step(workspace, hostile)
    assert r.code == 2 and r.outputs["exit-code"] == "2"
    assert "warmcheck: error: $(touch pwned-config): configuration file not found" in r.stderr  # data, as given
    r = run_step(workspace, {**hostile, "config": ""})
    assert r.code == 2 and r.outputs["exit-code"] == "2"
    assert "warmcheck: error: $(touch pwned-paths): no such file or directory" in r.stderr
    assert not list(workspace.glob("pwned*")) and not list(workspace.parent.glob("**/pwned*"))


def test_a_path_that_looks_like_a_flag_is_a_path(workspace: Path) -> None:
    """``--exit-zero`` as a path is the directory of that name (after ``--``), not the flag."""
    shutil.copytree(workspace / "sample_logs" / "diverged", workspace / "--exit-zero")
    r = run_step(workspace, {"paths": "--exit-zero", "html": ""})
    assert r.code == 1 and r.outputs["errors"] == "3"
    assert "`--exit-zero/log.csv`" in r.summary


@pytest.mark.parametrize(("inputs", "message"), [
    ({"paths": "sample_logs", "args": "--format json"}, "args: '--format'"),
    ({"paths": "sample_logs", "args": "-o report.txt"}, "args: '-o'"),
    ({"paths": "sample_logs", "args": "--html=x.html"}, "args: '--html=x.html'"),
    ({"paths": "sample_logs", "args": "--ignore 'WC4"}, "args: No closing quotation"),
    ({"paths": "sample_logs/diverged", "baseline": "sample_logs/diverged", "args": "--write-golden g.json"},
     "args: '--write-golden'"),
    ({"paths": "sample_logs", "fail-on": "sometimes"}, "fail-on: 'sometimes' is not one of"),
    ({"paths": " \n "}, "paths: nothing to analyze"),
    ({"paths": "sample_logs/diverged\nsample_logs/healthy_cosine", "baseline": "sample_logs/healthy_cosine"},
     "paths: with a baseline, paths is the one run to compare (got 2"),
])
def test_unusable_inputs_exit_2_with_an_annotation(workspace: Path, inputs: dict[str, str], message: str) -> None:
    r = run_step(workspace, inputs)
    assert r.code == 2
    assert r.stdout.startswith("::error title=warmcheck action::" + message), r.stdout
    assert r.outputs["exit-code"] == "2"
    assert "The action could not run" in r.summary


def test_html_report(workspace: Path) -> None:
    r = run_step(workspace, {"paths": "sample_logs/diverged", "html": "reports/warmcheck.html"})
    assert r.code == 1
    target = workspace / "reports" / "warmcheck.html"
    assert r.outputs["report"] == str(target)
    text = target.read_text(encoding="utf-8")
    assert "<html" in text.lower() and "diverged" in text


def test_compare_plan() -> None:
    p = script.plan({"INPUT_PATHS": "runs/pr", "INPUT_BASELINE": "runs/main\ngolden/loss.json\n",
                     "INPUT_ARGS": "--rtol 0.05", "INPUT_FAIL_ON": "warning", "INPUT_HTML": ""}, cwd="/ws")
    assert p.argv("--format", "github") == [
        "compare", "--isolated", "--fail-on=warning", "--rtol", "0.05", "--baseline=runs/main",
        "--baseline=golden/loss.json", "--format", "github", "--", "runs/pr"]
    assert p.html is None
    analyze = script.plan({"INPUT_PATHS": "a\nb", "INPUT_CONFIG": ".github/warmcheck.toml",
                           "INPUT_HTML": "r.html"}, cwd="/ws")
    assert analyze.argv() == ["analyze", "--config=.github/warmcheck.toml", "--", "a", "b"]
    assert analyze.html == os.path.abspath("/ws/r.html")


def test_compare_against_a_baseline(workspace: Path) -> None:
    """The real HF Trainer runs of issue 13: warmup 27 against warmup 20 fails naming both; another seed of
    the same configuration passes; a golden file of the baseline works as the baseline."""
    for run in ("warmup20_seed0", "warmup20_seed1", "warmup27_seed0"):
        shutil.copytree(COMPARE / run, workspace / "compare" / run)
    worse = run_step(workspace, {"paths": "compare/warmup27_seed0", "baseline": "compare/warmup20_seed0",
                                 "html": ""})
    assert worse.code == 1, worse.stderr
    [error] = worse.commands("error")
    assert "title=WC501 lr-schedule-differs::" in error
    assert "this run warmed up for 27 updates, the baseline for 20" in error
    assert worse.outputs["errors"] == "1"
    assert "## Comparison" in worse.summary and "warmup 27 vs 20 updates" in worse.summary
    seed = run_step(workspace, {"paths": "compare/warmup20_seed1", "baseline": "compare/warmup20_seed0",
                                "html": ""})
    assert seed.code == 0, seed.stdout + seed.stderr
    assert seed.outputs["errors"] == "0" and "## Comparison" in seed.summary
    golden = workspace / "golden.json"
    subprocess.run([sys.executable, "-m", "warmcheck", "compare", "compare/warmup20_seed0", "--isolated",
                    "--write-golden", str(golden)], cwd=workspace, check=True, capture_output=True)
    against_golden = run_step(workspace, {"paths": "compare/warmup27_seed0", "baseline": "golden.json",
                                          "html": ""})
    assert against_golden.code == 1
    assert "this run warmed up for 27 updates, the baseline for 20" in against_golden.commands("error")[0]


def test_summary_is_cut_at_githubs_limit(workspace: Path) -> None:
    """A step summary over 1 MiB is refused whole by GitHub: the report is cut at a line, with a note."""
    before = "x" * (script.SUMMARY_LIMIT - 2000) + "\n"
    r = run_step(workspace, {"paths": "sample_logs", "html": ""}, summary_before=before)
    assert r.code == 1
    assert len(r.summary.encode()) <= script.SUMMARY_LIMIT
    assert r.summary.startswith(before + "# warmcheck\n")
    assert r.summary.endswith("*The report was cut here: a job summary holds at most 1 MiB. The whole report is "
                              "in the HTML report artifact, or run warmcheck with `--format markdown`.*\n")
    kept = r.summary[len(before):].split("\n\n*The report was cut here")[0]
    assert kept.endswith(" |\n") and len(kept) < 8000  # whole lines only, and cut


def test_summary_text_and_counts() -> None:
    md = "".join(f"| row {i} |\n" for i in range(1000))
    assert script.summary_text(md, 10**6) == md
    cut = script.summary_text(md, 500)
    assert len(cut.encode()) <= 500 and cut.startswith("| row 0 |\n") and "cut here" in cut
    assert script.count(b"::error file=a,title=x::m\n::warning title=y::m\n::notice title=z::m\n"
                        b"  ::error not a command\nplain ::error\n::error title=w::n\n") == \
        {"error": 2, "warning": 1, "notice": 1}


def test_outputs_hold_any_value(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("earlier=1\n")
    script.set_outputs(str(out), {"report": "/a/b\nreport=evil", "exit-code": "1"})
    assert _outputs(out) == {"earlier": "1", "report": "/a/b\nreport=evil", "exit-code": "1"}


# ------------------------------------------------------------------------------ the install step


_SHIM = """#!/bin/bash
printf '[%s]' "$@" >> "$SHIM_LOG"; echo >> "$SHIM_LOG"
if [ "$1" = -m ] && [ "$2" = venv ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; fi
if [ "$1" = -m ] && [ "$2" = warmcheck ]; then echo "warmcheck 0.0 (stand-in)"; fi
exit 0
"""


def _install(tmp_path: Path, inputs: Mapping[str, str]) -> tuple[list[str], dict[str, str], Path]:
    step = _step("install")
    bin_dir, runner = tmp_path / "bin", tmp_path / "runner"
    bin_dir.mkdir(parents=True)
    runner.mkdir()
    shim = bin_dir / "python3"
    shim.write_text(_SHIM)
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    log, output = tmp_path / "calls.log", tmp_path / "output.txt"
    output.write_text("")
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path), "SHIM_LOG": str(log),
           "RUNNER_TEMP": str(runner), "GITHUB_OUTPUT": str(output)}
    env.update({k: _evaluate(v, inputs, {"github.action_path": str(ROOT)}) for k, v in step["env"].items()})
    (tmp_path / "step.sh").write_text(step["run"])
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(tmp_path / "step.sh")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines(), _outputs(output), runner


def test_install_step_installs_the_actions_own_checkout(tmp_path: Path) -> None:
    calls, outputs, runner = _install(tmp_path, {})
    venv = runner / "warmcheck-action-venv"
    assert calls[0] == "[-c][]"
    assert calls[1] == f"[-m][venv][{venv}]"
    assert calls[2] == f"[-m][pip][install][--quiet][--disable-pip-version-check][--][{ROOT}[html]]"
    assert calls[3] == "[-m][warmcheck][--version]"
    assert outputs == {"python": str(venv / "bin" / "python")}


def test_install_step_version_and_extras(tmp_path: Path) -> None:
    calls, _, _ = _install(tmp_path / "extras", {"extras": "s3,gcs"})
    assert calls[2].endswith(f"[--][{ROOT}[html,s3,gcs]]")
    calls, _, _ = _install(tmp_path / "no-html", {"html": ""})  # no HTML report: no plotly
    assert calls[2].endswith(f"[--][{ROOT}]")
    hostile = 'warmcheck==0.1.0 $(touch pwned) "; touch pwned2'
    calls, _, _ = _install(tmp_path / "version", {"version": hostile, "extras": "s3"})
    assert calls[2].endswith(f"[--][{hostile}]")  # one word, as given: pip would reject it
    assert not list(tmp_path.glob("**/pwned*"))
