"""Find the characters in a picture of a string (a canvas drawing, a photo, a scan) and read them.

`segment(source)` returns the characters as `Piece`s in reading order (lines top to bottom, characters
left to right); `read(source, recognizer)` also recognises them, in one batch. Steps:

1. The ink map comes from `scrawl.vision.ink.load_image`, the function every image in Scrawl goes
   through (any format, polarity or alpha; uneven lighting divided out; faint noise cut).
2. Threshold (Otsu on the ink map, clamped to a sane band) and connected components ("marks"); steps
   2 to 4 live in `scrawl.vision.marks`.
3. Dust is dropped; the reference size is the area-weighted median mark height (characters on a line
   are about equally tall; widths vary from '1' to 'W').
4. Marks that belong to one character are merged: marks whose horizontal extents overlap strongly (a
   '4' or '5' written in two strokes, a '7' with a separate bar, a stroke broken by a faint pen), and
   small marks into the nearest character (the dot of an 'i', a detached bar). Small marks far from
   every character are noise specks and are dropped, as are characters smaller than a few pixels
   (relative to the image). Two full-height marks side by side that overlap strongly (a '1' tucked
   under a '7', or the two strokes of an open '4') are settled by the recogniser when one is given
   (`read` gives it): merged if the merged character reads at least as confidently.
5. Lines: characters grouped by vertical overlap; reading order: lines top to bottom, then left to right.
6. Each character's crop of the ink map (a square with a margin, every other character's ink masked
   out, its anti-aliased rim kept) goes through `scrawl.vision.framing.frame`, like any single character.
7. `join_lines` turns the pieces' labels into the text of each line; `lines_text` does it for a read,
   leaving out the pieces a model with the reject class calls no character (a speck, a slip of the pen):
   they stay in the read, marked `rejected`, but are not read as text.

Touching characters (one connected blob holding two digits) are not split yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np

from ..errors import EmptyImageError, ImageError
from ..settings import TOP_K
from .framing import FrameSpec, frame
from .ink import load_image
from .marks import components, group, union_box

__all__ = [
    "MAX_CHARACTERS", "Piece", "Segmentation", "TooManyCharactersError", "join_lines", "lines_text", "read", "segment",
]

log = logging.getLogger(__name__)

# A read returns at most this many characters (a page of handwriting, not a book): bounds the work
# one request can cause. Beyond it: TooManyCharactersError.
MAX_CHARACTERS = 200
# A character whose larger side is below this fraction of the image's shorter side (as for a single
# character in framing), but never more than SPECK_MAX px, is a speck: a 2x2 dot on a 280 px canvas is
# nothing to read, while 20 px digits on a 12 Mpx photo are still characters.
SPECK_REL = 0.03
SPECK_MAX = 12
# Same line: vertical overlap of at least this fraction of the smaller of the two heights.
LINE_OVERLAP = 0.4
# Crop margin around a character, as a fraction of its larger side (at least 2 px), so the crop is
# mostly background (polarity is judged against its median) and the framing sees the whole stroke.
MARGIN = 0.15
# Anti-aliased fringe below the threshold is given to the nearest character within this many pixels.
FRINGE = 3


# Given character crops (ink maps), how confidently each reads as one character (0..1).
Judge = Callable[[list[np.ndarray]], list[float]]


class TooManyCharactersError(ImageError):
    """The image holds more characters (or separate marks) than one read may return."""


@dataclass
class Piece:
    """One character found in the image."""

    box: tuple[int, int, int, int]  # x, y, w, h in the image's pixels (after its EXIF orientation)
    line: int  # 0-based line index, top to bottom
    crop: np.ndarray = field(repr=False)  # float32 ink map of the character alone (others masked out)


@dataclass
class Segmentation:
    pieces: list[Piece]  # in reading order
    lines: int
    size: tuple[int, int]  # (width, height) of the image in pixels


def segment(source, *, max_characters: int = MAX_CHARACTERS, judge: Judge | None = None) -> Segmentation:
    """Find the characters in `source` (anything load_image accepts), in reading order.

    judge: optional; given character crops (ink maps), returns how confidently each reads as one
    character (0..1). Used only to settle full-height marks side by side that overlap strongly.
    An image without ink gives no pieces (not an error). Raises ImageError when the image cannot be read
    and TooManyCharactersError when it holds more than `max_characters` characters.
    """
    ink = load_image(source)
    h, w = ink.shape
    labels, stats = components(ink)
    if len(stats) == 0:
        return Segmentation([], 0, (w, h))
    by_marks = (lambda sets: judge([_mark_crop(ink, labels, stats, m) for m in sets])) if judge else None
    groups = group(stats, by_marks)
    speck = max(2.0, min(SPECK_REL * min(h, w), SPECK_MAX))
    groups = [g for g in groups if max(union_box(stats[g])[2:]) >= speck]
    if not groups:
        return Segmentation([], 0, (w, h))
    if len(groups) > max_characters:
        raise TooManyCharactersError(
            f"too many characters: found {len(groups)}, a read returns at most {max_characters}; "
            "send a smaller part of the picture"
        )
    boxes = np.array([union_box(stats[g]) for g in groups], dtype=np.int64).reshape(-1, 4)
    order, line_of = _reading_order(boxes)
    owner = _owners(labels, groups, len(stats))
    pieces = []
    for gi in order:
        x, y, bw, bh = (int(v) for v in boxes[gi])
        pieces.append(Piece(box=(x, y, bw, bh), line=int(line_of[gi]), crop=_crop(ink, owner, gi + 1, boxes[gi])))
    lines = int(line_of.max()) + 1 if len(pieces) else 0
    log.debug("segment: %d marks -> %d characters on %d line(s)", len(stats), len(pieces), lines)
    return Segmentation(pieces, lines, (w, h))


def read(source, recognizer, *, top_k: int = TOP_K, charset: str | None = None, max_characters: int = MAX_CHARACTERS):
    """Segment `source` and recognise every character in one batch.

    Returns (segmentation, predictions) with predictions[i] for segmentation.pieces[i] (a
    scrawl.runtime.recognizer.Prediction). Pieces the framing finds empty (only faint ink) are dropped;
    pieces the model rejects (Prediction.rejected: not a character) are kept, for the caller to show
    as such, and `lines_text` leaves them out of the text.
    """
    spec: FrameSpec = recognizer.spec

    def judge(crops):
        framed = [_frame_or_none(c, spec) for c in crops]
        ok = [f for f in framed if f is not None]
        conf = iter([p.confidence for p in recognizer.predict_framed(np.stack(ok), top_k=1, charset=charset)] if ok else [])
        return [next(conf) if f is not None else 0.0 for f in framed]

    seg = segment(source, max_characters=max_characters, judge=judge)
    kept, framed = [], []
    for piece in seg.pieces:
        f = _frame_or_none(piece.crop, spec)
        if f is not None:
            kept.append(piece)
            framed.append(f)
    if not kept:
        return Segmentation([], 0, seg.size), []
    # Renumber lines so they stay 0..n-1 if a whole line was dropped.
    remap = {old: new for new, old in enumerate(sorted({p.line for p in kept}))}
    for p in kept:
        p.line = remap[p.line]
    preds = recognizer.predict_framed(np.stack(framed), top_k=top_k, charset=charset)
    return Segmentation(kept, len(remap), seg.size), preds


def join_lines(seg: Segmentation, labels: Sequence[str]) -> list[str]:
    """The text of each line of `seg`, top to bottom, where labels[i] is what seg.pieces[i] reads as
    (pieces are in reading order, so each line's labels come left to right)."""
    if len(labels) != len(seg.pieces):
        raise ValueError(f"join_lines: {len(labels)} label(s) for {len(seg.pieces)} piece(s)")
    lines = [[] for _ in range(seg.lines)]
    for piece, label in zip(seg.pieces, labels):
        lines[piece.line].append(label)
    return ["".join(line) for line in lines]


def lines_text(seg: Segmentation, preds: Sequence) -> list[str]:
    """The text of each line of a `read`: its predictions' labels, without the pieces the model rejects
    (not a character: they are no part of the text, whatever character they look most like)."""
    return join_lines(seg, ["" if p.rejected else p.label for p in preds])


def _frame_or_none(crop: np.ndarray, spec: FrameSpec):
    try:
        return frame(crop, spec)
    except EmptyImageError:
        return None


# ------------------------------------------------------------------------------------------ steps


def _reading_order(boxes: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Boxes (N, 4) -> (indices in reading order, line index of each box)."""
    n = len(boxes)
    if n == 0:
        return [], np.zeros(0, np.int64)
    y, h = boxes[:, 1].astype(np.float64), boxes[:, 3].astype(np.float64)
    lines: list[list[int]] = []  # greedy, tallest first, so a small mark joins the line it sits in
    bands: list[tuple[float, float]] = []
    for i in np.argsort(-h, kind="stable"):
        best, best_overlap = -1, 0.0
        for li, (top, bottom) in enumerate(bands):
            inter = min(bottom, y[i] + h[i]) - max(top, y[i])
            rel = inter / max(1.0, min(h[i], bottom - top))
            if rel >= LINE_OVERLAP and rel > best_overlap:
                best, best_overlap = li, rel
        if best < 0:
            lines.append([int(i)])
            bands.append((y[i], y[i] + h[i]))
        else:
            lines[best].append(int(i))
            members = lines[best]
            # The band is the members' median top and bottom: robust to one tall or low character.
            bands[best] = (float(np.median(y[members])), float(np.median(y[members] + h[members])))
    centre = [float(np.median(y[m] + h[m] / 2)) for m in lines]
    line_of = np.zeros(n, np.int64)
    order: list[int] = []
    for li, m in enumerate(sorted(lines, key=lambda m: centre[lines.index(m)])):
        for i in sorted(m, key=lambda i: (boxes[i, 0] + boxes[i, 2] / 2, boxes[i, 1])):
            line_of[i] = li
            order.append(i)
    return order, line_of


def _owners(labels: np.ndarray, groups: list[np.ndarray], n: int) -> np.ndarray:
    """Which character (1-based group index; 0 = none) each pixel's ink belongs to: the group of the
    nearest thresholded pixel, within FRINGE pixels (so the anti-aliased rim goes with its stroke)."""
    group_of = np.zeros(n + 1, np.int32)
    for gi, comps in enumerate(groups):
        group_of[comps + 1] = gi + 1
    core = group_of[labels]
    dist, nearest = cv2.distanceTransformWithLabels(
        (core == 0).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    # DIST_LABEL_PIXEL numbers the zero pixels (the core) in row-major order, starting at 1.
    flat = core.ravel()
    core_values = flat[flat > 0]
    owner = core_values[np.maximum(nearest, 1) - 1]
    owner[dist > FRINGE] = 0
    return owner


def _mark_crop(ink: np.ndarray, labels: np.ndarray, stats: np.ndarray, comps: np.ndarray) -> np.ndarray:
    """Crop of the marks `comps` alone, with their fringe, for the judge (a local, cheaper _owners)."""
    box = union_box(stats[comps])
    (x0, y0, side), (sx0, sy0, sx1, sy1) = _square(box, ink.shape)
    region = labels[sy0:sy1, sx0:sx1]
    mine = np.isin(region, comps + 1).astype(np.uint8)
    near = cv2.dilate(mine, np.ones((2 * FRINGE + 1, 2 * FRINGE + 1), np.uint8)).astype(bool)
    out = np.zeros((side, side), np.float32)
    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = ink[sy0:sy1, sx0:sx1] * (near & ((region == 0) | (mine > 0)))
    return out


def _crop(ink: np.ndarray, owner: np.ndarray, gid: int, box) -> np.ndarray:
    """The ink where owner == gid, in a square region around `box` with a margin (zero padded)."""
    (x0, y0, side), (sx0, sy0, sx1, sy1) = _square(box, ink.shape)
    out = np.zeros((side, side), np.float32)
    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = ink[sy0:sy1, sx0:sx1] * (owner[sy0:sy1, sx0:sx1] == gid)
    return out


def _square(box, shape):
    """A square around `box` with a margin: its (x0, y0, side) and the part inside the image."""
    x, y, w, h = (int(v) for v in box)
    side = max(w, h) + 2 * max(2, int(round(MARGIN * max(w, h))))
    x0 = x + w // 2 - side // 2
    y0 = y + h // 2 - side // 2
    H, W = shape
    return (x0, y0, side), (max(0, x0), max(0, y0), min(W, x0 + side), min(H, y0 + side))
