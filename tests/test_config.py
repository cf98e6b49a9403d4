"""[tool.warmcheck]: discovery, precedence (defaults < file < flags), unknown keys and bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from warmcheck.cli import main
from warmcheck.config import Settings, find_config, load_settings

FOUNDING = str(Path(__file__).resolve().parent.parent / "sample_logs" / "founding_book_tb")


def _wc2(*args: str) -> tuple[int, list[tuple[str, str]], str]:
    result = CliRunner().invoke(main, ["analyze", FOUNDING, "--format", "json", *args], catch_exceptions=False)
    if result.exit_code == 2:
        return 2, [], result.stderr
    doc = json.loads(result.stdout)
    return result.exit_code, [(f["code"], f["message"]) for f in doc["runs"][0]["findings"]
                              if f["code"].startswith("WC2")], result.stderr


def test_pyproject_table_is_found_and_flags_win(tmp_path, monkeypatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.warmcheck]\nwarmup-steps = 20\n')
    (tmp_path / ".git").mkdir()  # a checkout: the search may go up to its root
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    code, wc2, _ = _wc2()
    assert code == 1 and wc2[0][0] == "WC201" and "pyproject.toml warmup-steps" in wc2[0][1]
    code, wc2, _ = _wc2("--warmup-ratio", "0.2")
    assert code == 0 and [c for c, _ in wc2] == ["WC202"]
    code, wc2, _ = _wc2("--isolated")
    assert code == 0 and wc2 == []


def test_pyproject_without_the_table_ends_the_search(tmp_path) -> None:
    """A pyproject.toml is a project root: a warmcheck.toml above it belongs to someone else (issue 10)."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "warmcheck.toml").write_text("warmup-ratio = 0.2\n")
    (tmp_path / "inner" / "deeper").mkdir(parents=True)
    assert find_config(tmp_path / "inner" / "deeper") == tmp_path / "warmcheck.toml"
    settings = load_settings({}, start=tmp_path / "inner" / "deeper")
    assert settings.warmup_ratio == 0.2 and settings.sources["warmup_ratio"] == "warmcheck.toml warmup-ratio"
    (tmp_path / "inner" / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_config(tmp_path / "inner" / "deeper") is None
    settings = load_settings({}, start=tmp_path / "inner" / "deeper")
    assert settings.warmup_ratio is None and settings.config.source == "none"
    assert settings.config.stopped == "project root (pyproject.toml)"
    assert [i.path for i in settings.config.ignored] == [str(tmp_path / "warmcheck.toml")]


def test_explicit_config_file(tmp_path) -> None:
    cfg = tmp_path / "ci.toml"
    cfg.write_text("[tool.warmcheck]\nwarmup-ratio = 0.2\nfail-on = 'warning'\n")
    code, wc2, _ = _wc2("--config", str(cfg))
    assert code == 0 and [c for c, _ in wc2] == ["WC202"]
    code, _, err = _wc2("--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "not found" in err


@pytest.mark.parametrize("body,needle", [
    ("warmup-stepz = 20", "unknown key 'warmup-stepz'"),
    ("warmup-ratio = 1.5", "'warmup-ratio' in [tool.warmcheck]"),
    ("fail-on = 'sometimes'", "one of error, warning, info, never"),
    ("lr-tags = 3", "a string or a list of strings"),
])
def test_bad_configuration_exits_2_naming_key_and_file(tmp_path, monkeypatch, body: str, needle: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.warmcheck]\n{body}\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = _wc2()
    assert code == 2 and needle in err and "pyproject.toml" in err


def test_defaults() -> None:
    s = Settings()
    assert s.enabled("WC201") and not Settings(ignore=("WC2",)).enabled("WC201")
    assert Settings(select=("WC2",), ignore=("WC20",)).enabled("WC205") is False
    assert Settings(select=("WC2",), ignore=("WC20",)).enabled("WC210")
    assert Settings(select=("WC201",), ignore=("WC2",)).enabled("WC201")  # the longer prefix wins


def test_steps_and_ratio_in_one_layer_are_both_kept(tmp_path) -> None:
    (tmp_path / "warmcheck.toml").write_text("warmup-ratio = 0.3\n")
    both = load_settings({"warmup_steps": 20, "warmup_ratio": 0.2}, start=tmp_path)
    assert (both.warmup_steps, both.warmup_ratio) == (20, 0.2)
    assert both.sources["warmup_ratio"] == "--warmup-ratio"
    over = load_settings({"warmup_steps": 20}, start=tmp_path)  # a flag replaces the file's alternative
    assert (over.warmup_steps, over.warmup_ratio) == (20, None)
    (tmp_path / "warmcheck.toml").write_text("warmup-ratio = 0.3\nwarmup-steps = 12\n")
    assert load_settings({}, start=tmp_path).warmup_ratio == 0.3


def test_environment_sits_between_file_and_flags(tmp_path, monkeypatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.warmcheck]\nwarmup-ratio = 0.5\nfail-on = 'never'\n")
    monkeypatch.chdir(tmp_path)
    code, wc2, _ = _wc2()
    assert code == 0 and wc2[0][0] == "WC201" and "pyproject.toml warmup-ratio" in wc2[0][1]  # never fails
    monkeypatch.setenv("WARMCHECK_WARMUP_RATIO", "0.2")
    monkeypatch.setenv("WARMCHECK_FAIL_ON", "error")
    code, wc2, _ = _wc2()
    assert code == 0 and [c for c, _ in wc2] == ["WC202"] and "$WARMCHECK_WARMUP_RATIO" in wc2[0][1]
    code, wc2, _ = _wc2("--warmup-ratio", "0.5")
    assert code == 1 and wc2[0][0] == "WC201" and "--warmup-ratio" in wc2[0][1]


def test_rules_and_explain() -> None:
    from warmcheck.findings import RULES

    result = CliRunner().invoke(main, ["rules"], catch_exceptions=False)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == len(RULES)
    assert result.stdout.splitlines()[0].split()[:3] == ["WC001", "unreadable-file", "error"]
    result = CliRunner().invoke(main, ["explain", "wc201"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout.startswith("WC201 warmup-mismatch (error by default")
    assert "What to do:" in result.stdout
    result = CliRunner().invoke(main, ["explain", "WC999"], catch_exceptions=False)
    assert result.exit_code == 2 and "unknown code" in result.stderr
    result = CliRunner().invoke(main, ["rules", "--format", "json"], catch_exceptions=False)
    assert json.loads(result.stdout)[0]["code"] == "WC001"


def test_per_run_expectations_by_glob(tmp_path, monkeypatch) -> None:
    samples = Path(FOUNDING).parent
    (tmp_path / "warmcheck.toml").write_text(
        "warmup-ratio = 0.2\n\n[[runs]]\nmatch = '*founding_book_tb'\nwarmup-steps = 20\n\n"
        "[[runs]]\nmatch = ['*/diverged/*', '*/lightning_csv/*']\nwarmup-steps = 99\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["analyze", str(samples / "founding_book_tb"), str(samples / "founding_book_csv"),
                                       "--format", "json"], catch_exceptions=False)
    runs = json.loads(result.stdout)["runs"]
    verdicts = {r["run"].rsplit("/", 1)[-1]: [(f["code"], f["message"]) for f in r["findings"]
                                              if f["code"].startswith("WC2")] for r in runs}
    code, message = verdicts["founding_book_tb"][0]
    assert code == "WC201" and "runs match '*founding_book_tb'" in message
    assert [c for c, _ in verdicts["train_log.csv"]] == ["WC202"]  # the file-level ratio
    result = CliRunner().invoke(main, ["analyze", str(samples / "founding_book_tb"), "--format", "json",
                                       "--warmup-ratio", "0.2"], catch_exceptions=False)
    assert result.exit_code == 0  # the flag beats the per-run table


def test_per_run_table_validation(tmp_path, monkeypatch) -> None:
    (tmp_path / "warmcheck.toml").write_text("[[runs]]\nwarmup-steps = 20\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = _wc2()
    assert code == 2 and "needs a 'match'" in err
    (tmp_path / "warmcheck.toml").write_text("[[runs]]\nmatch = '*'\nfail-on = 'warning'\n")
    code, _, err = _wc2()
    assert code == 2 and "unknown key runs[0].'fail-on'" in err
