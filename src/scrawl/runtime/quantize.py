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
Line models (task "ctc") are quantized dynamically instead (`quantize_line_model`): weights int8, each
activation quantized as it is computed, so no calibration lines are needed. Only the LSTM and the
matrix products are: in int8 the convolutions ran slower (ConvInteger: 13.5 -> 33 ms for a 64x1000
line on one thread), while LSTM and MatMul took the model from 13.5 to 9.9 ms (a scratch timing).
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


# ---- line models ---------------------------------------------------------------------------------

# An int8 line model may read held-out lines with a character error rate at most this much (absolute)
# above the float model's. Not an agreement share, as for characters: a long line read with one character
# changed counts as a disagreement, and many held-out lines are read with a few errors by both.
INT8_LINE_CER_SLACK = 0.005
INT8_CHECK_LINES = 300  # held-out lines of the model's dataset that check it


def line_int8(data: bytes, session, card, data_dir, output: str) -> tuple[bytes, dict]:
    """(int8 model bytes, the sidecar's "quantization" entry) for a checked float line model; `session`
    makes an ONNX Runtime session of model bytes (data, name). ScrawlError when the int8 model's character
    error rate on held-out lines is more than INT8_LINE_CER_SLACK above the float one's."""
    quantized, info = quantize_line_model(data)
    check = check_line_int8(session(data, "the exported model"), session(quantized, "the int8 model"), card,
                            data_dir, output)
    if not check["cer_int8"] <= check["cer_float"] + INT8_LINE_CER_SLACK:
        raise ScrawlError(f"int8 export refused: its character error rate on {check['lines']} held-out lines is "
                          f"{check['cer_int8']:.2%}, the float model's {check['cer_float']:.2%} (allowed: "
                          f"{INT8_LINE_CER_SLACK:.1%} more); nothing written")
    return quantized, {**info, "check": check}


def quantize_line_model(data: bytes) -> tuple[bytes, dict]:
    """(int8 model bytes, what was done) for a float line model: dynamic int8 of the LSTM and of the
    matrix products except the one that computes the logits. Raises ScrawlError when the quantizer fails."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load_from_string(data)
    keep_float = _logit_layer(model.graph)
    with tempfile.TemporaryDirectory(prefix="scrawl-int8-") as tmp:
        src, pre, out = Path(tmp, "float.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(data)
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # as for static int8
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["LSTM", "MatMul", "Gemm"], nodes_to_exclude=keep_float)
        except Exception as exc:  # the quantizer raises whatever its graph code hits
            raise ScrawlError(f"ONNX Runtime could not quantize this model: {type(exc).__name__}: {exc}") from None
        quantized = out.read_bytes()
    info = {"method": "dynamic int8, ONNX Runtime: LSTM and matrix-product weights int8, activations "
                      "quantized as computed", "float_nodes": keep_float}
    return quantized, info


def _logit_layer(graph) -> list[str]:
    """The matrix product that computes the logits: the exporter writes a Linear on a sequence as MatMul
    then Add (the bias), so it is found by walking back from the graph's output through Add nodes."""
    producers = {out: n for n in graph.node for out in n.output}
    node = producers.get(graph.output[0].name)
    while node is not None and node.op_type == "Add":
        node = next((producers[i] for i in node.input if i in producers), None)
    return [node.name] if node is not None and node.op_type in ("MatMul", "Gemm") else []


def check_line_int8(float_session, int8_session, card, data_dir, output: str) -> dict:
    """Read INT8_CHECK_LINES held-out lines of the model's dataset with both sessions (best path): the
    share read alike, and each one's character error rate (no charset, no word prior). ScrawlError if the
    data is missing."""
    from ..evaluation.lines import line_test_set
    from ..tasks.ctc import edit_distance, greedy, log_softmax
    from ..vision.framing import frame_line
    from ..vision.ink import load_image

    name = card.dataset.get("name") or "unipen-words"
    try:
        test = line_test_set(name, data_dir, limit=INT8_CHECK_LINES)
    except ScrawlError as exc:
        raise type(exc)(f"the int8 check reads held-out lines of {name}: {exc}") from None
    same, edits = 0, {"float": 0, "int8": 0}
    for image, truth in zip(test.images, test.texts):
        x = frame_line(load_image(image), card.frame).image[None, None].astype(np.float32)  # (1, 1, H, W)
        logits = [s.run([output], {s.get_inputs()[0].name: x})[0][0] for s in (float_session, int8_session)]
        texts = [greedy(np.exp(log_softmax(z)), card.classes).label for z in logits]
        same += texts[0] == texts[1]
        for key, text in zip(edits, texts):
            edits[key] += edit_distance(truth, text)
    chars = max(1, sum(len(t) for t in test.texts))
    return {"lines": len(test.texts), "of": f"{len(test.texts)} lines of {name} ({test.description})",
            "agreement": same / max(1, len(test.texts)), "cer_float": edits["float"] / chars,
            "cer_int8": edits["int8"] / chars, "max_cer_rise": INT8_LINE_CER_SLACK}
