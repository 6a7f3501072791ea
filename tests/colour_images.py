"""A tiny practitioner image folder: three classes of noisy colour squares, 8 PNGs each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_colour_folder(root: Path, size: int) -> Path:
    """``root/class{0,1,2}/{0..7}.png``: red, green, blue squares of ``size`` pixels with seeded noise."""
    rng = np.random.default_rng(0)
    for c, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        (root / f"class{c}").mkdir()
        for i in range(8):
            pixels = np.clip(rng.normal(colour, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root
