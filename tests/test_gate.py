"""Issue 10, the gate: a config outside the project cannot relax it (item 12), a killed worker does
not lose the report (item 5)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hostile_inputs import BUILDERS, Builder, _schedule_csv

from warmcheck.cli import main
from warmcheck.config import load_settings
from warmcheck.config_search import search_config
from warmcheck.pipeline import analyze, exit_code
from warmcheck.reporters.json import run_dict

TRAP = 'fail-on = "never"\nignore = ["WC4"]\n'


def _tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path | None = None) -> tuple[Path, Path]:
    """tmp/shared/warmcheck.toml (the trap), tmp/shared/runs/diverged/log.csv, cwd tmp/shared/work/a."""
    monkeypatch.setenv("HOME", str(home or tmp_path / "elsewhere"))
    shared = tmp_path / "shared"
    (shared / "work" / "a").mkdir(parents=True)
    (shared / "warmcheck.toml").write_text(TRAP)
    run = shared / "runs" / "diverged"
    _schedule_csv(run / "log.csv", steps=400, warmup=40, diverge_at=300)
    monkeypatch.chdir(shared / "work" / "a")
    return shared, run


def _analyze(run: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(main, ["analyze", str(run), "--format", "json", *args], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout), result.stderr


def _codes(doc: dict[str, Any]) -> set[str]:
    return {f["code"] for r in doc["runs"] for f in r["findings"]}


def test_parent_config_outside_home_and_any_repository_is_ignored(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    shared, run = _tree(tmp_path, monkeypatch)
    code, doc, err = _analyze(run)
    assert code == 1 and {"WC401", "WC403"} <= _codes(doc)
    assert doc["config"]["source"] == "none" and doc["config"]["path"] is None
    assert doc["config"]["searched_to"] == str(shared / "work" / "a")
    assert [i["path"] for i in doc["config"]["ignored"]] == [str(shared / "warmcheck.toml")]
    assert f"ignored {shared / 'warmcheck.toml'}" in err and "warmcheck: config: none found" in err
    # the same file named explicitly is used: that is the way to share one
    code, doc, err = _analyze(run, "--config", str(shared / "warmcheck.toml"))
    assert code == 0 and not _codes(doc) & {"WC401", "WC403"}
    assert doc["config"] == {"path": str(shared / "warmcheck.toml"), "source": "--config", "searched_to": None,
                             "stopped": None, "ignored": []}
    code, doc, err = _analyze(run, "--isolated")
    assert code == 1 and doc["config"]["source"] == "--isolated" and "config: none (--isolated)" in err


@pytest.mark.parametrize("marker", [".git", "pyproject.toml"])
def test_search_stops_at_the_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: str) -> None:
    shared, run = _tree(tmp_path, monkeypatch)
    root = shared / "work"
    (root / ".git").mkdir()  # a checkout whose root is below the trap
    code, doc, _ = _analyze(run)
    assert code == 1 and doc["config"]["searched_to"] == str(root)
    assert doc["config"]["stopped"] == "repository root (.git)"
    if marker == "pyproject.toml":  # a project file without a table ends the search below the repository root
        (root / "a" / "pyproject.toml").write_text('[project]\nname = "x"\n')
        code, doc, _ = _analyze(run)
        assert code == 1 and doc["config"]["stopped"] == "project root (pyproject.toml)"
        assert doc["config"]["searched_to"] == str(root / "a")
    # inside the checkout, the project's own file is found from a subdirectory
    (root / "warmcheck.toml").write_text('fail-on = "never"\n')
    (root / "a" / "pyproject.toml").unlink(missing_ok=True)
    code, doc, _ = _analyze(run)
    assert code == 0 and doc["config"]["path"] == str(root / "warmcheck.toml")
    assert doc["config"]["source"] == "discovered"


def test_home_is_a_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "shared" / "work"
    shared, run = _tree(tmp_path, monkeypatch, home=home)
    code, doc, _ = _analyze(run)  # the trap is above $HOME
    assert code == 1 and doc["config"]["stopped"] == "$HOME" and doc["config"]["searched_to"] == str(home)
    (home / "warmcheck.toml").write_text('fail-on = "never"\n')  # the user's own file, in $HOME
    code, doc, _ = _analyze(run)
    assert code == 0 and doc["config"]["path"] == str(home / "warmcheck.toml")


def test_filesystem_is_a_boundary(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "warmcheck.toml").write_text(TRAP)
    mount = tmp_path / "mnt"
    (mount / "sub").mkdir(parents=True)
    assert search_config(mount / "sub", home=tmp_path / "nohome")[0] == tmp_path / "warmcheck.toml"

    def device(path: Path) -> int:  # tmp_path/mnt is another filesystem
        return 2 if path == mount or mount in path.parents else 1

    path, origin = search_config(mount / "sub", home=tmp_path / "nohome", device=device)
    assert path is None and origin.searched_to == str(mount / "sub")  # the repository root is beyond the mount
    assert [i.path for i in origin.ignored] == [str(tmp_path / "warmcheck.toml")]


def test_files_others_can_write_are_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = tmp_path / "warmcheck.toml"
    cfg.write_text('fail-on = "never"\n')
    assert load_settings({}, start=tmp_path).config.path == str(cfg)
    cfg.chmod(0o666)
    settings = load_settings({}, start=tmp_path)
    assert settings.config.path is None and settings.fail_on.value == "error"
    assert "writable by every user" in settings.config.ignored[0].reason
    cfg.chmod(0o644)
    if os.getuid() == 0:
        os.chown(cfg, 4242, -1)
    else:
        monkeypatch.setattr("warmcheck.config_search.os.getuid", lambda: os.stat(cfg).st_uid + 1)
    settings = load_settings({}, start=tmp_path)
    assert settings.config.path is None and "owned by another user" in settings.config.ignored[0].reason
    assert load_settings({}, config=str(cfg)).fail_on.value == "never"  # named explicitly: used


def _builder_cli(tmp_path: Path, name: str) -> tuple[Builder, subprocess.CompletedProcess[str]]:
    """The bench's input ``name`` built small, through the CLI in a real process (its cwd and env)."""
    b = BUILDERS[name]
    path = b.build(tmp_path, "small")
    assert b.cwd is not None
    proc = subprocess.run([sys.executable, "-m", "warmcheck", "analyze", str(path), "--format", "json", *b.args],
                          cwd=b.cwd(path), capture_output=True, text=True, env={**os.environ, **b.env}, timeout=120)
    return b, proc


def test_parent_config_trap_builder_through_the_cli(tmp_path: Path) -> None:
    """The bench's input, through a real process (its own cwd, a real $HOME)."""
    b, proc = _builder_cli(tmp_path, "parent_config_trap")
    doc = json.loads(proc.stdout)
    assert proc.returncode == b.exit_code == 1 and set(b.codes or ()) <= _codes(doc)
    assert sum(s["points"] + s["superseded"] for r in doc["runs"] for s in r["series"]) == b.points["small"]
    assert doc["config"]["ignored"] and doc["config"]["source"] == "none"


# ---------------------------------------------------------------------------------------------
# Item 5: a worker that dies. The kill is installed by the worker initializer, so it works with
# every start method (with spawn the child imports this module by name) and never in this process.
# ---------------------------------------------------------------------------------------------

KILLER = "d_kills_its_worker"


def _kill_if_culprit(spec_path: str) -> None:
    if multiprocessing.parent_process() is not None and KILLER in Path(spec_path).parts:
        marker = os.environ.get("GATE_TEST_KILL_ONCE")
        if marker:  # die only the first time: the retry succeeds
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
        if os.environ.get("GATE_TEST_EXIT"):
            os._exit(int(os.environ["GATE_TEST_EXIT"]))  # a C extension calling exit(), say
        os.kill(os.getpid(), signal.SIGKILL)


def install_killer() -> None:
    """Worker initializer: reading the culprit run SIGKILLs this worker (as the OOM killer would)."""
    from warmcheck import pipeline

    original = pipeline.read_runs

    def read_runs(spec: Any, *args: Any, **kwargs: Any) -> Any:
        _kill_if_culprit(spec.path)
        return original(spec, *args, **kwargs)

    pipeline.read_runs = read_runs


def _runs(tmp_path: Path, killer: bool = True) -> Path:
    root = tmp_path / "runs"
    names = ["a_run", "b_run", "c_run", KILLER, "e_run", "f_run", "g_run"]
    for name in names if killer else [n for n in names if n != KILLER]:
        _schedule_csv(root / name / "log.csv")
    return root


@pytest.mark.parametrize("jobs,start_method", [(2, "fork"), (3, "fork"), (2, "spawn")])
def test_a_run_that_kills_its_worker_is_reported_and_the_others_kept(tmp_path: Path, start_method: str,
                                                                     jobs: int) -> None:
    root = _runs(tmp_path)
    outcome = analyze([str(root)], jobs=jobs, worker_init=install_killer, start_method=start_method)
    names = [Path(r.name).parent.name for r in outcome.runs]
    assert names == ["a_run", "b_run", "c_run", KILLER, "e_run", "f_run", "g_run"]  # discovery order
    culprit = outcome.runs[3]
    assert [f.code for f in culprit.findings] == ["WC024"] and culprit.series == ()
    death = culprit.findings[0]
    assert death.details["signal"] == signal.SIGKILL and "signal 9 (SIGKILL)" in death.message
    assert exit_code(outcome) == 1  # follows the findings: the culprit's error
    # every healthy run is reported exactly as a run without the culprit, in one process
    reference = analyze([str(_runs(tmp_path / "ref", killer=False))], jobs=1)
    strip = [{**run_dict(r), "run": None, "sources": None} for r in reference.runs]
    assert [{**run_dict(r), "run": None, "sources": None} for r in outcome.runs if r is not culprit] == strip
    assert all(r.series and not r.findings for r in reference.runs)  # healthy: no finding could hide a loss


def test_a_worker_killed_once_is_retried_and_the_run_analysed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_TEST_KILL_ONCE", str(tmp_path / "killed-once"))
    root = _runs(tmp_path)
    outcome = analyze([str(root)], jobs=2, worker_init=install_killer)
    assert (tmp_path / "killed-once").exists()  # it did die once
    assert all(r.series and not r.findings for r in outcome.runs) and len(outcome.runs) == 7
    assert exit_code(outcome) == 0


def test_a_worker_that_exits_is_reported_with_its_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_TEST_EXIT", "3")
    outcome = analyze([str(_runs(tmp_path))], jobs=2, worker_init=install_killer, start_method="fork")
    (death,) = outcome.runs[3].findings
    assert death.code == "WC024" and death.details["exitcode"] == 3 and death.details["signal"] is None
    assert "(exit code 3)" in death.message and all(r.series for i, r in enumerate(outcome.runs) if i != 3)


def test_worker_killer_builder_through_the_cli(tmp_path: Path) -> None:
    """The bench's input: the CLI in a real process, a worker SIGKILLed by a sitecustomize hook."""
    b, proc = _builder_cli(tmp_path, "worker_killer")
    assert proc.returncode == b.exit_code == 1, proc.stderr
    doc = json.loads(proc.stdout)
    verdicts = [(Path(r["run"]).parent.name, [f["code"] for f in r["findings"]]) for r in doc["runs"]]
    assert verdicts[3] == (KILLER, ["WC024"]) and all(codes == [] for _, codes in verdicts[:3] + verdicts[4:])
    assert sum(s["points"] + s["superseded"] for r in doc["runs"] for s in r["series"]) == b.points["small"]
    assert "BrokenProcessPool" not in proc.stderr and "1 error" in proc.stderr
