"""``bn``: BatchNorm running statistics re-estimated on the calibration images (:mod:`pait.prune.bn_recalibration`),
after a mask or after structured pruning, a cheap fix for the shift that removed weights or channels cause
downstream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pait.errors import ConfigError
from pait.prune.recoveries.basic import hold_mask
from pait.prune.recoveries.inputs import ChannelInputs, RecoveryInputs
from pait.prune.recoveries.registry import register_recovery

if TYPE_CHECKING:
    from pait.masks import Mask


@register_recovery("bn")
def bn(inputs: RecoveryInputs) -> Mask:
    """The mask applied, then every BatchNorm's running statistics re-estimated on the calibration split
    (:mod:`pait.prune.bn_recalibration`); an encoder without BatchNorm is left as masked."""
    from pait.prune.bn_recalibration import recalibrate_batchnorm

    batches = inputs.batches()
    hold_mask(inputs)
    recalibrate_batchnorm(inputs.model, batches)
    return dict(inputs.mask)


@register_recovery("bn", structures=("channels",))
def channels_bn(inputs: ChannelInputs) -> Mask:
    """Re-estimate every BatchNorm's running statistics of the cut module; an encoder without is an error."""
    from pait.prune.bn_recalibration import recalibrate_batchnorm

    if not recalibrate_batchnorm(inputs.model.backbone, inputs.batches()):
        raise ConfigError("bn recovery needs BatchNorm layers; this encoder has none (use none or sgd)")
    return dict(inputs.mask)
