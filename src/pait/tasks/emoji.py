"""The ``emoji10`` suite: colour, object-centric renditions of ImageNet-10-like classes, drawn from several
independently designed emoji sets (styles), each emoji rendered on seeded, varied backgrounds.

Ten tasks of ten classes, grouped as ImageNet-10 groups its classes (``pait/data/emoji10.json``: each
class's emoji, its nearest ImageNet-1k class index, each task's ``domain``). Every class has
``per_style`` images in every installed style (see ``emoji_sets``); images are rendered when decoded,
from a seed fixed by (task, class, style, image number), so the same options give the same pixels.
Each task carries its images' styles and the styles' designs, for the ``style-disjoint`` protocol.

Options: ``root`` (a folder holding ``node_modules`` with the sets; default the virtualenv's ``emoji``
folder that ``make setup`` fills), ``size`` (rendered image side in px), ``per_style`` (images per class
and style), ``styles`` and ``tasks`` (subsets by name).
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

from pait.errors import DataError
from pait.tasks.base import Task
from pait.tasks.emoji_render import RenderParams, render
from pait.tasks.emoji_sets import STYLES, EmojiStyle, node_modules, rasteriser_version, read_glyph

log = logging.getLogger(__name__)

DEFINITION = "data/emoji10.json"
NUM_IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class EmojiClass:
    """One class: its name, its file stems in the PNG sets (``image``) and in Fluent (``fluent``), and the
    index of its nearest ImageNet-1k class (None where there is none)."""

    name: str
    image: str
    fluent: str
    imagenet: int | None


@dataclass(frozen=True)
class EmojiTask:
    name: str
    domain: str
    classes: tuple[EmojiClass, ...]


def definition_file() -> Path:
    return Path(str(resources.files("pait").joinpath(DEFINITION)))


def emoji10_definition() -> list[EmojiTask]:
    """The ten tasks of the package data, checked (ImageNet indices in range and not repeated)."""
    data = json.loads(definition_file().read_text())
    tasks, seen = [], {}
    for entry in data["tasks"]:
        name = entry["theme"].replace(" ", "-")
        classes = tuple(EmojiClass(str(c["name"]), str(c["image"]), str(c["fluent"]),
                                   None if c["imagenet"] is None else int(c["imagenet"])) for c in entry["classes"])
        for c in classes:
            if c.imagenet is None:
                continue
            if not 0 <= c.imagenet < NUM_IMAGENET_CLASSES or c.imagenet in seen:
                raise DataError(f"{DEFINITION}: class {c.name!r} has ImageNet index {c.imagenet}, out of range or "
                                f"also given to {seen.get(c.imagenet)!r}")
            seen[c.imagenet] = c.name
        tasks.append(EmojiTask(name, str(entry["domain"]), classes))
    return tasks


class Glyphs:
    """Emoji files read (and SVGs rasterised) once each, shared by the decoding threads."""

    def __init__(self) -> None:
        self._images: dict[Path, Image.Image] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {}  # a copy in another process reads the files again (a lock does not pickle)

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def get(self, path: Path) -> Image.Image:
        with self._lock:
            image = self._images.get(path)
        if image is None:
            image = read_glyph(path)
            with self._lock:
                image = self._images.setdefault(path, image)
        return image


@dataclass(frozen=True)
class EmojiImage:
    """An image source: the emoji file ``path`` rendered with ``seed`` at ``size`` px."""

    path: Path
    seed: int
    size: int
    glyphs: Glyphs = field(compare=False, repr=False)
    params: RenderParams = RenderParams()

    def __call__(self) -> Image.Image:
        return render(self.glyphs.get(self.path), self.seed, self.size, self.params)


def image_seed(task: str, class_name: str, style: str, k: int) -> int:
    """The renderer's seed of image ``k`` of a class in a style: the same whichever other styles exist."""
    return zlib.crc32(f"{task}/{class_name}/{style}/{k}".encode())


def present_styles(modules: Path, names: list[str] | None) -> list[EmojiStyle]:
    """The styles whose package is installed under ``modules`` (among ``names``, if given)."""
    known = {s.name: s for s in STYLES}
    if names is not None:
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise DataError(f"emoji10: unknown style(s) {', '.join(unknown) or '(none given)'}; "
                            f"styles: {', '.join(known)}")
    wanted = [known[n] for n in names] if names is not None else list(STYLES)
    found = [s for s in wanted if s.folder(modules).is_dir()]
    if not found:
        packages = ", ".join(sorted({s.package for s in wanted}))
        raise DataError(f"emoji10: no emoji set found under {modules} (npm packages {packages}); run `make setup` "
                        "or give suite.options.root=/folder/holding/node_modules")
    missing = [s.name for s in wanted if s not in found]
    if missing:
        log.warning("emoji10: style(s) %s not installed under %s; using %s", ", ".join(missing), modules,
                    ", ".join(s.name for s in found))
    else:
        log.info("emoji10: styles %s", ", ".join(s.name for s in found))
    return found


def emoji10_suite(
    root: str | Path | None = None,
    size: int = 128,
    per_style: int = 100,
    styles: list[str] | None = None,
    tasks: list[str] | None = None,
) -> list[Task]:
    """The emoji10 tasks (see the module docstring); a DataError when no emoji set is installed."""
    if not 16 <= int(size) <= 1024 or int(per_style) < 1:
        raise DataError(f"emoji10: size must lie in [16, 1024] and per_style be at least 1, got {size}, {per_style}")
    definition = emoji10_definition()
    if tasks is not None:
        known = [t.name for t in definition]
        unknown = [t for t in tasks if t not in known]
        if unknown or not tasks:
            raise DataError(f"emoji10: unknown task(s) {', '.join(unknown) or '(none given)'}; tasks: {', '.join(known)}")
        definition = [t for t in definition if t.name in tasks]
    modules = node_modules(root)
    found = present_styles(modules, styles)
    params = RenderParams()
    recipe = json.dumps({"render": params.recipe(int(size)), "pillow": PIL.__version__,
                         "resvg_py": rasteriser_version()}, sort_keys=True)
    glyphs = Glyphs()
    return [_task(t, found, modules, int(size), int(per_style), params, recipe, glyphs) for t in definition]


def _task(task: EmojiTask, found: list[EmojiStyle], modules: Path, size: int, per_style: int,
          params: RenderParams, recipe: str, glyphs: Glyphs) -> Task:
    sources, labels, styles, files = [], [], [], [definition_file()]
    for c, cls in enumerate(task.classes):
        for s, style in enumerate(found):
            path = style.file(modules, cls.image, cls.fluent)
            if not path.is_file():
                log.warning("emoji10 task %s: no %s image of %s (%s)", task.name, style.name, cls.name, path)
                continue
            files.append(path)
            sources += [EmojiImage(path, image_seed(task.name, cls.name, style.name, k), size, glyphs, params)
                        for k in range(per_style)]
            labels += [c] * per_style
            styles += [s] * per_style
    return Task(task.name, tuple(c.name for c in task.classes), sources, np.asarray(labels, dtype=np.int64),
                inputs=tuple(files), recipe=recipe, styles=np.asarray(styles, dtype=np.int64),
                style_names=tuple(s.name for s in found), style_designs=tuple(s.design for s in found),
                domain=task.domain)
