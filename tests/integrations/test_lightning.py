"""WarmcheckCallback in a real Lightning Trainer: tiny CPU runs, nothing downloaded."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")
try:
    import lightning.pytorch as pl
except ImportError:
    pl = pytest.importorskip("pytorch_lightning")

from warmcheck.config import Settings  # noqa: E402
from warmcheck.findings import Finding, Severity  # noqa: E402
from warmcheck.integrations import lightning as integration  # noqa: E402
from warmcheck.integrations.lightning import WarmcheckCallback  # noqa: E402

MAX_STEPS = 50
WARMUP = 10

# Lightning 2.6 with torch 2.13 warns about its own use of torch's pytree API.
pytestmark = pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated")


def module_class(framework: ModuleType) -> type:
    class Regression(framework.LightningModule):
        """A linear regression with a per-step LambdaLR warmup (LR = peak x k / WARMUP for update k < WARMUP,
        then linear decay); from update ``nan_from`` on the loss is NaN."""

        def __init__(self, warmup_steps: int = WARMUP, nan_from: int | None = None) -> None:
            super().__init__()
            self.save_hyperparameters()  # hparams, as hparams.yaml would hold them
            self.linear = torch.nn.Linear(4, 1)
            self.nan_from = nan_from
            self.losses: list[float] = []
            self.norms: list[float] = []

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y)
            if self.nan_from is not None and self.global_step >= self.nan_from:
                loss = loss * float("nan")
            self.losses.append(loss.item())
            return {"loss": loss}

        def on_before_optimizer_step(self, optimizer: Any) -> None:  # after the callbacks' hook, before clipping
            grads = [p.grad.detach().flatten() for p in self.parameters() if p.grad is not None]
            self.norms.append(float(torch.linalg.vector_norm(torch.cat(grads))))

        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.parameters(), lr=0.05)
            w = self.hparams.warmup_steps

            def factor(k: int) -> float:
                return k / w if k < w else max(0.0, (MAX_STEPS - k) / (MAX_STEPS - w))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return Regression


Regression = module_class(pl)


def loader(n: int = 512) -> Any:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def fit(tmp_path: Path, callback: Any, module: Any, framework: ModuleType = pl, **overrides: Any) -> Any:
    torch.manual_seed(0)
    kwargs: dict[str, Any] = dict(
        max_steps=MAX_STEPS, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", devices=1, default_root_dir=str(tmp_path),
        gradient_clip_val=1.0,  # the recorded norm is the one before clipping
    )
    kwargs.update(overrides)
    trainer = framework.Trainer(callbacks=[callback], **kwargs)
    trainer.fit(module, loader())
    return trainer


def codes(findings: list[Finding], severity: Severity | None = None) -> set[str]:
    return {f.code for f in findings if severity is None or f.severity is severity}


def recorded(callback: WarmcheckCallback, tag: str) -> tuple[list[int], list[float]]:
    assert callback.monitor is not None and callback.monitor.run.last is not None
    series = callback.monitor.run.last.get(tag)
    assert series is not None
    return series.steps.tolist(), series.values.tolist()


def test_healthy_run_its_warmup_and_what_is_recorded(tmp_path: Path) -> None:
    callback = WarmcheckCallback(Settings(warmup_steps=WARMUP))
    module = Regression()
    trainer = fit(tmp_path, callback, module)
    assert trainer.global_step == MAX_STEPS and not trainer.should_stop
    assert callback.error is None and callback.stopped_by == []
    assert codes(callback.findings, Severity.ERROR) == set()
    # 0-based global_step before the update, the LR that update uses (LearningRateMonitor's convention):
    # LR_used(k) = 0.05 k / WARMUP, so the peak is first used by update WARMUP = where warmup ended.
    steps, lrs = recorded(callback, "lr")
    assert steps == list(range(MAX_STEPS)) and lrs[:3] == pytest.approx([0.0, 0.005, 0.01])
    assert lrs[WARMUP] == pytest.approx(0.05) and lrs[WARMUP - 1] < 0.05
    assert callback.monitor is not None and callback.monitor.run.last is not None
    assert callback.monitor.run.last.schedules[0].warmup_steps == WARMUP
    assert "WC202" in codes(callback.findings)
    assert recorded(callback, "loss") == (list(range(MAX_STEPS)), pytest.approx(module.losses))
    steps, norms = recorded(callback, "grad_norm")
    assert norms == pytest.approx(module.norms, rel=1e-5) and max(norms) > 1.0  # before clipping to 1.0


def test_the_hparams_are_audited_like_hparams_yaml(tmp_path: Path) -> None:
    consistent = WarmcheckCallback()
    fit(tmp_path, consistent, Regression())
    wc202 = [f for f in consistent.findings if f.code == "WC202"]
    assert len(wc202) == 1 and "hparams warmup_steps" in wc202[0].message

    mismatch = WarmcheckCallback(Settings(warmup_steps=5))  # the settings win over hparams, as a flag would
    trainer = fit(tmp_path, mismatch, Regression())
    assert trainer.global_step == MAX_STEPS and mismatch.stopped_by == []  # by default a WC2xx error never stops
    assert [f.severity for f in mismatch.findings if f.code == "WC201"] == [Severity.ERROR]

    any_error = WarmcheckCallback(Settings(warmup_steps=5), stop_on=("WC",))
    trainer = fit(tmp_path, any_error, Regression())
    assert codes(any_error.stopped_by) == {"WC201"}  # stop_on=("WC",) stops on any error
    assert WARMUP < trainer.global_step < MAX_STEPS


def test_nan_loss_stops_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    callback = WarmcheckCallback(Settings(warmup_steps=WARMUP))  # the default stop_on: NaN/Inf, divergence
    with caplog.at_level(logging.WARNING, logger="warmcheck"):
        trainer = fit(tmp_path, callback, Regression(nan_from=20))
    assert trainer.global_step == 21  # update 20 (NaN) was made, then the loop stopped
    assert any(f.code == "WC401" and f.tag == "loss" and f.step == 20 for f in callback.stopped_by)
    assert any("stopping training at step 20" in r.getMessage() for r in caplog.records)
    assert callback.monitor is not None and callback.monitor.run.finished


def test_gradient_accumulation_gives_one_record_per_optimizer_step(tmp_path: Path) -> None:
    callback = WarmcheckCallback(Settings(warmup_steps=WARMUP))
    module = Regression()
    trainer = fit(tmp_path, callback, module, accumulate_grad_batches=2)
    assert trainer.global_step == MAX_STEPS and len(module.losses) == 2 * MAX_STEPS
    steps, losses = recorded(callback, "loss")
    assert steps == list(range(MAX_STEPS))
    means = [(a + b) / 2 for a, b in zip(module.losses[::2], module.losses[1::2], strict=True)]
    assert losses == pytest.approx(means, rel=1e-5)  # the window's mean, undoing Lightning's 1/accumulate
    assert recorded(callback, "lr")[0] == list(range(MAX_STEPS))
    assert recorded(callback, "grad_norm")[1] == pytest.approx(module.norms, rel=1e-5)
    assert callback.monitor is not None and callback.monitor.run.last is not None
    assert callback.monitor.run.last.schedules[0].warmup_steps == WARMUP  # counted in updates
    assert codes(callback.findings, Severity.ERROR) == set() and "WC202" in codes(callback.findings)


def test_grad_norm_off(tmp_path: Path) -> None:
    callback = WarmcheckCallback(grad_norm=False, name="no-norm")
    fit(tmp_path, callback, Regression(), max_steps=20)
    assert callback.monitor is not None and callback.monitor.run.last is not None
    assert callback.monitor.run.last.get("grad_norm") is None
    assert callback.monitor.run.name == "no-norm"


def test_standalone_pytorch_lightning_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With only ``pytorch_lightning`` importable, the callback subclasses its Callback and works there."""
    standalone = pytest.importorskip("pytorch_lightning")
    for name in [m for m in sys.modules if m == "lightning" or m.startswith("lightning.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lightning", None)  # `import lightning.pytorch` now raises ImportError
    path = integration.__file__
    assert path is not None
    spec = importlib.util.spec_from_file_location("warmcheck.integrations._standalone_lightning", path)
    assert spec is not None and spec.loader is not None
    fallback = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fallback)
    assert issubclass(fallback.WarmcheckCallback, standalone.Callback)
    callback = fallback.WarmcheckCallback(Settings(warmup_steps=WARMUP))
    trainer = fit(tmp_path, callback, module_class(standalone)(nan_from=20), framework=standalone)
    assert trainer.global_step == 21 and "WC401" in codes(callback.stopped_by)
