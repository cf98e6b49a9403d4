"""Settings: the one frozen object the core sees (never click, environment or TOML), and the
``[tool.warmcheck]`` table that feeds it.

Precedence, lowest first: built-in defaults, the nearest ``pyproject.toml`` that has a
``[tool.warmcheck]`` table (or ``warmcheck.toml``) inside the project (see :mod:`.config_search`),
command-line flags. ``--config FILE`` replaces the search and ``--isolated`` skips it; which file was
used is kept in ``Settings.config``. Unknown keys and bad values are a :class:`ConfigError` naming the
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

from .config_search import ConfigOrigin, search_config
from .errors import ConfigError
from .model import Role

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True, slots=True)
class RunExpectation:
    """One ``[[tool.warmcheck.runs]]`` table: run-name globs and the settings they override."""

    match: tuple[str, ...]
    values: Mapping[str, Any]
    source: str


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
    max_file_size: int = 4 << 30  # a text log larger than this is WC025, not read (see readers/_textstream.py)
    max_decompressed_size: int = 16 << 30  # the same for the text of a .gz log
    # The cache of reads (warmcheck.cache): the command line turns it on, in cache_dir or the user cache dir.
    cache_dir: str | None = None
    no_cache: bool = False
    # Keyword arguments for the filesystems of URL PATHs (warmcheck.storage): endpoint, credentials, timeouts.
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    runs: tuple[RunExpectation, ...] = ()  # [[tool.warmcheck.runs]]: per-run expectations, by glob
    # Fields set by flags or the environment (per-run tables yield to them), sorted: the settings' repr
    # names the cache of analysed runs, and a set would print in the order of the process's hash seed.
    fixed: tuple[str, ...] = ()
    config: ConfigOrigin = ConfigOrigin()  # which configuration file these settings came from

    def for_run(self, name: str) -> Settings:
        """These settings with every ``[[tool.warmcheck.runs]]`` table whose ``match`` fits ``name``.

        Later tables win over earlier ones; flags and environment variables win over all of them.
        """
        import fnmatch
        from dataclasses import replace

        changes: dict[str, Any] = {}
        sources = dict(self.sources)
        for exp in self.runs:
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in exp.match):
                for key, value in exp.values.items():
                    other = ALTERNATIVES.get(key)
                    if key in self.fixed or (other is not None and other in self.fixed):
                        continue
                    changes[key] = value
                    sources[key] = f"{exp.source} {key.replace('_', '-')} (runs match {exp.match[0]!r})"
                    if other is not None:
                        changes[other] = None
                        sources.pop(other, None)
        return replace(self, **changes, sources=sources) if changes else self

    def role_overrides(self) -> Mapping[Role, tuple[str, ...]]:
        """Explicit tag choices per role (exact names or globs), empty roles left to the rules."""
        pairs = ((Role.LR, self.lr_tags), (Role.LOSS, self.loss_tags), (Role.GRAD_NORM, self.grad_norm_tags))
        return {role: tags for role, tags in pairs if tags}

    def enabled(self, code: str) -> bool:
        """Whether ``code`` is reported: it matches a select prefix and no longer ignore prefix."""
        sel = max((len(p) for p in self.select if code.startswith(p)), default=-1)
        ign = max((len(p) for p in self.ignore if code.startswith(p)), default=-1)
        return sel >= 0 and sel > ign


# Settings that say the same thing two ways: setting one at a higher level drops the other.
ALTERNATIVES = {"warmup_steps": "warmup_ratio", "warmup_ratio": "warmup_steps"}


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


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
               "t": 10**12, "tb": 10**12, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(v: Any) -> int:
    """A size in bytes: an integer, or text such as ``"4GiB"``, ``"500 MB"``, ``"1.5GiB"`` (>= 1 byte)."""
    if isinstance(v, bool):
        raise ValueError("a size such as 4GiB, 500MB or a number of bytes")
    if isinstance(v, int):
        size = v
    elif isinstance(v, str):
        text = v.strip().lower()
        number = text.rstrip("abgikmt ")
        unit = text[len(number):].strip()
        try:
            size = int(float(number) * _SIZE_UNITS[unit]) if number else 0
        except (ValueError, KeyError, OverflowError):
            raise ValueError("a size such as 4GiB, 500MB or a number of bytes") from None
    else:
        raise ValueError("a size such as 4GiB, 500MB or a number of bytes")
    if size < 1:
        raise ValueError("a size of at least 1 byte")
    return size


def _directory(v: Any) -> str:
    if not isinstance(v, str) or not v.strip() or "\0" in v:
        raise ValueError("a directory path")
    return v


def _storage_options(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError("a table of filesystem options (endpoint_url = ..., client_kwargs = {...})")
    from .storage import options_from
    return options_from(v)


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
    "max-file-size": ("max_file_size", parse_size),
    "max-decompressed-size": ("max_decompressed_size", parse_size),
    "cache-dir": ("cache_dir", _directory),
    "storage-options": ("storage_options", _storage_options),
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
    """The nearest ``warmcheck.toml``, or ``pyproject.toml`` with a ``[tool.warmcheck]`` table, upward
    from ``start`` but not beyond the first project root, ``$HOME`` or the filesystem (see
    :func:`.config_search.search_config`)."""
    return search_config(start)[0]


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
        if key == "runs":
            out["runs"] = _run_tables(value, where, path.name)
            continue
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


_PER_RUN = ("warmup-steps", "warmup-ratio", "total-steps", "epochs", "steps-per-epoch", "grad-accum", "peak-lr",
            "lr-tags", "loss-tags", "grad-norm-tags")


def _run_tables(value: Any, where: str, filename: str) -> tuple[RunExpectation, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"'runs' in {where} must be an array of tables ([[tool.warmcheck.runs]])")
    out = []
    for i, table in enumerate(value):
        if "match" not in table:
            raise ConfigError(f"runs[{i}] in {where} needs a 'match' glob (or list of globs) of run names")
        match = _checked(_strings, table["match"], f"runs[{i}].match", where)
        values = {}
        for key, v in table.items():
            if key == "match":
                continue
            if key not in _PER_RUN:
                raise ConfigError(f"unknown key runs[{i}].{key!r} in {where}; allowed: match, {', '.join(_PER_RUN)}")
            name, check = KEYS[key]
            values[name] = _checked(check, v, f"runs[{i}].{key}", where)
        out.append(RunExpectation(tuple(match), values, filename))
    return tuple(out)


def _checked(check: Callable[[Any], Any], value: Any, key: str, where: str) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise ConfigError(f"{key!r} in {where} must be {exc}; got {value!r}") from None


def settings_from(file_values: Mapping[str, Any], flag_values: Mapping[str, Any], config_path: Path | None,
                  env_values: Mapping[str, Any] | None = None, origin: ConfigOrigin | None = None) -> Settings:
    """Defaults < file < ``WARMCHECK_*`` environment < flags, in one place.

    ``flag_values`` and ``env_values`` hold only what the user set.
    """
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, value in file_values.items():
        merged[name] = value
        if name != "runs":
            sources[name] = f"{config_path.name if config_path else 'config'} {name.replace('_', '-')}"
    # A layer replaces the lower layers' warmup alternative (--warmup-ratio over a file's warmup-steps),
    # but both given in one layer are both kept: the step count is checked, the ratio explains.
    layers = (((env_values or {}), lambda n: "$WARMCHECK_" + n.upper()),
              (flag_values, lambda n: "--" + n.replace("_", "-")))
    for values, label in layers:
        for name in values:
            _drop_alternative(merged, sources, name)
        for name, value in values.items():
            if name == "storage_options":  # key by key over the lower layers' (a flag adds one option)
                from .storage import merged_options
                value = merged_options(merged.get(name, {}), value)
            merged[name] = value
            sources[name] = label(name)
    known = {f.name for f in fields(Settings)}
    unknown = set(merged) - known
    if unknown:  # pragma: no cover - guarded by KEYS
        raise ConfigError(f"unknown settings {sorted(unknown)}")
    fixed = tuple(sorted({*(env_values or {}), *flag_values}))
    return Settings(**merged, sources=sources, fixed=fixed, config=origin or ConfigOrigin())


def _drop_alternative(merged: dict[str, Any], sources: dict[str, str], name: str) -> None:
    other = ALTERNATIVES.get(name)
    if other is not None:
        merged.pop(other, None)
        sources.pop(other, None)


def load_settings(flag_values: Mapping[str, Any], config: str | None = None, isolated: bool = False,
                  start: str | os.PathLike[str] = ".", env: Mapping[str, Any] | None = None) -> Settings:
    """Find and read the config file (unless ``isolated``), then apply flags on top."""
    path: Path | None = None
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"{config}: configuration file not found")
        origin = ConfigOrigin(str(path.resolve()), "--config")
    elif isolated:
        origin = ConfigOrigin(None, "--isolated")
    else:
        path, origin = search_config(Path(start))
    file_values = read_table(path) if path is not None else {}
    return settings_from(file_values, flag_values, path, env, origin)
