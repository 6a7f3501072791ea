"""Several masked re-trainings of one model packed into one loop (``finetune_many``).

K copies of the same starting weights, each with its own mask (e.g. the 7 sparsities of one score),
are trained on the same source data in the same batch order as K separate ``finetune`` calls with the
same seed. The copies' parameters are stacked along a new leading dimension and one
``vmap(functional_call)`` runs all K forward/backward passes as batched kernels (a conv over K weight
sets becomes one grouped conv), which fills a GPU that one small re-training leaves idle.

``torch.optim`` cannot step vmapped stacked parameters, so SGD with momentum and weight decay is
written out by hand with ``torch._foreach_*`` ops, matching ``torch.optim.SGD`` (dampening 0, no
Nesterov) and ``MultiStepLR``. Buffers (BatchNorm running statistics, the frozen head) are shared
and unbatched; the model stays in eval mode, so BatchNorm uses its running statistics.
``FinetuneConfig.channels_last`` and ``compile`` are not applied in this loop (contiguous, eager).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from pait.config import FinetuneConfig
from pait.heads import mse_to_one_hot
from pait.tasks.base import TaskData


def multistep_lr(config: FinetuneConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` under ``MultiStepLR(milestones, gamma)``."""
    return config.lr * config.gamma ** bisect_right(sorted(config.milestones), epoch)


def finetune_many(
    model: nn.Module,
    data: TaskData,
    masks: Sequence[Mapping[str, Tensor]],
    config: FinetuneConfig,
    normalize: Callable[[Tensor], Tensor],
    device: torch.device,
    seed: int = 0,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[dict[str, Tensor], list[list[float]]]:
    """Re-train K masked copies of ``model`` at once; ``masks[k]`` is keyed by ``model``'s parameter names.

    Returns the stacked trained parameters (name -> tensor of shape (K, *param.shape)) and each
    copy's epoch losses. ``model`` itself is not changed; load copy k with ``load_copy``.
    """
    model.eval()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for mask in masks:
        unknown = sorted(set(mask) - set(names))
        if unknown:
            raise KeyError(f"mask names parameters the model does not train: {', '.join(unknown[:5])}")
    base = dict(model.named_parameters())
    fixed = {n: p.detach() for n, p in base.items() if n not in names}
    buffers = {**dict(model.named_buffers()), **fixed}
    masked = [n for n in names if n in masks[0]]
    if any(set(m) != set(masked) for m in masks):
        raise ValueError("every mask must name the same parameters")
    factors = [torch.stack([m[n].to(device=base[n].device, dtype=base[n].dtype) for m in masks]) for n in masked]
    params = [torch.stack([base[n].detach()] * len(masks)).requires_grad_() for n in names]
    held = [params[names.index(n)] for n in masked]

    def loss_of(p: tuple[Tensor, ...], x: Tensor, y: Tensor) -> Tensor:
        return mse_to_one_hot(functional_call(model, ({**dict(zip(names, p)), **buffers},), (x,)).float(), y)

    batched_loss = vmap(loss_of, in_dims=(0, None, None))
    generator = torch.Generator().manual_seed(seed)
    inputs, labels = normalize(data.pixels.to(device)), data.labels.to(device)
    velocity: list[Tensor] = []
    with torch.no_grad():
        torch._foreach_mul_(held, factors)
    losses = []
    for epoch in range(config.epochs):
        lr = multistep_lr(config, epoch)
        order = torch.randperm(len(data), generator=generator).to(device, non_blocking=True)
        total = torch.zeros(len(masks), device=device, dtype=torch.float64)
        for start in range(0, len(data), config.batch_size):
            idx = order[start : start + config.batch_size]
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                loss = batched_loss(tuple(params), inputs[idx], labels[idx])
            grads = torch.autograd.grad(loss.sum(), params)  # copies are independent: d(sum)/d(copy k) = d(loss k)
            with torch.no_grad():
                grads = torch._foreach_add(grads, params, alpha=config.weight_decay)
                if not velocity:
                    velocity = [g.clone() for g in grads]
                else:
                    torch._foreach_mul_(velocity, config.momentum)
                    torch._foreach_add_(velocity, grads)
                torch._foreach_add_(params, velocity, alpha=-lr)
                torch._foreach_mul_(held, factors)
            total += loss.detach() * len(idx)
        losses.append((total / len(data)).tolist())
    per_copy = [list(col) for col in zip(*losses)]
    return {n: p.detach() for n, p in zip(names, params)}, per_copy


@torch.no_grad()
def load_copy(model: nn.Module, stacked: Mapping[str, Tensor], k: int) -> None:
    """Copy the k-th packed copy's parameters into ``model``."""
    params = dict(model.named_parameters())
    for name, value in stacked.items():
        params[name].copy_(value[k])
