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
from .errors import CheckpointError
from .preprocess import FrameSpec, frame, to_tensor

log = logging.getLogger(__name__)

# Models shipped inside the package (src/scrawl/assets), by the name users type.
BUNDLED = {"digits": "digits.pt"}
DEFAULT_MODEL = "digits"


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

    @torch.no_grad()
    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) float inputs -> (N, C) probabilities."""
        logits = self.model(batch.contiguous(memory_format=torch.channels_last))
        return torch.softmax(logits.float(), dim=1)

    def frame(self, image) -> np.ndarray:
        """The model's view of `image`: (28, 28) float; raises ImageError / EmptyImageError."""
        return frame(image, self.spec)

    def predict(self, image, top_k: int = 3) -> Prediction:
        """Read one image (a path, bytes, PIL image or array)."""
        framed = self.frame(image)
        probs = self.probabilities(to_tensor(framed))[0]
        return self._prediction(probs, framed, top_k)

    def predict_framed(self, framed: np.ndarray, top_k: int = 3) -> list[Prediction]:
        """Predictions for already framed images (N, 28, 28), in one batch."""
        probs = self.probabilities(to_tensor(framed))
        return [self._prediction(p, f, top_k) for p, f in zip(probs, framed)]

    def _prediction(self, probs: torch.Tensor, framed: np.ndarray, top_k: int) -> Prediction:
        k = max(1, min(top_k, len(self.classes)))
        values, indices = probs.topk(k)
        top = [(self.classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]
        return Prediction(label=top[0][0], confidence=top[0][1], top_k=top, framed=framed)
