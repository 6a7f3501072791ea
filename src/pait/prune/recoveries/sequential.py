"""``sequential`` and ``sequential-adaptive`` (layer-wise OBS, :mod:`pait.prune.sequential`), alone or
followed by BatchNorm re-estimation (``bn+...``).

``bn+sequential`` runs sequential first, then the BatchNorm re-estimation: sequential keeps each layer's
outputs close to the originals, so it needs the BN statistics that go with them, while the re-estimation
must describe the final weights, which exist only after the reconstruction.

Revision 1: the sweeps zero dead inputs' weights before choosing and damp independently of H's scale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pait.prune.recoveries.basic import hold_mask
from pait.prune.recoveries.inputs import RecoveryInputs
from pait.prune.recoveries.registry import register_recovery
from pait.typed import Positive

if TYPE_CHECKING:
    from pait.masks import Mask


def reconstruct(inputs: RecoveryInputs, adaptive: bool, damping: float, then_bn: bool) -> Mask:
    """Reconstruct layer after layer on the current network's inputs, with the mask held (``fixed``) or
    each layer's density only (``adaptive``; re-selected N:M when the mask is ``inputs.nm``); hold the
    mask applied; re-estimate BatchNorm after when ``then_bn``."""
    from pait.prune.bn_recalibration import recalibrate_batchnorm
    from pait.prune.sequential import sequential_prune

    batches = inputs.batches()
    mode = "adaptive" if adaptive else "fixed"
    mask = sequential_prune(inputs.model, batches, inputs.params(), inputs.mask, mode=mode, damping=damping,
                            nm=inputs.nm if adaptive else None)
    hold_mask(inputs, mask)
    if then_bn:
        recalibrate_batchnorm(inputs.model, batches)
    return mask


VARIANTS = {  # name: (adaptive, then BatchNorm re-estimation)
    "sequential": (False, False), "sequential-adaptive": (True, False),
    "bn+sequential": (False, True), "bn+sequential-adaptive": (True, True),
}


def variant(adaptive: bool, then_bn: bool) -> Callable[..., Mask]:
    """The recovery ``fn(inputs, *, damping)`` of one variant; ``damping`` relative to ``mean(diag H)``."""

    def recover(inputs: RecoveryInputs, *, damping: Positive) -> Mask:
        return reconstruct(inputs, adaptive=adaptive, damping=damping, then_bn=then_bn)

    return recover


for _name, (_adaptive, _then_bn) in VARIANTS.items():
    register_recovery(_name, revision=1, damping=1e-3)(variant(_adaptive, _then_bn))
