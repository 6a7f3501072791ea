import pytest
import torch

from pait.prune.nm import nm_mask, parse_nm


def test_two_of_every_four_consecutive_weights_along_the_input_dimension_are_kept():
    gen = torch.Generator().manual_seed(0)
    scores = {"conv": torch.rand(5, 2, 3, 2, generator=gen), "linear": torch.rand(3, 8, generator=gen),
              "odd": torch.rand(4, 6, generator=gen)}
    mask, dense = nm_mask(scores, 2, 4)
    assert dense == ["odd"] and mask["odd"].all()
    for name in ("conv", "linear"):
        rows = mask[name].reshape(mask[name].shape[0], -1)
        groups = rows.reshape(rows.shape[0], -1, 4)
        assert (groups.sum(-1) == 2).all(), name
        s = scores[name].reshape(rows.shape[0], -1, 4)
        kept_min = torch.where(groups, s, torch.inf).amin(-1)
        pruned_max = torch.where(groups, -torch.inf, s).amax(-1)
        assert (kept_min >= pruned_max).all(), name  # the kept ones are the highest of their group


def test_ties_keep_the_earlier_weight_and_bad_patterns_are_rejected():
    mask, _ = nm_mask({"w": torch.ones(1, 8)}, 2, 4)
    assert mask["w"].tolist() == [[True, True, False, False] * 2]
    assert parse_nm("2:4") == (2, 4)
    for text in ("4:2", "2-4", "0:4"):
        with pytest.raises(ValueError):
            parse_nm(text)
