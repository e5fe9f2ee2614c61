"""Report: an evaluation as a folder people can read, report.md plus the pictures it embeds, and metrics.json.

`write_report` takes what `compute_metrics` returned with the arrays it was computed from (and the images
as the model saw them) and writes ``report.md`` (summary, training curves, confusion matrix, calibration, the
most confident mistakes, the most confused pairs, the classification report), the PNG files it links
(scrawl.evaluation.plots) and ``metrics.json``. Every file is written atomically
(scrawl.fsutil.atomic_write): a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..fsutil import atomic_write
from ..labels import NOT_A_CHARACTER
from .calibration import calibration
from .metrics import (EvaluationInputError, answers, character_columns, check_character_labels, check_images,
                      check_inputs, most_confused_pairs)
from .plots import (PAIRS_MIN_CLASSES, PAIRS_SHOWN, history_series, plot_confusion, plot_curves, plot_errors,
                    plot_pairs, plot_reliability)

logger = logging.getLogger(__name__)

__all__ = ["write_report"]

PAIRS_LISTED = 20  # confused pairs listed in report.md

# A list of numbers that json.dumps(indent=...) spread over lines (it starts with "[" + newline).
_NUMBER_LIST = re.compile(r"\[\n\s*((?:-?[0-9][0-9.eE+-]*,?\s*)+)\]")


def _json_safe(obj: Any) -> Any:
    """Plain Python types only; NaN/inf become None so the JSON stays valid."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)



# --------------------------------------------------------------------------------------------------
# Markdown


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|])")


def _md(text: Any) -> str:
    """Escape Markdown (and table pipes) in a value that goes into report.md."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def _fmt_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return "—"
        return f"{value:.6g}"
    return str(value)


def _fmt_seconds(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def _history_summary(history: list[dict]) -> list[str]:
    lines = []
    xs, ys = history_series(history, "val_acc")
    lines.append(f"- Epochs: {len(history)}")
    if ys:
        best = int(np.argmax(ys))
        lines.append(f"- Best validation accuracy: {ys[best]:.2%} (epoch {xs[best]:g})" if max(ys) <= 1
                     else f"- Best validation accuracy: {ys[best]:.4g} (epoch {xs[best]:g})")
    _, secs = history_series(history, "seconds")
    if secs:
        lines.append(f"- Training time: {_fmt_seconds(sum(secs))}")
    return lines


def _answer_rows(metrics: dict, rejects: bool) -> list[str]:
    """Summary rows on how answers are flagged: calibration, rejected, uncertain (where known)."""
    n = metrics["n"]
    rows = [f"| Calibration error (ECE, {metrics['calibration']['n_bins']} bins) | "
            f"{metrics['calibration']['ece']:.2%} |"]
    if rejects:
        rows.append(f"| Rejected as not a character | {metrics['rejected_count']} / {n} "
                    f"({metrics['rejected_share']:.2%}) |")
    if "uncertain_count" in metrics:
        rule = f"{'rejected or ' if rejects else ''}confidence below {metrics['uncertain_below']:.0%}"
        acc = metrics["confident_accuracy"]
        rows.append(f"| Uncertain ({rule}) | {metrics['uncertain_count']} / {n}; accuracy on the others "
                    f"{'—' if acc is None else format(acc, '.2%')} |")
    return rows


def _calibration_section(cal: dict, picture: str) -> list[str]:
    """report.md's calibration section: the ECE, what it means, and the reliability diagram."""
    return ["## Calibration", "",
            f"Expected calibration error (ECE) {cal['ece']:.2%}, maximum {cal['mce']:.2%} "
            f"({cal['n_bins']} equal confidence bins). The ECE is how far, on average over the answers, "
            "the confidence shown differs from how often answers given with that confidence are right "
            "(0% would mean a confidence of 90% is right 9 times in 10); bars below the diagonal are "
            "over-confident bins, bars above it under-confident ones.", "", f"![Reliability diagram]({picture})", ""]


def _render_markdown(*, title: str, metrics: dict, info: dict, files: dict[str, Path], history: list[dict],
                     gallery_count: int, max_errors: int, pairs: list[dict],
                     curves_skipped_reason: str | None, rejects: bool) -> str:
    n = metrics["n"]
    errors = metrics["errors"]
    out = [f"# {_md(title)}", ""]
    out += ["## Summary", "", "| Metric | Value |", "|---|---|"]
    out.append(f"| Accuracy | {metrics['accuracy']:.2%} ({n - errors} / {n}) |")
    out.append(f"| Errors | {errors} / {n} ({errors / n:.2%}) |")
    out.append(f"| Loss (mean NLL) | {metrics['loss']:.4f} |")
    if "top3_accuracy" in metrics:
        out.append(f"| Top-3 accuracy | {metrics['top3_accuracy']:.2%} |")
    if "top5_accuracy" in metrics:
        out.append(f"| Top-5 accuracy | {metrics['top5_accuracy']:.2%} |")
    if "merged_accuracy" in metrics:
        out.append(f"| Merged accuracy (look-alike classes count as equal) | {metrics['merged_accuracy']:.2%} |")
    if "macro_avg" in metrics:
        out.append(f"| Macro F1 | {metrics['macro_avg']['f1']:.4f} |")
    out += _answer_rows(metrics, rejects)
    out.append(f"| Classes | {len(metrics['classes'])} |")
    for key, value in info.items():
        out.append(f"| {_md(key)} | {_md(_fmt_value(value))} |")
    out.append("")

    out += ["## Training curves", ""]
    if "curves" in files:
        out += _history_summary(history) + ["", f"![Accuracy and loss]({files['curves'].name})", ""]
    else:
        out += [curves_skipped_reason or "No training history was given, so there are no curves.", ""]

    out += ["## Confusion matrix", "", "Rows are the true class, columns the prediction.", ""]
    out += [f"![Confusion matrix]({files['confusion'].name})", ""]
    out += _calibration_section(metrics["calibration"], files["calibration"].name)

    out += ["## Misclassified images", ""]
    if "errors" in files:
        if errors == 0:
            out.append("No misclassified images: every prediction was right.")
        else:
            shown = f"all {errors}" if gallery_count == errors else f"the {gallery_count} most confident of {errors}"
            out.append(f"Showing {shown} mistakes; each tile reads true→predicted and the prediction's confidence.")
        out += ["", f"![Misclassified images]({files['errors'].name})", ""]
    else:
        out += [f"{errors} mistakes; no gallery (max_errors = {max_errors}).", ""]

    out += ["## Most confused pairs", ""]
    if pairs:
        if "confused_pairs" in files:
            out += [f"![Most confused pairs]({files['confused_pairs'].name})", ""]
        for pair in pairs:
            out.append(f"- {_md(pair['true'])} → {_md(pair['predicted'])}: {pair['count']}")
    else:
        out.append("None: no class was ever mistaken for another.")
    out.append("")

    out += ["## Classification report", "", "| Class | Precision | Recall | F1 | Support |", "|---|---:|---:|---:|---:|"]
    for name, row in metrics.get("per_class", {}).items():
        out.append(f"| {_md(name)} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |")
    for key, label in (("macro_avg", "**macro avg**"), ("weighted_avg", "**weighted avg**")):
        if key in metrics:
            row = metrics[key]
            out.append(f"| {label} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |")
    out.append("")
    return "\n".join(out)


def write_report(
    out_dir: str | os.PathLike,
    *,
    metrics: dict,
    images: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    history: list[dict] | None = None,
    title: str = "Scrawl evaluation",
    info: dict | None = None,
    max_errors: int = 64,
) -> dict[str, Path]:
    """Write report.md, metrics.json and the pictures report.md embeds into out_dir.

    metrics: what `compute_metrics` returned for these labels/probs. images: (N, H, W) uint8 or
    float in [0, 1], ink bright (drawn dark on white). history: per-epoch dicts from training
    (``epoch``, ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr``, ``seconds``);
    None/empty means no curves.png. info: extra key/values for the report header.

    Returns ``{name: path}`` for the files written: ``curves`` (only with history), ``confusion``,
    ``errors`` (unless max_errors is 0), ``confused_pairs`` (only with more than 10 classes and at
    least one mistake), ``metrics`` and ``report``. metrics.json holds ``gallery_count``, the number
    of images drawn in errors.png. Everything is checked before anything is written.
    """
    y, p, names = check_inputs(labels, probs, classes)
    check_character_labels(y, names)
    imgs = check_images(images, y.shape[0])
    answer = answers(p, names)  # what a user sees: the best character, never the reject class
    pred, conf = answer.pred, answer.confidence
    cm = _check_report_args(metrics, y, pred, names, max_errors)
    history = list(history or [])
    if any(not isinstance(row, Mapping) for row in history):
        raise EvaluationInputError("history must be a list of per-epoch dicts")
    info = dict(info or {})

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")]  # most confident mistakes first
    chars = [names[i] for i in character_columns(names)]
    pairs = most_confused_pairs(cm, chars, k=PAIRS_LISTED)
    payload = dict(metrics)
    payload.setdefault("calibration", calibration(pred == y, conf))  # a metrics dict from before issue 15

    files, curves_skipped = _draw(out, history, cm, names, float(metrics["accuracy"]), max_errors, wrong, pairs,
                                  imgs, y, pred, conf)
    files["calibration"] = plot_reliability(payload["calibration"], out / "calibration.png")
    gallery_count = min(max_errors, int(wrong.size)) if "errors" in files else 0

    payload["info"] = info
    payload["gallery_count"] = gallery_count
    payload["most_confused_pairs"] = pairs
    if history:
        payload["history"] = history
    payload = _json_safe(payload)
    files["metrics"] = atomic_write(out / "metrics.json", _metrics_json(payload), binary=False)

    markdown = _render_markdown(
        title=title, metrics=payload, info=info, files=files, history=history, gallery_count=gallery_count,
        max_errors=max_errors, pairs=pairs, curves_skipped_reason=curves_skipped,
        rejects=NOT_A_CHARACTER in names,
    )
    files["report"] = atomic_write(out / "report.md", markdown, binary=False)
    logger.info("evaluation report written to %s (%s)", out, ", ".join(sorted(p.name for p in files.values())))
    return files


def _check_report_args(metrics: Any, y: np.ndarray, pred: np.ndarray, names: list[str], max_errors: int) -> np.ndarray:
    """Check the metrics dict against the arrays (`pred`: the answers, indices into names); return its
    confusion matrix over the character classes (computed if it has none)."""
    if not isinstance(metrics, Mapping) or "n" not in metrics or "accuracy" not in metrics:
        raise EvaluationInputError("metrics must be the dict compute_metrics returned")
    if int(metrics["n"]) != y.shape[0]:
        raise EvaluationInputError(
            f"metrics are for {metrics['n']} images but labels has {y.shape[0]}; compute them from the same arrays"
        )
    if max_errors < 0:
        raise EvaluationInputError(f"max_errors must be >= 0, got {max_errors}")
    chars = character_columns(names)
    if "confusion_matrix" in metrics:
        cm = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
        if cm.shape != (len(chars), len(chars)):
            raise EvaluationInputError(
                f"metrics['confusion_matrix'] has shape {cm.shape}, expected {(len(chars), len(chars))}"
            )
        return cm
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y, pred, labels=chars)


def _draw(out: Path, history: list[dict], cm: np.ndarray, names: list[str], accuracy: float, max_errors: int,
          wrong: np.ndarray, pairs: list[dict], imgs: np.ndarray, y: np.ndarray, pred: np.ndarray,
          conf: np.ndarray) -> tuple[dict[str, Path], str | None]:
    """Draw the report's pictures into `out`: ({name: path}, why there are no curves or None)."""
    files: dict[str, Path] = {}
    curves_skipped = None
    if history:
        path = plot_curves(history, out / "curves.png")
        if path is not None:
            files["curves"] = path
        else:
            curves_skipped = "The training history has no accuracy or loss values, so there are no curves."
    files["confusion"] = plot_confusion(cm, [names[i] for i in character_columns(names)], accuracy,
                                        out / "confusion.png")
    if max_errors > 0 or wrong.size == 0:
        files["errors"] = plot_errors(wrong[:max_errors], int(wrong.size), imgs, y, pred, conf, names,
                                      out / "errors.png")
    if len(cm) >= PAIRS_MIN_CLASSES and pairs:  # cm: characters x characters
        files["confused_pairs"] = plot_pairs(pairs[:PAIRS_SHOWN], imgs, y, pred, conf, names,
                                             out / "confused_pairs.png")
    return files, curves_skipped


def _metrics_json(payload: dict) -> str:
    """metrics.json's text: indented JSON, with each list of numbers on one line."""
    text = json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    # One line per list of numbers (the confusion matrix would otherwise take C*C lines). Only lists
    # that json.dumps broke over lines match: a string never holds a raw newline, so strings are safe.
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text)
