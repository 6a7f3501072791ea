"""Fig. 4: the plane through the three weight vectors, and the cached, resumable surface of a tiny run."""

import json
import shutil
import sys

import numpy as np
import pytest
import torch

from pait.cache import StageStore
from pait.cli import main
from pait.config import config_from_dict
from pait.grid.landscape import (Surface, compute_surface, coordinates, evaluate_points, plane_through, reconstruct,
                            unit_dir, unit_weights)
from pait.grid.stages import prepare
from pait.report.fig4 import draw_fig4


def test_plane_passes_through_all_three_vectors_float64():
    gen = torch.Generator().manual_seed(0)
    theta0 = torch.randn(5000, generator=gen, dtype=torch.float64) * torch.logspace(-3, 2, 5000, dtype=torch.float64)
    mask = torch.rand(5000, generator=gen, dtype=torch.float64) > 0.6
    pruned = theta0 * mask
    retrained = pruned + 0.01 * torch.randn(5000, generator=gen, dtype=torch.float64) * mask
    plane = plane_through(theta0, pruned, retrained)
    assert plane.basis.dtype == torch.float64
    assert torch.allclose(plane.basis @ plane.basis.T, torch.eye(2, dtype=torch.float64), atol=1e-12)
    points = torch.stack([theta0, pruned, retrained])
    back = reconstruct(plane, coordinates(plane, points))
    assert ((back - points).norm(dim=1) / points.norm(dim=1)).max() < 1e-6


@pytest.fixture(scope="module")
def ctx(tiny_run):
    config = config_from_dict(json.loads((tiny_run / "config.json").read_text()))
    return prepare(config, config.encoders[0], StageStore(tiny_run.parent / "stages"))


def test_batched_evaluation_reproduces_the_recorded_metrics(ctx):
    directory = unit_dir(ctx, "task-0", "tiny-test-snip", 0.6)
    w = unit_weights(ctx, directory)
    metrics = json.loads((directory / "metrics.json").read_text())
    for task in ("task-0", "task-2"):
        acc, loss = evaluate_points(ctx, w.names, torch.stack([w.theta0, w.pruned, w.retrained]), task)
        recorded = [ctx.unpruned[task], metrics["pruned"][task], metrics["recovered"][task]]
        assert np.allclose(acc, [r[0] for r in recorded])
        assert np.allclose(loss, [r[1] for r in recorded], rtol=1e-4)
    assert torch.equal(ctx.encoder.model[1].running_mean, ctx.theta0["1.running_mean"])  # buffers never move


def flip_one_byte(path) -> None:
    """Change one byte near the end (the tensor data), keeping the size: the file still reads."""
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


def test_unit_weights_overwritten_with_as_many_bytes_are_named(ctx, tmp_path):
    from pait.errors import RunFolderError

    copy = tmp_path / "unit"
    shutil.copytree(unit_dir(ctx, "task-0", "tiny-test-snip", 0.6), copy)
    flip_one_byte(copy / "recovered.safetensors")
    with pytest.raises(RunFolderError, match=f"the stage {copy} is damaged \\(recovered.safetensors does not hold"):
        unit_weights(ctx, copy)


def test_surface_is_saved_per_row_and_resumes(ctx, tmp_path):
    path = tmp_path / "s.npz"
    seen = []

    def stop_after_first(row, total):
        seen.append(row)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compute_surface(ctx, "task-0", "tiny-test-snip", 0.6, "task-2", 3, path, on_row=stop_after_first)
    assert Surface.load(path).rows_done == 1
    surface = compute_surface(ctx, "task-0", "tiny-test-snip", 0.6, "task-2", 3, path, on_row=lambda r, n: seen.append(r))
    assert seen == [0, 1, 2] and surface.rows_done == 3 and not np.isnan(surface.loss).any()
    fig = draw_fig4(surface)
    for ax in [a for a in fig.axes if a.get_title()]:  # the two contour panels, not the colorbars
        marked = np.array([[line.get_xdata()[0], line.get_ydata()[0]] for line in ax.lines])
        assert np.allclose(marked, surface.points)


def test_landscape_command_then_report_includes_fig4(tiny_run):
    assert main(["landscape", str(tiny_run), "--score", "tiny-test-snip", "--grid", "3"]) == 0
    assert list((tiny_run / "landscape").glob("*.npz"))
    assert main(["report", str(tiny_run)]) == 0
    assert "figures/fig4_" in (tiny_run / "report.md").read_text()


def test_landscape_imports_the_runs_plugins(tiny_run, tmp_path, monkeypatch):
    plugin = "landscape_plugin_probe"
    (tmp_path / f"{plugin}.py").write_text("IMPORTED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tiny_run.parent / "tiny-with-plugin"  # beside the run: the same stage cache
    run.mkdir()
    config = json.loads((tiny_run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "plugins": [plugin]}))
    shutil.copy(tiny_run / "results.parquet", run / "results.parquet")
    assert plugin not in sys.modules
    assert main(["landscape", str(run), "--score", "tiny-test-snip", "--grid", "2"]) == 0
    assert sys.modules[plugin].IMPORTED
