"""A measured latency table: how much faster the model gets when one prunable group is narrowed.

The model (additive): the latency of a module whose groups keep ``w_1 .. w_G`` units is predicted as
``dense_ms - sum_g saving_g(w_g)``, where ``saving_g(w)`` is measured on the full network at the machine
at hand with *only* group ``g`` narrowed to ``w`` units (inside the real shapes of every other layer, so
the kernels, padding and layout choices of the runtime are the real ones, including the slowdowns of
unaligned widths). Why this model: one full-network timing per (group, width) is cheap (``G x W``
variants, no search over combinations) and captures each group's own kernels exactly; what it misses
is the interaction of two narrowed groups that share a layer (a conv whose input and output are both
cut), which the timing of the final choice measures (:func:`pait.export.speed.compare`, reported as
predicted against achieved).

Each group's candidates and the dense module are timed interleaved in paired repeats; a saving is the
median over repeats of (dense - narrowed), so machine drift cancels (or, ``estimator="min"``, the fastest
dense repeat minus the fastest narrowed one). Savings can be negative (an
unaligned width slower than dense) and are kept as measured.

The table is cached as JSON under a key of everything it depends on: the architecture (every module's
type and parameter shapes) and the groups' shapes, the runtime, threads, batch size, input size, the
candidate widths' settings, and the machine (CPU model from ``/proc/cpuinfo``, core count, torch and
onnxruntime versions). It is written atomically (:func:`pait.cache.write_atomic`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from pait.cache import write_atomic
from pait.errors import ConfigError
from pait.export.speed import check_runtime, forward_fn, interleaved, torch_threads
from pait.prune.structured.groups import Group, build_graph, find_groups, remove_units
from pait.prune.structured.selection import MIN_KEEP, floor

FORMAT = "pait-latency-table/1"
ESTIMATORS = ("median", "min")
MAX_WIDTHS = 8  # candidate widths per group (the dense width included), evenly spread over the allowed ones


@dataclass(frozen=True)
class LatencySetting:
    """Where and how the table is measured (every field is part of the cache key)."""

    runtime: str = "onnxruntime"  # "onnxruntime" (CPU provider) or "torch" (eager)
    threads: int = 2
    batch: int = 1
    input_size: int = 224
    round_to: int = 1  # channel / neuron groups keep a multiple of this (or all); heads are not rounded
    max_widths: int = MAX_WIDTHS
    min_keep: float = MIN_KEEP
    repeats: int = 7
    inner: int = 10  # calls per timed repeat
    # a saving = "median" over repeats of the paired difference dense - narrowed, or "min": the fastest repeat
    # of dense minus the fastest of narrowed (the least disturbed runs: steadier on a shared, loaded machine)
    estimator: str = "median"

    def validate(self) -> None:
        check_runtime(self.runtime, "latency runtime")
        for name in ("threads", "batch", "input_size", "round_to", "repeats", "inner"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"latency {name} must be an integer >= 1, got {value!r}")
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"latency estimator {self.estimator!r} is not one of {', '.join(ESTIMATORS)}")
        if isinstance(self.max_widths, bool) or not isinstance(self.max_widths, int) or self.max_widths < 2:
            raise ConfigError(f"latency max_widths must be an integer >= 2, got {self.max_widths!r}")


@dataclass
class GroupLatency:
    """One group's candidate widths (units kept, ascending, the last = all) and the saving of each, in ms."""

    name: str
    kind: str
    units: int
    widths: list[int]
    saving_ms: list[float]
    latency_ms: list[float] = field(default_factory=list)  # median of the narrowed module, for the record
    spread_ms: list[list[float]] = field(default_factory=list)  # quartiles of the paired differences


@dataclass
class LatencyTable:
    key: dict[str, Any]
    dense_ms: float
    groups: list[GroupLatency]
    measured: dict[str, Any] = field(default_factory=dict)  # when and under what load (not part of the key)

    def predicted_ms(self, widths: Sequence[int]) -> float:
        """Additive prediction of the module's latency when group ``i`` keeps ``widths[i]`` units."""
        total = 0.0
        for group, width in zip(self.groups, widths, strict=True):
            if width not in group.widths:
                raise ValueError(f"{width} is not a measured width of {group.name} ({group.widths})")
            total += group.saving_ms[group.widths.index(width)]
        return self.dense_ms - total

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "key": self.key, "dense_ms": self.dense_ms,
                           "groups": [asdict(g) for g in self.groups], "measured": self.measured}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> LatencyTable:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} table")
        return cls(data["key"], float(data["dense_ms"]), [GroupLatency(**g) for g in data["groups"]],
                   dict(data.get("measured", {})))


def candidate_widths(group: Group, round_to: int = 1, min_keep: float = MIN_KEEP,
                     max_widths: int = MAX_WIDTHS) -> list[int]:
    """Units ``group`` may keep, ascending: at least its floor (:func:`pait.prune.structured.selection.floor`),
    a multiple of ``round_to`` for channel / neuron groups (heads: any count), always all units; at most
    ``max_widths`` of them, evenly spread from the smallest allowed to all units."""
    step = 1 if group.kind == "heads" else round_to
    low = floor(group.units, min_keep)
    allowed = [w for w in range(-(-low // step) * step, group.units, step)] + [group.units]
    if len(allowed) <= max_widths:
        return allowed
    picks = {round(i * (len(allowed) - 1) / (max_widths - 1)) for i in range(max_widths)}
    return [allowed[i] for i in sorted(picks)]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine facts a latency depends on: CPU model, core count, runtime versions."""
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "onnxruntime": ort.__version__}


def architecture_hash(model: nn.Module, groups: Sequence[Group]) -> str:
    """sha256 of every module's name, type and parameter / buffer shapes, and of the groups' shapes."""
    modules = [[name, type(m).__name__, [[n, list(t.shape)] for n, t in
                                         [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]]]
               for name, m in model.named_modules()]
    shapes = [[g.name, g.kind, g.width, g.unit] for g in groups]
    return hashlib.sha256(json.dumps({"modules": modules, "groups": shapes}, sort_keys=True).encode()).hexdigest()


def table_key(model: nn.Module, groups: Sequence[Group], setting: LatencySetting) -> dict[str, Any]:
    """The cache key of a table: architecture hash, every setting, the machine."""
    return {"format": FORMAT, "architecture": architecture_hash(model, groups), "setting": asdict(setting),
            "machine": machine()}


def table_path(cache_dir: str | Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir) / f"latency-{digest}.json"


def cpu_copy(model: nn.Module) -> nn.Module:
    """A float32 copy on the CPU, in eval mode: what is timed, whatever device and precision ``model`` has."""
    return copy.deepcopy(model).float().cpu().eval()


def _example(model: nn.Module, input_size: int) -> torch.Tensor:
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    return torch.zeros(1, 3, input_size, input_size, dtype=dtype)


def cut_copy(model: nn.Module, head_prefixes: Sequence[str], removed: Callable[[list[Group]], list[list[int]]]
             | list[list[int]], input_size: int) -> nn.Module:
    """A copy of ``model`` (eval mode) with ``removed[i]`` units cut from its group ``i`` (or ``removed(groups)``,
    computed from the copy's groups)."""
    copied = copy.deepcopy(model).eval()
    graph = build_graph(copied, _example(copied, input_size))
    groups = find_groups(copied, graph, head_prefixes)
    remove_units(copied, graph, groups, removed(groups) if callable(removed) else removed)
    return copied


def narrowed(model: nn.Module, head_prefixes: Sequence[str], index: int, keep: int, input_size: int) -> nn.Module:
    """A copy of ``model`` whose group ``index`` keeps its first ``keep`` units, every other group whole (which
    units go does not change the latency)."""
    return cut_copy(model, head_prefixes, lambda groups: [list(range(keep, g.units)) if i == index else []
                                                          for i, g in enumerate(groups)], input_size)


def measure_table(model: nn.Module, head_prefixes: Sequence[str], setting: LatencySetting,
                  show_progress: bool = True) -> LatencyTable:
    """Measure the latency table of ``model`` (not modified; timed as a float32 copy on the CPU) on this
    machine; a progress bar over groups."""
    setting.validate()
    model = cpu_copy(model)
    graph = build_graph(model, _example(model, setting.input_size))
    groups = find_groups(model, graph, head_prefixes)
    del graph
    key = table_key(model, groups, setting)
    rows: list[GroupLatency] = []
    dense_repeats: list[float] = []
    columns = (TextColumn("latency table"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
               TimeElapsedColumn())
    with tempfile.TemporaryDirectory() as folder, torch_threads(setting.threads), \
            Progress(*columns, disable=not show_progress, transient=True) as progress:
        task = progress.add_task("", total=len(groups))

        def fn(module: nn.Module):
            return forward_fn(module, setting.runtime, setting.threads, setting.batch, setting.input_size, folder)

        dense = fn(model)
        for index, group in enumerate(groups):
            progress.update(task, description=group.name)
            widths = candidate_widths(group, setting.round_to, setting.min_keep, setting.max_widths)
            fns = {"dense": dense} | {w: fn(narrowed(model, head_prefixes, index, w, setting.input_size))
                                      for w in widths[:-1]}
            times = interleaved(fns, setting.repeats, setting.inner)
            dense_repeats += times["dense"]
            differences = [[(d - v) * 1e3 for d, v in zip(times["dense"], times[w])] for w in widths[:-1]]
            rows.append(GroupLatency(group.name, group.kind, group.units, widths,
                                     [_saving(setting.estimator, times["dense"], times[w], d)
                                      for w, d in zip(widths, differences)] + [0.0],
                                     [statistics.median(times[w]) * 1e3 for w in widths[:-1]]
                                     + [statistics.median(times["dense"]) * 1e3],
                                     [_quartiles(d) for d in differences] + [[0.0, 0.0]]))
            progress.advance(task)
    return LatencyTable(key, statistics.median(dense_repeats) * 1e3, rows)


def _saving(estimator: str, dense: list[float], variant: list[float], differences_ms: list[float]) -> float:
    return statistics.median(differences_ms) if estimator == "median" else (min(dense) - min(variant)) * 1e3


def _quartiles(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [values[0], values[0]]
    quartiles = statistics.quantiles(values, n=4)
    return [quartiles[0], quartiles[2]]


def latency_table(model: nn.Module, head_prefixes: Sequence[str], setting: LatencySetting,
                  cache_dir: str | Path | None, show_progress: bool = True) -> LatencyTable:
    """The latency table of ``model`` for ``setting``: read from ``cache_dir`` when a table of the same key is
    there, else measured (:func:`measure_table`) and written there atomically (``None``: no cache). A measured
    table records when, for how long and under what load average it was measured (``measured``): timings
    from a loaded machine are noisier, and the key does not say so."""
    setting.validate()
    if cache_dir is not None:
        copied = cpu_copy(model)
        graph = build_graph(copied, _example(copied, setting.input_size))
        key = table_key(copied, find_groups(copied, graph, head_prefixes), setting)
        del copied, graph
        path = table_path(cache_dir, key)
        try:
            table = LatencyTable.from_json(path.read_text())
            if table.key == key:
                return table
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent, unreadable or another table: measure again
    start, load = time.time(), os.getloadavg()
    table = measure_table(model, head_prefixes, setting, show_progress)
    table.measured = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                      "seconds": time.time() - start, "loadavg_before": list(load), "loadavg_after": list(os.getloadavg())}
    if cache_dir is not None:
        write_atomic(table_path(cache_dir, table.key), table.to_json().encode())
    return table
