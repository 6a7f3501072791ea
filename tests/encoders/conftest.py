import pytest
import torch


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """A batch of two normalised-looking 224 px images."""
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def _randomize_norms(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in module.modules():
            if isinstance(mod, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) and mod.weight is not None:
                mod.weight.copy_(1 + 0.1 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=gen))
                mod.running_var.copy_(1 + 0.1 * torch.rand(mod.running_var.shape, generator=gen))


@pytest.fixture(scope="session")
def randomize_norms():
    """``fn(module, seed)``: give norm layers non-trivial affine parameters and BN statistics, so a mis-load shows."""
    return _randomize_norms
