"""Context managers that set module and parameter flags for a pass and restore them after."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module in eval mode (BN uses its running statistics) and restore the flags after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@contextmanager
def requiring_grad(params: Mapping[str, nn.Parameter]) -> Iterator[None]:
    """Make every parameter of ``params`` require grad; restore the flags after."""
    flags = [(p, p.requires_grad) for p in params.values()]
    for p, _ in flags:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
