"""The recovery registry and the unit keys: a unit key holds its recovery's name, every option (defaults
included) and revision, so a changed revision or option computes new units while an unchanged rerun
computes none; unknown recoveries and options are one ConfigError naming them."""

from __future__ import annotations

from collections import Counter
from types import MappingProxyType

import pytest
from gridutil import logged_stages, tiny_config

from pait.cache import config_key
from pait.config import config_from_dict
from pait.errors import ConfigError
from pait.executors import run_grid
from pait.grid.validation import validate_config
from pait.prune.recoveries import check_recovery_options, get_recovery, recovery_key, recovery_names
from pait.prune.recoveries.registry import REGISTRIES

OPTIONS = {"obs": {"damping": 1e-3}, "sequential": {"damping": 1e-3},
           "sequential-adaptive": {"damping": 1e-3, "blocksize": 128},
           "bn+sequential": {"damping": 1e-3}, "bn+sequential-adaptive": {"damping": 1e-3, "blocksize": 128},
           }  # the constants the recoveries used before they were options


def _config(**changes):
    return tiny_config(**{"name": "keys", "scores": ["magnitude"], "sparsities": [0.5], "sources": ["t0"],
                          "recoveries": ["obs", "none"], **changes})


def run(config: dict, out) -> Counter:
    """Run the grid; the stages it computed (from stages.log)."""
    before = len(logged_stages(out / "keys"))
    run_grid(config_from_dict(config), out, show_progress=False)
    return Counter(stage for stage, _ in logged_stages(out / "keys")[before:])


def test_every_recovery_is_registered_with_its_former_constants_and_revisions():
    assert recovery_names() == ("none", "sgd", "obs", "bn", "sequential", "sequential-adaptive", "bn+sequential",
                                "bn+sequential-adaptive")  # the order of the former tuple, so messages list them as before
    assert recovery_names("channels") == ("none", "sgd", "bn", "sequential")
    for name in recovery_names():
        key = recovery_key(name)
        assert key["recovery_options"] == OPTIONS.get(name, {}), name
        assert key["recovery_revision"] == (1 if "sequential" in name else 0), name
    assert recovery_key("sequential", structure="channels") == {
        "recovery": "sequential", "recovery_options": {"damping": 1e-2}, "recovery_revision": 0}
    assert recovery_key("obs", {"damping": 0.5})["recovery_options"] == {"damping": 0.5}


def test_a_changed_revision_or_option_computes_new_units_and_an_unchanged_rerun_none(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert run(_config(), out) == {"data": 1, "heads": 1, "scores": 1, "unit": 2}
    assert run(_config(), out) == Counter()
    assert run(_config(recovery_options={"obs": {"damping": 1e-3}}), out) == Counter()  # the default, spelled out
    assert run(_config(recovery_options={"obs": {"damping": 1e-1}}), out) == {"unit": 1}  # obs only, not none
    registry = REGISTRIES["weights"]
    bumped = MappingProxyType({**registry.metadata("obs"), "revision": 7})
    monkeypatch.setitem(registry._metadata, "obs", bumped)
    assert run(_config(), out) == {"unit": 1}
    assert run(_config(), out) == Counter()


def test_the_unit_key_holds_what_recovery_key_returns(tmp_path):
    from pait.cache import StageStore
    from pait.grid.stages import prepare, unit_key

    config = config_from_dict(_config(recovery_options={"sequential": {"damping": 0.25}}))
    ctx = prepare(config, config.encoders[0], StageStore(tmp_path / "stages"))
    for name in recovery_names():
        key = unit_key(ctx, "t0", "magnitude", 0.5, name)
        options = config.recovery_options.get(name, {})
        assert {k: key[k] for k in ("recovery", "recovery_options", "recovery_revision")} == recovery_key(name, options)
    assert unit_key(ctx, "t0", "magnitude", 0.5, "sequential")["recovery_options"] == {"damping": 0.25}
    assert config_key(unit_key(ctx, "t0", "magnitude", 0.5, "obs")) != config_key(
        unit_key(ctx, "t0", "magnitude", 0.5, "sequential"))


@pytest.mark.parametrize("options, message", [
    ({"nope": {}}, "recovery_options: unknown recovery 'nope'; known: none, sgd, obs, bn"),
    ({"obs": {"dampin": 1e-2}}, "recovery_options: recovery 'obs' has no option(s) dampin; its options: damping"),
    ({"sgd": {"lr": 0.1}}, "recovery_options: recovery 'sgd' has no option(s) lr; its options: none"),
    ({"obs": {"damping": 0}}, "recovery_options: obs.damping: expected a finite number > 0, got 0"),
    ({"obs": {"damping": "1e-3"}}, "recovery_options: obs.damping: expected a finite number > 0, got '1e-3'"),
    ({"obs": 0.1}, "recovery_options: the options of recovery 'obs' must be a mapping, got 0.1"),
])
def test_bad_recovery_options_are_one_config_error_naming_them(options, message):
    with pytest.raises(ConfigError) as err:
        check_recovery_options(options)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="recovery_options: "):
        validate_config(config_from_dict(_config(recovery_options=options)))


def test_structured_recovery_options_are_checked_against_the_structured_recoveries():
    check_recovery_options({"sequential": {"damping": 0.1}}, structure="channels")
    with pytest.raises(ConfigError, match="unknown structured recovery 'obs'"):
        check_recovery_options({"obs": {}}, structure="channels")


def test_an_unknown_recovery_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown recovery 'nope'; choose one of none, sgd"):
        get_recovery("nope")
