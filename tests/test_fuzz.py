"""Property-based fuzzing (hypothesis): hostile bytes and hostile HTTP requests.

- Image decoding: `load_image` and `frame` on random bytes and on mutated real PNG/JPEG files raise
  nothing but `ImageError` (EmptyImageError is one) -- never a bare PIL/OpenCV/numpy exception.
- The HTTP API (in-process, FastAPI's TestClient): random bodies, content types and query strings to
  POST /api/predict and /api/read never give a 5xx; every non-200 answer is JSON with an "error"
  string; a good request is still answered afterwards.
- Where schemathesis is installed: requests generated from the app's own OpenAPI schema (offline,
  over ASGI) never give a 5xx either.

Every test is bounded (max_examples, deadline=None) and derandomized, so a run is repeatable.
"""

import io

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from scrawl.errors import ImageError
from scrawl.vision import frame, load_image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from scrawl.web import create_app  # noqa: E402

IMAGE_EXAMPLES = 200
API_EXAMPLES = 150

# ------------------------------------------------------------------------------------------ images


def _seven_rgba(size=280) -> np.ndarray:
    img = np.zeros((size, size, 4), np.uint8)
    pts = np.array([(70, 60), (210, 60), (120, 230)], np.int32) * size // 280
    cv2.polylines(img, [pts], False, (39, 24, 17, 255), max(2, 18 * size // 280), cv2.LINE_AA)
    return img


def canvas_png() -> bytes:
    ok, buf = cv2.imencode(".png", _seven_rgba())
    assert ok
    return buf.tobytes()


def _encoded(fmt: str) -> bytes:
    """A real image (a drawn 7, ink on white, 64x64 so each example decodes fast) encoded by Pillow."""
    rgba = _seven_rgba(64)
    gray = 255 - rgba[..., 3]
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format=fmt)
    return buf.getvalue()


REAL = {"png": _encoded("PNG"), "jpeg": _encoded("JPEG")}


def test_the_unmutated_seeds_decode():
    # Sanity: the seeds the mutations start from are good images with ink in them.
    for data in REAL.values():
        assert load_image(data).max() > 0.5
        assert frame(data).shape == (28, 28)


def _decode_or_image_error(data: bytes) -> None:
    for fn in (load_image, frame):
        try:
            out = fn(data)
        except ImageError:
            continue  # the only allowed failure (EmptyImageError is a subclass)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@st.composite
def mutated_image(draw):
    data = bytearray(REAL[draw(st.sampled_from(sorted(REAL)))])
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i: i + draw(st.integers(1, 16))]
        else:
            del data[i:]
    return bytes(data)


@settings(max_examples=IMAGE_EXAMPLES, deadline=None, derandomize=True)
@given(st.binary(max_size=2048))
def test_random_bytes_decode_or_raise_image_error(data):
    _decode_or_image_error(data)


@settings(max_examples=IMAGE_EXAMPLES, deadline=None, derandomize=True)
@given(st.sampled_from(sorted(REAL)).flatmap(lambda k: st.just(REAL[k][:8]) | st.just(REAL[k][:32])).flatmap(
    lambda head: st.binary(max_size=512).map(lambda tail: head + tail)))
def test_real_header_then_garbage_decode_or_raise_image_error(data):
    _decode_or_image_error(data)  # gets past format detection, into the decoders


@settings(max_examples=IMAGE_EXAMPLES, deadline=None, derandomize=True)
@given(mutated_image())
def test_mutated_png_and_jpeg_decode_or_raise_image_error(data):
    _decode_or_image_error(data)


# --------------------------------------------------------------------------------------- HTTP API


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(["digits"])) as c:
        yield c


def _good(client) -> None:
    r = client.post("/api/predict", content=canvas_png(), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "7"


CONTENT_TYPES = st.sampled_from([
    "image/png", "image/jpeg", "application/json", "multipart/form-data", "multipart/form-data; boundary=xyz",
    "application/x-www-form-urlencoded", "text/plain", "application/octet-stream", "", "image/", "*/*",
    "application/json; charset=utf-16", "multipart/form-data; boundary=", "image/png; q=0.5",
]) | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)

QUERY_VALUE = st.text(max_size=12) | st.integers(-10**12, 10**12).map(str) | st.sampled_from(
    ["1", "3", "100", "101", "0", "-1", "1e3", "NaN", "digits", "alnum", "letters", "chars", "../x", "", " 3"])
QUERY = st.dictionaries(st.sampled_from(["top_k", "model", "charset", "image", "x"]), QUERY_VALUE, max_size=4)

JSON_BODY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
JSON_OBJECT = st.fixed_dictionaries({}, optional={
    "image": st.text(max_size=40) | st.just("data:image/png;base64,") | st.binary(max_size=64).map(
        lambda b: "data:image/png;base64," + __import__("base64").b64encode(b).decode()) | JSON_BODY,
    "top_k": QUERY_VALUE | JSON_BODY,
    "model": QUERY_VALUE | JSON_BODY,
    "charset": QUERY_VALUE | JSON_BODY,
})

BODY = (st.binary(max_size=1024)
        | mutated_image()
        | st.just(canvas_png())
        | JSON_BODY.map(lambda v: __import__("json").dumps(v).encode())
        | JSON_OBJECT.map(lambda v: __import__("json").dumps(v).encode()))


def _check_answer(r) -> None:
    event(f"HTTP {r.status_code}")  # shown by --hypothesis-show-statistics
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code != 200:
        assert r.headers.get("content-type", "").startswith("application/json"), (r.status_code, r.headers)
        body = r.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body


@settings(max_examples=API_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(endpoint=st.sampled_from(["predict", "read"]), body=BODY, content_type=CONTENT_TYPES, query=QUERY)
def test_api_raw_bodies_never_5xx_and_errors_are_json(client, endpoint, body, content_type, query):
    headers = {"content-type": content_type} if content_type else {}
    r = client.post(f"/api/{endpoint}", params=query, content=body, headers=headers)
    _check_answer(r)


@settings(max_examples=API_EXAMPLES // 3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(endpoint=st.sampled_from(["predict", "read"]), field=st.sampled_from(["file", "image", "upload"]),
       payload=st.binary(max_size=512) | mutated_image() | st.just(canvas_png()),
       filename=st.text(max_size=20), part_type=CONTENT_TYPES,
       form=st.dictionaries(st.sampled_from(["top_k", "model", "charset"]), QUERY_VALUE, max_size=3), query=QUERY)
def test_api_multipart_uploads_never_5xx_and_errors_are_json(client, endpoint, field, payload, filename, part_type,
                                                              form, query):
    r = client.post(f"/api/{endpoint}", params=query, files={field: (filename, payload, part_type or "image/png")},
                    data=form)
    _check_answer(r)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(endpoint=st.sampled_from(["predict", "read"]), query=QUERY, as_json=st.booleans())
def test_api_good_image_with_random_options_never_5xx(client, endpoint, query, as_json):
    # A readable drawing, so the options are parsed and the recognition path runs (not only the decoders).
    if as_json:
        import base64

        body = {"image": "data:image/png;base64," + base64.b64encode(canvas_png()).decode(), **query}
        r = client.post(f"/api/{endpoint}", json=body)
    else:
        r = client.post(f"/api/{endpoint}", params=query, content=canvas_png(), headers={"content-type": "image/png"})
    _check_answer(r)
    if r.status_code == 200 and endpoint == "predict":
        d = r.json()
        assert d["label"] is not None and 1 <= len(d["top_k"]) <= 100 and 0 <= d["confidence"] <= 1


def test_server_still_answers_after_the_fuzzing(client):
    # Module-scoped client: runs after the fuzz tests above on the same app (pytest keeps file order).
    _good(client)
    r = client.post("/api/read", content=canvas_png(), headers={"content-type": "image/png"})
    assert r.status_code == 200 and r.json()["text"] == "7"


# ------------------------------------------------------------------------------------- schemathesis

schemathesis = pytest.importorskip("schemathesis")

_APP = create_app(["digits"])
_SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@_SCHEMA.include(method="POST").parametrize()
@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_schemathesis_generated_requests_never_5xx(case):
    response = case.call()
    event(f"HTTP {response.status_code}")
    assert response.status_code < 500, (case.path, response.status_code, response.text[:300])
    if response.status_code != 200:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str), body
