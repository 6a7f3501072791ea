"""Prune one pretrained encoder on one folder of images (class sub-folders) and write a pruned
checkpoint: ``pruned.safetensors`` (the full state dict of the stock module), ``mask.safetensors``
(bool, True = kept) and ``report.json`` / ``report.md`` (accuracy before/after on held-out images of
the folder, parameters, per-layer density, storage sizes). The ``--out`` folder is replaced whole, never
mixed with the files of an earlier run (``pait.outputs.replace_folder``).

The pruning itself is a grid of one unit (:mod:`pait.grid.practitioner`) whose stages live in the
``--cache`` folder: a rerun, killed or not, reuses every stage it finished.

Load the result without pait: ``model.load_state_dict(safetensors.torch.load_file("DIR/pruned.safetensors"))``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any

from pait.config import key_values
from pait.prune.options import GROUPS, Flag, PruneOptions, flag

HELP = "prune one encoder on a folder of images; write the pruned checkpoint, its mask and a report"


def flags() -> dict[str, Flag]:
    """The :class:`Flag` of every PruneOptions field, by field name."""
    return {f.name: f.metadata["flag"] for f in dataclasses.fields(PruneOptions)}


def _value_type(hint: Any) -> type:
    """The type a flag's text is parsed as: the field's type without ``None`` and ranges (checked later)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pait prune``: one flag per PruneOptions field, in the groups of :data:`GROUPS`."""
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    hints = typing.get_type_hints(PruneOptions, include_extras=True)
    for f in dataclasses.fields(PruneOptions):
        meta: Flag = f.metadata["flag"]
        # the field's default is the flag's; a flag not given is left out (--help then shows no "None")
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta.help, "required": meta.required,
                                  "default": f.default if f.default not in (None, dataclasses.MISSING) else
                                  argparse.SUPPRESS}
        kind = _value_type(hints[f.name])
        if kind is bool:
            # a flag that turns a default-on option off: not given, the field's default stands (--help shows none)
            kwargs |= {"action": "store_false", "default": argparse.SUPPRESS} if f.default else {"action": "store_true"}
        elif typing.get_origin(kind) is tuple:  # once per entry; argparse's append would extend the default
            kwargs |= {"action": "append", "type": typing.get_args(kind)[0], "metavar": meta.metavar,
                       "default": argparse.SUPPRESS}
        elif meta.repeat:
            kwargs |= {"action": "append", "metavar": meta.metavar}
        else:
            kwargs |= {"type": kind, "metavar": meta.metavar, "choices": meta.choices}
        groups[meta.group].add_argument(flag(f.name), **{k: v for k, v in kwargs.items() if v is not None})


def options_from_args(args: argparse.Namespace) -> PruneOptions:
    """The PruneOptions of parsed arguments (``KEY=VALUE`` items read as YAML), with :meth:`resolved` defaults."""
    values = {name: getattr(args, name) for name in flags() if hasattr(args, name)}
    values |= {name: key_values(values[name], flag(name)) for name, meta in flags().items()
               if meta.repeat and name in values}
    values |= {name: tuple(v) for name, v in values.items() if isinstance(v, list)}
    return PruneOptions(**values).resolved()


def check_apart(out: Path, data: Path) -> None:
    """Refuse an ``--out`` inside ``--data`` (the next run would read it as a class folder) and a ``--data``
    inside ``--out`` (the output replaces that folder whole)."""
    from pait.errors import ConfigError
    from pait.prune.data import check_outside

    check_outside(out, data, "--out")
    if Path(os.path.realpath(out)) in Path(os.path.realpath(data)).parents:
        raise ConfigError(f"--data {data} lies inside --out {out}, which pait prune replaces whole; "
                          "write the output elsewhere")


def check_probe_apart(out: Path, probe: Path) -> None:
    """Refuse a ``--probe`` folder and ``--out`` inside one another (one is read as classes, one replaced)."""
    from pait.errors import ConfigError

    real_out, real_probe = Path(os.path.realpath(out)), Path(os.path.realpath(probe))
    if real_out == real_probe or real_out in real_probe.parents or real_probe in real_out.parents:
        raise ConfigError(f"--probe {probe} and --out {out} lie inside one another; keep them apart")


def run(args: argparse.Namespace) -> int:
    """Prune, save and report; bad input raises a PaitError (``pait: error: ...``, exit 2) before any work."""
    from rich.console import Console

    from pait.encoders import ENCODERS
    from pait.errors import ConfigError
    from pait.executors.local import run_grid_local
    from pait.grid.practitioner import cache_root, check_probe_splits, finished, fit_unpruned_probes, prune_config
    from pait.outputs import check_output_folder, check_writable_folder, replace_folder
    from pait.prune.data import check_folder, check_outside
    from pait.prune.probes import probe_sets
    from pait.prune.report import OUTPUT_FILES

    options = options_from_args(args)
    options.validate()
    out, data = Path(options.out), Path(options.data)
    check_apart(out, data)
    cache = cache_root(options.cache)
    check_outside(cache, data, "--cache")
    real_out, real_cache = Path(os.path.realpath(out)), Path(os.path.realpath(cache))
    if real_out == real_cache or real_out in real_cache.parents:
        raise ConfigError(f"--cache {cache} lies inside --out {out}, which pait prune replaces whole; "
                          "keep the cache elsewhere")
    # before any work: not a file, not read-only, not full, nothing foreign in it; leftovers of killed runs go
    check_output_folder(out, OUTPUT_FILES, "--out folder")
    check_writable_folder(cache, "--cache folder")
    ENCODERS.get(options.encoder)  # an unknown name fails before the images are listed
    task = check_folder(os.path.realpath(data), options.calib_per_class, options.eval_per_class)
    for probe in options.probes:
        check_probe_apart(out, Path(probe))
    sets, probe_note = probe_sets(options.probes, options.probe_suite, data, task,
                                  options.calib_per_class, options.eval_per_class, options.seed, options.default_probes)
    sets, probe_note = check_probe_splits(sets, probe_note)
    config = prune_config(options, task)
    console = Console(stderr=True)
    probes = fit_unpruned_probes(config, cache, sets, options.batch_size)  # before the unit prunes the encoder
    run_grid_local(config, cache, show_progress=console.is_terminal)
    pruned = finished(config, cache, options, task, probes, probe_note)
    with replace_folder(out, OUTPUT_FILES, "--out folder") as new:  # whole, never mixed with a previous run
        pruned.write(new, options)
    console.print(f"{pruned.summary()}{pruned.probe_summary()}; wrote {out}")
    return 0
