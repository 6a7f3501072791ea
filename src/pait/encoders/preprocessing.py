"""Image preprocessing carried by each encoder, split in two so images decode once.

``pixels`` (PIL image -> uint8 tensor at the model's input size) runs once per image and is cached;
``normalize`` (uint8 batch -> float, mean/std) runs per batch on the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to input_size / crop_pct, centre-crop input_size, scale by mean/std."""

    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @property
    def resize_size(self) -> int:
        return int(math.floor(self.input_size / self.crop_pct))

    def pixels(self, image: Image.Image | Tensor) -> Tensor:
        """uint8 tensor (3, S, S): RGB, resized and centre-cropped; accepts PIL or uint8 CHW tensors."""
        if isinstance(image, Image.Image):
            image = F.pil_to_tensor(image.convert("RGB"))
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        mode = InterpolationMode(self.interpolation)
        image = F.resize(image, self.resize_size, interpolation=mode, antialias=True)
        return F.center_crop(image, self.input_size).contiguous()

    def normalize(self, pixels: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Float batch (N, 3, S, S) from uint8 pixels, scaled to [0, 1] then standardised."""
        mean = torch.tensor(self.mean, device=pixels.device, dtype=dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, device=pixels.device, dtype=dtype).view(-1, 1, 1)
        return (pixels.to(dtype) / 255.0 - mean) / std

    def __call__(self, image: Image.Image) -> Tensor:
        """PIL image -> normalised float tensor (3, S, S)."""
        return self.normalize(self.pixels(image)[None])[0]


def timm_preprocessing(cfg: dict, input_size: int | None = None) -> Preprocessing:
    """The preprocessing of a timm ``pretrained_cfg`` (its mean, std, crop and interpolation)."""
    return Preprocessing(
        input_size=input_size or cfg["input_size"][-1],
        crop_pct=cfg.get("crop_pct", 0.875),
        interpolation=cfg.get("interpolation", "bicubic"),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
    )
