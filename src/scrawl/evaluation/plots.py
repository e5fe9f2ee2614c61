"""Plots: the pictures an evaluation report embeds, as PNG files.

Training curves (`plot_curves`), the confusion-matrix heatmap (`plot_confusion`), the reliability diagram
(`plot_reliability`), a gallery of the most confident mistakes (`plot_errors`) and the most confused pairs
with examples (`plot_pairs`). Images are
ink bright, drawn dark on white as on paper. Each file is written with scrawl.fsutil.atomic_write.

Matplotlib is imported inside the functions. Figures use its object-oriented API (``Figure``, Agg
renderer) without pyplot: nothing global is switched (a user's notebook backend stays as it is) and no
figure is left registered anywhere, so repeated reports do not grow memory.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..fsutil import atomic_write

DPI = 110
FONT = "DejaVu Sans"  # matplotlib's bundled default; has the "→" glyph
ANNOTATE_MAX_CLASSES = 20  # confusion cells get their count written up to this many classes
PAIRS_MIN_CLASSES = 11  # confused_pairs.png only when there are more than 10 classes
PAIRS_SHOWN = 20  # rows in confused_pairs.png: the 20 most confused pairs, with examples
PAIR_EXAMPLES = 4  # example images per confused pair
GALLERY_COLUMNS = 8


def _save_figure(fig, path: Path) -> Path:
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=DPI, facecolor="white"), binary=True)
    fig.clear()  # Figure objects are not registered with pyplot: clearing drops the artists now
    return path


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, facecolor="white")


def _rc():
    import matplotlib

    return matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": [FONT], "axes.unicode_minus": False})


def history_series(history: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of one key of the training history, skipping missing and non-finite values."""
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


def plot_curves(history: list[dict], path: Path) -> Path | None:
    """Accuracy and loss per epoch, side by side; None (nothing written) when history has neither."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    series = {key: history_series(history, key) for key in ("train_acc", "val_acc", "train_loss", "val_loss")}
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


def plot_confusion(cm: np.ndarray, names: list[str], accuracy: float, path: Path) -> Path:
    """The row-normalised confusion matrix: counts written in the cells up to 20 classes, log colours above."""
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


def plot_reliability(cal: dict, path: Path) -> Path:
    """The reliability diagram of a `scrawl.evaluation.calibration` table: accuracy per confidence bin
    against the diagonal (perfect calibration), the gap to the bin's mean confidence shaded, and the
    number of answers per bin underneath (log scale: a good model puts nearly all in the top bin)."""
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    bins = [b for b in cal["bins"] if b["count"]]
    lower = np.array([b["lower"] for b in bins])
    width = np.array([b["upper"] - b["lower"] for b in bins])
    acc = np.array([b["accuracy"] for b in bins])
    conf = np.array([b["confidence"] for b in bins])
    with _rc():
        fig = _new_figure(6.4, 7.2)
        ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        ax.plot([0, 1], [0, 1], linestyle="--", color="#888888", linewidth=1.2, label="perfect calibration")
        ax.bar(lower, acc, width=width, align="edge", color="#1f77b4", edgecolor="white", label="accuracy")
        # The gap as a hatched outline, not a fill: it lies over the bar where a bin is under-confident.
        ax.bar(lower, conf - acc, bottom=acc, width=width, align="edge", facecolor="none", edgecolor="#d62728",
               hatch="//", linewidth=1.0, zorder=3, label="gap to the bin's mean confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("Accuracy in the bin", fontsize=12)
        ax.set_title(f"Reliability diagram — ECE {cal['ece']:.2%}, MCE {cal['mce']:.2%} "
                     f"({cal['n_bins']} bins)", fontsize=13)
        ax.legend(loc="upper left", fontsize=10)
        ax.grid(True, alpha=0.3)
        counts = [b["count"] for b in bins]
        hist.bar(lower, counts, width=width, align="edge", color="#7f7f7f", edgecolor="white")
        hist.set_yscale("log")
        hist.set_ylim(0.7, 2.0 * max(counts))  # room for a bin of one answer
        hist.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))  # 1,000, not 10^3
        hist.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        hist.set_ylabel("Answers", fontsize=12)
        hist.set_xlabel("Confidence of the answer", fontsize=12)
        hist.grid(True, axis="y", alpha=0.3)
        for axis in (ax.yaxis, hist.xaxis):
            axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
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


def plot_errors(order: np.ndarray, total_errors: int, images: np.ndarray, labels: np.ndarray,
                 pred: np.ndarray, conf: np.ndarray, names: list[str], path: Path) -> Path:
    """The mistakes `order` (indices, most confident first) as tiles reading true→predicted confidence."""
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


def plot_pairs(pairs: list[dict], images: np.ndarray, labels: np.ndarray, pred: np.ndarray,
                conf: np.ndarray, names: list[str], path: Path) -> Path:
    """One row per confused pair: true → predicted, its count, and its most confident examples."""
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
