"""``pait prune --structure channels``: prune, then write the smaller module, its structure and the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pait.cache import write_atomic
from pait.outputs import replace_folder
from pait.prune.options import PruneOptions
from pait.prune.report import OUTPUT_FILES, REPORT_JSON, REPORT_MD
from pait.export.structured import ONNX_FILE, export_onnx, save_structured
from pait.prune.structured.prune import prune_structured, stock_spec
from pait.prune.structured.report import markdown


def prune_and_save(options: PruneOptions, data: str | Path, out_dir: Path, onnx: bool,
                   on_step: Callable[[str], None] = lambda _: None,
                   on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Structured ``pait prune``: ``pruned.safetensors``, ``structure.json``, ``report.json`` / ``.md``
    and, if ``onnx``, ``pruned.onnx``, replacing the folder ``out_dir`` whole; returns the report."""
    encoder, structure, report = prune_structured(options, data, on_step, on_epoch)
    on_step("writing")
    architecture, kwargs = stock_spec(encoder)
    with replace_folder(out_dir, OUTPUT_FILES, "--out folder") as new:
        save_structured(encoder.model, structure, new, architecture, kwargs)
        if onnx:
            export_onnx(encoder.model, new / ONNX_FILE, encoder.preprocess.input_size)
        write_atomic(new / REPORT_JSON, json.dumps(report, indent=1).encode())
        write_atomic(new / REPORT_MD, markdown(report).encode())
    return report
