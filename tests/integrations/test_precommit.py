"""The pre-commit hooks (.pre-commit-hooks.yaml) as users install them: ``pre-commit try-repo`` and a
``.pre-commit-config.yaml`` naming this checkout, on temporary git repositories holding shipped logs.

pre-commit builds its own virtualenv and pip installs warmcheck (with its dependencies, from PyPI
or pip's cache) from a git repository: a copy of this checkout's package files, committed, so the code
tested is what is on disk (``try-repo`` of a dirty work tree would take modified tracked files but not
new ones). ``try-repo`` installs into a store of its own each time (two installs); the configured runs
share one install through ``PRE_COMMIT_HOME`` (module scope). Measured here with pip's cache warm:
about 22 s per install, 2 s per hook run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from warmcheck.integrations import precommit

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_logs"
COMPARE = ROOT / "tests" / "data" / "realruns" / "compare"
HOOKS: list[dict[str, Any]] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
# pip's cache as the user has it (conftest points XDG_CACHE_HOME at a temporary directory per test)
_PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pip")
_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("WARMCHECK_", "PRE_COMMIT", "GIT_"))}

needs_pre_commit = pytest.mark.skipif(importlib.util.find_spec("pre_commit") is None,
                                      reason="pre-commit is not installed (pip install pre-commit)")


def _hook(hook_id: str) -> dict[str, Any]:
    [hook] = [h for h in HOOKS if h["id"] == hook_id]
    return hook


# ------------------------------------------------------------------------------------ the manifest


def test_manifest() -> None:
    assert [h["id"] for h in HOOKS] == ["warmcheck", "warmcheck-compare"]
    for hook in HOOKS:
        assert hook["language"] == "python" and hook["require_serial"] is True
        assert hook["entry"].startswith("python -m warmcheck.integrations.precommit ")
    assert _hook("warmcheck")["pass_filenames"] is True
    assert _hook("warmcheck-compare")["pass_filenames"] is False


@pytest.mark.parametrize(("path", "matches"), [
    ("runs/a/events.out.tfevents.1700000000.host.1.0", True),
    ("lightning_logs/version_0/metrics.csv", True),
    ("metrics.csv", True),
    ("out/trainer_state.json", True),
    ("out/checkpoint-500/trainer_state.json", True),
    ("logs/train.jsonl", True),
    ("logs/train.jsonl.gz", True),
    ("data/train.csv", False),
    ("out/config.json", False),
    ("README.md", False),
    ("src/metrics.csv.py", False),
])
def test_analyze_hook_files(path: str, matches: bool) -> None:
    assert bool(re.search(_hook("warmcheck")["files"], path)) is matches


@needs_pre_commit
def test_manifest_validates() -> None:
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "validate-manifest",
                           str(ROOT / ".pre-commit-hooks.yaml")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------- files -> runs (in this process)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository's files, as pre-commit names them (relative to its root, the cwd)."""
    for rel in ("resumed/events.out.tfevents.1", "resumed/events.out.tfevents.2", "hf/trainer_state.json",
                "hf/runs/Dec05/events.out.tfevents.3", "hf/checkpoint-10/trainer_state.json",
                "tb/runs/x/events.out.tfevents.4", "tb/runs/metrics.csv", "lightning/version_0/metrics.csv",
                "metrics.csv", "notes/a.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_each_file_stands_for_its_run(tree: Path) -> None:
    assert precommit.run_path("resumed/events.out.tfevents.1") == "resumed"
    assert precommit.run_path("hf/runs/Dec05/events.out.tfevents.3") == "hf"  # HF output dir: joined there
    assert precommit.run_path("hf/checkpoint-10/trainer_state.json") == "hf"
    assert precommit.run_path("tb/runs/x/events.out.tfevents.4") == os.path.join("tb", "runs", "x")  # no trainer_state
    assert precommit.run_path("lightning/version_0/metrics.csv") == os.path.join("lightning", "version_0")
    assert precommit.run_path("metrics.csv") == "metrics.csv"  # the root: the file alone, no walk of the repository
    assert precommit.run_paths(["resumed/events.out.tfevents.1", "resumed/events.out.tfevents.2", "metrics.csv",
                                "hf/runs/Dec05/events.out.tfevents.3", "hf/trainer_state.json",
                                "hf/checkpoint-10/trainer_state.json"]) == ["resumed", "metrics.csv", "hf"]
    # a directory inside another one kept is dropped (the walk of the outer one reads it)
    assert precommit.run_paths(["tb/runs/x/events.out.tfevents.4", "lightning/version_0/metrics.csv",
                                "tb/runs/metrics.csv"]) == [os.path.join("lightning", "version_0"),
                                                            os.path.join("tb", "runs")]


def test_args_then_files(tree: Path) -> None:
    argv = ["--fail-on", "warning", "--config", "notes/a.txt", "resumed/events.out.tfevents.1",
            "resumed/events.out.tfevents.2", "metrics.csv"]
    assert precommit.split(argv) == (argv[:4], argv[4:])
    assert precommit.argv_for("analyze", argv) == ["analyze", *argv[:4], "--", "resumed", "metrics.csv"]
    assert precommit.argv_for("analyze", ["resumed/events.out.tfevents.2"]) == \
        ["analyze", "--isolated", "--", "resumed"]
    assert precommit.argv_for("compare", ["runs/pr", "--baseline", "golden.json"]) == \
        ["compare", "--isolated", "runs/pr", "--baseline", "golden.json"]
    assert precommit.argv_for("compare", ["--isolated", "a", "-b", "b"]) == ["compare", "--isolated", "a", "-b", "b"]
    with pytest.raises(SystemExit, match="unknown command"):
        precommit.argv_for("plot", [])


def test_two_files_of_one_run_are_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The resumed run's two event files, as pre-commit passes them: one run, with the resume overlap
    (WC006) that only the two files together show."""
    shutil.copytree(SAMPLES / "resumed_run", tmp_path / "resumed_run")
    monkeypatch.chdir(tmp_path)
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "resumed_run").iterdir())
    assert len(files) == 2
    with pytest.raises(SystemExit) as exit_info:
        precommit.main(["analyze", "--fail-on", "warning", *files])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "WC006 warning" in captured.out and "resume overlap" in captured.out
    assert "1 run, 0 errors, 1 warning" in captured.err
    assert "config: none (--isolated)" in captured.err


# ------------------------------------------------------------------------- pre-commit, installed


def _git(cwd: Path, *args: str, env: Mapping[str, str]) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=dict(env), check=True, capture_output=True,
                          text=True).stdout.strip()


def _commit_repo(path: Path, env: Mapping[str, str]) -> str:
    _git(path, "init", "-q", env=env)
    _git(path, "add", "-A", env=env)
    _git(path, "commit", "-q", "-m", "test", env=env)
    return _git(path, "rev-parse", "HEAD", env=env)


@pytest.fixture(scope="module")
def pc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """This checkout as a committed git repository, and the environment pre-commit runs in (its home
    shared by the module: one install for every configured run)."""
    base = tmp_path_factory.mktemp("pre-commit")
    gitconfig = base / "gitconfig"
    gitconfig.write_text("")
    env = {**_ENV, "PRE_COMMIT_HOME": str(base / "home"), "PIP_CACHE_DIR": _PIP_CACHE,
           "XDG_CACHE_HOME": str(base / "cache"), "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    source = base / "warmcheck"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "warmcheck", source / "warmcheck", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    rev = _commit_repo(source, env)
    yield {"env": env, "source": source, "rev": rev, "base": base}


def _target(pc: Mapping[str, Any], name: str, files: Mapping[str, Path | str]) -> Path:
    """A committed repository holding ``files`` (destination -> a shipped file or directory, or text)."""
    repo = pc["base"] / name
    repo.mkdir()
    for dest, src in files.items():
        target = repo / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, str):
            target.write_text(src)
        elif src.is_dir():
            shutil.copytree(src, target)
        else:
            shutil.copy(src, target)
    _commit_repo(repo, pc["env"])
    return repo


def _pre_commit(pc: Mapping[str, Any], repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=repo, env=pc["env"], capture_output=True,
                          text=True, timeout=900, check=False)


def _configured(pc: Mapping[str, Any], repo: Path, hooks: Sequence[Mapping[str, Any]],
                *args: str) -> subprocess.CompletedProcess[str]:
    """``pre-commit run`` with a ``.pre-commit-config.yaml`` naming the checkout at its commit."""
    config = {"repos": [{"repo": str(pc["source"]), "rev": pc["rev"], "hooks": [dict(h) for h in hooks]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    _git(repo, "add", ".pre-commit-config.yaml", env=pc["env"])  # pre-commit refuses an unstaged configuration
    return _pre_commit(pc, repo, "run", "--verbose", *args)


def _diverged() -> dict[str, Path | str]:
    return {"runs/diverged/metrics.csv": SAMPLES / "diverged" / "log.csv"}  # the Lightning file name


@needs_pre_commit
@pytest.mark.slow
def test_try_repo_fails_on_an_error_finding(pc: dict[str, Any]) -> None:
    repo = _target(pc, "try-fail", {**_diverged(), "runs/healthy": SAMPLES / "healthy_cosine"})
    proc = _pre_commit(pc, repo, "try-repo", str(pc["source"]), "warmcheck", "--all-files")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert re.search(r"warmcheck \(training logs\)\.+Failed", out)
    assert "WC403 error" in out and "WC401 error" in out
    assert "2 runs, 3 errors" in out  # both runs analysed, once each


@needs_pre_commit
@pytest.mark.slow
def test_try_repo_passes_on_clean_runs(pc: dict[str, Any]) -> None:
    repo = _target(pc, "try-pass", {"runs/healthy": SAMPLES / "healthy_cosine",
                                    "out": SAMPLES / "hf_trainer_state", "notes.txt": "not a log\n"})
    proc = _pre_commit(pc, repo, "try-repo", str(pc["source"]), "warmcheck", "--all-files")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert re.search(r"warmcheck \(training logs\)\.+Passed", out)


@needs_pre_commit
@pytest.mark.slow
def test_configured_hooks(pc: dict[str, Any]) -> None:
    """The hooks as a ``.pre-commit-config.yaml`` uses them (one install for all of these)."""
    # a commit touching two event files of one run: one run, its resume overlap seen
    repo = _target(pc, "resumed", {"runs/resumed": SAMPLES / "resumed_run", "runs/healthy": SAMPLES / "healthy_cosine"})
    files = sorted(str(p.relative_to(repo)) for p in (repo / "runs" / "resumed").iterdir())
    default = _configured(pc, repo, [{"id": "warmcheck"}], "--files", *files)
    assert default.returncode == 0, default.stdout
    assert "1 run, 0 errors, 1 warning" in default.stdout and "WC006 warning" in default.stdout
    strict = _configured(pc, repo, [{"id": "warmcheck", "args": ["--fail-on", "warning"]}], "--files", *files)
    assert strict.returncode == 1, strict.stdout
    assert "1 run, 0 errors, 1 warning" in strict.stdout

    # only the runs the commit touches: the diverged run beside is not analysed
    repo = _target(pc, "scoped", {**_diverged(), "runs/healthy": SAMPLES / "healthy_cosine"})
    touched = [str(p.relative_to(repo)) for p in (repo / "runs" / "healthy").iterdir()]
    scoped = _configured(pc, repo, [{"id": "warmcheck"}], "--files", *touched)
    assert scoped.returncode == 0, scoped.stdout
    assert "1 run, 0 errors" in scoped.stdout and "diverged" not in scoped.stdout

    # the repository's pyproject.toml does not relax the hook, unless named
    lax = '[tool.warmcheck]\nfail-on = "never"\nignore = ["WC4"]\n'
    repo = _target(pc, "config", {**_diverged(), "pyproject.toml": lax})
    isolated = _configured(pc, repo, [{"id": "warmcheck"}], "--all-files")
    assert isolated.returncode == 1 and "config: none (--isolated)" in isolated.stdout
    named = _configured(pc, repo, [{"id": "warmcheck", "args": ["--config", "pyproject.toml"]}], "--all-files")
    assert named.returncode == 0, named.stdout
    assert "0 errors" in named.stdout


@needs_pre_commit
@pytest.mark.slow
def test_compare_hook_with_a_golden_file(pc: dict[str, Any]) -> None:
    """A committed golden file of the reference run (warmup 20) and runs to check against it: the
    warmup-27 run fails naming both warmups, another seed of the same configuration passes."""
    repo = _target(pc, "golden", {"runs/warmup20_seed0": COMPARE / "warmup20_seed0",
                                  "runs/warmup20_seed1": COMPARE / "warmup20_seed1",
                                  "runs/warmup27_seed0": COMPARE / "warmup27_seed0"})
    (repo / "golden").mkdir()
    subprocess.run([sys.executable, "-m", "warmcheck", "compare", "runs/warmup20_seed0", "--isolated",
                    "--write-golden", "golden/reference.json"], cwd=repo, env=pc["env"], check=True,
                   capture_output=True)
    shutil.rmtree(repo / "runs" / "warmup20_seed0")
    _git(repo, "add", "-A", env=pc["env"])
    _git(repo, "commit", "-q", "-m", "golden", env=pc["env"])

    def hook(run: str) -> dict[str, Any]:
        return {"id": "warmcheck-compare", "args": [run, "--baseline", "golden/reference.json"],
                "files": "^(runs|golden)/"}

    worse = _configured(pc, repo, [hook("runs/warmup27_seed0")], "--all-files")
    assert worse.returncode == 1, worse.stdout
    assert "WC501" in worse.stdout and "this run warmed up for 27 updates, the baseline for 20" in worse.stdout
    seed = _configured(pc, repo, [hook("runs/warmup20_seed1")], "--all-files")
    assert seed.returncode == 0, seed.stdout
    assert "config: none (--isolated)" in seed.stdout
