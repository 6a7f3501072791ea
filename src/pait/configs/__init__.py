"""Shipped experiment configs (YAML), found by name with ``config_path``."""

from __future__ import annotations

from pathlib import Path

from pait.errors import ConfigError

CONFIG_DIR = Path(__file__).parent


def config_path(name_or_path: str) -> Path:
    """A path to a YAML file, a shipped config by name (``demo``, ``paper/resnet50_supervised``), or a
    path given without its ``.yaml`` suffix, in that order; a ConfigError lists the shipped ones otherwise."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    for candidate in (path, Path(f"{name_or_path}.yaml"), Path(f"{name_or_path}.yml")):
        if candidate.is_file():
            return candidate
    known = sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.yaml"))
    raise ConfigError(f"no config file {name_or_path!r} and no shipped config of that name; shipped: {', '.join(known)}")
