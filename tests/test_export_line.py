"""ONNX export and the ONNX Runtime backend for line models: a dynamic width, the same logits and the
same readings as PyTorch, clear errors for files that cannot read lines.

Lines are real handwriting: the bundled sample images framed as lines (`frame_line`, as
`Recognizer.read` frames them), one by one at their own widths, side by side as longer lines, and in
zero-right-padded batches. The shipped assets/line.onnx is checked against the shipped line.pt.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scrawl.cli import main
from scrawl.errors import CheckpointError, EmptyImageError, ScrawlError
from scrawl.runtime.export import export_onnx, file_sha256, sample_images
from scrawl.runtime.reader import read_framed
from scrawl.runtime.recognizer import Recognizer, bundled_path
from scrawl.vision.framing import frame_line
from scrawl.vision.ink import load_image

TOLERANCE = 1e-4  # max |logit difference|, as for character models
PROB_TOLERANCE = 1e-5  # confidences and n-best probabilities


@pytest.fixture(scope="module")
def torch_line():
    return Recognizer("line")


@pytest.fixture(scope="module")
def onnx_line():
    # By path, as a user gives an exported model; the bundled name resolves to the same file.
    return Recognizer(bundled_path("line", "onnx"), runtime="onnx")


def framed_lines(spec) -> list[np.ndarray]:
    """The bundled samples framed as lines: (size, W) float32, widths following each digit's ink."""
    return [frame_line(load_image(p), spec).image for p in sample_images()]


def side_by_side(lines: list[np.ndarray], spec) -> np.ndarray:
    """Framed lines next to each other (their blank margins are the gaps), framed again as one line."""
    return frame_line(np.concatenate(lines, axis=1), spec).image


def padded(lines: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(lines), lines[0].shape[0], max(x.shape[1] for x in lines)), np.float32)
    for i, line in enumerate(lines):
        out[i, :, : line.shape[1]] = line
    return out


def max_diff(a: Recognizer, b: Recognizer, batch: np.ndarray) -> float:
    x, y = a.logits(batch), b.logits(batch)
    assert x.shape == y.shape, (x.shape, y.shape)
    return float(np.abs(x.astype(np.float64) - y).max())


def test_line_logits_match_at_every_width_and_in_padded_batches(torch_line, onnx_line):
    lines = framed_lines(torch_line.spec)
    rng = np.random.default_rng(0)
    # Widths the export's own check never used: other orders and subsets of the samples side by side.
    longer = [side_by_side([lines[i] for i in rng.permutation(len(lines))[:k]], torch_line.spec) for k in (2, 5, 10)]
    widths = {x.shape[1] for x in lines + longer}
    assert len(widths) >= 6 and max(widths) > 4 * min(widths)  # really different widths
    for line in lines + longer:
        logits = onnx_line.logits(line[None])
        assert logits.shape == (1, line.shape[1] // 4, len(onnx_line.classes) + 1)
        assert max_diff(onnx_line, torch_line, line[None]) <= TOLERANCE
    for n in (1, 3, 13):  # zero-right-padded batches of several sizes
        batch = padded([(lines + longer)[i] for i in rng.integers(0, len(lines) + len(longer), n)])
        assert onnx_line.logits(batch).shape[0] == n
        assert max_diff(onnx_line, torch_line, batch) <= TOLERANCE


def _outcome(rec: Recognizer, image, **kw):
    """A read's text and lines as dicts, or its error's type and message."""
    try:
        return rec.read(image, **kw).to_dict()
    except ScrawlError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}


def _same_reading(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    if "error" in a:
        assert a == b
        return
    assert a["text"] == b["text"] and len(a["lines"]) == len(b["lines"])
    for x, y in zip(a["lines"], b["lines"]):
        assert x["text"] == y["text"] and x["box"] == y["box"]
        assert abs(x["confidence"] - y["confidence"]) <= PROB_TOLERANCE
        assert [c["char"] for c in x["chars"]] == [c["char"] for c in y["chars"]]
        assert [t["text"] for t in x["alternatives"]] == [t["text"] for t in y["alternatives"]]
        assert np.allclose([t["probability"] for t in x["alternatives"]],
                           [t["probability"] for t in y["alternatives"]], atol=PROB_TOLERANCE)


def test_onnx_read_gives_the_torch_readings(torch_line, onnx_line):
    lines = framed_lines(torch_line.spec)
    two_rows = np.zeros((100, 400), np.float32)  # two lines of sample digits, ink bright
    for row, part in ((10, lines[:5]), (60, lines[5:])):
        line = np.concatenate(part, axis=1)[:, :400]
        two_rows[row : row + line.shape[0], : line.shape[1]] = line
    images = [*sample_images(), two_rows]
    for image in images:
        for kw in ({}, {"top_k": 5, "charset": "digits"}):
            _same_reading(_outcome(torch_line, image, **kw), _outcome(onnx_line, image, **kw))
    # Below what `read` shows: each framed line's reading, empty ones included (an untrained model reads
    # no text, but its n-best alternatives still come from the logits), must be the same.
    for p in sample_images():
        ink = load_image(p)
        framed = frame_line(ink, torch_line.spec)
        box = (0, 0, ink.shape[1], ink.shape[0])
        a, b = (read_framed(rec, framed, box, ink, top_k=3, allowed=None, lexicon=None).to_dict()
                for rec in (torch_line, onnx_line))
        assert a["alternatives"], p  # always an n-best list: the comparison below compares something
        _same_reading({"text": a["text"], "lines": [a]}, {"text": b["text"], "lines": [b]})


def test_shipped_line_onnx_is_up_to_date(torch_line, onnx_line):
    # Re-export after retraining the line model: scrawl export line --out src/scrawl/assets/line.onnx
    onnx_path = bundled_path("line", "onnx")
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert meta["source"]["sha256"] == file_sha256(bundled_path("line")), \
        "line.onnx was exported from another line.pt: run `scrawl export line --out src/scrawl/assets/line.onnx`"
    assert meta["onnx_sha256"] == file_sha256(onnx_path)
    assert meta["task"] == "ctc" and meta["frame"]["framing"] == "line"
    assert meta["input"]["shape"] == ["N", 1, torch_line.spec.size, "W"]
    assert meta["output"]["shape"] == ["N", "T", len(torch_line.classes) + 1]
    assert meta["parity"]["max_abs_diff"] <= TOLERANCE and len(meta["parity"]["widths"]) > 3
    assert onnx_path.stat().st_size < 10 * 2**20
    assert onnx_line.classes == torch_line.classes and onnx_line.spec == torch_line.spec
    shape = onnx_line.model.get_inputs()[0].shape
    assert not isinstance(shape[0], int) and not isinstance(shape[3], int) and shape[1:3] == [1, torch_line.spec.size]
    assert Recognizer("line", runtime="onnx").path == onnx_path


@pytest.mark.slow
def test_line_export_round_trip(tmp_path, capsys, torch_line):
    out = tmp_path / "line.onnx"
    assert main(["export", "line", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    n = len(sample_images()) + 1  # the samples, and the samples side by side as one line
    assert f"wrote {out}" in printed and f"{n} real images" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line.json", "line.onnx"]
    meta = json.loads((tmp_path / "line.json").read_text())
    ref = torch_line
    assert meta["format"] == "scrawl-onnx" and meta["task"] == "ctc" and meta["classes"] == ref.classes
    assert meta["arch"] == ref.meta["arch"] and meta["model_config"] == ref.meta["model_config"]
    assert meta["source"] == {"file": "line.pt", "sha256": file_sha256(bundled_path("line"))}
    assert meta["onnx_sha256"] == file_sha256(out) and "history" not in meta
    assert meta["input"] == {"name": "image", "shape": ["N", 1, 32, "W"], "dtype": "float32", "range": [0.0, 1.0]}
    assert meta["output"]["shape"] == ["N", "T", len(ref.classes) + 1]
    parity = meta["parity"]
    lines = framed_lines(ref.spec)
    assert parity["max_abs_diff"] <= TOLERANCE and parity["images"] == n
    assert parity["batch_sizes"] == [1, n, n + 1]  # one by one, and padded batches (not the traced 2)
    assert {x.shape[1] for x in lines} | {side_by_side(lines, ref.spec).shape[1]} == set(parity["widths"])

    rec = Recognizer(out, runtime="onnx")
    session_out = rec.model.get_outputs()[0].shape
    assert not isinstance(session_out[0], int) and not isinstance(session_out[1], int)  # batch and time
    longer = side_by_side(lines[::-1] + lines, ref.spec)  # a width the check never saw
    assert max_diff(rec, ref, longer[None]) <= TOLERANCE
    assert max_diff(rec, ref, padded(lines + [longer])) <= TOLERANCE


def _tiny_line_checkpoint(path: Path) -> Path:
    import torch

    from scrawl.models import build_model
    from scrawl.runtime.checkpoint import save_checkpoint

    torch.manual_seed(0)
    classes = list("0123456789")
    config = {"num_classes": len(classes) + 1, "width": 4, "hidden": 8}
    meta = {"arch": "crnn", "model_config": config, "classes": classes, "task": "ctc",
            "frame": {"framing": "line", "size": 32, "box": 26}, "description": "a tiny line model"}
    return save_checkpoint(path, meta, build_model("crnn", **config).state_dict())


@pytest.mark.slow
def test_user_line_checkpoint_exports_with_check_images_and_refuses_a_failed_check(tmp_path, monkeypatch):
    import cv2

    from scrawl.runtime import export

    ckpt = _tiny_line_checkpoint(tmp_path / "tiny.pt")
    spec = Recognizer(ckpt).spec
    two_digits = tmp_path / "two.png"  # a user's line: two samples side by side, dark on white
    ink = np.concatenate([frame_line(load_image(sample_images()[i]), spec).image for i in (0, 3)], axis=1)
    cv2.imwrite(str(two_digits), np.round(255 * (1 - ink)).astype(np.uint8))
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((40, 200), 255, np.uint8))  # no ink: skipped, not fatal
    result = export_onnx(ckpt, check_images=[two_digits, blank])
    assert result["onnx"] == tmp_path / "tiny.onnx" and result["max_abs_diff"] <= TOLERANCE
    assert result["images"] == len(sample_images()) + 2  # + the user's line + all side by side
    side = json.loads((tmp_path / "tiny.json").read_text())
    assert frame_line(load_image(two_digits), spec).image.shape[1] in side["parity"]["widths"]
    onnx_rec, torch_rec = Recognizer(tmp_path / "tiny.onnx", runtime="onnx"), Recognizer(ckpt)
    assert max_diff(onnx_rec, torch_rec, padded(framed_lines(spec))) <= TOLERANCE

    # The same export again, with ONNX Runtime's logits a little off: refused, nothing written. (The
    # exporter's output is the one just made and checked: re-running it would only take time.)
    data = (tmp_path / "tiny.onnx").read_bytes()
    (tmp_path / "tiny.onnx").unlink()
    (tmp_path / "tiny.json").unlink()
    monkeypatch.setattr(export, "_to_onnx", lambda *args, **kwargs: data)
    real = export._onnx_logits
    monkeypatch.setattr(export, "_onnx_logits", lambda session, batch, output: real(session, batch, output) + 1e-3)
    with pytest.raises(ScrawlError, match="differ from PyTorch's by up to 0.001.*nothing written"):
        export_onnx(ckpt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.png", "tiny.pt", "two.png"]


# ------------------------------------------------------------------------------ bad files


def _fixed_width(data: bytes, width: int) -> bytes:
    """line.onnx as if exported with a fixed width: the input's width axis declared `width`."""
    import onnx

    model = onnx.load_from_string(data)
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = width
    return model.SerializeToString()


def _pair(tmp_path: Path, onnx_of: str, meta_of: str, data=None, meta=None) -> Path:
    """tmp_path/m.onnx: the bytes of the shipped `onnx_of`.onnx (or `data`), with the sidecar of
    `meta_of`, changed by `meta`, describing those bytes."""
    import hashlib

    data = bundled_path(onnx_of, "onnx").read_bytes() if data is None else data
    side = json.loads(bundled_path(meta_of, "onnx").with_suffix(".json").read_text())
    side.update(meta or {}, onnx_sha256=hashlib.sha256(data).hexdigest())
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    path.with_suffix(".json").write_text(json.dumps(side))
    return path


LINE = bundled_path("line", "onnx")
BAD = [
    # (name, onnx bytes of, sidecar of, bytes (None: as shipped), sidecar changes, message)
    ("a character model with a line sidecar", "digits", "line", None, {},
     ", 1, 28, 28], not float images (N, 1, 32, W) of any width W"),
    ("a line model with a character sidecar", "line", "digits", None, {}, "not float images (N, 1, 28, 28)"),
    ("a line model with a fixed width", "line", "line", lambda: _fixed_width(LINE.read_bytes(), 64), {},
     "must take lines of any width, this one takes only width 64"),
    ("classes count mismatch", "line", "line", None, {"classes": list("0123456789")},
     "but its metadata lists 10 classes (its ctc task expects 11 outputs)"),
]


@pytest.mark.parametrize("name,onnx_of,meta_of,data,meta,message", BAD, ids=[b[0] for b in BAD])
def test_bad_line_onnx_file_is_a_clear_error(name, onnx_of, meta_of, data, meta, message, tmp_path):
    path = _pair(tmp_path, onnx_of, meta_of, data() if data else None, meta)
    with pytest.raises(CheckpointError) as err:
        Recognizer(path, runtime="onnx")
    assert message in str(err.value) and "m.onnx" in str(err.value), str(err.value)


NO_TORCH = r"""
import json, sys
from scrawl.errors import EmptyImageError
from scrawl.runtime.recognizer import Recognizer

rec = Recognizer("line", runtime="onnx")
try:
    text = rec.read(sys.argv[1]).text
except EmptyImageError as exc:  # an untrained placeholder reads nothing
    text = None
print(json.dumps({"text": text, "width": rec.model.get_inputs()[0].shape[3],
                  "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}))
"""


def test_onnx_line_reading_never_imports_torch(torch_line):
    sample = sample_images()[3]
    r = subprocess.run([sys.executable, "-c", NO_TORCH, str(sample)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.splitlines()[-1])
    assert got["torch"] == [] and not isinstance(got["width"], int)
    try:
        expected = torch_line.read(sample).text
    except EmptyImageError:
        expected = None
    assert got["text"] == expected


def test_a_fixed_width_or_time_axis_is_caught_in_the_exporters_output():
    # What _to_onnx checks in the dynamo exporter's result before it keeps it (torch 2.13, with the width
    # as 4 * Dim, declared a fixed time axis).
    import onnx

    from scrawl.runtime.export import _width_is_dynamic

    data = LINE.read_bytes()
    assert _width_is_dynamic(onnx.load_from_string(data))
    assert not _width_is_dynamic(onnx.load_from_string(_fixed_width(data, 64)))
    fixed_time = onnx.load_from_string(data)
    fixed_time.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 10
    assert not _width_is_dynamic(fixed_time)
