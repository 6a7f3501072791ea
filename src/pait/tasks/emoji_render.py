"""Seeded renderer of one emoji into one training image: a varied background (a colour gradient, smooth
colour noise, a few translucent shapes), the emoji scaled, rotated, maybe mirrored and placed, then
blur and JPEG noise. The same (glyph, seed, size) gives the same pixels on every run and machine.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RENDERER_VERSION = 1  # bump on any change to the drawing below: it is part of the data stage's key


@dataclass(frozen=True)
class RenderParams:
    """The ranges the renderer draws from (scale: the emoji's side as a fraction of the image's)."""

    scale: tuple[float, float] = (0.45, 0.8)
    rotation: float = 20.0  # degrees, either way
    max_shapes: int = 4
    blur: tuple[float, float] = (0.0, 1.2)  # Gaussian radius at 96 px, scaled with the size
    jpeg_quality: tuple[int, int] = (30, 90)

    def recipe(self, size: int) -> str:
        """The renderer's version and parameters, for stage keys."""
        return json.dumps({"renderer": RENDERER_VERSION, "size": size, **asdict(self)}, sort_keys=True)


def background(rng: np.random.Generator, size: int) -> Image.Image:
    """A linear gradient between two random colours at a random angle, plus smooth colour noise."""
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    axis = np.linspace(-0.5, 0.5, size)
    t = np.cos(angle) * axis[None, :] + np.sin(angle) * axis[:, None] + 0.5
    pixels = a + np.clip(t, 0, 1)[..., None] * (b - a)
    cells = int(rng.integers(2, 7))
    noise = Image.fromarray(rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    pixels = pixels * 0.7 + np.asarray(noise, dtype=np.float64) * 0.3
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def shapes(image: Image.Image, rng: np.random.Generator, count: int) -> None:
    """Draw ``count`` translucent ellipses and rectangles of random colours onto ``image``."""
    size = image.size[0]
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(count):
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        w, h = rng.uniform(0.1, 0.5, 2) * size
        fill = tuple(int(v) for v in rng.integers(0, 256, 3)) + (int(rng.integers(60, 200)),)
        box = (x0, y0, x0 + w, y0 + h)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    image.paste(Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB"))


def render(glyph: Image.Image, seed: int, size: int, params: RenderParams = RenderParams()) -> Image.Image:
    """One RGB image of ``size`` px showing the RGBA ``glyph``, every random choice drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    image = background(rng, size)
    shapes(image, rng, int(rng.integers(0, params.max_shapes + 1)))
    side = max(4, int(round(rng.uniform(*params.scale) * size)))
    emoji = glyph.resize((side, side), Image.LANCZOS)
    if rng.random() < 0.5:
        emoji = emoji.transpose(Image.FLIP_LEFT_RIGHT)
    emoji = emoji.rotate(rng.uniform(-params.rotation, params.rotation), resample=Image.BICUBIC, expand=True)
    free = np.maximum(size - np.array(emoji.size), 0)
    x, y = (rng.uniform(0, 1, 2) * free).astype(int)
    image.paste(emoji, (int(x), int(y)), emoji)
    radius = rng.uniform(*params.blur) * size / 96
    if radius > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=int(rng.integers(params.jpeg_quality[0], params.jpeg_quality[1] + 1)))
    with Image.open(out) as decoded:
        return decoded.convert("RGB")
