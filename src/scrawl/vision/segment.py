"""Find the characters in a picture of a string (a canvas drawing, a photo, a scan) and read them.

`segment(source)` returns the characters as `Piece`s in reading order (lines top to bottom, characters
left to right); `read(source, recognizer)` also recognises them, in one batch. Steps:

1. The ink map comes from `scrawl.preprocess.load_image`, the function every image in Scrawl goes
   through (any format, polarity or alpha; uneven lighting divided out; faint noise cut).
2. Threshold (Otsu on the ink map, clamped to a sane band) and connected components ("marks").
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
   out, its anti-aliased rim kept) goes through `scrawl.preprocess.frame`, like any single character.

Touching characters (one connected blob holding two digits) are not split yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from ..errors import EmptyImageError, ImageError
from .preprocess import FrameSpec, frame, load_image

__all__ = ["MAX_CHARACTERS", "Piece", "Segmentation", "TooManyCharactersError", "segment", "read"]

log = logging.getLogger(__name__)

# A read returns at most this many characters (a page of handwriting, not a book): bounds the work
# one request can cause. Beyond it: TooManyCharactersError.
MAX_CHARACTERS = 200
# At most this many separate marks are considered (the largest by area; the rest are specks): the
# pairwise steps are quadratic in this number, so a photo full of grain cannot make a read slow.
MAX_MARKS = 1000
# Ink threshold: Otsu's level on the ink map, kept inside this band. The ink map is already normalised
# (ink ~1, background 0), so Otsu lands at 0.3-0.5; the clamp guards odd histograms (all-solid strokes).
THRESHOLD_BAND = (0.25, 0.5)
# Components of at most this many pixels are dust (a 1-2 px speck is never a stroke).
DUST_PIXELS = 2
# Two marks are strokes of one character when their horizontal extents overlap by at least this
# fraction of the narrower one, the merged box is not taller than TALL x the reference height and the
# vertical gap between them is at most GAP x the reference height (so a character directly above another
# one, on the next line, stays separate). TALL is generous because the reference can be a fragment's
# height: a lone '7' broken in two has a reference of about half its height.
MERGE_OVERLAP = 0.5
TALL = 2.0
GAP = 0.5
# ... except when both are full-height marks side by side (each at least FULL x the reference height,
# vertically overlapping by at least half the shorter): a '1' tucked under the arm of a '7' looks just
# like the two strokes of an open '4'. Then the recogniser decides when one is given (merge when the
# merged character reads at least as confidently as the less confident half), else they merge.
FULL = 0.6
# At most this many such pairs are judged per image (3 framings and a model call each); the rest merge.
MAX_JUDGED = 100
# A character (after merging) less tall than this fraction of the reference height is "small": a dot,
# a bar, a fragment or a speck. It joins the nearest character within NEAR x the reference height;
# otherwise it is noise and is dropped.
SMALL = 0.4
NEAR = 0.5
# A character made only of small marks joins a neighbour at most TOUCH x the reference height away when
# the two together are at most NARROW times as wide as tall (see _group).
TOUCH = 0.1
NARROW = 0.6
# A character whose larger side is below this fraction of the image's shorter side (as for a single
# character in preprocess), but never more than SPECK_MAX px, is a speck: a 2x2 dot on a 280 px canvas is
# nothing to read, while 20 px digits on a 12 Mpx photo are still characters.
SPECK_REL = 0.03
SPECK_MAX = 12
# A narrow character (at most SLIVER x the reference height wide) made only of small marks is treated
# as one small mark (a dotted sliver beside a character, not a '1').
SLIVER = 0.25
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
    labels, stats = _components(ink)
    if len(stats) == 0:
        return Segmentation([], 0, (w, h))
    by_marks = (lambda sets: judge([_mark_crop(ink, labels, stats, m) for m in sets])) if judge else None
    groups = _group(stats, by_marks)
    speck = max(2.0, min(SPECK_REL * min(h, w), SPECK_MAX))
    groups = [g for g in groups if max(_union_box(stats[g])[2:]) >= speck]
    if not groups:
        return Segmentation([], 0, (w, h))
    if len(groups) > max_characters:
        raise TooManyCharactersError(
            f"too many characters: found {len(groups)}, a read returns at most {max_characters}; "
            "send a smaller part of the picture"
        )
    boxes = np.array([_union_box(stats[g]) for g in groups], dtype=np.int64).reshape(-1, 4)
    order, line_of = _reading_order(boxes)
    owner = _owners(labels, groups, len(stats))
    pieces = []
    for gi in order:
        x, y, bw, bh = (int(v) for v in boxes[gi])
        pieces.append(Piece(box=(x, y, bw, bh), line=int(line_of[gi]), crop=_crop(ink, owner, gi + 1, boxes[gi])))
    lines = int(line_of.max()) + 1 if len(pieces) else 0
    log.debug("segment: %d marks -> %d characters on %d line(s)", len(stats), len(pieces), lines)
    return Segmentation(pieces, lines, (w, h))


def read(source, recognizer, *, top_k: int = 3, charset: str | None = None, max_characters: int = MAX_CHARACTERS):
    """Segment `source` and recognise every character in one batch.

    Returns (segmentation, predictions) with predictions[i] for segmentation.pieces[i] (a
    scrawl.inference.Prediction). Pieces the framing finds empty (only faint ink) are dropped.
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


def _frame_or_none(crop: np.ndarray, spec: FrameSpec):
    try:
        return frame(crop, spec)
    except EmptyImageError:
        return None


# ------------------------------------------------------------------------------------------ steps


def _components(ink: np.ndarray):
    """Threshold the ink map -> (labels, stats (N, 5): x, y, w, h, area); label k is stats row k-1."""
    x8 = (np.clip(ink, 0, 1) * 255 + 0.5).astype(np.uint8)
    if not x8.any():
        return None, np.zeros((0, 5), np.int64)
    otsu, _ = cv2.threshold(x8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    lo, hi = THRESHOLD_BAND
    level = int(round(min(max(otsu / 255, lo), hi) * 255))
    n, labels, stats, _ = cv2.connectedComponentsWithStats((x8 > level).astype(np.uint8), connectivity=8)
    stats = stats[1:].astype(np.int64)
    area = stats[:, cv2.CC_STAT_AREA]
    keep = area > DUST_PIXELS
    if keep.sum() > MAX_MARKS:  # keep the largest marks; the rest of a grainy photo is specks
        keep &= area >= np.sort(area[keep])[-MAX_MARKS]
        keep[np.flatnonzero(keep)[MAX_MARKS:]] = False  # ties at the cut
    if not keep.all():
        # Relabel so that label k (1-based) is row k-1 of the kept stats; dropped marks become background.
        new = np.zeros(n, np.int32)
        new[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        labels = new[labels]
        stats = stats[keep]
    return labels, stats


def _group(stats: np.ndarray, judge: Callable[[list[np.ndarray]], list[float]] | None) -> list[np.ndarray]:
    """Component stats (N, 5) -> characters as arrays of component indices.

    judge(list of component index sets) -> confidences, or None (see segment)."""
    n = len(stats)
    x, y, w, h, area = (stats[:, i].astype(np.float64) for i in range(5))
    # Characters on a line are about equally tall (widths vary: '1' vs '0'), so heights set the scale;
    # weighting by area makes specks and fragments count for little.
    ref = _weighted_median(h, area)
    parent = np.arange(n)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # 1. Strokes of one character: strong horizontal overlap, and not a character on the next line.
    inter_x = np.minimum(x[:, None] + w[:, None], (x + w)[None]) - np.maximum(x[:, None], x[None])
    overlap = inter_x / np.minimum(w[:, None], w[None])
    top = np.minimum(y[:, None], y[None])
    bottom = np.maximum(y[:, None] + h[:, None], (y + h)[None])
    inter_y = np.minimum(y[:, None] + h[:, None], (y + h)[None]) - np.maximum(y[:, None], y[None])
    candidate = np.triu((overlap >= MERGE_OVERLAP) & (bottom - top <= TALL * ref) & (-inter_y <= GAP * ref), 1)
    full = h >= FULL * ref
    side_by_side = full[:, None] & full[None] & (inter_y >= 0.5 * np.minimum(h[:, None], h[None]))
    doubtful = []
    for i, j in zip(*np.nonzero(candidate)):
        if side_by_side[i, j] and judge is not None:
            doubtful.append((float(overlap[i, j]), int(i), int(j)))
        else:
            parent[find(i)] = find(j)
    for k, (_, i, j) in enumerate(sorted(doubtful, reverse=True)):  # most overlapping first
        ri, rj = find(i), find(j)
        if ri == rj:
            continue
        if k >= MAX_JUDGED:  # bounded work: the rest are merged, as without a judge
            parent[ri] = rj
            continue
        members = np.arange(n)
        a = members[[find(k) == ri for k in members]]
        b = members[[find(k) == rj for k in members]]
        conf_a, conf_b, conf_ab = judge([a, b, np.concatenate([a, b])])
        if conf_ab >= min(conf_a, conf_b):
            parent[ri] = rj
    roots = np.array([find(i) for i in range(n)])
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(int(roots[i]), []).append(i)
    sets = [np.array(v) for v in groups.values()]
    # 2. Small characters (dots, bars, fragments) join the nearest full one within reach, else are specks.
    #    So does a narrow character made only of small marks (a dotted sliver). A wider one made only of
    #    small marks (a faint stroke broken into pieces) joins its neighbour only when it touches it and
    #    the two together are as narrow as one character (the broken-off side of a '1'); a whole faint
    #    '6' next to a '0' stays a character.
    boxes = np.array([_union_box(stats[g]) for g in sets], np.float64)
    small = boxes[:, 3] < SMALL * ref
    fragments = ~small & np.array([bool((h[g] < SMALL * ref).all()) for g in sets])
    small |= fragments & (boxes[:, 2] <= SLIVER * ref)
    fragments &= ~small
    full = np.flatnonzero(~small & ~fragments)
    out = [list(sets[i]) for i in full]
    joining = np.flatnonzero(small | fragments)
    if len(full) and len(joining):
        gap = _gaps(boxes[joining], boxes[full])
        bx, by, bw, bh = boxes[full].T
        sx, sy, sw, sh = boxes[joining].T
        nearest = gap.argmin(1)
        for k, s in enumerate(joining):
            t = nearest[k]
            if small[s]:
                if gap[k, t] <= NEAR * ref:
                    out[t].extend(sets[s])
                continue
            width = max(bx[t] + bw[t], sx[k] + sw[k]) - min(bx[t], sx[k])
            height = max(by[t] + bh[t], sy[k] + sh[k]) - min(by[t], sy[k])
            if gap[k, t] <= TOUCH * ref and width <= NARROW * height:
                out[t].extend(sets[s])
            else:
                out.append(list(sets[s]))
    elif len(joining):  # nothing but fragments: they are the characters
        out = [list(sets[s]) for s in joining if fragments[s]]
    return [np.array(sorted(g)) for g in out]


def _gaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Box-to-box distances (0 when they overlap) between boxes a (N, 4) and b (M, 4): (N, M)."""
    ax, ay, aw, ah = a.T
    bx, by, bw, bh = b.T
    gx = np.maximum(0, np.maximum(bx[None] - (ax + aw)[:, None], ax[:, None] - (bx + bw)[None]))
    gy = np.maximum(0, np.maximum(by[None] - (ay + ah)[:, None], ay[:, None] - (by + bh)[None]))
    return np.hypot(gx, gy)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    c = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(c, 0.5 * c[-1])])


def _union_box(stats: np.ndarray) -> tuple[int, int, int, int]:
    x0 = stats[:, 0].min()
    y0 = stats[:, 1].min()
    x1 = (stats[:, 0] + stats[:, 2]).max()
    y1 = (stats[:, 1] + stats[:, 3]).max()
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


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
    box = _union_box(stats[comps])
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
