"""A structurally pruned module on disk: ``pruned.safetensors`` (its state dict, smaller tensors) and
``structure.json`` (the stock timm architecture and, per cut module, the kept original indices).

Rebuilding needs only torch, timm and safetensors (no pait classes, nothing unpickled): create the
stock module, ``index_select`` every cut module's tensors on the recorded indices, load the weights::

    from pait.export.structured import load_structured
    model = load_structured("OUT_DIR")   # the recorded timm architecture, or pass a fresh stock module

The functions below use nothing else, so they can be copied into a deployment without pait.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

PRUNED_FILE = "pruned.safetensors"
STRUCTURE_FILE = "structure.json"
ONNX_FILE = "pruned.onnx"
INT8_FILE = "pruned.int8.onnx"  # pait.export.int8
FORMAT = "pait-structured/1"


def save_structured(model: nn.Module, structure: dict[str, Any], out_dir: str | Path,
                    architecture: str | None = None, kwargs: dict[str, Any] | None = None) -> None:
    """Write ``pruned.safetensors`` and ``structure.json`` (with the timm ``architecture`` and its
    ``timm.create_model`` keyword arguments, so :func:`load_structured` can rebuild it by name)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    record = {"format": FORMAT, "timm": {"architecture": architecture, "kwargs": kwargs or {}},
              "modules": structure["modules"], "attention": structure.get("attention", {})}
    _write_then_rename({out / PRUNED_FILE: lambda tmp: save_file(state, str(tmp)),
                        out / STRUCTURE_FILE: lambda tmp: tmp.write_text(json.dumps(record, indent=1))})


def _write_then_rename(writers: dict[Path, Callable[[Path], Any]]) -> None:
    """Write every file to a hidden temporary beside it, then rename them all into place: a run killed while
    writing leaves the previous files whole (only a kill between the renames, microseconds apart, could
    mix them). Written here, not with ``pait.cache``, so this module needs nothing of pait."""
    temporary = {path: path.with_name(f".{path.name}.partial") for path in writers}
    try:
        for path, write in writers.items():
            write(temporary[path])
        for path, tmp in temporary.items():
            os.replace(tmp, path)
    finally:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)


def _select(mod: nn.Module, name: str, dim: int, index: Tensor) -> None:
    value = getattr(mod, name, None)
    if value is None:
        return
    new = value.detach().index_select(dim, index.to(value.device)).clone()
    if isinstance(value, nn.Parameter):
        setattr(mod, name, nn.Parameter(new, requires_grad=value.requires_grad))
    else:
        setattr(mod, name, new)


def _cut(mod: nn.Module, sides: dict[str, list[int]]) -> None:
    out = torch.tensor(sides["out"]) if "out" in sides else None
    inp = torch.tensor(sides["in"]) if "in" in sides else None
    if isinstance(mod, nn.Conv2d):
        if mod.groups > 1:  # depthwise: one set of channels
            _select(mod, "weight", 0, out)
            _select(mod, "bias", 0, out)
            mod.in_channels = mod.out_channels = mod.groups = len(out)
            return
        if out is not None:
            _select(mod, "weight", 0, out)
            _select(mod, "bias", 0, out)
            mod.out_channels = len(out)
        if inp is not None:
            _select(mod, "weight", 1, inp)
            mod.in_channels = len(inp)
    elif isinstance(mod, nn.Linear):
        if out is not None:
            _select(mod, "weight", 0, out)
            _select(mod, "bias", 0, out)
            mod.out_features = len(out)
        if inp is not None:
            _select(mod, "weight", 1, inp)
            mod.in_features = len(inp)
    elif isinstance(mod, nn.BatchNorm2d):
        for name in ("weight", "bias", "running_mean", "running_var"):
            _select(mod, name, 0, out)
        mod.num_features = len(out)
    elif isinstance(mod, nn.LayerNorm):
        _select(mod, "weight", 0, out)
        _select(mod, "bias", 0, out)
        mod.normalized_shape = (len(out),)
    else:
        raise TypeError(f"cannot cut a {type(mod).__name__}")


def apply_structure(model: nn.Module, structure: dict[str, Any]) -> nn.Module:
    """Cut the stock ``model`` in place to the recorded kept indices and attention head counts."""
    for name, sides in structure["modules"].items():
        _cut(model.get_submodule(name), sides)
    for name, heads in structure.get("attention", {}).items():
        attn = model.get_submodule(name)
        attn.num_heads = heads
        attn.attn_dim = heads * attn.head_dim
    return model


def load_structured(out_dir: str | Path, model: nn.Module | str | Any = None) -> nn.Module:
    """The pruned module of ``out_dir``, rebuilt as ``structure.json`` records it: the stock timm architecture
    it names, or the fresh stock ``model`` given (a module, an object with ``.model`` such as a pait Encoder,
    or a timm name, which must be the recorded one), cut and loaded strictly."""
    out = Path(out_dir)
    record = json.loads((out / STRUCTURE_FILE).read_text())
    if record.get("format") != FORMAT:
        raise ValueError(f"{out / STRUCTURE_FILE} is not a {FORMAT} file")
    recorded = record["timm"]["architecture"]
    module = getattr(model, "model", model)
    if not isinstance(module, nn.Module):
        import timm

        if model and recorded and model != recorded:
            from pait.errors import ConfigError  # the one pait import: a copy without pait may raise ValueError

            raise ConfigError(f"{out / STRUCTURE_FILE} records the architecture {recorded!r}, not {model!r}")
        if not (model or recorded):
            raise ValueError(f"{out / STRUCTURE_FILE} records no timm architecture; pass the stock module")
        module = timm.create_model(model or recorded, pretrained=False, **record["timm"]["kwargs"])
    apply_structure(module, record)
    state = load_file(str(out / PRUNED_FILE))
    dtype = next(v.dtype for v in state.values() if v.is_floating_point())
    module.to(dtype).load_state_dict(state)
    return module.eval()


class _Features(nn.Module):
    """timm pooled pre-logits (what the ridge heads read) as the module's output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model.forward_head(self.model.forward_features(images), pre_logits=True)


def features_module(model: nn.Module) -> nn.Module:
    """``model`` wrapped to return its pooled features (timm models), or unchanged."""
    return _Features(model) if hasattr(model, "forward_features") else model


def export_onnx(model: nn.Module, path: str | Path, input_size: int) -> Path:
    """ONNX graph of images (N, 3, S, S), N dynamic -> pooled features, float32, opset 17."""
    path = Path(path)
    module = features_module(copy.deepcopy(model)).float().eval()
    example = torch.zeros(1, 3, input_size, input_size)
    _write_then_rename({path: lambda tmp: torch.onnx.export(
        module, (example,), str(tmp), input_names=["images"], output_names=["features"],
        dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}}, opset_version=17, dynamo=False)})
    return path
