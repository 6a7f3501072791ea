"""The one Registry type behind encoders, scores and suites: register, get, names, metadata, unknown names."""

from __future__ import annotations

import pytest

from pait.encoders import ENCODERS, load_encoder, register_encoder
from pait.errors import ConfigError
from pait.registry import Registry
from pait.scores import SCORES, register_score
from pait.tasks import SUITES


def _encoder(weights, trust_torchscript=False):
    return ("encoder", weights)


def _score(model, batches, params, seed: int = 0, damping: float = 1.0):
    return {}


def _suite(size: int = 1):
    return []


CASES = {
    "encoder": (ENCODERS, lambda: register_encoder("reg-test", "arch", "none", "random")(_encoder), _encoder,
                {"architecture": "arch", "pretraining": "none", "weights": "random"}),
    "score": (SCORES, lambda: register_score("reg-test", seeded=True)(_score), _score,
              {"per_sparsity": False, "seeded": True, "options": ("seed", "damping"), "revision": 0}),
    "suite": (SUITES, lambda: SUITES.register("reg-test", note="x")(_suite), _suite, {"note": "x"}),
}


@pytest.fixture(params=CASES, ids=str)
def case(request, monkeypatch):
    """One of the three registries, with registrations undone after the test."""
    registry, register, obj, metadata = CASES[request.param]
    monkeypatch.setattr(registry, "_objects", dict(registry._objects))
    monkeypatch.setattr(registry, "_metadata", dict(registry._metadata))
    return request.param, registry, register, obj, metadata


def test_register_get_names_metadata(case):
    kind, registry, register, obj, metadata = case
    before = registry.names()
    assert "reg-test" not in registry
    assert register() is obj  # the decorator returns the object unchanged
    assert registry.names() == [*before, "reg-test"] and "reg-test" in registry and list(registry) == registry.names()
    assert registry.get("reg-test") is obj
    assert dict(registry.metadata("reg-test")) == metadata
    with pytest.raises(ConfigError, match=f"{kind} 'reg-test' is registered twice"):
        register()


def test_unknown_name_lists_the_known_ones(case):
    kind, registry, *_ = case
    with pytest.raises(ConfigError) as err:
        registry.get("no-such-thing")
    message = str(err.value)
    assert message.startswith(f"unknown {kind} 'no-such-thing'; known {kind}s: ")
    assert all(name in message for name in registry.names()) and registry.names()
    with pytest.raises(ConfigError, match="no-such-thing"):
        registry.metadata("no-such-thing")


def test_the_shipped_names_are_registered():
    assert {"resnet50_dino", "efficientnet_lite0"} <= set(ENCODERS.names())
    assert SCORES.names()[:2] == ["magnitude", "random"] and "kfac" in SCORES
    assert {"embedded", "imagenet10", "imagefolder"} <= set(SUITES.names())
    assert SCORES.metadata("synflow")["per_sparsity"] and not SCORES.metadata("kfac")["per_sparsity"]
    assert SCORES.metadata("random")["seeded"] and SCORES.metadata("kfac")["options"] == ("damping", "damping_mode", "normalize")


def test_a_family_answers_every_member_name():
    registry: Registry = Registry("widget")
    registry.register("plain")(str)

    @registry.register_family("pre", member="model", source="anywhere")
    def make(member: str, size: int) -> str:
        return f"{member}x{size}"

    assert registry.get("pre:abc")(3) == "abcx3"
    assert "pre:abc" in registry and "pre:" not in registry and "pre" not in registry
    assert registry.names() == ["plain"] and registry.families() == ["pre:<model>"]
    assert dict(registry.metadata("pre:abc")) == dict(registry.metadata("pre:<model>")) == {"source": "anywhere"}
    with pytest.raises(ConfigError, match=r"unknown widget 'other:abc'; known widgets: plain, pre:<model>"):
        registry.get("other:abc")
    with pytest.raises(ConfigError, match="lies in the family"):
        registry.register("pre:x")(str)


def test_the_timm_family_is_an_encoder_name():
    assert "timm:resnet18" in ENCODERS and "timm:<model>" in ENCODERS.families()
    assert load_encoder("timm:resnet18").feature_dim == 512
