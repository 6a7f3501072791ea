"""``none`` (the mask only) and ``sgd`` (re-training with the mask held), for both structures.

Imports of torch-heavy modules stay in the function bodies: registering must not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pait.errors import ConfigError
from pait.prune.recoveries.inputs import RecoveryInputs
from pait.prune.recoveries.registry import register_recovery

if TYPE_CHECKING:
    from pait.masks import Mask
    from pait.train.finetune import MaskHolder


def hold_mask(inputs: RecoveryInputs, mask: Mask | None = None) -> MaskHolder:
    """Zero the pruned weights of ``mask`` (default ``inputs.mask``) in ``inputs.model``; return the holder."""
    from pait.train.finetune import MaskHolder

    holder = MaskHolder(inputs.params(), inputs.mask if mask is None else mask)
    holder.hold()
    return holder


@register_recovery("none", structures=("weights", "channels"))
def none(inputs: RecoveryInputs) -> Mask:
    """The mask applied, nothing else (after structured pruning: the cut module as it is)."""
    hold_mask(inputs)
    return dict(inputs.mask)


@register_recovery("sgd", structures=("weights", "channels"))
def sgd(inputs: RecoveryInputs) -> Mask:
    """Re-train on the calibration split with the mask held (``inputs.finetune``, under ``inputs.autocast``)."""
    from pait.train.finetune import finetune

    if inputs.finetune is None:
        raise ConfigError("sgd recovery needs a FinetuneConfig")
    holder = hold_mask(inputs)
    finetune(inputs.model, inputs.calib, holder, inputs.finetune, inputs.normalize, inputs.device, seed=inputs.seed,
             autocast_dtype=inputs.autocast, on_epoch=inputs.on_epoch)
    return dict(inputs.mask)
