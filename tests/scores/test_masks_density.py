import math
import warnings

import pytest
import torch
from rich.console import Console

from pait.masks import density_report, density_table, global_mask


def test_min_density_keeps_a_floor_per_layer_and_the_exact_global_count():
    scores = {"a": torch.arange(10.0), "b": torch.full((4,), -1.0), "c": torch.ones(6)}
    mask = global_mask(scores, 0.5, min_density=0.25)  # 10 pruned; b keeps ceil(0.25 * 4) = 1
    assert sum(int((~m).sum()) for m in mask.values()) == 10
    assert mask["b"].tolist() == [False, False, False, True]  # ties: the last one is kept
    for name, m in mask.items():
        assert int(m.sum()) >= math.ceil(0.25 * m.numel())
    # without the floor b is pruned entirely, with a warning naming it
    with pytest.warns(UserWarning, match="entirely: b"):
        plain = global_mask(scores, 0.5)
    assert not plain["b"].any()


def test_min_density_zero_is_the_plain_global_mask():
    gen = torch.Generator().manual_seed(1)
    scores = {"a": torch.randint(0, 3, (5, 4), generator=gen).float(), "b": torch.randint(0, 3, (7,), generator=gen).float()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert all(torch.equal(global_mask(scores, 0.6)[k], global_mask(scores, 0.6, min_density=0.0)[k]) for k in scores)


def test_impossible_min_density_is_refused():
    with pytest.raises(ValueError, match="min_density"):
        global_mask({"a": torch.ones(10)}, 0.9, min_density=0.5)


def test_density_report_and_table():
    mask = {"a": torch.tensor([True, False, False, True]), "b": torch.zeros(2, dtype=torch.bool)}
    rows = density_report(mask)
    assert [(r.name, r.numel, r.kept, r.density) for r in rows] == [("a", 4, 2, 0.5), ("b", 2, 0, 0.0)]
    console = Console(record=True, width=100)
    console.print(density_table(rows))
    text = console.export_text()
    assert "total" in text and "0.3333" in text
