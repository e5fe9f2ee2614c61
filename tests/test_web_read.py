"""POST /api/read with the line model (issue 13, item 5): the reading of a drawn number (its text, each
character's confidence and box, the line's alternatives), the options (top_k, charset, lexicon), a clear
4xx JSON error for every image it cannot read (blank, a line 20,000 px wide, a page of 500 lines, a 1x1
image, an image that is all ink) after which the server keeps serving, a digits charset that never
answers a letter, the limits published (API description and GET /api/limits) and /api/read in the
OpenAPI schema. /api/predict refuses the line model with a pointer to /api/read.

In-process (FastAPI's TestClient, lifespan included), and the bad inputs once more against a real
`scrawl serve` process. The drawn digits (`number_strokes`) are shared with test_browser_read.py.
"""

import http.client
import json
import math
import time

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from scrawl.web import create_app  # noqa: E402

PNG = {"content-type": "image/png"}
LETTERS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _arc(cx, cy, rx, ry, a0, a1, n=12):
    """Points on an ellipse from angle a0 to a1 (degrees, 0 = right, 90 = down: y points down)."""
    return [(cx + rx * math.cos(math.radians(a0 + (a1 - a0) * k / n)),
             cy + ry * math.sin(math.radians(a0 + (a1 - a0) * k / n))) for k in range(n + 1)]


# Digits as pen strokes in a unit box (x right, y down), written the way people write them.
DIGITS = {
    "0": [_arc(0.5, 0.5, 0.42, 0.5, -90, 270, 24)],
    "1": [[(0.25, 0.2), (0.55, 0.0), (0.55, 1.0)]],
    "2": [_arc(0.5, 0.3, 0.38, 0.3, 200, 380, 10) + [(0.1, 1.0), (0.95, 1.0)]],
    "3": [_arc(0.45, 0.26, 0.38, 0.26, 210, 450, 10) + _arc(0.45, 0.74, 0.42, 0.26, 270, 510, 10)[1:]],
    "4": [[(0.55, 0.0), (0.05, 0.65), (0.95, 0.65)], [(0.7, 0.3), (0.7, 1.0)]],
    "5": [[(0.85, 0.0), (0.2, 0.0), (0.15, 0.45)] + _arc(0.48, 0.7, 0.4, 0.3, 240, 500, 10)[1:]],
    "6": [[(0.8, 0.02), (0.45, 0.15)] + _arc(0.5, 0.7, 0.35, 0.3, 200, 560, 16)],
    "7": [[(0.05, 0.05), (0.95, 0.05), (0.4, 1.0)]],
    "8": [_arc(0.5, 0.25, 0.3, 0.25, 0, -360, 16) + _arc(0.5, 0.75, 0.38, 0.25, 270, 630, 16)[1:]],
    "9": [_arc(0.5, 0.28, 0.36, 0.28, 0, 360, 16) + [(0.84, 0.28), (0.78, 1.0)]],
}


def number_strokes(text: str, box, overlap: float = 0.0) -> list[list[tuple[float, float]]]:
    """Strokes for the digits of `text` written left to right, centred in box (x, y, w, h): each digit
    h high and at most 0.55 h wide, with a gap of 0.4 of a digit between them; with `overlap`, each
    digit's box overlaps its neighbour's by that fraction of its width instead (0.3: the ink touches)."""
    x, y, w, h = box
    step = 1 - overlap if overlap else 1.4  # from one digit's left edge to the next, in digit widths
    dw = min(0.55 * h, w / (step * (len(text) - 1) + 1))
    left = x + (w - dw * (step * (len(text) - 1) + 1)) / 2
    out = []
    for i, ch in enumerate(text):
        for stroke in DIGITS[ch]:
            out.append([(left + i * step * dw + px * dw, y + py * h) for px, py in stroke])
    return out


def png_bytes(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def canvas(strokes, size=(640, 320), width=13) -> bytes:
    """What the page sends in its "A number or word" mode: dark strokes on a transparent 640x320 canvas."""
    img = np.zeros((size[1], size[0], 4), np.uint8)
    for pts in strokes:
        cv2.polylines(img, [np.array(pts, np.int32)], False, (39, 24, 17, 255), width, cv2.LINE_AA)
    return png_bytes(img)


def number_canvas(text: str, overlap: float = 0.0) -> bytes:
    return canvas(number_strokes(text, (60, 70, 520, 170), overlap))


# ------------------------------------------------------------------------------ the bad images


def _long_line() -> np.ndarray:
    """A line of writing 20,000 px wide and 120 high: far wider than a line model reads in one piece."""
    img = np.full((120, 20_000), 255, np.uint8)
    xs = np.arange(20, 19_980, 4)
    ys = 60 + 35 * np.sin(xs / 23.0)
    cv2.polylines(img, [np.stack([xs, ys], 1).astype(np.int32)], False, 0, 5)
    return img


def _page_of_lines(n: int = 500) -> np.ndarray:
    img = np.full((n * 20 + 20, 300), 255, np.uint8)
    for i in range(n):
        cv2.line(img, (20, 20 + i * 20), (280, 20 + i * 20), 0, 6)
    return img


def _all_ink_canvas() -> np.ndarray:
    img = np.zeros((320, 640, 4), np.uint8)
    img[..., 3] = 255  # the pad painted over from edge to edge
    return img


BAD_IMAGES = [
    # (name, image, message fragments)
    ("blank canvas", np.zeros((320, 640, 4), np.uint8), ["nothing to read"]),
    ("blank paper", np.full((600, 800), 250, np.uint8), ["nothing to read"]),
    ("line 20,000 px wide", _long_line(), ["too long to read in one piece", "at most 4096"]),
    ("page of 500 lines", _page_of_lines(), ["too many lines: 500 found", "at most 100"]),
    ("1x1 image", np.zeros((1, 1), np.uint8), ["nothing to read"]),
    ("all ink, gray", np.zeros((200, 600), np.uint8), ["nothing to read"]),
    ("all ink, canvas", _all_ink_canvas(), ["nothing to read"]),
]


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app()) as c:
        models = {m["name"]: m for m in c.get("/api/models").json()}
        assert models.get("line", {}).get("kind") == "line", "the bundled line model is served by default"
        yield c


def read(client, body: bytes, query: str = "") -> dict:
    r = client.post("/api/read" + query, content=body, headers=PNG)
    assert r.status_code == 200, r.text
    return r.json()


def good(client) -> None:
    """A good request is answered: the server is still serving."""
    assert read(client, number_canvas("407"), "?charset=digits")["method"] == "line"


# ---------------------------------------------------------------------------------------- answers


def test_a_drawn_number_reads_with_characters_boxes_and_alternatives(client):
    d = read(client, number_canvas("407"))
    assert set(d) == {"model", "method", "size", "text", "lines"}
    assert (d["model"], d["method"], d["size"]) == ("line", "line", [640, 320])
    assert d["text"] == "407" and len(d["lines"]) == 1
    line = d["lines"][0]
    assert set(line) == {"text", "confidence", "uncertain", "box", "chars", "alternatives"}
    assert line["text"] == "407" and [c["char"] for c in line["chars"]] == list("407")
    x0, y0, x1, y1 = line["box"]
    assert 50 <= x0 < x1 <= 590 and 60 <= y0 < y1 <= 250  # the ink: drawn in (60, 70) to (580, 240)
    for c in line["chars"]:
        assert set(c) == {"char", "confidence", "box", "uncertain"}
        assert 0 < c["confidence"] <= 1 and c["uncertain"] == (c["confidence"] < 0.6)
        cx0, cy0, cx1, cy1 = c["box"]
        assert x0 - 2 <= cx0 < cx1 <= x1 + 2 and y0 - 2 <= cy0 < cy1 <= y1 + 2
    lefts = [c["box"][0] for c in line["chars"]]
    assert lefts == sorted(lefts)  # left to right, like the digits
    assert line["confidence"] == pytest.approx(min(c["confidence"] for c in line["chars"]), abs=1e-6)
    alts = line["alternatives"]
    assert 1 <= len(alts) <= 3 and alts[0]["text"] == "407"
    probs = [a["probability"] for a in alts]
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs) and sum(probs) <= 1.0001


def test_top_k_lexicon_and_every_way_to_send_options(client):
    body = number_canvas("2024")
    assert len(read(client, body, "?top_k=1")["lines"][0]["alternatives"]) == 1
    five = read(client, body, "?top_k=5")["lines"][0]["alternatives"]
    assert 1 <= len(five) <= 5
    # The word prior never changes a number, in the query string, a JSON body or a form field.
    plain = read(client, body)["text"]
    assert read(client, body, "?lexicon=true")["text"] == plain
    import base64

    url = "data:image/png;base64," + base64.b64encode(body).decode()
    r = client.post("/api/read", json={"image": url, "lexicon": True, "top_k": 2})
    assert r.status_code == 200 and r.json()["text"] == plain and len(r.json()["lines"][0]["alternatives"]) <= 2
    r = client.post("/api/read", files={"file": ("n.png", body, "image/png")}, data={"lexicon": "on"})
    assert r.status_code == 200 and r.json()["text"] == plain
    for query, message in (("?lexicon=maybe", "lexicon must be true or false"),
                           ("?model=digits&lexicon=true", "lexicon works with a line model"),
                           ("?top_k=0", "top_k must be from 1"), ("?model=nope", "unknown model 'nope'")):
        r = client.post("/api/read" + query, content=body, headers=PNG)
        assert r.status_code == 422 and message in r.json()["error"], (query, r.text)


def test_the_old_segmenter_answers_in_the_same_shape(client):
    d = read(client, number_canvas("407"), "?model=digits")
    assert (d["model"], d["method"], d["text"]) == ("digits", "segmenter", "407")
    line = d["lines"][0]
    assert {"text", "confidence", "uncertain", "box", "chars", "alternatives"} == set(line)
    assert all({"char", "confidence", "box", "uncertain", "top_k", "framed", "rejected", "not_a_character"} == set(c)
               for c in line["chars"])
    # three clear digits: none is rejected, and "not a character" takes next to nothing (test_reject: junk)
    assert not any(c["rejected"] for c in line["chars"]) and all(c["not_a_character"] < 0.05 for c in line["chars"])


def test_predict_refuses_the_line_model_and_points_to_read(client):
    r = client.post("/api/predict?model=line", content=number_canvas("7"), headers=PNG)
    assert r.status_code == 422 and "POST /api/read" in r.json()["error"]
    r = client.post("/api/predict", content=number_canvas("7"), headers=PNG)  # the default: a character model
    assert r.status_code == 200 and r.json()["model"] == "digits"


# ------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("name, image, fragments", BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_an_image_it_cannot_read_is_a_clear_4xx(client, name, image, fragments):
    for query in ("", "?lexicon=true&top_k=5"):
        t = time.perf_counter()
        r = client.post("/api/read" + query, content=png_bytes(image), headers=PNG)
        assert r.status_code == 422, (name, r.text)
        assert r.headers["content-type"] == "application/json"
        error = r.json()["error"]
        assert all(f in error for f in fragments), (name, error)
        assert "Traceback" not in error and time.perf_counter() - t < 10
        assert r.json().get("empty", False) == error.startswith("nothing to read")
    good(client)  # and the next good request is answered


def test_the_line_model_offers_digits_and_number(client):
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert models["line"]["charsets"] == ["digits", "number", "upper", "lower", "letters"]
    d = read(client, number_canvas("2947", overlap=0.3), "?charset=number&top_k=3")
    assert set(d["text"]) <= set("0123456789 .,'-/:()+%#")


def test_charset_digits_never_answers_a_letter(client):
    word = np.zeros((320, 640, 4), np.uint8)
    cv2.putText(word, "hello", (40, 220), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 5, (17, 24, 39, 255), 12, cv2.LINE_AA)
    for body in (png_bytes(word), number_canvas("407"), number_canvas("2947", overlap=0.3)):
        for query in ("?charset=digits&top_k=5", "?charset=digits&top_k=5&lexicon=true", "?model=chars&charset=digits"):
            r = client.post("/api/read" + query, content=body, headers=PNG)
            if r.status_code == 422:  # nothing legible as digits: an answer too, and no letter in it
                assert r.json()["error"].startswith("nothing"), r.text
                continue
            assert r.status_code == 200, r.text
            d = r.json()
            texts = [d["text"]] + [a["text"] for line in d["lines"] for a in line["alternatives"]]
            texts += [c["char"] for line in d["lines"] for c in line["chars"]]
            assert not LETTERS & set("".join(texts)), (query, texts)
            if "model=chars" not in query:  # the line model: digits and spaces, no mark either
                assert set("".join(texts)) <= set("0123456789 \n"), (query, texts)
    r = client.post("/api/read?charset=upper", content=png_bytes(word), headers=PNG)
    assert r.status_code in (200, 422) and not set("0123456789") & set(r.json().get("text", ""))


# ------------------------------------------------------------------------------- schema and limits


def test_openapi_documents_read_and_the_limits_are_published(client):
    from scrawl.vision.framing import MAX_LINE_WIDTH
    from scrawl.vision.ink import MAX_PIXELS
    from scrawl.vision.lines import MAX_LINES

    schema = client.get("/openapi.json").json()
    op = schema["paths"]["/api/read"]["post"]
    assert {"top_k", "model", "charset", "lexicon"} == {p["name"] for p in op["parameters"]}
    assert {"200", "413", "422", "503"} <= set(op["responses"])
    shapes = schema["components"]["schemas"]
    assert {"text", "lines", "model", "method", "size"} <= set(shapes["ReadResult"]["properties"])
    assert {"text", "confidence", "uncertain", "box", "chars", "alternatives"} == set(shapes["ReadLine"]["properties"])
    assert {"char", "confidence", "box", "uncertain"} <= set(shapes["ReadCharacter"]["properties"])
    limits = client.get("/api/limits").json()
    assert (limits["max_lines"], limits["max_line_width"], limits["max_pixels"]) == (MAX_LINES, MAX_LINE_WIDTH, MAX_PIXELS)
    assert "/api/limits" in schema["paths"]
    for key in ("max_lines", "max_line_width", "max_body_bytes", "request_timeout_s"):
        assert key in schema["info"]["description"], key
    with TestClient(create_app(["digits"], max_body_bytes=5000, max_queue=3, workers=2)) as c:
        small = c.get("/api/limits").json()
        assert (small["max_body_bytes"], small["max_queue"], small["workers"]) == (5000, 3, 2)


def test_models_and_the_word_prior_are_loaded_once(monkeypatch):
    from scrawl.runtime import recognizer as inference

    loads = []

    class Counting(inference.Recognizer):
        def __init__(self, model=None, **kwargs):
            loads.append(model)
            super().__init__(model, **kwargs)

    monkeypatch.setattr(inference, "Recognizer", Counting)
    with TestClient(create_app(["digits", "line"])) as c:
        lexicon = c.app.state.service.lexicon
        assert lexicon is not None
        for query in ("", "?lexicon=true", "?model=digits"):
            assert c.post("/api/read" + query, content=number_canvas("407"), headers=PNG).status_code == 200
        assert c.app.state.service.lexicon is lexicon
    assert loads == ["digits", "line"]  # at startup, never per request


# ----------------------------------------------------------------------- against a real server


@pytest.fixture(scope="module")
def live():
    from conftest import live_server

    with live_server("--quiet") as port:
        yield port


def _post_read(port: int, body: bytes) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/api/read", body=body, headers={"Content-Type": "image/png"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def test_a_real_server_answers_every_bad_image_and_keeps_serving(live):
    for name, image, fragments in BAD_IMAGES:
        status, body = _post_read(live, png_bytes(image))
        assert status == 422 and all(f in body["error"] for f in fragments), (name, body)
    status, body = _post_read(live, number_canvas("407"))
    assert status == 200 and body["model"] == "line" and body["lines"], body
