"""Getting an image and the request's options out of an HTTP request, with a clear error for each way
it can be wrong.

Three ways to send an image (all to the same endpoints):
- multipart/form-data with the file in the field `file` (an HTML form, curl -F file=@digit.png);
- the raw image bytes with an image/* (or application/octet-stream) Content-Type;
- JSON {"image": "data:image/png;base64,..."} (what a browser canvas's toDataURL() gives).
Options (`top_k`, `model`, `charset`, and for /api/read `lexicon`) come from the query string, or from
the JSON object / form fields (the body wins); their defaults and limits are scrawl.settings', the
charset names scrawl.labels'.
Every failure is an ApiError with an HTTP status and a message saying what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json

from starlette.datastructures import UploadFile
from starlette.requests import Request

from ..errors import ScrawlError
from ..labels import ALL, CHARSETS, charset_indices
from ..settings import MAX_TOP_K, TOP_K

OPTIONS = ("top_k", "model", "charset", "lexicon")  # request options accepted in a JSON body or form fields
PREDICT_OPTIONS = OPTIONS[:3]  # /api/predict's (lexicon is /api/read's: a word prior for lines)
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
HOW = (
    "send an image as multipart field 'file', as raw bytes with Content-Type image/png (or jpeg, webp, ...), "
    'or as JSON {"image": "data:image/png;base64,..."}'
)


class ApiError(Exception):
    """A request the API refuses: becomes {"error": message} with this HTTP status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


async def image_and_options(request: Request) -> tuple[bytes, dict]:
    """The image bytes and the options given in the body (JSON keys or form fields)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()  # the size guard has already refused bodies over the limit
    if not body:
        raise ApiError(400, f"empty request body: {HOW}")
    if ctype == "multipart/form-data":
        return await _from_form(request)
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return body, {}
    if ctype == "application/json" or ctype.endswith("+json"):
        return _from_json(body)
    shown = ctype or "none"
    raise ApiError(415, f"unsupported Content-Type {shown!r}: {HOW}")


async def _from_form(request: Request) -> tuple[bytes, dict]:
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        fields = ", ".join(sorted(form.keys())) or "none"
        raise ApiError(400, f"the multipart form has no file in the field 'file' (fields: {fields})")
    data = await upload.read()
    if not data:
        raise ApiError(400, f"the uploaded file {upload.filename or ''!r} is empty (0 bytes)")
    options = {k: form.get(k) for k in OPTIONS if isinstance(form.get(k), str)}
    return data, options


def _from_json(body: bytes) -> tuple[bytes, dict]:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"invalid JSON body: {exc}") from None
    if not isinstance(obj, dict):
        raise ApiError(400, f'the JSON body must be an object like {{"image": "data:image/png;base64,..."}}, '
                            f"got {type(obj).__name__}")
    image = obj.get("image")
    if not isinstance(image, str):
        raise ApiError(400, 'the JSON body needs "image": a data URL like "data:image/png;base64,..."'
                            + ("" if image is None else f" (got {type(image).__name__})"))
    options = {k: obj[k] for k in OPTIONS if k in obj}
    return decode_data_url(image), options


def decode_data_url(url: str) -> bytes:
    """'data:image/png;base64,...' -> the image bytes; ApiError(400) saying what is wrong otherwise."""
    if not url.startswith("data:"):
        raise ApiError(400, f"bad data URL: it must start with 'data:image/...;base64,' (got {url[:24]!r})")
    header, sep, payload = url.partition(",")
    if not sep:
        raise ApiError(400, "bad data URL: no ',' between the header and the data")
    parts = header[5:].split(";")
    media = parts[0].strip().lower()
    if not media.startswith("image/"):
        raise ApiError(400, f"bad data URL: media type {media or 'none'!r} is not an image/* type")
    if "base64" not in [p.strip().lower() for p in parts[1:]]:
        raise ApiError(400, "bad data URL: the data must be base64 encoded (';base64,')")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"bad data URL: invalid base64 data ({exc})") from None
    if not data:
        raise ApiError(400, "bad data URL: it holds no data (0 bytes)")
    return data


def pick_options(query_top_k, query_model, body: dict, models: dict, default: str,
                 query_charset=None) -> tuple[str, int, str | None]:
    """(model name, top_k, charset) from the body or else the query string; ApiError(422) for bad values.
    `models` maps the loaded models' names to their Recognizers; `default` is the name used when none is given."""
    top_k = parse_top_k(body.get("top_k", query_top_k))
    name = pick_model(body.get("model", query_model), models, default)
    return name, top_k, pick_charset(body.get("charset", query_charset), models[name].classes)


def parse_top_k(raw) -> int:
    """A request's top_k: settings.TOP_K when not given, else a whole number from 1 to MAX_TOP_K."""
    if raw is None or raw == "":
        return TOP_K
    try:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError
        top_k = int(raw)
    except (TypeError, ValueError):
        raise ApiError(422, f"top_k must be a whole number from 1 to {MAX_TOP_K}, got {raw!r}") from None
    if not 1 <= top_k <= MAX_TOP_K:
        raise ApiError(422, f"top_k must be from 1 to {MAX_TOP_K}, got {top_k}")
    return top_k


def pick_model(name, models: dict, default: str) -> str:
    """The model a request names, or the default; only models loaded at startup can be named, so an API
    client can never make the server open a path."""
    if name is None or name == "":
        return default
    if not isinstance(name, str) or name not in models:
        raise ApiError(422, f"unknown model {name!r}: this server has {', '.join(sorted(models))}")
    return name


def parse_lexicon(raw) -> bool:
    """A request's lexicon flag: false when not given; true/false, 1/0, yes/no or on/off."""
    if raw is None or raw == "":
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
        return raw.strip().lower() in _TRUE
    raise ApiError(422, f"lexicon must be true or false, got {raw!r}")


def pick_charset(charset, classes) -> str | None:
    """A request's charset (None: all), checked against the chosen model's classes."""
    if charset in (None, "", ALL):
        return None
    if not isinstance(charset, str) or charset not in CHARSETS:
        raise ApiError(422, f"unknown charset {charset!r}: choose one of {', '.join(CHARSETS)} (or {ALL})")
    try:
        charset_indices(classes, charset)
    except ScrawlError as exc:
        raise ApiError(422, str(exc)) from None
    return charset
