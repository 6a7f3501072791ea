"""A finished run's folder (``OUT/NAME``): checked and read for ``pait report`` and ``pait landscape``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pait.errors import RunFolderError

if TYPE_CHECKING:
    import pandas as pd

RESULTS_FILE = "results.parquet"
CONFIG_FILE = "config.json"


def check_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` as a Path, when it is a folder holding a run's results table and config; else a RunFolderError."""
    path = Path(run_dir)
    if not path.exists():
        raise RunFolderError(f"run folder {path} does not exist")
    if not path.is_dir():
        raise RunFolderError(f"run folder {path} is a file, not a folder")
    missing = [name for name in (RESULTS_FILE, CONFIG_FILE) if not (path / name).is_file()]
    if missing:
        raise RunFolderError(f"{path} is not a pait run folder (no {' or '.join(missing)}); "
                             "give OUT/NAME of a run made by `pait run`")
    return path


def read_results(run_dir: str | Path) -> pd.DataFrame:
    """The run's results table."""
    import pandas as pd

    path = check_run_dir(run_dir) / RESULTS_FILE
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's errors on a damaged file are ValueErrors or OSErrors
        raise RunFolderError(f"{path} cannot be read ({str(err).splitlines()[0] if str(err) else err})") from None


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's config, as the plain data written to ``config.json``."""
    path = check_run_dir(run_dir) / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFolderError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} does not hold a run config")
    return data
