"""``sequential`` after structured pruning (``structure: channels``): no mask is needed (the removed
channels are gone); every layer that lost inputs is refit, layer by layer, to reproduce the dense
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
