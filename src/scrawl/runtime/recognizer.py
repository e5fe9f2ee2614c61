"""Recognition API: `Recognizer` turns images into characters with probabilities.

The CLI, the Python API and the web app all call this; it owns no preprocessing of its own:
every image goes through scrawl.preprocess.frame with the frame spec stored with the model.

Two runtimes compute the logits: "torch" runs a Scrawl checkpoint (.pt) in PyTorch; "onnx" runs a
model exported with `scrawl export` (.onnx plus its .json sidecar, see scrawl.export) in ONNX Runtime
and never imports torch, so a server that only reads is small and starts fast. Everything after the
logits (softmax, charset masking, top-k) is shared numpy code, so both give the same answers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ScrawlError
from ..labels import CHARSETS, charset_indices, merge_map  # noqa: F401 (part of this module's API)
from ..vision.preprocess import FrameSpec, frame

log = logging.getLogger(__name__)

# Models shipped inside the package (src/scrawl/assets), by the name users type.
# digits-lite: fastnet, an eighth of digits' multiply-adds for a few hundredths of a point (README).
BUNDLED = {"digits": "digits.pt", "digits-lite": "digits-lite.pt", "chars": "chars.pt"}
DEFAULT_MODEL = "digits"
RUNTIMES = ("torch", "onnx")


def bundled_path(name: str, runtime: str = "torch") -> Path:
    """Where the bundled model `name` lives: its checkpoint (torch) or its exported .onnx (onnx)."""
    filename = BUNDLED[name] if runtime == "torch" else Path(BUNDLED[name]).with_suffix(".onnx").name
    return Path(str(resources.files("scrawl") / "assets" / filename))


def resolve_model(model: str | os.PathLike | None, runtime: str = "torch") -> Path:
    """A bundled model's name ("digits") or a model file path -> the file the runtime loads: a
    checkpoint for "torch", an .onnx file for "onnx". Raises CheckpointError when there is none, or
    when the file is for the other runtime (with what to do about it)."""
    check_runtime(runtime)
    model = DEFAULT_MODEL if model is None else model
    if isinstance(model, str) and model in BUNDLED:
        path = bundled_path(model, runtime)
        if not path.is_file():
            raise CheckpointError(f"the bundled model {model!r} is missing from the installation ({path})")
        return path
    path = Path(model)
    if not path.is_file():
        names = ", ".join(sorted(BUNDLED))
        kind = "an .onnx file path" if runtime == "onnx" else "a checkpoint file path"
        raise CheckpointError(f"no model {str(model)!r}: give a bundled model name ({names}) or {kind}")
    if runtime == "onnx" and _is_torch_file(path):
        raise CheckpointError(f"{path} is a PyTorch checkpoint; the onnx runtime reads .onnx files: "
                              f"run `scrawl export {path}` first and use the .onnx file it writes")
    if runtime == "torch" and path.suffix.lower() == ".onnx":
        raise CheckpointError(f"{path} is an ONNX model: use the onnx runtime for it (--runtime onnx)")
    return path


def check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise ScrawlError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")


def _is_torch_file(path: Path) -> bool:
    # torch.save writes a zip archive; an ONNX file is a protobuf and never starts with "PK".
    if path.suffix.lower() in (".pt", ".pth"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


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
    >>> rec = Recognizer()              # the bundled digit model, in PyTorch
    >>> rec.predict("seven.png").label
    '7'
    >>> Recognizer("digits", runtime="onnx").predict("seven.png").label   # ONNX Runtime, no torch
    '7'

    model: a bundled model name or a file (a checkpoint for runtime "torch", an .onnx file from
    `scrawl export` for "onnx"). threads: ONNX Runtime's intra-op threads (None: its default, one per
    core); the torch runtime uses torch's process-wide setting (torch.set_num_threads).
    """

    def __init__(self, model: str | os.PathLike | None = None, runtime: str = "torch", *, threads: int | None = None):
        path = resolve_model(model, runtime)
        self.runtime = runtime
        self.path = path
        self.backend = _TorchBackend(path) if runtime == "torch" else _OnnxBackend(path, threads)
        self.classes: list[str] = list(self.backend.meta["classes"])
        self.spec = FrameSpec.from_dict(self.backend.meta["frame"])
        self.name = str(model if model is not None else DEFAULT_MODEL)

    @property
    def meta(self) -> dict:
        """The model's metadata: the checkpoint's, or the .onnx file's sidecar (the same fields)."""
        return self.backend.meta

    @property
    def checkpoint(self):
        """The loaded scrawl.checkpoint.Checkpoint (torch runtime only; None for onnx)."""
        return getattr(self.backend, "checkpoint", None)

    @property
    def model(self):
        """What computes the logits: the torch module, or the ONNX Runtime session."""
        return self.backend.model

    @model.setter
    def model(self, value) -> None:  # the web app swaps in a faster copy of the torch module
        self.backend.model = value

    def logits(self, batch) -> np.ndarray:
        """(N, 1, H, W) (or (N, H, W), (H, W)) float inputs in [0, 1] -> (N, C) float32 logits."""
        return self.backend.logits(_as_batch(batch))

    def probabilities(self, batch, charset: str | None = None) -> np.ndarray:
        """(N, 1, 28, 28) float inputs -> (N, C) float32 probabilities; classes outside `charset` get 0."""
        return softmax(self.logits(batch), charset_indices(self.classes, charset))

    def frame(self, image) -> np.ndarray:
        """The model's view of `image`: (28, 28) float; raises ImageError / EmptyImageError."""
        return frame(image, self.spec)

    def predict(self, image, top_k: int = 3, charset: str | None = None) -> Prediction:
        """Read one image (a path, bytes, PIL image or array); `charset` restricts the answer."""
        framed = self.frame(image)
        probs = self.probabilities(framed, charset)[0]
        return self._prediction(probs, framed, top_k, charset)

    def predict_framed(self, framed: np.ndarray, top_k: int = 3, charset: str | None = None) -> list[Prediction]:
        """Predictions for already framed images (N, 28, 28), in one batch."""
        probs = self.probabilities(framed, charset)
        return [self._prediction(p, f, top_k, charset) for p, f in zip(probs, framed)]

    def _prediction(self, probs: np.ndarray, framed: np.ndarray, top_k: int, charset: str | None = None) -> Prediction:
        allowed = charset_indices(self.classes, charset)
        k = max(1, min(top_k, len(self.classes) if allowed is None else len(allowed)))
        # Stable sort of -probs: among equal probabilities the lower index comes first, like argmax.
        best = np.argsort(-probs, kind="stable")[:k]
        top = [(self.classes[i], float(probs[i])) for i in best]
        return Prediction(label=top[0][0], confidence=top[0][1], top_k=top, framed=framed)


def softmax(logits: np.ndarray, allowed: list[int] | None = None) -> np.ndarray:
    """Row-wise softmax of (N, C) logits as float32; classes not in `allowed` (None: all) get exactly 0."""
    z = np.asarray(logits, dtype=np.float64)  # float64: no overflow, and sums that are 1 to float32 precision
    if allowed is not None:
        masked = np.full(z.shape[1], -np.inf)
        masked[allowed] = 0.0
        z = z + masked
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _as_batch(batch) -> np.ndarray:
    """(H, W), (N, H, W) or (N, 1, H, W) array-like (a CPU torch tensor too) -> C-contiguous
    (N, 1, H, W) float32, the layout both runtimes take."""
    a = np.asarray(batch, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[1] != 1:
        raise ValueError(f"expected images (H, W), (N, H, W) or (N, 1, H, W), got shape {a.shape}")
    return np.ascontiguousarray(a)


class _TorchBackend:
    """Logits from a Scrawl checkpoint in PyTorch (imported here, and only here)."""

    def __init__(self, path: Path):
        from .checkpoint import load_checkpoint

        self.checkpoint = load_checkpoint(path)
        self.meta = self.checkpoint.meta
        self.model = self.checkpoint.build_model()

    def logits(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
            return self.model(x).float().numpy()


class _OnnxBackend:
    """Logits from an exported .onnx file in ONNX Runtime (CPU); never imports torch."""

    def __init__(self, path: Path, threads: int | None = None):
        from .export import load_onnx_session

        self.model, self.meta = load_onnx_session(path, threads=threads)
        self._input = self.meta["input"]["name"]
        self._output = self.meta["output"]["name"]

    def logits(self, batch: np.ndarray) -> np.ndarray:
        # InferenceSession.run may be called from several threads at once (the web app's workers).
        return self.model.run([self._output], {self._input: batch})[0].astype(np.float32, copy=False)
