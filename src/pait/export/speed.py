"""Latency of modules on the CPU, eager PyTorch or ONNX Runtime, timed interleaved in paired repeats.

Every repeat times each variant once, back to back, so slow drifts of a shared machine (other processes,
frequency changes) hit all variants of a repeat alike; a speed-up is then the median over repeats of the
*paired* ratio dense / variant, with its range as the spread. Shared by ``bench/structured_speed.py``,
``bench/round_to.py`` and the latency-targeted pruning (:mod:`pait.prune.structured.latency`).
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pait.errors import ConfigError
from pait.export.int8 import session
from pait.export.structured import export_onnx, features_module

RUNTIMES = ("onnxruntime", "torch")  # ONNX Runtime (CPU provider) or eager PyTorch


def check_runtime(runtime: str, where: str = "runtime") -> str:
    """``runtime`` if it is one of :data:`RUNTIMES`, else a ConfigError naming ``where``."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"{where} {runtime!r} is not one of {', '.join(RUNTIMES)}")
    return runtime


def timed(fn: Callable[[], Any], inner: int) -> float:
    """Mean wall seconds of ``inner`` calls of ``fn``."""
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """PyTorch's intra-op thread count set to ``threads`` for the block, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def forward_fn(model: nn.Module, runtime: str, threads: int, batch: int, input_size: int,
               folder: str | Path) -> Callable[[], Any]:
    """A no-argument call of ``model``'s pooled features on a random (batch, 3, S, S) float32 input in
    ``runtime``; ONNX Runtime sessions get ``threads`` intra-op threads and their graph is written to ``folder``
    (PyTorch's thread count is the caller's: :func:`torch_threads`)."""
    check_runtime(runtime)
    x = torch.randn(batch, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    if runtime == "torch":
        module = features_module(copy.deepcopy(model)).float().eval()

        def eager() -> None:
            with torch.inference_mode():
                module(x)

        return eager
    handle, name = tempfile.mkstemp(dir=folder, suffix=".onnx")
    os.close(handle)
    path = export_onnx(model, name, input_size)
    runner = session(path, threads)
    feed = {"images": x.numpy()}
    return lambda: runner.run(None, feed)


def interleaved(fns: Mapping[Any, Callable[[], Any]], repeats: int, inner: int | Mapping[Any, int],
                on_repeat: Callable[[int], None] = lambda _: None) -> dict[Any, list[float]]:
    """Per key, the seconds per call in each of ``repeats`` repeats (the mean of ``inner`` calls, one count
    for all or one per key); one warm-up round first, then every repeat times every function once in order."""
    counts = inner if isinstance(inner, Mapping) else dict.fromkeys(fns, inner)
    for key, fn in fns.items():
        timed(fn, counts[key])
    times: dict[Any, list[float]] = {key: [] for key in fns}
    for r in range(repeats):
        for key, fn in fns.items():
            times[key].append(timed(fn, counts[key]))
        on_repeat(r)
    return times


def paired_ratios(reference: list[float], variant: list[float]) -> list[float]:
    """Per repeat, reference time / variant time (a speed-up when the reference is the dense module)."""
    return [a / b for a, b in zip(reference, variant, strict=True)]


def paired_speedup(reference: list[float], variant: list[float]) -> tuple[float, float, float]:
    """Min, median and max over repeats of the paired ratio reference / variant."""
    ratios = paired_ratios(reference, variant)
    return min(ratios), statistics.median(ratios), max(ratios)


@dataclass(frozen=True)
class Comparison:
    """Dense against pruned in one interleaved run: medians in ms, the paired speed-up and its range."""

    runtime: str
    threads: int
    batch: int
    input_size: int
    repeats: int
    dense_ms: float
    pruned_ms: float
    speedup: float  # median over repeats of the paired ratio dense / pruned
    speedup_min: float
    speedup_max: float
    target: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "achieved": self.speedup}


def compare(dense: nn.Module, pruned: nn.Module, runtime: str, threads: int, batch: int, input_size: int,
            repeats: int = 15, inner: int | None = None, target: float | None = None) -> Comparison:
    """Time ``dense`` and ``pruned`` interleaved (:func:`interleaved`) in ``runtime``; ``inner`` calls per
    repeat (default: 20 at batch 1, 3 above); ``target`` is carried into the result beside the achieved
    speed-up."""
    inner = inner or (20 if batch == 1 else 3)
    with tempfile.TemporaryDirectory() as folder, torch_threads(threads):
        fns = {name: forward_fn(m, runtime, threads, batch, input_size, folder)
               for name, m in (("dense", dense), ("pruned", pruned))}
        times = interleaved(fns, repeats, inner)
    low, mid, high = paired_speedup(times["dense"], times["pruned"])
    return Comparison(runtime, threads, batch, input_size, repeats, statistics.median(times["dense"]) * 1e3,
                      statistics.median(times["pruned"]) * 1e3, mid, low, high, target)
