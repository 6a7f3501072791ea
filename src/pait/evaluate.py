"""Accuracy and loss of an encoder through a task's frozen head."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from pait.headed import mse_to_one_hot
from pait.tasks.base import TaskData

Normalize = Callable[[Tensor], Tensor]


@torch.no_grad()
def extract_features(
    features: Callable[[Tensor], Tensor], data: TaskData, normalize: Normalize, batch_size: int, device: torch.device
) -> Tensor:
    """Features (N, D) of a split, in float32 on the CPU, computed in batches on ``device``."""
    out = []
    for start in range(0, len(data), batch_size):
        images = normalize(data.pixels[start : start + batch_size].to(device, non_blocking=True))
        out.append(features(images).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def evaluate_head(features: Tensor, labels: Tensor, head: Tensor) -> tuple[float, float]:
    """(accuracy, MSE-to-one-hot loss) of ``features @ head``, computed on the head's device."""
    outputs = features.to(head.device, head.dtype) @ head
    labels = labels.to(head.device)
    accuracy = (outputs.argmax(1) == labels).double().mean().item()
    return accuracy, mse_to_one_hot(outputs, labels).item()
