"""Name -> encoder factory registry, and ``load_encoder``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pait.encoders.base import Encoder

Factory = Callable[[str | Path | None], Encoder]


@dataclass(frozen=True)
class EncoderSpec:
    """What ``pait encoders`` lists about a registered encoder."""

    name: str
    architecture: str
    pretraining: str
    weights: str
    factory: Factory


_REGISTRY: dict[str, EncoderSpec] = {}


def register_encoder(name: str, architecture: str, pretraining: str, weights: str) -> Callable[[Factory], Factory]:
    """Decorator registering an encoder factory ``fn(weights_path_or_None) -> Encoder``."""

    def wrap(fn: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"encoder {name!r} registered twice")
        _REGISTRY[name] = EncoderSpec(name, architecture, pretraining, weights, fn)
        return fn

    return wrap


def encoder_specs() -> list[EncoderSpec]:
    """All registered encoders, in registration order."""
    return list(_REGISTRY.values())


def load_encoder(name: str, weights: str | Path | None = None) -> Encoder:
    """Build the encoder ``name``, loading ``weights`` (a file path) where the family needs one."""
    try:
        spec = _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise KeyError(f"unknown encoder {name!r}; known encoders: {known}") from None
    return spec.factory(weights)
