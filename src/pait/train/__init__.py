"""Masked re-training on the source task: one run (finetune) or several sparsities in one vmapped loop (packed)."""
