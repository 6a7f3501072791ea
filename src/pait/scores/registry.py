"""The score registry: ``SCORES`` (names -> score functions), their metadata and options.

Metadata of a score: ``per_sparsity`` (it takes ``sparsity`` and is computed once per sparsity, as
SynFlow's iterative schedule), ``seeded`` (it takes ``seed``, which the grid sets to the unit's seed
unless the config's ``score_options`` does) and ``options`` (the keyword options it accepts, read
from its signature at registration; None when it takes ``**kwargs``).

An option's type and range are its annotation, checked (``pait.typed.check_value``) when a config or
a command line is checked, before any stage is written: ``normalize: Literal["none", "mean"]``,
``layerwise: bool``. A range is part of the annotation, one line where the option is defined:
``damping: Positive = 1.0`` (a finite number > 0), ``iterations: Count = 100`` (an int >= 1),
``seed: Seed = 0`` (0 .. 2**63 - 1), or any ``Annotated[float, Range(ge=0, le=1)]`` (from
``pait.typed``). An option without an annotation takes the type of its default.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torch import Tensor, nn

from pait.errors import ConfigError
from pait.registry import Registry
from pait.typed import Seed, brief, check_value

ScoreFn = Callable[..., dict[str, Tensor]]
Batches = Iterable[tuple[Tensor, Tensor]]
Params = Mapping[str, nn.Parameter]

SCORES: Registry[ScoreFn] = Registry("score")
SET_BY_THE_GRID = "sparsity"  # the option a per-sparsity score gets from the grid, never from score_options


def keyword_options(fn: ScoreFn) -> tuple[str, ...] | None:
    """The keyword options of ``fn(model, batches, params, **options)``; None when it takes ``**kwargs``."""
    parameters = list(inspect.signature(fn).parameters.values())[3:]
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def option_hints(fn: ScoreFn) -> dict[str, Any]:
    """The type hint of each keyword option of ``fn`` (ranges included): its annotation, else the type of
    its default (``Any`` when it has neither); ``seed`` is always a :data:`pait.typed.Seed`."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError):  # a plugin's annotation that does not resolve: its options go unchecked
        hints = {}
    out = {}
    for p in list(inspect.signature(fn).parameters.values())[3:]:
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        default = None if p.default is p.empty else p.default
        out[p.name] = hints.get(p.name, type(default) if default is not None else Any)
    if "seed" in out:
        out["seed"] = Seed
    return out


def register_score(name: str, *, per_sparsity: bool = False, seeded: bool = False,
                   revision: int = 0) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator: register ``fn(model, batches, params, **options)`` under ``name`` in ``SCORES``. Raise
    ``revision`` whenever a change makes the function return other scores: cached stages of the old
    definition are then no longer reused."""

    def wrap(fn: ScoreFn) -> ScoreFn:
        return SCORES.register(name, per_sparsity=per_sparsity, seeded=seeded, options=keyword_options(fn),
                               revision=revision)(fn)

    return wrap


def score_revision(name: str) -> int:
    """The revision of ``name``'s definition (0 for a score never changed since caching began)."""
    return int(SCORES.metadata(name).get("revision", 0)) if name in SCORES else 0


def get_score(name: str) -> ScoreFn:
    """The score function registered under ``name``; a ConfigError lists the known names."""
    return SCORES.get(name)


def score_is_per_sparsity(name: str) -> bool:
    """Whether ``name`` is computed once per sparsity (it takes ``sparsity``), not once for all."""
    return bool(SCORES.metadata(name).get("per_sparsity", False))


def check_score_options(score_options: Mapping[str, Any], where: str = "score_options") -> None:
    """Every key names a registered score and every option is one its function accepts, of the type and in
    the range its annotation declares (see the module docstring), else a ConfigError naming it."""
    for name, options in score_options.items():
        if name not in SCORES:
            raise ConfigError(f"{where}: unknown score {brief(name)}; known scores: {', '.join(SCORES.known())}")
        if not isinstance(options, Mapping):
            raise ConfigError(f"{where}: the options of score {name!r} must be a mapping, got {brief(options)}")
        accepted = SCORES.metadata(name).get("options", ())
        if accepted is not None and score_is_per_sparsity(name):
            accepted = tuple(o for o in accepted if o != SET_BY_THE_GRID)
        unknown = [o for o in options if accepted is not None and o not in accepted]
        if unknown:
            raise ConfigError(f"{where}: score {name!r} has no option(s) {', '.join(map(str, unknown))}; "
                              f"its options: {', '.join(accepted) or 'none'}")
        hints = option_hints(SCORES.get(name))
        for option, value in options.items():
            check_value(hints.get(option, Any), value, f"{where}: {name}.{option}")


def score_call_options(name: str, options: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The keyword options a grid unit passes to score ``name`` (besides ``sparsity``): the configured
    ``options``, and ``seed`` for seeded scores unless the options set it."""
    call = dict(options)
    if SCORES.metadata(name).get("seeded", False):
        call.setdefault("seed", seed)
    return call
