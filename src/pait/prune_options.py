"""Options of ``pait prune``, kept free of heavy imports so the command line parses instantly."""

from __future__ import annotations

from dataclasses import dataclass

from pait.config import FinetuneConfig

# What follows pruning: nothing, SGD with masks held, one-shot OBS, BatchNorm re-calibration, sequential
# (layer-wise) OBS with the mask held or re-selected per block at each layer's density, and the compositions.
RECOVERIES = ("none", "sgd", "obs", "bn", "sequential", "sequential-adaptive", "bn+sequential",
              "bn+sequential-adaptive")


@dataclass(frozen=True)
class PruneOptions:
    """Everything ``pait prune`` needs besides the data folder; stored in the report for ``pait evaluate``."""

    encoder: str
    weights: str | None = None
    input_size: int | None = None
    score: str = "kfac"
    sparsity: float | None = 0.6
    nm: str | None = None
    recovery: str = "obs"
    retrain_epochs: int = 4
    lr: float = 0.01
    calib_per_class: int = 20
    eval_per_class: int = 10
    seed: int = 0
    batch_size: int = 32
    damping: float = 1e-3
    device: str = "auto"

    def validate(self) -> None:
        """Raise a ValueError on an unknown score or recovery, a bad sparsity or N:M pattern."""
        from pait.masks import check_sparsity
        from pait.nm import parse_nm
        from pait.scores import SCORES

        if self.score not in SCORES:
            raise ValueError(f"unknown score {self.score!r}; choose one of {', '.join(SCORES)}")
        if self.recovery not in RECOVERIES:
            raise ValueError(f"unknown recovery {self.recovery!r}; choose one of {', '.join(RECOVERIES)}")
        if (self.sparsity is None) == (self.nm is None):
            raise ValueError("give exactly one of a sparsity and an N:M pattern")
        if self.nm is not None:
            parse_nm(self.nm)
        else:
            check_sparsity(self.sparsity)
        if self.recovery == "sgd" and self.retrain_epochs < 1:
            raise ValueError("sgd recovery needs at least 1 re-training epoch")

    def finetune_config(self) -> FinetuneConfig:
        """The demo's short schedule: SGD momentum 0.9, lr x0.1 for the last quarter of the epochs."""
        last = max(1, (3 * self.retrain_epochs) // 4)
        return FinetuneConfig(epochs=self.retrain_epochs, lr=self.lr, milestones=(last,), batch_size=self.batch_size)
