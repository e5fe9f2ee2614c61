"""Shapes of the API's answers, request bodies and options, for the OpenAPI page (/docs).

The endpoints build their JSON directly (no per-request validation cost); these models describe it.
Each request option is described once (OPTION_DOCS), for the query string and the request bodies alike;
the numbers in the descriptions come from scrawl.settings and the charset names from scrawl.labels.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..labels import ALL, CHARSETS
from ..settings import MAX_TOP_K, TOP_K, UNCERTAIN_BELOW

_NAMES = list(CHARSETS)
CHARSET_NAMES = f"{', '.join(_NAMES[:-1])} or {_NAMES[-1]}"  # "digits, upper, lower, letters or alnum"
# The options a request may give, in the query string, the JSON object or the form fields (see inputs.OPTIONS).
OPTION_DOCS = {
    "top_k": f"how many alternatives to return (1-{MAX_TOP_K}, default {TOP_K})",
    "model": "a model name from /api/models (default: the default model)",
    "charset": f"answer only within {CHARSET_NAMES} (default: {ALL})",
}


class Alternative(BaseModel):
    label: str
    probability: float


class Character(BaseModel):
    label: str = Field(description="the most likely class")
    confidence: float = Field(description="its probability (0..1)")
    uncertain: bool = Field(description=f"confidence below {UNCERTAIN_BELOW:g}: look at the alternatives")
    top_k: list[Alternative] = Field(description="the best classes, best first")
    framed: str = Field(description="the 28x28 image the model saw, as-is (light ink on black), "
                                    "as a data:image/png;base64 URL")


class PredictResult(BaseModel):
    model: str
    empty: bool = Field(description="true when the image holds no ink: then label and framed are null")
    message: str | None = Field(description='"nothing to read: ..." when empty, else null')
    label: str | None
    confidence: float
    uncertain: bool
    top_k: list[Alternative]
    framed: str | None


class ReadCharacter(Character):
    box: list[int] = Field(description="[x, y, w, h] in the original image's pixels (after its EXIF rotation)")
    line: int = Field(description="0-based line, top to bottom")


class ReadResult(BaseModel):
    model: str
    empty: bool
    message: str | None
    text: str = Field(description='the characters in reading order, lines joined by "\\n"; "" when empty')
    lines: int
    size: list[int] = Field(description="[width, height] of the image in pixels")
    characters: list[ReadCharacter]


class ModelInfo(BaseModel):
    name: str = Field(description="what `model` takes in a request")
    title: str = Field(description='a short human name for a picker ("Digits", "Letters and digits"); '
                                   "a user's own model file: its file stem")
    default: bool
    classes: list[str]
    charsets: list[str] = Field(description="the named charsets worth offering for this model (see `charset`): "
                                            "each allows some of its classes but not all of them")
    description: str
    arch: str | None = Field(description="the network's architecture, when the model file says")
    trained_on: str | None = Field(description="the data set it was trained on, when the model file says")


class Health(BaseModel):
    status: str
    models: list[str]
    uptime_s: float


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong with the request")


ERROR_RESPONSES = {
    400: {"model": ErrorBody, "description": "malformed request: empty body, bad JSON, bad data URL, no file"},
    413: {"model": ErrorBody, "description": "request body over the size limit"},
    415: {"model": ErrorBody, "description": "unsupported Content-Type"},
    422: {"model": ErrorBody, "description": "the image cannot be used (not an image, truncated, zero size, "
                                             "too many pixels, too many characters) or a bad option"},
}


def _option_properties() -> dict:
    """The request options as JSON schema properties of a request body (JSON object or form)."""
    return {
        "top_k": {"type": "integer", "default": TOP_K, "minimum": 1, "maximum": MAX_TOP_K,
                  "description": OPTION_DOCS["top_k"]},
        "model": {"type": "string", "description": OPTION_DOCS["model"]},
        "charset": {"type": "string", "enum": [*CHARSETS, ALL], "description": OPTION_DOCS["charset"]},
    }


IMAGE_REQUEST_BODY = {
    "required": True,
    "description": "the image: a multipart upload (field `file`), raw image bytes, or JSON with a data URL",
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"],
                       "properties": {"file": {"type": "string", "format": "binary"}, **_option_properties()}}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/webp": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {
            "schema": {"type": "object", "required": ["image"],
                       "properties": {"image": {"type": "string", "example": "data:image/png;base64,iVBORw0KGgo..."},
                                      **_option_properties()}}},
    },
}


def api_description(uncertain_below: float = UNCERTAIN_BELOW) -> str:
    """The API's description at the top of /docs."""
    names = ", ".join(CHARSETS)
    return f"""Read handwriting: one character (`/api/predict`) or a string of them (`/api/read`).

Send an image as a multipart upload (field `file`), as raw bytes with an `image/*` Content-Type, or as
JSON `{{"image": "data:image/png;base64,..."}}`. Options `top_k`, `model` and `charset` ({names}:
the answer is always within it) go in the query string (or the JSON object / form fields).

An image without ink is not an error: the answer is a 200 with `"empty": true`, no label (text `""`) and
a `message` ("nothing to read ..."). Answers below a confidence of {uncertain_below:g} carry
`"uncertain": true`; look at `top_k` for the alternatives. `framed` is the 28x28 image the model saw,
as-is: light ink on black.

Errors are JSON `{{"error": "..."}}`: 400 malformed request (empty body, bad JSON or data URL), 413 body
too large, 415 unsupported Content-Type, 422 the image cannot be used (not an image, truncated, zero
size, too many pixels, too many characters) or a bad option."""
