"""Recognition API: `Recognizer` turns images into characters with probabilities.

The CLI, the Python API and the web app all call this; it owns no preprocessing of its own: every
image goes through scrawl.vision.frame with the frame spec in the model card, and every output through
the card's task (scrawl.tasks: probabilities, charset masking, top-k).

Two runtimes compute the model's outputs: "torch" runs a Scrawl checkpoint (.pt) in PyTorch; "onnx"
runs a model exported with `scrawl export` (.onnx plus its .json sidecar, see scrawl.runtime.onnx) in
ONNX Runtime and never imports torch, so a server that only reads is small and starts fast. Everything
after the outputs is shared numpy code, so both give the same answers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ScrawlError
from ..labels import CHARSETS, charset_indices, merge_map  # noqa: F401 (part of this module's API)
from ..settings import TOP_K, UNCERTAIN_BELOW
from ..tasks.classify import softmax  # noqa: F401 (part of this module's API)
from ..vision import frame, to_input
from .card import ModelCard
from .files import BUNDLED, DEFAULT_MODEL, RUNTIMES, bundled_path, check_runtime, resolve_model  # noqa: F401

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """One image's answer (scrawl.tasks.classify.Answer, plus what the model saw). `label` is always a
    character; with a model that has the reject class, `rejected` says the image is more likely no
    character at all (a tap, a dash, a scribble, two characters) than `label`."""

    label: str  # the most likely character (never the reject class)
    confidence: float  # its probability, under the softmax over all classes
    top_k: list[tuple[str, float]]  # the best k characters with probabilities, best first
    framed: np.ndarray = field(repr=False)  # (28, 28) float in [0, 1]: what the model saw
    not_a_character: float = 0.0  # the reject class's probability (0.0: a model without it)
    rejected: bool = False  # the reject class is more probable than `label`

    @property
    def uncertain(self) -> bool:
        """Not to be taken as read: rejected, or confidence below scrawl.settings.UNCERTAIN_BELOW."""
        return self.rejected or self.confidence < UNCERTAIN_BELOW

    def to_dict(self) -> dict:
        return {"label": self.label, "confidence": round(self.confidence, 6),
                "top_k": [{"label": c, "probability": round(p, 6)} for c, p in self.top_k],
                "not_a_character": round(self.not_a_character, 6), "rejected": self.rejected}


class Recognizer:
    """Reads one character per image (or says it is none: Prediction.rejected, for a model with the
    reject class scrawl.labels.NOT_A_CHARACTER).

    >>> from scrawl import Recognizer
    >>> rec = Recognizer()              # the bundled digit model, in PyTorch
    >>> rec.predict("seven.png").label
    '7'
    >>> Recognizer("digits", runtime="onnx").predict("seven.png").label   # ONNX Runtime, no torch
    '7'

    model: a bundled model name or a file (a checkpoint for runtime "torch", an .onnx file from
    `scrawl export` for "onnx"). threads: ONNX Runtime's intra-op threads (None: its default, one per
    core); the torch runtime uses torch's process-wide setting (torch.set_num_threads). spin: ONNX
    Runtime's idle threads busy-wait for work (its default); False when other processes share the CPUs
    (scrawl predict's framing workers). optimize: for serving, fold batch norm into the convolutions
    (torch; ONNX Runtime does it itself).
    """

    def __init__(self, model: str | os.PathLike | None = None, runtime: str = "torch", *, threads: int | None = None,
                 spin: bool = True, optimize: bool = False):
        path = resolve_model(model, runtime)
        self.runtime = runtime
        self.path = path
        self.backend = _TorchBackend(path, optimize) if runtime == "torch" else _OnnxBackend(path, threads, spin)
        self.card: ModelCard = self.backend.card
        self.task = self.card.task_impl
        self.classes: list[str] = list(self.card.classes)
        self.spec = self.card.frame
        self.name = str(model if model is not None else DEFAULT_MODEL)

    @property
    def meta(self) -> dict:
        """The model's metadata as a dict: the checkpoint's card, or the .onnx file's sidecar."""
        return self.backend.meta

    @property
    def checkpoint(self):
        """The loaded scrawl.runtime.checkpoint.Checkpoint (torch runtime only; None for onnx)."""
        return getattr(self.backend, "checkpoint", None)

    @property
    def model(self):
        """What computes the logits: the torch module, or the ONNX Runtime session."""
        return self.backend.model

    def logits(self, batch) -> np.ndarray:
        """(N, 1, H, W) (or (N, H, W), (H, W)) float inputs in [0, 1] -> (N, C) float32 logits."""
        return self.backend.logits(to_input(np.asarray(batch)))

    def probabilities(self, batch, charset: str | None = None) -> np.ndarray:
        """(N, 1, 28, 28) float inputs -> (N, C) float32 probabilities; classes outside `charset` get 0."""
        return self.task.probabilities(self.logits(batch), charset_indices(self.classes, charset))

    def frame(self, image) -> np.ndarray:
        """The model's view of `image`: (28, 28) float; raises ImageError / EmptyImageError."""
        return frame(image, self.spec)

    def predict(self, image, top_k: int = TOP_K, charset: str | None = None) -> Prediction:
        """Read one image (a path, bytes, PIL image or array); `charset` restricts the answer."""
        self.require_characters()
        return self.predict_framed(self.frame(image)[None], top_k, charset)[0]

    def require_characters(self) -> None:
        """A ScrawlError unless the model reads one character per image (predict); a line model reads."""
        if self.card.task == "ctc":
            raise ScrawlError(f"model {self.name!r} reads lines, not one character per image: use "
                              f"`scrawl read --model {self.name}` (Recognizer.read)")

    def read(self, image, top_k: int = TOP_K, charset: str | None = None, lexicon=None):
        """Read every line of handwriting in `image` with a line model: a scrawl.runtime.reader.Reading
        (text, and per line the text, confidence, character boxes and n-best alternatives). `lexicon`:
        a scrawl.tasks.lexicon.Lexicon (word prior) or None.

        >>> Recognizer("line").read("note.png").text
        'call me at 555-0100'
        """
        from .reader import read_image

        return read_image(self, image, top_k=top_k, charset=charset, lexicon=lexicon)

    def predict_framed(self, framed: np.ndarray, top_k: int = TOP_K, charset: str | None = None) -> list[Prediction]:
        """Predictions for already framed images (N, 28, 28), in one batch."""
        self.require_characters()
        allowed = charset_indices(self.classes, charset)
        probs = self.task.probabilities(self.logits(framed), allowed)
        answers = self.task.decode(probs, self.classes, top_k, allowed)
        return [Prediction(a.label, a.confidence, a.top_k, f, a.not_a_character, a.rejected)
                for a, f in zip(answers, framed)]


class _TorchBackend:
    """Logits from a Scrawl checkpoint in PyTorch (imported here, and only here)."""

    def __init__(self, path: Path, optimize: bool = False):
        from .checkpoint import load_checkpoint

        self.checkpoint = load_checkpoint(path)
        self.card = self.checkpoint.card
        self.meta = self.checkpoint.meta
        self.model = self.checkpoint.build_model()
        if optimize:
            from ..models.fold import fold_batchnorm

            self.model = fold_batchnorm(self.model, self.card.frame.size)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
            return self.model(x).float().numpy()


class _OnnxBackend:
    """Logits from an exported .onnx file in ONNX Runtime (CPU); never imports torch."""

    def __init__(self, path: Path, threads: int | None = None, spin: bool = True):
        from .onnx import load_onnx_session

        self.model, self.meta = load_onnx_session(path, threads=threads, spin=spin)
        self.card = ModelCard.from_dict(self.meta, str(path))
        self._input = self.meta["input"]["name"]
        self._output = self.meta["output"]["name"]

    def logits(self, batch: np.ndarray) -> np.ndarray:
        # InferenceSession.run may be called from several threads at once (the web app's workers).
        return self.model.run([self._output], {self._input: batch})[0].astype(np.float32, copy=False)
