"""Line datasets for the line recognizer (CNN + CTC): the line alphabet, the UNIPEN words reader, and
turning (image, text) pairs into padded training arrays.

* `LINE_ALPHABET`: the characters a line model reads (issue 13): 0-9, A-Z, a-z, space and
  . , ' " - / : ; ( ) ! ? & + % # @ ; a class index is a position in it.
* `load_unipen_words(data_dir)` -> `UnipenWords`: the real pen-written words and short texts of
  ``unipen_words/unipen_words_train.npz`` (layout: the data folder's SOURCES.md), filtered (several
  lines, crossed-out ink, BAD quality, spaces the ink does not have, characters outside the alphabet),
  with `strokes(i)`, `render(i, ...)`, `labels`, `writers` and a writer-disjoint `writer_split`.
* `encode_text`, `pad_lines` -> `LineBatch`: images right-padded with 0 to one width plus each width,
  targets as class indices padded with -1 (the `ctc` task's PAD); `ctc_min_frames` / `fits_ctc` say
  whether a line is wide enough for CTC to align its text.

The synthetic strings (numbers from isolated characters) are in `scrawl.data.synth`. No torch at import.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..labels import LINE_ALPHABET
from .strokes import StrokeStyle, render_strokes

PAD = -1  # pads target rows (the same value as scrawl.tasks.ctc.PAD; not imported: data sits below tasks)

UNIPEN_WORDS_FILE = Path("unipen_words") / "unipen_words_train.npz"
# Arrays read from the file (SOURCES.md, "unipen_words/"); the others (src_file, delin, ...) are not needed.
_UNIPEN_KEYS = ("points", "stroke_end", "seg_stroke_start", "seg_n_strokes", "seg_point_start", "label",
                "writer", "quality", "style", "multiline", "has_xxx", "punct_spacing", "bbox_h")
# Below a writer's median word height times this, a segment's box counts as this tall when rendered,
# so a lone '-' or '.' is not blown up to a full line's height. Measured on this file (after the
# filters): words of x-height letters only are 0.35-0.87 of their writer's median height (5th-90th
# percentile), ',' and "'" about 0.34 (median), '-' 0.06 and '.' 0.10; 0.25 leaves real words alone
# (the reader scales a line's ink to the model's height too) and bounds only the tiny marks.
MIN_EXTENT_OF_WRITER_MEDIAN = 0.25


@dataclass
class UnipenWords:
    """UNIPEN words and texts as pen strokes. Row i: `labels[i]`, `writers[i]`, `strokes(i)`.

    `points` and `stroke_end` are the file's arrays (shared by subsets); the per-row arrays say which
    strokes are row i's. `rows` are the rows' indices in the file; `dropped` counts what each filter
    removed (from the whole file, in order, each counted among what the ones before it kept)."""

    points: np.ndarray  # (P, 2) uint16, y down, aspect-corrected tablet units
    stroke_end: np.ndarray  # (S,) end (exclusive) of every stroke in `points`
    stroke_start: np.ndarray  # (N,) each row's first stroke
    n_strokes: np.ndarray  # (N,) each row's number of strokes
    labels: np.ndarray  # (N,) str
    writers: np.ndarray  # (N,) str, "contrib:WRITER_ID"
    quality: np.ndarray  # (N,) str: GOOD, OK, ? (unchecked)
    style: np.ndarray  # (N,) str: CURSIVE, PRINTED, MIXED, '' or ?
    bbox_h: np.ndarray  # (N,) int: the ink's height in tablet units
    writer_median_h: np.ndarray  # (N,) the median bbox_h of the row's writer (over the whole file)
    rows: np.ndarray  # (N,) row in the file
    dropped: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def strokes(self, i: int) -> list[np.ndarray]:
        """Row i's pen strokes: (P, 2) float32 arrays of x, y (y down), in writing order."""
        a = int(self.stroke_start[i])
        ends = self.stroke_end[a : a + int(self.n_strokes[i])]
        start = int(self.stroke_end[a - 1]) if a > 0 else 0
        out = []
        for e in ends:
            out.append(self.points[start:int(e)].astype(np.float32))
            start = int(e)
        return out

    def min_extent(self, i: int) -> float:
        """The least height row i's box counts as when rendered: MIN_EXTENT_OF_WRITER_MEDIAN times its
        writer's median word height."""
        return float(MIN_EXTENT_OF_WRITER_MEDIAN * self.writer_median_h[i])

    def render(self, i: int, height: int = 32, style: StrokeStyle | None = None, *,
               rng: np.random.Generator | None = None, **kwargs) -> np.ndarray:
        """Row i rendered by `render_strokes` (style None + rng: a random style), with `min_extent`;
        writer_pen: the pen sized against the writer's median word height (`pen_extent`)."""
        kwargs.setdefault("min_extent", self.min_extent(i))
        if kwargs.pop("writer_pen", False):
            kwargs.setdefault("pen_extent", float(self.writer_median_h[i]))
        return render_strokes(self.strokes(i), height, style, rng=rng, **kwargs)

    def phrase(self, rows: Sequence[int], gaps: Sequence[float]) -> tuple[list[np.ndarray], str]:
        """Several rows (words of one writer) written side by side as one line: (strokes, text). Each word
        is moved so the mean height of its ink points matches the first word's (a rough shared baseline
        band), with gaps[k] times the writer's median word height before word k + 1."""
        out, x = [], 0.0
        centre = None
        for k, i in enumerate(rows):
            strokes = self.strokes(int(i))
            pts = np.concatenate(strokes)
            cy = float(pts[:, 1].mean())
            centre = cy if centre is None else centre
            x0 = float(pts[:, 0].min())
            out += [s - np.float32([x0 - x, cy - centre]) for s in strokes]
            x += float(pts[:, 0].max()) - x0
            if k < len(rows) - 1:
                x += float(gaps[k]) * float(self.writer_median_h[int(i)])
        return out, " ".join(str(self.labels[int(i)]) for i in rows)

    def subset(self, index: Sequence[int] | np.ndarray) -> "UnipenWords":
        """The rows at `index` (sharing points and stroke_end)."""
        index = np.asarray(index, dtype=np.int64)
        per_row = {k: getattr(self, k)[index] for k in
                   ("stroke_start", "n_strokes", "labels", "writers", "quality", "style", "bbox_h",
                    "writer_median_h", "rows")}
        return replace(self, **per_row, dropped=dict(self.dropped))

    def writer_split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(train rows, validation rows), writer-disjoint: no writer has rows on both sides.

        Writers are shuffled by `seed` and taken for validation, in that order, until their rows reach
        `val_fraction` of all rows (at least one writer when val_fraction > 0). Rows are indices into
        this dataset, sorted."""
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        names, inverse, counts = np.unique(self.writers, return_inverse=True, return_counts=True)
        order = np.random.default_rng(seed).permutation(len(names))
        target = val_fraction * len(self)
        taken = np.cumsum(counts[order])
        n_val = int(np.searchsorted(taken, target)) + 1 if val_fraction > 0 else 0
        val_writers = np.zeros(len(names), bool)
        val_writers[order[:n_val]] = True
        is_val = val_writers[inverse]
        return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _unipen_path(data_dir: str | os.PathLike) -> Path:
    path = Path(data_dir)
    if path.is_dir():
        path = path / UNIPEN_WORDS_FILE
    if not path.is_file():
        raise DataError(f"{path}: UNIPEN words file not found (expected <data dir>/{UNIPEN_WORDS_FILE.as_posix()}; "
                        "see the data folder's SOURCES.md)")
    return path


def _read_unipen(path: Path) -> dict[str, np.ndarray]:
    """The arrays of the file, checked against SOURCES.md's layout."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _UNIPEN_KEYS if k not in z.files]
            if missing:
                raise DataError(f"{path}: not the UNIPEN words layout: missing arrays {', '.join(missing)}")
            d = {k: z[k] for k in _UNIPEN_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read as a numpy .npz: {e}") from None
    n, se = len(d["label"]), d["stroke_end"]
    ok = (d["points"].ndim == 2 and d["points"].shape[1] == 2
          and all(len(d[k]) == n for k in _UNIPEN_KEYS if k not in ("points", "stroke_end"))
          and n > 0 and int(d["seg_stroke_start"][-1] + d["seg_n_strokes"][-1]) == len(se)
          and int(se[-1]) == len(d["points"]) and bool((np.diff(se) > 0).all())
          and bool((np.r_[0, se][d["seg_stroke_start"]] == d["seg_point_start"]).all()))
    if not ok:
        raise DataError(f"{path}: UNIPEN words arrays are inconsistent (strokes, points and segments do not "
                        "line up as SOURCES.md describes): the file is damaged or of another version")
    return d


def load_unipen_words(data_dir: str | os.PathLike, *, alphabet: str = LINE_ALPHABET, drop_multiline: bool = True,
                      drop_xxx: bool = True, drop_bad: bool = True, drop_punct_spacing: bool = True,
                      max_label_length: int | None = None) -> UnipenWords:
    """Read UNIPEN's words and texts (`data_dir`: the data folder, or the .npz itself) and filter them.

    Dropped, each by its flag: `multiline` segments (several lines stacked, which a line model cannot
    read as one), `has_xxx` (crossed-out or garbage ink), quality BAD, `punct_spacing` (the label puts
    spaces before punctuation or inside numbers where the ink has none: they would teach CTC phantom
    spaces), and always labels with characters outside `alphabet` (and, if given, longer than
    max_label_length). DataError if the file is missing or not laid out as SOURCES.md says.
    """
    path = _unipen_path(data_dir)
    d = _read_unipen(path)
    keep = np.ones(len(d["label"]), bool)
    dropped = {}
    allowed = set(alphabet)
    in_alphabet = np.array([set(s) <= allowed for s in d["label"].tolist()])
    too_long = (np.char.str_len(d["label"]) > max_label_length) if max_label_length else np.zeros_like(keep)
    for name, bad, on in (("multiline", d["multiline"], drop_multiline), ("has_xxx", d["has_xxx"], drop_xxx),
                          ("quality BAD", d["quality"] == "BAD", drop_bad),
                          ("punct_spacing", d["punct_spacing"], drop_punct_spacing),
                          ("outside alphabet", ~in_alphabet, True), ("too long", too_long, True)):
        if on:
            dropped[name] = int((keep & bad).sum())
            keep &= ~bad
    rows = np.flatnonzero(keep)
    names, inverse = np.unique(d["writer"], return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    groups = np.split(d["bbox_h"][order], np.cumsum(np.bincount(inverse, minlength=len(names)))[:-1])
    median_h = np.array([np.median(g) for g in groups], dtype=np.float64)[inverse]
    return UnipenWords(points=d["points"], stroke_end=d["stroke_end"], stroke_start=d["seg_stroke_start"][rows],
                       n_strokes=d["seg_n_strokes"][rows], labels=d["label"][rows], writers=d["writer"][rows],
                       quality=d["quality"][rows], style=d["style"][rows], bbox_h=d["bbox_h"][rows],
                       writer_median_h=median_h[rows], rows=rows, dropped=dropped)


def encode_text(text: str, alphabet: str = LINE_ALPHABET) -> np.ndarray:
    """Class indices (int64) of `text`'s characters in `alphabet`; ValueError naming any it lacks."""
    index = {c: i for i, c in enumerate(alphabet)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise ValueError(f"characters not in the alphabet: {''.join(unknown)!r} (in {text!r})")
    return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))


def ctc_min_frames(text: str) -> int:
    """The fewest frames CTC needs for `text`: one per character, plus a blank between equal neighbours."""
    return len(text) + sum(a == b for a, b in zip(text, text[1:]))


def fits_ctc(width: int, text: str, stride: int = 4) -> bool:
    """Whether a line `width` pixels wide gives CTC enough frames (width // stride; the CRNN's stride
    is 4) to align `text`."""
    return width // stride >= ctc_min_frames(text)


@dataclass
class LineBatch:
    """Lines as training arrays."""

    images: np.ndarray  # (N, H, Wmax) uint8, ink bright, right-padded with 0
    widths: np.ndarray  # (N,) int64, each image's own width
    targets: np.ndarray  # (N, Lmax) int64 class indices, PAD (-1) after each text's end
    lengths: np.ndarray  # (N,) int64 characters per text
    texts: list[str]

    def as_torch(self):
        """(images float32 (N, 1, H, Wmax) in [0, 1], widths, targets) as torch tensors."""
        import torch

        images = torch.from_numpy(self.images).float().div_(255).unsqueeze(1)
        return images, torch.from_numpy(self.widths), torch.from_numpy(self.targets)


def pad_lines(samples: Sequence[tuple[np.ndarray, str]], alphabet: str = LINE_ALPHABET, *,
              width_multiple: int = 1, min_width: int = 1) -> LineBatch:
    """(image, text) pairs -> LineBatch. The images must share one height; Wmax is the widest image
    (at least `min_width`) rounded up to a multiple of `width_multiple` (e.g. the model's stride)."""
    if not samples:
        raise ValueError("no samples to pad")
    images = [np.asarray(im) for im, _ in samples]
    texts = [str(t) for _, t in samples]
    heights = {im.shape[0] for im in images}
    if len(heights) != 1 or any(im.ndim != 2 or im.dtype != np.uint8 for im in images):
        raise ValueError(f"images must be uint8 (H, W) of one height; got heights {sorted(heights)}")
    widths = np.array([im.shape[1] for im in images], dtype=np.int64)
    wmax = max(int(widths.max()), min_width)
    wmax = -(-wmax // width_multiple) * width_multiple
    out = np.zeros((len(images), heights.pop(), wmax), np.uint8)
    for k, im in enumerate(images):
        out[k, :, : im.shape[1]] = im
    codes = [encode_text(t, alphabet) for t in texts]
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    targets = np.full((len(codes), max(1, int(lengths.max()))), PAD, dtype=np.int64)
    for k, c in enumerate(codes):
        targets[k, : len(c)] = c
    return LineBatch(out, widths, targets, lengths, texts)
