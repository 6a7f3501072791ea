"""The emoji sets the ``emoji10`` suite draws from: where each style's image files lie, and reading one
emoji of one style as an RGBA image.

The sets are npm packages installed by ``make setup`` into ``.venv/emoji/node_modules`` (nothing is
fetched at run time); the suite's ``root`` option names another folder holding ``node_modules``.

* ``noto`` and ``twemoji``: the 64 px PNGs of ``emoji-datasource-google`` and ``emoji-datasource-twitter``
  (Apache-2.0 and CC-BY-4.0 images), read as they are.
* ``fluent-color`` and ``fluent-flat``: the ``modern`` and ``flat`` SVGs of ``fluentui-emoji`` (MIT),
  two renditions of one design (Microsoft Fluent), rasterised with ``resvg_py``. resvg is chosen over cairosvg because its wheel is self-contained (the
  Rust renderer linked in; no system cairo, no Python dependency) and it draws the SVG filters and
  gradients the Fluent ``modern`` drawings use, which cairosvg ignores.

Each style names its ``design`` (``noto``, ``twemoji``, ``fluent``): the style-disjoint protocol holds
out a whole design, so a twin style of the held-out one never calibrates.

OpenMoji (CC BY-SA 4.0) is left out: share-alike would bind every rendered image and figure made from it.
"""

from __future__ import annotations

import importlib.metadata as md
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pait.errors import DataError

SVG_SIZE = 160  # px of a rasterised SVG glyph (the PNG sets are 64 px); larger than any glyph is drawn at 128 px


@dataclass(frozen=True)
class EmojiStyle:
    """One style: an npm package, the path pattern of an emoji's file in it (``{image}`` or ``{fluent}``),
    and the design it renders (styles of one design are drawn by the same hands)."""

    name: str
    package: str
    pattern: str
    design: str

    def folder(self, node_modules: Path) -> Path:
        """The folder of this style's files: the style is installed when it exists."""
        return (node_modules / self.package / self.pattern).parent

    def file(self, node_modules: Path, image: str, fluent: str) -> Path:
        return node_modules / self.package / self.pattern.format(image=image, fluent=fluent)


STYLES = (
    EmojiStyle("noto", "emoji-datasource-google", "img/google/64/{image}.png", "noto"),
    EmojiStyle("twemoji", "emoji-datasource-twitter", "img/twitter/64/{image}.png", "twemoji"),
    EmojiStyle("fluent-color", "fluentui-emoji", "icons/modern/{fluent}.svg", "fluent"),
    EmojiStyle("fluent-flat", "fluentui-emoji", "icons/flat/{fluent}.svg", "fluent"),
)
PACKAGES = {"emoji-datasource-google": "16.0.0", "emoji-datasource-twitter": "16.0.0", "fluentui-emoji": "1.3.0"}


def default_root() -> Path:
    """The folder ``make setup`` installs the sets into: ``emoji`` inside the running virtualenv."""
    return Path(sys.prefix) / "emoji"


def node_modules(root: str | Path | None) -> Path:
    """``root/node_modules`` (``root`` defaults to :func:`default_root`)."""
    return (Path(root).expanduser() if root is not None else default_root()) / "node_modules"


def rasteriser_version() -> str:
    """The installed resvg_py version, or ``"none"``."""
    try:
        return md.version("resvg_py")
    except md.PackageNotFoundError:
        return "none"


def read_glyph(path: Path) -> Image.Image:
    """One emoji file as RGBA: a PNG as it is, an SVG rasterised at SVG_SIZE px square."""
    try:
        if path.suffix.lower() == ".svg":
            data = _rasterise(path)
        else:
            data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGBA")
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"cannot read emoji image {path}: {err}") from None


def _rasterise(path: Path) -> bytes:
    try:
        import resvg_py
    except ImportError:
        raise DataError(f"{path} is an SVG: rendering it needs resvg_py (pip install resvg-py==0.5.0)") from None
    return bytes(resvg_py.svg_to_bytes(svg_path=str(path), width=SVG_SIZE, height=SVG_SIZE, skip_system_fonts=True))
