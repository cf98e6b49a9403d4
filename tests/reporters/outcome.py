"""One shared outcome every reporter renders (golden files in tests/golden/reporters/)."""

from __future__ import annotations

import numpy as np
import schedules as sch

from warmcheck.config import Settings
from warmcheck.findings import make
from warmcheck.model import Format, Role, Run, Series, SourceInfo
from warmcheck.pipeline import Outcome
from warmcheck.schedule import infer_schedule


def shared_outcome() -> Outcome:
    """Each severity, a run without findings, a WC0xx data finding, a finding without a step, a tree finding."""
    lr = sch.book_appendix_d()
    steps = np.arange(135, dtype=np.int64)
    lr_series = Series("train/lr", steps, lr.astype(np.float32).astype(float), np.zeros(135), Role.LR)
    loss = Series("train/loss", steps, np.linspace(10.9, 4.1, 135), np.zeros(135), Role.LOSS)
    sched = infer_schedule(lr_series)
    assert sched is not None
    src = "runs/book/events.out.tfevents.1700000000.node1.102.0"
    book_findings = (
        make("WC003", "truncated final record at offset 12345 (29 trailing bytes); file may still be being "
             "written or the writer crashed", run="runs/book", source=src,
             details={"offset": 12345, "bytes_skipped": 29, "kind": "truncated"}),
        make("WC019", "no grad-norm series recognised, and a comma, pipe | and 100% here", run="runs/book",
             source=src),
        make("WC109", "the first 2 updates ran at LR 0 (steps 0..1)", run="runs/book", tag="train/lr", step=0,
             source=src, details={"updates": 2}),
        make("WC201", "warmup ends at step 27 (27 updates below peak = int(0.2 x 135)); configured "
             "warmup_steps=20 (--warmup-steps) disagrees", run="runs/book", tag="train/lr", step=27, source=src,
             details={"observed_warmup_steps": 27, "explanation": "int(0.2 x 135)"}),
        make("WC301", "loss spike at step 60: 9.1 at step 61 is 2.10x the expected 4.33; recovered at step 66",
             run="runs/book", tag="train/loss", step=60, step_end=65, source=src,
             details={"ratio": 2.1, "threshold_min_ratio": 1.3}),
    )
    book = Run("runs/book", "runs/book", (SourceInfo(src, Format.TFEVENTS, 271, 1),), (loss, lr_series),
               findings=book_findings, roles={Role.LR: ("train/lr",), Role.LOSS: ("train/loss",)},
               schedules=(sched,))
    clean = Run("runs/clean.csv", "runs/clean.csv", (SourceInfo("runs/clean.csv", Format.CSV, 135, 0),),
                (Series("loss", steps, np.linspace(3, 1, 135), np.full(135, np.nan), Role.LOSS),),
                roles={Role.LOSS: ("loss",)})
    tree = (make("WC005", "dangling symlink runs/old -> /gone: skipped", run="", source="runs/old"),)
    return Outcome((book, clean), tree, Settings())
