"""Options of ``pait prune``, kept free of heavy imports so the command line parses instantly."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pait.config import FinetuneConfig
from pait.errors import ConfigError
from pait.prune.group_score_names import GROUP_SCORES as STRUCTURED_SCORES
from pait.prune.group_score_names import check_group_score_options
from pait.prune.recoveries import check_recovery_options, recovery_names
from pait.typed import Count, NonNegative, Range, Seed, brief, check_value

# The command line's choices: the registered recoveries (pait.prune.recoveries), without and with --structure.
RECOVERIES = recovery_names("weights")
STRUCTURED_RECOVERIES = recovery_names("channels")
STRUCTURES = ("channels",)  # structured pruning: conv channels / ViT heads and MLP neurons
MAX_INPUT_SIZE = 1024  # pixels, for `pait prune` and the grid: --input-size 100000 asked for 133 GB at once
InputSize = Annotated[int, Range(ge=1, le=MAX_INPUT_SIZE)]
DEFAULT_SPARSITY = 0.6  # of global masks, when neither --nm nor --structure is given
DEFAULT_RECOVERY = {None: "obs", "channels": "sequential"}  # by structure (None: unstructured masks)
# with --structure: each layer keeps a multiple of 8 channels unless --round-to says otherwise (BENCHMARKS.md:
# multiples of 8 and 16 both ran 1.13x vs dense in ONNX Runtime at ratio 0.3 on Lite0 224 px, any width 0.62x)
DEFAULT_ROUND_TO = {None: 1, "channels": 8}
LATENCY_RUNTIMES = ("onnxruntime", "torch")  # pait.export.speed.RUNTIMES, without importing ONNX Runtime here
DEFAULT_LATENCY = {"latency_runtime": LATENCY_RUNTIMES[0], "latency_threads": 2, "latency_batch": 1}
INT8_ACTIVATIONS = ("quint8", "qint8")  # pait.export.int8's, default first, without importing ONNX Runtime here
GROUPS = {"data": "data and encoder", "score": "score", "mask": "mask or structure", "recovery": "recovery",
          "probes": "transfer probes", "output": "output"}  # the --help groups of `pait prune`, in order


@dataclass(frozen=True)
class Flag:
    """How a PruneOptions field is set on the command line: its ``--help`` group (a key of :data:`GROUPS`) and
    text, and, where they differ from the defaults, its spelling (``--<field with dashes>``), metavar,
    choices, whether it is required, and ``repeat`` (given as KEY=VALUE, once per entry of a mapping). A
    ``tuple[str, ...]`` field is a flag given once per entry; a bool field that defaults to True is a flag
    that turns it off."""

    group: str
    help: str
    spelling: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False
    repeat: bool = False


def option(default: Any, group: str, help: str, **flag: Any) -> Any:
    """A dataclass field with ``default`` and its command-line :class:`Flag` (a mapping default is a factory)."""
    meta = {"flag": Flag(group, help, **flag)}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


def flag(field_name: str) -> str:
    """The ``pait prune`` flag that sets the PruneOptions field ``field_name``."""
    meta = {f.name: f.metadata["flag"] for f in dataclasses.fields(PruneOptions)}[field_name]
    return meta.spelling or f"--{field_name.replace('_', '-')}"


@dataclass(frozen=True)
class PruneOptions:
    """Everything ``pait prune`` takes, one field per flag (:func:`flag`), stored in its report for ``pait
    evaluate``. Each field's annotation is its type and range, checked first by ``validate``; its default is
    the flag's, except for two that follow from others by one rule each (:meth:`resolved`): ``sparsity``
    (:data:`DEFAULT_SPARSITY` for global masks) and ``recovery`` (:data:`DEFAULT_RECOVERY`, by structure)."""

    encoder: str = option(None, "data", "registered encoder name", required=True)
    weights: str | None = option(None, "data", "checkpoint file, for encoders that need one")
    input_size: InputSize | None = option(None, "data", "input resolution (default: the encoder's)")
    data: str | None = option(None, "data", "folder of class sub-folders of images", required=True)
    calib_per_class: Count = option(20, "data", "calibration images per class (head, scores, recovery)")
    eval_per_class: Count = option(10, "data", "held-out evaluation images per class")
    seed: Seed = option(0, "data", "seed of the calibration/evaluation split, the scores and the re-training")
    batch_size: Count = option(32, "data", "batch size of features, scores and recovery")
    device: str = option("auto", "data", "auto, cpu or cuda")
    score: str = option("kfac", "score", "pruning score (`pait score --help`; an unknown name lists them)")
    score_options: dict[str, Any] = option({}, "score", "option of the score function, e.g. damping=1e-2 for "
                                           "kfac (repeatable)", spelling="--score-option", metavar="KEY=VALUE",
                                           repeat=True)
    sparsity: float | None = option(None, "mask", f"global fraction of prunable weights removed (default "
                                    f"{DEFAULT_SPARSITY}, unless --nm or --structure)")
    nm: str | None = option(None, "mask", "N:M semi-structured pattern instead of a global sparsity, e.g. 2:4")
    structure: str | None = option(None, "mask", "structured pruning: remove conv channels / ViT attention heads "
                                   "and MLP neurons; writes a physically smaller module (pruned.safetensors + "
                                   "structure.json)", choices=STRUCTURES)
    ratio: float | None = option(None, "mask", "with --structure: global fraction of prunable channels (and "
                                 "heads) removed, in [0, 1)")
    round_to: Annotated[int, Range(ge=1)] | None = option(
        None, "mask", "with --structure: every pruned layer keeps a multiple of N channels (or all of them; rounding "
        f"up, so fewer channels than --ratio may go); heads are not rounded (default {DEFAULT_ROUND_TO['channels']}, "
        "the widths fast CPU kernels want; --round-to 1: any width)", metavar="N")
    target_speedup: float | None = option(
        None, "mask", "with --structure, instead of --ratio: the widths that keep the most group score within a "
        "latency budget of (dense latency / X), from a latency table measured on this machine (cached; "
        "lower-quartile savings, exact knapsack; the library's defaults: 7 repeats of 10 calls, at most 8 widths "
        "per group, a 10%% floor per group), corrected by measurement (up to 4 cut copies timed against dense, "
        "stopping within 5%% of X; the one measured nearest X is kept); the pruned module is then timed against "
        "the dense one (15 repeats) and the report gives target, predicted and achieved speed-up", metavar="X")
    latency_runtime: str | None = option(None, "mask", "with --target-speedup: where latency is measured, one of "
                                         f"{', '.join(LATENCY_RUNTIMES)} (default {LATENCY_RUNTIMES[0]}; at the "
                                         "encoder's input size)", metavar="NAME")
    latency_threads: Count | None = option(None, "mask", "with --target-speedup: threads of the timed runtime "
                                           f"(default {DEFAULT_LATENCY['latency_threads']})", metavar="N")
    latency_batch: Count | None = option(None, "mask", "with --target-speedup: images per timed call (default "
                                         f"{DEFAULT_LATENCY['latency_batch']})", metavar="N")
    recovery: str | None = option(None, "recovery", "after pruning: nothing, SGD re-training (masks held), one-shot "
                                  "OBS (K-FAC), BatchNorm re-calibration, sequential layer-wise OBS (mask held, or "
                                  "-adaptive), or bn+sequential; with --structure one of "
                                  f"{', '.join(STRUCTURED_RECOVERIES)} (default: "
                                  f"{DEFAULT_RECOVERY[None]}, with --structure {DEFAULT_RECOVERY['channels']})",
                                  choices=RECOVERIES)
    recovery_options: dict[str, Any] = option({}, "recovery", "option of the recovery, e.g. damping=1e-2 for obs or "
                                              "sequential (repeatable; an unknown key lists the options the "
                                              "recovery takes)",
                                              spelling="--recovery-option", metavar="KEY=VALUE", repeat=True)
    retrain_epochs: Annotated[int, Range(ge=0)] = option(4, "recovery", "epochs of sgd recovery")
    lr: NonNegative = option(0.01, "recovery", "learning rate of sgd recovery")
    probes: tuple[str, ...] = option((), "probes", "folder of class sub-folders of images of another task: after "
                                     "pruning, its held-out accuracy through a ridge head fit on the unpruned encoder "
                                     "(repeatable; split as --data is)", spelling="--probe", metavar="DIR")
    probe_suite: str | None = option(None, "probes", "a registered suite whose tasks are probes, e.g. embedded",
                                     metavar="NAME")
    default_probes: bool = option(True, "probes", "no default probes (without --probe and --probe-suite the "
                                  "probes are the embedded suite's tasks that share no image with --data)",
                                  spelling="--no-probes")
    out: str | None = option(None, "output", "output directory (replaced whole)", required=True)
    cache: str | None = option(None, "output", "stage cache (decoded images, heads, scores, units), reused by "
                               "reruns and by `pait run`; default $PAIT_CACHE, else ~/.cache/pait", metavar="DIR")
    onnx: bool = option(False, "output", "with --structure: also write pruned.onnx (features)")
    int8: bool = option(False, "output", "also write pruned.int8.onnx (ONNX Runtime static INT8, QDQ, per-channel "
                        "weights; of the masked dense module without --structure) and measure it against fp32 ONNX: "
                        "held-out and probe accuracy, CPU latency at batch 1 and 32")
    int8_activations: str = option(INT8_ACTIVATIONS[0], "output", f"with --int8: activation type, one of "
                                   f"{', '.join(INT8_ACTIVATIONS)}", metavar="TYPE")

    def resolved(self) -> PruneOptions:
        """These options with the defaults that follow from others: ``sparsity`` is :data:`DEFAULT_SPARSITY`
        when no sparsity, N:M pattern, structure, ratio or target speed-up is given; ``recovery`` and
        ``round_to`` are the structure's :data:`DEFAULT_RECOVERY` and :data:`DEFAULT_ROUND_TO` when not
        given; the latency flags are :data:`DEFAULT_LATENCY` when a target speed-up is given."""
        structured = self.structure is not None or self.ratio is not None or self.target_speedup is not None
        sparsity = DEFAULT_SPARSITY if self.sparsity is None and self.nm is None and not structured else self.sparsity
        recovery = self.recovery if self.recovery is not None else DEFAULT_RECOVERY.get(self.structure)
        round_to = self.round_to if self.round_to is not None else DEFAULT_ROUND_TO.get(self.structure, 1)
        latency = {name: value if getattr(self, name) is None and self.target_speedup is not None
                   else getattr(self, name) for name, value in DEFAULT_LATENCY.items()}
        return dataclasses.replace(self, sparsity=sparsity, recovery=recovery, round_to=round_to, **latency)

    def validate(self, where: str | None = None) -> None:
        """Raise a ConfigError naming the first bad option: a value of the wrong type, a count, rate, seed,
        damping or input size out of range, an unknown score, score option or recovery, a bad sparsity or
        N:M pattern, flags that do not combine, a device this machine lacks (the defaults of :meth:`resolved`
        filled in first). Structured and unstructured pruning check the same.
        Options are named by their ``pait prune`` flags, or, for options read from the file ``where`` (a
        report.json), by that file and their keys there (``options.score_options``)."""
        if where is None:
            self.resolved()._validate(flag)
            return
        try:
            self.resolved()._validate(lambda name: f"options.{name}")
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None

    def _validate(self, name: Callable[[str], str]) -> None:
        from pait.device import resolve_device
        from pait.masks import check_sparsity
        from pait.masks import parse_nm
        from pait.scores import SCORES, check_score_options

        hints = typing.get_type_hints(PruneOptions, include_extras=True)
        for f in dataclasses.fields(self):
            check_value(hints[f.name], getattr(self, f.name), name(f.name))
        if self.recovery == "sgd" and self.retrain_epochs < 1:
            raise ConfigError(f"sgd recovery needs at least 1 re-training epoch ({name('retrain_epochs')})")
        structured = self.structure is not None or self.ratio is not None or self.target_speedup is not None
        mixed = name("sparsity") if self.sparsity is not None else name("nm") if self.nm is not None else None
        if structured and mixed:
            raise ConfigError(f"{mixed} does not combine with {name('structure')}/{name('ratio')}")
        self._validate_outputs(name)
        if self.onnx and not structured:
            raise ConfigError(f"{name('onnx')} does not combine with unstructured pruning; add {name('structure')} "
                              f"channels {name('ratio')} R")
        if structured:
            self._validate_structured(name)
            resolve_device(self.device)
            return
        self._validate_latency(name)
        if self.round_to != 1:
            raise ConfigError(f"{name('round_to')} {self.round_to} needs {name('structure')} ({', '.join(STRUCTURES)}) "
                              f"and {name('ratio')}")
        if self.score not in SCORES:
            raise ConfigError(f"unknown score {self.score!r}; choose one of {', '.join(SCORES)}")
        check_score_options({self.score: self.score_options}, where=name("score_options"))
        if self.recovery not in recovery_names("weights"):
            raise ConfigError(f"unknown recovery {self.recovery!r}; choose one of {', '.join(recovery_names())}")
        check_recovery_options({self.recovery: self.recovery_options}, where=name("recovery_options"))
        if (self.sparsity is None) == (self.nm is None):
            raise ConfigError("give exactly one of a sparsity and an N:M pattern")
        if self.nm is not None:
            parse_nm(self.nm)
        else:
            check_sparsity(self.sparsity)
        resolve_device(self.device)

    def _validate_outputs(self, name: Callable[[str], str]) -> None:
        """The probe and INT8 flags that need nothing but themselves (probe folders are read later)."""
        if self.int8_activations not in INT8_ACTIVATIONS:
            raise ConfigError(f"{name('int8_activations')}: unknown INT8 activation type {self.int8_activations!r}; "
                              f"choose one of {', '.join(INT8_ACTIVATIONS)}")
        if self.int8_activations != INT8_ACTIVATIONS[0] and not self.int8:
            raise ConfigError(f"{name('int8_activations')} needs {name('int8')}")
        if (self.probes or self.probe_suite is not None) and not self.default_probes:
            raise ConfigError(f"{name('default_probes')} does not combine with {name('probes')}/{name('probe_suite')} "
                              "(it turns off the default probes only when none is given)")

    def _validate_latency(self, name: Callable[[str], str]) -> None:
        """The target speed-up and the latency flags, which need it (and it, --structure without --ratio)."""
        if self.target_speedup is None:
            given = [name(n) for n in DEFAULT_LATENCY if getattr(self, n) is not None]
            if given:
                raise ConfigError(f"{given[0]} needs {name('target_speedup')}")
            return
        if self.structure is None:
            raise ConfigError(f"{name('target_speedup')} {self.target_speedup} needs {name('structure')} "
                              f"({', '.join(STRUCTURES)})")
        if self.ratio is not None:
            raise ConfigError(f"{name('target_speedup')} does not combine with {name('ratio')}: give one (a latency "
                              "budget or a fraction of channels removed)")
        if self.target_speedup <= 1:  # finite: checked with its type
            raise ConfigError(f"{name('target_speedup')} must be a number > 1 (a speed-up over the dense "
                              f"encoder), got {self.target_speedup!r}")
        if self.latency_runtime not in LATENCY_RUNTIMES:
            raise ConfigError(f"{name('latency_runtime')}: unknown runtime {self.latency_runtime!r}; choose one of "
                              f"{', '.join(LATENCY_RUNTIMES)}")

    def _validate_structured(self, name: Callable[[str], str]) -> None:
        self._validate_latency(name)
        if self.structure is None:
            raise ConfigError(f"{name('ratio')} {self.ratio} needs {name('structure')} ({', '.join(STRUCTURES)}); "
                              f"use {name('sparsity')} for unstructured pruning")
        if self.structure not in STRUCTURES:
            raise ConfigError(f"unknown structure {self.structure!r}; choose one of {', '.join(STRUCTURES)}")
        if self.ratio is None and self.target_speedup is None:
            raise ConfigError(f"{name('structure')} {self.structure} needs {name('ratio')} R, the fraction of channels "
                              f"removed, in [0, 1), or {name('target_speedup')} X")
        if self.ratio is not None:
            check_ratio(self.ratio, name("ratio"))
        if self.score not in STRUCTURED_SCORES:
            raise ConfigError(f"unknown structured score {self.score!r}; choose one of {', '.join(STRUCTURED_SCORES)}")
        if self.recovery not in recovery_names("channels"):
            raise ConfigError(f"unknown structured recovery {self.recovery!r}; choose one of "
                              f"{', '.join(recovery_names('channels'))}")
        check_recovery_options({self.recovery: self.recovery_options}, where=name("recovery_options"),
                               structure="channels")
        check_group_score_options({self.score: self.score_options}, where=name("score_options"))

    def finetune_config(self) -> FinetuneConfig:
        """The demo's short schedule: SGD momentum 0.9, lr x0.1 for the last quarter of the epochs."""
        last = max(1, (3 * self.retrain_epochs) // 4)
        return FinetuneConfig(epochs=self.retrain_epochs, lr=self.lr, milestones=(last,), batch_size=self.batch_size)


def check_ratio(ratio: float, where: str = "--ratio") -> float:
    """A structured ``ratio`` as a float in [0, 1), or a ConfigError naming it (as ``where``)."""
    if not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ConfigError(f"{where} must lie in [0, 1), got {ratio!r}")
    return float(ratio)
