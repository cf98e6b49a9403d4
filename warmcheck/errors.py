"""Expected whole-invocation failures. Only ``cli.py`` turns them into messages and exit code 2."""

from __future__ import annotations


class WarmcheckError(Exception):
    """Base class: the invocation as a whole could not be analysed."""


class ConfigError(WarmcheckError):
    """A configuration file, environment variable or flag has an unknown key or a bad value."""


class PathError(WarmcheckError):
    """A path given on the command line does not exist."""


class NoRunsError(WarmcheckError):
    """No training log was found under the paths given."""
