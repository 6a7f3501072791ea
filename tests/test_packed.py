"""finetune_many (K masked copies in one vmapped loop) against K separate finetune() calls, float64."""

import pytest
import timm
import torch
from torch import nn

from pait.config import FinetuneConfig
from pait.encoders.base import timm_pre_logits
from pait.train.finetune import MaskHolder, finetune
from pait.heads import HeadedModel
from pait.masks import global_mask
from pait.train.packed import finetune_many, load_copy
from pait.tasks.base import TaskData


def _tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2),
                         nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _tiny_vit() -> nn.Module:
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=8, patch_size=4,
                             embed_dim=8, depth=1, num_heads=2)


def _headed(backbone: nn.Module, dim: int) -> HeadedModel:
    torch.manual_seed(1)
    for m in backbone.modules():  # non-trivial frozen BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    feature_fn = timm_pre_logits if hasattr(backbone, "forward_head") else (lambda m, x: m(x))
    return HeadedModel(backbone, feature_fn, torch.randn(dim, 3)).double()


@pytest.mark.parametrize("make, dim", [(_tiny_cnn, 6), (_tiny_vit, 8)])
def test_finetune_many_matches_separate_finetune_calls(make, dim):
    torch.manual_seed(0)
    model = _headed(make(), dim)
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    params = {n: p for n, p in model.named_parameters() if p.ndim > 1 and n != "head"}
    scores = {n: p.detach().abs() for n, p in params.items()}
    masks = [global_mask(scores, s) for s in (0.2, 0.5, 0.8)]
    gen = torch.Generator().manual_seed(2)
    data = TaskData(torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8, generator=gen), torch.arange(20) % 3)
    config = FinetuneConfig(epochs=3, lr=0.05, milestones=(1, 2), batch_size=8)
    normalize = lambda x: x.double() / 255  # noqa: E731
    cpu = torch.device("cpu")

    stacked, packed_losses = finetune_many(model, data, masks, config, normalize, cpu, seed=3)
    assert all(torch.equal(v, theta0[k]) for k, v in model.state_dict().items())  # model left unchanged
    for k, mask in enumerate(masks):
        model.load_state_dict(theta0)
        losses = finetune(model, data, MaskHolder(params, mask), config, normalize, cpu, seed=3)
        assert losses == pytest.approx(packed_losses[k], rel=1e-10, abs=1e-12)
        for name, p in model.named_parameters():
            torch.testing.assert_close(stacked[name][k], p.detach(), rtol=1e-10, atol=1e-10, msg=name)
        for name in mask:
            assert (stacked[name][k][~mask[name]] == 0).all()
        model.load_state_dict(theta0)
        load_copy(model, stacked, k)
        assert torch.equal(model.get_parameter(next(iter(mask))), stacked[next(iter(mask))][k])
