"""Evaluation: how well a model reads a labelled dataset, as numbers and as a report people look at.

- `evaluate` (evaluate.py) runs any recognizer, PyTorch, ONNX or int8 ONNX, over a dataset: class
  mapping, charset restriction, reframing of foreign datasets, batching; returns an `Evaluation`.
- `compute_metrics`, `most_confused_pairs` (metrics.py): accuracy, loss, top-k, per-class scores,
  confusion matrix, merged-case accuracy, answers rejected as not a character, and calibration (ECE and
  the reliability bins, calibration.py), from arrays; bad arrays raise `EvaluationInputError`.
- `write_report` (report.py, pictures in plots.py): report.md, its PNG files and metrics.json.
- Line models: `line_test_set` and `evaluate_lines` (lines.py) read line images through
  `Recognizer.read` and score CER, WER, exact lines, word accuracy, by length and by writer;
  line_report.py writes their report (worst lines, most confused characters).

Importing this package is cheap: matplotlib, scikit-learn and the runtimes load inside the functions.
"""

from .evaluate import Evaluation, evaluate
from .metrics import EvaluationInputError, compute_metrics, most_confused_pairs
from .report import write_report

__all__ = [
    "Evaluation",
    "EvaluationInputError",
    "compute_metrics",
    "evaluate",
    "most_confused_pairs",
    "write_report",
]
