"""The one YAML reader (``pait.yamlio``): YAML 1.2 core scalars, duplicate keys and anchors refused in one
bounded line, and every reader of YAML in pait going through it."""

from __future__ import annotations

import math
import time

import pytest

from pait.config import apply_override, key_values, load_config
from pait.errors import ConfigError
from pait.yamlio import load_yaml


@pytest.mark.parametrize("text, value", [
    ("1e-2", 0.01), ("1E-2", 0.01), ("1e+2", 100.0), ("-2.5e3", -2500.0), (".5", 0.5), ("5.", 5.0), ("1.0e-2", 0.01),
    ("10", 10), ("-3", -3), ("+4", 4), ("012", 12), ("0o17", 15), ("0x1f", 31),
    ("true", True), ("False", False), ("on", "on"), ("no", "no"), ("y", "y"),
    ("~", None), ("null", None), ("", None),
    ("2024-01-01", "2024-01-01"), ("1:30", "1:30"), ("1_000", "1_000"), ("'1e-2'", "1e-2"), ("<<", "<<"),
    ("[1, 2.5, x]", [1, 2.5, "x"]), ("{kfac: {damping: 1e-2}}", {"kfac": {"damping": 0.01}}),
])
def test_plain_scalars_resolve_as_in_yaml_1_2(text, value):
    got = load_yaml(text, "here")
    assert got == value and type(got) is type(value)


def test_nan_and_infinities_are_floats():
    assert math.isnan(load_yaml(".nan", "x")) and load_yaml("-.inf", "x") == -math.inf


@pytest.mark.parametrize("text, message", [
    ("a: 1\nb: 2\na: 3\n", "here, line 3, column 1: invalid YAML (key 'a' is written twice in one mapping (first at line 1))"),
    ("{a: 1, a: 2}", "line 1, column 8: invalid YAML (key 'a' is written twice"),
    ("x:\n  k: 1\n  k: 1\n", "line 3, column 3: invalid YAML (key 'k' is written twice in one mapping (first at line 2))"),
    ("a: &x 1\n", "line 1, column 4: invalid YAML (YAML anchors and aliases are not accepted (found the anchor &x)"),
    ("a: *x\n", "found the alias *x"),
    ("a: [1\n", "here, line 2, column 1: invalid YAML ("),
    ("!!python/object/apply:os.system [echo]", "could not determine a constructor"),
    ("{[1]: 2}", "a mapping key must be a plain value, got [1]"),
])
def test_problems_are_config_errors_naming_source_line_and_column(text, message):
    with pytest.raises(ConfigError) as err:
        load_yaml(text, "here")
    assert message in str(err.value)


def test_keys_in_different_mappings_may_repeat():
    assert load_yaml("a: {k: 1}\nb: {k: 2}\n", "x") == {"a": {"k": 1}, "b": {"k": 2}}


def test_an_alias_bomb_is_refused_at_once_in_a_short_line():
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_yaml("\n".join(lines), "bomb")
    assert time.perf_counter() - start < 1.0 and len(str(err.value)) < 300


def test_configs_overrides_and_options_share_the_reader(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nencoders: [tiny]\nscore_options: {kfac: {damping: 1e-2}}\n")
    config = load_config(path, ["finetune.lr=1e-3"])
    assert config.score_options == {"kfac": {"damping": 0.01}} and config.finetune.lr == 0.001
    assert key_values(["damping=1e-2", "mode=on"], "--score-option") == {"damping": 0.01, "mode": "on"}
    data: dict = {}
    with pytest.raises(ConfigError, match="override 'a={b: 1, b: 2}', line 1, column 8: invalid YAML"):
        apply_override(data, "a={b: 1, b: 2}")
    path.write_text("name: x\nencoders: [tiny]\nname: y\n")
    with pytest.raises(ConfigError, match=f"config {path}, line 3, column 1: .*'name' is written twice"):
        load_config(path)


def test_a_key_given_twice_on_the_command_line_is_refused():
    with pytest.raises(ConfigError, match="--score-option 'damping' is given twice"):
        key_values(["damping=1", "damping=2"], "--score-option")
