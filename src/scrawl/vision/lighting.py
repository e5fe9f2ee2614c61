"""Paper and light: which side of a grayscale picture is ink, and the ink's contrast with the light taken out.

`flatten(gray)` is the middle of `ink.load_image` (decode -> gray -> **polarity -> lighting** -> contrast
-> noise cut): it returns the ink's contrast against its local background (0 = background), which `ink`
then scales so that the ink is 1. Three steps:

1. Polarity (`_dark_ink`): the ink is on the side of the local background level (a median a third of
   the picture wide) with more deviation mass. Deviations within a dead zone of that level do not
   count, so the median's misfit under strong light or along a shadow's edge, small but spread over a
   whole page, cannot outweigh a few strokes; near a tie (a blank page) the picture is read as paper.
2. Background (`_background`): as document scanners normalise a page (Leptonica's
   pixBackgroundNormMorph), a morphological closing (dark ink) or opening (light ink) of a reduced copy
   removes the ink and keeps the paper and its light; dark ink is divided by it, light ink has it
   subtracted. A flat closing is exact on light that changes along one direction (a gradient, a
   straight shadow edge), and its square is sized from the strokes it must remove, like the rolling
   ball of ImageJ's Subtract Background: no wider than needed, so it follows curved light and is exact
   up to half its side from the picture's edges.
3. Inside out (`_frame_share`): a character cropped to its box fills much of the picture, so its ink
   can be the majority. The frame of a picture is background, so when the picture is balanced the
   polarity whose map calls less of the frame ink wins, and the picture is flagged as maybe such a
   crop (`ink` then takes the background's level from the background class, not the whole map).
   Small pictures have a flat background: the median of the background class (Otsu), not of the
   whole picture.

It also holds the 256-bin histogram helpers that `ink` shares.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

__all__ = ["FLATTEN_MIN_SIDE", "flatten"]  # and the histogram helpers, for ink and scans

# Images smaller than this are taken to have a flat background (no lighting correction): MNIST-size
# inputs are digital, and a kernel a third of the image wide would be no wider than a stroke.
FLATTEN_MIN_SIDE = 64
# The polarity's background level (a median filter) is computed on a copy whose longer side is
# MEDIAN_SIDE pixels, the lighting (a closing) on one of at most BG_SIDE: shadows and vignetting are
# smooth or straight-edged, so this is plenty, and it keeps the cost flat for 40 Mpx photos. BG_SIDE
# is large enough that a hard shadow edge, expanded back, leaves no line of false ink along it.
MEDIAN_SIDE = 128
BG_SIDE = 512
# A reduced copy keeps at least this many pixels across its short side: a long line of handwriting
# (20,000 x 60 px) shrunk by its long side alone would be 0-1 px high, and its polarity lost.
MIN_SHORT_SIDE = 24
# The median's and the widest closing's kernel: this fraction of the longer side (no stroke is wider).
BG_KERNEL_FRAC = 1 / 3
# The closing's square: STROKE_KERNEL times the widest stroke, at least KERNEL_MIN_FRAC of the side.
STROKE_KERNEL = 3
KERNEL_MIN_FRAC = 1 / 64
# The background is smoothed by a Gaussian of this sigma (reduced pixels) after the closing, and so is
# a copy reduced by less than half before it: the flat kernel's corners are rounded, and the closing
# does not follow the peaks of the noise, without moving a shadow's edge.
BG_BLUR = 1.0
# If a stroke is wider than the kernel it leaks into the estimate; clamp the paper estimate to at least
# this fraction of the brightest paper, so such ink still reads as ink. Light falling to 30% of its
# peak across the page, then a shadow, goes no deeper.
BG_MIN_REL = 0.15
# Polarity's dead zone: deviations from the local background level within this fraction of that level,
# or DEADZONE_SIGMAS noise sigmas (1.4826 * MAD), count for nothing. Half of ink.MIN_CONTRAST: ink,
# faint pencil too, stands out by more; the median's misfit under light falling to 30% by less (in the
# photos of tests/test_ink_photos.py it then leaves no light mass, where it outweighed the ink before).
DEADZONE = 0.05
DEADZONE_SIGMAS = 4.0
# Light ink on a dark background only when its deviation mass is more than this many times the dark
# one: a blank page, or the two sides of a shadow's edge, are read as paper (and then hold no ink).
LIGHT_ODDS = 2.0
# A character cropped to its box can be mostly ink, so the majority is not always the background. When
# the picture is balanced (each side of Otsu's threshold holds at least BALANCED of it) or its frame
# reads mostly as ink, the other polarity is tried too, and taken if its map calls less of the frame
# ink, by more than FRAME_MARGIN (see _frame_share), and a tenth of the picture ink of at least STRONG
# contrast (a character's ink or paper, not a page's noise). A picture whose map taken does so may be a
# character cropped to its box: ink._normalise then judges its background by the background class if
# the ink stands CROPPED_CONTRAST above it. Measured: tight crops of MNIST test digits (12-300 px, with
# a scanner's blur and noise) 99% above 0.5, narrow blurred '1's down to 0.32; blank photos (grain,
# blotches, light falling to 30%, a shadow, JPEG) 95% below 0.35.
BALANCED = 0.15
FRAME_MARGIN = 0.1
STRONG = 0.3
CROPPED_CONTRAST = 0.3


def flatten(g: np.ndarray) -> tuple[np.ndarray, bool]:
    """Grayscale in [0, 1], either polarity -> (float32 ink contrast in [0, 1], 0 = background; whether
    the picture may be a character cropped to its box, whose ink may be most of it)."""
    g8 = u8(g)
    h = hist(g8)
    present = np.flatnonzero(h)
    if present[-1] - present[0] < 2:  # flat image
        return np.zeros_like(g), False
    t = otsu(h)
    dark = _dark_ink(g8, h)
    x = _flatten(g, h, t, dark)
    below = float(h[: t + 1].sum()) / g8.size
    ring = np.concatenate([x[0], x[-1], x[1:-1, 0], x[1:-1, -1]])
    if min(below, 1 - below) < BALANCED and np.count_nonzero(ring >= STRONG) * 2 <= ring.size:
        return x, False
    # Much ink, or a frame mostly "ink": a character cropped to its box may be mostly ink. The frame is
    # background: the polarity whose map calls less of it ink wins, if that map holds strong "ink".
    other = _flatten(g, h, t, not dark)
    (share, strong), (other_share, other_strong) = _frame_share(x), _frame_share(other)
    if other_strong >= STRONG and other_share + FRAME_MARGIN < share:
        return other, True
    return x, strong >= STRONG  # else a page: blank, or a shadow's two sides


def _dark_ink(g8: np.ndarray, h: np.ndarray) -> bool:
    """Polarity (uint8 picture and its histogram): True for dark ink on light paper."""
    level = _local_median(g8, int(round(hist_percentile(h, 50) * 255)))
    below, above = cv2.subtract(level, g8), cv2.subtract(g8, level)  # saturating: the two sides
    step = max(1, g8.size // 200_000)
    sigma = 1.4826 * float(np.median(np.maximum(below, above).ravel()[::step]))
    floor = np.uint8(min(255, max(1, round(DEADZONE_SIGMAS * sigma))))
    dead = np.maximum(cv2.convertScaleAbs(level, alpha=DEADZONE), floor)  # per pixel, in uint8 levels
    dark = float(cv2.subtract(below, dead).sum(dtype=np.int64))
    light = float(cv2.subtract(above, dead).sum(dtype=np.int64))
    return light <= LIGHT_ODDS * dark


def _reduced(x: np.ndarray, long_side: int) -> np.ndarray:
    """x shrunk (INTER_AREA) so its long side is about `long_side`, but never below MIN_SHORT_SIDE across
    (nor enlarged)."""
    h, w = x.shape
    s = _reduced_scale(h, w, long_side)
    if s >= 1:
        return x
    return cv2.resize(x, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _reduced_scale(h: int, w: int, long_side: int) -> float:
    return min(1.0, max(long_side / max(h, w), MIN_SHORT_SIDE / min(h, w)))


def _local_median(g8: np.ndarray, med: int) -> np.ndarray:
    """Polarity-agnostic background level (uint8): a median filter a third of the picture wide (at
    MEDIAN_SIDE px); the global median for small pictures."""
    h, w = g8.shape
    if min(h, w) < FLATTEN_MIN_SIDE:
        return np.full_like(g8, med)
    small = _reduced(g8, MEDIAN_SIDE)
    small = cv2.medianBlur(small, max(3, int(BG_KERNEL_FRAC * MEDIAN_SIDE) | 1))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _flatten(g: np.ndarray, h: np.ndarray, t: int, dark: bool) -> np.ndarray:
    """Ink contrast for one polarity: the lighting divided out (dark ink) or subtracted (light ink).
    A small picture's background level is the median of its background class (Otsu threshold t): a
    character that fills its frame is not judged against its own ink."""
    bg = _background(g, _paper(h, t, dark), light=dark)
    x = 1 - g / np.maximum(bg, np.float32(1 / 255)) if dark else g - bg
    return np.clip(x, 0, 1).astype(np.float32)


def _paper(h: np.ndarray, t: int, dark: bool) -> float:
    """The background class's median level (the paper's, for a small picture)."""
    side = h.copy()
    if dark:
        side[: t + 1] = 0
    else:
        side[t + 1 :] = 0
    return hist_percentile(side, 50) if side.sum() else hist_percentile(h, 50)


def _background(g: np.ndarray, paper: float, light: bool):
    """Background (paper + lighting) without the ink: closing (light paper) or opening (dark paper) of
    a reduced copy, lightly smoothed and expanded; a scalar (`paper`) for small pictures."""
    h, w = g.shape
    if min(h, w) < FLATTEN_MIN_SIDE:
        return np.float32(paper)
    small = _reduced(g, BG_SIDE)
    s = small.shape[1] / w
    if s > 0.5:  # little averaged by the reduction: the closing would follow the peaks of the noise
        small = cv2.GaussianBlur(small, (0, 0), BG_BLUR)
    op = cv2.MORPH_CLOSE if light else cv2.MORPH_OPEN
    k = max(3, int(BG_KERNEL_FRAC * max(small.shape)) | 1)
    bg = cv2.morphologyEx(small, op, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    fit = _kernel_side(small, bg, k, light)
    if fit < k:
        bg = cv2.morphologyEx(small, op, cv2.getStructuringElement(cv2.MORPH_RECT, (fit, fit)))
    bg = cv2.GaussianBlur(bg, (0, 0), BG_BLUR)
    if light:  # a stroke wider than the kernel leaks into the estimate: never below BG_MIN_REL of the paper
        bg = np.maximum(bg, np.float32(BG_MIN_REL * np.percentile(bg, 99)))
    return bg if bg.shape == (h, w) else cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)


def _kernel_side(small: np.ndarray, wide: np.ndarray, k: int, light: bool) -> int:
    """The closing's square ("at least as large as the largest object that is not part of the
    background", ImageJ's rolling ball): STROKE_KERNEL times the widest stroke, within
    [KERNEL_MIN_FRAC of the side, k]. The strokes are what the widest closing `wide` (kernel k) removes
    by more than half the ink's contrast, away from the edges where the wide kernel holds the light at
    its level inside (anywhere, if nothing is left there); their width is twice the 99th percentile of
    their distance transform."""
    kmin = min(k, max(3, int(KERNEL_MIN_FRAC * max(small.shape)) | 1))
    contrast = np.abs(wide - small)
    if light:
        contrast /= np.maximum(wide, np.float32(1 / 255))
    m = min(k // 2, (min(small.shape) - 1) // 2)
    for inner in (contrast[m : contrast.shape[0] - m, m : contrast.shape[1] - m], contrast):
        c8 = u8(inner)
        h = hist(c8)
        h[: otsu(h) + 1] = 0
        if h.sum():
            ink = (c8 > 0.5 * 255 * hist_percentile(h * np.arange(256), 90)).astype(np.uint8)
            width = 2 * float(np.percentile(cv2.distanceTransform(ink, cv2.DIST_L2, 3)[ink > 0], 99))
            return int(min(k, max(kmin, STROKE_KERNEL * width))) | 1
    return kmin


def _frame_share(x: np.ndarray) -> tuple[float, float]:
    """The share of the picture's frame (its outermost pixels) that a flattened map calls ink (above
    its Otsu threshold), and the map's 90th percentile. The frame is background; a character cropped to
    its box touches it at a few places (MNIST test digits cropped to their box at 16-64 px: a median of
    12-18% of the frame, 95th percentile 23-32%; with the polarity inside out 43-85%)."""
    x = _reduced(x, 2 * MEDIAN_SIDE)  # shares: a reduced copy will do
    x8 = u8(x)
    h = hist(x8)
    ring = np.concatenate([x8[0], x8[-1], x8[1:-1, 0], x8[1:-1, -1]])
    return float(np.count_nonzero(ring > otsu(h))) / ring.size, hist_percentile(h, 90)


# ------------------------------------------------------------------------------ histogram helpers

_LEVELS = np.arange(256, dtype=np.float64)


def u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def hist(x8: np.ndarray) -> np.ndarray:
    return cv2.calcHist([x8], [0], None, [256], [0, 256]).ravel()


def hist_percentile(h: np.ndarray, q: float) -> float:
    """q-th percentile (0..100) of uint8 data given its 256-bin histogram, in [0, 1] units."""
    c = h.cumsum()
    return float(c.searchsorted(q / 100 * c[-1])) / 255


def hist_percentiles(h: np.ndarray, q: float) -> np.ndarray:
    """hist_percentile of each row of h (N, 256)."""
    c = h.cumsum(1)
    return (c < (q / 100 * c[:, -1])[:, None]).sum(1) / 255


def hist_mads(h: np.ndarray, m: np.ndarray) -> np.ndarray:
    """For each row of h (N, 256): the median absolute deviation (unscaled, in [0, 1] units) of its
    levels from level m (its median), as the n/2-th smallest |level / 255 - m / 255|."""
    devs, orders = _mad_tables()
    c = np.take_along_axis(h, orders[m], 1).cumsum(1)
    return devs[m, (c < 0.5 * c[:, -1:]).sum(1)]


@functools.cache
def _mad_tables() -> tuple[np.ndarray, np.ndarray]:
    """Row m: |level / 255 - m / 255| for the 256 levels in their stable sort order, and that order (a
    median is one of 256 levels: each order is sorted once)."""
    dev = np.abs(np.arange(256) / 255 - (np.arange(256) / 255)[:, None])
    order = np.argsort(dev, axis=1, kind="stable")
    return np.take_along_axis(dev, order, 1), order


def median(v: np.ndarray) -> float:
    """float(np.median(v)) of a 1-D float array without NaN, its arithmetic included (the middle
    value, or the mean of the middle two in v's dtype), without np.median's overhead."""
    k = v.size // 2
    if v.size % 2:
        return float(np.partition(v, k)[k])
    part = np.partition(v, (k - 1, k))
    return float(part[k - 1 : k + 1].mean())


def otsu(h: np.ndarray) -> int:
    """Otsu's threshold from a 256-bin histogram: OpenCV's THRESH_OTSU computed on the histogram we
    already have (cv2.threshold would histogram the image again). Same rule as OpenCV's
    getThreshVal_Otsu_8u: the first level with the largest between-class variance, skipping levels
    where either class is (nearly) empty. (otsu_rows does many at once; tests check they agree.)"""
    p = h.astype(np.float64)
    p /= max(float(h.sum()), 1.0)
    q1 = p.cumsum()
    q2 = 1.0 - q1
    # The levels where both classes hold more than eps are one run (q1 rises, q2 falls): compute the
    # variance there only, so nothing divides by an empty class. (Methods, not np.* functions: this
    # runs a few times per image, and for small images numpy's per-call overhead is the cost.)
    eps = float(np.finfo(np.float32).eps)
    rev = q2[::-1]
    lo = max(int(q1.searchsorted(eps)), 256 - int(rev.searchsorted(1 - eps, "right")))
    hi = min(int(q1.searchsorted(1 - eps, "right")), 256 - int(rev.searchsorted(eps)))
    if lo >= hi:
        return 0
    mu = float(p @ _LEVELS)
    q1, q2 = q1[lo:hi], q2[lo:hi]
    mu1 = (p * _LEVELS).cumsum()[lo:hi] / q1
    mu2 = (mu - q1 * mu1) / q2
    sigma = q1 * q2 * (mu1 - mu2) ** 2
    i = int(sigma.argmax())
    return lo + i if sigma[i] > 0 else 0


def otsu_rows(h: np.ndarray) -> np.ndarray:
    """`otsu` of each row of h (N, 256), all at once."""
    # Totals and means row by row: the same summation order as for one histogram.
    p = h.astype(np.float64) / np.array([[max(float(r.sum()), 1.0)] for r in h])
    mu = np.array([[float(r @ _LEVELS)] for r in p])
    q1 = p.cumsum(1)
    q2 = 1.0 - q1
    with np.errstate(divide="ignore", invalid="ignore"):
        mu1 = (p * _LEVELS).cumsum(1) / q1
        mu2 = (mu - q1 * mu1) / q2
        sigma = q1 * q2 * (mu1 - mu2) ** 2
    eps = np.finfo(np.float32).eps
    valid = (np.minimum(q1, q2) >= eps) & (np.maximum(q1, q2) <= 1 - eps)
    sigma = np.where(valid, sigma, 0.0)
    best = sigma.argmax(1)
    return np.where(sigma[np.arange(len(h)), best] > 0, best, 0)
