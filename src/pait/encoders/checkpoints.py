"""Safe checkpoint reading: safetensors or ``torch.load(weights_only=True)``, never arbitrary unpickling.

A TorchScript archive (OpenAI's CLIP ``.pt``) carries code; it is read only when the caller trusts it
explicitly (``trust_torchscript=True``, CLI ``--trust-torchscript``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pait.errors import CheckpointError, MissingWeightsError  # also importable from here, as before
from pait.tensorfiles import (
    SAFETENSORS,
    TORCH_ZIP,
    check_finite,
    check_suffix,
    check_tensors,
    describe,
    file_format,
    read_safetensors,
    torch_load,
)

RANDOM = "random"
"""The ``weights`` value asking for random initialisation (tests, benchmarks), never a file name."""


def resolve_weights(weights: str | Path | None, encoder: str, source: str) -> Path | None:
    """The weights file to read, or None for ``weights="random"``; ``None`` is an error naming ``source``."""
    if weights is None:
        raise MissingWeightsError(
            f"encoder {encoder!r} needs its pretrained weights, which cannot be downloaded here: "
            f"pass weights=PATH (config `weights:` or --weights). They are published as: {source}. "
            f"For random initialisation (tests, benchmarks) pass weights={RANDOM!r}."
        )
    if str(weights) == RANDOM:
        return None
    return Path(weights)


def is_torchscript_archive(path: Path) -> bool:
    """Whether ``path`` is a TorchScript zip archive (it holds compiled code next to the tensors)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


def read_checkpoint(path: str | Path, trust_torchscript: bool = False) -> Mapping[str, Any]:
    """The top-level mapping of a checkpoint file, read without running code from the file.

    .safetensors is read with safetensors; .pth/.pt/.bin/.pth.tar with ``torch.load(weights_only=True)``
    (nested dicts, numbers and strings are allowed, arbitrary classes are refused); a TorchScript
    archive only with ``trust_torchscript=True``, as its ``state_dict()``.
    """
    path = Path(path)
    fmt = file_format(path)
    check_suffix(path, fmt)
    if fmt == SAFETENSORS:
        return read_safetensors(path)
    if fmt == TORCH_ZIP and is_torchscript_archive(path):
        if not trust_torchscript:
            raise CheckpointError(
                f"{path} is a TorchScript archive: loading it runs code stored in the file. If you trust its "
                "source, pass trust_torchscript=True (CLI: --trust-torchscript), or convert it once: "
                "torch.save(torch.jit.load(path, map_location='cpu').state_dict(), 'weights.pth')."
            )
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    obj = torch_load(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return obj


def read_state_dict(path: str | Path, trust_torchscript: bool = False) -> dict[str, Tensor]:
    """Tensors of a flat checkpoint file (see ``read_checkpoint`` for the formats); a value that is not a
    tensor is a CheckpointError naming its key."""
    state = dict(read_checkpoint(path, trust_torchscript))
    check_tensors(state, path)
    return state


def tensor_at(state: Mapping[str, Any], key: str, path: str | Path) -> Tensor:
    """``state[key]``, when it is a tensor; a CheckpointError naming the key otherwise."""
    value = state[key]
    if not isinstance(value, Tensor):
        raise CheckpointError(f"checkpoint {path}: key {key} holds {describe(value)}, not a tensor")
    return value


def unwrap(checkpoint: Mapping[str, Any], keys: tuple[str, ...] = ("state_dict", "model")) -> dict[str, Any]:
    """The state dict inside a training checkpoint (first of ``keys`` present), else the mapping itself."""
    for key in keys:
        if isinstance(checkpoint.get(key), Mapping):
            return dict(checkpoint[key])
    return dict(checkpoint)


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Keys starting with ``prefix``, with it removed; other keys are dropped."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def check_keys(loaded: Mapping[str, Tensor], expected: Mapping[str, Tensor], path: str | Path, layout: str) -> None:
    """Raise a CheckpointError naming the first missing, unexpected or mis-shaped keys."""
    for key in expected:
        if key in loaded:
            tensor_at(loaded, key, path)
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


def load_checked(model: nn.Module, state: Mapping[str, Tensor], path: str | Path, layout: str) -> None:
    """Load ``state`` into ``model`` after ``check_keys`` (every tensor, nothing else, right shapes) and
    ``check_finite`` (no NaN or Inf)."""
    check_keys(state, model.state_dict(), path, layout)
    check_finite(state, path)
    model.load_state_dict(dict(state), strict=True)
