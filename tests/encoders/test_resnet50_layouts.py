"""Each ResNet-50 reader against a checkpoint written in its authors' layout; reference: torchvision."""

import pytest
import torch
import torchvision

from pait.encoders import CheckpointError, load_encoder


@pytest.fixture(scope="module")
def reference(randomize_norms) -> torchvision.models.ResNet:
    torch.manual_seed(1)
    model = torchvision.models.resnet50().eval()
    randomize_norms(model, 1)
    return model


@pytest.fixture(scope="module")
def reference_features(reference, images) -> torch.Tensor:
    trunk = torch.nn.Sequential(*list(reference.children())[:-1])
    with torch.no_grad():
        return trunk(images).flatten(1)


def backbone_state(reference) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in reference.state_dict().items() if not k.startswith("fc.")}


def write_supervised(reference, tmp) -> str:
    path = tmp / "resnet50-0676ba61.pth"
    torch.save(reference.state_dict(), path)
    return str(path)


def write_mocov2(reference, tmp) -> str:
    q = {f"module.encoder_q.{k}": v for k, v in backbone_state(reference).items()}
    k = {f"module.encoder_k.{k}": v + 1 for k, v in backbone_state(reference).items()}
    heads = {}
    for enc in ("encoder_q", "encoder_k"):
        heads |= {
            f"module.{enc}.fc.0.weight": torch.randn(2048, 2048), f"module.{enc}.fc.0.bias": torch.randn(2048),
            f"module.{enc}.fc.2.weight": torch.randn(128, 2048), f"module.{enc}.fc.2.bias": torch.randn(128),
        }
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([param], lr=0.03, momentum=0.9, weight_decay=1e-4)
    param.sum().backward()
    optimizer.step()
    checkpoint = {
        "epoch": 800,
        "arch": "resnet50",
        "state_dict": q | k | heads | {"module.queue": torch.randn(128, 65536), "module.queue_ptr": torch.zeros(1, dtype=torch.long)},
        "optimizer": optimizer.state_dict(),
    }
    path = tmp / "moco_v2_800ep_pretrain.pth.tar"
    torch.save(checkpoint, path)
    return str(path)


def write_dino(reference, tmp) -> str:
    path = tmp / "dino_resnet50_pretrain.pth"
    torch.save(backbone_state(reference), path)
    return str(path)


LAYOUTS = {"resnet50_supervised": write_supervised, "resnet50_mocov2": write_mocov2, "resnet50_dino": write_dino}


@pytest.mark.parametrize("name", LAYOUTS)
def test_reader_matches_torchvision(name, reference, reference_features, images, tmp_path_factory):
    path = LAYOUTS[name](reference, tmp_path_factory.mktemp(name))
    encoder = load_encoder(name, weights=path)
    with torch.no_grad():
        features = encoder.features(images)
    assert features.shape == (2, 2048) == (2, encoder.feature_dim)
    torch.testing.assert_close(features, reference_features, atol=1e-5, rtol=1e-5)


def test_wrong_layout_is_refused_with_the_offending_keys(reference, tmp_path):
    path = write_supervised(reference, tmp_path)  # has fc: not the DINO layout
    with pytest.raises(CheckpointError, match=r"DINO ResNet-50.*unexpected keys: fc\.weight, fc\.bias"):
        load_encoder("resnet50_dino", weights=path)
    with pytest.raises(CheckpointError, match="MoCo v2 layout: no 'state_dict'"):
        load_encoder("resnet50_mocov2", weights=path)


def test_wrong_shape_is_refused(reference, tmp_path):
    state = backbone_state(reference)
    state["conv1.weight"] = state["conv1.weight"][:32]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"wrong shapes: conv1\.weight: \(32, 3, 7, 7\) != \(64, 3, 7, 7\)"):
        load_encoder("resnet50_dino", weights=tmp_path / "bad.pth")
