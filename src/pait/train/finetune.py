"""Masked re-training on the source task: SGD with momentum on MSE to one-hot, multistep schedule.

The encoder stays in eval mode throughout, so BatchNorm running statistics are frozen (and dropout is
off); BN affine parameters and biases are trained. After every optimiser step the pruned weights are
zeroed again with one fused multiply over all masked tensors, so they stay exactly 0.

Fast paths (see BENCHMARKS.md): the source images are moved to the device and normalised once per
call, not per batch; the epoch loss is accumulated on the device (one host sync per epoch); bf16
autocast when asked; channels_last for conv nets (``FinetuneConfig.channels_last``, on by default on
CUDA); optional ``torch.compile`` (``FinetuneConfig.compile``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from pait.config import FinetuneConfig
from pait.errors import ConfigError
from pait.heads import mse_to_one_hot
from pait.tasks.base import TaskData


class MaskHolder:
    """Keeps pruned weights at zero: ``hold()`` is a single ``torch._foreach_mul_`` over flat lists.

    The 0/1 factors are precomputed in each parameter's dtype, device and memory layout; call
    ``match_layout()`` after changing the parameters' layout (e.g. to channels_last).
    """

    def __init__(self, params: Mapping[str, nn.Parameter], mask: Mapping[str, Tensor]) -> None:
        unknown = sorted(set(mask) - set(params))
        if unknown:
            raise KeyError(f"mask names parameters the model does not have: {', '.join(unknown[:5])}")
        self.targets = [params[n] for n in mask]
        self.factors = [torch.empty_like(params[n]).copy_(mask[n]) for n in mask]

    def match_layout(self) -> None:
        """Re-lay the factors out like their parameters (``empty_like`` preserves strides)."""
        self.factors = [torch.empty_like(p).copy_(f) for p, f in zip(self.targets, self.factors)]

    @torch.no_grad()
    def hold(self) -> None:
        if self.targets:
            torch._foreach_mul_(self.targets, self.factors)


def is_conv_net(model: nn.Module) -> bool:
    """True when most weights sit in 2-D convolutions (a ResNet, not a ViT with its one patch conv)."""
    conv = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    return conv > 0.5 * sum(p.numel() for p in model.parameters())


def use_channels_last(option: str, model: nn.Module, device: torch.device) -> bool:
    """Resolve ``FinetuneConfig.channels_last``: ``auto`` is on for conv nets on CUDA."""
    if option not in ("auto", "on", "off"):
        raise ConfigError(f"finetune.channels_last must be auto, on or off, got {option!r}")
    if option == "auto":
        return device.type == "cuda" and is_conv_net(model)
    return option == "on"


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
    """Re-train ``model`` (images -> class scores) on ``data`` with masks held; returns epoch losses.

    The model is left in its original (contiguous) memory layout.
    """
    model.eval()  # BN statistics frozen, dropout off
    channels_last = use_channels_last(config.channels_last, model, device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=torch.channels_last)
        holder.match_layout()
    forward = torch.compile(model) if config.compile else model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.gamma)
    generator = torch.Generator().manual_seed(seed)
    inputs = normalize(data.pixels.to(device))  # once per unit, not per batch (normalize acts per image)
    labels = data.labels.to(device)
    holder.hold()
    losses = []
    try:
        for epoch in range(config.epochs):
            order = torch.randperm(len(data), generator=generator).to(device, non_blocking=True)
            total = torch.zeros((), device=device, dtype=torch.float64)
            for start in range(0, len(data), config.batch_size):
                idx = order[start : start + config.batch_size]
                batch = inputs[idx].contiguous(memory_format=layout)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    loss = mse_to_one_hot(forward(batch).float(), labels[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                holder.hold()
                total += loss.detach() * len(idx)  # no host sync inside the epoch
            schedule.step()
            losses.append(total.item() / len(data))
            if on_epoch is not None:
                on_epoch(epoch, losses[-1])
    finally:
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
            holder.match_layout()
    return losses
