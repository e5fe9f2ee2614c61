"""Calibration: whether a model's confidence means what it says (issue 15).

`calibration(correct, confidence)` sorts the answers into 15 equal-width confidence bins and compares,
in each, how often the answers were right with how sure the model was: the expected calibration error
(ECE, Guo et al. 2017, "On Calibration of Modern Neural Networks", eq. 3: the sum over bins of
|accuracy - confidence| weighted by the bin's share of the answers) and the maximum calibration error
(MCE, the largest gap of a non-empty bin). The bin table is what the reliability diagram draws
(scrawl.evaluation.plots.plot_reliability). Numpy only: scikit-learn's `calibration_curve` bins the
same way but drops empty bins and gives no counts, which both the ECE's weights and the diagram need.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import EvaluationInputError

__all__ = ["BINS", "calibration"]

BINS = 15  # Guo et al.'s choice, and what published ECE figures are usually comparable with


def calibration(correct: Any, confidence: Any, n_bins: int = BINS) -> dict:
    """ECE, MCE and the bin table of answers with this `confidence` (the answer's probability, in
    [0, 1]) and `correct` (whether it was right), as a JSON-safe dict: ``n_bins``, ``ece``, ``mce``
    and ``bins`` (per bin ``lower``, ``upper``, ``count``, ``accuracy``, ``confidence``, ``gap``;
    the last three None for an empty bin). Raises `EvaluationInputError` for arrays that do not fit."""
    right, conf = _check(correct, confidence, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin m holds (edges[m], edges[m + 1]], the first also 0: Guo et al.'s bins, and the searchsorted
    # of sklearn.calibration.calibration_curve(strategy="uniform"), so the two agree bin for bin.
    ids = np.searchsorted(edges[1:-1], conf)
    counts = np.bincount(ids, minlength=n_bins)
    right_sum = np.bincount(ids, weights=right, minlength=n_bins)
    conf_sum = np.bincount(ids, weights=conf, minlength=n_bins)
    filled = counts > 0
    acc = np.divide(right_sum, counts, out=np.zeros(n_bins), where=filled)
    mean_conf = np.divide(conf_sum, counts, out=np.zeros(n_bins), where=filled)
    gap = np.abs(acc - mean_conf)
    bins = [{"lower": float(edges[m]), "upper": float(edges[m + 1]), "count": int(counts[m]),
             "accuracy": float(acc[m]) if filled[m] else None,
             "confidence": float(mean_conf[m]) if filled[m] else None,
             "gap": float(gap[m]) if filled[m] else None} for m in range(n_bins)]
    return {"n_bins": int(n_bins), "ece": float(np.sum(gap * counts) / conf.size),
            "mce": float(gap[filled].max()), "bins": bins}


def _check(correct: Any, confidence: Any, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    right = np.asarray(correct)
    conf = np.asarray(confidence, dtype=np.float64)
    if right.ndim != 1 or conf.shape != right.shape:
        raise EvaluationInputError(f"correct and confidence must be 1-D arrays of one length, got shapes "
                                   f"{right.shape} and {conf.shape}")
    if conf.size == 0:
        raise EvaluationInputError("there are no answers to calibrate")
    if not np.all(np.isfinite(conf)) or conf.min() < -1e-6 or conf.max() > 1 + 1e-6:  # compute_metrics's slack
        raise EvaluationInputError("confidence must be probabilities in [0, 1]")
    if int(n_bins) < 1:
        raise EvaluationInputError(f"n_bins must be at least 1, got {n_bins}")
    return right.astype(np.float64), np.clip(conf, 0.0, 1.0)
