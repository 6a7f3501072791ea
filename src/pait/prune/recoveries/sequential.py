"""``sequential`` and ``sequential-adaptive`` (layer-wise OBS, :mod:`pait.prune.sequential`), alone or
followed by BatchNorm re-estimation (``bn+...``).

``bn+sequential`` runs sequential first, then the BatchNorm re-estimation: sequential keeps each layer's
outputs close to the originals, so it needs the BN statistics that go with them, while the re-estimation
must describe the final weights, which exist only after the reconstruction.

Revision 1: the sweeps zero dead inputs' weights before choosing and damp independently of H's scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pait.prune.recoveries.basic import hold_mask
from pait.prune.recoveries.inputs import RecoveryInputs
from pait.prune.recoveries.registry import register_recovery
from pait.typed import Count, Positive

if TYPE_CHECKING:
    from pait.masks import Mask


def reconstruct(inputs: RecoveryInputs, adaptive: bool, then_bn: bool, damping: float, blocksize: int = 128) -> Mask:
    """Reconstruct layer after layer on the current network's inputs, with the mask held (``fixed``) or
    each layer's density only (``adaptive``, choosing per ``blocksize`` columns; re-selected N:M when the mask
    is ``inputs.nm``); hold the mask applied; re-estimate BatchNorm after when ``then_bn``."""
    from pait.prune.bn_recalibration import recalibrate_batchnorm
    from pait.prune.sequential import sequential_prune

    batches = inputs.batches()
    mode = "adaptive" if adaptive else "fixed"
    mask = sequential_prune(inputs.model, batches, inputs.params(), inputs.mask, mode=mode, damping=damping,
                            blocksize=blocksize, nm=inputs.nm if adaptive else None)
    hold_mask(inputs, mask)
    if then_bn:
        recalibrate_batchnorm(inputs.model, batches)
    return mask


@register_recovery("sequential", revision=1, damping=1e-3)
def sequential(inputs: RecoveryInputs, *, damping: Positive) -> Mask:
    """Layer-wise OBS with the mask held; ``damping`` relative to ``mean(diag H)`` of each layer's inputs."""
    return reconstruct(inputs, adaptive=False, then_bn=False, damping=damping)


@register_recovery("sequential-adaptive", revision=1, damping=1e-3, blocksize=128)
def sequential_adaptive(inputs: RecoveryInputs, *, damping: Positive, blocksize: Count) -> Mask:
    """Layer-wise OBS choosing each layer's mask at its density, ``blocksize`` columns at a time
    (SparseGPT's selection and block-lazy sweep); returns the new mask."""
    return reconstruct(inputs, adaptive=True, then_bn=False, damping=damping, blocksize=blocksize)


@register_recovery("bn+sequential", revision=1, damping=1e-3)
def bn_sequential(inputs: RecoveryInputs, *, damping: Positive) -> Mask:
    """``sequential``, then BatchNorm re-estimation on the reconstructed weights."""
    return reconstruct(inputs, adaptive=False, then_bn=True, damping=damping)


@register_recovery("bn+sequential-adaptive", revision=1, damping=1e-3, blocksize=128)
def bn_sequential_adaptive(inputs: RecoveryInputs, *, damping: Positive, blocksize: Count) -> Mask:
    """``sequential-adaptive``, then BatchNorm re-estimation on the reconstructed weights."""
    return reconstruct(inputs, adaptive=True, then_bn=True, damping=damping, blocksize=blocksize)
