"""Settings: the one frozen object the core sees (never click, environment or TOML), and the
``[tool.warmcheck]`` table that feeds it.

Precedence, lowest first: built-in defaults, the nearest ``pyproject.toml`` that has a
``[tool.warmcheck]`` table (or ``warmcheck.toml``), command-line flags. ``--config FILE`` replaces the
search and ``--isolated`` skips it. Unknown keys and bad values are a :class:`ConfigError` naming the
key, the file and what is allowed.
"""

from __future__ import annotations

import enum
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .model import Role

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class FailOn(str, enum.Enum):
    """The lowest severity that makes ``analyze`` exit 1."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything an analysis run depends on, with the documented defaults.

    ``sources`` records, for settings that did not come from a flag, where they came from (the
    config file), so findings can name it.
    """

    fail_on: FailOn = FailOn.ERROR
    select: tuple[str, ...] = ("WC",)
    ignore: tuple[str, ...] = ()
    lr_tags: tuple[str, ...] = ()
    loss_tags: tuple[str, ...] = ()
    grad_norm_tags: tuple[str, ...] = ()
    warmup_steps: int | None = None
    warmup_ratio: float | None = None
    total_steps: int | None = None
    epochs: float | None = None
    steps_per_epoch: int | None = None
    grad_accum: int | None = None
    peak_lr: float | None = None
    spike_detector: str = "warmcheck"
    spike_z: float = 4.0
    spike_min_ratio: float = 1.3
    spike_window: int = 20
    grad_spike_min_ratio: float = 2.0
    after_warmup_steps: int | None = None
    divergence_ratio: float = 3.0
    sources: Mapping[str, str] = field(default_factory=dict)

    def role_overrides(self) -> Mapping[Role, tuple[str, ...]]:
        """Explicit tag choices per role (exact names or globs), empty roles left to the rules."""
        pairs = ((Role.LR, self.lr_tags), (Role.LOSS, self.loss_tags), (Role.GRAD_NORM, self.grad_norm_tags))
        return {role: tags for role, tags in pairs if tags}

    def enabled(self, code: str) -> bool:
        """Whether ``code`` is reported: it matches a select prefix and no longer ignore prefix."""
        sel = max((len(p) for p in self.select if code.startswith(p)), default=-1)
        ign = max((len(p) for p in self.ignore if code.startswith(p)), default=-1)
        return sel >= 0 and sel > ign


def _positive_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError("an integer >= 1")
    return v


def _non_negative_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError("an integer >= 0")
    return v


def _ratio(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < float(v) < 1:
        raise ValueError("a number between 0 and 1 (exclusive)")
    return float(v)


def _positive(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)) or float(v) <= 0:
        raise ValueError("a number > 0")
    return float(v)


def _strings(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return tuple(v)
    raise ValueError("a string or a list of strings")


def _detector(v: Any) -> str:
    from .detectors import DETECTORS

    if v not in DETECTORS:
        raise ValueError("one of " + ", ".join(DETECTORS))
    return str(v)


def _ratio_above_one(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v) > 1:
        raise ValueError("a number > 1")
    return float(v)


def _window(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 8:
        raise ValueError("an integer >= 8")
    return v


def _fail_on(v: Any) -> FailOn:
    try:
        return FailOn(v)
    except ValueError:
        raise ValueError("one of " + ", ".join(f.value for f in FailOn)) from None


# key in [tool.warmcheck] (kebab-case) -> (Settings field, validator)
KEYS: Mapping[str, tuple[str, Callable[[Any], Any]]] = {
    "fail-on": ("fail_on", _fail_on),
    "select": ("select", _strings),
    "ignore": ("ignore", _strings),
    "lr-tags": ("lr_tags", _strings),
    "loss-tags": ("loss_tags", _strings),
    "grad-norm-tags": ("grad_norm_tags", _strings),
    "warmup-steps": ("warmup_steps", _non_negative_int),
    "warmup-ratio": ("warmup_ratio", _ratio),
    "total-steps": ("total_steps", _positive_int),
    "epochs": ("epochs", _positive),
    "steps-per-epoch": ("steps_per_epoch", _positive_int),
    "grad-accum": ("grad_accum", _positive_int),
    "peak-lr": ("peak_lr", _positive),
    "spike-detector": ("spike_detector", _detector),
}

# [tool.warmcheck.spikes] and [tool.warmcheck.divergence]: analyzer thresholds without flags.
TABLES: Mapping[str, Mapping[str, tuple[str, Callable[[Any], Any]]]] = {
    "spikes": {
        "detector": ("spike_detector", _detector),
        "z": ("spike_z", _positive),
        "min-ratio": ("spike_min_ratio", _ratio_above_one),
        "window": ("spike_window", _window),
        "grad-norm-min-ratio": ("grad_spike_min_ratio", _ratio_above_one),
        "after-warmup-steps": ("after_warmup_steps", _non_negative_int),
    },
    "divergence": {
        "ratio": ("divergence_ratio", _ratio_above_one),
    },
}


def find_config(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` with a ``[tool.warmcheck]`` table, or ``warmcheck.toml``, upward."""
    home = Path.home().resolve()
    for directory in (start.resolve(), *start.resolve().parents):
        candidate = directory / "warmcheck.toml"
        if candidate.is_file():
            return candidate
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and "warmcheck" in _load(candidate).get("tool", {}):
            return candidate
        if (directory / ".git").exists() or directory == home:
            break
    return None


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from None


def read_table(path: Path) -> dict[str, Any]:
    """The validated warmcheck table of ``path``, as Settings field names -> values."""
    doc = _load(path)
    table = doc if path.name == "warmcheck.toml" else doc.get("tool", {}).get("warmcheck", {})
    where = path.name if path.name == "warmcheck.toml" else f"[tool.warmcheck] in {path}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in TABLES and isinstance(value, dict):
            for sub, sub_value in value.items():
                if sub not in TABLES[key]:
                    raise ConfigError(f"unknown key {key}.{sub!r} in {where}; allowed: "
                                      f"{', '.join(sorted(TABLES[key]))}")
                name, check = TABLES[key][sub]
                out[name] = _checked(check, sub_value, f"{key}.{sub}", where)
            continue
        if key not in KEYS:
            allowed = sorted([*KEYS, *(f"[{t}]" for t in TABLES)])
            raise ConfigError(f"unknown key {key!r} in {where}; allowed: {', '.join(allowed)}")
        name, check = KEYS[key]
        out[name] = _checked(check, value, key, where)
    return out


def _checked(check: Callable[[Any], Any], value: Any, key: str, where: str) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise ConfigError(f"{key!r} in {where} must be {exc}; got {value!r}") from None


def settings_from(file_values: Mapping[str, Any], flag_values: Mapping[str, Any], config_path: Path | None,
                  env_values: Mapping[str, Any] | None = None) -> Settings:
    """Defaults < file < ``WARMCHECK_*`` environment < flags, in one place.

    ``flag_values`` and ``env_values`` hold only what the user set.
    """
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, value in file_values.items():
        merged[name] = value
        sources[name] = f"{config_path.name if config_path else 'config'} {name.replace('_', '-')}"
    for name, value in (env_values or {}).items():
        merged[name] = value
        sources[name] = "$WARMCHECK_" + name.upper()
    for name, value in flag_values.items():
        merged[name] = value
        sources.pop(name, None)
    known = {f.name for f in fields(Settings)}
    unknown = set(merged) - known
    if unknown:  # pragma: no cover - guarded by KEYS
        raise ConfigError(f"unknown settings {sorted(unknown)}")
    return Settings(**merged, sources=sources)


def load_settings(flag_values: Mapping[str, Any], config: str | None = None, isolated: bool = False,
                  start: str | os.PathLike[str] = ".", env: Mapping[str, Any] | None = None) -> Settings:
    """Find and read the config file (unless ``isolated``), then apply flags on top."""
    path: Path | None = None
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"{config}: configuration file not found")
    elif not isolated:
        path = find_config(Path(start))
    file_values = read_table(path) if path is not None else {}
    return settings_from(file_values, flag_values, path, env)
