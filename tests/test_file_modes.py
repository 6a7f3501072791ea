"""Output files get the mode a plain open() gives (0666 less the umask), so colleagues can read them."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from pait.cache import write_atomic
from pait.export import save_pruned


@pytest.fixture
def umask():
    """Run the test under a chosen umask, restoring the process's own afterwards."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_are_group_and_other_readable_under_umask_022(tmp_path, umask):
    umask(0o022)
    write_atomic(tmp_path / "a.json", b"{}")
    assert mode(tmp_path / "a.json") == 0o644
    model = torch.nn.Linear(2, 2)
    save_pruned(model, {"weight": torch.ones(2, 2, dtype=torch.bool)}, tmp_path)
    assert {mode(p) for p in tmp_path.glob("*.safetensors")} == {0o644}


def test_atomic_writes_respect_a_stricter_umask(tmp_path, umask):
    umask(0o077)
    write_atomic(tmp_path / "private.json", b"{}")
    assert mode(tmp_path / "private.json") == 0o600
    umask(0o002)
    write_atomic(tmp_path / "private.json", b"{}")  # a rewrite takes the mode of its own write
    assert mode(tmp_path / "private.json") == 0o664
