"""``score_options`` from the config reach the score functions and their cache keys; ``random`` takes the
unit's seed; unknown scores and options are ConfigErrors naming them."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from gridutil import tiny_config

from pait.cache import StageStore, config_key
from pait.config import config_from_dict
from pait.errors import ConfigError
from pait.grid.stages import prepare, scores_key, scores_stage, unit_key, unit_mask
from pait.grid.validation import validate_config
from pait.scores import SCORES, register_score

PROBE = "options-probe"


def _probe(model, batches, params, seed: int = 0, scale: float = 1.0):
    """Every score equal to ``scale * 10 + seed``: shows which options arrived."""
    return {n: torch.full(p.shape, scale * 10 + seed) for n, p in params.items()}


if PROBE not in SCORES:
    register_score(PROBE, seeded=True)(_probe)


def _config(**changes):
    return config_from_dict(tiny_config(**{"sparsities": [0.5], **changes}))


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    config = _config()
    return prepare(config, config.encoders[0], StageStore(tmp_path_factory.mktemp("options") / "stages"))


def with_config(ctx, seed: int = 0, **changes):
    """The same encoder, data and heads under a config with ``changes`` (and the replicate ``seed``)."""
    return dataclasses.replace(ctx, seed=seed, config=dataclasses.replace(ctx.config, **changes))


def test_options_and_the_seed_reach_the_score_function(ctx):
    scores = scores_stage(with_config(ctx, seed=3, score_options={PROBE: {"scale": 2.0}}), "t0", PROBE, None)
    assert all((s == 23).all() for s in scores.values())
    scores = scores_stage(with_config(ctx, seed=3, score_options={PROBE: {"seed": 5}}), "t0", PROBE, None)
    assert all((s == 15).all() for s in scores.values())  # score_options' seed wins over the config's


def test_kfac_damping_is_in_the_keys_and_changes_the_scores(ctx):
    low = with_config(ctx, scores=("kfac",), score_options={"kfac": {"damping": 1e-3}})
    high = with_config(ctx, scores=("kfac",), score_options={"kfac": {"damping": 10.0}})
    assert config_key(scores_key(low, "t0", "kfac", None)) != config_key(scores_key(high, "t0", "kfac", None))
    assert config_key(unit_key(low, "t0", "kfac", 0.5)) != config_key(unit_key(high, "t0", "kfac", 0.5))
    # only the options of the unit's own score are in its keys
    assert scores_key(low, "t0", "magnitude", None) == scores_key(high, "t0", "magnitude", None)
    assert unit_key(low, "t0", "magnitude", 0.5) == unit_key(high, "t0", "magnitude", 0.5)
    a, b = scores_stage(low, "t0", "kfac", None), scores_stage(high, "t0", "kfac", None)
    assert a.keys() == b.keys() and not all(torch.allclose(a[k], b[k]) for k in a)


def test_random_masks_follow_the_seed(ctx):
    masks = {seed: unit_mask(with_config(ctx, seed=seed), "t0", "random", 0.5) for seed in (0, 1)}
    assert masks[0].keys() == masks[1].keys()
    assert any(not torch.equal(masks[0][k], masks[1][k]) for k in masks[0])
    pinned = unit_mask(with_config(ctx, seed=1, score_options={"random": {"seed": 0}}), "t0", "random", 0.5)
    assert all(torch.equal(pinned[k], masks[0][k]) for k in pinned)


@pytest.mark.parametrize("options, message", [
    ({"nope": {"x": 1}}, "score_options: unknown score 'nope'; known scores: magnitude, random"),
    ({"kfac": {"dampin": 1e-2}}, "score_options: score 'kfac' has no option(s) dampin; its options: damping"),
    ({"synflow": {"sparsity": 0.5}}, "score 'synflow' has no option(s) sparsity; its options: iterations"),
    ({"magnitude": {"seed": 1}}, "score 'magnitude' has no option(s) seed; its options: none"),
    ({"kfac": 0.1}, "score_options: the options of score 'kfac' must be a mapping, got 0.1"),
])
def test_bad_score_options_are_config_errors(options, message):
    with pytest.raises(ConfigError) as err:
        validate_config(_config(score_options=options))
    assert message in str(err.value)


def test_valid_score_options_pass():
    validate_config(_config(score_options={"kfac": {"damping": 1e-2}, "random": {"seed": 4},
                                           "synflow": {"iterations": 10}}))


def test_unit_keys_hold_the_score_and_the_recovery_with_their_options_and_revisions(ctx):
    from pait.grid.structured import channels_unit_key
    from pait.prune.recoveries import recovery_key, recovery_names

    fields = {"heads", "source", "score", "sparsity", "score_options", "finetune", "score_batch_size", "seed",
              "recovery", "recovery_options", "recovery_revision"}
    for recovery in recovery_names():
        key = unit_key(ctx, "t0", "magnitude", 0.5, recovery)
        assert set(key) == fields, recovery
        assert {k: key[k] for k in ("recovery", "recovery_options", "recovery_revision")} == recovery_key(recovery)
    channels = channels_unit_key(with_config(ctx, structure="channels"), "t0", "magnitude", 0.5, "sequential")
    assert set(channels) == fields | {"structure", "group_score_revision"}
    assert channels["recovery_options"] == {"damping": 1e-2} and channels["recovery_revision"] == 0
