"""Name -> score function registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping

from torch import Tensor, nn

from pait.errors import UnknownNameError

ScoreFn = Callable[..., dict[str, Tensor]]
_REGISTRY: dict[str, ScoreFn] = {}
SCORES: list[str] = []


def register_score(name: str) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator: register ``fn`` under ``name`` and list it in ``SCORES``."""

    def wrap(fn: ScoreFn) -> ScoreFn:
        if name in _REGISTRY:
            raise ValueError(f"score {name!r} registered twice")
        _REGISTRY[name] = fn
        SCORES.append(name)
        return fn

    return wrap


def get_score(name: str) -> ScoreFn:
    """The score function registered under ``name``; an UnknownNameError (a KeyError) lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(f"unknown score {name!r}; known scores: {', '.join(SCORES)}") from None


Batches = Iterable[tuple[Tensor, Tensor]]
Params = Mapping[str, nn.Parameter]


def score_is_per_sparsity(score: str) -> bool:
    """Scores that take a ``sparsity`` keyword (SynFlow's iterative schedule) are computed per sparsity."""
    return "sparsity" in inspect.signature(get_score(score)).parameters
