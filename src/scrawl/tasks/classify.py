"""The `classify` task: one image in, one character out (softmax over the model's classes).

A model may have a reject class, scrawl.labels.NOT_A_CHARACTER, after its characters (issue 15): "this
is no character" (a tap, a dash, a scribble, two characters). An answer never names it: its `label` is
the best character, its `confidence` that character's probability under the softmax over all classes
(so what the reject class takes lowers it), `top_k` lists characters only, and `not_a_character` /
`rejected` tell how likely, and whether more likely than the best character, the image is none.
A model without the class answers as it always did (not_a_character 0.0, never rejected).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..labels import NOT_A_CHARACTER
from ..settings import UNCERTAIN_BELOW
from .base import BatchScore, Task


@dataclass
class Answer:
    """One image's answer: the best character, its probability, the best k characters with
    probabilities, the reject class's probability, and whether that beats the best character."""

    label: str
    confidence: float
    top_k: list[tuple[str, float]]
    not_a_character: float = 0.0
    rejected: bool = False

    @property
    def uncertain(self) -> bool:
        """Not to be taken as read: rejected, or the best character below scrawl.settings.UNCERTAIN_BELOW."""
        return self.rejected or self.confidence < UNCERTAIN_BELOW


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
        reject = _reject_index(classes)
        chars = np.array([i for i in (range(len(classes)) if allowed is None else sorted(allowed)) if i != reject],
                         dtype=np.int64)
        k = max(1, min(top_k, len(chars)))
        out = []
        for row in np.asarray(probs):
            # Stable sort of -probs: among equal probabilities the lower index comes first, like argmax.
            best = chars[np.argsort(-row[chars], kind="stable")[:k]]
            top = [(classes[i], float(row[i])) for i in best]
            none = 0.0 if reject is None else float(row[reject])
            out.append(Answer(top[0][0], top[0][1], top, none, none > top[0][1]))
        return out

    def metrics(self, targets: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict:
        from ..evaluation.metrics import compute_metrics
        from ..labels import merge_map

        return compute_metrics(targets, probs, list(classes), merge=merge_map(classes))

    def output_spec(self, num_classes: int) -> dict:
        return {"name": "logits", "shape": ["N", int(num_classes)]}


def _reject_index(classes: Sequence[str]) -> int | None:
    """Where the reject class is in `classes`, or None for a model without it."""
    return next((i for i, c in enumerate(classes) if c == NOT_A_CHARACTER), None)
