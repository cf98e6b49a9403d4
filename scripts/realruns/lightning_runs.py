"""Real Lightning runs for tests/data/realruns (lightning 2.x, CPU, seconds each).

    python scripts/realruns/lightning_runs.py [OUT_DIR] [CASE ...]

OUT_DIR defaults to tests/data/realruns; with no CASE every case is written. Each run logs with
CSVLogger (csv/version_0/) and TensorBoardLogger (tb/version_0/) through LearningRateMonitor and
self.log; hparams.yaml is the loggers' own. Nothing is edited afterwards: truth.json values are read
back from the files (csv, EventAccumulator, yaml) and checked against the closed-form schedule.
"""

from __future__ import annotations

import csv
import math
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tiny  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "realruns"


def _lit_module() -> type:
    import lightning.pytorch as pl
    import torch

    class LitTiny(pl.LightningModule):
        """TinyLM with AdamW and a per-step linear warmup lambda, stepped at the configured interval."""

        def __init__(self, lr: float, warmup_steps: int, interval: str):
            super().__init__()
            self.save_hyperparameters()
            self.model = tiny.TinyLM()

        def training_step(self, batch: dict[str, Any], batch_idx: int) -> Any:
            loss = self.model(**batch)["loss"]
            self.log("train_loss", loss, on_step=True, on_epoch=False)
            return loss

        def configure_optimizers(self) -> Any:
            opt = torch.optim.AdamW(self.parameters(), lr=self.hparams["lr"], weight_decay=0.0)
            w = self.hparams["warmup_steps"]
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / w))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": self.hparams["interval"]}}

    return LitTiny


def lightning_train(d: Path, *, seed: int, lr: float, warmup_steps: int, interval: str, n_train: int,
                    batch: int, epochs: int) -> None:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    if d.exists():
        shutil.rmtree(d)
    pl.seed_everything(seed, workers=True)
    tiny.seed_all(seed)
    data = tiny.corpus(200_000)
    train = tiny.WindowDataset(data[:180_000], n=n_train, seed=seed)
    loader = torch.utils.data.DataLoader(train, batch_size=batch, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    module = _lit_module()(lr=lr, warmup_steps=warmup_steps, interval=interval)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, log_every_n_steps=1, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, deterministic=True,
        logger=[CSVLogger(str(d), name="csv"), TensorBoardLogger(str(d), name="tb")],
        callbacks=[LearningRateMonitor(logging_interval="step")])
    trainer.fit(module, loader)


def read_csv_columns(path: Path) -> dict[str, list[tuple[int, float]]]:
    """{column: [(step, value)]} from a sparse Lightning metrics.csv (empty cells skipped)."""
    out: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if k != "step" and v != "":
                    out.setdefault(k, []).append((int(row["step"]), float(v)))
    return out


def read_tb(d: Path) -> tuple[str, dict[str, list[tuple[int, float]]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (path,) = sorted(d.glob("tb/version_0/events.out.tfevents.*"))
    ea = EventAccumulator(str(path), size_guidance={"scalars": 0})
    ea.Reload()
    return str(path.relative_to(d)), {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}


def lightning_per_epoch_warmup50(out: Path) -> None:
    import yaml

    case = "lightning_per_epoch_warmup50"
    d = out / case
    P, W, n, batch, epochs, seed = 2e-3, 50, 200, 8, 6, 0
    per_epoch = n // batch
    total = per_epoch * epochs
    lightning_train(d, seed=seed, lr=P, warmup_steps=W, interval="epoch", n_train=n, batch=batch, epochs=epochs)
    cols = read_csv_columns(d / "csv" / "version_0" / "metrics.csv")
    ev, tb = read_tb(d)
    lr, loss = cols["lr-AdamW"], cols["train_loss"]
    hp = yaml.safe_load((d / "csv" / "version_0" / "hparams.yaml").read_text())
    assert hp == yaml.safe_load((d / "tb" / "version_0" / "hparams.yaml").read_text())
    assert hp["warmup_steps"] == W and hp["interval"] == "epoch", hp

    def used(s: int) -> float:  # LR the update with 0-based index s used: the scheduler stepped once per epoch
        return P * min(1.0, (s // per_epoch + 1) / W)

    assert [s for s, _ in lr] == list(range(total)), [s for s, _ in lr][:5]
    for s, v in lr:
        assert math.isclose(v, used(s), rel_tol=1e-12), (s, v, used(s))
    for (s, a), (t, b) in zip(sorted(dict(tb["lr-AdamW"]).items()), lr, strict=True):
        assert s == t and math.isclose(a, b, rel_tol=1e-6)
    assert [s for s, _ in loss] == [s for s, _ in sorted(dict(tb["train_loss"]).items())]
    vals = [v for _, v in loss]
    assert all(math.isfinite(v) for v in vals) and vals[-1] < vals[0]
    levels = sorted({v for _, v in lr})
    plateaus = [[s for s, v in lr if v == lv] for lv in levels]
    assert all(len(p) == per_epoch for p in plateaus) and len(levels) == epochs
    assert max(levels) < P
    truth: dict[str, Any] = {
        "case": case,
        "note": f"Lightning, AdamW, LambdaLR linear warmup min(1,(s+1)/{W}) meant per optimizer step but configured "
                f"with interval='epoch' (stepped once per {per_epoch}-step epoch), {epochs} epochs = {total} steps: "
                f"an LR staircase of {per_epoch}-step plateaus, still rising at the end ({epochs}/{W} of the peak). "
                f"hparams.yaml says warmup_steps: {W}; that warmup never happened.",
        "writer": "lightning.pytorch.loggers.CSVLogger and TensorBoardLogger; LearningRateMonitor(logging_interval="
                  "'step'); self.log('train_loss', on_step=True)",
        "versions": tiny.versions("lightning", "torch", "tensorboard"),
        "files": {"csv": "csv/version_0/metrics.csv", "hparams_yaml": "csv/version_0/hparams.yaml",
                  "tfevents": [ev], "tb_hparams_yaml": "tb/version_0/hparams.yaml",
                  "one_training_run": ["csv/version_0/metrics.csv", ev],
                  "one_training_run_note": "CSVLogger and TensorBoardLogger of the same Trainer.fit: the same "
                                           "points (float64 in the csv, float32 in tfevents)"},
        "tags": {"lr": "lr-AdamW", "loss": "train_loss", "grad_norm": None, "epoch": "epoch"},
        "csv_layout": "metrics.csv: lr and loss on separate rows with the same step (sparse columns)",
        "step_indexing": "0-based: LearningRateMonitor logs at on_train_batch_start with step = batches already "
                         "stepped, so the LR at step s is the LR used by update s+1 (0-based index s).",
        "total_optimizer_steps": total,
        "steps_per_epoch": per_epoch,
        "epochs": epochs,
        "logged_steps": {"first": lr[0][0], "last": lr[-1][0], "count": len(lr), "every": 1},
        "schedule": {
            "family": "staircase_linear_warmup (per-epoch stepping of a per-step warmup)",
            "peak_lr": P,
            "lambda": f"LR(step s) = P*min(1,(e+1)/{W}), e = s // {per_epoch} (epoch index; the scheduler steps "
                      "once per epoch)",
            "interval": "epoch",
            "plateau_steps": per_epoch,
            "plateaus": [{"first_step": p[0], "last_step": p[-1], "lr": lv, "fraction_of_peak": f"{i + 1}/{W}"}
                         for i, (p, lv) in enumerate(zip(plateaus, levels, strict=True))],
            "lr_at_last_logged_step": lr[-1][1],
            "still_rising_at_end": True,
        },
        "configured_warmup": {"warmup_steps": W, "where": "hparams.yaml (save_hyperparameters): warmup_steps: 50, "
                              "interval: epoch", "rounding": "integer; the lambda counts scheduler steps"},
        "hparams_yaml": hp,
        "observed_warmup": {
            "lr_first_reaches_peak_at_logged_step": None,
            "true_peak_update": None,
            "max_logged_lr_step": plateaus[-1][0],
            "max_logged_lr": levels[-1],
            "peak_reached": False,
            "note": f"the peak would be reached after {W - 1} scheduler steps = {W - 1} epochs "
                    f"({(W - 1) * per_epoch} optimizer steps); the run ended after {epochs} epochs",
        },
        "claim_checks": [
            {"claim": f"warmup_steps={W} (optimizer steps)", "verdict": "wrong: the scheduler was stepped per "
             f"epoch; after {total} steps the LR is {epochs}/{W} of the peak and still rising"},
            {"claim": f"warmup of {W} epochs", "verdict": f"what the configuration really does ({W - 1} scheduler "
             "steps to the peak, one per epoch)"},
        ],
        "expected_findings": {
            "divergence": None, "nonfinite_loss": False, "spike": None, "truncated": False, "resume_overlap": None,
            "healthy": True,
            "per_epoch_scheduler_stepping": True,
            "staircase_plateau_steps": per_epoch,
            "peak_never_reached": True,
            "configured_warmup_not_applied": True,
            "expected_codes": ["WC105 (staircase, plateau 25)", "WC102 (peak not reached / still rising)",
                               "a WC2xx warning or error: the configured warmup_steps=50 was not what happened"],
        },
    }
    tiny.write_truth(d, truth)


CASES: dict[str, Callable[[Path], None]] = {"lightning_per_epoch_warmup50": lightning_per_epoch_warmup50}


def main(argv: list[str]) -> None:
    if argv and argv[0] not in CASES:
        out, argv = Path(argv[0]), argv[1:]
    else:
        out = DEFAULT_OUT
    for name in argv or list(CASES):
        CASES[name](out)
        size = sum(p.stat().st_size for p in (out / name).rglob("*") if p.is_file())
        print(f"{name}: {size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
