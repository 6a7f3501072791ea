"""BatchNorm re-calibration: re-estimate the running statistics of a pruned network, no gradient step.

Pruning shifts the distribution of every BatchNorm's input, so the running mean and variance stored
with the unpruned weights no longer normalise it. Running the calibration images through the network
with only the BatchNorm layers in training mode and ``momentum=None`` makes torch keep the cumulative
average of the batch statistics (mean, unbiased variance) in the running buffers; every other module
stays in eval mode and no parameter changes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from pait.layers.modes import eval_mode
from pait.scores.registry import Batches


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Batches) -> int:
    """Reset and re-estimate every BatchNorm's running statistics on ``batches``; return how many layers.

    The model is left in eval mode flags as it came, with each layer's momentum restored.
    """
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    with eval_mode(model):
        try:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None
                m.train()
            for images, _ in batches:
                model(images)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
    return len(norms)
