"""int8 ONNX models: static quantization of an exported model with ONNX Runtime's own quantizer.

`scrawl export CHECKPOINT --int8` runs this on the float model it has just exported and checked. The
result takes the same float input and gives float logits, so everything else (sidecar, Recognizer,
the web app) treats it like any exported model. On a CPU with VNNI/AMX the convolutions run in int8
and batches go faster at the same accuracy: benchmarks/inference.py measures it (onnx-int8 rows).

What is quantized, and why (each choice was checked with ONNX Runtime's profiler on digits-lite):
- Weights int8 per output channel, activations uint8 per tensor (QDQ format), calibrated by
  ONNX Runtime's MinMax method on images from the model's own training data.
- Convolutions that read the input image stay float: with one input channel there is little
  arithmetic for int8 to save, and in int8 that layer was several times slower than in float.
- The layer that computes the logits stays float, so probabilities keep their resolution.
- A global max pool (ReduceMax) is moved before its DequantizeLinear: dequantizing with one scale
  is monotonic, so max-then-dequantize gives the same numbers, and the int8 part of the network
  no longer has to be transposed back to float's layout before the pool.
Sessions must be created without ONNX Runtime's QDQPropagationTransformer (scrawl.runtime.onnx.make_session
does): it moves the quantization of the first pooled activations above the float max pool, onto a
4x larger tensor, where the pool then runs in a slow layout; that made the int8 model slower than
the float one.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ScrawlError

log = logging.getLogger(__name__)

# ONNX Runtime graph transformers a session of a quantized Scrawl model runs without (see above).
DISABLED_OPTIMIZERS = ["QDQPropagationTransformer"]


def quantize_model(data: bytes, calibration: np.ndarray, input_name: str) -> tuple[bytes, dict]:
    """(int8 model bytes, what was done) for a float ONNX model and (N, 1, H, W) float32 calibration
    images. Raises ScrawlError when ONNX Runtime's quantizer fails on the model."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(np.array_split(calibration, max(1, len(calibration) // 250)))

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    model = onnx.load_from_string(data)
    outputs = {o.name for o in model.graph.output}
    keep_float = [n.name for n in model.graph.node
                  if (n.op_type == "Conv" and input_name in n.input) or (n.op_type in ("Gemm", "MatMul") and outputs & set(n.output))]
    with tempfile.TemporaryDirectory(prefix="scrawl-int8-") as tmp:
        src, pre, out = Path(tmp, "float.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(data)
        try:
            # Shape inference and graph clean-up first, as ONNX Runtime recommends; symbolic shape
            # inference cannot follow the exporter's reshape of the dynamic batch, and is not needed.
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(out), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=keep_float)
        except Exception as exc:  # the quantizer raises whatever its graph code hits
            raise ScrawlError(f"ONNX Runtime could not quantize this model: {type(exc).__name__}: {exc}") from None
        quantized = onnx.load(str(out))
    moved = _reduce_max_before_dequantize(quantized.graph)
    try:
        onnx.checker.check_model(quantized)
    except onnx.checker.ValidationError as exc:
        raise ScrawlError(f"the quantized model is not valid ONNX: {exc}") from None
    info = {"method": "static int8, ONNX Runtime QDQ: weights int8 per channel, activations uint8 per tensor (MinMax)",
            "float_nodes": keep_float, "reduce_max_moved": moved, "calibration_images": int(len(calibration))}
    return quantized.SerializeToString(), info


def _reduce_max_before_dequantize(graph) -> int:
    """Rewrite DequantizeLinear -> ReduceMax as ReduceMax -> DequantizeLinear (same numbers: the
    dequantization is per tensor and monotonic). Returns how many were moved."""
    nodes = list(graph.node)
    producers = {out: n for n in nodes for out in n.output}
    consumers: dict[str, int] = {}
    for n in nodes:
        for name in n.input:
            consumers[name] = consumers.get(name, 0) + 1
    after: dict[int, object] = {}  # id(ReduceMax node) -> the DequantizeLinear that now follows it
    for node in nodes:
        dq = producers.get(node.input[0]) if node.op_type == "ReduceMax" and node.input else None
        if dq is None or dq.op_type != "DequantizeLinear" or consumers.get(dq.output[0], 0) != 1:
            continue
        if len(dq.input) > 1 and _is_per_channel(graph, dq.input[1]):
            continue  # only a single scale for the whole tensor is known to commute with the max
        pooled = node.output[0]
        node.input[0], node.output[0] = dq.input[0], pooled + "_quantized"
        dq.input[0], dq.output[0] = pooled + "_quantized", pooled
        after[id(node)] = dq
    if after:  # one reordering, so the graph stays topologically sorted
        moving = {id(dq) for dq in after.values()}
        order = []
        for n in nodes:
            if id(n) not in moving:
                order.append(n)
                if id(n) in after:
                    order.append(after[id(n)])
        del graph.node[:]
        graph.node.extend(order)
    return len(after)


def _is_per_channel(graph, scale_name: str) -> bool:
    for init in graph.initializer:
        if init.name == scale_name:
            return int(np.prod(init.dims)) > 1 if len(init.dims) else False
    return True  # not a constant: do not touch it
