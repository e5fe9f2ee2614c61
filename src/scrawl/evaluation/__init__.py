"""Turn a model's predictions on a test set into numbers and a report people would rather look at.

This module does not run models: it receives arrays (true labels, softmax probabilities, the images)
and produces

* `compute_metrics` — a JSON-safe dict: accuracy, mean NLL loss, top-k accuracy, per-class
  precision/recall/F1 (the same numbers as sklearn's classification report), the confusion matrix,
  and optionally a "merged" accuracy where look-alike classes (``c``/``C``, ``o``/``O``/``0``...)
  count as the same;
* `most_confused_pairs` — which (true, predicted) pairs go wrong most often;
* `write_report` — a folder with ``report.md`` plus the pictures it embeds (training curves,
  confusion-matrix heatmap, a gallery of the most confident mistakes, the most confused pairs with
  examples) and ``metrics.json``. Every file is written atomically (temp file + ``os.replace``).

Matplotlib and scikit-learn are imported lazily inside the functions, so importing this module is
cheap. Figures are drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure``, Agg
renderer) without pyplot: nothing global is switched (a user's notebook backend stays as it is) and
no figure is left registered anywhere, so repeated reports do not grow memory.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScrawlError

logger = logging.getLogger(__name__)

__all__ = [
    "EvaluationInputError",
    "compute_metrics",
    "most_confused_pairs",
    "write_report",
]

DPI = 110
FONT = "DejaVu Sans"  # matplotlib's bundled default; has the "→" glyph
ANNOTATE_MAX_CLASSES = 20  # confusion cells get their count written up to this many classes
PAIRS_MIN_CLASSES = 11  # confused_pairs.png only when there are more than 10 classes
PAIRS_SHOWN = 20  # rows in confused_pairs.png: the 20 most confused pairs, with examples
PAIR_EXAMPLES = 4  # example images per confused pair
GALLERY_COLUMNS = 8
PAIRS_LISTED = 20  # confused pairs listed in report.md
_PROB_SUM_TOLERANCE = 5e-3  # float16 softmax rows are this close to 1; logits are not


class EvaluationInputError(ScrawlError, ValueError):
    """Arrays given to the evaluation functions do not fit together (shapes, ranges, names)."""


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


def _validate(labels: Any, probs: Any, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    p = _as_probs(probs)
    y = _as_labels(labels)
    if y.shape[0] != p.shape[0]:
        raise EvaluationInputError(
            f"labels has {y.shape[0]} entries but probs has {p.shape[0]} rows; they must agree"
        )
    names = _check_classes(classes, p.shape[1])
    y = _as_labels(y, len(names))
    return y, p, names


def _as_images(images: Any, n: int) -> np.ndarray:
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
# Metrics


def _topk_accuracy(labels: np.ndarray, probs: np.ndarray, k: int) -> float:
    # Stable sort of -probs: among equal probabilities the lower index ranks first, like argmax.
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(order == labels[:, None], axis=1)))


def compute_metrics(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    *,
    merge: dict[str, str] | None = None,
) -> dict:
    """Metrics for one test set as a JSON-safe dict.

    labels: (N,) true class indices. probs: (N, C) softmax outputs (rows sum to 1). classes: C names.
    merge: optional map class name -> group name (e.g. ``{"c": "C", "o": "O"}``); classes not in it
    are their own group. Adds ``merged_accuracy``, where a prediction counts as right when its group
    equals the true class's group.

    Returns ``n``, ``num_classes``, ``accuracy``, ``loss`` (mean negative log-likelihood, probs
    clipped at 1e-12), ``top3_accuracy`` and ``top5_accuracy`` (when C >= 5), ``errors``,
    ``per_class`` ({name: {precision, recall, f1, support}}), ``macro_avg``, ``weighted_avg``,
    ``confusion_matrix`` (C x C lists, rows true, columns predicted), ``classes`` and, with merge,
    ``merged_accuracy`` and ``merge``. Raises `EvaluationInputError` (a ValueError) on bad input.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y, p, names = _validate(labels, probs, classes)
    n, c = p.shape
    pred = np.argmax(p, axis=1)
    correct = pred == y

    nll = -np.log(np.clip(p[np.arange(n), y], 1e-12, 1.0))

    # The numbers sklearn's classification_report prints (it is built on this function); called
    # directly so that class names can never collide with the report's "macro avg"/"accuracy" keys.
    label_range = list(range(c))
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
        for i, name in enumerate(names)
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
            "support": int(n),
        }

    cm = confusion_matrix(y, pred, labels=label_range)

    metrics: dict[str, Any] = {
        "n": int(n),
        "num_classes": int(c),
        "accuracy": float(np.mean(correct)),
        "loss": float(np.mean(nll)),
    }
    if c >= 5:
        metrics["top3_accuracy"] = _topk_accuracy(y, p, 3)
        metrics["top5_accuracy"] = _topk_accuracy(y, p, 5)
    metrics["errors"] = int(n - int(correct.sum()))
    if merge is not None:
        unknown = sorted(str(k) for k in merge if str(k) not in set(names))
        if unknown:
            raise EvaluationInputError(f"merge names classes that do not exist: {unknown}")
        groups = np.array([str(merge.get(name, name)) for name in names], dtype=object)
        metrics["merged_accuracy"] = float(np.mean(groups[pred] == groups[y]))
        metrics["merge"] = {str(k): str(v) for k, v in merge.items()}
    metrics["per_class"] = per_class
    metrics.update(averages)
    metrics["confusion_matrix"] = cm.astype(int).tolist()
    metrics["classes"] = list(names)
    return metrics


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


# --------------------------------------------------------------------------------------------------
# Files


_UMASK: int | None = None


def _file_mode() -> int:
    """0o666 less the process umask: what open() would give (mkstemp makes 0o600 files)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def _atomic_write(path: Path, write: Callable[[Any], None], *, binary: bool) -> Path:
    """Write via a temp file in the same folder, then os.replace; never leaves the temp file behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _file_mode())
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _save_figure(fig, path: Path) -> Path:
    _atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=DPI, facecolor="white"), binary=True)
    fig.clear()  # Figure objects are not registered with pyplot: clearing drops the artists now
    return path


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
# Figures


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, facecolor="white")


def _rc():
    import matplotlib

    return matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": [FONT], "axes.unicode_minus": False})


def _history_series(history: list[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(history):
        value = row.get(key)
        if value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(value):
            continue
        epoch = row.get("epoch", i + 1)
        try:
            epoch = float(epoch)
        except (TypeError, ValueError):
            epoch = float(i + 1)
        xs.append(epoch)
        ys.append(value)
    return xs, ys


def _plot_curves(history: list[dict], path: Path) -> Path | None:
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    series = {key: _history_series(history, key) for key in ("train_acc", "val_acc", "train_loss", "val_loss")}
    if not any(ys for _, ys in series.values()):
        return None
    with _rc():
        fig = _new_figure(12, 4.6)
        ax_acc, ax_loss = fig.subplots(1, 2)
        styles = {"train": dict(color="#1f77b4", label="train"), "val": dict(color="#d62728", label="validation")}
        n_epochs = max(len(xs) for xs, _ in series.values())
        marker = "o" if n_epochs <= 40 else None
        acc_values = series["train_acc"][1] + series["val_acc"][1]
        as_percent = bool(acc_values) and max(acc_values) <= 1.0
        for ax, metric, title in ((ax_acc, "acc", "Accuracy"), (ax_loss, "loss", "Loss")):
            drawn = False
            for split in ("train", "val"):
                xs, ys = series[f"{split}_{metric}"]
                if ys:
                    ax.plot(xs, ys, marker=marker, markersize=4, linewidth=2, **styles[split])
                    drawn = True
            ax.set_title(title, fontsize=14)
            ax.set_xlabel("Epoch", fontsize=12)
            ax.set_ylabel(title, fontsize=12)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(labelsize=10)
            ax.grid(True, alpha=0.3)
            if drawn:
                ax.legend(fontsize=11)
            else:
                ax.text(0.5, 0.5, f"no {title.lower()} in history", ha="center", va="center",
                        transform=ax.transAxes, fontsize=12, color="gray")
        if as_percent:
            ax_acc.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
        xs, ys = series["val_acc"]
        if ys:
            best = int(np.argmax(ys))
            label = f"best {ys[best]:.2%}" if as_percent else f"best {ys[best]:.4g}"
            ax_acc.scatter([xs[best]], [ys[best]], s=90, facecolors="none", edgecolors="black", zorder=5)
            at_right = xs[best] >= max(xs) and len(xs) > 1
            ax_acc.annotate(f"{label}\nepoch {xs[best]:g}", (xs[best], ys[best]), textcoords="offset points",
                            xytext=(-10 if at_right else 0, -38), ha="right" if at_right else "center",
                            fontsize=10, bbox=dict(boxstyle="round,pad=0.25", facecolor="white",
                                                   edgecolor="#999999", alpha=0.9))
        fig.tight_layout()
        return _save_figure(fig, path)


def _plot_confusion(cm: np.ndarray, names: list[str], accuracy: float, path: Path) -> Path:
    import matplotlib
    from matplotlib.colors import ListedColormap, LogNorm, Normalize
    from matplotlib.ticker import FuncFormatter

    c = cm.shape[0]
    row_sums = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=float), where=row_sums > 0)
    annotate = c <= ANNOTATE_MAX_CLASSES
    longest = max(len(n) for n in names)
    cmap = matplotlib.colormaps["Blues"]
    with _rc():
        if annotate:
            side = max(5.5, 0.55 * c + 2.5)
            fig = _new_figure(side + 1.2, side)
            norm = Normalize(vmin=0.0, vmax=1.0)
            shown = frac
        else:
            side = min(max(10.0, 0.2 * c + 2.5), 26.0)  # 62 classes: 14.9 in, ~1640 px
            fig = _new_figure(side + 1.5, side)
            # Log colours on the row-normalised matrix: a 0.3% confusion is still visibly coloured
            # next to a 98% diagonal. Empty cells stay white.
            positive = frac[frac > 0]
            vmin = min(float(positive.min()), 1e-2) if positive.size else 1e-3
            norm = LogNorm(vmin=vmin, vmax=1.0)
            # magma_r without its near-white end: the rarest confusion is still a clear orange on white.
            cmap = ListedColormap(matplotlib.colormaps["magma_r"](np.linspace(0.18, 1.0, 256)))
            shown = np.ma.masked_less_equal(frac, 0.0)
        cmap = cmap.with_extremes(bad="white")
        ax = fig.add_subplot(1, 1, 1)
        im = ax.imshow(shown, cmap=cmap, norm=norm, interpolation="nearest", aspect="equal")
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        bar.set_label("share of the true class" + ("" if annotate else " (log scale; white = none)"), fontsize=11)
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 100:g}%"))
        if not annotate:
            bar.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        tick_size = 11 if annotate else (8 if c <= 70 else 6)
        ax.set_xticks(range(c))
        ax.set_yticks(range(c))
        ax.set_xticklabels(names, fontsize=tick_size, rotation=0 if longest <= 2 else 90)
        ax.set_yticklabels(names, fontsize=tick_size)
        ax.set_xlabel("Predicted", fontsize=13)
        ax.set_ylabel("True", fontsize=13)
        ax.set_title(f"Confusion matrix — {int(cm.sum())} images, accuracy {accuracy:.2%}", fontsize=14)
        if annotate:
            cell_font = 11 if c <= 10 else 8
            for i in range(c):
                for j in range(c):
                    count = int(cm[i, j])
                    weight = "normal"
                    if count == 0:
                        color = "#bbbbbb"
                    elif frac[i, j] > 0.55:
                        color = "white"
                    elif i != j:
                        color, weight = "#c0392b", "bold"  # mistakes stand out even when too rare to colour
                    else:
                        color = "black"
                    ax.text(j, i, str(count), ha="center", va="center", fontsize=cell_font, color=color,
                            fontweight=weight)
        else:
            # Thin grid lines so a row/column can be followed across 60-odd cells.
            ax.set_xticks(np.arange(-0.5, c, 1), minor=True)
            ax.set_yticks(np.arange(-0.5, c, 1), minor=True)
            ax.grid(which="minor", color="#e6e6e6", linewidth=0.4)
            ax.tick_params(which="minor", length=0)
            ax.tick_params(axis="x", top=True, labeltop=True)  # names on top too: the matrix is tall
        fig.tight_layout()
        return _save_figure(fig, path)


def _tile(ax, image: np.ndarray, title: str | None = None, fontsize: float = 10) -> None:
    # Ink is bright in the data; gray_r draws it dark on white, as on paper.
    ax.imshow(image, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#cccccc")
    if title is not None:
        ax.set_title(title, fontsize=fontsize, pad=3)


def _pct(p: float) -> str:
    # Floor, so that a 99.7% mistake does not read as "100%".
    return f"{math.floor(p * 100 + 1e-9)}%"


def _short(name: str, limit: int = 8) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _plot_errors(order: np.ndarray, total_errors: int, images: np.ndarray, labels: np.ndarray,
                 pred: np.ndarray, conf: np.ndarray, names: list[str], path: Path) -> Path:
    with _rc():
        if order.size == 0:
            fig = _new_figure(6, 2)
            fig.text(0.5, 0.5, "No misclassified images:\nevery prediction was right.",
                     ha="center", va="center", fontsize=15)
            return _save_figure(fig, path)
        count = order.size
        cols = min(GALLERY_COLUMNS, count)
        rows = math.ceil(count / cols)
        # Laid out in inches so that tile titles never touch the row above, whatever the row count.
        tile, gap, title_band, head = 1.25, 0.14, 0.3, 0.75
        grid_w = cols * tile + (cols - 1) * gap
        width = max(grid_w + 0.3, 6.2)
        height = head + rows * (title_band + tile) + (rows - 1) * gap + 0.15
        fig = _new_figure(width, height)
        left = (width - grid_w) / 2
        for k, idx in enumerate(order):
            r, c = divmod(k, cols)
            x = left + c * (tile + gap)
            top = head + r * (title_band + tile + gap) + title_band
            ax = fig.add_axes((x / width, 1 - (top + tile) / height, tile / width, tile / height))
            title = f"{_short(names[labels[idx]])}→{_short(names[pred[idx]])} {_pct(conf[idx])}"
            _tile(ax, images[idx], title, fontsize=10)
        shown = f"all {total_errors}" if count == total_errors else f"{count} of {total_errors}"
        fig.text(0.5, 1 - 0.3 / height, f"Misclassified images ({shown}), most confident first",
                 ha="center", va="center", fontsize=12)
        fig.text(0.5, 1 - 0.56 / height, "each tile: true→predicted, confidence of the prediction",
                 ha="center", va="center", fontsize=9.5, color="#444444")
        return _save_figure(fig, path)


def _plot_pairs(pairs: list[dict], images: np.ndarray, labels: np.ndarray, pred: np.ndarray,
                conf: np.ndarray, names: list[str], path: Path) -> Path:
    index = {name: i for i, name in enumerate(names)}
    with _rc():
        rows = len(pairs)
        fig = _new_figure(2.4 + 1.25 * PAIR_EXAMPLES, 1.3 * rows + 0.6)
        grid = fig.add_gridspec(rows, 1 + PAIR_EXAMPLES, width_ratios=[2.0] + [1.0] * PAIR_EXAMPLES)
        for r, pair in enumerate(pairs):
            t, p = index[pair["true"]], index[pair["predicted"]]
            matches = np.flatnonzero((labels == t) & (pred == p))
            matches = matches[np.argsort(-conf[matches], kind="stable")][:PAIR_EXAMPLES]
            ax = fig.add_subplot(grid[r, 0])
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"{_short(pair['true'], 12)} → {_short(pair['predicted'], 12)}\n×{pair['count']}",
                    ha="center", va="center", fontsize=15, transform=ax.transAxes)
            for j in range(PAIR_EXAMPLES):
                ax = fig.add_subplot(grid[r, 1 + j])
                if j < matches.size:
                    _tile(ax, images[matches[j]], _pct(conf[matches[j]]), fontsize=9)
                else:
                    ax.set_axis_off()
        fig.suptitle("Most confused pairs: true → predicted, count, examples (prediction confidence)", fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.97 if rows > 3 else 0.9))
        return _save_figure(fig, path)


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
    xs, ys = _history_series(history, "val_acc")
    lines.append(f"- Epochs: {len(history)}")
    if ys:
        best = int(np.argmax(ys))
        lines.append(f"- Best validation accuracy: {ys[best]:.2%} (epoch {xs[best]:g})" if max(ys) <= 1
                     else f"- Best validation accuracy: {ys[best]:.4g} (epoch {xs[best]:g})")
    _, secs = _history_series(history, "seconds")
    if secs:
        lines.append(f"- Training time: {_fmt_seconds(sum(secs))}")
    return lines


def _render_markdown(*, title: str, metrics: dict, info: dict, files: dict[str, Path], history: list[dict],
                     gallery_count: int, max_errors: int, pairs: list[dict],
                     curves_skipped_reason: str | None) -> str:
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


# --------------------------------------------------------------------------------------------------
# Report


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
    of images drawn in errors.png.
    """
    y, p, names = _validate(labels, probs, classes)
    imgs = _as_images(images, y.shape[0])
    if not isinstance(metrics, Mapping) or "n" not in metrics or "accuracy" not in metrics:
        raise EvaluationInputError("metrics must be the dict compute_metrics returned")
    if int(metrics["n"]) != y.shape[0]:
        raise EvaluationInputError(
            f"metrics are for {metrics['n']} images but labels has {y.shape[0]}; compute them from the same arrays"
        )
    if max_errors < 0:
        raise EvaluationInputError(f"max_errors must be >= 0, got {max_errors}")
    history = list(history or [])
    if any(not isinstance(row, Mapping) for row in history):
        raise EvaluationInputError("history must be a list of per-epoch dicts")
    info = dict(info or {})

    if "confusion_matrix" in metrics:
        cm = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
        if cm.shape != (len(names), len(names)):
            raise EvaluationInputError(
                f"metrics['confusion_matrix'] has shape {cm.shape}, expected {(len(names), len(names))}"
            )
    else:
        from sklearn.metrics import confusion_matrix

        cm = confusion_matrix(y, np.argmax(p, axis=1), labels=list(range(len(names))))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    pred = np.argmax(p, axis=1)
    conf = p[np.arange(p.shape[0]), pred]
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")]  # most confident mistakes first

    curves_skipped = None
    if history:
        path = _plot_curves(history, out / "curves.png")
        if path is not None:
            files["curves"] = path
        else:
            curves_skipped = "The training history has no accuracy or loss values, so there are no curves."
    files["confusion"] = _plot_confusion(cm, names, float(metrics["accuracy"]), out / "confusion.png")

    gallery_count = 0
    if max_errors > 0 or wrong.size == 0:
        shown = wrong[:max_errors]
        gallery_count = int(shown.size)
        files["errors"] = _plot_errors(shown, int(wrong.size), imgs, y, pred, conf, names, out / "errors.png")

    pairs = most_confused_pairs(cm, names, k=PAIRS_LISTED)
    if len(names) >= PAIRS_MIN_CLASSES and pairs:
        files["confused_pairs"] = _plot_pairs(pairs[:PAIRS_SHOWN], imgs, y, pred, conf, names,
                                              out / "confused_pairs.png")

    payload = dict(metrics)
    payload["info"] = info
    payload["gallery_count"] = gallery_count
    payload["most_confused_pairs"] = pairs
    if history:
        payload["history"] = history
    payload = _json_safe(payload)
    text = json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    # One line per list of numbers (the confusion matrix would otherwise take C*C lines). Only lists
    # that json.dumps broke over lines match: a string never holds a raw newline, so strings are safe.
    text = _NUMBER_LIST.sub(lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text)
    files["metrics"] = _atomic_write(out / "metrics.json", lambda fh: fh.write(text), binary=False)

    markdown = _render_markdown(
        title=title, metrics=payload, info=info, files=files, history=history, gallery_count=gallery_count,
        max_errors=max_errors, pairs=pairs, curves_skipped_reason=curves_skipped,
    )
    files["report"] = _atomic_write(out / "report.md", lambda fh: fh.write(markdown), binary=False)
    logger.info("evaluation report written to %s (%s)", out, ", ".join(sorted(p.name for p in files.values())))
    return files
