"""Reading tensor files a user hands over: the format told from the content, every problem one CheckpointError.

A file's format is recognised from its first bytes (a safetensors header, a zip archive written by
``torch.save``, a legacy pickle); a file whose suffix says otherwise, an empty or truncated file and a
text file are refused with a message naming the file and what is wrong. Tensors holding NaN or Inf are
refused at load, naming the first one.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pait.errors import CheckpointError

SAFETENSORS, TORCH_ZIP, TORCH_PICKLE = "safetensors", "torch zip", "torch pickle"
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".tar", ".ckpt")
_SAFETENSORS_MAX_HEADER = 100_000_000  # the limit safetensors itself enforces


def file_format(path: Path) -> str:
    """SAFETENSORS, TORCH_ZIP or TORCH_PICKLE, read from the first bytes; a CheckpointError otherwise."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}" if not path.exists() else
                              f"checkpoint {path} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        return TORCH_ZIP
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return TORCH_PICKLE
    if len(head) >= 10 and head[8:9] == b"{":
        return SAFETENSORS
    if _looks_like_text(path):
        raise CheckpointError(f"checkpoint {path} is a text file, not a safetensors or PyTorch weights file")
    raise CheckpointError(f"checkpoint {path} is neither a safetensors nor a PyTorch weights file "
                          f"(it starts with {head[:8]!r})")


def _looks_like_text(path: Path) -> bool:
    with open(path, "rb") as f:
        chunk = f.read(4096)
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in chunk


def check_suffix(path: Path, fmt: str) -> None:
    """Refuse a file whose suffix names another format than its content (renaming it is the fix)."""
    named_safetensors = path.suffix == ".safetensors"
    if named_safetensors and fmt != SAFETENSORS:
        raise CheckpointError(f"checkpoint {path} is a PyTorch ({fmt}) file named .safetensors; rename it to .pth")
    if not named_safetensors and fmt == SAFETENSORS and path.suffix in TORCH_SUFFIXES:
        raise CheckpointError(f"checkpoint {path} is a safetensors file named {path.suffix}; rename it to .safetensors")


def read_safetensors(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file; an empty, truncated or corrupt file is a CheckpointError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load, load_file

    path = Path(path)
    fmt = file_format(path)
    check_suffix(path, fmt)
    if fmt != SAFETENSORS:
        raise CheckpointError(f"checkpoint {path} is a PyTorch ({fmt}) file, not safetensors")
    _check_safetensors_header(path)
    try:
        try:
            os.fsencode(path).decode("utf-8")
        except UnicodeDecodeError:  # safetensors opens only UTF-8 paths: hand it the bytes
            return load(path.read_bytes())
        return load_file(str(path))
    except SafetensorError as err:
        raise CheckpointError(f"checkpoint {path} is not a valid safetensors file (truncated or corrupt: {err})") from None


def _check_safetensors_header(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > min(size - 8, _SAFETENSORS_MAX_HEADER):
            raise CheckpointError(f"checkpoint {path} is truncated or corrupt: its safetensors header claims "
                                  f"{length} bytes, the file has {size}")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"checkpoint {path} is corrupt: its safetensors header is not valid JSON") from None
    end = max((_tensor_end(path, name, entry) for name, entry in header.items() if name != "__metadata__"), default=0)
    if end > size - 8 - length:
        raise CheckpointError(f"checkpoint {path} is truncated: its tensors need {8 + length + end} bytes, "
                              f"the file has {size}")


def _tensor_end(path: Path, name: str, entry: Any) -> int:
    """Where the tensor ``name`` of a safetensors header ends in the data; a malformed entry is a CheckpointError."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path} is corrupt: tensor {name!r} in its safetensors header {what}")

    if not isinstance(entry, dict):
        raise bad(f"is a {type(entry).__name__}, not an object with dtype, shape and data_offsets")
    offsets, shape = entry.get("data_offsets"), entry.get("shape")
    if not isinstance(entry.get("dtype"), str):
        raise bad(f"has no dtype string (got {entry.get('dtype')!r:.40})")
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise bad(f"has a malformed shape {shape!r:.60} (expected a list of counts)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(n) for n in offsets)
            and offsets[0] <= offsets[1]):
        raise bad(f"has malformed data_offsets {offsets!r:.60} (expected [begin, end], 0 <= begin <= end)")
    return offsets[1]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` of a PyTorch file; a truncated or corrupt file is a CheckpointError."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
        first = text.splitlines()[0] if text else type(err).__name__
        if "truncated" in text or "Weights only load failed" not in text:
            raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({first})") from None
        found = re.search(r"Unsupported global: GLOBAL [\w.]+|Unsupported operand \d+|[^.\n]*not an allowed global[^.\n]*", text)
        raise CheckpointError(
            f"{path} needs arbitrary code to unpickle and was refused ({found.group(0) if found else first}). "
            "Convert it once, in a trusted environment, to a plain state dict: "
            "torch.save(dict(model.state_dict()), 'weights.pth') or safetensors.torch.save_file(...)."
        ) from None
    except (EOFError, RuntimeError) as err:  # torch's zip reader and legacy unpickler on a cut file
        first = str(err).splitlines()[0].split(". ")[0] if str(err) else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({first})") from None


def check_finite(tensors: Mapping[str, Any], path: str | Path) -> None:
    """Refuse a checkpoint holding NaN or Inf (in a real or a complex tensor), naming the first such tensor."""
    for name, value in tensors.items():
        if isinstance(value, Tensor) and (value.is_floating_point() or value.is_complex()) \
                and not bool(torch.isfinite(value).all()):
            bad = "NaN" if bool(torch.isnan(value).any()) else "Inf"
            raise CheckpointError(f"checkpoint {path}: tensor {name} holds {bad} values")


def check_tensors(state: Mapping[str, Any], path: str | Path) -> None:
    """Refuse a state dict with anything but a tensor as a value, naming the first such key."""
    for name, value in state.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"checkpoint {path}: key {name} holds {describe(value)}, not a tensor")


def describe(value: Any) -> str:
    """``a dict``, ``an int (3)``: what a value is, for a message naming a non-tensor."""
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    shown = f" ({value!r:.40})" if isinstance(value, (int, float, str, bool)) else ""
    return f"{article} {kind}{shown}"
