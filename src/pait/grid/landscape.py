"""Loss surfaces on the plane of [theta0 (pre-trained), theta0 * mask (pruned), re-trained] (Fig. 4).

The plane is the PCA plane of the three flat weight vectors: centred at their mean, the two principal
directions of the three centred points span exactly their affine plane, so every one of the three
lies on it. Only floating-point parameters move; buffers (BatchNorm running statistics) stay at their
pre-trained values and the encoder stays in eval mode, exactly as during masked re-training.

Grid points are evaluated in batches (``torch.func.vmap`` over a chunk of weight vectors), and the
surface is cached in an ``.npz`` file rewritten after every grid row, so a killed run resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pait.cache import check_stage, config_key
from pait.errors import RunFolderError
from pait.tensorfiles import read_safetensors
from pait.report.surface import Surface
from pait.heads import HeadedModel, mse_to_one_hot
from pait.grid.stages import Context, unit_key

GRID_MARGIN = 0.3  # the grid extends the three points' bounding box by this fraction of its size


@dataclass(frozen=True)
class Plane:
    """An affine plane in weight space: ``center + a * basis[0] + b * basis[1]`` (orthonormal basis)."""

    center: Tensor  # (D,)
    basis: Tensor  # (2, D)


def plane_through(a: Tensor, b: Tensor, c: Tensor) -> Plane:
    """The PCA plane of three flat vectors: their mean and the top two right singular vectors."""
    points = torch.stack([a, b, c])
    center = points.mean(0)
    _, _, vh = torch.linalg.svd(points - center, full_matrices=False)
    return Plane(center, vh[:2])


def coordinates(plane: Plane, vectors: Tensor) -> Tensor:
    """Plane coordinates (N, 2) of flat vectors (N, D) (their orthogonal projection)."""
    return (vectors - plane.center) @ plane.basis.T


def reconstruct(plane: Plane, coords: Tensor) -> Tensor:
    """Flat vectors (N, D) at plane coordinates (N, 2)."""
    return plane.center + coords.to(plane.basis.dtype) @ plane.basis


def grid_coordinates(points: Tensor, size: int, margin: float = GRID_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """Axes (``size`` values each) of a square-celled grid covering the points' coordinates (N, 2)."""
    lo, hi = points.min(0).values.double(), points.max(0).values.double()
    extent = float((hi - lo).max())
    mid = (lo + hi) / 2
    half = extent * (0.5 + margin)
    return tuple(np.linspace(float(m) - half, float(m) + half, size) for m in mid)


def flatten(state: dict[str, Tensor], names: list[str]) -> Tensor:
    """One float64 vector of the named tensors, concatenated in order."""
    return torch.cat([state[n].detach().reshape(-1).double().cpu() for n in names])


def unflatten(vectors: Tensor, shapes: dict[str, torch.Size]) -> dict[str, Tensor]:
    """Named tensors (N, *shape) from flat vectors (N, D), splitting in the order of ``shapes``."""
    out, offset = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape)) if len(shape) else 1
        out[name] = vectors[:, offset : offset + size].reshape(len(vectors), *shape)
        offset += size
    return out


@dataclass(frozen=True)
class UnitWeights:
    """The three weight vectors of one unit, flat over ``names`` (the moved parameters)."""

    names: list[str]
    theta0: Tensor
    pruned: Tensor
    retrained: Tensor


def moved_parameter_names(ctx: Context) -> list[str]:
    """All floating-point parameters of the encoder (buffers are not parameters and stay)."""
    return [n for n, p in ctx.encoder.model.named_parameters() if p.is_floating_point()]


def unit_dir(ctx: Context, source: str, score: str, sparsity: float, recovery: str = "sgd") -> Path:
    """The unit stage directory (mask, metrics, recovered weights) of one grid point."""
    return ctx.store.path("unit", unit_key(ctx, source, score, sparsity, recovery))


def unit_weights(ctx: Context, directory: Path) -> UnitWeights:
    """theta0, theta0 * mask and the re-trained parameters read from a unit stage directory."""
    weights = directory / "recovered.safetensors"
    if not weights.is_file():
        raise RunFolderError(f"{weights} is missing: run the grid with save_weights: true to keep re-trained weights")
    names = moved_parameter_names(ctx)
    mask = {k: v.bool() for k, v in read_safetensors(directory / "mask.safetensors").items()}  # damaged: one line
    recovered = read_safetensors(weights)
    check_stage(directory)  # a file overwritten with as many bytes still reads
    pruned = {n: ctx.theta0[n] * mask[n].to(ctx.theta0[n].device) if n in mask else ctx.theta0[n] for n in names}
    return UnitWeights(names, flatten(ctx.theta0, names), flatten(pruned, names), flatten(recovered, names))


@torch.no_grad()
def evaluate_points(ctx: Context, names: list[str], vectors: Tensor, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, loss) on ``task``'s evaluation split at each flat weight vector (B, D), in one vmapped pass."""
    params = dict(ctx.encoder.model.named_parameters())
    shapes = {n: params[n].shape for n in names}
    dtype = params[names[0]].dtype
    batched = {f"backbone.{n}": v.to(ctx.device, dtype) for n, v in unflatten(vectors, shapes).items()}
    model = HeadedModel(ctx.encoder.model, ctx.encoder.feature_fn, ctx.heads[task]).eval()
    data = ctx.splits[task][1]
    fixed = {k: v for k, v in model.state_dict().items() if k not in batched}

    def outputs(weights: dict[str, Tensor], images: Tensor) -> Tensor:
        return torch.func.functional_call(model, {**fixed, **weights}, (images,))

    chunks = []
    for start in range(0, len(data), ctx.config.eval_batch_size):
        images = ctx.normalize(data.pixels[start : start + ctx.config.eval_batch_size].to(ctx.device))
        dtype_ac = ctx.autocast
        with torch.autocast(ctx.device.type, dtype=dtype_ac, enabled=dtype_ac is not None):
            chunks.append(torch.func.vmap(outputs, in_dims=(0, None))(batched, images).float().cpu())
    out = torch.cat(chunks, dim=1)  # (B, N, C)
    labels = data.labels
    accuracy = (out.argmax(-1) == labels).double().mean(1)
    loss = torch.stack([mse_to_one_hot(point, labels) for point in out])
    return accuracy.numpy(), loss.double().numpy()


def surface_key(unit: dict, tasks: list[str], grid: int) -> str:
    """Cache key of a surface: the unit stage key, the evaluated tasks and the grid size."""
    return config_key({"unit": unit, "tasks": tasks, "grid": grid, "margin": GRID_MARGIN})


def compute_surface(
    ctx: Context,
    source: str,
    score: str,
    sparsity: float,
    transfer: str,
    grid: int,
    path: Path,
    chunk: int = 4,
    on_row: Callable[[int, int], None] | None = None,
    recovery: str = "sgd",
) -> Surface:
    """Evaluate the source and ``transfer`` losses on a ``grid`` x ``grid`` plane grid, resuming from ``path``."""
    tasks = [source, transfer]
    weights = unit_weights(ctx, unit_dir(ctx, source, score, sparsity, recovery))
    plane = plane_through(weights.theta0, weights.pruned, weights.retrained)
    points = coordinates(plane, torch.stack([weights.theta0, weights.pruned, weights.retrained]))
    if path.is_file():
        surface = Surface.load(path)
    else:
        alphas, betas = grid_coordinates(points, grid)
        nan = np.full((len(tasks), grid, grid), np.nan)
        meta = {"source": source, "score": score, "sparsity": sparsity, "recovery": recovery, "transfer": transfer,
                "encoder": ctx.encoder_config.name, "bn": "eval mode, pre-trained running statistics"}
        surface = Surface(alphas, betas, points.numpy(), tasks, nan, nan.copy(), meta)
    for row, beta in enumerate(surface.betas):
        if not np.isnan(surface.loss[:, row]).any():
            continue
        coords = torch.tensor([[a, beta] for a in surface.alphas], dtype=torch.float64)
        for t, task in enumerate(tasks):
            for start in range(0, len(coords), chunk):  # only a chunk of weight vectors is ever held
                vectors = reconstruct(plane, coords[start : start + chunk])
                acc, loss = evaluate_points(ctx, weights.names, vectors, task)
                surface.accuracy[t, row, start : start + chunk] = acc
                surface.loss[t, row, start : start + chunk] = loss
        surface.save(path)
        if on_row is not None:
            on_row(row, len(surface.betas))
    return surface
