"""``obs``: the one-shot per-row OBS update with K-FAC input factors of the unpruned model (:mod:`pait.prune.obs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pait.prune.recoveries.inputs import RecoveryInputs
from pait.prune.recoveries.registry import register_recovery
from pait.typed import Positive

if TYPE_CHECKING:
    from pait.masks import Mask


@register_recovery("obs", damping=1e-3)
def obs(inputs: RecoveryInputs, *, damping: Positive) -> Mask:
    """Prune to the mask and update the kept weights and biases in one step; ``damping`` is relative to
    ``mean(diag A)`` of each layer's input factor."""
    from pait.prune.obs import obs_prune
    from pait.scores.kfac import kfac_factors

    params = inputs.params()
    factors = kfac_factors(inputs.model, inputs.batches(), {n: params[n] for n in inputs.mask}, include_bias=True)
    obs_prune(params, factors, inputs.mask, damping=damping)
    return dict(inputs.mask)
