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


def test_a_complex_tensor_holding_nan_or_inf_is_refused():
    check_finite({"z": torch.tensor([1 + 2j, 3j])}, "f")
    with pytest.raises(CheckpointError, match="tensor z holds NaN values"):
        check_finite({"z": torch.tensor([1 + 2j, complex(float("nan"), 0)])}, "f")
    with pytest.raises(CheckpointError, match="tensor z holds Inf values"):
        check_finite({"z": torch.tensor([complex(0, float("inf"))], dtype=torch.complex128)}, "f")


def _with_header(path, header: dict, data: bytes = b"\0" * 16):
    import json

    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)
    return path


@pytest.mark.parametrize("entry,message", [
    ({"dtype": "F32", "shape": [2], "data_offsets": "0-8"}, "tensor 'w' in its safetensors header has malformed data_offsets '0-8'"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0]}, "malformed data_offsets [0]"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, "malformed data_offsets [8, 0]"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}, "malformed data_offsets [-8, 0]"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, 8.5]}, "malformed data_offsets [0, 8.5]"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, None]}, "malformed data_offsets [0, None]"),
    ({"dtype": "F32", "shape": [2]}, "malformed data_offsets None"),
    ({"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}, "malformed shape '2'"),
    ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, "malformed shape [-2]"),
    ({"shape": [2], "data_offsets": [0, 8]}, "has no dtype string"),
    ([0, 8], "tensor 'w' in its safetensors header is a list"),
])
def test_a_malformed_safetensors_header_entry_is_named(tmp_path, entry, message):
    path = _with_header(tmp_path / "w.safetensors", {"w": entry})
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is corrupt") as info:
        read_safetensors(path)
    assert message in str(info.value)


def test_a_well_formed_header_still_reads(tmp_path):
    path = _with_header(tmp_path / "w.safetensors", {"__metadata__": {"a": "b"},
                                                     "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)
    assert torch.equal(read_safetensors(path)["w"], torch.zeros(2))


@pytest.mark.parametrize("value,kind", [(3, "an int (3)"), ("x", "a str ('x')"), ({"a": 1}, "a dict"), ([1.0], "a list")])
def test_a_torch_file_with_a_non_tensor_where_a_tensor_belongs_is_named(tmp_path, value, kind):
    from torch import nn

    from pait.encoders.checkpoints import load_checked, read_state_dict

    path = tmp_path / "w.pth"
    torch.save({"weight": value, "bias": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=f"checkpoint {path}: key weight holds {kind}, not a tensor".replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[")):
        load_checked(nn.Linear(2, 2), read_checkpoint(path), path, "linear")
    with pytest.raises(CheckpointError, match="key weight holds"):
        read_state_dict(path)
