"""Encoder followed by a frozen ridge head: the model that scores and re-training differentiate."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pait.encoders.base import FeatureFn


class HeadedModel(nn.Module):
    """images -> feature_fn(backbone, images) @ head. The head is a buffer: never trained or pruned.

    Parameter names carry the prefix ``backbone.``; scores and masks are keyed by the backbone's own
    names (``Encoder.prunable_parameters()``), which scores return unchanged.
    """

    def __init__(self, backbone: nn.Module, feature_fn: FeatureFn, head: Tensor) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_fn = feature_fn
        self.register_buffer("head", head.detach().clone())

    def forward(self, images: Tensor) -> Tensor:
        return self.feature_fn(self.backbone, images) @ self.head.to(images.dtype)


def mse_to_one_hot(outputs: Tensor, labels: Tensor) -> Tensor:
    """The study's loss, ``nn.MSELoss()`` to the one-hot label: the mean over examples and classes.

    The loss of a batch is the mean of its examples' losses, so per-example gradients average to it.
    """
    target = torch.nn.functional.one_hot(labels.long(), outputs.shape[-1]).to(outputs.dtype)
    return torch.nn.functional.mse_loss(outputs, target)
