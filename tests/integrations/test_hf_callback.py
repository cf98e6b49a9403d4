"""WarmcheckCallback in a real Hugging Face Trainer: tiny CPU runs, nothing downloaded."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")
transformers = pytest.importorskip("transformers")

from warmcheck.config import Settings  # noqa: E402
from warmcheck.findings import Finding, Severity  # noqa: E402
from warmcheck.integrations.hf import WarmcheckCallback  # noqa: E402
from warmcheck.live.monitor import Monitor  # noqa: E402

MAX_STEPS = 50
WARMUP = 10


class Regression(torch.utils.data.Dataset):
    """y = x . w + noise, as {"x", "y"} rows the default collator stacks."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": self.x[i], "y": self.y[i]}


class Linear(torch.nn.Module):
    """A linear regression returning {"loss": ...}; from training forward call ``nan_after + 1`` on, NaN."""

    def __init__(self, nan_after: int | None = None) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        self.nan_after = nan_after
        self.calls = 0

    def forward(self, x: Any, y: Any) -> dict[str, Any]:
        loss = torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y)
        if self.training:
            self.calls += 1
            if self.nan_after is not None and self.calls > self.nan_after:
                loss = loss * float("nan")
        return {"loss": loss}


class Spiky(Linear):
    """The loss of training forward calls ``first..last`` multiplied by ``factor`` (its gradients too)."""

    def __init__(self, first: int, last: int, factor: float) -> None:
        super().__init__()
        self.first, self.last, self.factor = first, last, factor

    def forward(self, x: Any, y: Any) -> dict[str, Any]:
        out = super().forward(x, y)
        if self.training and self.first <= self.calls <= self.last:
            out = {"loss": out["loss"] * self.factor}
        return out


def train(tmp_path: Path, callback: WarmcheckCallback, nan_after: int | None = None, model: Any = None,
          **overrides: Any) -> Any:
    torch.manual_seed(0)
    kwargs: dict[str, Any] = dict(
        output_dir=str(tmp_path / "out"), max_steps=MAX_STEPS, per_device_train_batch_size=8, learning_rate=0.05,
        warmup_steps=WARMUP, lr_scheduler_type="linear", logging_steps=1, report_to=[], disable_tqdm=True,
        save_strategy="no", use_cpu=True, seed=0, dataloader_num_workers=0, label_names=["y"],
    )
    kwargs.update(overrides)
    args = transformers.TrainingArguments(**kwargs)
    trainer = transformers.Trainer(model=model or Linear(nan_after), args=args, train_dataset=Regression(512),
                                   eval_dataset=Regression(32, seed=1), callbacks=[callback])
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # no log lines on stdout
    trainer.train()
    return trainer


def codes(findings: list[Finding], severity: Severity | None = None) -> set[str]:
    return {f.code for f in findings if severity is None or f.severity is severity}


def test_healthy_run_completes_and_its_warmup_matches_the_arguments(tmp_path: Path) -> None:
    callback = WarmcheckCallback()
    names = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    strategy = "eval_strategy" if "eval_strategy" in names else "evaluation_strategy"  # renamed in 4.41
    trainer = train(tmp_path, callback, **{strategy: "steps"}, eval_steps=20)  # eval logs are skipped
    assert trainer.state.global_step == MAX_STEPS
    assert callback.error is None and callback.stopped_by == []
    assert codes(callback.findings, Severity.ERROR) == set()
    # Steps are HF's 1-based global_step. HF >= 4.51 logs there the LR the update just taken used (0 at step 1,
    # the peak first at step WARMUP + 1), HF <= 4.50 the next update's (the peak first at step WARMUP): either
    # way WARMUP updates ran below the peak, as TrainingArguments say.
    assert callback.monitor is not None and callback.monitor.run.last is not None
    sched = callback.monitor.run.last.schedules[0]
    assert sched.warmup_steps == WARMUP
    consistent = [f for f in callback.findings if f.code == "WC202"]
    assert len(consistent) == 1 and "args/text_summary" in consistent[0].message
    lr = callback.monitor.run.last.get("lr")
    assert lr is not None and lr.steps.tolist() == list(range(1, MAX_STEPS + 1))  # one point per training log


@pytest.mark.parametrize(("nan_filter", "code"), [(True, "WC402"), (False, "WC401")])
def test_nan_loss_stops_training(tmp_path: Path, caplog: pytest.LogCaptureFixture, nan_filter: bool,
                                 code: str) -> None:
    callback = WarmcheckCallback()
    with caplog.at_level(logging.WARNING, logger="warmcheck"):
        trainer = train(tmp_path, callback, nan_after=20, logging_nan_inf_filter=nan_filter)
    # The 21st update's loss is NaN: the filter logs a stand-in loss and only grad_norm shows it (WC402).
    assert trainer.state.global_step == 21
    assert any(f.code == code and f.step == 21 for f in callback.stopped_by)
    assert any(r.levelno == logging.ERROR and code in r.getMessage() for r in caplog.records)
    assert any("stopping training at step 21" in r.getMessage() for r in caplog.records)
    assert callback.monitor is not None and callback.monitor.run.finished  # closed by on_train_end


def test_stop_on_nothing_never_stops(tmp_path: Path) -> None:
    callback = WarmcheckCallback(stop_on=())
    trainer = train(tmp_path, callback, nan_after=20)
    assert trainer.state.global_step == MAX_STEPS
    assert "WC402" in codes(callback.findings) and callback.stopped_by == []


def test_configured_warmup_mismatch_is_reported_and_stop_on_decides(tmp_path: Path) -> None:
    mismatch = Settings(warmup_steps=5)  # TrainingArguments say 10: the settings win, as a flag would
    default = WarmcheckCallback(mismatch)  # by default only NaN/Inf and divergence (WC4xx) stop training
    assert default.stop_on == ("WC4",)
    trainer = train(tmp_path, default)
    assert trainer.state.global_step == MAX_STEPS  # a WC2xx error is reported, it does not stop training
    wc201 = [f for f in default.findings if f.code == "WC201"]
    assert len(wc201) == 1 and wc201[0].severity is Severity.ERROR
    assert wc201[0].details["observed_warmup_steps"] == WARMUP
    assert default.stopped_by == []

    any_error = WarmcheckCallback(mismatch, stop_on=("WC",))  # any error stops, once the warmup is settled
    trainer = train(tmp_path, any_error)
    assert codes(any_error.stopped_by) == {"WC201"}
    assert WARMUP < trainer.state.global_step < MAX_STEPS


def test_a_long_spike_that_comes_back_is_a_spike_not_a_divergence(tmp_path: Path) -> None:
    # The loss x5 for 30 updates (31..60), then normal again: held for 20 points it looked like a divergence
    # to the live engine, which stopped this training at step 50 with WC403. It never comes back only if the
    # run ends first; live, a divergence waits for a NaN, a runaway or the end.
    first, last, steps = 31, 60, 90  # forward call k is update k, logged at 1-based global_step k
    callback = WarmcheckCallback(stop_on=("WC",))  # stop on any error: nothing here is one
    trainer = train(tmp_path, callback, model=Spiky(first, last, 5.0), max_steps=steps)
    assert trainer.state.global_step == steps and callback.stopped_by == []
    assert callback.monitor is not None and callback.monitor.run.last is not None
    finished = list(callback.monitor.run.last.findings)  # the analysis of the whole run, as of a finished log
    spikes = [f for f in finished if f.code == "WC301"]
    assert len(spikes) == 1 and spikes[0].step is not None and first <= spikes[0].step <= last
    assert "WC403" not in codes(finished)
    assert "WC403" not in codes(callback.findings) and spikes[0].step in {f.step for f in callback.findings}


def test_a_warmup_ratio_is_judged_against_max_steps(tmp_path: Path) -> None:
    # transformers 5 takes a float warmup_steps below 1 as a ratio (4.x: warmup_ratio): ceil(0.2 x 50) = 10.
    major = int(transformers.__version__.split(".")[0])
    ratio: dict[str, Any] = {"warmup_steps": 0.2} if major >= 5 else {"warmup_steps": 0, "warmup_ratio": 0.2}
    callback = WarmcheckCallback()
    train(tmp_path, callback, **ratio)
    assert codes(callback.findings, Severity.ERROR) == set()
    assert "WC202" in codes(callback.findings)


def test_a_failing_monitor_never_stops_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    def broken(self: Monitor, *args: Any, **kwargs: Any) -> list[Finding]:
        raise RuntimeError("boom")

    monkeypatch.setattr(Monitor, "log", broken)
    callback = WarmcheckCallback()
    with caplog.at_level(logging.ERROR, logger="warmcheck"):
        trainer = train(tmp_path, callback)
    assert trainer.state.global_step == MAX_STEPS
    assert isinstance(callback.error, RuntimeError)
    assert sum("no more analysis" in r.getMessage() for r in caplog.records) == 1


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        WarmcheckCallback(stop_on="WC4")
    with pytest.raises(ValueError):
        WarmcheckCallback(every=0)
    assert WarmcheckCallback().findings == []
