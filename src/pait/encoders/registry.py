"""Name -> encoder factory registry, and ``load_encoder``.

Two kinds of entries: fixed encoders (``resnet50_dino``), each a factory
``fn(weights, trust_torchscript) -> Encoder``; and families addressed by a prefix (``timm:<model>``),
each a factory ``fn(model_name, weights, trust_torchscript) -> Encoder``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pait.config import EncoderConfig
from pait.encoders.base import Encoder
from pait.errors import UnknownNameError

Weights = str | Path | None
Factory = Callable[[Weights, bool], Encoder]
FamilyFactory = Callable[[str, Weights, bool], Encoder]


@dataclass(frozen=True)
class EncoderSpec:
    """What ``pait encoders`` lists about a registered encoder; ``weights`` says where they come from."""

    name: str
    architecture: str
    pretraining: str
    weights: str
    factory: Factory


@dataclass(frozen=True)
class FamilySpec:
    """A family of encoders named ``<prefix>:<model>``."""

    prefix: str
    description: str
    weights: str
    factory: FamilyFactory


_REGISTRY: dict[str, EncoderSpec] = {}
_FAMILIES: dict[str, FamilySpec] = {}


def register_encoder(name: str, architecture: str, pretraining: str, weights: str) -> Callable[[Factory], Factory]:
    """Decorator registering an encoder factory ``fn(weights, trust_torchscript) -> Encoder``."""

    def wrap(fn: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"encoder {name!r} registered twice")
        _REGISTRY[name] = EncoderSpec(name, architecture, pretraining, weights, fn)
        return fn

    return wrap


def register_family(prefix: str, description: str, weights: str) -> Callable[[FamilyFactory], FamilyFactory]:
    """Decorator registering a family factory ``fn(model_name, weights, trust_torchscript) -> Encoder``."""

    def wrap(fn: FamilyFactory) -> FamilyFactory:
        if prefix in _FAMILIES:
            raise ValueError(f"encoder family {prefix!r} registered twice")
        _FAMILIES[prefix] = FamilySpec(prefix, description, weights, fn)
        return fn

    return wrap


def encoder_specs() -> list[EncoderSpec]:
    """All registered encoders, in registration order."""
    return list(_REGISTRY.values())


def family_specs() -> list[FamilySpec]:
    """All registered encoder families, in registration order."""
    return list(_FAMILIES.values())


def load_encoder(name: str, weights: Weights = None, trust_torchscript: bool = False) -> Encoder:
    """Build the encoder ``name`` and load ``weights``.

    ``weights`` is a file path; ``"random"`` asks for random initialisation (tests, benchmarks); ``None``
    is an error for encoders whose pretrained weights must be supplied by the user (the message says where
    they are published). ``trust_torchscript`` allows reading a TorchScript archive, which runs its code.
    """
    prefix, sep, model_name = name.partition(":")
    if sep and prefix in _FAMILIES:
        return _FAMILIES[prefix].factory(model_name, weights, trust_torchscript)
    try:
        spec = _REGISTRY[name]
    except KeyError:
        known = ", ".join([*_REGISTRY, *(f"{p}:<model>" for p in _FAMILIES)])
        raise UnknownNameError(f"unknown encoder {name!r}; known encoders: {known}") from None
    return spec.factory(weights, trust_torchscript)


def build_encoder(config: EncoderConfig) -> Encoder:
    """Load the encoder and apply the configured input size."""
    encoder = load_encoder(config.name, config.weights)
    if config.input_size is not None:
        encoder.preprocess = dataclasses.replace(encoder.preprocess, input_size=config.input_size)
    return encoder
