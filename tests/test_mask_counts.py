"""Per-layer counts: ``layer_counts``, ``mask_with_counts`` (a mask at given kept counts per tensor) and
``uniform_pruned_counts`` (one sparsity in every tensor, the exact global count) against brute force."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import torch

from pait.masks import layer_counts, mask_with_counts, num_pruned, uniform_pruned_counts


def _scores(seed: int = 0, ties: bool = False) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = {"conv": (4, 3, 3, 3), "dw": (4, 1, 3, 3), "fc": (5, 4), "out": (7,)}
    draw = (lambda s: torch.randint(0, 4, s, generator=gen).double()) if ties else (
        lambda s: torch.randn(s, generator=gen, dtype=torch.float64))
    return {name: draw(shape) for name, shape in shapes.items()}


def test_layer_counts_are_the_kept_weights_per_tensor():
    mask = {"a": torch.tensor([True, False, True]), "b": torch.zeros(2, 2, dtype=torch.bool)}
    assert layer_counts(mask) == {"a": 2, "b": 0}


@pytest.mark.parametrize("ties", [False, True])
def test_mask_with_counts_keeps_each_tensors_top_scores_at_exactly_its_count(ties):
    scores = _scores(1, ties)
    gen = torch.Generator().manual_seed(2)
    kept = {n: int(torch.randint(0, s.numel() + 1, (1,), generator=gen)) for n, s in scores.items()}
    mask = mask_with_counts(scores, kept)
    assert layer_counts(mask) == kept
    for name, s in scores.items():
        flat, m = s.reshape(-1).tolist(), mask[name].reshape(-1).tolist()
        # brute force: a stable ascending sort, the first numel - kept pruned (ties: the earlier one first)
        order = sorted(range(len(flat)), key=lambda i: flat[i])
        expected = [True] * len(flat)
        for i in order[: len(flat) - kept[name]]:
            expected[i] = False
        assert m == expected, name


def test_mask_with_counts_refuses_counts_that_do_not_fit():
    scores = {"a": torch.zeros(3)}
    with pytest.raises(ValueError, match="cannot keep 4"):
        mask_with_counts(scores, {"a": 4})
    with pytest.raises(ValueError, match="other tensors"):
        mask_with_counts(scores, {"b": 1})


def _brute_uniform(sizes: dict[str, int], q: float) -> dict[str, int]:
    """Among all floor/ceil choices summing to the global count, the one closest to the quotas q * n (sum of
    squares); ties: the choice giving the extra weights to the earliest tensors."""
    quota = {n: Fraction(q) * s for n, s in sizes.items()}
    k = num_pruned(sum(sizes.values()), q)
    best = None
    for ups in itertools.product([0, 1], repeat=len(sizes)):
        counts = {n: math.floor(quota[n]) + u for n, u in zip(sizes, ups)}
        if sum(counts.values()) != k or any(c > sizes[n] for n, c in counts.items()):
            continue
        cost = sum((counts[n] - quota[n]) ** 2 for n in sizes)
        rank = (cost, tuple(-u for u in ups))  # equal cost: extras to the earlier tensors
        if best is None or rank < best[0]:
            best = (rank, counts)
    return best[1]


@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.3, 0.5, 0.6, 0.77, 0.99])
@pytest.mark.parametrize("sizes", [{"a": 10, "b": 7, "c": 3}, {"a": 27, "b": 36, "c": 9, "d": 20, "e": 7},
                                   {"a": 1, "b": 1, "c": 1}, {"a": 100}])
def test_uniform_counts_are_within_one_of_q_n_sum_exactly_and_match_brute_force(sizes, q):
    counts = uniform_pruned_counts(sizes, q)
    assert sum(counts.values()) == num_pruned(sum(sizes.values()), q)
    for name, n in sizes.items():
        assert math.floor(Fraction(q) * n) <= counts[name] <= math.ceil(Fraction(q) * n)
    assert counts == _brute_uniform(sizes, q)


def test_uniform_counts_are_round_q_n_when_those_sum_to_the_global_count():
    sizes = {"a": 10, "b": 20, "c": 30}  # q * n integral for q = 0.3
    assert uniform_pruned_counts(sizes, 0.3) == {"a": 3, "b": 6, "c": 9}
