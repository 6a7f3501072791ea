"""``pait prune --int8``: write the INT8 ONNX model of the (pruned) encoder's features and measure it beside
the fp32 ONNX model: held-out source and probe accuracy through the same frozen ridge heads (features from
the ONNX Runtime sessions), the features' relative error, file sizes, and CPU latency.

The latency here is a small local loop (interleaved paired repeats, median); no shared timing helper exists
in the package yet.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pait.encoders import Encoder
from pait.export.int8 import DEFAULT_ACTIVATIONS, export_int8, onnx_features, qdq_summary, relative_error, session
from pait.export.speed import interleaved
from pait.export.structured import export_onnx
from pait.heads import evaluate_head
from pait.prune.probes import Probe, probe_accuracies
from pait.tasks import TaskData

LATENCY_BATCHES = (1, 32)


def normalised_batches(encoder: Encoder, data: TaskData, batch_size: int) -> list[np.ndarray]:
    """A split's images, normalised as the encoder reads them, as float32 NumPy batches."""
    return [encoder.preprocess.normalize(data.pixels[i : i + batch_size]).numpy()
            for i in range(0, len(data), batch_size)]


def write_int8(encoder: Encoder, path: str | Path, calib: TaskData, batch_size: int,
               activations: str = DEFAULT_ACTIVATIONS) -> Path:
    """The INT8 ONNX file of ``encoder``'s current module, calibrated on the calibration split ``calib``."""
    return export_int8(encoder.model, path, encoder.preprocess.input_size, normalised_batches(encoder, calib, batch_size),
                       activations, model_name=f"encoder {encoder.name}")


def paired_latency(sessions: dict[str, Any], input_size: int, batches: Sequence[int] = LATENCY_BATCHES,
                   repeats: int = 7, inner: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """Median seconds per forward of each ONNX Runtime session at each batch size, timed by
    :func:`pait.export.speed.interleaved` (a warm-up, then every repeat times each session back to back,
    ``inner`` calls, so load drifts hit all of them alike)."""
    rng = np.random.default_rng(seed)
    out = []
    for batch in batches:
        feed = {"images": rng.standard_normal((batch, 3, input_size, input_size), dtype=np.float32)}
        times = interleaved({name: (lambda s=s: s.run(None, feed)) for name, s in sessions.items()}, repeats, inner)
        out.append({"batch": batch, "median_s": {n: statistics.median(t) for n, t in times.items()}, "repeats": times})
    return out


def measure_int8(encoder: Encoder, int8_path: str | Path, evaluation: TaskData, head: Tensor, probes: Sequence[Probe],
                 batch_size: int, threads: int = 2, repeats: int = 7, fp32_path: str | Path | None = None
                 ) -> dict[str, Any]:
    """The ``int8`` entry of report.json: accuracy of the fp32 ONNX and the INT8 models of ``encoder``'s
    current module on the held-out split (through ``head``) and on each probe (through its frozen head),
    the INT8 features' relative error, sizes, and latency at batch 1 and 32 with ``threads`` threads."""
    with tempfile.TemporaryDirectory() as tmp:
        fp32_file = Path(fp32_path) if fp32_path is not None else export_onnx(
            encoder.model, Path(tmp) / "fp32.onnx", encoder.preprocess.input_size)
        sessions = {"fp32": session(fp32_file, threads), "int8": session(int8_path, threads)}
        batches = normalised_batches(encoder, evaluation, batch_size)

        def features_of(name: str):
            return lambda data: torch.from_numpy(onnx_features(sessions[name], normalised_batches(encoder, data, batch_size)))

        source = {name: evaluate_head(features_of(name)(evaluation), evaluation.labels, head)[0] for name in sessions}
        per_probe = {name: probe_accuracies(probes, features_of(name)) for name in sessions}
        latency = paired_latency(sessions, encoder.preprocess.input_size, repeats=repeats)
        error = relative_error(sessions["fp32"], sessions["int8"], batches)
        sizes = {"fp32": fp32_file.stat().st_size, "int8": Path(int8_path).stat().st_size}
    return {
        "file": Path(int8_path).name, "format": "QDQ", "quantization": qdq_summary(int8_path),
        "feature_relative_error": error, "bytes": sizes,
        "accuracy": {"source": source, "probes": [{"name": p.name, "fp32": a, "int8": b}
                                                  for p, a, b in zip(probes, per_probe["fp32"], per_probe["int8"])]},
        "latency": {"threads": threads, "rows": [{"batch": r["batch"], "fp32_ms": r["median_s"]["fp32"] * 1e3,
                                                  "int8_ms": r["median_s"]["int8"] * 1e3,
                                                  "speedup": r["median_s"]["fp32"] / r["median_s"]["int8"]}
                                                 for r in latency]},
    }


def int8_markdown(entry: dict[str, Any]) -> str:
    """The report.md block of the INT8 model."""
    q, acc = entry["quantization"], entry["accuracy"]
    lines = ["## INT8 model (ONNX Runtime, CPU)", "",
             f"`{entry['file']}`: static quantisation, QDQ format, weights {'/'.join(q['weight_types'])} per channel, "
             f"activations {'/'.join(q['activation_types'])}; {entry['bytes']['fp32'] / 2**20:.2f} MiB fp32 -> "
             f"{entry['bytes']['int8'] / 2**20:.2f} MiB; relative error of the features on the held-out images "
             f"{entry['feature_relative_error']:.4f}.", "",
             "| held-out accuracy (frozen heads) | fp32 ONNX | INT8 |", "|---|---|---|",
             f"| source | {acc['source']['fp32']:.4f} | {acc['source']['int8']:.4f} |"]
    lines += [f"| probe {p['name']} | {p['fp32']:.4f} | {p['int8']:.4f} |" for p in acc["probes"]]
    lines += ["", f"Latency, ONNX Runtime with {entry['latency']['threads']} threads (median of paired repeats):", "",
              "| batch | fp32 ms | INT8 ms | speedup |", "|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['fp32_ms']:.2f} | {r['int8_ms']:.2f} | {r['speedup']:.2f}x |"
              for r in entry["latency"]["rows"]]
    return "\n".join(lines) + "\n"
