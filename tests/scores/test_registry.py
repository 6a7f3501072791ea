"""Every registered score on a tiny stand-in of every encoder family: shapes, finiteness, keys."""

import pytest
import torch
from timm.models.efficientnet import _gen_efficientnet_lite
from timm.models.resnet import BasicBlock, ResNet
from timm.models.vision_transformer import VisionTransformer

from pait.encoders.base import prunable_parameter_names, timm_pre_logits
from pait.heads import HeadedModel
from pait.scores import SCORES, get_score
from tests.scores import tiny

OPTIONS = {"synflow": {"sparsity": 0.5, "iterations": 3}, "px": {"sparsity": 0.5, "rounds": 3}}


def _resnet():
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=0, channels=(8, 16, 16, 16), stem_width=8)


def _efficientnet_lite():  # tf_ variant: depthwise convs and dynamic 'same' padding (Conv2dSame)
    return _gen_efficientnet_lite("tf_efficientnet_lite0", channel_multiplier=0.25, depth_multiplier=0.25, num_classes=0)


def _vit():
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0)


def _clip_like():  # nn.MultiheadAttention, sequence-first as in OpenAI CLIP
    return tiny.TinyViT(batch_first=False, img=32)


FAMILIES = {"resnet": (_resnet, timm_pre_logits), "efficientnet_lite": (_efficientnet_lite, timm_pre_logits),
            "vit": (_vit, timm_pre_logits), "clip_like": (_clip_like, lambda m, x: m(x))}
PX_SCOPE = {"resnet", "efficientnet_lite"}  # ReLU, and ReLU6 gated by its derivative


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    torch.manual_seed(0)
    build, feature_fn = FAMILIES[request.param]
    backbone = build().eval()
    dim = feature_fn(backbone, torch.zeros(1, 3, 32, 32)).shape[-1]
    model = HeadedModel(backbone, feature_fn, 0.1 * torch.randn(dim, tiny.CLASSES)).eval()
    own = dict(backbone.named_parameters())
    params = {n: own[n] for n in prunable_parameter_names(backbone, ("head",) if request.param == "clip_like" else ())}
    return request.param, model, params


@pytest.mark.parametrize("score", SCORES)
def test_every_score_runs_on_every_family(family, score):
    name, model, params = family
    data = tiny.batches(n=2, batch=2 if score == "px" else 1, shape=(3, 32, 32))  # px: BatchNorm on batch statistics
    data = [(x.float(), y) for x, y in data]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    if score == "px" and name not in PX_SCOPE:
        with pytest.raises(ValueError, match="ReLU conv nets only"):
            get_score(score)(model, data, params)
        return
    result = get_score(score)(model, data, params, **OPTIONS.get(score, {}))
    assert not (score == "px" and all(float(r.max()) == 0.0 for r in result.values()))
    assert list(result) == list(params)
    for k, p in params.items():
        assert result[k].shape == p.shape, k
        assert torch.isfinite(result[k]).all(), k
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_only_a_revised_score_carries_its_revision_into_the_stage_keys():
    from pait.grid.stages import revision

    assert revision("synflow") == {"revision": 1}  # its ReLU6 handling changed its scores
    assert revision("px") == {"revision": 1}  # re-implemented against its authors' code
    assert all(revision(s) == {} for s in ("magnitude", "fisher_diag", "kfac", "snip", "grasp", "random"))
