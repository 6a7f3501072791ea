"""Recoveries after structured pruning (``structure: channels``) besides ``none`` and ``sgd``
(:mod:`pait.prune.recoveries.basic`, which serve both structures): ``bn`` and ``sequential``.

No mask is needed after structured pruning (the removed channels are gone): ``bn`` re-estimates BatchNorm
running statistics on the calibration images, a cheap fix for the shift that removed channels cause
downstream; ``sequential`` refits, layer by layer, every layer that lost inputs to reproduce the dense
encoder's outputs (:mod:`pait.prune.recoveries.refit`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pait.errors import ConfigError
from pait.prune.recoveries.inputs import ChannelInputs
from pait.prune.recoveries.registry import register_recovery
from pait.typed import Positive

if TYPE_CHECKING:
    from pait.masks import Mask


@register_recovery("bn", structures=("channels",))
def channels_bn(inputs: ChannelInputs) -> Mask:
    """Re-estimate every BatchNorm's running statistics of the cut module; an encoder without is an error."""
    from pait.prune.bn_recalibration import recalibrate_batchnorm

    if not recalibrate_batchnorm(inputs.model.backbone, inputs.batches()):
        raise ConfigError("bn recovery needs BatchNorm layers; this encoder has none (use none or sgd)")
    return dict(inputs.mask)


@register_recovery("sequential", structures=("channels",), damping=1e-2)
def channels_sequential(inputs: ChannelInputs, *, damping: Positive) -> Mask:
    """Refit every layer that lost inputs to the dense encoder's outputs (ridge ``damping`` relative to the
    mean diagonal of its Gram matrix)."""
    from pait.prune.recoveries.refit import refit_consumers

    if inputs.dense is None or inputs.structure is None:
        raise ConfigError("sequential recovery needs the dense encoder and the surgery record")
    refit_consumers(inputs.dense, inputs.model.backbone, inputs.structure, inputs.batches(), inputs.model.feature_fn,
                    damping=damping)
    return dict(inputs.mask)
