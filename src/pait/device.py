"""Device and precision choices shared by the grid and the practitioner path."""

from __future__ import annotations

import torch

from pait.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the GPU when one is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPUs by default; fp32 on the CPU."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    return torch.bfloat16 if precision == "bf16" else None
