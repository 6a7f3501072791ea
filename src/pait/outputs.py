"""Output folders checked before any work: a probe file is written and removed where the folder is (or
would be created), so a read-only folder, a full disk or a file in the way fails before anything is computed."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pait.errors import OutputError


def check_writable_folder(folder: str | Path, what: str = "output folder") -> Path:
    """``folder`` as a Path, when it (or its nearest existing ancestor, if it is still to be created) is a
    folder that takes a file; an OutputError naming it otherwise. Nothing is created."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == folder else f" ({existing} is a file)"
        raise OutputError(f"{what} {folder} cannot be a folder: an existing file is in the way{where}")
    probe = existing / f".pait-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as err:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        raise OutputError(f"{what} {folder} is not writable: {err.strerror or err}") from None
    return folder
