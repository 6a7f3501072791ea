import torch

from pait.export import storage_bytes


def test_storage_counts_nonzero_values_plus_a_bitmask_for_masked_tensors_only():
    w = torch.zeros(4, 5)
    w[0, :3] = 1.0
    state = {"w": w, "b": torch.ones(4)}
    sizes = storage_bytes(state, {"w": w != 0})
    assert sizes["dense"] == 4 * 24
    assert sizes["sparse_values_plus_bitmask"] == 3 * 4 + 3 + 4 * 4  # 3 values, 20 bits, dense bias
    assert 0 < sizes["zlib_safetensors"]
