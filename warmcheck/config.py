"""Settings: the one frozen object the core sees (never click, environment or TOML)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from .model import Role


class FailOn(str, enum.Enum):
    """The lowest severity that makes ``analyze`` exit 1."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything an analysis run depends on, with the documented defaults."""

    fail_on: FailOn = FailOn.ERROR
    select: tuple[str, ...] = ("WC",)
    ignore: tuple[str, ...] = ()
    lr_tags: tuple[str, ...] = ()
    loss_tags: tuple[str, ...] = ()
    grad_norm_tags: tuple[str, ...] = ()

    def role_overrides(self) -> Mapping[Role, tuple[str, ...]]:
        """Explicit tag choices per role (exact names or globs), empty roles left to the rules."""
        pairs = ((Role.LR, self.lr_tags), (Role.LOSS, self.loss_tags), (Role.GRAD_NORM, self.grad_norm_tags))
        return {role: tags for role, tags in pairs if tags}

    def enabled(self, code: str) -> bool:
        """Whether ``code`` is reported: it matches a select prefix and no longer ignore prefix."""
        sel = max((len(p) for p in self.select if code.startswith(p)), default=-1)
        ign = max((len(p) for p in self.ignore if code.startswith(p)), default=-1)
        return sel >= 0 and sel > ign
