"""Recovery after pruning: none (mask only), SGD re-training with masks held, or one-shot OBS."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from pait.config import FinetuneConfig
from pait.train.finetune import MaskHolder, finetune
from pait.heads import HeadedModel, SplitBatches
from pait.masks import Mask
from pait.prune.obs import obs_prune
from pait.prune.options import RECOVERIES
from pait.scores.kfac import kfac_factors
from pait.tasks.base import TaskData


def recover(
    model: HeadedModel,
    mask: Mask,
    method: str,
    calib: TaskData,
    normalize: Callable[[Tensor], Tensor],
    device: torch.device,
    finetune_config: FinetuneConfig | None = None,
    batch_size: int = 32,
    damping: float = 1e-3,
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> None:
    """Prune ``model.backbone`` (unpruned on entry) to ``mask`` in place, then recover by ``method``.

    ``none`` zeroes the pruned weights; ``sgd`` also re-trains on ``calib`` with the masks held
    (``finetune_config``); ``obs`` applies the per-row OBS update with K-FAC factors of the unpruned
    model on ``calib`` (see :mod:`pait.prune.obs`).
    """
    if method not in RECOVERIES:
        raise ValueError(f"unknown recovery {method!r}; choose one of {', '.join(RECOVERIES)}")
    params: dict[str, nn.Parameter] = dict(model.backbone.named_parameters())
    if method == "obs":
        batches = SplitBatches(calib, normalize, batch_size, device)
        factors = kfac_factors(model, batches, {n: params[n] for n in mask}, include_bias=True)
        obs_prune(params, factors, mask, damping=damping)
        return
    holder = MaskHolder(params, mask)
    holder.hold()
    if method == "sgd":
        if finetune_config is None:
            raise ValueError("sgd recovery needs a FinetuneConfig")
        finetune(model, calib, holder, finetune_config, normalize, device, seed=seed, on_epoch=on_epoch)
