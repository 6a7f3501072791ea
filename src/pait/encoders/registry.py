"""The encoder registry, and ``load_encoder``.

Two kinds of entries in ``ENCODERS``: fixed encoders (``resnet50_dino``), each a factory
``fn(weights, trust_torchscript) -> Encoder`` registered with ``architecture``, ``pretraining`` and
``weights`` metadata (what ``pait encoders`` lists); and families addressed by a prefix
(``timm:<model>``), each a factory ``fn(model_name, weights, trust_torchscript) -> Encoder``
registered with ``description`` and ``weights``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from pait.config import EncoderConfig
from pait.encoders.base import Encoder
from pait.registry import Registry

Weights = str | Path | None
Factory = Callable[[Weights, bool], Encoder]

ENCODERS: Registry[Factory] = Registry("encoder")
INIT_SEED = 0  # seed of every encoder's construction, so a random initialisation is the same in every process


def register_encoder(name: str, architecture: str, pretraining: str, weights: str) -> Callable[[Factory], Factory]:
    """Decorator registering an encoder factory ``fn(weights, trust_torchscript) -> Encoder`` with what
    ``pait encoders`` lists about it (``weights`` says where they come from)."""
    return ENCODERS.register(name, architecture=architecture, pretraining=pretraining, weights=weights)


def load_encoder(name: str, weights: Weights = None, trust_torchscript: bool = False) -> Encoder:
    """Build the encoder ``name`` and load ``weights``.

    ``weights`` is a file path; ``"random"`` asks for random initialisation (tests, benchmarks); ``None``
    is an error for encoders whose pretrained weights must be supplied by the user (the message says where
    they are published). ``trust_torchscript`` allows reading a TorchScript archive, which runs its code.
    An unknown name is a ConfigError listing the known ones.

    The encoder is built with the CPU generator seeded with ``INIT_SEED`` and restored afterwards: random
    weights are the same in every process and run (for a given torch build and CPU), whatever the global
    random state, and building an encoder leaves that state as it was.
    """
    factory = ENCODERS.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(INIT_SEED)
        return factory(weights, trust_torchscript)


def build_encoder(config: EncoderConfig) -> Encoder:
    """Load the encoder and apply the configured input size.

    A ViT built for a fixed image size (timm ``set_input_size``) gets its patch grid and position
    embedding resampled to the new size, so a smaller input means fewer tokens, not an error.
    """
    encoder = load_encoder(config.name, config.weights)
    if config.input_size is not None:
        encoder.preprocess = dataclasses.replace(encoder.preprocess, input_size=config.input_size)
        if hasattr(encoder.model, "set_input_size"):
            encoder.model.set_input_size(img_size=config.input_size)
    return encoder
