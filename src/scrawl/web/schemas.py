"""Shapes of the API's answers and request bodies, for the OpenAPI page (/docs).

The endpoints build their JSON directly (no per-request validation cost); these models describe it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Alternative(BaseModel):
    label: str
    probability: float


class Character(BaseModel):
    label: str = Field(description="the most likely class")
    confidence: float = Field(description="its probability (0..1)")
    uncertain: bool = Field(description="confidence below 0.6: look at the alternatives")
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
    name: str
    default: bool
    classes: list[str]
    charsets: list[str]  # the named charsets this model can answer in (see `charset`)
    description: str


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

IMAGE_REQUEST_BODY = {
    "required": True,
    "description": "the image: a multipart upload (field `file`), raw image bytes, or JSON with a data URL",
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"],
                       "properties": {"file": {"type": "string", "format": "binary"},
                                      "top_k": {"type": "integer"}, "model": {"type": "string"}}}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/webp": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {
            "schema": {"type": "object", "required": ["image"],
                       "properties": {"image": {"type": "string", "example": "data:image/png;base64,iVBORw0KGgo..."},
                                      "top_k": {"type": "integer", "default": 3}, "model": {"type": "string"}}}},
    },
}
