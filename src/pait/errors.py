"""The project's error types: user-facing problems that `pait` reports in one line, without a traceback.

``pait.cli.main`` catches ``PaitError`` (and nothing broader) and prints ``pait: error: <message>``, exit 2;
every message names the file, key or value at fault. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class PaitError(Exception):
    """Base of errors caused by the user's input (config, names, files), not by a bug."""


class DataError(PaitError, ValueError):
    """A data problem: an unreadable image, a missing class folder, an empty task, an unknown class."""


class ConfigError(PaitError, ValueError):
    """A configuration that names an unknown key, name or option, or holds a value of the wrong type."""


class UnknownNameError(ConfigError, KeyError):
    """An encoder, score or suite name that is not registered (also a KeyError, as registries raised before)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnsupportedLayerError(ConfigError):
    """A layer that structured pruning cannot cut or refit (the dependency graph, the loader or the refit
    cannot handle it)."""


class CheckpointError(PaitError, ValueError):
    """A checkpoint file that cannot be read safely, or whose keys do not fit the expected layout."""


class MissingWeightsError(CheckpointError):
    """An encoder that needs pretrained weights was asked for without a weights file."""


class OutputError(PaitError):
    """An output folder or file that cannot be written (read-only, full, a file where a folder is needed)."""


class RunFolderError(PaitError):
    """A folder given as a finished run (``pait report``, ``pait landscape``) that is missing or not a run."""
