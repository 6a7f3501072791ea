"""A structurally pruned output read with every file checked: ``structure.json`` is validated against the
stock module before any cut, ``pruned.safetensors`` through the checked tensor reader, so a damaged or
foreign folder is one CheckpointError naming the file and the entry at fault (``pait evaluate``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from pait.encoders.checkpoints import load_checked
from pait.errors import CheckpointError
from pait.export.structured import FORMAT, PRUNED_FILE, STRUCTURE_FILE, apply_structure
from pait.tensorfiles import read_safetensors

_CUTTABLE = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.LayerNorm)


def read_structure(path: Path) -> dict[str, Any]:
    """The record of a ``structure.json``, checked for its format and the types of its entries."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the folder is not a structured pait prune output")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file (written by another version of pait?)")
    modules, attention = record.get("modules"), record.get("attention", {})
    if not isinstance(modules, dict) or not isinstance(attention, dict):
        raise CheckpointError(f"{path}: 'modules' and 'attention' must be objects")
    for name, sides in modules.items():
        if not isinstance(sides, dict) or not sides or set(sides) - {"in", "out"}:
            raise CheckpointError(f"{path}: module {name!r} must map 'in' and/or 'out' to kept indices, got {sides!r:.80}")
        for side, kept in sides.items():
            if not isinstance(kept, list) or not kept or not all(isinstance(i, int) and not isinstance(i, bool)
                                                                  for i in kept):
                raise CheckpointError(f"{path}: module {name!r} {side!r} must be a non-empty list of indices, "
                                      f"got {kept!r:.80}")
    for name, heads in attention.items():
        if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
            raise CheckpointError(f"{path}: attention {name!r} must keep at least 1 head, got {heads!r:.40}")
    return record


def _check_fits(model: nn.Module, record: dict[str, Any], path: Path) -> None:
    """Every recorded module exists in the stock ``model``, can be cut, and its kept indices are in range."""
    for name, sides in record["modules"].items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"{path}: module {name!r} is not part of the encoder's stock module") from None
        if not isinstance(module, _CUTTABLE):
            raise CheckpointError(f"{path}: module {name!r} is a {type(module).__name__}, which is never cut")
        shape = module.weight.shape if getattr(module, "weight", None) is not None else (module.num_features,)
        for side, kept in sides.items():
            size = shape[0] if side == "out" or len(shape) < 2 else shape[1]
            if len(set(kept)) != len(kept) or min(kept) < 0 or max(kept) >= size:
                raise CheckpointError(f"{path}: module {name!r} {side!r} indices must be distinct and in [0, {size}), "
                                      f"got {kept!r:.80}")
    for name in record["attention"]:
        try:
            attn = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"{path}: attention module {name!r} is not part of the encoder's stock module") from None
        if not hasattr(attn, "num_heads") or not hasattr(attn, "head_dim"):
            raise CheckpointError(f"{path}: module {name!r} is not an attention module")


def load_structured_checked(model: nn.Module, out_dir: str | Path, layout: str) -> nn.Module:
    """Cut the stock ``model`` in place to the structure of ``out_dir`` and load its pruned weights strictly
    (keys, shapes, no NaN/Inf), in their dtype; returns the model in eval mode."""
    out = Path(out_dir)
    record = read_structure(out / STRUCTURE_FILE)
    _check_fits(model, record, out / STRUCTURE_FILE)
    apply_structure(model, record)
    weights = out / PRUNED_FILE
    state = read_safetensors(weights)
    floating = [v.dtype for v in state.values() if v.is_floating_point()]
    if floating:
        model.to(floating[0])
    load_checked(model, state, weights, layout)
    return model.eval()
