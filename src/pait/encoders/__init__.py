"""Encoders: a registry of name -> factory; each encoder carries preprocessing and its prunable weights."""

from pait.encoders.base import Encoder, prunable_parameter_names
from pait.encoders.preprocessing import Preprocessing
from pait.encoders.registry import EncoderSpec, encoder_specs, load_encoder, register_encoder
from pait.encoders import efficientnet_lite as _efficientnet_lite  # noqa: F401  (registers)

__all__ = [
    "Encoder",
    "EncoderSpec",
    "Preprocessing",
    "encoder_specs",
    "load_encoder",
    "prunable_parameter_names",
    "register_encoder",
]
