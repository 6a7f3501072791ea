"""Random weights (``weights: random``) are built the same in every process and run, and the stage keys
hold their content hash, so stages of two different networks are never mixed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pandas as pd
import torch
from gridutil import SRC, logged_stages

import pait.encoders.registry
from pait.config import config_from_dict
from pait.encoders import load_encoder
from pait.executors import run_grid
from pait.fingerprints import state_sha256

ENCODER = "timm:test_resnet"  # timm's own tiny test network (0.47M weights), random init, no download


def random_grid(name: str = "random", seeds: tuple[int, ...] = (0,)) -> object:
    """Magnitude masks at sparsities 0 and 0.5, no recovery: at sparsity 0 pruned must equal unpruned."""
    return config_from_dict({
        "name": name, "plugins": ["tiny_plugin"], "encoders": [{"name": ENCODER, "weights": "random", "input_size": 16}],
        "suite": {"name": "tiny", "protocol": "heldout", "calib_per_class": 4, "eval_per_class": 4},
        "scores": ["magnitude"], "sparsities": [0.0, 0.5], "sources": ["t0"], "recoveries": ["none"],
        "seeds": list(seeds), "device": "cpu",
    })


def assert_sparsity_zero_is_unpruned(table: pd.DataFrame) -> None:
    rows = table[table.sparsity == 0.0].set_index(["seed", "target", "stage"])
    for stage in ("pruned", "recovered"):
        pd.testing.assert_series_equal(rows.xs(stage, level="stage").loss, rows.xs("unpruned", level="stage").loss,
                                       check_exact=True, check_names=False)


def heads_weights(out) -> list[list[str]]:
    """The ``weights`` entry of every heads stage's key in the store under ``out``."""
    return [json.loads((p / "config.json").read_text())["weights"] for p in sorted((out / "stages" / "heads").iterdir())
            if p.is_dir() and not p.name.startswith(".")]


def test_two_fresh_runs_are_bit_identical_whatever_the_global_random_state(tmp_path):
    torch.manual_seed(1)
    first = run_grid(random_grid(), tmp_path / "one", show_progress=False)
    torch.rand(17)  # another global state: the encoder must not depend on it
    second = run_grid(random_grid(), tmp_path / "two", show_progress=False)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert_sparsity_zero_is_unpruned(first)
    assert heads_weights(tmp_path / "one") == heads_weights(tmp_path / "two")
    assert len(heads_weights(tmp_path / "one")[0]) == 1 and heads_weights(tmp_path / "one")[0][0].startswith("state:")


def test_building_an_encoder_leaves_the_global_random_state_as_it_was():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    load_encoder(ENCODER, "random")
    assert torch.equal(torch.rand(4), expected)


def test_another_process_builds_the_same_random_weights():
    here = state_sha256(load_encoder(ENCODER, "random").model.state_dict())
    code = ("import torch; torch.manual_seed(12345); torch.rand(999); from pait.encoders import load_encoder; "
            "from pait.fingerprints import state_sha256; "
            f"print(state_sha256(load_encoder({ENCODER!r}, 'random').model.state_dict()))")
    other = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "2"},
                           capture_output=True, text=True, check=True).stdout.strip()
    assert other == here


def test_other_random_weights_recompute_the_heads_and_everything_after_them(tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = run_grid(random_grid(), out, show_progress=False)
    monkeypatch.setattr(pait.encoders.registry, "INIT_SEED", 1)  # another network under the same config
    before = len(logged_stages(out / "random"))
    other = run_grid(random_grid(), out, show_progress=False)
    computed = Counter(stage for stage, _ in logged_stages(out / "random")[before:])
    assert computed == {"heads": 1, "scores": 1, "unit": 2}  # the decoded images are reused
    assert not other.loss.equals(first.loss)
    assert_sparsity_zero_is_unpruned(other)
    assert len({w[0] for w in heads_weights(out)}) == 2


def test_a_seed_added_to_a_finished_grid_uses_the_same_network(tmp_path):
    out = tmp_path / "out"
    one = run_grid(random_grid(), out, show_progress=False)
    torch.rand(5)
    both = run_grid(random_grid(seeds=(0, 1)), out, show_progress=False)
    pd.testing.assert_frame_equal(both[both.seed == 0].reset_index(drop=True), one, check_exact=True)
    assert_sparsity_zero_is_unpruned(both)
    assert len(heads_weights(out)) == 2 and len({w[0] for w in heads_weights(out)}) == 1  # two splits, one network
