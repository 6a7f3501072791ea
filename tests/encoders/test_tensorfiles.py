"""Weight files are recognised by content; every damaged or misnamed file is one CheckpointError naming it."""

import pytest
import torch
from safetensors.torch import save_file

from pait.encoders.checkpoints import read_checkpoint
from pait.errors import CheckpointError, PaitError
from pait.tensorfiles import check_finite, read_safetensors


def test_a_legacy_torch_file_reads_and_its_truncation_is_named(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"a": torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(read_checkpoint(path)["a"], torch.ones(3))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is truncated or corrupt"):
        read_checkpoint(path)


def test_binary_junk_and_a_lying_header_are_named(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes([0xFF, 0x00, 0xFE, 0x01]) * 10)
    with pytest.raises(CheckpointError, match=f"{junk} is neither a safetensors nor a PyTorch"):
        read_checkpoint(junk)
    lying = tmp_path / "lying.safetensors"
    lying.write_bytes((10**6).to_bytes(8, "little") + b'{"a": 1}')
    with pytest.raises(CheckpointError, match="header claims 1000000 bytes, the file has 16"):
        read_safetensors(lying)


def test_safetensors_with_another_suffix_than_torch_ones_reads(tmp_path):
    path = tmp_path / "weights.st"
    save_file({"a": torch.ones(2)}, str(path))
    assert torch.equal(read_checkpoint(path)["a"], torch.ones(2))


def test_check_finite_names_the_first_bad_tensor():
    check_finite({"a": torch.ones(2), "n": torch.arange(3)}, "f")
    with pytest.raises(CheckpointError, match="checkpoint f: tensor b holds Inf values") as info:
        check_finite({"a": torch.ones(2), "b": torch.tensor([1.0, -float("inf")]), "c": torch.tensor([float("nan")])}, "f")
    assert isinstance(info.value, PaitError)
