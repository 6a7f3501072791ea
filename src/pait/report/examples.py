"""Example images of a suite whose images come in styles (emoji10): one row per style, a few classes of
every task as columns, so a reader of the report sees what the tasks are."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from pait.errors import PaitError
from pait.report.document import Block, Figure, Text
from pait.report.savefig import save_figure
from pait.report.suite_facts import suite_facts
from pait.tasks import Task

log = logging.getLogger(__name__)

TILE = 64  # px of one example


def example_grid(tasks: list[Task], classes_per_task: int = 2) -> tuple[np.ndarray, list[str], list[str]]:
    """(RGB image of the grid, style of each row, task/class of each column): the first rendering of the
    first ``classes_per_task`` classes of every task, in every style."""
    styles = tasks[0].style_names
    columns = [(task, c) for task in tasks for c in range(min(classes_per_task, task.num_classes))]
    grid = Image.new("RGB", (TILE * len(columns), TILE * len(styles)), "white")
    for j, (task, c) in enumerate(columns):
        for i, style in enumerate(styles):
            chosen = np.flatnonzero((task.labels == c) & (task.styles == task.style_names.index(style)))
            if len(chosen):
                grid.paste(task.sources[int(chosen[0])]().resize((TILE, TILE), Image.BICUBIC), (j * TILE, i * TILE))
    return np.asarray(grid), list(styles), [f"{task.name}: {task.class_names[c]}" for task, c in columns]


def plot_examples(tasks: list[Task], path: Path) -> Path:
    """The example grid with its rows and columns named."""
    image, rows, columns = example_grid(tasks)
    width, left, bottom = max(6.0, 0.45 * len(columns)), 1.0, 2.1  # inches; the margins hold the names
    height = (width - left - 0.1) * len(rows) / len(columns) + bottom + 0.1
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - 0.1 / width, bottom=bottom / height, top=1 - 0.1 / height)
    ax.imshow(image)
    ax.set_xticks((np.arange(len(columns)) + 0.5) * TILE, columns, rotation=90, fontsize=7)
    ax.set_yticks((np.arange(len(rows)) + 0.5) * TILE, rows, fontsize=8)
    ax.tick_params(length=0)
    return save_figure(fig, path)


def example_blocks(suite: dict, figures: Path) -> list[Block]:
    """A figure of example images when the run's suite loads here and its images have styles, else nothing.

    The figure is decorative: an image that cannot be rendered (a missing rasteriser, a damaged set file)
    leaves it out, with a logged warning and a sentence in the report, rather than failing the report."""
    tasks = suite_facts(suite).tasks
    if not tasks or any(t.styles is None for t in tasks):
        return []
    try:
        path = plot_examples(tasks, figures / "examples.png")
    except PaitError as err:
        log.warning("report: example images of suite %s left out: %s", suite["name"], err)
        return [Text(f"Example images of suite `{suite['name']}` are left out: they could not be rendered "
                      f"here ({err}).")]
    return [Figure(f"figures/{path.name}", f"Example images of suite `{suite['name']}`: one row per style, the first "
                   "two classes of each task; each class's images vary in background, size, position, rotation, "
                   "blur and JPEG quality.")]
