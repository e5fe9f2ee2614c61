"""int8 export: the quantized model answers like the float one, stays float where it should, the
ReduceMax rewrite keeps the numbers, and a missing dataset is a clear error with nothing written; a line
model's int8 export (dynamic) reads held-out lines as well as the float one, and reads the same text."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from scrawl.cli import main
from scrawl.runtime.onnx import make_session as _session
from scrawl.runtime.recognizer import Recognizer
from scrawl.runtime.quantize import _reduce_max_before_dequantize


@pytest.mark.realdata
def test_int8_export_of_digits_lite(real_data_dir, tmp_path, capsys):
    out = tmp_path / "lite-int8.onnx"
    assert main(["export", "digits-lite", "--int8", "--out", str(out), "--data-dir", str(real_data_dir)]) == 0
    said = capsys.readouterr().out
    assert "int8 answers agree with float" in said

    meta = json.loads(out.with_suffix(".json").read_text())
    q = meta["quantization"]
    assert q["check"]["agreement"] >= 0.99 and q["check"]["images"] > 2000
    assert q["calibration_images"] == 2000 and q["reduce_max_moved"] == 1

    graph = onnx.load(str(out)).graph
    producer = {o: n for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    # The stem reads the float image with float weights; the other convolutions get dequantized int8 weights.
    assert convs[0].input[0] == "image" and convs[0].input[1] not in producer
    assert all(producer[c.input[1]].op_type == "DequantizeLinear" for c in convs[1:])
    # The logits come straight from a float Gemm, not from a DequantizeLinear.
    assert producer["logits"].op_type == "Gemm"
    assert producer[next(n for n in graph.node if n.op_type == "ReduceMax").input[0]].op_type == "QuantizeLinear"

    from scrawl.data import load_dataset

    test = load_dataset("mnist", "test", real_data_dir)
    x = test.images[:2000].numpy().astype(np.float32) / 255
    labels = test.labels[:2000].numpy()
    float_rec, int8_rec = Recognizer("digits-lite", runtime="onnx"), Recognizer(out, runtime="onnx")
    p_float, p_int8 = float_rec.probabilities(x), int8_rec.probabilities(x)
    acc_float, acc_int8 = np.mean(p_float.argmax(1) == labels), np.mean(p_int8.argmax(1) == labels)
    assert acc_int8 >= acc_float - 0.003, (acc_float, acc_int8)
    assert np.mean(p_float.argmax(1) == p_int8.argmax(1)) >= 0.99
    assert np.allclose(p_int8.sum(1), 1, atol=1e-5)
    # Float logits: many distinct values, not the 256 levels of a uint8 output.
    assert len(np.unique(int8_rec.logits(x))) > 1000


@pytest.mark.realdata
def test_int8_model_that_answers_differently_is_refused_and_nothing_written(real_data_dir, tmp_path, capsys, monkeypatch):
    import scrawl.runtime.export

    monkeypatch.setattr(scrawl.runtime.export, "INT8_AGREEMENT", 1.01)  # no model can agree this well
    out = tmp_path / "out" / "x.onnx"
    assert main(["export", "digits-lite", "--int8", "--out", str(out), "--data-dir", str(real_data_dir)]) == 2
    assert "int8 export refused" in capsys.readouterr().err
    assert not out.parent.exists() or not list(out.parent.iterdir())


def _dq_reducemax_graph(scale: np.ndarray):
    """uint8 (N, C, 3, 3) -> DequantizeLinear (scale per tensor or per channel) -> ReduceMax."""
    c = 4
    inits = [helper.make_tensor("scale", TensorProto.FLOAT, list(scale.shape), scale.ravel().tolist()),
             helper.make_tensor("zp", TensorProto.UINT8, list(scale.shape), [3] * scale.size),
             helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])]
    nodes = [helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["x"], axis=1),
             helper.make_node("ReduceMax", ["x", "axes"], ["y"], keepdims=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("q", TensorProto.UINT8, ["N", c, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c, 1, 1])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_reduce_max_moves_before_a_per_tensor_dequantize_with_the_same_numbers():
    q = np.random.default_rng(0).integers(0, 256, (5, 4, 3, 3), dtype=np.uint8)
    model = _dq_reducemax_graph(np.array(0.037, dtype=np.float32))
    before = _session(model.SerializeToString(), None, "before").run(["y"], {"q": q})[0]
    assert _reduce_max_before_dequantize(model.graph) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["ReduceMax", "DequantizeLinear"]
    after = _session(model.SerializeToString(), None, "after").run(["y"], {"q": q})[0]
    assert np.array_equal(before, after)


def test_reduce_max_stays_after_a_per_channel_dequantize():
    # Only a single scale for the whole tensor is handled; per-channel scales are left alone.
    model = _dq_reducemax_graph(np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32))
    assert _reduce_max_before_dequantize(model.graph) == 0
    assert [n.op_type for n in model.graph.node] == ["DequantizeLinear", "ReduceMax"]


@pytest.mark.parametrize("model, says", [("digits-lite", "int8 calibration needs the model's training data (mnist)"),
                                          ("line", "the int8 check reads held-out lines of unipen-words")])
def test_int8_export_without_the_data_is_a_clear_error(tmp_path, capsys, monkeypatch, model, says):
    monkeypatch.setenv("SCRAWL_MIRRORS", "http://127.0.0.1:9/")  # never the internet
    out = tmp_path / "out" / f"{model}-int8.onnx"
    assert main(["export", model, "--int8", "--out", str(out), "--data-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_calibration_count_must_be_positive(tmp_path, capsys):
    assert main(["export", "digits-lite", "--int8", "--calibration", "0", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "--calibration must be at least 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ---- line models ---------------------------------------------------------------------------------

@pytest.mark.realdata
@pytest.mark.slow
def test_int8_export_of_the_line_model(real_data_dir, tmp_path, capsys):
    from scrawl.runtime.files import sample_images
    from scrawl.runtime.quantize import INT8_LINE_CER_SLACK

    out = tmp_path / "line-int8.onnx"
    assert main(["export", "line", "--int8", "--out", str(out), "--data-dir", str(real_data_dir)]) == 0
    said = capsys.readouterr().out
    assert "held-out lines as the float model does" in said and "scrawl read --runtime onnx" in said
    q = json.loads(out.with_suffix(".json").read_text())["quantization"]
    check = q["check"]
    assert check["lines"] == 300 and check["cer_int8"] <= check["cer_float"] + INT8_LINE_CER_SLACK
    assert check["agreement"] >= 0.85  # measured 0.92-0.94: most lines read letter for letter alike
    # The logits stay float: their layer is the graph's last matrix product, kept out of the quantizer.
    graph = onnx.load(str(out)).graph
    assert q["float_nodes"] and {n.name for n in graph.node if n.op_type == "MatMul"} == set(q["float_nodes"])
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= {n.op_type for n in graph.node}
    float_rec, int8_rec = Recognizer("line", runtime="onnx"), Recognizer(out, runtime="onnx")
    samples = sample_images()
    same = sum(float_rec.read(p, top_k=1).text == int8_rec.read(p, top_k=1).text for p in samples)
    assert same >= len(samples) - 1


@pytest.mark.realdata
@pytest.mark.slow
def test_int8_line_model_that_reads_worse_is_refused_and_nothing_written(real_data_dir, tmp_path, capsys, monkeypatch):
    import scrawl.runtime.quantize

    monkeypatch.setattr(scrawl.runtime.quantize, "INT8_LINE_CER_SLACK", -1.0)  # no model reads this well
    out = tmp_path / "out" / "line-int8.onnx"
    assert main(["export", "line", "--int8", "--out", str(out), "--data-dir", str(real_data_dir)]) == 2
    err = capsys.readouterr().err
    assert "int8 export refused: its character error rate" in err and "Traceback" not in err
    assert not out.parent.exists() or not list(out.parent.iterdir())
