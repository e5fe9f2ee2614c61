"""The `classify` task: one image in, one character out (softmax over the model's classes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .base import BatchScore, Task


@dataclass
class Answer:
    """One image's answer: the best class, its probability, and the best k with probabilities."""

    label: str
    confidence: float
    top_k: list[tuple[str, float]]


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


class ClassifyTask(Task):
    name = "classify"

    def model_config(self, classes: Sequence[str]) -> dict:
        return {"num_classes": len(classes)}

    def collate(self, targets):
        return targets  # (B,) int64 class indices, as the loss takes them

    def loss(self, logits, targets, *, label_smoothing: float = 0.0):
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)

    def score(self, logits, targets, loss: float) -> BatchScore:
        n = len(targets)
        return BatchScore(loss * n, int((logits.argmax(1) == targets).sum()), n)

    def validate(self, logits, targets) -> BatchScore:
        import torch

        probs = torch.softmax(logits.float(), dim=1)
        nll = torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), targets, reduction="sum")
        return BatchScore(float(nll), int((probs.argmax(1) == targets).sum()), len(targets))

    def probabilities(self, logits: np.ndarray, allowed: list[int] | None = None) -> np.ndarray:
        return softmax(logits, allowed)

    def decode(self, probs: np.ndarray, classes: Sequence[str], top_k: int,
               allowed: list[int] | None = None) -> list[Answer]:
        k = max(1, min(top_k, len(classes) if allowed is None else len(allowed)))
        out = []
        for row in np.asarray(probs):
            # Stable sort of -probs: among equal probabilities the lower index comes first, like argmax.
            best = np.argsort(-row, kind="stable")[:k]
            top = [(classes[i], float(row[i])) for i in best]
            out.append(Answer(top[0][0], top[0][1], top))
        return out

    def metrics(self, targets: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict:
        from ..evaluation.metrics import compute_metrics
        from ..labels import merge_map

        return compute_metrics(targets, probs, list(classes), merge=merge_map(classes))

    def output_spec(self, num_classes: int) -> dict:
        return {"name": "logits", "shape": ["N", int(num_classes)]}
