"""Recognition API: `Recognizer` turns images into characters with probabilities.

The CLI, the Python API and the web app all call this; it owns no preprocessing of its own:
every image goes through scrawl.preprocess.frame with the frame spec stored in the checkpoint.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Checkpoint, load_checkpoint
from .errors import CheckpointError, ScrawlError
from .preprocess import FrameSpec, frame, to_tensor

log = logging.getLogger(__name__)

# Models shipped inside the package (src/scrawl/assets), by the name users type.
BUNDLED = {"digits": "digits.pt", "chars": "chars.pt"}
DEFAULT_MODEL = "digits"

_DIGITS = "0123456789"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = _UPPER.lower()
# Named character sets that restrict answers at inference time (by masking logits), so a user who
# knows they wrote a number never gets 'O' for '0' or 'l' for '1'.
CHARSETS = {"digits": _DIGITS, "upper": _UPPER, "lower": _LOWER, "letters": _UPPER + _LOWER,
            "alnum": _DIGITS + _UPPER + _LOWER}
# EMNIST ByMerge's merge of case pairs whose glyphs look alike (Cohen et al. 2017): these lower-case
# letters count as their capital. The other 11 lower-case letters keep their own class.
MERGED_CASE = {c: c.upper() for c in "cijklmopsuvwxyz"}


def charset_indices(classes: list[str], charset: str | None) -> list[int] | None:
    """Indices of `classes` allowed by a named charset; None means all. Raises ScrawlError for an
    unknown name or a charset the model cannot answer in."""
    if charset is None or charset == "all":
        return None
    if charset not in CHARSETS:
        raise ScrawlError(f"unknown charset {charset!r}; choose one of: {', '.join(CHARSETS)}")
    allowed = [i for i, c in enumerate(classes) if c in CHARSETS[charset]]
    if not allowed:
        raise ScrawlError(f"this model knows none of the characters in charset {charset!r} (it reads {''.join(classes)})")
    return allowed


def merge_map(classes: list[str]) -> dict[str, str] | None:
    """The ByMerge case merge for a model that has both cases of a look-alike pair, else None."""
    merge = {c: u for c, u in MERGED_CASE.items() if c in classes and u in classes}
    return merge or None


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("scrawl") / "assets" / BUNDLED[name]))


def resolve_model(model: str | os.PathLike | None) -> Path:
    """A bundled model's name ("digits") or a checkpoint path -> the checkpoint file."""
    model = DEFAULT_MODEL if model is None else model
    if isinstance(model, str) and model in BUNDLED:
        path = bundled_path(model)
        if not path.is_file():
            raise CheckpointError(f"the bundled model {model!r} is missing from the installation ({path})")
        return path
    path = Path(model)
    if not path.is_file():
        names = ", ".join(sorted(BUNDLED))
        raise CheckpointError(f"no model {str(model)!r}: give a bundled model name ({names}) or a checkpoint file path")
    return path


@dataclass
class Prediction:
    label: str  # the most likely class
    confidence: float  # its probability
    top_k: list[tuple[str, float]]  # the best k classes with probabilities, best first
    framed: np.ndarray = field(repr=False)  # (28, 28) float in [0, 1]: what the model saw

    def to_dict(self) -> dict:
        return {"label": self.label, "confidence": round(self.confidence, 6),
                "top_k": [{"label": c, "probability": round(p, 6)} for c, p in self.top_k]}


class Recognizer:
    """Reads one character per image.

    >>> from scrawl import Recognizer
    >>> rec = Recognizer()              # the bundled digit model
    >>> rec.predict("seven.png").label
    '7'
    """

    def __init__(self, model: str | os.PathLike | None = None):
        self.checkpoint: Checkpoint = load_checkpoint(resolve_model(model))
        self.model = self.checkpoint.build_model()
        self.classes: list[str] = list(self.checkpoint.meta["classes"])
        self.spec = FrameSpec.from_dict(self.checkpoint.meta["frame"])
        self.name = str(model if model is not None else DEFAULT_MODEL)

    @property
    def meta(self) -> dict:
        return self.checkpoint.meta

    @torch.inference_mode()
    def probabilities(self, batch: torch.Tensor, charset: str | None = None) -> torch.Tensor:
        """(N, 1, 28, 28) float inputs -> (N, C) probabilities; classes outside `charset` get 0."""
        logits = self.model(batch.contiguous(memory_format=torch.channels_last)).float()
        allowed = charset_indices(self.classes, charset)
        if allowed is not None:
            mask = torch.full((len(self.classes),), float("-inf"))
            mask[allowed] = 0.0
            logits = logits + mask
        return torch.softmax(logits, dim=1)

    def frame(self, image) -> np.ndarray:
        """The model's view of `image`: (28, 28) float; raises ImageError / EmptyImageError."""
        return frame(image, self.spec)

    def predict(self, image, top_k: int = 3, charset: str | None = None) -> Prediction:
        """Read one image (a path, bytes, PIL image or array); `charset` restricts the answer."""
        framed = self.frame(image)
        probs = self.probabilities(to_tensor(framed), charset)[0]
        return self._prediction(probs, framed, top_k, charset)

    def predict_framed(self, framed: np.ndarray, top_k: int = 3, charset: str | None = None) -> list[Prediction]:
        """Predictions for already framed images (N, 28, 28), in one batch."""
        probs = self.probabilities(to_tensor(framed), charset)
        return [self._prediction(p, f, top_k, charset) for p, f in zip(probs, framed)]

    def _prediction(self, probs: torch.Tensor, framed: np.ndarray, top_k: int, charset: str | None = None) -> Prediction:
        allowed = charset_indices(self.classes, charset)
        k = max(1, min(top_k, len(self.classes) if allowed is None else len(allowed)))
        values, indices = probs.topk(k)
        top = [(self.classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]
        return Prediction(label=top[0][0], confidence=top[0][1], top_k=top, framed=framed)
