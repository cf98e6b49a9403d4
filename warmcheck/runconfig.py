"""What the run was configured to do: warmup, total steps, peak LR, from metadata and settings.

Sources, in increasing precedence: metadata found beside the run (HF ``args/text_summary``
TrainingArguments, ``trainer_state.json``, Lightning ``hparams.yaml``, a JSON/YAML config file in
the run directory), then ``[tool.warmcheck]`` in ``pyproject.toml``, then command-line flags (the
last two arrive merged in :class:`~warmcheck.config.Settings`). Every value remembers where it came
from, so findings can say so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import Settings
from .model import Format, Run

# Keys that mean the same thing across frameworks and users' own config files.
_WARMUP_STEPS = ("warmup_steps", "num_warmup_steps", "warmup_iters", "lr_warmup_steps", "warmup_updates",
                 "lr_warmup_iters", "warmup_num_steps", "warmup_t")
_WARMUP_RATIO = ("warmup_ratio", "warmup_fraction", "lr_warmup_fraction", "pct_start", "warmup_pct")
_TOTAL = ("max_steps", "total_steps", "num_training_steps", "max_iters", "train_iters", "total_num_steps",
          "lr_decay_iters")
_EPOCHS = ("num_train_epochs", "max_epochs", "epochs", "n_epochs")
_PER_EPOCH = ("steps_per_epoch", "updates_per_epoch")
_ACCUM = ("gradient_accumulation_steps", "accumulate_grad_batches", "grad_accum", "grad_accum_steps")
_PEAK = ("learning_rate", "lr", "max_lr", "peak_lr", "base_lr", "warmup_max_lr")


@dataclass(frozen=True, slots=True)
class Value:
    """A configured value and where it came from (``"--warmup-steps"``, ``"hparams.yaml"``, ...)."""

    value: float
    source: str


@dataclass
class Configured:
    """The configuration relevant to the warmup audit; ``None`` where nothing says."""

    warmup_steps: Value | None = None
    warmup_ratio: Value | None = None
    total_steps: Value | None = None
    epochs: Value | None = None
    steps_per_epoch: Value | None = None
    grad_accum: Value | None = None
    peak_lr: Value | None = None
    framework: str = "unknown"  # hf | lightning | deepspeed | unknown
    scheduler: str | None = None  # HF lr_scheduler_type
    onecycle: bool = False  # the ratio is OneCycleLR's pct_start (peak at pct*T - 1)
    notes: list[str] = field(default_factory=list)
    # Warmup settings a later source overrode: ("warmup_steps" | "warmup_ratio", value, overridden by).
    # The audit may name one as the explanation of a mismatch; it never counts as the configuration.
    shadowed: list[tuple[str, Value, str]] = field(default_factory=list)

    @property
    def any_warmup(self) -> bool:
        """Whether a warmup length or ratio was configured anywhere."""
        return self.warmup_steps is not None or self.warmup_ratio is not None


def hf_arguments(run: Run) -> dict[str, Any]:
    """The TrainingArguments JSON the HF TensorBoard callback writes as ``args/text_summary``."""
    text = run.metadata.get("text", {}).get("args/text_summary")
    if not isinstance(text, str):
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def configured(run: Run, settings: Settings) -> Configured:
    """Merge every source of configuration for ``run`` (later sources win)."""
    cfg = Configured()
    state = run.metadata.get("trainer_state")
    args = hf_arguments(run)
    if isinstance(state, Mapping) or args or any(s.format is Format.HF_TRAINER_STATE for s in run.sources):
        cfg.framework = "hf"
    if any(t.startswith("lr-") for t in (s.tag for s in run.series)):
        cfg.framework = "lightning" if cfg.framework == "unknown" else cfg.framework
    if any(s.tag.lower().startswith("train/samples/") for s in run.series):
        cfg.framework = "deepspeed"
    if args:
        cfg.scheduler = str(args.get("lr_scheduler_type") or "") or None
    for source, doc in _layers(run, args):
        _apply(cfg, doc, source)
    _apply_settings(cfg, settings)
    return cfg


def _layers(run: Run, args: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The run's own configuration documents, flattened, in increasing precedence (``args``: its
    :func:`hf_arguments`, parsed once by the caller)."""
    layers: list[tuple[str, Mapping[str, Any]]] = []
    state = run.metadata.get("trainer_state")
    # A tracker's record of the run's configuration (W&B config, MLflow params): {source name: mapping}.
    tracked = run.metadata.get("tracker_params")
    if isinstance(tracked, Mapping):
        for name, doc in sorted(tracked.items()):
            if isinstance(doc, Mapping):
                layers.append((str(name), _flatten(doc)))
    if args:
        layers.append(("args/text_summary", _hf_normalised(args)))
    if isinstance(state, Mapping):
        layers.append(("trainer_state.json", {k: state.get(k) for k in ("max_steps", "num_train_epochs")}))
    for name, doc in sorted(run.metadata.get("config_files", {}).items()):
        if isinstance(doc, Mapping):
            layers.append((name.rsplit("/", 1)[-1], _flatten(doc)))
    return layers


# Keys that name where a run writes or who ran it, not how it trains: never a sweep dimension.
_NOT_HYPERPARAMETERS = ("dir", "path", "name", "hub_", "token", "report_to", "logging_", "save_", "push_to",
                        "eval_steps", "_time", "date", "timestamp", "version", "run_id", "_ratio_key")


def parameters(run: Run) -> dict[str, Any]:
    """The run's configuration as flat scalar values (numbers, strings, booleans), later sources
    winning, for grouping runs of a sweep; keys that only say where output goes are left out."""
    out: dict[str, Any] = {}
    args = hf_arguments(run)
    for _, doc in _layers(run, args):
        for key, value in doc.items():
            if isinstance(value, Mapping) or isinstance(value, (list, tuple)) or value is None:
                continue
            low = key.lower()
            if any(part in low for part in _NOT_HYPERPARAMETERS):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                value = str(value)
            if isinstance(value, (bool, int, float, str)) and len(str(value)) <= 200:
                out[key] = value
    # HF's warmup_steps=0 (no warmup) is normalised away for the audit; here it is a value.
    if args.get("warmup_steps") == 0 and not args.get("warmup_ratio") and "warmup_steps" not in out:
        out["warmup_steps"] = 0
    return out


def _hf_normalised(args: Mapping[str, Any]) -> dict[str, Any]:
    """HF v5: a float ``warmup_steps`` below 1 is a ratio; v4: ``warmup_steps > 0`` wins over the ratio."""
    out = dict(args)
    steps = out.get("warmup_steps")
    if isinstance(steps, float) and 0 < steps < 1:
        out["warmup_ratio"], out["warmup_steps"] = steps, None
        out["_ratio_key"] = "warmup_steps"  # named as the user wrote it
    elif isinstance(steps, (int, float)) and steps > 0:
        out["warmup_ratio"] = None
    elif steps == 0:
        out["warmup_steps"] = None
    if isinstance(out.get("warmup_ratio"), (int, float)) and not out["warmup_ratio"]:
        out["warmup_ratio"] = None
    if isinstance(out.get("max_steps"), (int, float)) and out["max_steps"] <= 0:
        out["max_steps"] = None
    return out


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        out.setdefault(str(k), v)  # nested keys are also found by their own name
    return out


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)) and math.isfinite(float(v)):
        return float(v)
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _apply(cfg: Configured, doc: Mapping[str, Any], source: str) -> None:
    def first(keys: tuple[str, ...]) -> tuple[str, float] | None:
        for k in keys:
            n = _number(doc.get(k))
            if n is not None:
                return k, n
        return None

    if (hit := first(_WARMUP_STEPS)) is not None and hit[1] >= 1:
        _shadow(cfg, f"{source} {hit[0]}")
        cfg.warmup_steps, cfg.warmup_ratio = Value(hit[1], f"{source} {hit[0]}"), None
    elif (hit := first(_WARMUP_RATIO)) is not None and 0 < hit[1] < 1:
        name = f"{source} {doc.get('_ratio_key') or hit[0]}"
        _shadow(cfg, name)
        cfg.warmup_ratio, cfg.warmup_steps = Value(hit[1], name), None
        cfg.onecycle = hit[0] == "pct_start"
    if (hit := first(_TOTAL)) is not None and hit[1] >= 1:
        cfg.total_steps = Value(hit[1], f"{source} {hit[0]}")
    if (hit := first(_EPOCHS)) is not None and hit[1] > 0:
        cfg.epochs = Value(hit[1], f"{source} {hit[0]}")
    if (hit := first(_PER_EPOCH)) is not None and hit[1] >= 1:
        cfg.steps_per_epoch = Value(hit[1], f"{source} {hit[0]}")
    if (hit := first(_ACCUM)) is not None and hit[1] >= 1:
        cfg.grad_accum = Value(hit[1], f"{source} {hit[0]}")
    if (hit := first(_PEAK)) is not None and hit[1] > 0:
        cfg.peak_lr = Value(hit[1], f"{source} {hit[0]}")


def _apply_settings(cfg: Configured, s: Settings) -> None:
    """Settings on top of the run's own configuration; labelled by where they came from (a flag, the
    config file, the environment, or ``Settings(...)`` built in code, as the in-process monitor's are)."""
    src = s.sources
    # Both given (the founding story: the code computes int(0.2 x total), the text says 20): the step
    # count is the claim under test, as in HF v4 where warmup_steps > 0 wins over warmup_ratio; the ratio
    # stays an explanation ("observed 27 = int(0.2 x 135); configured 20 disagrees").
    if s.warmup_ratio is not None:
        ratio_src = src.get("warmup_ratio", "Settings.warmup_ratio")
        _shadow(cfg, ratio_src)
        cfg.warmup_ratio = Value(s.warmup_ratio, ratio_src)
        cfg.warmup_steps = None
        cfg.onecycle = False
    if s.warmup_steps is not None:
        steps_src = src.get("warmup_steps", "Settings.warmup_steps")
        _shadow(cfg, steps_src)
        cfg.warmup_steps = Value(s.warmup_steps, steps_src)
        cfg.warmup_ratio = None
    for name in ("total_steps", "epochs", "steps_per_epoch", "grad_accum", "peak_lr"):
        v = getattr(s, name)
        if v is not None:
            setattr(cfg, name, Value(float(v), src.get(name, "Settings." + name)))


def _shadow(cfg: Configured, by: str) -> None:
    """Remember the warmup setting about to be overridden by ``by`` (an explanation candidate, no more)."""
    for name in ("warmup_steps", "warmup_ratio"):
        old = getattr(cfg, name)
        if old is not None:
            cfg.shadowed.append((name, old, by))
