"""The report of ``pait prune``: JSON (all figures) and Markdown (for people), written atomically."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pait.cache import write_atomic
from pait.errors import CheckpointError
from pait.export import MASK_FILE, PRUNED_FILE
from pait.export.structured import INT8_FILE, ONNX_FILE, STRUCTURE_FILE

CPU_NOTE = ("Unstructured masks save storage, not time: dense CPU (and GPU) kernels still multiply the zeros. "
            "Only N:M (2:4) masks run faster, with semi-structured sparse kernels on NVIDIA GPUs.")
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
OUTPUT_FILES = (PRUNED_FILE, MASK_FILE, STRUCTURE_FILE, ONNX_FILE, INT8_FILE, REPORT_JSON, REPORT_MD)
"""Every file a ``pait prune`` output folder can hold (unstructured or structured); a rerun replaces the folder."""


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def markdown(report: dict[str, Any]) -> str:
    """A short Markdown rendering of a ``pait prune`` report."""
    o, acc, par, size = report["options"], report["accuracy"], report["parameters"], report["storage_bytes"]
    target = f"N:M {o['nm']}" if o["nm"] else f"sparsity {o['sparsity']}"
    lines = [
        f"# Pruned {o['encoder']}",
        "",
        f"Score `{o['score']}`, {target}, recovery `{o['recovery']}`; data `{report['data']['folder']}` "
        f"({len(report['data']['classes'])} classes; {report['data']['calibration']} calibration and "
        f"{report['data']['evaluation']} held-out images, seed {o['seed']}).",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| held-out accuracy (head fit on the unpruned encoder) | {acc['before']:.4f} | {acc['after']:.4f} |",
        f"| held-out accuracy (head refit on the pruned encoder) | | {acc['after_refit_head']:.4f} |",
        f"| parameters | {par['before']['total']:,} | {par['after']['total']:,} |",
        f"| nonzero parameters | {par['before']['nonzero']:,} | {par['after']['nonzero']:,} |",
        f"| prunable nonzero | {par['before']['prunable_nonzero']:,} | {par['after']['prunable_nonzero']:,} |",
        "",
        f"Mask sparsity over prunable weights: {report['sparsity']:.4f}.",
        f"Storage: dense {_mib(size['dense'])}; nonzero values + bitmask {_mib(size['sparse_values_plus_bitmask'])}; "
        f"zlib-compressed safetensors {_mib(size['zlib_safetensors'])}.",
        "",
        report["note"],
        "",
    ]
    if report["nm_dense_layers"]:
        lines += ["Left dense (input dimension not divisible by M): " + ", ".join(report["nm_dense_layers"]), ""]
    lines += ["## Per-layer density", "", "| layer | numel | kept | density |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['numel']:,} | {r['kept']:,} | {r['density']:.4f} |" for r in report["density"]]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, report: dict[str, Any],
                 render: Callable[[dict[str, Any]], str] | None = None) -> None:
    """``report.json`` and ``report.md`` in ``out_dir`` (rendered by ``render``, default :func:`markdown`)."""
    write_atomic(out_dir / REPORT_JSON, json.dumps(report, indent=1).encode())
    write_atomic(out_dir / REPORT_MD, (render or markdown)(report).encode())


def read_report(out_dir: Path) -> dict[str, Any]:
    """The JSON report of a ``pait prune`` output directory."""
    path = Path(out_dir) / REPORT_JSON
    if not path.is_file():
        raise CheckpointError(f"{out_dir} is not a pait prune output (no {REPORT_JSON})")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None
