"""Fig. 1 and Fig. 2: two-parameter quadratic landscapes, computed (not drawn by hand).

A task's loss is ``L(theta) = 1/2 (theta - m)^T H (theta - m)``; the pre-trained point theta0 is the
source minimum. Pruning sets one of the two weights to 0. Fig. 1 compares which weight each score
removes (the one with the lower score) under isotropic, diagonal and tilted Hessians: magnitude
``theta^2``, diagonal ``theta^2 H_jj`` (both prune by zeroing only) and the block / OBS score
``theta^2 / [H^-1]_jj`` with the OBS update of the remaining weight, which is the exact source-loss
increase (times 2) of the best removal. Fig. 2 re-trains the pruned point by gradient descent on
the source loss with the mask held and follows a transfer task's loss along the path: an aligned
transfer task (similar curvature and minimum) gains, a misaligned one (curvature tilted the other
way) loses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pait.report.savefig import save_figure  # noqa: E402

THETA0 = np.array([1.0, 0.7])
TOY_SCORES = ("magnitude", "diagonal", "obs")
SCORE_LABELS = {"magnitude": "magnitude θ²", "diagonal": "diagonal θ²H_jj", "obs": "block/OBS θ²/[H⁻¹]_jj"}


def rotation(degrees: float) -> np.ndarray:
    """2 x 2 rotation matrix."""
    r = np.radians(degrees)
    return np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])


def tilted(eigenvalues: tuple[float, float], degrees: float) -> np.ndarray:
    """A Hessian with the given eigenvalues whose eigenvectors are rotated by ``degrees``."""
    r = rotation(degrees)
    return r @ np.diag(eigenvalues) @ r.T


HESSIANS = {
    "isotropic": np.eye(2),
    "diagonal": np.diag([0.3, 4.0]),
    "tilted": tilted((4.0, 0.15), -65.0),
}


@dataclass(frozen=True)
class Quadratic:
    """``1/2 (theta - minimum)^T hessian (theta - minimum)``."""

    hessian: np.ndarray
    minimum: np.ndarray

    def loss(self, theta: np.ndarray) -> np.ndarray:
        """Loss at points (..., 2)."""
        d = np.asarray(theta) - self.minimum
        return 0.5 * np.einsum("...i,ij,...j->...", d, self.hessian, d)

    def grad(self, theta: np.ndarray) -> np.ndarray:
        return self.hessian @ (np.asarray(theta) - self.minimum)


def toy_scores(theta: np.ndarray, hessian: np.ndarray) -> dict[str, np.ndarray]:
    """The three scores of both weights (higher = more important)."""
    inverse = np.linalg.inv(hessian)
    return {"magnitude": theta**2, "diagonal": theta**2 * np.diag(hessian), "obs": theta**2 / np.diag(inverse)}


def prune(theta: np.ndarray, hessian: np.ndarray, score: str) -> tuple[int, np.ndarray]:
    """(index of the removed weight, pruned point); the OBS score also applies the OBS update."""
    q = int(np.argmin(toy_scores(theta, hessian)[score]))
    if score != "obs":
        point = theta.copy()
        point[q] = 0.0
        return q, point
    inverse = np.linalg.inv(hessian)
    point = theta - theta[q] / inverse[q, q] * inverse[:, q]
    point[q] = 0.0  # exact zero, not a rounding residue
    return q, point


def retrain_path(task: Quadratic, start: np.ndarray, kept: np.ndarray, steps: int = 60, lr: float | None = None) -> np.ndarray:
    """Gradient descent on ``task`` from ``start`` with the mask ``kept`` held: points (steps + 1, 2)."""
    lr = lr if lr is not None else 0.5 / np.linalg.eigvalsh(task.hessian).max()
    path = [start.astype(float)]
    for _ in range(steps):
        path.append(path[-1] - lr * task.grad(path[-1]) * kept)
    return np.array(path)


@dataclass(frozen=True)
class PruningPanel:
    """Fig. 1 data for one Hessian: the removed weight, pruned point and source loss per score."""

    name: str
    task: Quadratic
    removed: dict[str, int]
    points: dict[str, np.ndarray]
    losses: dict[str, float]


def fig1_data() -> list[PruningPanel]:
    """One panel per Hessian (isotropic, diagonal, tilted), theta0 at the source minimum."""
    panels = []
    for name, h in HESSIANS.items():
        task = Quadratic(h, THETA0)
        removed, points = {}, {}
        for score in TOY_SCORES:
            removed[score], points[score] = prune(THETA0, h, score)
        panels.append(PruningPanel(name, task, removed, points, {s: float(task.loss(p)) for s, p in points.items()}))
    return panels


@dataclass(frozen=True)
class TransferPanel:
    """Fig. 2 data: a source and a transfer task, the pruned point and the masked re-training path."""

    name: str
    source: Quadratic
    transfer: Quadratic
    pruned: np.ndarray
    path: np.ndarray
    source_losses: np.ndarray
    transfer_losses: np.ndarray


def fig2_data() -> list[TransferPanel]:
    """Aligned and misaligned transfer tasks; the source is pruned by magnitude (zeroing) and re-trained."""
    source = Quadratic(HESSIANS["tilted"], THETA0)
    transfers = {"aligned": Quadratic(tilted((3.0, 0.2), -65.0), THETA0 + np.array([0.1, 0.1])),
                 "misaligned": Quadratic(tilted((3.0, 0.2), 30.0), THETA0)}
    q, pruned = prune(THETA0, source.hessian, "magnitude")
    kept = np.ones(2)
    kept[q] = 0.0
    path = retrain_path(source, pruned, kept)
    return [TransferPanel(name, source, t, pruned, path, source.loss(path), t.loss(path)) for name, t in transfers.items()]


def _contours(ax: plt.Axes, task: Quadratic, lim: tuple[float, float], **kwargs) -> None:
    g = np.linspace(*lim, 201)
    a, b = np.meshgrid(g, g)
    z = task.loss(np.stack([a, b], -1))
    ax.contour(a, b, z, levels=np.quantile(z, [0.005, 0.02, 0.06, 0.15, 0.3, 0.5]), **kwargs)


def _frame(ax: plt.Axes, lim: tuple[float, float]) -> None:
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.set_xlabel("θ₁")
    ax.set_ylabel("θ₂")


MARKERS = {"magnitude": ("s", "tab:blue"), "diagonal": ("^", "tab:orange"), "obs": ("o", "tab:green")}


def draw_fig1() -> plt.Figure:
    """Fig. 1: which weight each score removes, on isotropic, diagonal and tilted source Hessians."""
    panels = fig1_data()
    lim = (-0.6, 1.6)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4))
    for ax, panel in zip(axes, panels):
        _contours(ax, panel.task, lim, colors="0.4", linewidths=0.8)
        ax.plot(*THETA0, "k*", ms=13, label="θ₀ (pre-trained)")
        for score in TOY_SCORES:
            marker, color = MARKERS[score]
            ax.plot(*panel.points[score], marker, color=color, ms=9, mfc="none", mew=2,
                    label=f"{SCORE_LABELS[score]}: drops θ{panel.removed[score] + 1}, ΔL={panel.losses[score]:.3f}")
        _frame(ax, lim)
        ax.set_title(f"{panel.name} Hessian")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Fig. 1: pruning one of two weights; the OBS/block score removes the cheaper one")
    fig.tight_layout()
    return fig


def plot_fig1(path: Path) -> Path:
    """Draw Fig. 1 into ``path`` (PNG)."""
    return save_figure(draw_fig1(), path)


def draw_fig2() -> plt.Figure:
    """Fig. 2: masked re-training on the source, seen by an aligned and a misaligned transfer task."""
    panels = fig2_data()
    lim = (-0.6, 1.6)
    fig, axes = plt.subplots(2, len(panels), figsize=(5.0 * len(panels), 8.4))
    for col, panel in enumerate(panels):
        ax = axes[0, col]
        _contours(ax, panel.source, lim, colors="tab:blue", linewidths=0.8)
        _contours(ax, panel.transfer, lim, colors="tab:red", linewidths=0.8, linestyles="--")
        ax.plot(*THETA0, "k*", ms=13, label="θ₀ (source minimum)")
        ax.plot(*panel.transfer.minimum, "rx", ms=10, mew=2, label="transfer minimum")
        ax.plot(*panel.pruned, "s", color="tab:blue", ms=9, mfc="none", mew=2, label="pruned (magnitude)")
        ax.plot(panel.path[:, 0], panel.path[:, 1], "-", color="tab:green", lw=2, label="re-training (mask held)")
        _frame(ax, lim)
        ax.set_title(f"{panel.name} transfer (solid: source, dashed: transfer)", fontsize=10)
        ax.legend(fontsize=7, loc="lower left")
        ax = axes[1, col]
        ax.plot(panel.source_losses, color="tab:blue", label="source loss")
        ax.plot(panel.transfer_losses, color="tab:red", ls="--", label="transfer loss")
        ax.set_xlabel("re-training step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
    fig.suptitle("Fig. 2: re-training on the source helps an aligned transfer task, can hurt a misaligned one")
    fig.tight_layout()
    return fig


def plot_fig2(path: Path) -> Path:
    """Draw Fig. 2 into ``path`` (PNG)."""
    return save_figure(draw_fig2(), path)
