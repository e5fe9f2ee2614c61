"""ONNX export and the ONNX Runtime backend: same answers as PyTorch, no torch import, clear errors.

Parity is measured on real handwriting (the bundled sample photos and drawings, framed as a user's
image is), never only on random tensors. The shipped assets/*.onnx are checked against the shipped
checkpoints, so they cannot drift from them.
"""

import json
import mimetypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scrawl.cli import main
from scrawl.errors import CheckpointError, ScrawlError
from scrawl.runtime.export import export_onnx, file_sha256, sample_images
from scrawl.runtime.files import BUNDLED_INT8, bundled_int8_path
from scrawl.runtime.recognizer import BUNDLED, Recognizer, bundled_path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "scrawl" / "assets" / "samples"
TOLERANCE = 1e-4


def framed_samples(rec) -> np.ndarray:
    """The bundled samples as `rec` frames them: (N, 28, 28)."""
    return np.stack([rec.frame(p) for p in sample_images()])


def max_logit_diff(a: Recognizer, b: Recognizer, batch: np.ndarray) -> float:
    return float(np.abs(a.logits(batch).astype(np.float64) - b.logits(batch)).max())


@pytest.fixture(scope="module")
def torch_recs():
    return {name: Recognizer(name) for name in BUNDLED}


@pytest.fixture(scope="module")
def onnx_recs():
    return {name: Recognizer(name, runtime="onnx") for name in BUNDLED}


# ------------------------------------------------------------------------------------ export


@pytest.mark.parametrize("name", sorted(n for n in BUNDLED if n != "line"))  # line: test_export_line.py
def test_export_round_trip_matches_pytorch_on_real_images(name, tmp_path, monkeypatch, capsys, torch_recs):
    if name == "digits":  # the default output: NAME.onnx in the current folder
        monkeypatch.chdir(tmp_path)
        assert main(["export", name]) == 0
    else:
        assert main(["export", name, "--format", "onnx", "--out", str(tmp_path / f"{name}.onnx")]) == 0
    out = capsys.readouterr().out
    onnx_path, sidecar = tmp_path / f"{name}.onnx", tmp_path / f"{name}.json"
    assert f"wrote {name}.onnx" in out or f"wrote {onnx_path}" in out
    assert "max |logit difference|" in out and "10 real images" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [sidecar.name, onnx_path.name]  # no temp files, no .onnx.data

    meta = json.loads(sidecar.read_text())
    ref = torch_recs[name]
    assert meta["format"] == "scrawl-onnx" and meta["format_version"] == 2 and meta["task"] == "classify"
    assert "history" not in meta and "train_config" not in meta  # the card travels, the training record stays
    assert meta["classes"] == ref.classes and meta["frame"] == ref.meta["frame"]
    assert meta["arch"] == ref.meta["arch"] and meta["model_config"] == ref.meta["model_config"]
    assert meta["dataset"] == ref.meta["dataset"] and meta["opset"] == 18
    assert meta["source"] == {"file": BUNDLED[name], "sha256": file_sha256(bundled_path(name))}
    assert meta["onnx_sha256"] == file_sha256(onnx_path)
    assert meta["input"]["name"] == "image" and meta["input"]["shape"] == ["N", 1, 28, 28]
    assert meta["output"]["name"] == "logits" and meta["output"]["shape"] == ["N", len(ref.classes)]
    parity = meta["parity"]
    assert parity["max_abs_diff"] <= TOLERANCE and parity["images"] == 10 and 2 not in parity["batch_sizes"]

    # Loaded back through the onnx runtime, on the real samples: the same logits and answers.
    rec = Recognizer(onnx_path, runtime="onnx")
    batch = framed_samples(ref)
    assert max_logit_diff(rec, ref, batch) <= TOLERANCE
    assert [p.label for p in rec.predict_framed(batch)] == [p.label for p in ref.predict_framed(batch)]


def test_dynamic_batch(torch_recs, onnx_recs):
    ref, rec = torch_recs["digits"], onnx_recs["digits"]
    batch = framed_samples(ref)
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 17, 64):
        idx = rng.integers(0, len(batch), n)
        logits = rec.logits(batch[idx])
        assert logits.shape == (n, len(ref.classes))  # 10 digits and "not a character"
        assert np.abs(logits - ref.logits(batch[idx])).max() <= TOLERANCE
    shape = rec.model.get_inputs()[0].shape
    assert not isinstance(shape[0], int) and shape[1:] == [1, 28, 28]  # a symbolic batch axis


def test_user_checkpoint_exports_next_to_itself_with_extra_check_images(tmp_path):
    import shutil

    import torch

    from scrawl.runtime.checkpoint import save_checkpoint
    from scrawl.runtime.recognizer import CHARSETS
    from scrawl.models import build_model

    torch.manual_seed(0)
    classes = list(CHARSETS["alnum"])
    meta = {"arch": "fastnet", "model_config": {"num_classes": 62, "width": 8}, "classes": classes,
            "frame": {"framing": "emnist", "size": 28, "box": 20}, "description": "a test model"}
    ckpt = save_checkpoint(tmp_path / "tiny.pt", meta, build_model("fastnet", num_classes=62, width=8).state_dict())
    extra = tmp_path / "extra.png"
    shutil.copy(SAMPLES / "3-photo.jpg", extra)
    blank = tmp_path / "blank.png"
    blank.write_bytes((SAMPLES / "0-paper.png").read_bytes()[:50])  # unusable: skipped, not fatal
    result = export_onnx(ckpt, check_images=[extra, blank])
    assert result["onnx"] == tmp_path / "tiny.onnx" and result["sidecar"] == tmp_path / "tiny.json"
    assert result["images"] == 11 and result["max_abs_diff"] <= TOLERANCE
    side = json.loads((tmp_path / "tiny.json").read_text())
    assert side["description"] == "a test model" and len(side["classes"]) == 62
    onnx_rec, torch_rec = Recognizer(tmp_path / "tiny.onnx", runtime="onnx"), Recognizer(ckpt)
    for charset in (None, "digits", "upper"):
        a = onnx_rec.predict(SAMPLES / "7-paper.webp", top_k=5, charset=charset)
        b = torch_rec.predict(SAMPLES / "7-paper.webp", top_k=5, charset=charset)
        assert [c for c, _ in a.top_k] == [c for c, _ in b.top_k]
        assert np.allclose([p for _, p in a.top_k], [p for _, p in b.top_k], atol=1e-5)


# --------------------------------------------------------------------------- shipped assets


@pytest.mark.parametrize("name", sorted(n for n in BUNDLED if n != "line"))  # line: test_export_line.py
def test_shipped_onnx_assets_are_up_to_date(name, torch_recs, onnx_recs):
    # Re-export after retraining a bundled model: cd src/scrawl/assets && scrawl export NAME
    onnx_path = bundled_path(name, "onnx")
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert meta["source"]["sha256"] == file_sha256(bundled_path(name)), \
        f"{onnx_path.name} was exported from another {BUNDLED[name]}: run `scrawl export {name}` in src/scrawl/assets"
    assert meta["onnx_sha256"] == file_sha256(onnx_path)
    assert onnx_path.stat().st_size < 5 * 2**20
    ref, rec = torch_recs[name], onnx_recs[name]
    assert rec.classes == ref.classes and rec.spec == ref.spec
    assert max_logit_diff(rec, ref, framed_samples(ref)) <= TOLERANCE


@pytest.mark.parametrize("name", sorted(BUNDLED_INT8))
def test_shipped_int8_assets_are_up_to_date(name, onnx_recs):
    # Re-export after retraining: cd src/scrawl/assets && scrawl export NAME --int8 (needs NAME's training data)
    path = bundled_int8_path(name)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["source"]["sha256"] == file_sha256(bundled_path(name)), \
        f"{path.name} was quantized from another {BUNDLED[name]}: run `scrawl export {name} --int8` in src/scrawl/assets"
    assert meta["onnx_sha256"] == file_sha256(path) and path.stat().st_size < 2**20
    check = meta["quantization"]["check"]
    assert check["images"] >= 2000 and check["agreement"] >= 0.999
    assert check["accuracy_int8"] >= check["accuracy_float"] - 0.001
    # It reads as the float export does on the bundled samples.
    rec, ref = Recognizer(path, runtime="onnx"), onnx_recs[name]
    assert rec.classes == ref.classes and rec.spec == ref.spec
    for sample in sorted(SAMPLES.iterdir()):
        a, b = rec.predict(sample), ref.predict(sample)
        assert a.label == b.label and abs(a.confidence - b.confidence) < 0.05, sample.name


def test_predict_cli_onnx_gives_the_same_answers_as_torch(capsys):
    answers = {}
    for runtime in ("torch", "onnx"):
        assert main(["predict", "--json", "--top-k", "3", "--runtime", runtime, str(SAMPLES)]) == 0
        answers[runtime] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(answers["onnx"]) == 10
    for t, o in zip(answers["torch"], answers["onnx"]):
        assert o["label"] == t["label"] == Path(t["path"]).name[0]
        assert [a["label"] for a in o["top_k"]] == [a["label"] for a in t["top_k"]]
        assert abs(o["confidence"] - t["confidence"]) <= 1e-5
    # An .onnx path works too, as does a bundled name for the other model.
    assert main(["predict", "--runtime", "onnx", "--model", str(bundled_path("digits", "onnx")),
                 str(SAMPLES / "7-paper.webp")]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1] == "7"
    assert main(["predict", "--runtime", "onnx", "--model", "chars", "--charset", "digits",
                 str(SAMPLES / "7-paper.webp")]) == 0


def test_serve_with_onnx_answers_like_torch():
    from fastapi.testclient import TestClient

    from scrawl.web import create_app
    from test_web_api import ONE, SEVEN, _shift, canvas

    page = canvas([*SEVEN, *_shift(ONE, 300)], size=(600, 280))
    answers = {}
    for runtime in ("torch", "onnx"):
        with TestClient(create_app(runtime=runtime)) as c:
            got = {"models": c.get("/api/models").json()}
            for name in ("digits", "chars"):
                for sample in sorted(SAMPLES.iterdir())[:4]:
                    r = c.post(f"/api/predict?model={name}", content=sample.read_bytes(),
                               headers={"content-type": mimetypes.guess_type(sample.name)[0] or "image/png"})
                    assert r.status_code == 200, r.text
                    got[(name, sample.name)] = r.json()
            got["seven"] = c.post("/api/predict", content=canvas(SEVEN), headers={"content-type": "image/png"}).json()
            got["read"] = c.post("/api/read?model=digits", content=page, headers={"content-type": "image/png"}).json()
            got["line"] = c.post("/api/read", content=page, headers={"content-type": "image/png"}).json()
            answers[runtime] = got
    t, o = answers["torch"], answers["onnx"]
    assert o["models"] == t["models"]  # same names, classes, charsets and descriptions
    assert o["seven"]["label"] == "7" and o["read"]["text"] == t["read"]["text"] == "71"
    assert o["line"]["text"] == t["line"]["text"]  # the line model: the same reading in both runtimes
    assert [a["text"] for a in o["line"]["lines"][0]["alternatives"]] == \
        [a["text"] for a in t["line"]["lines"][0]["alternatives"]]
    for key in t:
        if key in ("models", "line"):
            continue
        pairs = [(t[key], o[key])] if key != "read" else zip(
            [c for line in t[key]["lines"] for c in line["chars"]], [c for line in o[key]["lines"] for c in line["chars"]])
        for a, b in pairs:
            assert a.get("label", a.get("char")) == b.get("label", b.get("char")) and a["framed"] == b["framed"], key
            assert [x["label"] for x in a["top_k"]] == [x["label"] for x in b["top_k"]], key
            assert abs(a["confidence"] - b["confidence"]) <= 1e-5, key

NO_TORCH = r"""
import json, sys
from pathlib import Path

samples = Path(sys.argv[1])
from scrawl.runtime.recognizer import Recognizer

pred = Recognizer("digits", runtime="onnx").predict(samples / "7-paper.webp")
after_predict = "torch" in sys.modules

from fastapi.testclient import TestClient
from scrawl.web import create_app

with TestClient(create_app(runtime="onnx")) as c:
    a = c.post("/api/predict", content=(samples / "3-photo.jpg").read_bytes(), headers={"content-type": "image/jpeg"}).json()
    b = c.post("/api/read?model=chars&charset=digits", content=(samples / "0-paper.png").read_bytes(), headers={"content-type": "image/png"}).json()
after_serve = "torch" in sys.modules

from scrawl.cli import main
rc = main(["predict", "--runtime", "onnx", "--json", str(samples)])
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print(json.dumps({"label": pred.label, "api": a["label"], "read": b["text"], "rc": rc,
                  "after_predict": after_predict, "after_serve": after_serve, "torch_modules": loaded}))
"""


def test_onnx_runtime_never_imports_torch():
    r = subprocess.run([sys.executable, "-c", NO_TORCH, str(SAMPLES)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.splitlines()[-1])
    assert got["label"] == "7" and got["api"] == "3" and got["read"] == "0" and got["rc"] == 0
    assert got["after_predict"] is False and got["after_serve"] is False and got["torch_modules"] == []


# --------------------------------------------------------------------------------- bad files


def _pair(tmp_path, name="m", data=None, meta=None, sidecar=True):
    """A copy of the shipped digits.onnx + sidecar as tmp_path/NAME.onnx, with `data` / `meta` changes."""
    src = bundled_path("digits", "onnx")
    path = tmp_path / f"{name}.onnx"
    data = src.read_bytes() if data is None else data
    path.write_bytes(data)
    if isinstance(meta, str):
        path.with_suffix(".json").write_text(meta)
    elif sidecar:
        m = json.loads(src.with_suffix(".json").read_text())
        m.update(meta or {})
        path.with_suffix(".json").write_text(json.dumps(m))
    return path


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


GOOD = bundled_path("digits", "onnx").read_bytes()
GARBAGE = bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))
BAD_FILES = [
    # (name, onnx bytes, sidecar changes (dict), or a str: the sidecar's text; None: no sidecar), message
    ("garbage bytes", GARBAGE, {"onnx_sha256": _sha(GARBAGE)}, "not a usable ONNX model"),
    ("truncated", GOOD[: len(GOOD) // 3], {"onnx_sha256": _sha(GOOD[: len(GOOD) // 3])}, "not a usable ONNX model"),
    ("truncated, old sidecar", GOOD[: len(GOOD) // 3], {}, "is not the model its metadata file m.json describes"),
    ("empty file", b"", {"onnx_sha256": _sha(b"")}, "not a usable ONNX model"),
    ("missing sidecar", GOOD, None, "its metadata file m.json is missing"),
    ("sidecar not JSON", GOOD, "{not json", "not a readable Scrawl ONNX metadata file"),
    ("sidecar of another format", GOOD, {"format": "scrawl-checkpoint"}, "not a Scrawl ONNX metadata file"),
    ("sidecar from a newer Scrawl", GOOD, {"format_version": 99}, "written by a newer Scrawl"),
    ("sidecar without classes", GOOD, {"classes": []}, "\"classes\" must be a list"),
    ("classes count mismatch", GOOD, {"classes": list("0123456789ABC")}, "gives 11 outputs but its metadata lists 13 classes"),
    ("bad frame spec", GOOD, {"frame": {"framing": "nope", "size": 28, "box": 20}}, "bad frame spec"),
    ("wrong input name", GOOD, {"input": {"name": "pixels"}}, "its metadata says 'pixels'"),
]


@pytest.mark.parametrize("name,data,meta,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_onnx_file_is_a_clear_error(name, data, meta, message, tmp_path, capsys):
    path = _pair(tmp_path, data=data, meta=meta, sidecar=meta is not None)
    with pytest.raises(CheckpointError) as err:
        Recognizer(path, runtime="onnx")
    text = str(err.value)
    assert message in text and ("m.onnx" in text or "m.json" in text), text  # what is wrong, and with which file
    assert main(["predict", "--runtime", "onnx", "--model", str(path), str(SAMPLES / "7-paper.webp")]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("scrawl: error: ") and message in stderr and len(stderr.strip().splitlines()) == 1


def test_bad_onnx_file_in_the_real_cli_and_serve(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "scrawl", *map(str, args)], capture_output=True, text=True, timeout=300)

    bad = _pair(tmp_path, data=GOOD[:1000])  # truncated; its sidecar describes the whole file
    for args in (("predict", "--runtime", "onnx", "--model", bad, SAMPLES / "7-paper.webp"),
                 ("serve", "--runtime", "onnx", "--model", bad, "--port", "1")):
        r = run(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert f"{bad} is not the model its metadata file" in r.stderr
    r = run("predict", "--runtime", "onnx", "--model", bundled_path("digits"), SAMPLES / "7-paper.webp")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "is a PyTorch checkpoint" in r.stderr and "scrawl export" in r.stderr


def test_wrong_runtime_for_the_file_says_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match="run `scrawl export"):
        Recognizer(bundled_path("digits"), runtime="onnx")
    with pytest.raises(CheckpointError, match="--runtime onnx"):
        Recognizer(bundled_path("digits", "onnx"))
    with pytest.raises(ScrawlError, match="unknown runtime"):
        Recognizer("digits", runtime="tensorflow")
    with pytest.raises(CheckpointError, match="no model"):
        Recognizer(tmp_path / "missing.onnx", runtime="onnx")


# ------------------------------------------------------------------------------- atomicity


def test_unwritable_output_leaves_nothing(tmp_path, capsys, monkeypatch):
    from scrawl.runtime import export

    blocker = tmp_path / "afile"
    blocker.write_text("a regular file, so nothing can be created below it (even as root)")
    assert main(["export", "digits", "--out", str(blocker / "sub" / "digits.onnx")]) == 2
    assert "cannot write" in capsys.readouterr().err  # found before exporting
    monkeypatch.setattr(export, "_check_writable", lambda out: None)  # and when writing, after the export
    with pytest.raises(ScrawlError, match="cannot write .*Not a directory"):
        export_onnx("digits", blocker / "sub" / "digits.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    with pytest.raises(ScrawlError, match="must end in .onnx"):
        export_onnx("digits", tmp_path / "digits.pt")


def test_failed_parity_check_or_rename_writes_nothing(tmp_path, monkeypatch):
    from scrawl.runtime import export

    out = tmp_path / "digits.onnx"
    real = export._onnx_logits
    monkeypatch.setattr(export, "_onnx_logits", lambda session, batch, output: real(session, batch, output) + 1e-3)
    with pytest.raises(ScrawlError, match="differ from PyTorch's by up to 0.001.*nothing written"):
        export_onnx("digits", out)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(export, "_onnx_logits", real)

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ScrawlError, match="No space left on device"):
        export_onnx("digits", out)
    assert list(tmp_path.iterdir()) == []  # the temp files are gone too
