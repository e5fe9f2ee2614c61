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
CHARSET_NAMES = f"{', '.join(_NAMES[:-1])} or {_NAMES[-1]}"  # "digits, number, upper, lower, letters or alnum"
# The options a request may give, in the query string, the JSON object or the form fields (see inputs.OPTIONS).
OPTION_DOCS = {
    "top_k": f"how many alternatives to return (1-{MAX_TOP_K}, default {TOP_K})",
    "model": 'a character model\'s name from /api/models (kind "character"; default: the default one)',
    "read_model": 'a model name from /api/models (default: the default line model, else the default character '
                  'model); a line model (kind "line") reads whole lines, a character model reads through the '
                  "segmenter, one piece of ink at a time (for comparison)",
    "charset": f"answer only within {CHARSET_NAMES} (default: {ALL}); a line model keeps the space, and under a "
               "set of letters the punctuation; number: digits and the marks numbers are written with",
    "lexicon": "true: a line model re-ranks each line's alternatives by English word frequency and re-spells "
               "a word as a known word one edit away where the model finds that likely enough (never changing "
               "a number); default false",
}


class Alternative(BaseModel):
    label: str
    probability: float


_NOT_A_CHARACTER = ("the probability that the image is no character at all (a tap, a dash, a scribble, two "
                    "characters); 0 for a model without that class")
_REJECTED = "true: the image is more likely no character at all than `label`: do not take `label` as read"


class Character(BaseModel):
    label: str = Field(description="the most likely character")
    confidence: float = Field(description="its probability (0..1)")
    uncertain: bool = Field(description=f"rejected, or confidence below {UNCERTAIN_BELOW:g}: look at the alternatives")
    top_k: list[Alternative] = Field(description="the best characters, best first")
    not_a_character: float = Field(description=_NOT_A_CHARACTER)
    rejected: bool = Field(description=_REJECTED)
    framed: str = Field(description="the 28x28 image the model saw, as-is (light ink on black), "
                                    "as a data:image/png;base64 URL")


class PredictResult(BaseModel):
    model: str
    empty: bool = Field(description="true when the image holds no ink: then label and framed are null")
    message: str | None = Field(description='"nothing to read: ..." when empty, else null')
    label: str | None = Field(description="the most likely character (null when empty); see `rejected`")
    confidence: float
    uncertain: bool = Field(description=f"rejected, or confidence below {UNCERTAIN_BELOW:g}")
    top_k: list[Alternative] = Field(description="the best characters, best first")
    not_a_character: float = Field(description=_NOT_A_CHARACTER)
    rejected: bool = Field(description=_REJECTED)
    framed: str | None


class TextAlternative(BaseModel):
    text: str
    probability: float


class ReadCharacter(BaseModel):
    char: str = Field(description='the character; "" for a piece of ink the model rejects (see `rejected`)')
    confidence: float = Field(description="its probability (0..1)")
    box: list[int] = Field(description="[x0, y0, x1, y1] in the image's pixels (after its EXIF rotation); "
                                       "approximate for a line model")
    uncertain: bool = Field(description=f"rejected, or confidence below {UNCERTAIN_BELOW:g}")
    rejected: bool = Field(False, description="segmenter only: true when the character model says this piece of "
                                              "ink is no character (a speck, a slip of the pen); it is then left "
                                              "out of the text, and its `top_k` says what it looks most like")
    not_a_character: float | None = Field(None, description="segmenter only: " + _NOT_A_CHARACTER)
    top_k: list[Alternative] | None = Field(None, description="segmenter only: the character's alternatives")
    framed: str | None = Field(None, description="segmenter only: the 28x28 image the character model saw")


class ReadLine(BaseModel):
    text: str
    confidence: float = Field(description="the least confident character's probability (0 when no character "
                                          "was read)")
    uncertain: bool
    box: list[int] = Field(description="[x0, y0, x1, y1] of the line's ink")
    chars: list[ReadCharacter] = Field(description="each character, left to right (spaces included)")
    alternatives: list[TextAlternative] = Field(description="the line's n-best readings (top_k), best first")


class ReadResult(BaseModel):
    model: str
    method: str = Field(description='"line" (a line model) or "segmenter" (a character model, piece by piece)')
    size: list[int] | None = Field(description="[width, height] of the image in pixels")
    text: str = Field(description='the lines, top to bottom, joined by "\\n" (the segmenter leaves out a line '
                                  'of rejected pieces only)')
    lines: list[ReadLine]


class Limits(BaseModel):
    max_body_bytes: int = Field(description="largest request body (413 beyond)")
    max_pixels: int = Field(description="largest image, width x height, checked before decoding (422 beyond)")
    max_lines: int = Field(description="most lines /api/read reads in one image (422 beyond)")
    max_line_width: int = Field(description="a line model's longest line, in pixels of its input (the line "
                                            "scaled to the model's height: 32 px for the bundled model, so a "
                                            "line about 128 times as wide as tall); 422 beyond")
    max_characters: int = Field(description="most characters the segmenter cuts one image into (422 beyond)")
    max_top_k: int
    workers: int = Field(description="recognitions running at once")
    max_queue: int = Field(description="recognitions that may wait (503 + Retry-After beyond)")
    request_timeout_s: float = Field(description="seconds a recognition may take, waiting included (503 beyond)")


class ModelInfo(BaseModel):
    name: str = Field(description="what `model` takes in a request")
    title: str = Field(description='a short human name for a picker ("Digits", "Letters and digits"); '
                                   "a user's own model file: its file stem")
    kind: str = Field(description='"character": one character per image (/api/predict, and /api/read through '
                                  'the segmenter); "line": whole lines (/api/read only)')
    default: bool = Field(description="the model used when a request names none: the default character model "
                                      "(/api/predict) and the default line model (/api/read)")
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
    empty: bool | None = Field(None, description='/api/read: true when the image holds nothing to read')


ERROR_RESPONSES = {
    400: {"model": ErrorBody, "description": "malformed request: empty body, bad JSON, bad data URL, no file"},
    413: {"model": ErrorBody, "description": "request body over the size limit"},
    415: {"model": ErrorBody, "description": "unsupported Content-Type"},
    422: {"model": ErrorBody, "description": "the image cannot be used (not an image, truncated, zero size, "
                                             "too many pixels, too many characters, lines or a line too long; "
                                             "/api/read: nothing to read) or a bad option"},
    503: {"model": ErrorBody, "description": "busy or too slow: try again after Retry-After seconds"},
}


def _option_properties(read: bool = False) -> dict:
    """The request options as JSON schema properties of a request body (JSON object or form)."""
    props = {
        "top_k": {"type": "integer", "default": TOP_K, "minimum": 1, "maximum": MAX_TOP_K,
                  "description": OPTION_DOCS["top_k"]},
        "model": {"type": "string", "description": OPTION_DOCS["read_model" if read else "model"]},
        "charset": {"type": "string", "enum": [*CHARSETS, ALL], "description": OPTION_DOCS["charset"]},
    }
    if read:
        props["lexicon"] = {"type": "boolean", "default": False, "description": OPTION_DOCS["lexicon"]}
    return props


def image_request_body(read: bool = False) -> dict:
    """The request body of /api/predict (read False) or /api/read."""
    options = _option_properties(read)
    return {
        "required": True,
        "description": "the image: a multipart upload (field `file`), raw image bytes, or JSON with a data URL",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"],
                           "properties": {"file": {"type": "string", "format": "binary"}, **options}}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/webp": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {
                "schema": {"type": "object", "required": ["image"],
                           "properties": {"image": {"type": "string", "example": "data:image/png;base64,iVBORw0KGgo..."},
                                          **options}}},
        },
    }


IMAGE_REQUEST_BODY = image_request_body()
READ_REQUEST_BODY = image_request_body(read=True)


def api_description(uncertain_below: float = UNCERTAIN_BELOW, limits: dict | None = None) -> str:
    """The API's description at the top of /docs; `limits`: the app's (see Limits), listed at the end."""
    names = ", ".join(CHARSETS)
    text = f"""Read handwriting: one character (`/api/predict`), or lines of it (`/api/read`: numbers, words,
a page; with a line model by default, or with a character model through the segmenter, for comparison).

Send an image as a multipart upload (field `file`), as raw bytes with an `image/*` Content-Type, or as
JSON `{{"image": "data:image/png;base64,..."}}`. Options `top_k`, `model` and `charset` ({names}:
the answer is always within it), and for `/api/read` `lexicon`, go in the query string (or the JSON
object / form fields). `/api/models` lists the models and their kind: "character" or "line".

`/api/predict` answers an image without ink with a 200 and `"empty": true`, no label and a `message`
("nothing to read ..."); `/api/read` answers it with a 422 `{{"error": "nothing to read: ...",
"empty": true}}`. Answers below a confidence of {uncertain_below:g} carry `"uncertain": true`; look at
`top_k` (a character's alternatives) or `alternatives` (a line's). `framed` is the 28x28 image a
character model saw, as-is: light ink on black. A character model trained with a "not a character"
class gives `not_a_character` (its probability) and `"rejected": true` when the image is more likely
no character at all (a tap, a dash, a scribble) than its best `label`: such an answer is uncertain, and
the segmenter leaves such a piece of ink out of the text (`"char": ""`, `"rejected": true`).

Errors are JSON `{{"error": "..."}}`: 400 malformed request (empty body, bad JSON or data URL), 413 body
too large, 415 unsupported Content-Type, 422 the image cannot be used (not an image, truncated, zero
size, too many pixels, characters or lines, a line too long, nothing to read) or a bad option, 503 busy."""
    if limits:
        text += ("\n\nLimits (also at `/api/limits`): " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:g}"
                                                                  for k, v in limits.items()) + ".")
    return text
