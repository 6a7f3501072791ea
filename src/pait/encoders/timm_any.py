"""Any timm model by name, ``timm:<model>``: random init by default, or a user's file.

``load_encoder("timm:convnext_tiny")`` (``weights=None`` or ``"random"``) gives timm's random
initialisation, no download; ``weights=PATH`` reads a timm-layout state dict (the classifier is kept
if the file has one, with its size) or, for timm ViTs, Google's .npz. Features are timm's pooled
pre-logits; the classifier named in the model's ``pretrained_cfg`` is the head.
"""

from __future__ import annotations

from pathlib import Path

import timm

from pait.encoders.base import Encoder, timm_encoder
from pait.encoders.checkpoints import RANDOM, CheckpointError, load_checked, read_checkpoint, tensor_at, unwrap
from pait.encoders.registry import ENCODERS
from pait.errors import UnknownNameError


def classifier_prefixes(model_name: str) -> tuple[str, ...]:
    """Module names of the classifier of a timm model, from its ``pretrained_cfg``."""
    cfg = timm.models.get_pretrained_cfg(model_name)
    names = getattr(cfg, "classifier", None) or "head"
    return (names,) if isinstance(names, str) else tuple(names)


def build_timm(model_name: str, weights: str | Path | None, trust_torchscript: bool) -> Encoder:
    """timm ``model_name`` (pretrained=False), random or loaded from ``weights``."""
    if not timm.is_model(model_name.split(".")[0]):
        raise UnknownNameError(f"timm has no model {model_name!r} (encoder timm:{model_name})")
    heads = classifier_prefixes(model_name)
    path = None if weights is None or str(weights) == RANDOM else Path(weights)
    state = None
    kwargs = {}
    if path is not None and path.suffix != ".npz":
        state = unwrap(read_checkpoint(path, trust_torchscript))
        head_weights = [tensor_at(state, f"{h}.weight", path) for h in heads if f"{h}.weight" in state]
        kwargs["num_classes"] = head_weights[0].shape[0] if head_weights else 0
    model = timm.create_model(model_name, pretrained=False, **kwargs).eval()
    if state is not None:
        load_checked(model, state, path, f"timm {model_name}")
    elif path is not None:
        if not hasattr(model, "load_pretrained"):
            raise CheckpointError(f"timm {model_name} has no .npz reader; convert {path} to a state dict")
        model.load_pretrained(str(path))
    info = {"weights": str(path) if path else "random", "layout": f"timm {model_name}"}
    return timm_encoder(f"timm:{model_name}", model, heads, info)


ENCODERS.register_family(
    "timm",
    member="model",
    description="any timm model: timm:<model>",
    weights="random init by default (weights=None or 'random'), or a timm-layout file",
)(build_timm)
