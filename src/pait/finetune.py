"""Masked re-training on the source task: SGD with momentum on MSE to one-hot, multistep schedule.

The encoder stays in eval mode throughout, so BatchNorm running statistics are frozen (and dropout is
off); BN affine parameters and biases are trained. After every optimiser step the pruned weights are
zeroed again with one fused multiply over all masked tensors, so they stay exactly 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from pait.config import FinetuneConfig
from pait.headed import mse_to_one_hot
from pait.tasks.base import TaskData


class MaskHolder:
    """Keeps pruned weights at zero: ``hold()`` is a single ``torch._foreach_mul_`` over flat lists."""

    def __init__(self, params: Mapping[str, nn.Parameter], mask: Mapping[str, Tensor]) -> None:
        unknown = sorted(set(mask) - set(params))
        if unknown:
            raise KeyError(f"mask names parameters the model does not have: {', '.join(unknown[:5])}")
        self.targets = [params[n] for n in mask]
        self.factors = [mask[n].to(device=params[n].device, dtype=params[n].dtype) for n in mask]

    @torch.no_grad()
    def hold(self) -> None:
        if self.targets:
            torch._foreach_mul_(self.targets, self.factors)


def finetune(
    model: nn.Module,
    data: TaskData,
    holder: MaskHolder,
    config: FinetuneConfig,
    normalize: Callable[[Tensor], Tensor],
    device: torch.device,
    seed: int = 0,
    autocast_dtype: torch.dtype | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Re-train ``model`` (images -> class scores) on ``data`` with masks held; returns epoch losses."""
    model.eval()  # BN statistics frozen, dropout off
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.gamma)
    generator = torch.Generator().manual_seed(seed)
    pixels, labels = data.pixels.to(device), data.labels.to(device)
    holder.hold()
    losses = []
    for epoch in range(config.epochs):
        order = torch.randperm(len(data), generator=generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, len(data), config.batch_size):
            idx = order[start : start + config.batch_size]
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                loss = mse_to_one_hot(model(normalize(pixels[idx])).float(), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            holder.hold()
            total += loss.detach() * len(idx)  # no host sync inside the epoch
        schedule.step()
        losses.append(total.item() / len(data))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return losses
