"""The ``imagefolder`` suite: any folder of class folders, grouped into tasks.

Options: ``root`` (the folder of class folders) and either ``tasks`` (a mapping task name -> list of
class folder names, inline or as the path of a YAML file holding it) or ``classes_per_task`` (N
consecutive classes, in sorted folder-name order, per task; a remainder of fewer than N classes is
left out with a warning).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from pait.errors import DataError
from pait.typed import brief
from pait.yamlio import load_yaml
from pait.tasks.base import Task, suite_root
from pait.tasks.decode import FileImage, is_image_file

log = logging.getLogger(__name__)


def class_folder_task(name: str, root: Path, folders: Sequence[str], class_names: Sequence[str] | None = None) -> Task:
    """A task whose class ``i`` is every image file of ``root/folders[i]``, in file-name order."""
    sources, labels = [], []
    for label, folder in enumerate(folders):
        directory = root / folder
        if not directory.is_dir():
            raise DataError(f"task {name!r}: class folder {directory} does not exist")
        files = sorted(p for p in directory.iterdir() if is_image_file(p))
        if not files:
            raise DataError(f"task {name!r}: class folder {directory} holds no image")
        sources += [FileImage(p) for p in files]
        labels += [label] * len(files)
    return Task(name, tuple(class_names or folders), sources, np.array(labels, dtype=np.int64))


TaskMap = Mapping[str | int, Sequence[str | int]]  # task name -> class folder names (numbers name folders too)


def _task_map(tasks: TaskMap | str | Path) -> dict[str, list[str]]:
    if isinstance(tasks, (str, Path)):
        try:
            text = Path(tasks).read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"cannot read the task list {tasks}: {getattr(err, 'strerror', None) or err}") from None
        tasks = load_yaml(text, f"task list {tasks}")
    if not isinstance(tasks, Mapping) or not tasks:
        raise DataError(f"the imagefolder task list must map task names to class folder lists, got {brief(tasks)}")
    out = {}
    for name, folders in tasks.items():
        if isinstance(folders, str) or not isinstance(folders, Sequence) or not folders:
            raise DataError(f"imagefolder task {brief(name)}: expected a non-empty list of class folders, got {brief(folders)}")
        out[str(name)] = [str(f) for f in folders]
    return out


def imagefolder_suite(
    root: str | Path | None = None,
    tasks: TaskMap | str | Path | None = None,
    classes_per_task: int | None = None,
) -> list[Task]:
    """Tasks from the class folders under ``root``, grouped by ``tasks`` or ``classes_per_task``."""
    root = suite_root("imagefolder", root, "/path/to/class/folders")
    if (tasks is None) == (classes_per_task is None):
        raise DataError("the imagefolder suite needs exactly one of the options tasks and classes_per_task")
    if tasks is not None:
        listed = (Path(tasks),) if isinstance(tasks, (str, Path)) else ()  # a task list file: an input too
        return [replace(class_folder_task(name, root, folders), inputs=listed)
                for name, folders in _task_map(tasks).items()]
    if not isinstance(classes_per_task, int) or classes_per_task < 1:
        raise DataError(f"classes_per_task must be a positive integer, got {classes_per_task!r}")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    count = len(folders) // classes_per_task
    if count == 0:
        raise DataError(f"imagefolder root {root} has {len(folders)} class folders, fewer than classes_per_task={classes_per_task}")
    if len(folders) % classes_per_task:
        log.warning("imagefolder: leaving out the last %d class folder(s), fewer than classes_per_task=%d",
                    len(folders) % classes_per_task, classes_per_task)
    groups = [folders[i * classes_per_task : (i + 1) * classes_per_task] for i in range(count)]
    return [class_folder_task(f"task{i + 1:02d}", root, group) for i, group in enumerate(groups)]
