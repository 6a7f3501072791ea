"""Encoders: a registry of name -> factory; each encoder carries preprocessing and its prunable weights.

Registered: the paper's six (``resnet50_{supervised,mocov2,dino}``, ``vitb16_{supervised,dino,clip}``,
weights supplied by the user), ``efficientnet_lite{0,1,2}`` and ``vits14_dinov2_imgfocus`` (weights
installed with packages), and the family ``timm:<model>``.
"""

from pait.encoders import clip as _clip  # noqa: F401  (registers)
from pait.encoders import dinov2_onnx as _dinov2_onnx  # noqa: F401  (registers)
from pait.encoders import efficientnet_lite as _efficientnet_lite  # noqa: F401  (registers)
from pait.encoders import resnet50 as _resnet50  # noqa: F401  (registers)
from pait.encoders import timm_any as _timm_any  # noqa: F401  (registers)
from pait.encoders import vit as _vit  # noqa: F401  (registers)
from pait.encoders.base import Encoder, prunable_parameter_names
from pait.encoders.checkpoints import RANDOM, CheckpointError, MissingWeightsError
from pait.encoders.preprocessing import Preprocessing
from pait.encoders.registry import ENCODERS, build_encoder, load_encoder, register_encoder

__all__ = [
    "RANDOM",
    "ENCODERS",
    "CheckpointError",
    "Encoder",
    "MissingWeightsError",
    "Preprocessing",
    "build_encoder",
    "load_encoder",
    "prunable_parameter_names",
    "register_encoder",
]
