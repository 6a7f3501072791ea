"""What every recovery is called with: the model, the mask, the calibration data and the run's settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # kept out of the import: the registry is read before torch loads
    import torch
    from torch import Tensor, nn

    from pait.config import FinetuneConfig
    from pait.heads import HeadedModel
    from pait.tasks.base import TaskData


@dataclass
class RecoveryInputs:
    """A recovery's inputs. ``model`` (encoder then frozen head) holds the UNPRUNED weights on entry;
    ``mask`` (True = kept, keys of ``model.backbone``'s parameters) is the mask to apply; ``calib`` the
    calibration split, read in batches of ``batch_size`` normalised by ``normalize`` on ``device``;
    ``seed`` orders re-training; ``finetune`` is ``sgd``'s schedule; ``autocast`` its mixed precision (None:
    full); ``on_epoch(epoch, loss)`` is called after each re-training epoch; ``nm`` is the mask's N:M pattern
    (n kept of every m) or None."""

    model: HeadedModel
    mask: Mapping[str, Tensor]
    calib: TaskData
    normalize: Callable[[Tensor], Tensor]
    device: torch.device
    batch_size: int = 32
    seed: int = 0
    finetune: FinetuneConfig | None = None
    autocast: torch.dtype | None = None
    on_epoch: Callable[[int, float], None] | None = None
    nm: tuple[int, int] | None = None

    def batches(self) -> list[tuple[Tensor, Tensor]]:
        """The calibration split as (normalised images, labels) batches on ``device``."""
        from pait.heads import SplitBatches

        return list(SplitBatches(self.calib, self.normalize, self.batch_size, self.device))

    def params(self) -> dict[str, nn.Parameter]:
        """The backbone's named parameters (biases included)."""
        return dict(self.model.backbone.named_parameters())


@dataclass
class ChannelInputs(RecoveryInputs):
    """The inputs of a recovery after structured pruning: ``model`` holds the module just cut (the removed
    channels are gone, so ``mask`` is empty), ``dense`` the encoder before the cut and ``structure`` the
    record of :func:`pait.prune.structured.groups.remove_units`."""

    dense: nn.Module | None = None
    structure: Mapping[str, Any] | None = None
