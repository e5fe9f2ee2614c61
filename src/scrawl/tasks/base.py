"""The Task interface: what a kind of recognizer decides, so the rest of Scrawl need not.

Training-side methods take and return torch tensors (torch is imported by the caller); inference-side
methods take numpy arrays and never import torch, so ONNX Runtime serving stays torch-free.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class BatchScore:
    """Running sums over batches: the loss summed over samples, samples right, samples seen."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0

    def add(self, other: "BatchScore") -> None:
        self.loss_sum += other.loss_sum
        self.correct += other.correct
        self.seen += other.seen

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.seen)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.seen)

    def as_list(self) -> list:
        return [self.loss_sum, self.correct, self.seen]

    @classmethod
    def from_list(cls, values: Sequence) -> "BatchScore":
        return cls(float(values[0]), int(values[1]), int(values[2]))


class Task(ABC):
    """One kind of recognizer. Instances are stateless; get one with scrawl.tasks.get_task(name)."""

    name: str = ""

    # --- model -------------------------------------------------------------------------------------
    @abstractmethod
    def model_config(self, classes: Sequence[str]) -> dict:
        """The architecture arguments this task fixes, e.g. {"num_classes": 62}."""

    # --- training (torch tensors) ------------------------------------------------------------------
    @abstractmethod
    def collate(self, targets: Any) -> Any:
        """A batch's targets as the loss takes them."""

    @abstractmethod
    def loss(self, logits: Any, targets: Any, *, label_smoothing: float = 0.0) -> Any:
        """Mean training loss of a batch (a scalar tensor)."""

    @abstractmethod
    def score(self, logits: Any, targets: Any, loss: float) -> BatchScore:
        """A training batch's contribution to the running figures (`loss` is its mean loss)."""

    @abstractmethod
    def validate(self, logits: Any, targets: Any) -> BatchScore:
        """A validation batch's loss sum and correct count, computed in float32."""

    # --- inference (numpy) -------------------------------------------------------------------------
    @abstractmethod
    def probabilities(self, logits: np.ndarray, allowed: list[int] | None = None) -> np.ndarray:
        """Model outputs -> probabilities; entries outside `allowed` (None: all) are exactly 0."""

    @abstractmethod
    def decode(self, probs: np.ndarray, classes: Sequence[str], top_k: int, allowed: list[int] | None = None) -> list:
        """Probabilities -> one answer per sample, best first, with its alternatives."""

    # --- evaluation --------------------------------------------------------------------------------
    @abstractmethod
    def metrics(self, targets: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict:
        """JSON-safe figures for a test set."""

    # --- export ------------------------------------------------------------------------------------
    @abstractmethod
    def output_spec(self, num_classes: int) -> dict:
        """The exported model's output: {"name", "shape"} with "N" for the batch axis."""
