"""Recovery after pruning: none (mask only), SGD re-training with masks held, one-shot OBS, BN re-calibration, sequential OBS."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from pait.prune.bn_recalibration import recalibrate_batchnorm
from pait.config import FinetuneConfig
from pait.errors import ConfigError
from pait.heads import HeadedModel, SplitBatches
from pait.train.finetune import MaskHolder, finetune
from pait.masks import Mask
from pait.prune.obs import obs_prune
from pait.prune.options import RECOVERIES
from pait.scores.kfac import kfac_factors
from pait.prune.sequential import sequential_prune
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
    nm: tuple[int, int] | None = None,
) -> Mask:
    """Prune ``model.backbone`` (unpruned on entry) to ``mask`` in place, recover by ``method``; return the mask applied.

    ``none`` zeroes the pruned weights; ``sgd`` also re-trains on ``calib`` with the masks held
    (``finetune_config``); ``obs`` applies the per-row OBS update with K-FAC factors of the unpruned
    model on ``calib`` (see :mod:`pait.prune.obs`); ``bn`` zeroes them and re-estimates the BatchNorm
    statistics on ``calib`` (:mod:`pait.prune.bn_recalibration`); ``sequential`` reconstructs layer after
    layer on the current network's inputs (:mod:`pait.prune.sequential`), with the mask held, or
    ``sequential-adaptive`` with each layer's density only (the returned mask is then the new one), or,
    when the mask is the N:M pattern ``nm`` (n kept of every m), re-selected N:M per group of columns.

    ``bn+sequential`` runs sequential first, then the BatchNorm re-estimation: sequential keeps each
    layer's outputs close to the originals, so it needs the BN statistics that go with them, while
    the re-estimation must describe the final weights, which exist only after the reconstruction.
    """
    if method not in RECOVERIES:
        raise ConfigError(f"unknown recovery {method!r}; choose one of {', '.join(RECOVERIES)}")
    params: dict[str, nn.Parameter] = dict(model.backbone.named_parameters())
    steps = method.split("+")
    batches = [] if method in ("none", "sgd") else list(SplitBatches(calib, normalize, batch_size, device))
    if method == "obs":
        factors = kfac_factors(model, batches, {n: params[n] for n in mask}, include_bias=True)
        obs_prune(params, factors, mask, damping=damping)
        return mask
    sequential = [s for s in steps if s.startswith("sequential")]
    if sequential:
        mode = "adaptive" if sequential[0].endswith("-adaptive") else "fixed"
        mask = sequential_prune(model, batches, params, mask, mode=mode, damping=damping,
                                nm=nm if mode == "adaptive" else None)
    holder = MaskHolder(params, mask)
    holder.hold()
    if "bn" in steps:
        recalibrate_batchnorm(model, batches)
    if method == "sgd":
        if finetune_config is None:
            raise ConfigError("sgd recovery needs a FinetuneConfig")
        finetune(model, calib, holder, finetune_config, normalize, device, seed=seed, on_epoch=on_epoch)
    return mask
