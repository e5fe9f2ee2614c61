"""Metrics: a model's answers on a test set as numbers, with strict checks of the arrays given.

This module does not run models: it receives arrays (true labels, softmax probabilities) and gives

* `compute_metrics`: a JSON-safe dict with accuracy, mean NLL loss, top-k accuracy, per-class
  precision/recall/F1 (the same numbers as sklearn's classification report), the confusion matrix,
  and optionally a "merged" accuracy where look-alike classes (``c``/``C``, ``o``/``O``...) count as
  the same;
* `most_confused_pairs`: which (true, predicted) pairs go wrong most often;
* `answers`: the answer a user sees for each row of probabilities (the best character, never the
  reject class scrawl.labels.NOT_A_CHARACTER; its probability; whether the reject class beat it).

A model with the reject class has it as one more column of probs and one more name in classes: the
metrics judge the best character (as `scrawl predict` answers), with probabilities from the softmax over
all classes, so probability taken by the reject class lowers the loss and the confidence; per-class
scores and the confusion matrix are over the characters; ``rejected_count`` counts the answers where
the reject class was more probable than the best character. Without the class, nothing changes.

Arrays that do not fit together raise `EvaluationInputError` (a ScrawlError and a ValueError).
scikit-learn is imported inside `compute_metrics`, so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..errors import EvaluationInputError  # defined there so scrawl.evaluation.calibration raises it too
from ..labels import NOT_A_CHARACTER

__all__ = ["Answers", "EvaluationInputError", "answers", "check_character_labels", "compute_metrics",
           "most_confused_pairs"]

_PROB_SUM_TOLERANCE = 5e-3  # float16 softmax rows are this close to 1; logits are not




# --------------------------------------------------------------------------------------------------
# Validation helpers


def _as_labels(labels: Any, n_classes: int | None = None) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise EvaluationInputError(f"labels must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size == 0:
        raise EvaluationInputError("labels is empty: there is nothing to evaluate")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise EvaluationInputError(f"labels must be integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if n_classes is not None:
        bad = (arr < 0) | (arr >= n_classes)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise EvaluationInputError(
                f"labels must lie in [0, {n_classes - 1}] for {n_classes} classes; "
                f"{int(bad.sum())} do not (first: labels[{first}] = {int(arr[first])})"
            )
    return arr


def _as_probs(probs: Any) -> np.ndarray:
    arr = np.asarray(probs)
    if arr.ndim != 2:
        raise EvaluationInputError(f"probs must be a 2-D array (N, C) of softmax outputs, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise EvaluationInputError(f"probs must be floats, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise EvaluationInputError("probs contains NaN or infinite values")
    if arr.size and (arr.min() < -1e-6 or arr.max() > 1 + 1e-6):
        raise EvaluationInputError(
            f"probs must be probabilities in [0, 1] (softmax outputs), got values from {arr.min():.4g} "
            f"to {arr.max():.4g}; did you pass logits? apply softmax first"
        )
    sums = arr.sum(axis=1)
    if sums.size and np.max(np.abs(sums - 1.0)) > _PROB_SUM_TOLERANCE:
        raise EvaluationInputError(
            f"each row of probs must sum to 1 (softmax outputs), got row sums from {sums.min():.4g} "
            f"to {sums.max():.4g}"
        )
    return arr


def _check_classes(classes: Sequence[str], n_classes: int) -> list[str]:
    if isinstance(classes, str):
        names = list(classes)  # "0123456789" is a handy way to spell the digit classes
    else:
        names = [str(c) for c in classes]
    if len(names) != n_classes:
        raise EvaluationInputError(
            f"got {len(names)} class names but probs has {n_classes} columns; they must agree"
        )
    if len(set(names)) != len(names):
        dupes = sorted({c for c in names if names.count(c) > 1})
        raise EvaluationInputError(f"class names must be unique, repeated: {dupes}")
    return names


def check_inputs(labels: Any, probs: Any, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(labels as int64, probs as float64, class names), checked to fit together; EvaluationInputError if not."""
    p = _as_probs(probs)
    y = _as_labels(labels)
    if y.shape[0] != p.shape[0]:
        raise EvaluationInputError(
            f"labels has {y.shape[0]} entries but probs has {p.shape[0]} rows; they must agree"
        )
    names = _check_classes(classes, p.shape[1])
    y = _as_labels(y, len(names))
    return y, p, names


def check_images(images: Any, n: int) -> np.ndarray:
    """(N, H, W) float in [0, 1], ink bright — from uint8 or float, optionally with a channel axis."""
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise EvaluationInputError(f"images must have shape (N, H, W), e.g. (N, 28, 28); got {arr.shape}")
    if arr.shape[0] != n:
        raise EvaluationInputError(f"images has {arr.shape[0]} entries but labels has {n}; they must agree")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if np.issubdtype(arr.dtype, np.bool_):
        return arr.astype(np.float32)
    if not np.issubdtype(arr.dtype, np.floating):
        raise EvaluationInputError(f"images must be uint8 or float in [0, 1], got dtype {arr.dtype}")
    out = arr.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise EvaluationInputError("images contains NaN or infinite values")
    if out.size and (out.min() < -1e-3 or out.max() > 1 + 1e-3):
        raise EvaluationInputError(
            f"float images must lie in [0, 1], got values from {out.min():.4g} to {out.max():.4g}"
        )
    return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------------------------------
# Answers


class Answers(NamedTuple):
    """Per row of probabilities, the answer a user sees (the scrawl.tasks.classify contract)."""

    pred: np.ndarray  # (N,) int64 index into the classes of the best character (never the reject class)
    confidence: np.ndarray  # (N,) that character's probability, in the dtype of probs
    not_a_character: np.ndarray  # (N,) the reject class's probability (0 without the class)
    rejected: np.ndarray  # (N,) bool: the reject class is more probable than the best character


def reject_column(names: Sequence[str] | None) -> int | None:
    """The column of the reject class among `names`, or None (also for names=None)."""
    if names is None or NOT_A_CHARACTER not in names:
        return None
    return list(names).index(NOT_A_CHARACTER)


def character_columns(names: Sequence[str]) -> list[int]:
    """The columns of `names` that are characters (all but the reject class), in order."""
    return [i for i, name in enumerate(names) if name != NOT_A_CHARACTER]


def answers(probs: np.ndarray, names: Sequence[str] | None = None) -> Answers:
    """The best character of each row of (N, C) probabilities over `names` (None: no reject class)."""
    p = np.asarray(probs)
    rows = np.arange(p.shape[0])
    reject = reject_column(names)
    if reject is None:
        pred = np.argmax(p, axis=1)
        no = np.zeros(p.shape[0], dtype=p.dtype)
        return Answers(pred, p[rows, pred], no, np.zeros(p.shape[0], dtype=bool))
    chars = np.asarray(character_columns(names), dtype=np.int64)
    pred = chars[np.argmax(p[:, chars], axis=1)]  # first of equals, like argmax
    conf, junk = p[rows, pred], p[:, reject]
    return Answers(pred, conf, junk, junk > conf)


def check_character_labels(y: np.ndarray, names: list[str]) -> None:
    """EvaluationInputError when labels name the reject class: accuracy is judged on characters."""
    reject = reject_column(names)
    if reject is not None and np.any(y == reject):
        raise EvaluationInputError(
            f"labels name the reject class {NOT_A_CHARACTER!r} ({int(np.sum(y == reject))} of them): the "
            "evaluation judges characters; count what a model rejects with rejected_count instead"
        )


# --------------------------------------------------------------------------------------------------
# Metrics


def _topk_accuracy(labels: np.ndarray, probs: np.ndarray, k: int, reject: int | None = None) -> float:
    if reject is not None:  # the top k lists characters only: the reject class ranks below them all
        probs = probs.copy()
        probs[:, reject] = -1.0
    # Stable sort of -probs: among equal probabilities the lower index ranks first, like argmax.
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(order == labels[:, None], axis=1)))


def _classification_report(y: np.ndarray, pred: np.ndarray, names: list[str]) -> tuple[dict, dict]:
    """({name: {precision, recall, f1, support}}, {"macro_avg": ..., "weighted_avg": ...}) over the
    character classes of `names` (indices into names, the reject class left out)."""
    from sklearn.metrics import precision_recall_fscore_support

    # The numbers sklearn's classification_report prints (it is built on this function); called
    # directly so that class names can never collide with the report's "macro avg"/"accuracy" keys.
    label_range = character_columns(names)
    prec, rec, f1, support = precision_recall_fscore_support(
        y, pred, labels=label_range, average=None, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names[j] for j in label_range)
    }
    averages = {}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(
            y, pred, labels=label_range, average=avg, zero_division=0
        )
        averages[f"{avg}_avg"] = {
            "precision": float(ap),
            "recall": float(ar),
            "f1": float(af),
            "support": int(len(y)),
        }
    return per_class, averages


def compute_metrics(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    *,
    merge: dict[str, str] | None = None,
) -> dict:
    """Metrics for one test set as a JSON-safe dict.

    labels: (N,) true class indices. probs: (N, C) softmax outputs (rows sum to 1). classes: C names,
    possibly ending with the reject class (see the module's docstring; labels must be characters).
    merge: optional map class name -> group name (e.g. ``{"c": "C", "o": "O"}``); classes not in it
    are their own group. Adds ``merged_accuracy``, where a prediction counts as right when its group
    equals the true class's group.

    Returns ``n``, ``num_classes`` (characters), ``accuracy``, ``loss`` (mean negative log-likelihood,
    probs clipped at 1e-12), ``top3_accuracy`` and ``top5_accuracy`` (when there are >= 5 characters),
    ``errors``, ``rejected_count`` and ``rejected_share`` (0 without a reject class), ``calibration``
    (scrawl.evaluation.calibration: ``ece``, ``mce``, ``bins``), ``per_class`` ({name: {precision,
    recall, f1, support}}), ``macro_avg``, ``weighted_avg``, ``confusion_matrix`` (characters x
    characters, rows true, columns predicted), ``classes`` (the characters) and, with merge,
    ``merged_accuracy`` and ``merge``. Raises `EvaluationInputError` (a ValueError) on bad input.
    """
    from sklearn.metrics import confusion_matrix

    from .calibration import calibration

    y, p, names = check_inputs(labels, probs, classes)
    check_character_labels(y, names)
    n = p.shape[0]
    chars = character_columns(names)
    answer = answers(p, names)
    correct = answer.pred == y
    nll = -np.log(np.clip(p[np.arange(n), y], 1e-12, 1.0))

    metrics: dict[str, Any] = {
        "n": int(n),
        "num_classes": len(chars),
        "accuracy": float(np.mean(correct)),
        "loss": float(np.mean(nll)),
    }
    if len(chars) >= 5:
        metrics["top3_accuracy"] = _topk_accuracy(y, p, 3, reject_column(names))
        metrics["top5_accuracy"] = _topk_accuracy(y, p, 5, reject_column(names))
    metrics["errors"] = int(n - int(correct.sum()))
    metrics["rejected_count"] = int(answer.rejected.sum())
    metrics["rejected_share"] = float(np.mean(answer.rejected))
    if merge is not None:
        metrics.update(_merged_accuracy(merge, names, answer.pred, y))
    metrics["calibration"] = calibration(correct, answer.confidence)
    per_class, averages = _classification_report(y, answer.pred, names)
    metrics["per_class"] = per_class
    metrics.update(averages)
    metrics["confusion_matrix"] = confusion_matrix(y, answer.pred, labels=chars).astype(int).tolist()
    metrics["classes"] = [names[i] for i in chars]
    return metrics


def _merged_accuracy(merge: dict[str, str], names: list[str], pred: np.ndarray, y: np.ndarray) -> dict:
    unknown = sorted(str(k) for k in merge if str(k) not in set(names))
    if unknown:
        raise EvaluationInputError(f"merge names classes that do not exist: {unknown}")
    groups = np.array([str(merge.get(name, name)) for name in names], dtype=object)
    return {"merged_accuracy": float(np.mean(groups[pred] == groups[y])),
            "merge": {str(k): str(v) for k, v in merge.items()}}


def most_confused_pairs(confusion: np.ndarray, classes: Sequence[str], k: int = 20) -> list[dict]:
    """The k most frequent off-diagonal cells of a confusion matrix (rows true, columns predicted).

    Returns ``[{"true": name, "predicted": name, "count": n}, ...]``, largest count first (ties in
    row-then-column order); cells with count 0 are left out.
    """
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise EvaluationInputError(f"confusion must be a square matrix, got shape {cm.shape}")
    names = _check_classes(classes, cm.shape[0])
    if k < 0:
        raise EvaluationInputError(f"k must be >= 0, got {k}")
    off = cm.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    flat = off.ravel()
    order = np.argsort(-flat, kind="stable")
    pairs = []
    for idx in order[:k]:
        count = int(flat[idx])
        if count <= 0:
            break
        t, pr = divmod(int(idx), cm.shape[0])
        pairs.append({"true": names[t], "predicted": names[pr], "count": count})
    return pairs
