"""The recovery registry: what follows pruning, by name, per structure, with a revision and options.

A recovery is ``fn(inputs: RecoveryInputs, **options) -> Mask``: it is entered with the UNPRUNED weights
(for ``structure: channels``, with the module just cut), applies the mask to ``inputs.model``, recovers in
place and returns the mask now applied (``sequential-adaptive`` chooses its own). Register one with
``register_recovery(name, *, revision=0, structures=("weights",), **option_defaults)``: the keyword
options are ``fn``'s keyword-only parameters, their defaults are ``option_defaults`` (one place), their
type and range the parameters' annotations (``damping: Positive``), checked by ``pait.typed`` as score
options are. Raise ``revision`` whenever a change makes a recovery return other weights or masks: the
cached grid units of the old definition are then no longer reused (:func:`recovery_key`).

This module imports no torch: ``pait prune``'s flags and a config are checked before anything heavy loads.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from pait.errors import ConfigError, UnknownNameError
from pait.registry import Registry
from pait.typed import brief, check_value

RecoveryFn = Callable[..., Any]  # (inputs: RecoveryInputs, **options) -> Mask
STRUCTURES = ("weights", "channels")  # weights: unstructured masks; channels: structured pruning
REGISTRIES: dict[str, Registry[RecoveryFn]] = {
    "weights": Registry("recovery"), "channels": Registry("structured recovery")}


def keyword_options(fn: RecoveryFn) -> dict[str, Any]:
    """The type hint of each keyword-only option of ``fn`` (its annotation, else ``Any``). Each annotation
    is resolved alone: the ones of ``inputs`` and of the result may name types imported only for checkers."""
    out = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind is not p.KEYWORD_ONLY:
            continue
        hint = p.annotation
        if isinstance(hint, str):
            try:
                hint = eval(hint, fn.__globals__)  # noqa: S307  (the module's own annotation, as typing does)
            except NameError:  # a plugin's annotation that does not resolve: the option goes unchecked
                hint = Any
        out[p.name] = Any if hint is p.empty else hint
    return out


def register_recovery(name: str, *, revision: int = 0, structures: tuple[str, ...] = ("weights",),
                      **option_defaults: Any) -> Callable[[RecoveryFn], RecoveryFn]:
    """Decorator: register ``fn(inputs, **options)`` as ``name`` for each of ``structures``, with its options'
    defaults ``option_defaults`` (exactly ``fn``'s keyword-only parameters) and ``revision``."""

    def wrap(fn: RecoveryFn) -> RecoveryFn:
        hints = keyword_options(fn)
        if set(hints) != set(option_defaults):
            raise TypeError(f"recovery {name!r}: options {sorted(option_defaults)} are not the keyword-only "
                            f"parameters {sorted(hints)} of {fn.__name__}")
        for option, value in option_defaults.items():
            check_value(hints[option], value, f"recovery {name!r}: default of {option}")
        for structure in structures:
            REGISTRIES[_structure(structure)].register(name, revision=revision, options=dict(option_defaults),
                                                       hints=hints)(fn)
        return fn

    return wrap


def _structure(structure: str) -> str:
    if structure not in REGISTRIES:
        raise ConfigError(f"unknown structure {structure!r}; choose one of {', '.join(STRUCTURES)}")
    return structure


def get_recovery(name: str, structure: str = "weights") -> RecoveryFn:
    """The recovery registered as ``name`` for ``structure``; a ConfigError lists the known names."""
    registry = REGISTRIES[_structure(structure)]
    if name not in registry:
        raise UnknownNameError(f"unknown {registry.kind} {brief(name)}; choose one of {', '.join(registry.known())}")
    return registry.get(name)


def recovery_names(structure: str = "weights") -> tuple[str, ...]:
    """The recoveries of ``structure``, in registration order."""
    return tuple(REGISTRIES[_structure(structure)].names())


def recovery_revision(name: str, structure: str = "weights") -> int:
    """The revision of ``name``'s definition (0 for a recovery never changed since caching began)."""
    return int(REGISTRIES[_structure(structure)].metadata(name)["revision"])


def recovery_options(name: str, options: Mapping[str, Any] | None = None, structure: str = "weights") -> dict[str, Any]:
    """The options ``name`` is called with: its defaults, overridden by ``options`` (checked by
    :func:`check_recovery_options`)."""
    return {**REGISTRIES[_structure(structure)].metadata(name)["options"], **(options or {})}


def recovery_key(name: str, options: Mapping[str, Any] | None = None, structure: str = "weights") -> dict[str, Any]:
    """What a unit key holds about its recovery: the name, every option it runs with (defaults included)
    and its revision."""
    return {"recovery": name, "recovery_options": recovery_options(name, options, structure),
            "recovery_revision": recovery_revision(name, structure)}


def run_recovery(name: str, inputs: Any, options: Mapping[str, Any] | None = None, structure: str = "weights") -> Any:
    """Call recovery ``name`` of ``structure`` on ``inputs`` (a RecoveryInputs) with its defaults overridden by
    ``options``; returns the mask it applied."""
    return get_recovery(name, structure)(inputs, **recovery_options(name, options, structure))


def check_recovery_options(recovery_options: Mapping[str, Any], where: str = "recovery_options",
                           structure: str = "weights") -> None:
    """Every key names a recovery of ``structure`` and every option is one it takes, of the type and in the
    range its annotation declares, else a ConfigError naming it (``where``, the recovery, the option)."""
    registry = REGISTRIES[_structure(structure)]
    if not isinstance(recovery_options, Mapping):
        raise ConfigError(f"{where} must be a mapping of recovery -> options, got {brief(recovery_options)}")
    for name, options in recovery_options.items():
        if name not in registry:
            raise ConfigError(f"{where}: unknown {registry.kind} {brief(name)}; known: {', '.join(registry.known())}")
        if not isinstance(options, Mapping):
            raise ConfigError(f"{where}: the options of recovery {name!r} must be a mapping, got {brief(options)}")
        hints = registry.metadata(name)["hints"]
        unknown = [str(o) for o in options if o not in hints]
        if unknown:
            raise ConfigError(f"{where}: recovery {name!r} has no option(s) {', '.join(unknown)}; "
                              f"its options: {', '.join(hints) or 'none'}")
        for option, value in options.items():
            check_value(hints[option], value, f"{where}: {name}.{option}")
