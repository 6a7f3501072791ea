"""Pruned checkpoints: the full state dict of the stock module (safetensors), the mask, sizes.

A pruned checkpoint loads into the unmodified module, with no pait code::

    import safetensors.torch
    model.load_state_dict(safetensors.torch.load_file("pruned.safetensors"))

or with ``pait.export.load_into(model, path_or_dir)``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save
from torch import Tensor, nn

from pait.cache import write_atomic
from pait.export.structured import load_structured, save_structured
from pait.masks import Mask
from pait.tensorfiles import read_safetensors

__all__ = ["load_into", "load_mask", "load_structured", "save_pruned", "save_structured", "save_tensors",
           "storage_bytes"]

PRUNED_FILE = "pruned.safetensors"
MASK_FILE = "mask.safetensors"


def _tensors(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


def save_tensors(tensors: Mapping[str, Tensor], path: Path) -> None:
    """Write ``tensors`` (moved to the CPU, made contiguous) as one safetensors file, atomically."""
    write_atomic(path, save(_tensors(tensors)))


def save_pruned(model: nn.Module, mask: Mask, out_dir: Path) -> None:
    """Write ``pruned.safetensors`` (full state dict) and ``mask.safetensors`` (bool, True = kept) atomically."""
    save_tensors(model.state_dict(), out_dir / PRUNED_FILE)
    save_tensors({k: v.bool() for k, v in mask.items()}, out_dir / MASK_FILE)


def _file(path: str | Path, name: str) -> Path:
    path = Path(path)
    return path / name if path.is_dir() else path


def load_into(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a pruned state dict (file, or a ``pait prune`` output directory) into ``model``, strictly."""
    model.load_state_dict(read_safetensors(_file(path, PRUNED_FILE)))
    return model


def load_mask(path: str | Path) -> Mask:
    """The mask of a pruned checkpoint (file, or a ``pait prune`` output directory)."""
    return {k: v.bool() for k, v in read_safetensors(_file(path, MASK_FILE)).items()}


def storage_bytes(state: Mapping[str, Tensor], mask: Mask) -> dict[str, int]:
    """Sizes of the weights: dense, sparse (masked tensors as nonzero values plus a 1-bit mask, the
    rest dense) and zlib-compressed (level 6) dense safetensors."""
    dense = sum(v.numel() * v.element_size() for v in state.values())
    sparse = 0
    for name, v in state.items():
        if name in mask:
            sparse += int(torch.count_nonzero(v)) * v.element_size() + (v.numel() + 7) // 8
        else:
            sparse += v.numel() * v.element_size()
    return {"dense": dense, "sparse_values_plus_bitmask": sparse,
            "zlib_safetensors": len(zlib.compress(save(_tensors(state)), 6))}
