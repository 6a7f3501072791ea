"""Structured pruning: remove whole conv channels, ViT attention heads and MLP neurons (Torch-Pruning's
dependency graph and surgery), ranked by group scores summed from pait's per-weight scores, and save a
physically smaller stock module that :func:`pait.export.load_structured` rebuilds without pait classes."""
