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
NEEDED_COLUMNS = ("encoder", "score", "sparsity", "source", "seed", "target", "is_source", "stage", "accuracy", "unit")
"""Columns of the results table that the report and the loss surfaces read (``recovery`` may be missing: sgd;
``mask`` too: plain masks)."""
ANOTHER_VERSION = "written by another version of pait? rerun `pait run` with the run's config to rewrite it"


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
        table = pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's errors on a damaged file are ValueErrors or OSErrors
        raise RunFolderError(f"{path} cannot be read ({str(err).splitlines()[0] if str(err) else err})") from None
    missing = [c for c in NEEDED_COLUMNS if c not in table.columns]
    if missing:
        raise RunFolderError(f"{path} has no column(s) {', '.join(missing)} ({ANOTHER_VERSION})")
    if table.empty:
        raise RunFolderError(f"{path} holds no rows: the run finished no unit")
    return with_mask_methods(table)


def with_mask_methods(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the score of each transplant unit (``mask`` = ``densities_from=S``) shown as
    ``<score>@S``, so that every table and figure keyed by score keeps it apart from the plain score's units;
    the ``mask`` column is kept (a table written before it existed holds plain masks only)."""
    if "mask" not in table or not (table["mask"] != "").any():
        return table
    prefix = "densities_from="
    transplant = table["mask"].str.startswith(prefix)
    return table.assign(score=table["score"].where(~transplant, table["score"] + "@" + table["mask"].str[len(prefix):]))


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's config, as the plain data written to ``config.json``."""
    data = read_json(check_run_dir(run_dir) / CONFIG_FILE, dict)
    if not isinstance(data, dict):
        raise RunFolderError(f"{run_dir} / {CONFIG_FILE} does not hold a run config")
    return data


def read_json(path: Path, kind: type, keys: tuple[str, ...] = ()) -> Any:
    """The JSON data of a run folder's file: of ``kind`` (dict or list; a list's items dicts holding ``keys``);
    a damaged file, or one of another shape (another version's), is a RunFolderError naming it."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFolderError(f"{path} is not valid JSON ({err})") from None
    items = data if isinstance(data, list) else []
    if not isinstance(data, kind) or any(not isinstance(i, dict) or set(keys) - set(i) for i in items):
        raise RunFolderError(f"{path} does not hold the {kind.__name__} of {', '.join(keys) or 'entries'} "
                             f"the report reads ({ANOTHER_VERSION})")
    return data
