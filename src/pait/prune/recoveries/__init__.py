"""The recoveries, registered by name per structure (:mod:`pait.prune.recoveries.registry`): one signature
``fn(inputs: RecoveryInputs, **options) -> Mask``, entered with the unpruned weights, for the grid and
``pait prune`` alike.

weights: ``none``, ``sgd`` (:mod:`.basic`), ``obs`` (:mod:`.obs`), ``bn`` (:mod:`.bn`), ``sequential``,
``sequential-adaptive``, ``bn+sequential``, ``bn+sequential-adaptive`` (:mod:`.sequential`);
channels: ``none``, ``sgd`` (:mod:`.basic`), ``bn`` (:mod:`.bn`), ``sequential`` (:mod:`.channels`, the math in
:mod:`.refit`). Registration order (the order of the imports below) is the order names are listed in.
"""

from __future__ import annotations

from pait.prune.recoveries import basic as _basic  # noqa: F401  (registers none, sgd)
from pait.prune.recoveries import obs as _obs  # noqa: F401  (registers obs)
from pait.prune.recoveries import bn as _bn  # noqa: F401  (registers bn, both structures)
from pait.prune.recoveries import sequential as _sequential  # noqa: F401  (registers the sequential family)
from pait.prune.recoveries import channels as _channels  # noqa: F401  (registers the structured sequential)
from pait.prune.recoveries.inputs import ChannelInputs, RecoveryInputs
from pait.prune.recoveries.registry import (
    check_recovery_options,
    get_recovery,
    recovery_key,
    recovery_names,
    recovery_options,
    recovery_revision,
    register_recovery,
    run_recovery,
)

__all__ = ["ChannelInputs", "RecoveryInputs", "check_recovery_options", "get_recovery", "recovery_key",
           "recovery_names", "recovery_options", "recovery_revision", "register_recovery", "run_recovery"]
