"""The project's error types: user-facing problems that `pait` reports in one line, without a traceback."""

from __future__ import annotations


class PaitError(Exception):
    """Base of errors caused by the user's input (config, names, files), not by a bug."""


class DataError(PaitError, ValueError):
    """A data problem: an unreadable image, a missing class folder, an empty task, an unknown class."""


class ConfigError(PaitError, ValueError):
    """A configuration that names an unknown key, name or option, or holds a value of the wrong type."""
