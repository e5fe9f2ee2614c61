"""Evaluate: run a recognizer over a labelled dataset and score it, for every runtime alike.

`evaluate(recognizer, dataset)` maps the dataset's classes onto the model's (optionally within a
charset), passes images framed differently from the model's training data through Scrawl's framing
(as a user's image would be), runs the model in batches through `Recognizer.probabilities` (PyTorch,
ONNX Runtime, or an int8 ONNX model) and computes the metrics of the task named in the model card,
plus how many answers were uncertain (`uncertainty`: the web API's rule, rejected as not a character or
confidence below scrawl.settings.UNCERTAIN_BELOW) and the accuracy on the others. A model with the reject
class (scrawl.labels.NOT_A_CHARACTER) keeps it among the evaluation's classes and columns of
probabilities; the metrics judge the best character (scrawl.evaluation.metrics). The `Evaluation` it
returns holds what `write_report` draws. With progress=True a tqdm bar (images/s) goes to stderr;
otherwise nothing is printed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ScrawlError
from ..settings import UNCERTAIN_BELOW
from .metrics import EvaluationInputError, answers

if TYPE_CHECKING:  # pragma: no cover
    from ..data import Dataset
    from ..runtime.recognizer import Recognizer

__all__ = ["REFRAME_CHOICES", "Evaluation", "evaluate", "uncertainty"]

REFRAME_CHOICES = ("auto", "yes", "no")


@dataclass
class Evaluation:
    """One model on one dataset: the metrics and the arrays they were computed from."""

    metrics: dict  # what the model's task computed (for classify: scrawl.evaluation.compute_metrics)
    images: np.ndarray = field(repr=False)  # (N, H, W) uint8, ink bright: the images as shown to the model
    labels: np.ndarray = field(repr=False)  # (N,) int64, indices into `classes`
    probs: np.ndarray = field(repr=False)  # (N, C) float32 probabilities over `classes`
    classes: list[str]  # the model's classes the answers were restricted to (all, or a charset's), the
    # reject class included where the model has it (answers never name it: see metrics.answers)
    info: dict  # for a report's header: model, file, architecture, dataset, charset, preprocessing
    history: list[dict] = field(default_factory=list, repr=False)  # the model's training history, if any

    def write_report(self, out_dir: str | os.PathLike, *, title: str = "Scrawl evaluation",
                     max_errors: int = 64) -> dict[str, Path]:
        """`scrawl.evaluation.write_report` for this evaluation (curves from the model's history)."""
        from .report import write_report

        return write_report(out_dir, metrics=self.metrics, images=self.images, labels=self.labels,
                            probs=self.probs, classes=self.classes, history=self.history, title=title,
                            info=self.info, max_errors=max_errors)


def evaluate(recognizer: Recognizer, dataset: Dataset, *, charset: str | None = None, reframe: str | bool = "auto",
             batch_size: int = 1000, progress: bool = False, uncertain_below: float = UNCERTAIN_BELOW) -> Evaluation:
    """Score `recognizer` (a scrawl Recognizer, any runtime) on `dataset` (a scrawl.data.Dataset, or
    anything with ``name``, ``split``, ``images`` (N, H, W) uint8, ``labels`` (N,) and ``classes``).

    charset: answer only within this named charset (scrawl.labels.CHARSETS); the metrics are over its
    classes. reframe: "yes" passes every image through Scrawl's framing first, "no" never, "auto" when
    the dataset was framed differently from the model's training data (scrawl.data.framing_of; a
    foreign framing always is). progress: a tqdm bar on stderr while the model runs (images/s).
    uncertain_below: the metrics count the answers below this confidence (`uncertainty`).
    Raises ScrawlError when the dataset has classes the model cannot answer.
    """
    if reframe not in (True, False, *REFRAME_CHOICES):
        raise ScrawlError(f"reframe must be one of {', '.join(REFRAME_CHOICES)}, not {reframe!r}")
    if int(batch_size) < 1:
        raise ScrawlError(f"batch_size must be at least 1, got {batch_size}")
    from ..labels import charset_indices
    from ..tasks import DEFAULT_TASK, get_task

    allowed = charset_indices(recognizer.classes, charset) or list(range(len(recognizer.classes)))
    classes = [recognizer.classes[i] for i in allowed]
    labels = _labels_for(dataset, classes, charset)
    images = _uint8_images(dataset.images, len(labels))
    reframed = _should_reframe(reframe, dataset.name, recognizer.spec.framing)
    desc = f"evaluating {dataset.name} {dataset.split}" if progress else None
    shown, probs = _run(recognizer, images, allowed, charset, reframed, int(batch_size), desc)
    metrics = get_task(recognizer.meta.get("task", DEFAULT_TASK)).metrics(labels, probs, classes)
    metrics.update(uncertainty(labels, probs, uncertain_below, classes))
    history = recognizer.meta.get("history") or []
    return Evaluation(metrics=metrics, images=shown, labels=labels, probs=probs, classes=classes,
                      info=_info(recognizer, dataset, len(labels), charset, reframed), history=list(history))


def uncertainty(labels: np.ndarray, probs: np.ndarray, below: float = UNCERTAIN_BELOW,
                classes: Sequence[str] | None = None) -> dict:
    """How many answers are uncertain, with the rule `scrawl predict` and the web API use (rejected as
    not a character, or the best character's probability below `below`), and the accuracy on the
    confident ones and on the uncertain ones (None when there are none): ``uncertain_below``,
    ``uncertain_count``, ``confident_accuracy``, ``uncertain_accuracy``. `classes` names the columns of
    probs (needed only to find the reject class; None: the model has none)."""
    answer = answers(probs, classes)
    confidence = answer.confidence.astype(np.float64)  # compared like Prediction.confidence (a Python float)
    right = answer.pred == np.asarray(labels)
    unsure = answer.rejected | (confidence < below)

    def share(mask: np.ndarray) -> float | None:
        return float(right[mask].mean()) if mask.any() else None

    return {"uncertain_below": float(below), "uncertain_count": int(unsure.sum()),
            "confident_accuracy": share(~unsure), "uncertain_accuracy": share(unsure)}


def _labels_for(dataset, classes: Sequence[str], charset: str | None) -> np.ndarray:
    """The dataset's labels as indices into the model's `classes`; ScrawlError for classes it lacks."""
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(dataset.classes) - set(index))
    if unknown:
        within = f" with charset {charset}" if charset else ""
        raise ScrawlError(f"{dataset.name} has classes the model{within} cannot answer: {' '.join(unknown)}")
    mapping = np.asarray([index[c] for c in dataset.classes], dtype=np.int64)
    return mapping[np.asarray(dataset.labels, dtype=np.int64)]


def _uint8_images(images: Any, n: int) -> np.ndarray:
    """A dataset's images as an (N, H, W) uint8 array (a CPU tensor is viewed, not copied)."""
    arr = np.asarray(images)
    if arr.ndim != 3 or arr.shape[0] != n:
        raise EvaluationInputError(f"dataset images must be (N, H, W) with N = {n} labels, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise EvaluationInputError(f"dataset images must be uint8 (0-255, ink bright), got dtype {arr.dtype}")
    return arr


def _should_reframe(reframe: str | bool, dataset_name: str, model_framing: str) -> bool:
    if reframe in (True, "yes"):
        return True
    if reframe in (False, "no"):
        return False
    from ..data import framing_of

    return framing_of(dataset_name) != model_framing  # None (a foreign framing) never equals a model's


def _run(recognizer, images: np.ndarray, allowed: list[int], charset: str | None, reframed: bool,
         batch_size: int, desc: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(the images as shown to the model, uint8; probabilities over the `allowed` classes), in batches,
    with a progress bar described by `desc` (None: no bar)."""
    from tqdm import tqdm

    from ..vision.framing import frame_batch, to_input

    shown, probs = [], []
    with tqdm(total=len(images), desc=desc, unit="img", disable=desc is None) as bar:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            if reframed:
                framed = frame_batch(batch, recognizer.spec)
                shown.append((framed * 255).round().astype(np.uint8))
                x = to_input(framed)
            else:
                shown.append(batch)
                x = to_input(batch)
            probs.append(recognizer.probabilities(x, charset)[:, allowed])
            bar.update(len(batch))
    if not probs:
        raise EvaluationInputError("the dataset is empty: there is nothing to evaluate")
    return np.concatenate(shown), np.concatenate(probs)


def _info(recognizer, dataset, n: int, charset: str | None, reframed: bool) -> dict:
    """The report header's key/values (a torch model's are what `scrawl evaluate` always wrote)."""
    meta = recognizer.meta
    info: dict[str, Any] = {"model": recognizer.name}
    if recognizer.checkpoint is not None:  # torch
        info["checkpoint"] = str(recognizer.path)
    else:
        info["model file"] = str(recognizer.path)
        info["runtime"] = "onnx (int8)" if meta.get("quantization") else "onnx"
    info.update({"architecture": meta.get("arch"), "parameters": meta.get("parameters"),
                 "trained on": (meta.get("dataset") or {}).get("name"),
                 "dataset": f"{dataset.name} ({dataset.split}, {n} images)",
                 "charset": charset or "all classes",
                 "preprocessing": "Scrawl's framing (as for a user's image)" if reframed
                 else "none (the dataset's own framing)"})
    return info
