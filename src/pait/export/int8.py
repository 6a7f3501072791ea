"""An INT8 ONNX model of an encoder's features: ONNX Runtime static quantisation, QDQ format.

The fp32 graph is :func:`pait.export.structured.export_onnx` (images -> pooled features, batch dynamic);
``quant_pre_process`` adds shape information and folds the graph, then ``quantize_static`` inserts
QuantizeLinear / DequantizeLinear pairs, with activation ranges from the calibration images (MinMax).

Data types: weights QInt8, per output channel (symmetric); activations QUInt8 (asymmetric), i.e. U8S8.
ONNX Runtime's x86-64 kernels multiply unsigned by signed bytes (VPMADDUBSW on AVX2 / AVX-512, VPDPBUSD with
VNNI), so U8S8 runs natively there; its quantisation guide names S8S8 in QDQ format the default balance of
speed and accuracy, but on x86-64 its S8S8 graph does not fuse fully: on EfficientNet-Lite0 (ONNX Runtime 1.32,
2-core EPYC with VNNI, batch 1) all 49 convolutions fuse into QLinearConv with U8S8 and only 31 with S8S8 (18
stay fp32 between Dequantize / Quantize pairs), and U8S8 ran 1.22-1.28x faster than fp32, S8S8 0.80-0.85x. On AVX2 / AVX-512 CPUs *without* VNNI, U8S8
can saturate in VPMADDUBSW; ``reduce_range`` (7-bit weights) avoids it at some accuracy cost, and
``activations="qint8"`` is the guide's fallback. Asymmetric QUInt8 and QInt8 activations round alike.
By default ``reduce_range`` follows the exporting CPU (``saturates``): on for x86-64 without VNNI, where the
tests' tiny ViT measured a relative feature error of 0.074 with 8-bit weights and 0.027 with 7-bit ones (2-core
AMD EPYC, AVX2, no VNNI), off elsewhere. A file exported on a VNNI machine may still saturate on one without.

A dense or a channel-pruned (physically smaller) module quantises the same way.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from torch import nn

from pait.errors import ConfigError
from pait.export.structured import INT8_FILE, _write_then_rename, export_onnx

__all__ = ["INT8_FILE", "export_int8", "onnx_features", "qdq_summary", "quantize_onnx", "relative_error", "session"]
ACTIVATION_TYPES = ("qint8", "quint8")
DEFAULT_ACTIVATIONS = "quint8"
INPUT = "images"
# The operators quantised: those ONNX Runtime's CPU provider runs as fused QDQ kernels (QLinearConv,
# QLinearMatMul, QLinearAdd, ...), and Pad (its data only), so that a padded convolution still reads a
# DequantizeLinear and fuses. The rest stay fp32: timm's "same" padding computes its pad amounts in float
# (Div, Ceil, Concat), and quantising that Concat rounds the pads, which breaks the model.
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm", "Add", "Mul", "Clip", "Relu", "Pad", "GlobalAveragePool", "MaxPool",
                 "AveragePool")
# Relative L2 error of the INT8 features against the fp32 ones on the calibration images above which the
# graph is broken, not rounded: 8-bit rounding of EfficientNet-Lite0 measured 0.11 (smooth random images) to
# 0.24 (grey digits at 224 px); half the features' norm is lost signal.
MAX_RELATIVE_ERROR = 0.5
# Left fp32 in transformers (graphs with LayerNormalization): the residual stream's Add outputs carry a few
# large dimensions, and one per-tensor scale rounds the rest away (a tiny ViT: relative error 0.16 with them
# quantised, 0.022 without).
TRANSFORMER_FP32_OPS = ("Add", "Mul")


def saturates(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU's U8S8 kernels may saturate: x86-64 whose flags (``cpuinfo``) name neither avx512_vnni nor
    avx_vnni. False where the file is unreadable or is not an x86 CPU's (no ``flags`` line)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    return flags is not None and "avx2" in flags and not {"avx512_vnni", "avx_vnni"} & set(flags)


def quantized_ops(model: onnx.ModelProto) -> tuple[str, ...]:
    """The operator types to quantise in ``model``: ``QUANTIZED_OPS``, less ``TRANSFORMER_FP32_OPS`` in a transformer."""
    if any(n.op_type == "LayerNormalization" for n in model.graph.node):
        return tuple(o for o in QUANTIZED_OPS if o not in TRANSFORMER_FP32_OPS)
    return QUANTIZED_OPS


def _quant_types(activations: str):
    from onnxruntime.quantization import QuantType

    if activations not in ACTIVATION_TYPES:
        raise ConfigError(f"unknown INT8 activation type {activations!r}; choose one of {', '.join(ACTIVATION_TYPES)}")
    return (QuantType.QInt8 if activations == "qint8" else QuantType.QUInt8), QuantType.QInt8


def _reader(batches: Iterable[np.ndarray]):
    """An ONNX Runtime ``CalibrationDataReader`` over normalised float32 batches (N, 3, S, S), re-iterable."""
    from onnxruntime.quantization import CalibrationDataReader

    class BatchReader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = [np.ascontiguousarray(b, dtype=np.float32) for b in batches]
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.iterator, None)
            return None if batch is None else {INPUT: batch}

        def rewind(self) -> None:
            self.iterator: Iterator[np.ndarray] = iter(self.batches)

    reader = BatchReader()
    if not reader.batches:
        raise ConfigError("INT8 calibration needs at least one batch of calibration images")
    return reader


def _refusal(err: Exception, model_name: str) -> ConfigError:
    """A ConfigError naming the operator (when the message names one) and the model."""
    text = " ".join(str(err).split())
    op = re.search(r"implementation for (\w+)\(\d+\)|[Oo]p(?:erator)?(?: type)? '?(\w+)'?", text)
    named = next((g for g in op.groups() if g), None) if op else None
    what = f"operator {named}" if named else "an operator"
    return ConfigError(f"{model_name}: {what} does not quantize to INT8 with ONNX Runtime ({text[:300]}); "
                       "export fp32 only (leave out --int8)")


def session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session of ``path`` (``threads`` intra-op threads; None: its default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_features(model, batches: Iterable[np.ndarray]) -> np.ndarray:
    """Features (N, D) of normalised float32 batches through an ONNX session (or a file's path)."""
    model = session(model) if isinstance(model, (str, Path)) else model
    return np.concatenate([model.run(None, {INPUT: np.ascontiguousarray(b, dtype=np.float32)})[0] for b in batches])


def relative_error(fp32, int8, batches: Iterable[np.ndarray]) -> float:
    """||f_int8 - f_fp32|| / ||f_fp32|| (Frobenius, over all images) of two ONNX models' features."""
    batches = list(batches)
    ref, got = onnx_features(fp32, batches).astype(np.float64), onnx_features(int8, batches).astype(np.float64)
    if not np.isfinite(got).all():
        return float("inf")
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), np.finfo(np.float64).tiny))


def _quantize(prepared: Path, out: Path, reader, activations: str, reduce_range: bool, ops: tuple[str, ...]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    activation_type, weight_type = _quant_types(activations)
    reader.rewind()
    _write_then_rename({out: lambda path: quantize_static(
        str(prepared), str(path), reader, quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
        activation_type=activation_type, weight_type=weight_type, op_types_to_quantize=list(ops),
        calibrate_method=CalibrationMethod.MinMax, extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})})


def _culprit(prepared: Path, reader, activations: str, reduce_range: bool, batches: list[np.ndarray],
             max_error: float) -> str | None:
    """The operator type whose quantisation breaks the model: the first whose exclusion brings the error
    under the bound (only searched once the model is known to be broken)."""
    model = onnx.load(str(prepared))
    present, ops = {n.op_type for n in model.graph.node}, quantized_ops(model)
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / "trial.onnx"
        for op in (o for o in ops if o in present):
            _quantize(prepared, trial, reader, activations, reduce_range, tuple(o for o in ops if o != op))
            if relative_error(prepared, trial, batches) <= max_error:
                return op
    return None


def quantize_onnx(fp32: str | Path, out: str | Path, calibration: Iterable[np.ndarray],
                  activations: str = DEFAULT_ACTIVATIONS, reduce_range: bool | None = None,
                  model_name: str = "the model", max_error: float = MAX_RELATIVE_ERROR) -> Path:
    """Quantise the fp32 ONNX file ``fp32`` statically (QDQ, per-channel QInt8 weights, ``activations``
    QUInt8 or QInt8), calibrated on ``calibration`` (normalised float32 batches), into ``out``; ``reduce_range``
    None: 7-bit weights where this CPU ``saturates``.

    Refused with a ConfigError naming the operator and ``model_name``: a quantisation or a session load that
    fails, and an INT8 model whose calibration features are off by more than ``max_error`` (relative L2)."""
    _quant_types(activations)
    reduce_range = saturates() if reduce_range is None else reduce_range
    reader = _reader(calibration)
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            _quantize(prepared, out, reader, activations, reduce_range, quantized_ops(onnx.load(str(prepared))))
            error = relative_error(prepared, out, reader.batches)
        except Exception as err:  # onnxruntime's error types (Fail, NotImplemented, ...) derive from Exception only
            # the quantiser's refusals are ValueError / NotImplementedError; anything else is a bug, kept as it is
            if not isinstance(err, (ValueError, NotImplementedError)) and \
                    not type(err).__module__.startswith(("onnxruntime", "onnx")):
                raise
            out.unlink(missing_ok=True)
            raise _refusal(err, model_name) from None
        if error > max_error:
            op = _culprit(prepared, reader, activations, reduce_range, reader.batches, max_error)
            out.unlink(missing_ok=True)
            raise ConfigError(f"{model_name}: quantizing operator {op or '(no single operator type)'} to INT8 breaks "
                              f"the model (relative error of its features {error:.3g} > {max_error} on the "
                              "calibration images); export fp32 only (leave out --int8)")
    return out


def export_int8(model: nn.Module, out: str | Path, input_size: int, calibration: Iterable[np.ndarray],
                activations: str = DEFAULT_ACTIVATIONS, reduce_range: bool | None = None,
                model_name: str = "the model", max_error: float = MAX_RELATIVE_ERROR) -> Path:
    """INT8 ONNX file of ``model``'s pooled features (images (N, 3, S, S) -> features), through the fp32
    export; see :func:`quantize_onnx`."""
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", input_size)
        return quantize_onnx(fp32, out, calibration, activations, reduce_range, model_name, max_error)


def qdq_summary(path: str | Path) -> dict[str, object]:
    """What an INT8 file holds: QuantizeLinear / DequantizeLinear node counts, how many weight
    DequantizeLinear nodes carry per-channel (vector) scales, and the activation / weight integer types."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    counts = {"QuantizeLinear": 0, "DequantizeLinear": 0}
    per_channel = per_tensor_weights = 0
    weight_types, activation_types = set(), set()
    for node in model.graph.node:
        if node.op_type in counts:
            counts[node.op_type] += 1
        if node.op_type == "DequantizeLinear":
            scale = inits.get(node.input[1])
            data = inits.get(node.input[0])
            kind = onnx.helper.tensor_dtype_to_np_dtype(data.data_type).name if data is not None else None
            if data is not None and len(data.dims) > 1:  # a weight (conv / matmul), stored as integers
                weight_types.add(kind)
                if scale is not None and len(scale.dims) == 1 and scale.dims[0] > 1:
                    per_channel += 1
                else:
                    per_tensor_weights += 1
        if node.op_type == "QuantizeLinear" and len(node.input) > 2 and node.input[2] in inits:
            activation_types.add(onnx.helper.tensor_dtype_to_np_dtype(inits[node.input[2]].data_type).name)
    return {"quantize_nodes": counts["QuantizeLinear"], "dequantize_nodes": counts["DequantizeLinear"],
            "per_channel_weights": per_channel, "per_tensor_weights": per_tensor_weights,
            "weight_types": sorted(weight_types), "activation_types": sorted(activation_types)}
