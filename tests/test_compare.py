"""``warmcheck compare`` (issue 13) on real HF Trainer runs (tests/data/realruns/compare, written by
scripts/realruns/compare_runs.py): the founding warmup 20 vs 27, seeds of one configuration, a peak LR
3x too high; golden files; the WC5xx codes in every format."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from warmcheck import compare as cmp
from warmcheck.config import Settings
from warmcheck.model import Role

REAL = Path(__file__).parent / "data" / "realruns"
CMP = REAL / "compare"


def _truth(name: str) -> dict[str, Any]:
    return json.loads((CMP / name / "truth.json").read_text())


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "warmcheck", "compare", *map(str, args), "--isolated", "--no-cache"],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def _json(*args: str | Path) -> tuple[int, dict[str, Any]]:
    p = _run(*args, "--format", "json", "-q")
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, json.loads(p.stdout)


def _codes(doc: dict[str, Any]) -> list[str]:
    return [f["code"] for r in doc["runs"] for f in r["findings"]]


def _state_loss(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and losses as the Trainer wrote them to trainer_state.json (read without warmcheck)."""
    rows = [r for r in json.loads((CMP / name / "trainer_state.json").read_text())["log_history"] if "loss" in r]
    return np.array([r["step"] for r in rows]), np.array([r["loss"] for r in rows], dtype=float)


# ------------------------------------------------------------------------------ the founding story


def test_warmup_27_against_20_fails_naming_both_warmups() -> None:
    code, doc = _json(CMP / "warmup27_seed0", "--baseline", CMP / "warmup20_seed0")
    assert code == 1
    (wc501,) = [f for r in doc["runs"] for f in r["findings"] if f["code"] == "WC501"]
    run, base = _truth("warmup27_seed0"), _truth("warmup20_seed0")
    d = wc501["details"]
    ro, bo = run["observed_warmup"], base["observed_warmup"]
    assert (d["run_warmup_steps"], d["baseline_warmup_steps"]) == (ro["updates_below_peak"], bo["updates_below_peak"])
    assert (d["run_warmup_steps"], d["baseline_warmup_steps"]) == (27, 20)
    assert (d["run_peak_step"], d["baseline_peak_step"]) == (ro["lr_first_reaches_peak_at_logged_step"],
                                                             bo["lr_first_reaches_peak_at_logged_step"])
    assert "warmed up for 27 updates, the baseline for 20" in wc501["message"]
    assert "peak at step 28, the baseline at 21" in wc501["message"]
    # the first step whose LR differs, from the files: LR at step 1 is 0 for both, step 2 is 1/27 vs 1/20 of the peak
    assert wc501["step"] == 2 and doc["comparison"]["lr"]["first_diff_step"] == 2
    assert d["threshold"] == pytest.approx(1e-4)
    # the loss of these two stays within the band (the warmup changed the schedule, not the outcome)
    assert doc["comparison"]["loss"]["first_outside_step"] is None


@pytest.mark.parametrize(("run", "bases"), [
    ("warmup20_seed1", ["warmup20_seed0"]),
    ("warmup20_seed2", ["warmup20_seed0"]),
    ("warmup20_seed2", ["warmup20_seed1"]),
    ("warmup20_seed0", ["warmup20_seed2"]),
    ("warmup20_seed2", ["warmup20_seed0", "warmup20_seed1"]),
])
def test_seeds_of_one_configuration_pass_with_the_default_tolerance(run: str, bases: list[str]) -> None:
    args: list[str | Path] = [CMP / run]
    for b in bases:
        args += ["--baseline", CMP / b]
    code, doc = _json(*args)
    assert code == 0, [f["message"] for r in doc["runs"] for f in r["findings"]]
    assert _codes(doc) == []
    assert doc["comparison"]["lr"]["first_diff_step"] is None and doc["comparison"]["lr"]["max_rel_diff"] == 0
    loss = doc["comparison"]["loss"]
    assert loss["common_steps"] == 135 and loss["first_outside_step"] is None and loss["max_excess"] < 0


def _band(run: str, bases: list[str], window: int, rtol: float = 0.1, sigmas: float = 3.0) -> tuple[int, float]:
    """The first step outside the band, as the rule's documentation states it, computed here with
    pandas from the trainer_state.json values (not with warmcheck's code)."""
    import pandas as pd

    def sm(v: np.ndarray, w: int) -> np.ndarray:
        return pd.Series(v).rolling(w, center=True, min_periods=1).mean().to_numpy()

    steps, a_raw = _state_loss(run)
    b_raws = [_state_loss(b)[1] for b in bases]
    a = sm(a_raw, window)
    bs = [sm(b, window) for b in b_raws]
    center = np.mean(bs, axis=0)
    local = max(window, 11)
    var_a = sm((a_raw - a) ** 2, local)
    var_b = np.mean([sm((r - s) ** 2, local) for r, s in zip(b_raws, bs, strict=True)], axis=0)
    half = np.maximum(rtol * np.abs(center), sigmas * np.sqrt((var_a + var_b / len(bases)) / window))
    if len(bases) > 1:
        half = np.maximum(half, sigmas * np.std(bs, axis=0, ddof=1))
    out = np.flatnonzero(np.abs(a - center) > half)
    return int(steps[out[0]]), float(a[out[0]])


@pytest.mark.parametrize("bases", [["warmup20_seed0"], ["warmup20_seed0", "warmup20_seed1", "warmup20_seed2"]])
def test_lr_3x_too_high_fails_at_the_first_step_it_leaves_the_band(bases: list[str]) -> None:
    args: list[str | Path] = [CMP / "warmup20_lr3x_seed0"]
    for b in bases:
        args += ["--baseline", CMP / b]
    code, doc = _json(*args)
    assert code == 1
    (wc502,) = [f for r in doc["runs"] for f in r["findings"] if f["code"] == "WC502"]
    loss = doc["comparison"]["loss"]
    assert loss["window"] == cmp.auto_window(135) == 7
    step, value = _band("warmup20_lr3x_seed0", bases, 7)
    assert wc502["step"] == loss["first_outside_step"] == step
    assert loss["value"] == pytest.approx(value, rel=1e-6)  # TB float32 and state float64 hold the same loss
    lo, hi = loss["band"]
    assert not lo <= loss["value"] <= hi
    assert f"at step {step}:" in wc502["message"]
    # the LR differs from the first step after the zero start, by the factor 3 (relative difference 2/3)
    lr = doc["comparison"]["lr"]
    assert lr["first_diff_step"] == 2 and lr["max_rel_diff"] == pytest.approx(2 / 3, rel=1e-5)
    (wc501,) = [f for r in doc["runs"] for f in r["findings"] if f["code"] == "WC501"]
    assert "peak LR 0.06 vs 0.02" in wc501["message"]


def test_without_the_noise_terms_the_tolerance_alone_decides() -> None:
    """--sigmas 0 leaves atol + rtol |baseline|: the step moves to where the plain tolerance is exceeded."""
    code, doc = _json(CMP / "warmup20_lr3x_seed0", "--baseline", CMP / "warmup20_seed0", "--sigmas", "0",
                      "--rtol", "0.2")
    assert code == 1
    step, _ = _band("warmup20_lr3x_seed0", ["warmup20_seed0"], 7, rtol=0.2, sigmas=0.0)
    assert doc["comparison"]["loss"]["first_outside_step"] == step
    assert doc["comparison"]["loss"]["band_kind"] == "tolerance"


# ------------------------------------------------------------------------------ golden files


def test_golden_file_keeps_exact_values_and_compares_like_the_run(tmp_path: Path) -> None:
    golden = tmp_path / "golden.json"
    p = _run(CMP / "warmup20_seed0", "--write-golden", golden)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and "wrote" in p.stderr
    (run,) = cmp.load(str(CMP / "warmup20_seed0"), Settings())
    back = cmp.read_golden(golden.read_bytes(), str(golden))
    for role in (Role.LR, Role.LOSS, Role.GRAD_NORM):
        a, b = run.primary(role), back.primary(role)
        assert a is not None and b is not None and a.tag == b.tag
        assert np.array_equal(a.steps, b.steps) and np.array_equal(a.values, b.values)  # bit for bit
    # the run against its own golden values: nothing differs at all
    code, doc = _json(CMP / "warmup20_seed0", "--baseline", golden)
    assert code == 0 and doc["comparison"]["lr"]["max_rel_diff"] == 0
    assert doc["comparison"]["loss"]["max_excess"] < 0
    # another run against the golden file says what it says against the run directory
    _, by_golden = _json(CMP / "warmup27_seed0", "--baseline", golden)
    _, by_run = _json(CMP / "warmup27_seed0", "--baseline", CMP / "warmup20_seed0")
    for key in ("lr", "loss", "new_spikes", "new_nonfinite", "tolerance"):
        a, b = dict(by_golden["comparison"][key]), dict(by_run["comparison"][key])
        a.pop("baseline", None), b.pop("baseline", None)
        assert a == b, key
    assert _codes(by_golden) == _codes(by_run) == ["WC501"]


def test_golden_with_non_finite_values_round_trips(tmp_path: Path) -> None:
    (run,) = cmp.load(str(REAL / "hf_blowup_hidden_nan"), Settings())
    text = cmp.golden_text(run)
    json.loads(text)  # strict JSON: NaN is a string there
    assert "NaN" in text and ": NaN" not in text
    back = cmp.read_golden(text.encode(), "g.json")
    g = back.primary(Role.GRAD_NORM)
    orig = run.primary(Role.GRAD_NORM)
    assert g is not None and orig is not None
    assert np.array_equal(g.values, orig.values, equal_nan=True) and int(np.isnan(g.values).sum()) > 0


@pytest.mark.parametrize(("content", "message"), [
    ('{"warmcheck_golden": 99, "series": {}}', "golden format 99"),
    ('{"warmcheck_golden": 1, "series": {"loss": {"tag": "l", "steps": [1, 2], "values": [1.0]}}}', "2 steps but 1"),
    ('{"warmcheck_golden": 1, "series": {"loss": {"tag": "l", "steps": [1, 1], "values": [1.0, 2.0]}}}', "repeats"),
    ('{"warmcheck_golden": 1, "series": {"loss": {"steps": [1]}}}', "malformed"),
    ('{"warmcheck_golden": 1, ', "not a golden file"),
])
def test_a_bad_golden_file_is_exit_2_with_a_reason(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    p = _run(CMP / "warmup20_seed0", "--baseline", bad)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr


# ------------------------------------------------------------------------------ instability, coverage


def test_a_nan_the_baseline_did_not_have_is_wc504() -> None:
    code, doc = _json(REAL / "hf_blowup_hidden_nan", "--baseline", REAL / "hf_output_dir")
    assert code == 1
    broken = {b["code"]: b["step"] for b in doc["comparison"]["new_nonfinite"]}
    assert broken.get("WC402") == 31  # truth.json: the NaN grad norm beside a 0.0 loss from step 31
    wc504 = [f for r in doc["runs"] for f in r["findings"] if f["code"] == "WC504"]
    assert {f["details"]["code"] for f in wc504} == set(broken)
    # the same run as its own baseline: nothing is new
    code, doc = _json(REAL / "hf_blowup_hidden_nan", "--baseline", REAL / "hf_blowup_hidden_nan")
    assert code == 0 and [c for c in _codes(doc) if c.startswith("WC5")] == []


def test_a_run_shorter_than_its_baseline_says_so() -> None:
    code, doc = _json(REAL / "hf_output_dir", "--baseline", CMP / "warmup20_seed0", "--select", "WC505")
    assert _codes(doc) == ["WC505"]
    (f,) = [f for r in doc["runs"] for f in r["findings"]]
    assert f["details"]["run_last_step"] == 60 and f["details"]["baseline_last_step"] == 135
    assert code == 0  # a warning: below the default --fail-on error


def test_a_baseline_without_a_loss_is_not_a_pass(tmp_path: Path) -> None:
    golden = tmp_path / "lr_only.json"
    doc = cmp.golden(cmp.load(str(CMP / "warmup20_seed0"), Settings())[0])
    del doc["series"]["loss"]
    golden.write_text(json.dumps(doc))
    code, out = _json(CMP / "warmup20_seed1", "--baseline", golden, "--fail-on", "warning")
    assert code == 1 and _codes(out) == ["WC505"]
    assert "loss not compared" in out["runs"][0]["findings"][0]["message"]


# ------------------------------------------------------------------------------ the command


def test_run_must_be_one_run(tmp_path: Path) -> None:
    p = _run(CMP, "--baseline", CMP / "warmup20_seed0")
    assert p.returncode == 2
    assert re.search(r"holds 5 runs .*compare takes one run", p.stderr)


def test_a_baseline_or_write_golden_is_required() -> None:
    p = _run(CMP / "warmup20_seed0")
    assert p.returncode == 2 and "--baseline" in p.stderr


def test_a_directory_of_baselines_is_several_baselines() -> None:
    """--baseline DIR with three seeds: the seed-spread band, the same as naming them one by one."""
    seeds = CMP.parent / "compare"
    code_dir, by_dir = _json(CMP / "warmup20_lr3x_seed0", "--baseline", seeds, "--ignore", "WC5")
    assert by_dir["comparison"]["baselines"] and len(by_dir["comparison"]["baselines"]) == 5  # every run there
    assert code_dir == 0  # everything ignored


@pytest.mark.parametrize("fmt", ["text", "markdown", "github", "junit"])
def test_every_format_carries_the_comparison(fmt: str) -> None:
    p = _run(CMP / "warmup27_seed0", "--baseline", CMP / "warmup20_seed0", "--format", fmt, "-q")
    assert p.returncode == 1, p.stderr
    out = p.stdout
    assert "WC501" in out
    if fmt == "text":
        assert "compare: " in out and "warmup 27 vs 20 updates" in out
    elif fmt == "markdown":
        assert "## Comparison" in out and "| learning rate |" in out
    elif fmt == "github":
        assert re.search(r"^::error file=.*tfevents.*title=WC501 lr-schedule-differs::", out, re.M)
    else:
        assert 'name="WC5xx comparison with a baseline"' in out and 'type="WC501"' in out


def test_analyze_junit_has_no_comparison_case() -> None:
    p = subprocess.run([sys.executable, "-m", "warmcheck", "analyze", str(CMP / "warmup20_seed0"), "--isolated",
                        "--no-cache", "--format", "junit", "-q"], capture_output=True, text=True, timeout=300)
    assert "WC5xx" not in p.stdout and "WC4xx" in p.stdout


def test_smooth_is_a_centred_mean_that_skips_non_finite_values() -> None:
    v = np.array([1.0, 2.0, np.nan, 4.0, 5.0, np.inf, 7.0])
    got = cmp.smooth(v, 3)
    want = [1.5, 1.5, 3.0, 4.5, 4.5, 6.0, 7.0]
    assert got.tolist() == want
    assert cmp.smooth(v, 1)[3] == 4.0 and np.isnan(cmp.smooth(np.array([np.nan]), 3)[0])
    assert [cmp.auto_window(n) for n in (1, 10, 40, 135, 2000)] == [1, 1, 3, 7, 51]


def test_the_command_line_defaults_are_the_tolerance_defaults() -> None:
    """The CLI spells compare's defaults out (importing warmcheck.compare would cost every command's
    start-up); they must be Tolerance()'s."""
    from warmcheck.cli import main

    params = {p.name: p.default for p in main.commands["compare"].params}
    tol = cmp.Tolerance()
    assert {k: params[k] for k in ("rtol", "atol", "lr_rtol", "window", "sigmas")} == {
        "rtol": tol.rtol, "atol": tol.atol, "lr_rtol": tol.lr_rtol, "window": tol.window, "sigmas": tol.sigmas}
