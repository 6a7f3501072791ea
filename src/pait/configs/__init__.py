"""Shipped experiment configs (YAML), found by name with ``config_path``."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).parent


def config_path(name_or_path: str) -> Path:
    """A shipped config by name (``demo``, ``paper/resnet50_supervised``) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    known = sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.yaml"))
    raise FileNotFoundError(f"no config file {name_or_path!r} and no shipped config of that name; shipped: {', '.join(known)}")
