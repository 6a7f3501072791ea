"""Recovery of a structurally pruned encoder: none, BatchNorm re-estimation, SGD re-training or ``sequential``.

No mask is needed after structured pruning (the removed channels are gone), so ``sgd`` is pait's
re-training loop with an empty mask; ``bn`` re-estimates BatchNorm running statistics on the
calibration images, a cheap fix for the shift that removed channels cause downstream; ``sequential``
refits, layer by layer, every layer that lost inputs to reproduce the dense encoder's outputs
(:mod:`pait.prune.structured.refit`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from pait.config import FinetuneConfig
from pait.errors import ConfigError
from pait.prune.bn_recalibration import recalibrate_batchnorm
from pait.prune.options import STRUCTURED_RECOVERIES
from pait.prune.structured.refit import refit_consumers
from pait.train.finetune import MaskHolder, finetune
from pait.heads import HeadedModel
from pait.tasks.base import TaskData


def recover_structured(model: HeadedModel, method: str, calib: TaskData, batches: list[tuple[Tensor, Tensor]],
                       normalize: Callable[[Tensor], Tensor], device: torch.device,
                       finetune_config: FinetuneConfig | None = None, seed: int = 0,
                       on_epoch: Callable[[int, float], None] | None = None,
                       autocast_dtype: torch.dtype | None = None, dense: nn.Module | None = None,
                       structure: Mapping[str, Any] | None = None) -> list[float]:
    """Recover the pruned ``model.backbone`` in place by ``method`` (:data:`STRUCTURED_RECOVERIES`);
    returns the re-training epoch losses (``sgd``; else []). ``sequential`` needs ``dense`` (the encoder
    before the cut) and ``structure`` (the record of :func:`pait.prune.structured.groups.remove_units`)."""
    if method not in STRUCTURED_RECOVERIES:
        raise ConfigError(f"unknown structured recovery {method!r}; choose one of {', '.join(STRUCTURED_RECOVERIES)}")
    if method == "sequential":
        if dense is None or structure is None:
            raise ConfigError("sequential recovery needs the dense encoder and the surgery record")
        refit_consumers(dense, model.backbone, structure, batches, model.feature_fn)
    elif method == "bn":
        if not recalibrate_batchnorm(model.backbone, batches):
            raise ConfigError("bn recovery needs BatchNorm layers; this encoder has none (use none or sgd)")
    elif method == "sgd":
        if finetune_config is None:
            raise ConfigError("sgd recovery needs a FinetuneConfig")
        return finetune(model, calib, MaskHolder({}, {}), finetune_config, normalize, device, seed=seed,
                        autocast_dtype=autocast_dtype, on_epoch=on_epoch)
    return []
