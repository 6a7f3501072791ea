import torch
from torch import nn

from pait.prune.bn_recalibration import recalibrate_batchnorm
from tests.scores import tiny


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                          nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5, momentum=0.3), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten()).double()
    with torch.no_grad():
        for bn in (model[1], model[5]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
    return model.eval()


def _by_hand(model, batches):
    """Cumulative averages of each batch's mean and unbiased variance, with BN1 normalising by batch statistics."""
    conv1, bn1, conv2 = model[0], model[1], model[4]
    stats = {1: [], 5: []}
    for x, _ in batches:
        z1 = conv1(x)
        m1, v1 = z1.mean((0, 2, 3)), z1.var((0, 2, 3), unbiased=False)
        stats[1].append((m1, z1.var((0, 2, 3), unbiased=True)))
        y1 = (z1 - m1[:, None, None]) / torch.sqrt(v1[:, None, None] + bn1.eps) * bn1.weight[:, None, None] \
            + bn1.bias[:, None, None]
        z2 = conv2(torch.relu(y1))  # dropout stays in eval mode: identity
        stats[5].append((z2.mean((0, 2, 3)), z2.var((0, 2, 3), unbiased=True)))
    return {i: (torch.stack([m for m, _ in s]).mean(0), torch.stack([v for _, v in s]).mean(0)) for i, s in stats.items()}


@torch.no_grad()
def test_running_statistics_equal_the_cumulative_batch_statistics_computed_by_hand():
    model = _model()
    batches = tiny.batches(n=10, batch=4)  # batches of 4, 4 and 2: the cumulative average weighs batches equally
    params = {n: p.clone() for n, p in model.named_parameters()}
    expected = _by_hand(model, batches)
    assert recalibrate_batchnorm(model, batches) == 2
    for i, (mean, var) in expected.items():
        assert torch.allclose(model[i].running_mean, mean, atol=1e-12)
        assert torch.allclose(model[i].running_var, var, atol=1e-12)
        assert model[i].num_batches_tracked == 3
    assert (model[1].momentum, model[5].momentum) == (0.1, 0.3)
    assert not any(m.training for m in model.modules())
    assert all(torch.equal(p, params[n]) for n, p in model.named_parameters())


@torch.no_grad()
def test_training_flags_are_restored_and_a_model_without_batchnorm_is_left_alone():
    model = _model().train()
    recalibrate_batchnorm(model, tiny.batches(n=4, batch=2))
    assert all(m.training for m in model.modules())
    mlp = tiny.mlp()
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    assert recalibrate_batchnorm(mlp, tiny.batches(n=4, batch=2)) == 0
    assert all(torch.equal(v, before[k]) for k, v in mlp.state_dict().items())


def test_bn_plus_sequential_is_sequential_then_recalibration():
    from pait.heads import HeadedModel
    from pait.prune.recoveries import RecoveryInputs, run_recovery
    from pait.prune.sequential import sequential_prune
    from pait.tasks.base import TaskData

    gen = torch.Generator().manual_seed(0)
    calib = TaskData(torch.randint(0, 256, (8, 3, 8, 8), generator=gen, dtype=torch.uint8), torch.arange(8) % 3)
    normalize = lambda pixels: pixels.double() / 255 - 0.5  # noqa: E731
    head = torch.randn(5, 3, dtype=torch.float64)
    mask = {n: torch.rand(p.shape, generator=gen) > 0.5 for n, p in _model().named_parameters() if p.ndim > 1}
    composed = HeadedModel(_model(), lambda m, x: m(x), head)
    run_recovery("bn+sequential", RecoveryInputs(composed, mask, calib, normalize, torch.device("cpu"), batch_size=4))
    by_hand = HeadedModel(_model(), lambda m, x: m(x), head)
    batches = [(normalize(calib.pixels[i:i + 4]), calib.labels[i:i + 4]) for i in (0, 4)]
    params = dict(by_hand.backbone.named_parameters())
    sequential_prune(by_hand, batches, params, mask)
    recalibrate_batchnorm(by_hand, batches)
    for key, value in by_hand.state_dict().items():
        assert torch.allclose(composed.state_dict()[key].double(), value.double(), atol=1e-12), key
    assert not torch.equal(composed.backbone[1].running_mean, _model()[1].running_mean)
