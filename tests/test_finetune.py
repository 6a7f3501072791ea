import torch
from torch import nn

from pait.config import FinetuneConfig
from pait.train.finetune import MaskHolder, finetune
from pait.masks import global_mask
from pait.tasks.base import TaskData


def _tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


def test_pruned_weights_are_exactly_zero_after_retraining_and_bn_stats_frozen():
    model = _tiny_cnn()
    params = {n: p for n, p in model.named_parameters() if n.endswith("weight") and p.ndim > 1}
    mask = global_mask({n: p.detach().abs() for n, p in params.items()}, 0.5)
    bn_mean = model[1].running_mean.clone()
    gen = torch.Generator().manual_seed(1)
    data = TaskData(torch.randint(0, 256, (24, 3, 8, 8), dtype=torch.uint8, generator=gen), torch.arange(24) % 3)
    config = FinetuneConfig(epochs=3, lr=0.5, milestones=(2,), batch_size=8)
    losses = finetune(model, data, MaskHolder(params, mask), config, lambda x: x.float() / 255, torch.device("cpu"))
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    for name, p in params.items():
        assert (p[~mask[name]] == 0).all(), name
        assert (p[mask[name]] != 0).any(), name
    assert torch.equal(model[1].running_mean, bn_mean)


def test_retraining_changes_kept_weights_and_lowers_the_loss():
    model = _tiny_cnn()
    params = {n: p for n, p in model.named_parameters() if p.ndim > 1}
    mask = global_mask({n: p.detach().abs() for n, p in params.items()}, 0.2)
    before = {n: p.detach().clone() for n, p in params.items()}
    gen = torch.Generator().manual_seed(2)
    data = TaskData(torch.randint(0, 256, (30, 3, 8, 8), dtype=torch.uint8, generator=gen), torch.arange(30) % 3)
    config = FinetuneConfig(epochs=15, lr=0.2, milestones=(50,), batch_size=30, weight_decay=0.0)
    losses = finetune(model, data, MaskHolder(params, mask), config, lambda x: x.float() / 255, torch.device("cpu"))
    assert losses[-1] < losses[0]
    assert any(not torch.equal(before[n], p) for n, p in params.items())


def test_channels_last_gives_the_same_weights_and_restores_the_layout():
    gen = torch.Generator().manual_seed(3)
    data = TaskData(torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=gen), torch.arange(16) % 3)
    trained = []
    for option in ("off", "on"):
        model = _tiny_cnn().double()
        params = {n: p for n, p in model.named_parameters() if p.ndim > 1}
        mask = global_mask({n: p.detach().abs() for n, p in params.items()}, 0.5)
        config = FinetuneConfig(epochs=2, lr=0.1, batch_size=8, channels_last=option)
        finetune(model, data, MaskHolder(params, mask), config, lambda x: x.double() / 255, torch.device("cpu"))
        assert model[0].weight.is_contiguous()
        trained.append(model.state_dict())
    for name, value in trained[0].items():
        torch.testing.assert_close(trained[1][name], value, rtol=1e-10, atol=1e-12)
