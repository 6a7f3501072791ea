"""Pruning scores, registered by name in ``SCORES``. Higher score = more important; masks keep the top k.

Every score has the signature ``fn(model, batches, params, **options) -> dict[str, Tensor]``:
``model`` maps images to class scores (encoder then frozen head), ``batches`` is an iterable of
``(images, int_labels)`` (re-iterable: some scores pass over it twice), ``params`` maps names to the parameters to score. Scores keep no state.
``SCORES.names()`` (or iterating ``SCORES``) lists the names.
"""

from __future__ import annotations

from pait.scores import basic as _basic  # noqa: F401  (registers magnitude, random)
from pait.scores import fisher as _fisher  # noqa: F401  (registers fisher_diag)
from pait.scores import gradient as _gradient  # noqa: F401  (registers snip, grasp)
from pait.scores import kfac as _kfac  # noqa: F401  (registers kfac)
from pait.scores import layerwise as _layerwise  # noqa: F401  (registers magnitude_uniform, lamp)
from pait.scores import px as _px  # noqa: F401  (registers px)
from pait.scores import synflow as _synflow  # noqa: F401  (registers synflow)
from pait.scores.registry import (
    SCORES,
    ScoreFn,
    check_score_options,
    get_score,
    register_score,
    score_call_options,
    score_is_per_sparsity,
    score_revision,
)

__all__ = ["SCORES", "ScoreFn", "check_score_options", "get_score", "register_score", "score_call_options",
           "score_is_per_sparsity", "score_revision"]
