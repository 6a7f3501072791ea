"""Overrides of a loaded config: nested keys, list indices, and clear errors."""

from __future__ import annotations

import pytest

from pait.config import ConfigError, load_config


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nencoders: [resnet50_supervised, {name: vitb16_dino}]\nsuite: {name: imagenet10, options: {root: null}}\n")
    return path


def test_list_index_overrides_set_fields_of_list_entries(config_file):
    config = load_config(config_file, ["encoders.0.weights=/w/r50.pth", "encoders.-1.input_size=160",
                                       "suite.options.root=/data/val", "finetune.milestones=[1, 2]"])
    assert config.encoders[0].name == "resnet50_supervised" and config.encoders[0].weights == "/w/r50.pth"
    assert config.encoders[1].input_size == 160
    assert config.suite.options == {"root": "/data/val"}
    assert config.finetune.milestones == (1, 2)


@pytest.mark.parametrize("override, message", [
    ("encoders.2.weights=x", "index 2 out of range"),
    ("encoders.first.weights=x", "'first' is not a list index"),
    ("finetune", "not of the form key=value"),
    ("finetune.nope=1", "unknown key"),
    ("name.x=1", "is not a mapping or a list"),
])
def test_bad_overrides_raise_config_errors(config_file, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config_file, [override])


def test_demo_keeps_the_configured_sources_the_suite_has():
    from pait.commands.demo import available_sources

    tasks = ["digits-0-4", "digits-5-9"]  # no Fashion-MNIST on this machine
    assert available_sources(["digits-0-4", "clothing-a"], tasks) == ["digits-0-4"]
    assert available_sources(["clothing-a"], tasks) == ["digits-0-4"]
    assert available_sources(["digits-0-4", "digits-5-9"], tasks) == ["digits-0-4", "digits-5-9"]
