"""Marks -> characters: threshold an ink map into connected marks, and group the marks of one character.

Steps 2-4 of `segment` (see there): Otsu's threshold clamped to a band and connected components
("marks"); dust dropped; the reference size is the area-weighted median mark height; strokes of one
character merged (strong horizontal overlap), with full-height marks side by side left to a judge (the
recogniser) when one is given; then small marks (a dot, a bar, a fragment) join the nearest character
or are dropped as specks.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

__all__ = ["MAX_MARKS", "components", "group", "union_box"]

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
# the two together are at most NARROW times as wide as tall (see _join_small).
TOUCH = 0.1
NARROW = 0.6
# A narrow character (at most SLIVER x the reference height wide) made only of small marks is treated
# as one small mark (a dotted sliver beside a character, not a '1').
SLIVER = 0.25


def components(ink: np.ndarray):
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


def group(stats: np.ndarray, judge: Callable[[list[np.ndarray]], list[float]] | None) -> list[np.ndarray]:
    """Component stats (N, 5) -> characters as sorted arrays of component indices.

    judge(list of component index sets) -> confidences, or None (see segment.segment)."""
    h, area = stats[:, 3].astype(np.float64), stats[:, 4].astype(np.float64)
    # Characters on a line are about equally tall (widths vary: '1' vs '0'), so heights set the scale;
    # weighting by area makes specks and fragments count for little.
    ref = _weighted_median(h, area)
    return _join_small(stats, _merge_strokes(stats, ref, judge), ref)


def _merge_strokes(stats: np.ndarray, ref: float, judge) -> list[np.ndarray]:
    """Step 1: strokes of one character (strong horizontal overlap, and not a character on the next
    line) merged; full-height marks side by side merged only if the judge (when given) agrees."""
    n = len(stats)
    x, y, w, h = (stats[:, i].astype(np.float64) for i in range(4))
    parent = np.arange(n)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

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
    return [np.array(v) for v in groups.values()]


def _join_small(stats: np.ndarray, sets: list[np.ndarray], ref: float) -> list[np.ndarray]:
    """Step 2: small characters (dots, bars, fragments) join the nearest full one within reach, else
    are specks. So does a narrow character made only of small marks (a dotted sliver). A wider one made
    only of small marks (a faint stroke broken into pieces) joins its neighbour only when it touches it
    and the two together are as narrow as one character (the broken-off side of a '1'); a whole faint
    '6' next to a '0' stays a character."""
    h = stats[:, 3].astype(np.float64)
    boxes = np.array([union_box(stats[g]) for g in sets], np.float64)
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


def union_box(stats: np.ndarray) -> tuple[int, int, int, int]:
    x0 = stats[:, 0].min()
    y0 = stats[:, 1].min()
    x1 = (stats[:, 0] + stats[:, 2]).max()
    y1 = (stats[:, 1] + stats[:, 3]).max()
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)
