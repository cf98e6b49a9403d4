"""Real runs with an evaluation loss, and the tracker CSV exports of them (issue 11, items 3 and 4).

    python scripts/realruns/eval_runs.py tests/data/evalruns

Three tiny-model CPU trainings (``tiny.py``), each evaluated on held-out text every ``EVAL_EVERY`` steps:

* ``overfit_small_train``: trained on 2,000 characters only, so it memorises them: its eval loss
  reaches a minimum and then rises while the training loss keeps falling;
* ``control_full_train``: the same loop on 150,000 characters (no overfitting in 400 steps);
* ``diverge_eval_nan``: SGD with a linear warmup to LR 3.0 and no clipping: the training loss blows
  up and turns NaN, and the evaluations after it are NaN too.

Each run's own log is ``log.csv`` (written by the loop, one row per step, the eval column filled every
``EVAL_EVERY`` steps). The same runs are also logged with the real MLflow client (a SQLite store in a
temporary directory) and exported the way MLflow users export a metric history
(``MlflowClient.get_metric_history`` -> ``run_id,key,value,step,timestamp``): ``exports/mlflow_history.csv``
(both the overfit and the control run) and ``exports/mlflow_overfit.csv`` (one run, ``key,value,step,timestamp``).
``exports/wandb_panel.csv`` lays the same two runs out as a W&B panel CSV export does (``Step``,
``<run> - <metric>``, ``__MIN``/``__MAX``; the W&B app writes it, the library cannot, so the values
are the runs' logged values and MIN = MAX = value, as for an unbucketed chart).
``truth.json`` of each run holds what is computed here from ``log.csv`` as written.
"""

from __future__ import annotations

import csv
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny import TinyLM, batches, corpus, seed_all, versions, write_truth  # noqa: E402

STEPS = 400
EVAL_EVERY = 20
CASES = ("overfit_small_train", "control_full_train", "diverge_eval_nan")
WANDB_NAMES = {"overfit_small_train": "overfit-small-1", "control_full_train": "control-full-2"}


def _lr(case: str, step: int) -> float:
    if case == "diverge_eval_nan":
        return 3.0 * min(1.0, (step + 1) / 80)
    return 3e-3 * min(1.0, (step + 1) / 20)


@torch.no_grad()
def _evaluate(model: TinyLM, val: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    model.eval()
    losses = [float(model(x, y)["loss"]) for x, y in val]
    model.train()
    return float(np.mean(losses))


def train(case: str) -> dict[str, dict[int, float]]:
    """Run ``case``; the logged series as ``{tag: {step: value}}`` (0-based steps, LR used by that update)."""
    seed_all(0)
    text = corpus(200_000)
    train_data = text[:2_000] if case == "overfit_small_train" else text[:150_000]
    val_data = text[160_000:]
    val = [b for _, b in zip(range(8), batches(val_data, seed=123), strict=False)]
    model = TinyLM()
    if case == "diverge_eval_nan":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=_lr(case, 0), momentum=0.9)
        steps = 160
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=_lr(case, 0))
        steps = STEPS
    logged: dict[str, dict[int, float]] = {"train/loss": {}, "train/lr": {}, "eval/loss": {}}
    for step, (x, y) in zip(range(steps), batches(train_data, seed=1), strict=False):
        for g in opt.param_groups:
            g["lr"] = _lr(case, step)
        loss = model(x, y)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        logged["train/loss"][step] = float(loss.detach())
        logged["train/lr"][step] = _lr(case, step)
        if (step + 1) % EVAL_EVERY == 0:
            logged["eval/loss"][step] = _evaluate(model, val)
    return logged


def write_log(path: Path, logged: dict[str, dict[int, float]]) -> None:
    """``step,train/loss,train/lr,eval/loss``; the eval cell empty where no evaluation ran."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "train/loss", "train/lr", "eval/loss"])
        for s in sorted(logged["train/loss"]):
            ev = logged["eval/loss"].get(s)
            w.writerow([s, repr(logged["train/loss"][s]), repr(logged["train/lr"][s]), "" if ev is None else repr(ev)])


def read_log(path: Path) -> dict[str, dict[int, float]]:
    """The series of ``log.csv`` as written."""
    out: dict[str, dict[int, float]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            for k, v in row.items():
                if k != "step" and v != "":
                    out.setdefault(k, {})[int(row["step"])] = float(v)
    return out


def mlflow_export(runs: dict[str, dict[str, dict[int, float]]], out: Path, single: Path) -> None:
    """Log each run with the real MLflow client, then export every metric's history as MLflow returns it."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
        exp = client.create_experiment("evalruns")
        rows: list[list[Any]] = []
        t0 = 1_767_000_000_000
        for name, logged in runs.items():
            run = client.create_run(exp, run_name=name)
            metrics = [Metric(key, value, t0 + step * 250, step)
                       for key, series in logged.items() for step, value in sorted(series.items())]
            for i in range(0, len(metrics), 1000):
                client.log_batch(run.info.run_id, metrics=metrics[i:i + 1000])
            client.set_terminated(run.info.run_id)
            for key in logged:
                for m in client.get_metric_history(run.info.run_id, key):
                    rows.append([name, m.key, repr(m.value), m.step, m.timestamp])
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run_id", "key", "value", "step", "timestamp"])
        w.writerows(rows)
    first = next(iter(runs))
    with single.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "value", "step", "timestamp"])
        w.writerows(r[1:] for r in rows if r[0] == first)


def wandb_panel(runs: dict[str, dict[str, dict[int, float]]], out: Path) -> None:
    """A W&B panel CSV export of ``runs`` (every field quoted, as the W&B app writes it)."""
    header = ["Step"]
    cols: list[tuple[str, str]] = []
    for name in runs:
        for key in ("train/loss", "train/lr", "eval/loss"):
            cols.append((name, key))
            header += [f"{WANDB_NAMES[name]} - {key}", f"{WANDB_NAMES[name]} - {key}__MIN",
                       f"{WANDB_NAMES[name]} - {key}__MAX"]
    steps = sorted({s for logged in runs.values() for series in logged.values() for s in series})
    with out.open("w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(header)
        for s in steps:
            row = [str(s)]
            for name, key in cols:
                v = runs[name][key].get(s)
                row += [""] * 3 if v is None else [repr(v)] * 3
            w.writerow(row)


def truth(case: str, logged: dict[str, dict[int, float]]) -> dict[str, Any]:
    """What ``log.csv`` shows, computed from the file as written."""
    ev = logged["eval/loss"]
    finite = {s: v for s, v in ev.items() if math.isfinite(v)}
    best_step = min(finite, key=lambda s: (finite[s], s))
    loss = logged["train/loss"]
    bad_train = [s for s, v in sorted(loss.items()) if not math.isfinite(v)]
    bad_eval = [s for s, v in sorted(ev.items()) if not math.isfinite(v)]
    after = [s for s in sorted(finite) if s > best_step]
    return {
        "case": case, "generator": f"python scripts/realruns/eval_runs.py OUT_DIR {case}",
        "versions": versions("torch", "numpy", "mlflow"),
        "steps": len(loss), "eval_every": EVAL_EVERY, "eval_steps": sorted(ev),
        "best_eval": {"step": best_step, "value": finite[best_step]},
        "evals_after_best": len(after),
        "last_eval": {"step": max(ev), "value": ev[max(ev)]},
        "train_loss_first_nonfinite_step": bad_train[0] if bad_train else None,
        "eval_loss_first_nonfinite_step": bad_eval[0] if bad_eval else None,
        "eval_loss_nonfinite_count": len(bad_eval),
    }


def main(out_dir: str, cases: list[str]) -> None:
    root = Path(out_dir)
    logged_runs: dict[str, dict[str, dict[int, float]]] = {}
    for case in cases or list(CASES):
        log = root / case / "log.csv"
        write_log(log, train(case))
        logged = read_log(log)
        logged_runs[case] = logged
        t = truth(case, logged)
        write_truth(root / case, t)
        print(case, {k: t[k] for k in ("best_eval", "last_eval", "evals_after_best",
                                        "train_loss_first_nonfinite_step", "eval_loss_first_nonfinite_step")},
              file=sys.stderr)
    pair = {c: logged_runs[c] for c in ("overfit_small_train", "control_full_train") if c in logged_runs}
    if len(pair) == 2:
        mlflow_export(pair, root / "exports" / "mlflow_history.csv", root / "exports" / "mlflow_overfit.csv")
        wandb_panel(pair, root / "exports" / "wandb_panel.csv")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
