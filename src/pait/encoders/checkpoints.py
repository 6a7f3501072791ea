"""Safe checkpoint reading: safetensors or ``torch.load(weights_only=True)``, never arbitrary unpickling."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read safely, or whose keys do not fit the expected layout."""


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a checkpoint file (.safetensors, or .pth/.pt/.bin/.pth.tar read with weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} needs arbitrary code to unpickle and was refused ({str(err).splitlines()[0]}). "
            "Convert it once, in a trusted environment, to a plain state dict: "
            "torch.save(dict(model.state_dict()), 'weights.pth') or safetensors.torch.save_file(...)."
        ) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def check_keys(loaded: Mapping[str, Tensor], expected: Mapping[str, Tensor], path: str | Path, layout: str) -> None:
    """Raise a CheckpointError naming the first missing, unexpected or mis-shaped keys."""
    missing = [k for k in expected if k not in loaded]
    unexpected = [k for k in loaded if k not in expected]
    shapes = [
        f"{k}: {tuple(loaded[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in loaded and loaded[k].shape != expected[k].shape
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{label}: {', '.join(items[:5])}{more}")
    if problems:
        raise CheckpointError(f"{path} does not fit the {layout} layout; " + "; ".join(problems))
