"""The CLI edge: exit codes, stdout is only the payload, stderr for people, JSON schema 1."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from factories import run_events, write_events

from warmcheck.cli import main


def invoke(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def healthy(tmp_path) -> str:
    n = 200
    lr = np.minimum(np.arange(n) / 20, 1.0) * 1e-3
    write_events(tmp_path / "healthy" / "events.out.tfevents.1.h",
                 run_events(range(n), {"train/loss": np.linspace(4, 2, n), "train/lr": lr}))
    return str(tmp_path / "healthy")


@pytest.fixture
def nan_run(tmp_path) -> str:
    loss = np.linspace(4, 2, 50)
    loss[30:] = math.nan
    write_events(tmp_path / "nan" / "events.out.tfevents.1.h",
                 run_events(range(50), {"train/loss": loss, "train/lr": np.full(50, 1e-3)}))
    return str(tmp_path / "nan")


def test_clean_run_exits_0_and_json_is_schema_1(healthy: str) -> None:
    code, out, err = invoke("analyze", healthy, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema_version"] == 1 and list(doc) == ["schema_version", "warmcheck_version", "runs",
                                                         "findings", "summary", "config"]
    (run,) = doc["runs"]
    assert list(run)[:5] == ["run", "sources", "series", "schedule", "findings"]
    assert run["sources"] == [{"path": f"{healthy}/events.out.tfevents.1.h", "format": "tfevents",
                               "records": 401, "skipped": 0}]
    loss = next(s for s in run["series"] if s["tag"] == "train/loss")
    assert loss == {"tag": "train/loss", "role": "loss", "points": 200, "first_step": 0, "last_step": 199,
                    "nonfinite": 0, "superseded": 0}
    assert doc["summary"] == {"runs": 1, "error": 0, "warning": 0, "info": 0}
    assert "warmcheck: 1 run" in err and "exit 0" in err


def test_error_finding_exits_1_and_can_be_gated(nan_run: str) -> None:
    code, out, _ = invoke("analyze", nan_run, "--format", "json")
    assert code == 1
    (f,) = [f for f in json.loads(out)["runs"][0]["findings"] if f["severity"] == "error"]
    assert (f["code"], f["severity"], f["step"], f["tag"]) == ("WC401", "error", 30, "train/loss")
    assert f["details"]["last_good_step"] == 29 and f["details"]["count"] == 20
    assert invoke("analyze", nan_run, "--exit-zero")[0] == 0
    assert invoke("analyze", nan_run, "--fail-on", "never")[0] == 0
    assert invoke("analyze", nan_run, "--ignore", "WC4")[0] == 0
    assert invoke("analyze", nan_run, "--select", "WC0")[0] == 0


def test_warning_gate(tmp_path) -> None:
    write_events(tmp_path / "events.out.tfevents.1.h", run_events(range(10), {"mystery": np.ones(10)}))
    assert invoke("analyze", str(tmp_path))[0] == 0  # WC019 is a warning
    assert invoke("analyze", str(tmp_path), "--fail-on", "warning")[0] == 1


def test_could_not_analyse_exits_2(tmp_path) -> None:
    code, out, err = invoke("analyze", str(tmp_path / "missing"))
    assert code == 2 and out == "" and "no such file" in err
    (tmp_path / "empty").mkdir()
    code, out, err = invoke("analyze", str(tmp_path / "empty"))
    assert code == 2 and out == "" and "no training logs found" in err
    (tmp_path / "zero" / "events.out.tfevents.1.h").parent.mkdir()
    (tmp_path / "zero" / "events.out.tfevents.1.h").write_bytes(b"")
    code, out, err = invoke("analyze", str(tmp_path / "zero"), "--format", "json")
    assert code == 2 and json.loads(out)["runs"][0]["findings"][0]["code"] == "WC002"
    assert "no data could be analysed" in err
    assert invoke("analyze", "--format", "xml", str(tmp_path))[0] == 2  # usage error


def test_output_file_and_quiet(healthy: str, tmp_path) -> None:
    target = tmp_path / "report.json"
    code, out, err = invoke("analyze", healthy, "--format", "json", "-o", str(target), "-q")
    assert code == 0 and out == "" and err == ""
    assert json.loads(target.read_text())["summary"]["runs"] == 1


def test_text_report_has_run_header_and_findings(nan_run: str) -> None:
    code, out, _ = invoke("analyze", nan_run)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{nan_run}: 1 source (tfevents), 2 series, 100 points, steps 0..49")
    assert any(line.split()[:4] == ["WC401", "error", "30", "train/loss:"] for line in lines)


def test_tag_overrides_change_roles(tmp_path) -> None:
    write_events(tmp_path / "events.out.tfevents.1.h",
                 run_events(range(5), {"my_obj": np.ones(5), "sched/value": np.ones(5)}))
    code, out, _ = invoke("analyze", str(tmp_path), "--format", "json", "--loss-tag", "my_obj",
                          "--lr-tag", "sched/*")
    series = {s["tag"]: s["role"] for s in json.loads(out)["runs"][0]["series"]}
    assert series == {"my_obj": "loss", "sched/value": "lr"}


def test_tags_command(healthy: str) -> None:
    code, out, _ = invoke("tags", healthy)
    assert code == 0
    assert out.splitlines()[0] == healthy
    assert any(line.split()[:3] == ["train/lr", "lr", "200"] for line in out.splitlines())
    code, out, _ = invoke("tags", healthy, "--format", "json")
    assert json.loads(out)[0]["series"][1]["points"] == 200


def test_python_m_warmcheck_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "warmcheck", "--version"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("warmcheck, version ")


def test_jobs_do_not_change_the_output() -> None:
    from pathlib import Path

    samples = str(Path(__file__).resolve().parent.parent / "sample_logs")
    one = CliRunner().invoke(main, ["analyze", samples, "--format", "json", "--jobs", "1"], catch_exceptions=False)
    two = CliRunner().invoke(main, ["analyze", samples, "--format", "json", "--jobs", "2"], catch_exceptions=False)
    assert one.exit_code == two.exit_code == 1
    assert one.stdout == two.stdout and json.loads(two.stdout)["summary"]["runs"] == 12


def test_progress_bar_only_on_a_terminal(monkeypatch):
    import io

    from warmcheck import cli

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert cli._progress() is None  # piped or redirected: no bar
    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    show = cli._progress()
    assert show is not None
    show(1, 4, "runs/a")
    show(4, 4, "runs/d")
    text = tty.getvalue()
    assert "[######------------------] 1/4 runs/a" in text
    assert text.endswith("[########################] 4/4 runs/d\n")
