"""Compute one pruning score for one encoder on one source task's calibration images, and save the
scores and the global masks at the requested sparsities (safetensors, written atomically).

Outputs in ``--out``: ``scores.safetensors`` (one tensor per prunable weight, keyed by the
encoder's parameter names) and ``mask-<sparsity>.safetensors`` (bool, True = kept). For
``synflow``, whose scores depend on the sparsity, ``scores-<sparsity>.safetensors`` per sparsity.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from torch import Tensor

from pait.encoders.base import Encoder
from pait.headed import HeadedModel
from pait.masks import global_mask
from pait.scores import SCORES, get_score

HELP = "compute a pruning score on a source task and save scores and masks"
SPARSITY_DEPENDENT = {"synflow"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pait score``."""
    parser.add_argument("--encoder", required=True, help="registered encoder name")
    parser.add_argument("--suite", required=True, help="task suite of the source task")
    parser.add_argument("--task", required=True, help="source task within the suite")
    parser.add_argument("--score", required=True, choices=SCORES)
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.3600, 0.4752, 0.5904, 0.6642, 0.7380, 0.7852, 0.8322])
    parser.add_argument("--min-density", type=float, default=0.0, help="per-layer floor of kept weights")
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--out", type=Path, required=True, help="output directory")


def score_and_mask(encoder: Encoder, images: Tensor, labels: Tensor, head: Tensor, score: str,
                   sparsities: list[float], batch_size: int = 25, min_density: float = 0.0,
                   **options: object) -> tuple[dict[float, dict[str, Tensor]], dict[float, dict[str, Tensor]]]:
    """Scores and masks per sparsity for ``encoder`` with a frozen ``head`` on one calibration set.

    Scores that do not depend on the sparsity are computed once and shared by every sparsity.
    """
    model = HeadedModel(encoder.model, encoder.feature_fn, head).eval()
    batches = list(zip(images.split(batch_size), labels.split(batch_size)))
    params = encoder.prunable_parameters()
    fn = get_score(score)
    shared = None if score in SPARSITY_DEPENDENT else fn(model, batches, params, **options)
    scores, masks = {}, {}
    for q in sparsities:
        scores[q] = shared if shared is not None else fn(model, batches, params, sparsity=q, **options)
        masks[q] = global_mask(scores[q], q, min_density=min_density)
    return scores, masks


def _save(tensors: dict[str, Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    """Load the encoder and the source calibration data, score, and write the files."""
    try:
        from pait.experiment import source_calibration
    except ImportError:
        print("pait score: the data pipeline (pait.experiment.source_calibration) is not available in this build")
        return 2
    encoder, images, labels, head = source_calibration(args.encoder, args.suite, args.task)
    scores, masks = score_and_mask(encoder, images, labels, head, args.score, args.sparsity, args.batch_size,
                                   args.min_density)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.score in SPARSITY_DEPENDENT:
        for q, s in scores.items():
            _save(s, args.out / f"scores-{q:.4f}.safetensors")
    else:
        _save(next(iter(scores.values())), args.out / "scores.safetensors")
    for q, m in masks.items():
        _save(m, args.out / f"mask-{q:.4f}.safetensors")
    print(f"pait score: wrote {args.score} scores and {len(masks)} masks to {args.out}")
    return 0
