"""Checkpoints needing arbitrary unpickling are refused without running their payload; weights policy."""

import pytest
import torch

from pait.encoders import CheckpointError, MissingWeightsError, load_encoder
from pait.errors import ConfigError


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


@pytest.mark.parametrize("name", ["resnet50_dino", "vitb16_clip", "timm:resnet18"])
def test_pickle_payload_is_refused_and_never_runs(name, tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "extra": Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match="needs arbitrary code to unpickle and was refused.*Convert it"):
        load_encoder(name, weights=path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["resnet50_supervised", "resnet50_mocov2", "resnet50_dino",
                                  "vitb16_supervised", "vitb16_dino", "vitb16_clip"])
def test_paper_encoders_require_weights(name):
    with pytest.raises(MissingWeightsError, match=r"needs its pretrained weights.*published as.*weights='random'"):
        load_encoder(name)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_encoder("resnet50_dino", weights=tmp_path / "nope.pth")


def test_timm_family_random_by_default():
    encoder = load_encoder("timm:resnet18")
    assert encoder.feature_dim == 512 and encoder.info["weights"] == "random"
    assert "fc.weight" not in encoder.prunable_parameters()
    with pytest.raises(ConfigError, match="timm has no model"):
        load_encoder("timm:no_such_model")
