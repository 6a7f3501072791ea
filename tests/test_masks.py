import pytest
import torch

from pait.masks import global_mask, mask_sparsity
from pait.train.finetune import MaskHolder


def _pruned(mask):
    return sum(int((~m).sum()) for m in mask.values())


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.25, 0.5, 0.8322, 0.99])
def test_global_mask_prunes_exactly_round_q_p(sparsity):
    gen = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(7, 5, generator=gen), "b": torch.rand(13, generator=gen), "c": torch.rand(3, 2, 2, generator=gen)}
    total = 35 + 13 + 12
    mask = global_mask(scores, sparsity)
    assert _pruned(mask) == round(sparsity * total)
    assert {k: m.shape for k, m in mask.items()} == {k: s.shape for k, s in scores.items()}
    kept = torch.cat([scores[k][mask[k]] for k in scores])
    dropped = torch.cat([scores[k][~mask[k]] for k in scores])
    if len(kept) and len(dropped):
        assert dropped.max() <= kept.min()


def test_global_mask_all_ties_is_exact_and_deterministic():
    scores = {"a": torch.ones(10), "b": torch.ones(2, 5)}
    mask = global_mask(scores, 0.35)  # round(0.35 * 20) = 7
    assert _pruned(mask) == 7
    # ties: earlier positions in the flattened order are pruned first
    assert mask["a"].tolist() == [False] * 7 + [True] * 3
    assert mask["b"].all()
    assert all(torch.equal(mask[k], global_mask(scores, 0.35)[k]) for k in mask)


def test_global_mask_ties_at_the_threshold():
    scores = {"w": torch.tensor([0.0, 1.0, 1.0, 1.0, 2.0, 3.0])}
    mask = global_mask(scores, 0.5)  # 3 pruned: the 0 and the first two of the tied 1s
    assert mask["w"].tolist() == [False, False, False, True, True, True]


def test_nan_scores_are_pruned_first():
    mask = global_mask({"w": torch.tensor([1.0, float("nan"), 2.0])}, 1 / 3)
    assert mask["w"].tolist() == [True, False, True]


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_sparsity_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="sparsity"):
        global_mask({"w": torch.ones(3)}, bad)


def test_held_mask_zeroes_pruned_entries():
    p = {"w": torch.nn.Parameter(torch.arange(1.0, 7.0))}
    mask = global_mask({"w": p["w"].detach().abs()}, 0.5)
    MaskHolder(p, mask).hold()
    assert p["w"].tolist() == [0, 0, 0, 4, 5, 6]
    assert mask_sparsity(mask) == 0.5


def test_global_mask_equals_a_stable_sort_reference_with_many_ties():
    gen = torch.Generator().manual_seed(3)
    scores = {"a": torch.randint(0, 5, (40, 7), generator=gen).double(), "b": torch.randint(0, 5, (33,), generator=gen).double()}
    flat = torch.cat([scores["a"].reshape(-1), scores["b"]])
    for sparsity in (0.1, 0.37, 0.5, 0.9):
        k = round(sparsity * flat.numel())
        reference = torch.ones(flat.numel(), dtype=torch.bool)
        reference[torch.sort(flat, stable=True).indices[:k]] = False
        mask = global_mask(scores, sparsity)
        assert torch.equal(torch.cat([mask["a"].reshape(-1), mask["b"]]), reference)
