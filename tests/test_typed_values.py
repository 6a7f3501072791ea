"""Strict value checks (``pait.typed``) and the score options read from the score functions' annotations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pytest

from pait.cli import MAX_MESSAGE, one_line
from pait.errors import ConfigError
from pait.scores import SCORES, check_score_options
from pait.scores.registry import option_hints, register_score
from pait.tasks.suites import SUITES, check_suite_options
from pait.typed import Count, Positive, Range, Seed, brief, check_value, describe

if TYPE_CHECKING:
    from decimal import Decimal as OnlyWhileTypeChecking


@pytest.mark.parametrize("hint, value", [
    (float, 1), (float, 2.5), (int, 3), (bool, False), (str, "x"), (Path, "a/b"), (Positive, 1e-9), (Count, 1),
    (Seed, 0), (Seed, 2**63 - 1), (Literal["a", "b"], "b"), (int | None, None), (tuple[int, ...], [1, 2]),
    (tuple[int, str], (1, "x")), (Mapping[str, Sequence[str]], {"a": ["x"]}), (Any, object()),
    (Annotated[float, Range(ge=0, le=1)], 1.0), (str | Path | None, "p"),
])
def test_values_of_the_hinted_type_pass(hint, value):
    check_value(hint, value, "v")


@pytest.mark.parametrize("hint, value, message", [
    (float, "1e-2", "v: expected a finite number, got '1e-2'"),
    (float, True, "v: expected a finite number, got True"),
    (float, float("nan"), "v: expected a finite number, got nan"),
    (int, 2.0, "v: expected int, got 2.0"),
    (int, True, "v: expected int, got True"),
    (bool, "false", "v: expected bool, got 'false'"),
    (bool, 0, "v: expected bool, got 0"),
    (str, 5, "v: expected str, got 5"),
    (Positive, 0, "v: expected a finite number > 0, got 0"),
    (Positive, float("inf"), "v: expected a finite number > 0, got inf"),
    (Count, 0, "v: expected int >= 1, got 0"),
    (Seed, 2**63, "v: expected int >= 0 and <= 9223372036854775807, got 9223372036854775808"),
    (Seed, -1, "v: expected int >= 0 and <= 9223372036854775807, got -1"),
    (Literal["a", "b"], "c", "v: expected one of 'a', 'b', got 'c'"),
    (Literal[1, 2], True, "v: expected one of 1, 2, got True"),
    (Count | None, 0, "v: expected int >= 1, got 0"),
    (tuple[Count, ...], [1, 0], "v[1]: expected int >= 1, got 0"),
    (tuple[int, int], [1], "v: expected a list of 2 entries, got [1]"),
    (Sequence[str], "abc", "v: expected a list, got 'abc'"),
    (Mapping[str, int], {"a": "1"}, "v.a: expected int, got '1'"),
    (Mapping[str, int], [1], "v: expected a mapping, got [1]"),
    (str | Path | None, 5, "v: expected str or a path or null, got 5"),
])
def test_values_of_another_type_or_out_of_range_are_named(hint, value, message):
    with pytest.raises(ConfigError) as err:
        check_value(hint, value, "v")
    assert str(err.value) == message


def test_describe_and_brief():
    assert describe(Annotated[float, Range(gt=0, lt=1)]) == "a finite number > 0 and < 1"
    assert brief("x" * 10) == "'xxxxxxxxxx'"
    assert brief("x" * 1000) == "'" + "x" * 79 + "... (1000 characters)"


def test_a_long_message_is_cut_to_one_bounded_line():
    line = one_line(ConfigError("bad value " + "x" * 10**6 + "\nsecond line"))
    assert len(line) <= MAX_MESSAGE and "\n" not in line
    assert line.startswith("bad value x") and "cut: the message has 1,000,022 characters" in line
    assert line.endswith("second line")


PROBE = "typed-options-probe"


def _probe(model, batches, params, rate: Annotated[float, Range(gt=0, le=1)] = 0.5, rounds: Count = 3,
           mode: Literal["fast", "slow"] = "fast", plain=2, seed: int = 0):
    """Magnitude, whatever the options (a valid score, as the registry's own tests run every score)."""
    return {n: p.detach().pow(2) for n, p in params.items()}


if PROBE not in SCORES:
    register_score(PROBE, seeded=True)(_probe)


def test_option_hints_come_from_the_annotations_and_defaults():
    hints = option_hints(SCORES.get(PROBE))
    assert hints["rounds"] is Count and hints["plain"] is int and hints["seed"] is Seed


@pytest.mark.parametrize("options, message", [
    ({"rate": 0.0}, f"score_options: {PROBE}.rate: expected a finite number > 0 and <= 1, got 0.0"),
    ({"rate": 1.5}, "got 1.5"),
    ({"rounds": 0}, f"{PROBE}.rounds: expected int >= 1, got 0"),
    ({"mode": "medium"}, f"{PROBE}.mode: expected one of 'fast', 'slow', got 'medium'"),
    ({"plain": "2"}, f"{PROBE}.plain: expected int, got '2'"),
    ({"seed": 2**64}, f"{PROBE}.seed: expected int >= 0"),
])
def test_score_options_are_checked_by_their_annotations(options, message):
    with pytest.raises(ConfigError) as err:
        check_score_options({PROBE: options})
    assert message in str(err.value)


def test_good_score_options_pass():
    check_score_options({PROBE: {"rate": 1, "rounds": 10, "mode": "slow", "plain": 5, "seed": 2**63 - 1}})
    check_score_options({"kfac": {"damping": 1e-2, "damping_mode": "absolute", "normalize": "mean"},
                         "fisher_diag": {"chunk_size": 4, "layerwise": False},
                         "synflow": {"iterations": 3, "double": False, "input_shape": [3, 8, 8]},
                         "random": {"seed": 7}})


def _checked_only_by_type_checkers(model, batches, params, scale: OnlyWhileTypeChecking = 1):
    return {}


def test_a_score_annotation_that_does_not_resolve_leaves_its_options_unchecked():
    name = "unresolved-annotation-probe"
    if name not in SCORES:
        register_score(name)(_checked_only_by_type_checkers)
    assert option_hints(SCORES.get(name)) == {"scale": int}
    check_score_options({name: {"scale": 2}})


def _counted_suite(images: Count = 1) -> list:
    return []


def test_suite_options_are_checked_by_their_ranges():
    name = "counted-suite-probe"
    if name not in SUITES:
        SUITES.register(name)(_counted_suite)
    check_suite_options(name, {"images": 3})
    with pytest.raises(ConfigError, match=r"suite.options.images: expected int >= 1, got 0"):
        check_suite_options(name, {"images": 0})


def test_every_registered_score_declares_a_type_for_each_option():
    own = [name for name in SCORES.names() if SCORES.get(name).__module__.startswith("pait.")]
    assert {"kfac", "fisher_diag", "synflow", "random", "grasp", "px"} <= set(own)
    assert option_hints(SCORES.get("grasp"))["temperature"] is Positive and option_hints(SCORES.get("px"))["rounds"] is Count
    untyped = [(name, option) for name in own for option, hint in option_hints(SCORES.get(name)).items() if hint is Any]
    assert untyped == []
