"""The group scores of structured pruning by name, and the check of their options; no torch, so that a
config and ``pait prune``'s flags are checked before anything heavy loads (the scores themselves are in
:mod:`pait.prune.structured.scores`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pait.errors import ConfigError
from pait.typed import brief

GROUP_SCORES = ("magnitude", "fisher_diag", "kfac", "taylor", "hessian")  # pait's summed, then Torch-Pruning's


def check_group_score_options(score_options: Mapping[str, Any], where: str = "score_options") -> None:
    """``score_options`` of structured pruning: Torch-Pruning's group scores (``taylor``, ``hessian``) take
    none; pait's per-weight scores take theirs, checked as ``check_score_options`` does."""
    from pait.scores import SCORES, check_score_options

    for name, options in score_options.items():
        if name in GROUP_SCORES and name not in SCORES and options != {}:
            raise ConfigError(f"{where}: structured score {name!r} takes no options, got {brief(options)}")
    check_score_options({k: v for k, v in score_options.items() if k in SCORES or k not in GROUP_SCORES}, where)
