"""Hostile inputs through the real command line: each is one `pait: error:` line naming the culprit, exit 2,
no traceback, and the stage cache is left as it was.

One good tiny run fills the stage cache first; every case then runs ``pait.cli.main`` in-process on it.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_imagenet import write_jpeg
from gridutil import tiny_config, write_config
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from pait.cli import main
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
    if kind in ("truncated-st", "st-as-pth", "wrong-keys", "wrong-shape", "nan", "inf"):
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


def fake_prune_output(env: Env, pruned: str) -> Path:
    """A `pait prune` output folder whose pruned.safetensors is bad (``pruned`` kind of weights_file)."""
    folder = env.tmp / "pruned"
    folder.mkdir()
    options = dataclasses.asdict(PruneOptions(ENCODER, weights=RANDOM, score="magnitude", recovery="none",
                                              calib_per_class=1, eval_per_class=1, device="cpu"))
    (folder / "report.json").write_text(json.dumps({"options": options}))
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
        "recoveries: 'obs' not available with structure: channels; choose among none, bn, sgd"),
    "round_to=0": lambda e, m: (e.run("structure=channels", "round_to=0"), "round_to must be at least 1, got 0"),
    "round_to with weights": lambda e, m: (e.run("round_to=8"), "round_to: 8 needs structure: channels"),
    "round_to not an integer": lambda e, m: (e.run("structure=channels", "round_to=2.5"), "round_to: expected int, got 2.5"),
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
}


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def empty_class(env: Env) -> Path:
    root = image_folder(env)
    for p in (root / "y").iterdir():
        p.unlink()
    return root


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
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("pait: error: "), err
    assert "Traceback" not in err
    assert culprit in lines[0], (culprit, lines[0])
    assert stage_files(env.out) == before, "the stage cache changed"
    if case == "run weights pickle":
        assert not (env.tmp / "payload-ran").exists()


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
