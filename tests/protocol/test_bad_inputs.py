"""Hostile inputs through the real command line: each is one `pait: error:` line naming the culprit, exit 2,
no traceback, and the stage cache is left as it was.

One good tiny run fills the stage cache first; every case then runs ``pait.cli.main`` in-process on it.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import shutil
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fake_imagenet import write_jpeg
from gridutil import tiny_config, write_config
from test_prune_latency import synthetic_table
from test_structured_prune import ENCODER as STRUCTURED_ENCODER  # registers a tiny EfficientNet-like net
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from pait.cli import MAX_MESSAGE, main
from pait.encoders import ENCODERS, Encoder, Preprocessing, register_encoder
from pait.encoders.checkpoints import RANDOM, load_checked, read_checkpoint
from pait.prune.options import PruneOptions

ENCODER = "tiny_ckpt"  # a tiny CNN that reads its weights file like the real encoders do


def _tiny_model() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()


def _tiny_ckpt(weights: str | Path | None, trust_torchscript: bool = False) -> Encoder:
    model = _tiny_model()
    if weights is not None and str(weights) != RANDOM:
        load_checked(model, dict(read_checkpoint(weights, trust_torchscript)), weights, "tiny_ckpt")
    return Encoder(ENCODER, model, Preprocessing(input_size=8, crop_pct=1.0), 16, lambda m, x: m(x))


if ENCODER not in ENCODERS:
    register_encoder(ENCODER, "2-layer CNN", "random (seed 0)", "a tiny_ckpt state dict")(_tiny_ckpt)


@dataclasses.dataclass
class Env:
    """Where a case runs: a folder for its files, the shared --out (its stage cache filled by a good run)."""

    tmp: Path
    out: Path
    images: Path
    good: Path  # a finished run folder (made without save_weights)

    def config(self, **changes) -> Path:
        return write_config(self.tmp / "c.yaml", small_config(**changes))

    def run(self, *args: str, config: Path | None = None) -> list[str]:
        return ["run", str(config or self.config()), *args, "--out", str(self.out), "--quiet", "--no-report"]

    def run_to(self, out: Path) -> list[str]:
        """A good run into another --out folder."""
        return ["run", str(self.config()), "--out", str(out), "--quiet", "--no-report"]


def small_config(**changes) -> dict:
    """One encoder, score, sparsity and source, one epoch: the cheapest good grid on the tiny suite."""
    base = tiny_config(scores=["magnitude"], sparsities=[0.5], sources=["t0"],
                       finetune={"epochs": 1, "lr": 0.05, "milestones": [1], "batch_size": 8})
    return {**base, **changes}


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A filled stage cache (one good run), an image folder of 2 classes x 3 PNGs, and the good run's folder."""
    root = tmp_path_factory.mktemp("bad-inputs")
    out = root / "out"
    config = write_config(root / "good.yaml", small_config())
    assert main(["run", str(config), "--out", str(out), "--quiet", "--no-report"]) == 0
    images = root / "images"
    rng = np.random.default_rng(0)
    for c, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        (images / f"class{c}").mkdir(parents=True)
        for i in range(3):
            pixels = np.clip(rng.normal(colour, 30, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(images / f"class{c}" / f"{i}.png")
    return out, images, out / "tiny"


@pytest.fixture
def env(shared, tmp_path) -> Env:
    out, images, good = shared
    return Env(tmp_path, out, images, good)


def real_main(argv: list[str]) -> int:
    """``main(argv)`` with logging as in the real command: no handler on the root logger. pytest's logging
    plugin puts its own there for each test's call, which would hide a record that Python's last-resort
    handler prints to stderr when nothing else handles it."""
    root = logging.getLogger()
    saved = root.handlers
    root.handlers = []
    try:
        return main(argv)
    finally:
        root.handlers = saved


def stage_files(out: Path) -> list[str]:
    """Every file under the stage cache, as sorted relative paths; the per-stage ``.lock`` files, which
    coordinate concurrent runs and hold no result, are left out (a refused stage may have taken its lock)."""
    root = out / "stages"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix != ".lock")


# --- files a case needs -------------------------------------------------------------------------------

def good_state() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _tiny_model().state_dict().items()}


def weights_file(env: Env, kind: str) -> Path:
    """A bad weights file of the given kind, in the case's folder."""
    t = env.tmp
    if kind == "missing":
        return t / "nope.safetensors"
    if kind == "text":
        (t / "w.pth").write_text("these are not weights\n")
        return t / "w.pth"
    if kind == "empty":
        (t / "w.safetensors").write_bytes(b"")
        return t / "w.safetensors"
    if kind in ("truncated-st", "st-as-pth", "wrong-keys", "wrong-shape", "nan", "inf", "good"):
        state = good_state()
        if kind == "wrong-keys":
            state = {"foo.weight": torch.zeros(2, 2)}
        if kind == "wrong-shape":
            state["0.weight"] = torch.zeros(8, 3, 5, 5)
        if kind in ("nan", "inf"):
            state["2.weight"][0, 0, 0, 0] = float("nan") if kind == "nan" else float("inf")
        path = t / ("w.pth" if kind == "st-as-pth" else "w.safetensors")
        save_file(state, str(path))
        if kind == "truncated-st":
            path.write_bytes(path.read_bytes()[:-100])
        return path
    if kind in ("truncated-pth", "pth-as-st"):
        path = t / ("w.pth" if kind == "truncated-pth" else "w.safetensors")
        torch.save(good_state(), path)
        if kind == "truncated-pth":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path
    if kind in ("complex-nan", "int-for-tensor", "str-for-tensor", "good-pth"):
        state = good_state()
        if kind == "complex-nan":
            state["2.weight"] = state["2.weight"].to(torch.complex64)
            state["2.weight"][0, 0, 0, 0] = complex(float("nan"), 0)
        if kind in ("int-for-tensor", "str-for-tensor"):
            state["2.bias"] = 3 if kind == "int-for-tensor" else "3"
        torch.save(state, t / "w.pth")
        return t / "w.pth"
    if kind == "data-offsets":
        path = t / "w.safetensors"
        save_file(good_state(), str(path))
        data = path.read_bytes()
        length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + length])
        header["2.weight"]["data_offsets"] = "start-end"
        text = json.dumps(header).encode().ljust(length)
        path.write_bytes(data[:8] + text + data[8 + length :])
        return path
    if kind == "pickle":
        torch.save({"0.weight": torch.zeros(1), "extra": Payload(str(t / "payload-ran"))}, t / "w.pth")
        return t / "w.pth"
    raise AssertionError(kind)


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def folder_config(root: Path, **options) -> dict:
    suite = {"name": "imagefolder", "options": {"root": str(root), "tasks": {"a": ["x", "y"]}, **options},
             "protocol": "paper", "calib_per_class": 2}
    return small_config(suite=suite, sources=None)


def image_folder(env: Env, bad: str | None = None) -> Path:
    """images/x and images/y, 2 JPEGs each; ``bad``: every image of class y unreadable, or y empty."""
    root = env.tmp / "imgs"
    for c in "xy":
        for k in range(2):
            write_jpeg(root / c / f"{k}.jpg", k)
    if bad == "class-unreadable":
        for p in (root / "y").iterdir():
            p.write_bytes(b"not a jpeg")
    return root


def fake_prune_output(env: Env, pruned: str, structure_json: str | None = None, **options) -> Path:
    """A `pait prune` output folder whose pruned.safetensors is of the ``pruned`` kind of weights_file, with
    ``options`` changed in its report.json and, if given, a structure.json holding ``structure_json``."""
    folder = env.tmp / "pruned"
    folder.mkdir()
    record = {**dataclasses.asdict(PruneOptions(ENCODER, weights=RANDOM, score="magnitude", recovery="none",
                                                calib_per_class=1, eval_per_class=1, device="cpu")), **options}
    (folder / "report.json").write_text(json.dumps({"options": record}))
    if structure_json is not None:
        (folder / "structure.json").write_text(structure_json)
    weights_file(env, pruned).rename(folder / "pruned.safetensors")
    save_file({k: torch.ones_like(v, dtype=torch.bool) for k, v in good_state().items() if k.endswith("weight")},
              str(folder / "mask.safetensors"))
    return folder


def paper(env: Env, weights: str) -> list[str]:
    return ["run", "paper/resnet50_supervised", f"encoders.0.weights={weights}", "--out", str(env.out),
            "--quiet", "--no-report"]


def ckpt_run(env: Env, kind: str) -> tuple[list[str], str]:
    path = weights_file(env, kind)
    config = env.config(encoders=[{"name": ENCODER, "weights": str(path)}])
    return env.run(config=config), str(path)


# --- the cases: (id, build(env, monkeypatch) -> (argv, culprit the message names)) -----------------------

Case = Callable[[Env, pytest.MonkeyPatch], tuple[list[str], str]]
CASES: dict[str, Case] = {
    # config values
    "sparsities=abc": lambda e, m: (e.run("sparsities=abc"), "sparsities[0]: expected a finite number, got 'abc'"),
    "sparsities=[null]": lambda e, m: (e.run("sparsities=[null]"), "sparsities[0]"),
    "sparsities repeat": lambda e, m: (e.run("sparsities=[0.3, 0.3]"), "sparsities must not repeat"),
    "sparsity 1.0": lambda e, m: (e.run("sparsities=[1.0]"), "sparsity must lie in [0, 1), got 1.0"),
    "scores repeat": lambda e, m: (e.run("scores=[magnitude, magnitude]"), "scores must not repeat"),
    "finetune.lr=abc": lambda e, m: (e.run("finetune.lr=abc"), "finetune.lr: expected a finite number"),
    "finetune.gamma=abc": lambda e, m: (e.run("finetune.gamma=abc"), "finetune.gamma: expected a finite number"),
    "finetune.momentum=-1": lambda e, m: (e.run("finetune.momentum=-1"), "finetune.momentum must lie in [0, 1)"),
    "finetune.milestones unsorted": lambda e, m: (e.run("finetune.milestones=[3, 1]"), "finetune.milestones"),
    "finetune.epochs=2.5": lambda e, m: (e.run("finetune.epochs=2.5"), "finetune.epochs: expected int, got 2.5"),
    "finetune.batch_size=0": lambda e, m: (e.run("finetune.batch_size=0"), "finetune.batch_size must be at least 1"),
    "finetune.channels_last=maybe": lambda e, m: (e.run("finetune.channels_last=maybe"), "channels_last"),
    "ridge_alpha=0": lambda e, m: (e.run("ridge_alpha=0"), "ridge_alpha must be > 0"),
    "eval_batch_size=0": lambda e, m: (e.run("eval_batch_size=0"), "eval_batch_size must be at least 1"),
    "score_batch_size=0": lambda e, m: (e.run("score_batch_size=0"), "score_batch_size must be at least 1"),
    "device=foo": lambda e, m: (e.run("device=foo"), "device 'foo'"),
    "device=cuda:7": lambda e, m: (e.run("device=cuda:7"), "device 'cuda:7'"),
    "precision=fp8": lambda e, m: (e.run("precision=fp8"), "precision must be one of"),
    "input_size=0": lambda e, m: (e.run("encoders.0.input_size=0"), "encoders.0.input_size"),
    "split_seed=-1": lambda e, m: (e.run("suite.split_seed=-1"), "suite.split_seed must be at least 0"),
    "calib_per_class=0": lambda e, m: (e.run("suite.calib_per_class=0"), "calib_per_class"),
    "finetune.pack=0": lambda e, m: (e.run("finetune.pack=0"), "finetune.pack must be at least 1"),
    "plugin missing": lambda e, m: (e.run("plugins=[no_such_plugin_module]"), "plugin module 'no_such_plugin_module'"),
    "unknown key": lambda e, m: (e.run("foo=1"), "unknown key(s) foo"),
    "override not YAML": lambda e, m: (e.run("sparsities=[0.5"), "override 'sparsities=[0.5'"),
    "structure=blocks": lambda e, m: (e.run("structure=blocks"), "structure must be one of weights, channels, got 'blocks'"),
    "channels with a weight score": lambda e, m: (
        e.run("structure=channels", "scores=[random]"),
        "scores: 'random' not available with structure: channels; choose among magnitude, fisher_diag, kfac"),
    "channels with obs recovery": lambda e, m: (
        e.run("structure=channels", "recoveries=[obs]"),
        "recoveries: 'obs' not available with structure: channels; choose among none, sgd, bn, sequential"),
    "round_to=0": lambda e, m: (e.run("structure=channels", "round_to=0"), "round_to must be at least 1, got 0"),
    "round_to with weights": lambda e, m: (e.run("round_to=8"), "round_to: 8 needs structure: channels"),
    "round_to not an integer": lambda e, m: (e.run("structure=channels", "round_to=2.5"), "round_to: expected int, got 2.5"),
    "densities_from an unknown score": lambda e, m: (
        e.run("mask_options.densities_from=kfcc"), "mask_options.densities_from: unknown score(s) 'kfcc'"),
    "densities_from itself": lambda e, m: (
        e.run("mask_options.densities_from=magnitude"), "mask_options.densities_from: 'magnitude' would transplant"),
    "densities_from with channels": lambda e, m: (
        e.run("structure=channels", "mask_options.densities_from=kfac"),
        "mask_options: densities_from choose weight masks; structure: channels"),
    "mask_options unknown key": lambda e, m: (e.run("mask_options={foo: 1}"),
                                              "mask_options: unknown key(s) foo; known keys: nm, densities_from"),
    "mask_options.nm a number": lambda e, m: (e.run("mask_options={nm: 24}", "sparsities=[0.5]"),
                                              'mask_options.nm must be a pattern such as "2:4" (a string), got 24'),
    "mask_options.nm bad pattern": lambda e, m: (e.run("mask_options={nm: '4:2'}", "sparsities=[0.5]"),
                                                 "N:M pattern needs 0 < N < M, got '4:2'"),
    "mask_options.nm with other sparsities": lambda e, m: (
        e.run("mask_options={nm: '2:4'}", "sparsities=[0.3]"),
        "mask_options.nm 2:4 prunes 0.5 of the weights; set sparsities: [0.5], got [0.3]"),
    "mask_options with channels": lambda e, m: (
        e.run("structure=channels", "mask_options={nm: '2:4'}", "sparsities=[0.5]"), "mask_options: nm choose weight masks"),
    "ratios with weights": lambda e, m: (e.run("ratios=[0.5]"), "ratios: channel ratios need structure: channels"),
    "ratios and sparsities": lambda e, m: (e.run("structure=channels", "ratios=[0.5]"),
                                           "ratios: give one of ratios and sparsities"),
    "ratios out of range": lambda e, m: (
        e.run(config=write_config(e.tmp / "r.yaml", {**without_key(small_config(), "sparsities"), "ratios": [1.5],
                                                     "structure": "channels"})),
        "ratios: channel ratio must lie in [0, 1), got 1.5"),
    "mask_options nm with densities_from": lambda e, m: (
        e.run("mask_options={nm: '2:4', densities_from: kfac}", "sparsities=[0.5]"),
        "mask_options: nm and densities_from do not combine"),
    "channels without a classifier": lambda e, m: (
        e.run("structure=channels"), "structure: channels with encoder 'tiny_cnn': structured pruning of a conv net needs"),
    # names
    "name absolute": lambda e, m: (e.run("name=/tmp/elsewhere"), "name must be a plain folder name"),
    "name empty": lambda e, m: (e.run("name=''"), "name must be a plain folder name"),
    "name ..": lambda e, m: (e.run("name=.."), "got '..'"),
    "name stages": lambda e, m: (e.run("name=stages"), "name 'stages' is reserved"),
    "unknown encoder": lambda e, m: (e.run("encoders.0.name=nope"), "unknown encoder(s) nope"),
    "unknown timm model": lambda e, m: (e.run("encoders.0.name=timm:no_such_net"), "timm has no model 'no_such_net'"),
    "unknown score": lambda e, m: (e.run("scores=[nope]"), "unknown score(s) nope"),
    "unknown suite": lambda e, m: (e.run("suite.name=nope"), "unknown suite(s) nope"),
    # config files
    "empty YAML": lambda e, m: (e.run(config=write_text(e.tmp / "empty.yaml", "")), "empty.yaml is empty"),
    "YAML without encoders": lambda e, m: (e.run(config=write_text(e.tmp / "x.yaml", "name: x\n")),
                                           "missing key(s) encoders"),
    "YAML syntax error": lambda e, m: (e.run(config=write_text(e.tmp / "s.yaml", "name: x\nencoders: [a\nscores: b\n")),
                                       "s.yaml, line 3"),
    "YAML not a mapping": lambda e, m: (e.run(config=write_text(e.tmp / "l.yaml", "- a\n- b\n")), "l.yaml: expected a mapping"),
    "config missing": lambda e, m: (e.run(config=e.tmp / "absent"), "no config file"),
    "demo unknown key": lambda e, m: (["demo", "foo=1", "--out", str(e.out), "--quiet"], "unknown key(s) foo"),
    # data folders and images
    "suite root missing": lambda e, m: (e.run(config=write_config(e.tmp / "f.yaml", folder_config(e.tmp / "none"))),
                                        f"{e.tmp / 'none'} is not a folder"),
    "class folder empty": lambda e, m: (
        e.run(config=write_config(e.tmp / "f.yaml", folder_config(empty_class(e)))), "holds no image"),
    "corrupt image": lambda e, m: (e.run(config=write_config(e.tmp / "f.yaml", folder_config(corrupt_one(e)))),
                                   "cannot read image"),
    "skip_bad_images empties a class": lambda e, m: (
        e.run(config=write_config(e.tmp / "f.yaml", folder_config(image_folder(e, "class-unreadable"),
                                                                   skip_bad_images=True))),
        "task 'a': no readable image left in class(es) y"),
    "one-class task": lambda e, m: (e.run(config=write_config(
        e.tmp / "f.yaml", {**folder_config(image_folder(e)), "suite": {
            "name": "imagefolder", "options": {"root": str(e.tmp / "imgs"), "tasks": {"a": ["x"]}},
            "protocol": "paper", "calib_per_class": 2}})), "task 'a' has 1 class(es)"),
    # checkpoints under pait run
    **{f"run weights {k}": (lambda e, m, k=k: ckpt_run(e, k)) for k in (
        "missing", "text", "empty", "truncated-st", "truncated-pth", "pth-as-st", "st-as-pth", "pickle",
        "wrong-keys", "wrong-shape", "nan", "inf")},
    "paper weights missing": lambda e, m: (paper(e, str(e.tmp / "r50.safetensors")), str(e.tmp / "r50.safetensors")),
    "paper weights wrong keys": lambda e, m: (paper(e, str(weights_file(e, "wrong-keys"))), "missing keys: conv1.weight"),
    "paper weights not given": lambda e, m: (["run", "paper/resnet50_supervised", "--out", str(e.out), "--quiet"],
                                             "'resnet50_supervised' needs its pretrained weights"),
    # checkpoints under the other commands
    "encoders --check nan": lambda e, m: (["encoders", "--check", ENCODER, "--weights", str(weights_file(e, "nan"))],
                                          "tensor 2.weight holds NaN"),
    "encoders --check unknown": lambda e, m: (["encoders", "--check", "nope", "--weights", "x"], "unknown encoder 'nope'"),
    "score weights truncated": lambda e, m: (
        ["score", "--encoder", ENCODER, "--weights", str(weights_file(e, "truncated-st")), "--suite", "tiny",
         "--task", "t0", "--score", "magnitude", "--sparsity", "0.5", "--calib-per-class", "4", "--eval-per-class", "4",
         "--device", "cpu", "--cache", str(e.out), "--out", str(e.tmp / "scores")], "w.safetensors is truncated"),
    "prune weights text": lambda e, m: (
        ["prune", "--encoder", ENCODER, "--weights", str(weights_file(e, "text")), "--data", str(e.images),
         "--calib-per-class", "1", "--eval-per-class", "1", "--device", "cpu", "--out", str(e.tmp / "p")],
        "w.pth is a text file"),
    "evaluate pruned truncated": lambda e, m: (
        ["evaluate", "--checkpoint", str(fake_prune_output(e, "truncated-st")), "--data", str(e.images), "--device", "cpu"],
        "pruned.safetensors is truncated"),
    "evaluate not a prune output": lambda e, m: (
        ["evaluate", "--checkpoint", str(e.tmp), "--data", str(e.images)], "is not a pait prune output"),
    # output folders
    "--out is a file": lambda e, m: (e.run_to(write_text(e.tmp / "f", "x")), f"{e.tmp / 'f'} cannot be a folder"),
    "--out under a file": lambda e, m: (e.run_to(write_text(e.tmp / "f", "x") / "sub"), f"({e.tmp / 'f'} is a file)"),
    "--out read-only": lambda e, m: (fail_probe(m, errno.EROFS, "Read-only file system") or e.run_to(e.tmp / "ro"),
                                     f"{e.tmp / 'ro'} is not writable: Read-only file system"),
    "--out full": lambda e, m: (fail_probe(m, errno.ENOSPC, "No space left on device") or e.run_to(e.tmp / "full"),
                                f"{e.tmp / 'full'} is not writable: No space left on device"),
    "results write fails": lambda e, m: (fail_result_writes(m) or e.run_to(e.tmp / "o"),
                                         f"cannot write {e.tmp / 'o' / 'tiny' / 'config.json'}: No space left"),
    "stage write fails": lambda e, m: (fail_stage_writes(m) or e.run_to(e.tmp / "o"),
                                       f"cannot write the data stage under {e.tmp / 'o' / 'stages' / 'data'}"),
    "prune --out is a file": lambda e, m: (
        ["prune", "--encoder", ENCODER, "--data", str(e.images), "--device", "cpu", "--out", str(write_text(e.tmp / "f", "x"))],
        f"{e.tmp / 'f'} cannot be a folder"),
    "score --out is a file": lambda e, m: (
        ["score", "--encoder", ENCODER, "--suite", "tiny", "--task", "t0", "--score", "magnitude", "--device", "cpu",
         "--cache", str(e.out), "--out", str(write_text(e.tmp / "f", "x"))], f"{e.tmp / 'f'} cannot be a folder"),
    "report missing folder": lambda e, m: (["report", str(e.tmp / "gone")], f"run folder {e.tmp / 'gone'} does not exist"),
    "report not a run": lambda e, m: (["report", str(e.tmp)], "is not a pait run folder"),
    "report on a file": lambda e, m: (["report", str(write_text(e.tmp / "f", "x"))], "is a file, not a folder"),
    "landscape missing folder": lambda e, m: (["landscape", str(e.tmp / "gone")], "does not exist"),
    "landscape without save_weights": lambda e, m: (["landscape", str(e.good)], "without save_weights"),
    # --- emoji10 suite ---
    "emoji10 without sets": lambda e, m: (e.run("suite.name=emoji10", f"suite.options.root={e.tmp}"),
                                          f"emoji10: no emoji set found under {e.tmp / 'node_modules'}"),
    "emoji10 style-disjoint on the tiny suite": lambda e, m: (e.run("suite.protocol=style-disjoint"),
                                                              "the style-disjoint protocol needs images in at least 2 styles"),
    # --- outputs, run folders, checkpoints, commands ---
    "prune --cache is a file": lambda e, m: (prune_argv(e, "--cache", str(write_text(e.tmp / "c", "x"))),
                                             f"--cache folder {e.tmp / 'c'} cannot be a folder"),
    "prune --cache inside --data": lambda e, m: (prune_argv(e, "--cache", str(e.images / "cache")),
                                                 f"--cache {e.images / 'cache'} lies inside --data"),
    "prune --cache inside --out": lambda e, m: (prune_argv(e, "--cache", str(e.tmp / "p" / "cache")),
                                                f"--cache {e.tmp / 'p' / 'cache'} lies inside --out {e.tmp / 'p'}"),
    "prune --onnx without --structure": lambda e, m: (prune_argv(e, "--onnx"),
                                                      "--onnx does not combine with unstructured pruning"),
    "prune --out holds other files": lambda e, m: (
        prune_into(e, out=write_text(mkdir(e.tmp / "o") / "notes.txt", "mine").parent),
        "holds notes.txt, which this command does not write"),
    "prune --out inside --data": lambda e, m: (prune_into(e, out=e.images / "pruned"), "lies inside --data"),
    "evaluate --checkpoint inside --data": lambda e, m: (
        ["evaluate", "--checkpoint", str(fake_prune_output(e, "good")), "--data", str(e.tmp), "--device", "cpu"],
        "--checkpoint " + str(e.tmp / "pruned") + " lies inside --data"),
    "prune --data inside --out": lambda e, m: (prune_into(e, data=image_folder(e), out=e.tmp), "lies inside --out"),
    "prune --data is a file": lambda e, m: (prune_into(e, data=write_text(e.tmp / "d", "x")),
                                            f"data folder {e.tmp / 'd'} is a file, not a folder"),
    "evaluate --data is a file": lambda e, m: (
        ["evaluate", "--checkpoint", str(fake_prune_output(e, "good")), "--data", str(write_text(e.tmp / "d", "x")),
         "--device", "cpu"], "is a file, not a folder"),
    "evaluate options of another version": lambda e, m: (
        ["evaluate", "--checkpoint", str(fake_prune_output(e, "good", sparsity="0.6")), "--data", str(e.images)],
        "report.json: option sparsity holds '0.6', not float | None"),
    "evaluate structure.json damaged": lambda e, m: (
        ["evaluate", "--checkpoint", str(fake_prune_output(e, "good", structure="channels", ratio=0.5, sparsity=None,
                                                           structure_json="{")),
         "--data", str(e.images), "--device", "cpu"], "structure.json is not valid JSON"),
    "evaluate mask missing": lambda e, m: (
        ["evaluate", "--checkpoint", str(without(fake_prune_output(e, "good"), "mask.safetensors")), "--data",
         str(e.images), "--device", "cpu"], "mask.safetensors"),
    "report on read-only storage": lambda e, m: (fail_probe(m, errno.EROFS, "Read-only file system") or
                                                 ["report", str(e.good)], "is not writable: Read-only file system"),
    "report results of another version": lambda e, m: (
        ["report", str(damaged_run(e, lambda d: results_without(d, "unit")))], "has no column(s) unit"),
    "report results without rows": lambda e, m: (
        ["report", str(damaged_run(e, lambda d: results_without(d, rows=True)))], "holds no rows"),
    "report units.json of another shape": lambda e, m: (
        ["report", str(damaged_run(e, lambda d: write_text(d / "units.json", '{"a": 1}')))],
        "units.json does not hold the list of"),
    "report failures.json damaged": lambda e, m: (
        ["report", str(damaged_run(e, lambda d: write_text(d / "failures.json", '[{"enc')))],
        "failures.json is not valid JSON"),
    "landscape config of another version": lambda e, m: (
        ["landscape", str(damaged_run(e, lambda d: config_with(d, future_key=1)))], "future_key"),
    "landscape --grid 10000": lambda e, m: (["landscape", str(e.good), "--grid", "10000"],
                                            "--grid 10000 asks for 100,000,000 grid points"),
    "landscape --grid 1": lambda e, m: (["landscape", str(e.good), "--grid", "1"], "--grid must be at least 2"),
    "run --out not UTF-8": lambda e, m: (e.run_to(Path(os.fsdecode(os.fsencode(e.tmp) + b"/o\xff"))),
                                         "is not a valid UTF-8 path"),
    "config path not UTF-8": lambda e, m: (e.run(config=Path(os.fsdecode(os.fsencode(e.tmp) + b"/c\xff.yaml"))),
                                           "no config file"),
    "data folder not UTF-8": lambda e, m: (
        e.run(config=write_config(e.tmp / "f.yaml", folder_config(empty_class(e, b"imgs\xfe")))), "holds no image"),
    "ray --retries -1": lambda e, m: (e.run("--executor", "ray", "--retries", "-1"), "--retries must be a whole number >= 0"),
    "ray --num-cpus 0": lambda e, m: (e.run("--executor", "ray", "--num-cpus", "0"), "--num-cpus must be at least 1"),
    "ray --gpus-per-unit -1": lambda e, m: (e.run("--executor", "ray", "--gpus-per-unit", "-1"), "--gpus-per-unit must be"),
    "ray --gpus-per-unit 1.5": lambda e, m: (e.run("--executor", "ray", "--gpus-per-unit", "1.5"), "got 1.5"),
    "ray --cpus-per-unit nan": lambda e, m: (e.run("--executor", "ray", "--cpus-per-unit", "nan"),
                                             "--cpus-per-unit must be a finite number > 0"),
    "ray --cpus-per-unit above --num-cpus": lambda e, m: (
        e.run("--executor", "ray", "--num-cpus", "2", "--cpus-per-unit", "4"), "--cpus-per-unit 4.0 exceeds --num-cpus 2"),
    **{f"run weights {k}": (lambda e, m, k=k: ckpt_run(e, k)) for k in (
        "complex-nan", "data-offsets", "int-for-tensor", "str-for-tensor")},
    "a 100,000-character key": lambda e, m: (e.run("k" * 100_000 + "=1"), "unknown key(s) kkkk"),
    # --- config and option validation: strict types, one YAML reader, score options by type and range ---
    "skip_bad_images is a string": lambda e, m: (
        e.run(config=write_config(e.tmp / "f.yaml", folder_config(image_folder(e, "class-unreadable"),
                                                                   skip_bad_images="false"))),
        "suite.options.skip_bad_images: expected bool, got 'false'"),
    "skip_bad_images is a number": lambda e, m: (
        e.run("suite.options.skip_bad_images=1", config=write_config(e.tmp / "f.yaml", folder_config(image_folder(e)))),
        "suite.options.skip_bad_images: expected bool, got 1"),
    "class repeated in a task": lambda e, m: (
        e.run(config=write_config(e.tmp / "f.yaml", folder_config(image_folder(e), tasks={"a": ["x", "y", "x"]}))),
        "task 'a': class(es) x listed more than once"),
    "suite root is a number": lambda e, m: (
        e.run("suite.options.root=5", config=write_config(e.tmp / "f.yaml", folder_config(image_folder(e)))),
        "suite.options.root: expected str or a path or null, got 5"),
    "classes_per_task is a boolean": lambda e, m: (
        e.run(config=write_config(e.tmp / "f.yaml", {**folder_config(image_folder(e)), "suite": {
            "name": "imagefolder", "options": {"root": str(e.tmp / "imgs"), "classes_per_task": True}}})),
        "suite.options.classes_per_task: expected int or null, got True"),
    "task list file with a key twice": lambda e, m: (
        e.run(config=write_config(e.tmp / "f.yaml", folder_config(
            image_folder(e), tasks=str(write_text(e.tmp / "tasks.yaml", "a: [x, y]\nb: [y, x]\na: [x]\n"))))),
        "tasks.yaml, line 3, column 1: invalid YAML (key 'a' is written twice in one mapping (first at line 1))"),
    "YAML key written twice": lambda e, m: (
        e.run(config=write_text(e.tmp / "twice.yaml", yaml.safe_dump(small_config()) + "name: other\n")),
        "twice.yaml, line"),
    "YAML key twice in a flow mapping": lambda e, m: (
        e.run("finetune={epochs: 1, lr: 0.1, epochs: 2}"), "key 'epochs' is written twice in one mapping"),
    "YAML alias bomb": lambda e, m: (e.run(config=write_text(e.tmp / "bomb.yaml", alias_bomb())),
                                     "bomb.yaml, line 1, column 4: invalid YAML (YAML anchors and aliases are not accepted"),
    "YAML alias in an override": lambda e, m: (e.run("sparsities=[&s 0.5, *s]"), "anchors and aliases are not accepted"),
    "config keys of mixed types": lambda e, m: (
        e.run(config=write_text(e.tmp / "k.yaml", yaml.safe_dump(small_config()) + "1: x\nzz: y\n")),
        "unknown key(s) 1, zz"),
    "save_weights is a string": lambda e, m: (e.run("save_weights='false'"), "save_weights: expected bool, got 'false'"),
    "finetune.compile=yes": lambda e, m: (e.run("finetune.compile=yes"), "finetune.compile: expected bool, got 'yes'"),
    "kfac damping=x": lambda e, m: (
        e.run("scores=[kfac]", "score_options={kfac: {damping: x}}"),
        "score_options: kfac.damping: expected a finite number > 0, got 'x'"),
    "kfac damping .nan": lambda e, m: (
        e.run("scores=[kfac]", "score_options={kfac: {damping: .nan}}"), "kfac.damping: expected a finite number > 0, got nan"),
    "kfac damping .inf": lambda e, m: (
        e.run("scores=[kfac]", "score_options={kfac: {damping: .inf}}"), "kfac.damping: expected a finite number > 0, got inf"),
    "kfac damping 0": lambda e, m: (
        e.run("scores=[kfac]", "score_options={kfac: {damping: 0}}"), "kfac.damping: expected a finite number > 0, got 0"),
    "kfac damping_mode before the data stage": lambda e, m: (  # a new split: a late check would write its data stage
        e.run("scores=[kfac]", "score_options={kfac: {damping_mode: foo}}", "suite.split_seed=5"),
        "kfac.damping_mode: expected one of 'relative', 'absolute', got 'foo'"),
    "kfac normalize=max": lambda e, m: (
        e.run("scores=[kfac]", "score_options={kfac: {normalize: max}}", "suite.split_seed=5"),
        "kfac.normalize: expected one of 'none', 'mean', got 'max'"),
    "synflow iterations=-5": lambda e, m: (
        e.run("scores=[synflow]", "score_options={synflow: {iterations: -5}}"),
        "synflow.iterations: expected int >= 1, got -5"),
    "synflow input_shape with a 0": lambda e, m: (
        e.run("scores=[synflow]", "score_options={synflow: {input_shape: [3, 0, 8]}}"),
        "synflow.input_shape[1]: expected int >= 1, got 0"),
    "grasp temperature=0": lambda e, m: (
        e.run("scores=[grasp]", "score_options={grasp: {temperature: 0}}"),
        "score_options: grasp.temperature: expected a finite number > 0, got 0"),
    "grasp temperature is a string": lambda e, m: (
        e.run("scores=[grasp]", "score_options={grasp: {temperature: '200'}}"), "grasp.temperature: expected a finite number > 0, got '200'"),
    "recovery_options names an unknown recovery": lambda e, m: (
        e.run("recovery_options={obx: {damping: 1e-2}}"), "recovery_options: unknown recovery 'obx'; known: none, sgd"),
    "recovery_options names an unknown option": lambda e, m: (
        e.run("recovery_options={obs: {dampin: 1e-2}}"),
        "recovery_options: recovery 'obs' has no option(s) dampin; its options: damping"),
    "recovery_options damping=0": lambda e, m: (
        e.run("recovery_options={sequential: {damping: 0}}"), "recovery_options: sequential.damping: expected a finite number > 0, got 0"),
    "recovery_options damping is a string": lambda e, m: (
        e.run("recovery_options={obs: {damping: '1e-3'}}"), "recovery_options: obs.damping: expected a finite number > 0, got '1e-3'"),
    "recovery_options of a recovery is not a mapping": lambda e, m: (
        e.run("recovery_options={obs: 0.1}"), "recovery_options: the options of recovery 'obs' must be a mapping, got 0.1"),
    "recovery_options with channels names a weight recovery": lambda e, m: (
        e.run("structure=channels", "recovery_options={obs: {}}"), "recovery_options: unknown structured recovery 'obs'"),
    "px rounds=0": lambda e, m: (
        e.run("scores=[px]", "score_options={px: {rounds: 0}}", "suite.split_seed=5"), "px.rounds: expected int >= 1, got 0"),
    "px rounds=2.5": lambda e, m: (e.run("scores=[px]", "score_options={px: {rounds: 2.5}}"), "px.rounds: expected int >= 1, got 2.5"),
    "fisher_diag layerwise is a string": lambda e, m: (
        e.run("scores=[fisher_diag]", "score_options={fisher_diag: {layerwise: 'false'}}"),
        "fisher_diag.layerwise: expected bool, got 'false'"),
    "random seed beyond int64": lambda e, m: (
        e.run("scores=[random]", "score_options={random: {seed: 9223372036854775808}}"),
        "random.seed: expected int >= 0 and <= 9223372036854775807, got 9223372036854775808"),
    "seeds beyond int64": lambda e, m: (e.run("seeds=[9223372036854775808]"), "suite.split_seed + seeds must stay <= 2**63 - 1"),
    "split_seed + seed beyond int64": lambda e, m: (
        e.run("suite.split_seed=9223372036854775807", "seeds=[0, 1]"), "got 9223372036854775807 + 1"),
    "channels: taylor takes no options": lambda e, m: (
        e.run("structure=channels", "scores=[taylor]", "score_options={taylor: {x: 1}}"),
        "score_options: structured score 'taylor' takes no options, got {'x': 1}"),
    "channels: unknown kfac option": lambda e, m: (
        e.run("structure=channels", "scores=[kfac]", "score_options={kfac: {dampin: 1}}"), "score 'kfac' has no option(s) dampin"),
    "name of 300 characters": lambda e, m: (e.run("name=" + "n" * 300), "name must be at most 200 bytes"),
    "name of 202 bytes": lambda e, m: (e.run("name=" + "é" * 101), "got 202 bytes"),
    "plugins: an empty name": lambda e, m: (e.run("plugins=['']"), "plugins: '' is not a module name"),
    "plugins: a relative name": lambda e, m: (e.run("plugins=[.tiny_plugin]"), "plugins: '.tiny_plugin' is not a module name"),
    "plugins: a number": lambda e, m: (e.run("plugins=[5]"), "plugins[0]: expected str, got 5"),
    "plugins: a mapping": lambda e, m: (e.run("plugins={a: 1}"), "plugins[0]: expected str, got {'a': 1}"),
    "plugins repeat": lambda e, m: (e.run("plugins=[tiny_plugin, tiny_plugin]"), "plugins must not repeat"),
    "input_size beyond the bound": lambda e, m: (e.run("encoders.0.input_size=2000"), "encoders.0.input_size must lie in [1, 1024]"),
    "prune --score-option damping=x": lambda e, m: (
        prune_argv(e, "--score", "kfac", "--score-option", "damping=x"),
        "--score-option: kfac.damping: expected a finite number > 0, got 'x'"),
    "prune --score-option chunk_size=0": lambda e, m: (
        prune_argv(e, "--score", "fisher_diag", "--score-option", "chunk_size=0"), "fisher_diag.chunk_size: expected int >= 1, got 0"),
    "prune --score-option seed=abc": lambda e, m: (
        prune_argv(e, "--score", "random", "--score-option", "seed=abc"), "random.seed: expected int >= 0"),
    "prune --score-option given twice": lambda e, m: (
        prune_argv(e, "--score", "kfac", "--score-option", "damping=1", "--score-option", "damping=2"),
        "--score-option 'damping' is given twice"),
    "prune --score-option with an alias": lambda e, m: (
        prune_argv(e, "--score", "kfac", "--score-option", "damping=&d 1"), "anchors and aliases are not accepted"),
    "prune --seed beyond int64": lambda e, m: (prune_argv(e, "--seed", str(2**63)), "--seed: expected int >= 0"),
    "prune --input-size 100000": lambda e, m: (
        prune_argv(e, "--input-size", "100000"), "--input-size: expected int >= 1 and <= 1024, got 100000"),
    "prune --structure: unknown score option": lambda e, m: (
        prune_argv(e, *STRUCTURED, "--score", "magnitude", "--score-option", "foo=1"),
        "--score-option: score 'magnitude' has no option(s) foo"),
    "prune --structure: taylor with an option": lambda e, m: (
        prune_argv(e, *STRUCTURED, "--score", "taylor", "--score-option", "foo=1"), "structured score 'taylor' takes no options"),
    "prune --structure: kfac damping=-1": lambda e, m: (
        prune_argv(e, *STRUCTURED, "--score", "kfac", "--score-option", "damping=-1"), "kfac.damping: expected a finite number > 0"),
    "prune --structure --lr -1": lambda e, m: (prune_argv(e, *STRUCTURED, "--lr", "-1"), "--lr: expected a finite number >= 0, got -1.0"),
    "prune --structure --batch-size 0": lambda e, m: (
        prune_argv(e, *STRUCTURED, "--batch-size", "0"), "--batch-size: expected int >= 1, got 0"),
    "prune --structure --input-size 100000": lambda e, m: (
        prune_argv(e, *STRUCTURED, "--input-size", "100000"), "--input-size: expected int >= 1 and <= 1024, got 100000"),
    "prune --structure --seed -1": lambda e, m: (prune_argv(e, *STRUCTURED, "--seed", "-1"), "--seed: expected int >= 0"),
    "prune --structure --calib-per-class 0": lambda e, m: (
        prune_argv(e, *STRUCTURED, "--calib-per-class", "0"), "--calib-per-class: expected int >= 1, got 0"),
    # --- latency-targeted channel pruning (`pait prune --target-speedup`) ---
    "latency with weights": lambda e, m: (
        e.run("latency={runtime: torch, threads: 1, batch: 1}"), "latency: target speed-ups need structure: channels"),
    "latency without threads": lambda e, m: (
        e.run("structure=channels", "latency={runtime: torch, batch: 1}"),
        "latency: expected the keys runtime, threads, batch, got runtime, batch"),
    "latency with a ratio as target": lambda e, m: (
        e.run("structure=channels", "latency={runtime: torch, threads: 1, batch: 1}"),
        "ratios: target speed-up must be a number > 1"),
    "target_speedups without latency": lambda e, m: (
        e.run(config=write_config(e.tmp / "t.yaml", {**without_key(small_config(), "sparsities"), "structure": "channels",
                                                      "target_speedups": [1.5]})),
        "target_speedups: target speed-ups need structure: channels and latency"),
    "prune --target-speedup 0.5": lambda e, m: (
        prune_argv(e, "--structure", "channels", "--target-speedup", "0.5"), "--target-speedup must be a number > 1"),
    "prune --target-speedup 1": lambda e, m: (
        prune_argv(e, "--structure", "channels", "--target-speedup", "1"), "must be a number > 1 (a speed-up over "
        "the dense encoder), got 1.0"),
    "prune --target-speedup nan": lambda e, m: (
        prune_argv(e, "--structure", "channels", "--target-speedup", "nan"), "--target-speedup: expected a finite number, got nan"),
    "prune --target-speedup with --ratio": lambda e, m: (
        prune_argv(e, *STRUCTURED, "--target-speedup", "1.5"), "--target-speedup does not combine with --ratio"),
    "prune --target-speedup without --structure": lambda e, m: (
        prune_argv(e, "--target-speedup", "1.5"), "--target-speedup 1.5 needs --structure (channels)"),
    "prune --latency-runtime tensorrt": lambda e, m: (
        prune_argv(e, "--structure", "channels", "--target-speedup", "1.5", "--latency-runtime", "tensorrt"),
        "--latency-runtime: unknown runtime 'tensorrt'; choose one of onnxruntime, torch"),
    "prune --latency-threads without --target-speedup": lambda e, m: (
        prune_argv(e, *STRUCTURED, "--latency-threads", "4"), "--latency-threads needs --target-speedup"),
    "prune --target-speedup unreachable": lambda e, m: (  # a synthetic latency table: no timing
        m.setattr("pait.prune.structured.latency.measure_table", synthetic_table) or [*prune_argv(e, "--structure", "channels", "--target-speedup", "100", "--latency-runtime", "torch",
                     "--no-probes"), "--encoder", STRUCTURED_ENCODER],
        "target speed-up 100.0 is not reachable: the fastest widths the per-group floors allow measured"),
    # --- transfer probes and the INT8 model of `pait prune` ---
    "prune --probe a folder with one class": lambda e, m: (
        prune_argv(e, "--probe", str(one_class_folder(e))), f"probe folder {e.tmp / 'one'} has 1 class sub-folder(s)"),
    "prune --probe the --data folder": lambda e, m: (
        prune_argv(e, "--probe", str(e.images)), f"--probe {e.images} is the pruning data"),
    "prune --probe a copy of --data": lambda e, m: (
        prune_argv(e, "--probe", str(shutil.copytree(e.images, e.tmp / "copy"))),
        f"--probe {e.tmp / 'copy'} holds the same images as --data {e.images}"),
    "prune --probe with an unreadable image": lambda e, m: (
        prune_argv(e, "--probe", str(image_folder(e, bad="class-unreadable"))),
        f"--probe {e.tmp / 'imgs'}: cannot read image {e.tmp / 'imgs' / 'y'}"),
    "prune --probe with too few images": lambda e, m: (
        prune_argv(e, "--calib-per-class", "2", "--probe", str(image_folder(e))),
        f"--probe {e.tmp / 'imgs'}: task 'imgs': class x has 2 images"),
    "prune --probe inside --out": lambda e, m: (
        prune_argv(e, "--probe", str(e.tmp / "p" / "probe")), f"--probe {e.tmp / 'p' / 'probe'} and --out"),
    "prune --probe-suite nosuch": lambda e, m: (prune_argv(e, "--probe-suite", "nosuch"),
                                                "--probe-suite: unknown suite 'nosuch'"),
    "prune --no-probes with --probe": lambda e, m: (
        prune_argv(e, "--no-probes", "--probe", str(image_folder(e))), "--no-probes does not combine with --probe"),
    "prune --int8-activations int4": lambda e, m: (
        prune_argv(e, "--int8", "--int8-activations", "int4"),
        "--int8-activations: unknown INT8 activation type 'int4'; choose one of quint8, qint8"),
    "prune --int8-activations without --int8": lambda e, m: (
        prune_argv(e, "--int8-activations", "qint8"), "--int8-activations needs --int8"),
    # --- stage cache integrity ---
    "stage write: disk full inside safetensors": lambda e, m: (
        fail_safetensors(m, "No space left on device (os error 28)") or e.run_to(e.tmp / "o"),
        f"cannot write the data stage under {e.tmp / 'o' / 'stages' / 'data'}: No space left on device"),
    "stage write: file size limit": lambda e, m: (
        size_limited_safetensors(m) or e.run_to(e.tmp / "o"),
        f"cannot write the data stage under {e.tmp / 'o' / 'stages' / 'data'}: File too large"),
    "stage write: metrics.json fails": lambda e, m: (
        fail_json_writes(m, "metrics.json") or e.run_to(e.tmp / "o"),
        f"cannot write the unit stage under {e.tmp / 'o' / 'stages' / 'unit'}: No space left on device"),
    "damaged stage on read-only storage": lambda e, m: (
        damaged_read_only_copy(e, m), f"the unit stage {e.tmp / 'copy' / 'stages' / 'unit'}"),
    "stages folder is a file": lambda e, m: (
        e.run_to(write_text(mkdirs(e.tmp / "o") / "stages", "x").parent), f"{e.tmp / 'o' / 'stages'}"),
    "a stage folder is a file": lambda e, m: (
        e.run_to(write_text(mkdirs(e.tmp / "o" / "stages") / "data", "x").parents[1]),
        f"{e.tmp / 'o' / 'stages' / 'data'}"),
    "stages.log is a folder": lambda e, m: (
        e.run_to(mkdirs(e.tmp / "o" / "tiny" / "stages.log").parents[1]), f"{e.tmp / 'o' / 'tiny' / 'stages.log'}"),
    "results.parquet is a folder": lambda e, m: (
        e.run_to(mkdirs(e.tmp / "o" / "tiny" / "results.parquet").parents[1]),
        f"{e.tmp / 'o' / 'tiny' / 'results.parquet'}"),
    "weights path is a folder": lambda e, m: (
        e.run(config=e.config(encoders=[{"name": ENCODER, "weights": str(mkdirs(e.tmp / "w.safetensors"))}])),
        str(e.tmp / "w.safetensors")),
    "weights path is a FIFO": lambda e, m: (
        e.run(config=e.config(encoders=[{"name": ENCODER, "weights": str(fifo(e.tmp / "w.safetensors"))}])),
        str(e.tmp / "w.safetensors")),
    "a stage's lock is a folder": lambda e, m: (
        lock_is_a_folder(e), f"cannot create the lock {e.tmp / 'copy' / 'stages' / 'unit'}"),
    # --- options of a report.json named by its file and key ---
    "evaluate report.json score option out of range": lambda e, m: (
        ["evaluate", "--checkpoint", str(fake_prune_output(e, "good", score="kfac", score_options={"damping": -1})),
         "--data", str(e.images), "--device", "cpu"],
        f"{e.tmp / 'pruned' / 'report.json'}: options.score_options: kfac.damping: expected a finite number > 0"),
    "evaluate report.json calib_per_class 0": lambda e, m: (
        ["evaluate", "--checkpoint", str(fake_prune_output(e, "good", calib_per_class=0)), "--data", str(e.images),
         "--device", "cpu"], f"{e.tmp / 'pruned' / 'report.json'}: options.calib_per_class: expected int >= 1, got 0"),
    "evaluate --calib-per-class 0": lambda e, m: (
        ["evaluate", "--checkpoint", str(fake_prune_output(e, "good")), "--data", str(e.images), "--device", "cpu",
         "--calib-per-class", "0"], "--calib-per-class: expected int >= 1, got 0"),
}


STRUCTURED = ("--structure", "channels", "--ratio", "0.3")


def prune_argv(env: Env, *extra: str) -> list[str]:
    """``pait prune`` of the tiny encoder on the case's image folder, with ``extra`` arguments."""
    return ["prune", "--encoder", ENCODER, "--data", str(env.images), "--calib-per-class", "1", "--eval-per-class", "1",
            "--device", "cpu", "--out", str(env.tmp / "p"), *extra]


def alias_bomb() -> str:
    """Ten lines of nested YAML aliases that expand to 9**9 strings (the "billion laughs")."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join([*lines, "name: *i"]) + "\n"


def without_key(mapping: dict, key: str) -> dict:
    return {k: v for k, v in mapping.items() if k != key}


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def empty_class(env: Env, rename: bytes | None = None) -> Path:
    """The image folder with class y emptied (and the folder renamed to the file-system name ``rename``)."""
    root = image_folder(env)
    for p in (root / "y").iterdir():
        p.unlink()
    if rename is not None:
        os.rename(os.fsencode(root), os.fsencode(root.parent) + b"/" + rename)
        root = root.parent / os.fsdecode(rename)
    return root


def mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def without(folder: Path, name: str) -> Path:
    (folder / name).unlink()
    return folder


def prune_into(env: Env, data: Path | None = None, out: Path | None = None) -> list[str]:
    """A cheap ``pait prune`` of the tiny encoder on the shared images (or ``data``) into ``out``."""
    return ["prune", "--encoder", ENCODER, "--weights", RANDOM, "--data", str(data or env.images), "--score", "magnitude",
            "--recovery", "none", "--calib-per-class", "1", "--eval-per-class", "1", "--device", "cpu",
            "--out", str(out or env.tmp / "p")]


def damaged_run(env: Env, damage: Callable[[Path], object]) -> Path:
    """A copy of the good run folder (its stage cache beside it, shared) with ``damage`` applied."""
    import shutil

    copy = env.out / f"damaged-{env.tmp.name}"
    shutil.copytree(env.good, copy)
    damage(copy)
    return copy


def results_without(folder: Path, column: str | None = None, rows: bool = False) -> None:
    import pandas as pd

    table = pd.read_parquet(folder / "results.parquet")
    table = table.drop(columns=[column]) if column else table
    (table.iloc[:0] if rows else table).to_parquet(folder / "results.parquet")


def config_with(folder: Path, **keys) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **keys}))


def corrupt_one(env: Env) -> Path:
    root = image_folder(env)
    (root / "y" / "1.jpg").write_bytes(b"not a jpeg")
    return root


def fail_probe(monkeypatch: pytest.MonkeyPatch, code: int, text: str) -> None:
    """Make the output folder's probe write fail as on a read-only or full disk."""
    import pait.outputs

    def fsync(fd: int) -> None:
        raise OSError(code, text)

    monkeypatch.setattr(pait.outputs, "os", types.SimpleNamespace(getpid=lambda: 0, fsync=fsync))


def fail_result_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every atomic file write fail as on a disk that filled up after the probe."""
    import pait.cache

    def mkstemp(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pait.cache, "tempfile", types.SimpleNamespace(mkstemp=mkstemp, mkdtemp=pait.cache.tempfile.mkdtemp))


def fail_stage_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every stage directory fail to be created, as on a disk that filled up after the probe."""
    import pait.cache

    def mkdtemp(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pait.cache, "tempfile", types.SimpleNamespace(mkstemp=pait.cache.tempfile.mkstemp, mkdtemp=mkdtemp))


def mkdirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def fifo(path: Path) -> Path:
    """A named pipe: reading it would wait for a writer forever."""
    os.mkfifo(path)
    return path


def fail_safetensors(monkeypatch: pytest.MonkeyPatch, reason: str) -> None:
    """Make every stage's safetensors write fail as safetensors reports a failing write (Rust I/O error)."""
    import pait.grid.stages
    from safetensors import SafetensorError

    def save_file(tensors, path, metadata=None):
        raise SafetensorError(f"Error while serializing: I/O error: {reason}")

    monkeypatch.setattr(pait.grid.stages, "save_file", save_file)


def size_limited_safetensors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every stage's safetensors write under a 100-byte file size limit: the real write fails (EFBIG)."""
    import resource
    import signal

    import pait.grid.stages

    real = pait.grid.stages.save_file

    def save_file(tensors, path, metadata=None):
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))
        try:
            real(tensors, path, metadata)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, handler)

    monkeypatch.setattr(pait.grid.stages, "save_file", save_file)


def fail_json_writes(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make writing a file called ``name`` fail as on a full disk (after the earlier stages were written)."""
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def copy_unit_stage(env: Env) -> Path:
    """A copy of the filled --out (``tmp/copy``); its one unit stage's folder."""
    import shutil

    shutil.copytree(env.out, env.tmp / "copy")
    (unit,) = [p for p in (env.tmp / "copy" / "stages" / "unit").iterdir() if p.is_dir() and not p.name.startswith(".")]
    return unit


def lock_is_a_folder(env: Env) -> list[str]:
    """A copy of the filled --out whose unit stage is gone and whose lock path is taken by a folder."""
    unit = copy_unit_stage(env)
    shutil.rmtree(unit)
    (unit.parent / f"{unit.name}.lock").unlink(missing_ok=True)
    (unit.parent / f"{unit.name}.lock").mkdir()
    return ["run", str(env.config()), "--out", str(env.tmp / "copy"), "--quiet", "--no-report"]


def damaged_read_only_copy(env: Env, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A copy of the filled --out whose unit stage lost a file, on storage where nothing can be renamed."""
    import pait.cache

    copy = env.tmp / "copy"
    unit = copy_unit_stage(env)
    (unit / "metrics.json").unlink()
    real = os.rename

    def rename(src, dst):
        if str(copy) in str(src):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(src, dst)

    monkeypatch.setattr(pait.cache.os, "rename", rename)
    return ["run", str(env.config()), "--out", str(copy), "--quiet", "--no-report"]


def test_the_matrix_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_the_cache(env, monkeypatch, capsys, case):
    if case == "device=cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    argv, culprit = CASES[case](env, monkeypatch)
    before = stage_files(env.out)
    capsys.readouterr()
    code = real_main(argv)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("pait: error: "), err
    assert len(lines[0]) <= len("pait: error: ") + MAX_MESSAGE
    assert "Traceback" not in err
    assert culprit in lines[0], (culprit, lines[0])
    assert stage_files(env.out) == before, "the stage cache changed"
    if case == "run weights pickle":
        assert not (env.tmp / "payload-ran").exists()


# --- the INT8 export as a library function (`pait prune --int8-activations` checks its flag first) --------

def one_class_folder(env: Env) -> Path:
    write_jpeg(env.tmp / "one" / "only" / "0.jpg", 0)
    return env.tmp / "one"


def int8_export(env: Env, activations: str) -> None:
    from pait.export.int8 import export_int8

    export_int8(_tiny_model(), env.tmp / "m.int8.onnx", 8, [np.zeros((2, 3, 8, 8), np.float32)], activations)


FUNCTION_CASES: dict[str, Callable[[Env], tuple[Callable[[], object], str]]] = {
    "int8: an unknown activation type": lambda e: (
        lambda: int8_export(e, "int4"), "unknown INT8 activation type 'int4'; choose one of qint8, quint8"),
}


@pytest.mark.parametrize("case", list(FUNCTION_CASES))
def test_bad_int8_export_input_is_one_pait_error_naming_it(env, case):
    from pait.errors import PaitError

    call, culprit = FUNCTION_CASES[case](env)
    with pytest.raises(PaitError) as err:
        call()
    message = str(err.value)
    assert culprit in message and "\n" not in message and len(message) <= MAX_MESSAGE, message


def test_cuda_without_a_gpu_is_named(env, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(env.run("device=cuda")) == 2
    assert "device 'cuda': no CUDA GPU is available here" in capsys.readouterr().err


def test_timm_family_passes_the_name_check():
    from pait.config import config_from_dict
    from pait.grid.validation import validate_config

    validate_config(config_from_dict(small_config(encoders=["timm:resnet18"])))


def test_a_16_bit_png_decodes_to_its_8_bit_grey_levels(tmp_path):
    from pait.tasks.decode import FileImage

    grey = np.array([[0, 257 * 10, 257 * 128, 65535]], dtype=np.uint16).repeat(4, 0)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    pixels = np.asarray(FileImage(tmp_path / "g16.png")())
    assert pixels.shape == (4, 4, 3) and (pixels[..., 0] == pixels[..., 2]).all()
    assert pixels[0, :, 0].tolist() == [0, 10, 128, 255]


def test_config_path_without_its_suffix(env):
    from pait.configs import config_path

    path = env.config()
    assert config_path(str(path.with_suffix(""))) == path


def test_a_bug_keeps_its_traceback(monkeypatch):
    import pait.commands.report

    def broken(args):
        raise RuntimeError("a bug, not bad input")

    monkeypatch.setattr(pait.commands.report, "run", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["report", "anything"])


def test_a_multi_line_message_is_printed_on_one_line(monkeypatch, capsys):
    import pait.commands.report
    from pait.errors import DataError

    def bad(args):
        raise DataError("first line\n  second line")

    monkeypatch.setattr(pait.commands.report, "run", bad)
    assert main(["report", "anything"]) == 2
    assert capsys.readouterr().err == "pait: error: first line second line\n"


def test_a_pickled_checkpoint_is_one_line_on_the_real_stderr(tmp_path):
    """torch warns about the pickle protocol before refusing the file; the warning must not reach stderr."""
    import os
    import pickle
    import subprocess
    import sys

    path = tmp_path / "raw.pth"
    with open(path, "wb") as f:
        pickle.dump({"fc.weight": Payload(str(tmp_path / "payload-ran"))}, f, protocol=4)
    done = subprocess.run([sys.executable, "-m", "pait", "encoders", "--check", "resnet50_supervised",
                           "--weights", str(path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()] and done.stderr.startswith("pait: error: "), done.stderr
    assert "needs arbitrary code to unpickle and was refused" in done.stderr
    assert not (tmp_path / "payload-ran").exists()


def _warn_then(outcome):
    def command(args):
        import warnings

        for _ in range(3):
            warnings.warn("a library's remark\nover two lines", UserWarning, stacklevel=1)
        return outcome()
    return command


def test_library_warnings_follow_a_successful_command_once_and_on_one_line(monkeypatch, capsys):
    import pait.commands.report

    monkeypatch.setattr(pait.commands.report, "run", _warn_then(lambda: 0))
    assert main(["report", "anything"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pait: warning: a library's remark over two lines (UserWarning, ")


def test_library_warnings_are_dropped_before_the_error_line(monkeypatch, capsys):
    import pait.commands.report
    from pait.errors import DataError

    def fail():
        raise DataError("bad input")

    monkeypatch.setattr(pait.commands.report, "run", _warn_then(fail))
    assert main(["report", "anything"]) == 2
    assert capsys.readouterr().err == "pait: error: bad input\n"


def _log_then(outcome):
    def command(args):
        logging.getLogger("pait.cache").warning("a stage %s\nis damaged", "s1")
        return outcome()
    return command


def test_log_records_follow_a_successful_command_on_one_line(monkeypatch, capsys):
    import pait.commands.report

    monkeypatch.setattr(pait.commands.report, "run", _log_then(lambda: 0))
    assert real_main(["report", "anything"]) == 0
    assert capsys.readouterr().err == "pait: warning: a stage s1 is damaged\n"


def test_log_records_are_dropped_before_the_error_line(monkeypatch, capsys):
    import pait.commands.report
    from pait.errors import DataError

    def fail():
        raise DataError("bad input")

    monkeypatch.setattr(pait.commands.report, "run", _log_then(fail))
    assert real_main(["report", "anything"]) == 2
    assert capsys.readouterr().err == "pait: error: bad input\n"
    assert logging.getLogger("pait").handlers == []


def test_a_long_message_is_cut_around_a_marker(monkeypatch, capsys):
    import pait.commands.report
    from pait.cli import MAX_MESSAGE
    from pait.errors import DataError

    def bad(args):
        raise DataError("start " + "x" * 10**7 + " end\x1b[2J")

    monkeypatch.setattr(pait.commands.report, "run", bad)
    assert main(["report", "anything"]) == 2
    line = capsys.readouterr().err.rstrip("\n")
    assert len(line) == len("pait: error: ") + MAX_MESSAGE and "\n" not in line
    assert line.startswith("pait: error: start xxx") and line.endswith(" end\\x1b[2J")
    assert "[... cut: the message has 10,000,014 characters ...]" in line


def test_a_damaged_unit_mask_is_one_line_for_landscape(tmp_path, capsys):
    """A run with save_weights whose unit stage lost part of its mask file: pait landscape names the file."""
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", small_config(save_weights=True))
    assert main(["run", str(config), "--out", str(out), "--quiet", "--no-report"]) == 0
    masks = sorted((out / "stages" / "unit").glob("*/mask.safetensors"))
    assert masks
    for mask in masks:
        mask.write_bytes(mask.read_bytes()[:-8])
    capsys.readouterr()
    assert main(["landscape", str(out / "tiny"), "--grid", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "mask.safetensors is truncated" in err, err
