"""The REST API: answers, honest "nothing to read" / "uncertain", and a 4xx JSON error for every bad input.

Most tests use FastAPI's in-process TestClient (the app's lifespan runs, so the models load as in
production); the body-size guard and "the server keeps serving" are also checked against a real
`scrawl serve` process over raw HTTP, where Content-Length and chunked bodies are what a client sends.
"""

import base64
import http.client
import io
import json
import logging
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from scrawl.labels import NOT_A_CHARACTER

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from scrawl.web import create_app  # noqa: E402

# ------------------------------------------------------------------------------------------ images


def png_bytes(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def canvas(strokes, size=(280, 280), width=18) -> bytes:
    """What the page sends: dark strokes on a transparent canvas, as PNG (RGBA)."""
    img = np.zeros((size[1], size[0], 4), np.uint8)
    for pts in strokes:
        cv2.polylines(img, [np.array(pts, np.int32)], False, (39, 24, 17, 255), width, cv2.LINE_AA)
    return png_bytes(img)


SEVEN = [[(70, 60), (210, 60), (120, 230)]]
ONE = [[(140, 40), (140, 240)]]


def _shift(strokes, dx, dy=0):
    return [[(x + dx, y + dy) for x, y in s] for s in strokes]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG file whose header declares width x height pixels (8-bit gray)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def data_url(data: bytes, media="image/png") -> str:
    return f"data:{media};base64," + base64.b64encode(data).decode()


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app()) as c:
        yield c


def good(client) -> dict:
    r = client.post("/api/predict", content=canvas(SEVEN), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "7"
    return r.json()


# ---------------------------------------------------------------------------------------- answers


def test_predict_raw_png_canvas(client):
    d = good(client)
    assert set(d) >= {"label", "confidence", "uncertain", "top_k", "framed", "empty", "message", "model",
                      "not_a_character", "rejected"}
    assert d["uncertain"] is False and d["empty"] is False and d["model"] == "digits"
    # a clear digit: the bundled model's "not a character" class takes next to nothing (test_reject: junk)
    assert d["rejected"] is False and 0.0 <= d["not_a_character"] < 0.05
    assert len(d["top_k"]) == 3 and d["top_k"][0] == {"label": "7", "probability": d["confidence"]}
    assert d["confidence"] > 0.8 and sum(a["probability"] for a in d["top_k"]) <= 1.0001
    framed = Image.open(io.BytesIO(base64.b64decode(d["framed"].split(",", 1)[1])))
    assert framed.size == (28, 28) and framed.mode == "L"
    a = np.asarray(framed)
    assert a[0, 0] == 0 and a.max() > 200  # as the model saw it: light ink on black


def test_predict_multipart_json_and_options(client):
    data = canvas(SEVEN)
    r = client.post("/api/predict?top_k=5", files={"file": ("seven.png", data, "image/png")})
    assert r.status_code == 200 and r.json()["label"] == "7" and len(r.json()["top_k"]) == 5
    r = client.post("/api/predict", json={"image": data_url(data), "top_k": 1, "model": "digits"})
    assert r.status_code == 200 and r.json()["label"] == "7" and len(r.json()["top_k"]) == 1
    r = client.post("/api/predict", files={"file": ("seven.png", data, "image/png")}, data={"top_k": "2"})
    assert len(r.json()["top_k"]) == 2


def test_off_centre_small_and_inverted_drawings_are_read(client):
    # The faults of naive demos: a small digit in a corner, white-on-black, and a transparent canvas.
    small = np.zeros((280, 280, 4), np.uint8)
    cv2.polylines(small, [np.array([(200, 200), (250, 200), (215, 265)], np.int32)], False, (0, 0, 0, 255), 6, cv2.LINE_AA)
    white_on_black = np.zeros((280, 280), np.uint8)
    cv2.polylines(white_on_black, [np.array(SEVEN[0], np.int32)], False, 255, 18, cv2.LINE_AA)
    for img in (small, white_on_black, 255 - white_on_black):
        r = client.post("/api/predict", content=png_bytes(img), headers={"content-type": "image/png"})
        assert r.status_code == 200 and r.json()["label"] == "7", r.json()


def test_empty_and_nearly_empty_canvas_is_nothing_to_read(client):
    speck = np.zeros((280, 280, 4), np.uint8)
    speck[100:102, 100:102, 3] = 255
    for img in (np.zeros((280, 280, 4), np.uint8), speck, np.full((280, 280), 255, np.uint8)):
        r = client.post("/api/predict", content=png_bytes(img), headers={"content-type": "image/png"})
        assert r.status_code == 200
        d = r.json()
        assert d["empty"] is True and d["label"] is None and d["top_k"] == [] and d["framed"] is None
        assert d["rejected"] is False and d["not_a_character"] == 0.0  # the same fields as an answer
        assert d["message"].startswith("nothing to read")
        # /api/read: a 422 that says so (the line model by default, and the segmenter), flagged "empty"
        for query in ("", "?model=digits"):
            r = client.post("/api/read" + query, content=png_bytes(img), headers={"content-type": "image/png"})
            assert r.status_code == 422 and r.json()["empty"] is True, r.text
            assert r.json()["error"].startswith("nothing to read"), r.text


def test_low_confidence_is_flagged_uncertain():
    # The threshold is a setting: at 0.999 even a clear 7 (~0.95 with label smoothing) is uncertain.
    with TestClient(create_app(uncertain_below=0.999)) as c:
        d = c.post("/api/predict", content=canvas(SEVEN), headers={"content-type": "image/png"}).json()
        assert d["label"] == "7" and d["uncertain"] is True and len(d["top_k"]) == 3
        d = c.post("/api/read?model=digits", content=canvas(SEVEN), headers={"content-type": "image/png"}).json()
        assert d["text"] == "7" and d["lines"][0]["chars"][0]["uncertain"] is True and d["lines"][0]["uncertain"]


def test_read_a_number_on_two_lines_with_the_segmenter(client):
    # A character model on /api/read: the old segmenter, in the same shape as a line model's reading.
    strokes = (_shift(SEVEN, -40, -20) + _shift(ONE, 140, -20)  # line 1: "71"
               + _shift(ONE, -100, 260) + _shift(SEVEN, 140, 260))  # line 2: "17"
    img = canvas([[(x + 60, y) for x, y in s] for s in strokes], size=(560, 560), width=16)
    r = client.post("/api/read?model=digits", content=img, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["text"] == "71\n17" and len(d["lines"]) == 2 and d["size"] == [560, 560]
    assert (d["model"], d["method"]) == ("digits", "segmenter")
    assert [line["text"] for line in d["lines"]] == ["71", "17"]
    x0, y0, x1, y1 = d["lines"][0]["chars"][1]["box"]  # the first line's '1': drawn at x = 140 + 140 + 60
    assert abs((x0 + x1) / 2 - 340) <= 3 and 10 <= y0 <= 25 and 200 <= y1 - y0 <= 225
    for line in d["lines"]:
        assert line["alternatives"][0]["text"] == line["text"] and len(line["alternatives"]) == 3
        assert line["confidence"] == min(c["confidence"] for c in line["chars"])
        for c in line["chars"]:
            assert c["framed"].startswith("data:image/png;base64,") and len(c["top_k"]) == 3


def test_models_and_health(client):
    # By default every installed bundled model is served, the digit model first and by default.
    models = client.get("/api/models").json()
    first = {k: models[0].get(k) for k in ("name", "default", "classes", "charsets")}
    # charsets: only those that change the answers; for a digit model every set is all of its classes
    # the model's classes: the digits and, since issue 15, "not a character"
    assert first == {"name": "digits", "default": True, "classes": [*"0123456789", NOT_A_CHARACTER], "charsets": []}
    assert "digits" in models[0]["description"]
    # One default per kind: the character model /api/predict uses, the line model /api/read uses.
    for kind in {m["kind"] for m in models}:
        assert [m["default"] for m in models if m["kind"] == kind].count(True) == 1, kind
    assert {m["kind"] for m in models} <= {"character", "line"}
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["models"] == [m["name"] for m in models]
    with TestClient(create_app(["digits"])) as c:
        assert [m["name"] for m in c.get("/api/models").json()] == ["digits"]


def test_two_models_and_the_model_is_loaded_once(tmp_path, monkeypatch):
    import shutil

    from scrawl.runtime import recognizer as inference
    from scrawl.runtime.recognizer import bundled_path

    loads = []

    class Counting(inference.Recognizer):
        def __init__(self, model=None, **kwargs):
            loads.append(model)
            super().__init__(model, **kwargs)

    monkeypatch.setattr(inference, "Recognizer", Counting)
    other = tmp_path / "digits-v2.pt"
    shutil.copy(bundled_path("digits"), other)
    with TestClient(create_app(["digits", str(other)])) as c:
        names = [(m["name"], m["default"]) for m in c.get("/api/models").json()]
        assert names == [("digits", True), ("digits-v2", False)]
        for model in ("digits", "digits-v2", "digits-v2", None):
            q = f"?model={model}" if model else ""
            r = c.post("/api/predict" + q, content=canvas(SEVEN), headers={"content-type": "image/png"})
            assert r.status_code == 200 and r.json()["model"] == (model or "digits")
    assert loads == ["digits", str(other)]  # once each, at startup: never per request


def test_page_static_files_and_security_headers(client):
    r = client.get("/")
    assert r.status_code == 200 and "<canvas" in r.text and "/static/app.js" in r.text
    assert "<script>" not in r.text and " style=" not in r.text  # no inline code for the CSP to allow
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    for path in ("/static/app.js", "/static/answers.js", "/static/style.css", "/docs", "/openapi.json",
                 "/docs-assets/swagger-ui-bundle.js", "/api/limits"):
        assert client.get(path).status_code == 200, path
    assert "cdn" not in client.get("/docs").text.lower()  # the docs work offline
    schema = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/read", "/api/models", "/api/limits", "/api/health"} <= set(schema["paths"])


def test_served_model_has_batch_norm_folded_and_the_same_answers(client):
    import torch

    from scrawl import Recognizer
    from scrawl.models.fold import fold_batchnorm

    rec = Recognizer()
    fast = fold_batchnorm(rec.model, 28)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in rec.model.modules())  # the original is untouched
    x = torch.rand(16, 1, 28, 28)
    with torch.inference_mode():
        assert torch.allclose(torch.softmax(fast(x), 1), torch.softmax(rec.model(x), 1), atol=1e-5)
    served = client.app.state.service.models["digits"].model  # what the app answers with
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in served.modules())


def test_openapi_lists_every_option_the_api_accepts(client):
    # Query string, JSON object and form fields: each accepts top_k, model and charset (inputs.OPTIONS),
    # and /api/read also lexicon; the schema says so for both endpoints, with the defaults from scrawl.settings.
    from scrawl import settings
    from scrawl.labels import CHARSETS
    from scrawl.web.inputs import OPTIONS, PREDICT_OPTIONS

    assert set(PREDICT_OPTIONS) == {"top_k", "model", "charset"} and set(OPTIONS) == {*PREDICT_OPTIONS, "lexicon"}
    paths = client.get("/openapi.json").json()["paths"]
    for path, options in (("/api/predict", PREDICT_OPTIONS), ("/api/read", OPTIONS)):
        op = paths[path]["post"]
        assert {p["name"] for p in op["parameters"] if p["in"] == "query"} == set(options), path
        content = op["requestBody"]["content"]
        assert {"image/png", "image/jpeg", "image/webp", "application/json", "multipart/form-data"} <= set(content)
        body = content["application/json"]["schema"]
        assert set(body["properties"]) == {"image", *options} and body["required"] == ["image"], path
        form = content["multipart/form-data"]["schema"]
        assert set(form["properties"]) == {"file", *options} and form["required"] == ["file"], path
        for props in (body["properties"], form["properties"]):
            assert props["top_k"]["maximum"] == settings.MAX_TOP_K and props["top_k"]["default"] == settings.TOP_K
            assert set(CHARSETS) <= set(props["charset"]["enum"]) and "all" in props["charset"]["enum"]
    schema = client.get("/openapi.json").json()
    assert f"confidence of {settings.UNCERTAIN_BELOW:g}" in schema["info"]["description"]


def test_defaults_come_from_settings():
    import inspect

    from scrawl import settings
    from scrawl.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.max_body_mb, args.max_queue, args.request_timeout) == (
        settings.SERVE_HOST, settings.SERVE_PORT, settings.MAX_BODY_MB, settings.MAX_QUEUE, settings.REQUEST_TIMEOUT)
    defaults = {k: v.default for k, v in inspect.signature(create_app).parameters.items()}
    assert defaults["max_body_bytes"] == int(settings.MAX_BODY_MB * 2**20)
    assert (defaults["uncertain_below"], defaults["max_queue"], defaults["request_timeout"]) == (
        settings.UNCERTAIN_BELOW, settings.MAX_QUEUE, settings.REQUEST_TIMEOUT)


def test_unknown_model_path_cannot_be_named(tmp_path):
    from scrawl.errors import ScrawlError

    with pytest.raises(ScrawlError, match="no model"):
        create_app([str(tmp_path / "missing.pt")])


def test_serve_command_refuses_bad_arguments(capsys):
    from scrawl.cli import main

    assert main(["serve", "--model", "no-such-model"]) == 2
    assert "no model 'no-such-model'" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err
    assert main(["serve", "--max-body-mb", "0"]) == 2
    assert "--max-body-mb must be positive" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ bad inputs

TRUNCATED = canvas(SEVEN)[:300]
BAD_REQUESTS = [
    # (name, endpoint, request kwargs, status, message fragment)
    ("empty body", "predict", {"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty request body"),
    ("not an image", "predict", {"content": b"hello, world", "headers": {"content-type": "image/png"}}, 422,
     "not an image"),
    ("truncated PNG", "predict", {"content": TRUNCATED, "headers": {"content-type": "image/png"}}, 422,
     "truncated or corrupt"),
    ("zero width", "predict", {"content": png_declaring(0, 40), "headers": {"content-type": "image/png"}}, 422,
     "zero width or height"),
    ("decompression bomb", "read", {"content": png_declaring(50_000, 50_000), "headers": {"content-type": "image/png"}},
     422, "image too large"),
    ("invalid JSON", "predict", {"content": b'{"image": ', "headers": {"content-type": "application/json"}}, 400,
     "invalid JSON body"),
    ("JSON not an object", "predict", {"json": ["data:image/png;base64,AAAA"]}, 400, "must be an object"),
    ("JSON without image", "predict", {"json": {"picture": "x"}}, 400, 'needs "image"'),
    ("JSON image not a string", "predict", {"json": {"image": 42}}, 400, "(got int)"),
    ("data URL without data:", "predict", {"json": {"image": "iVBORw0KGgo="}}, 400, "must start with 'data:image/"),
    ("data URL not an image type", "predict", {"json": {"image": "data:text/plain;base64,aGk="}}, 400,
     "not an image/* type"),
    ("data URL not base64", "predict", {"json": {"image": "data:image/png,hello"}}, 400, "must be base64"),
    ("data URL bad base64", "predict", {"json": {"image": "data:image/png;base64,@@@notbase64"}}, 400,
     "invalid base64"),
    ("data URL without comma", "predict", {"json": {"image": "data:image/png;base64"}}, 400, "no ','"),
    ("data URL of garbage", "read", {"json": {"image": data_url(b"not a picture at all")}}, 422, "not an image"),
    ("multipart without file", "predict", {"data": {"top_k": "3"}, "files": {"other": ("a.png", b"x", "image/png")}},
     400, "no file in the field 'file'"),
    ("empty upload", "predict", {"files": {"file": ("a.png", b"", "image/png")}}, 400, "is empty (0 bytes)"),
    ("unsupported content type", "predict", {"content": b"abc", "headers": {"content-type": "text/plain"}}, 415,
     "unsupported Content-Type 'text/plain'"),
    ("no content type", "read", {"content": b"abc"}, 415, "unsupported Content-Type 'none'"),
    ("top_k not a number", "predict?top_k=three", {"content": canvas(SEVEN), "headers": {"content-type": "image/png"}},
     422, "top_k must be a whole number"),
    ("top_k zero", "predict?top_k=0", {"content": canvas(SEVEN), "headers": {"content-type": "image/png"}}, 422,
     "top_k must be from 1 to 100"),
    ("unknown model", "predict?model=letters", {"content": canvas(SEVEN), "headers": {"content-type": "image/png"}},
     422, "unknown model 'letters': this server has "),
    ("model as a path", "read", {"json": {"image": data_url(canvas(SEVEN)), "model": "/etc/passwd"}}, 422,
     "unknown model '/etc/passwd'"),
]


@pytest.mark.parametrize("name,endpoint,kwargs,status,message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_input_is_a_clear_4xx(client, name, endpoint, kwargs, status, message):
    r = client.post(f"/api/{endpoint}", **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert message in r.json()["error"], r.json()
    good(client)  # and the next good request is answered


def test_body_over_the_limit_is_413_before_decoding():
    with TestClient(create_app(max_body_bytes=1000)) as c:
        r = c.post("/api/predict", content=canvas(SEVEN), headers={"content-type": "image/png"})
        assert r.status_code == 413 and "request body too large" in r.json()["error"]
        assert "limit is 1,000 bytes" in r.json()["error"]
        r = c.post("/api/predict", files={"file": ("big.png", canvas(SEVEN), "image/png")})
        assert r.status_code == 413
        # A body sent without Content-Length (a generator: chunked) is counted while it is read.
        r = c.post("/api/predict", content=iter([b"\x89PNG" + b"\0" * 600, b"\0" * 600]),
                   headers={"content-type": "image/png"})
        assert r.status_code == 413 and "more than" in r.json()["error"]


def test_too_many_characters_is_422():
    grid = np.full((400, 800), 255, np.uint8)
    for i in range(30):
        for j in range(12):
            cv2.circle(grid, (15 + i * 26, 15 + j * 32), 8, 0, 3)
    with TestClient(create_app(max_characters=50)) as c:
        r = c.post("/api/read?model=digits", content=png_bytes(grid), headers={"content-type": "image/png"})
        assert r.status_code == 422 and "too many characters: found 360" in r.json()["error"]
        good(c)


def test_wrong_method_and_unknown_path(client):
    r = client.get("/api/predict")
    assert r.status_code == 405 and "GET is not allowed" in r.json()["error"]
    r = client.get("/api/nothing-here")
    assert r.status_code == 404 and "/api/nothing-here" in r.json()["error"]


# ----------------------------------------------------------------------- against a real server


@pytest.fixture(scope="module")
def live():
    from conftest import live_server

    with live_server("--max-body-mb", "1") as port:
        yield port


def _post(port, body, headers, chunks=None):
    """POST /api/predict over a raw connection: with Content-Length, or chunked when `chunks` is given.
    The server may answer and close before the whole body is sent (a 413): the answer is still read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", "/api/predict")
        for k, v in headers.items():
            conn.putheader(k, v)
        if chunks is None:
            conn.putheader("Content-Length", str(len(body)))
            pieces = [body[i: i + 65536] for i in range(0, len(body), 65536)]
        else:
            conn.putheader("Transfer-Encoding", "chunked")
            pieces = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks] + [b"0\r\n\r\n"]
        conn.endheaders()
        try:
            for piece in pieces:
                conn.send(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def test_real_server_survives_every_bad_input(live):
    port = live
    png = {"Content-Type": "image/png"}
    status, body = _post(port, b"\0" * (2 * 2**20), png)  # 2 MiB, declared in Content-Length
    assert status == 413 and "Content-Length 2,097,152" in body["error"]
    status, body = _post(port, None, png, chunks=[b"\0" * 65536] * 40)  # 2.5 MiB, no length: counted
    assert status == 413 and "more than" in body["error"]
    for name, endpoint, kwargs, want, message in BAD_REQUESTS:
        if endpoint != "predict" or "content" not in kwargs:
            continue
        status, body = _post(port, kwargs["content"], kwargs.get("headers", {}))
        assert status == want and message in body["error"], (name, body)
    status, body = _post(port, png_declaring(50_000, 50_000), png)
    assert status == 422 and "decompression bomb" in body["error"]
    status, body = _post(port, canvas(SEVEN), png)  # still serving
    assert status == 200 and body["label"] == "7"


def test_charset_option_restricts_answers(client):
    data = canvas(SEVEN)
    r = client.post("/api/predict?charset=digits&top_k=10", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200 and all(a["label"] in "0123456789" for a in r.json()["top_k"])
    r = client.post("/api/predict", json={"image": data_url(data), "charset": "klingon"})
    assert r.status_code == 422 and "unknown charset 'klingon'" in r.json()["error"]
    r = client.post("/api/predict?charset=upper&model=digits", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 422 and "knows none" in r.json()["error"]
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert models["digits"]["charsets"] == []  # none changes a digit model's answers (still accepted)
    if "chars" in models:  # the character model answers within whatever set is asked for
        for charset, allowed in (("upper", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"), ("digits", "0123456789")):
            r = client.post(f"/api/read?model=chars&charset={charset}&top_k=5", content=canvas([*SEVEN, *_shift(ONE, 300)], size=(600, 280)),
                            headers={"content-type": "image/png"})
            assert r.status_code == 200, r.text
            chars = [c for line in r.json()["lines"] for c in line["chars"]]
            assert chars and all(a["label"] in allowed for c in chars for a in c["top_k"])
    good(client)


def _start(*args) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "scrawl", "serve", "--port", str(port), "--model", "digits", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"scrawl serve did not start: {proc.stdout.read()}")
            time.sleep(0.1)


def _timed_read(port: int, body: bytes) -> tuple[int, float, str | None, dict]:
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/api/read", body=body, headers={"Content-Type": "image/png"})
        r = conn.getresponse()
        return r.status, time.perf_counter() - t, r.getheader("Retry-After"), json.loads(r.read())
    finally:
        conn.close()


def test_overload_is_refused_fast_with_retry_after():
    # No queue: only as many recognitions as workers (one per core). A burst of slow `read`s of a big
    # page: the ones that can't start at once get 503 + Retry-After at once, instead of waiting.
    from concurrent.futures import ThreadPoolExecutor

    proc, port = _start("--max-queue", "0")
    try:
        rng = np.random.default_rng(0)
        page = np.full((1400, 2000), 235, np.uint8)
        for i in range(60):  # many strokes: a slow page to read
            x, y = int(rng.integers(40, 1900)), int(rng.integers(40, 1300))
            cv2.line(page, (x, y), (x + 40, y + 60), 20, 6)
        body = png_bytes(page)
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda _: _timed_read(port, body), range(16)))
        ok = [r for r in results if r[0] == 200]
        busy = [r for r in results if r[0] == 503]
        assert ok and busy, [r[0] for r in results]
        assert all(r[2] == "1" and "busy" in r[3]["error"] for r in busy)
        assert max(r[1] for r in busy) < min(r[1] for r in ok)  # refused before any read could finish
        status, body = _post(port, canvas(SEVEN), {"Content-Type": "image/png"})  # and it recovers
        assert status == 200 and body["label"] == "7"
    finally:
        proc.terminate()
        proc.wait(10)


def test_slow_recognition_times_out_with_503():
    proc, port = _start("--request-timeout", "0.05")
    try:
        page = np.full((2400, 3200), 235, np.uint8)
        cv2.putText(page, "12345", (200, 1500), cv2.FONT_HERSHEY_SIMPLEX, 30, 20, 60)
        status, seconds, retry, body = _timed_read(port, png_bytes(page))
        assert status == 503 and retry == "5" and "longer than 0.05 s" in body["error"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_large_multipart_upload_stays_in_memory(client, monkeypatch):
    import tempfile

    made = []
    real = tempfile.SpooledTemporaryFile

    class Spy(real):
        def rollover(self):  # called when a spooled upload would move to a file on disk
            made.append(self)
            return super().rollover()

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", Spy)
    import starlette.formparsers

    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", Spy, raising=False)
    big = np.random.default_rng(0).integers(0, 255, (1500, 1500), np.uint8)  # ~2.2 MB PNG: above Starlette's 1 MiB spool
    data = png_bytes(big)
    assert len(data) > 2**20
    r = client.post("/api/predict", files={"file": ("noise.png", data, "image/png")})
    assert r.status_code in (200, 422)
    assert made == []


def test_safe_defaults_no_cors_and_loopback_only(client):
    from scrawl.cli import build_parser

    r = client.post("/api/predict", content=canvas(SEVEN), headers={"content-type": "image/png",
                                                                   "origin": "https://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    r = client.options("/api/predict", headers={"origin": "https://evil.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in r.headers
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    csp = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


# ------------------------------------------------------------------------ HEAD and the access log

PAGES = ("/", "/static/app.js", "/static/style.css", "/static/favicon.svg", "/docs", "/docs-assets/swagger-ui-bundle.js")


def _asgi_call(app, method: str, path: str) -> tuple[int, dict, bytes]:
    """One request straight through the ASGI app (no HTTP client or server to drop a HEAD's body):
    the status, the headers and every body byte the app itself sent."""
    import asyncio

    messages = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in messages if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


def test_head_on_the_page_static_files_and_docs_is_a_get_without_body(client):
    for path in PAGES:
        get = client.get(path)
        status, headers, body = _asgi_call(client.app, "HEAD", path)
        assert (status, body) == (200, b""), (path, status, body[:80])
        assert get.status_code == 200 and int(headers["content-length"]) == len(get.content) > 0, path
        for name in ("content-type", "content-security-policy", "x-content-type-options"):
            assert headers[name] == get.headers[name], (path, name)
        r = client.head(path)  # and through an HTTP client
        assert r.status_code == 200 and r.headers["content-length"] == str(len(get.content)), path


def test_every_request_gets_an_access_log_line(client, caplog):
    import re

    caplog.set_level(logging.INFO, logger="scrawl.web.access")
    client.get("/api/health")
    client.head("/")
    client.post("/api/predict?charset=digits", content=canvas(SEVEN), headers={"content-type": "image/png"})
    client.post("/api/predict", content=b"not an image", headers={"content-type": "image/png"})
    client.get("/api/nothing-here")
    client.post("/api/predict", content=b"\0" * 100, headers={"content-type": "image/png", "content-length": "-1"})
    lines = [r.getMessage() for r in caplog.records if r.name == "scrawl.web.access"]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "scrawl.web.access")
    want = [("GET", "/api/health", 200), ("HEAD", "/", 200), ("POST", "/api/predict?charset=digits", 200),
            ("POST", "/api/predict", 422), ("GET", "/api/nothing-here", 404), ("POST", "/api/predict", 400)]
    assert len(lines) == len(want), lines
    for line, (method, path, status) in zip(lines, want):
        m = re.fullmatch(r'(\S+) "(\S+) (\S+)" (\d{3}) (\d+\.\d) ms', line)
        assert m and m.group(2, 3, 4) == (method, path, str(status)), line
        assert float(m.group(5)) < 60_000


def test_access_log_line_is_one_printable_line(caplog):
    from scrawl.web.guard import _target

    assert _target({"raw_path": b"/a\nb\x1b[31m", "query_string": b"x=\r\n1"}) == "/a\\x0ab\\x1b[31m?x=\\x0d\\x0a1"
    assert len(_target({"path": "/" + "a" * 5000, "query_string": b""})) < 600


def _serve_and_stop(*args) -> tuple[list[tuple], list[str], str]:
    """Start `scrawl serve` on a free port, send a round of good and bad requests, stop it: the answer
    to each request, the access lines it wrote on stderr, and all of its stderr."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "scrawl", "serve", "--port", str(port), "--model", "digits",
                             "--max-body-mb", "1", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # ready: no request is sent before it answers a connection
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"scrawl serve did not start: {proc.communicate(timeout=5)}")
                time.sleep(0.1)
        statuses = []
        for method, path in (("GET", "/api/health"), ("HEAD", "/"), ("HEAD", "/static/app.js"), ("GET", "/nope"),
                             ("DELETE", "/api/predict")):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, path)
            r = conn.getresponse()
            statuses.append((method, path, r.status, len(r.read())))
            conn.close()
        statuses.append(("POST", "/api/predict", *_post(port, b"\0" * (2 * 2**20), {"Content-Type": "image/png"})))
        statuses.append(("POST", "/api/predict", *_post(port, b"junk", {"Content-Type": "image/png"})))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # not HTTP at all
            raw.sendall(b"\x16\x03\x01 garbage\r\n\r\n")
            raw.recv(1000)
        statuses.append(("POST", "/api/predict", *_post(port, canvas(SEVEN), {"Content-Type": "image/png"})))
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert "Scrawl is starting" in out
    return statuses, [line for line in err.splitlines() if '" ' in line and line.endswith(" ms")], err


def test_serve_logs_each_request_on_stderr_and_keeps_serving():
    import re

    statuses, lines, _ = _serve_and_stop()
    assert [s[2] for s in statuses] == [200, 200, 200, 404, 405, 413, 422, 200], statuses
    assert statuses[1][3] == statuses[2][3] == 0  # HEAD: no body
    assert statuses[-1][3]["label"] == "7"  # still serving after the bad requests
    assert len(lines) == len(statuses), lines
    for line, (method, path, status, _) in zip(lines, statuses):
        m = re.fullmatch(r'127\.0\.0\.1 "(\S+) (\S+)" (\d{3}) (\d+\.\d) ms', line)
        assert m and m.group(1, 2, 3) == (method, path, str(status)), line


def test_serve_quiet_logs_no_requests():
    statuses, lines, err = _serve_and_stop("--quiet")
    assert statuses[-1][2] == 200 and lines == [] and "/api/health" not in err
