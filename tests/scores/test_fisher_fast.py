"""fisher_diag's layerwise per-example gradients against a per-example loop and the vmap path, in float64."""

import pytest
import torch
from timm.layers import Conv2dSame
from torch import nn

from pait.scores import fisher, get_score
from tests.scores import tiny
from tests.scores.test_fisher import fisher_by_loop


def convs() -> nn.Module:
    """Plain, strided depthwise, grouped, dilated, 'same'-padded (timm's Conv2dSame included) and 1x1 convs."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Tanh(),
                         nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6, bias=False), nn.Tanh(),  # depthwise, stride 2
                         nn.Conv2d(6, 4, (3, 1), padding=(1, 0), groups=2), nn.Tanh(),  # grouped, non-square
                         nn.Conv2d(4, 4, 3, dilation=2, padding="same"), nn.Tanh(),
                         Conv2dSame(4, 8, 3, stride=2, groups=4), nn.Tanh(),  # depthwise multiplier 2, asymmetric pad
                         nn.Conv2d(8, 6, 1, stride=2, groups=2), nn.Tanh(),  # 1x1: the matmul branch
                         nn.Conv2d(6, 5, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(5, tiny.CLASSES)).double().eval()


class Tokens(nn.Module):
    """Linear layers over tokens, batch-first or sequence-first; one layer applied twice (shared)."""

    def __init__(self, seq_first: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.seq_first = seq_first
        self.embed, self.shared, self.head = nn.Linear(12, 7), nn.Linear(7, 7), nn.Linear(7, tiny.CLASSES)

    def forward(self, images):
        x = images.reshape(len(images), 16, 12)  # 16 tokens of 12 features
        x = x.transpose(0, 1) if self.seq_first else x
        x = torch.tanh(self.shared(torch.tanh(self.shared(self.embed(x)))))
        return self.head(x.mean(0 if self.seq_first else 1))


class InPlace(nn.Module):
    """A conv whose output is changed in place afterwards: the layerwise path must not use it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, tiny.CLASSES)

    def forward(self, images):
        return self.fc(torch.relu_(self.conv(images)).mean((2, 3)))


MODELS = {"convs": convs, "tokens_batch_first": lambda: Tokens(False).double().eval(),
          "tokens_seq_first": lambda: Tokens(True).double().eval(), "vit_mha": tiny.vit,
          "vit_mha_seq_first": lambda: tiny.vit(False), "mlp": tiny.mlp, "cnn_bn_eval": tiny.cnn}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("chunk_size", [2, 16])
def test_layerwise_fisher_equals_loop_and_vmap(name, chunk_size):
    model, data = MODELS[name](), tiny.batches(n=7, batch=4)  # uneven chunks and batches
    params = {f"p{i}.{n}": p for i, (n, p) in enumerate(model.named_parameters())}  # norms, biases: vmap path
    expected = fisher_by_loop(model, data, params)
    got = get_score("fisher_diag")(model, data, params, chunk_size=chunk_size)
    old = get_score("fisher_diag")(model, data, params, chunk_size=chunk_size, layerwise=False)
    assert list(got) == list(params)
    for k in params:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(got[k], old[k], rtol=1e-10, atol=1e-14)


def _counting_vmap(monkeypatch):
    seen = []
    original = fisher._vmap_per_example_grads

    def spy(model, theta, x, y):
        seen.append(sorted(theta))
        return original(model, theta, x, y)

    monkeypatch.setattr(fisher, "_vmap_per_example_grads", spy)
    return seen


@pytest.mark.parametrize("name", ["convs", "tokens_seq_first", "vit_mha"])
def test_weights_of_covered_layers_never_take_the_vmap_path(name, monkeypatch):
    model = MODELS[name]()
    seen = _counting_vmap(monkeypatch)
    params = {n: p for n, p in model.named_parameters() if p.dim() > 1 and n != "pos"}
    get_score("fisher_diag")(model, tiny.batches(), params)
    assert seen == []


def test_output_changed_in_place_falls_back_to_vmap(monkeypatch):
    model = InPlace().double().eval()
    seen = _counting_vmap(monkeypatch)
    params = {"conv": model.conv.weight, "fc": model.fc.weight}
    data = tiny.batches()
    got = get_score("fisher_diag")(model, data, params)
    assert seen and all(names == ["conv.weight"] for names in seen)
    expected = fisher_by_loop(model, data, params)
    for k in params:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-10, atol=1e-14)


def test_token_count_equal_to_chunk_size_falls_back_to_vmap(monkeypatch):
    model = Tokens(seq_first=True).double().eval()  # 16 tokens: a chunk of 16 has no unique example dimension
    seen = _counting_vmap(monkeypatch)
    params = {"embed": model.embed.weight, "shared": model.shared.weight}
    data = tiny.batches(n=16, batch=16)
    got = get_score("fisher_diag")(model, data, params, chunk_size=16)
    assert seen == [["embed.weight", "shared.weight"]]
    expected = fisher_by_loop(model, data, params)
    for k in params:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-10, atol=1e-14)
