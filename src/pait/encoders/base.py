"""The Encoder: a stock module, its preprocessing, its pooled features and its prunable weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

from pait.encoders.preprocessing import Preprocessing, timm_preprocessing

FeatureFn = Callable[[nn.Module, Tensor], Tensor]


def prunable_parameter_names(model: nn.Module, exclude_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Names of conv and linear weights (attention in/out projections included), in module order.

    Norms, biases, embeddings and anything under ``exclude_prefixes`` (the classifier head) are not
    prunable.
    """
    names = []
    for mod_name, mod in model.named_modules():
        if any(mod_name == p or mod_name.startswith(p + ".") for p in exclude_prefixes):
            continue
        prefix = f"{mod_name}." if mod_name else ""
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            names.append(prefix + "weight")
        elif isinstance(mod, nn.MultiheadAttention) and mod.in_proj_weight is not None:
            names.append(prefix + "in_proj_weight")
    return names


@dataclass
class Encoder:
    """A pretrained encoder. ``features`` expects already-normalised image tensors."""

    name: str
    model: nn.Module
    preprocess: Preprocessing
    feature_dim: int
    feature_fn: FeatureFn
    head_prefixes: tuple[str, ...] = ()
    info: dict[str, str] = field(default_factory=dict)

    def features(self, images: Tensor) -> Tensor:
        """Pooled features (N, D) of normalised images (N, 3, S, S)."""
        return self.feature_fn(self.model, images)

    def prunable_parameters(self) -> dict[str, nn.Parameter]:
        """Parameters to score and mask, keyed as in ``model.named_parameters()``."""
        params = dict(self.model.named_parameters())
        return {n: params[n] for n in prunable_parameter_names(self.model, self.head_prefixes)}


def timm_pre_logits(model: nn.Module, images: Tensor) -> Tensor:
    """timm's feature API: pooled pre-logits."""
    return model.forward_head(model.forward_features(images), pre_logits=True)


def timm_encoder(
    name: str, model: nn.Module, head_prefixes: tuple[str, ...], info: dict[str, str],
    preprocess: Preprocessing | None = None,
) -> Encoder:
    """An Encoder around a timm model: pooled pre-logits features, its head excluded from pruning, and
    the preprocessing of its ``pretrained_cfg`` unless ``preprocess`` is given."""
    return Encoder(
        name=name,
        model=model,
        preprocess=preprocess or timm_preprocessing(model.pretrained_cfg),
        feature_dim=model.num_features,
        feature_fn=timm_pre_logits,
        head_prefixes=head_prefixes,
        info=info,
    )
