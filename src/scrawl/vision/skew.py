"""A line's skew: the angle its writing drifts up or down, so a sloped line can be turned level before it
is scaled to the line model's height (a line climbing 10 degrees over 60 characters would otherwise be
squeezed until each character is narrower than one of the model's frames).

The estimate is the projection-profile method (Postl 1986; Baird 1987, "The skew angle of printed
documents"): turn the ink by each candidate angle and keep the one whose row profile is sharpest (the
largest sum of squared row sums), first on a coarse grid of angles, then a fine one around the best.
It takes weighted points, so the same function levels a user's ink map (`level_ink`) and the training
lines rendered from pen strokes (`scrawl.data.strokes.render_strokes(level=True)`): one owner for the
angle, whichever way the line arrives.

Angles are in degrees, y pointing down: a positive skew is a line whose right end sits lower on the page.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Lines are levelled within +-MAX_SKEW degrees: people write lines that slope a few degrees, a phone
# held askew adds more; steeper ink is not a line of text (or is a column of it) and stays as it is.
MAX_SKEW = 20.0
# A level line must be this much sharper than the ink as it stands (profile sharpness ratio) to be
# turned: a short word's profile hardly changes with the angle, and turning it on noise would hurt.
MIN_GAIN = 1.1
# Lines shorter than this (width / height of the ink) are left as they are: a word or two gives the
# profile too few characters to find a slope from.
MIN_ASPECT = 3.0
_BINS = 96  # rows of the profile over the ink's height at angle 0
_MAX_POINTS = 2000  # points kept (evenly spread) for the estimate: a profile needs no more, reads need speed


def _sharpness(x: np.ndarray, y: np.ndarray, w: np.ndarray, angles: np.ndarray, bin_h: float) -> np.ndarray:
    """Profile sharpness of the points turned by each angle (degrees; a shear, the same for small
    angles): all angles in one bincount, each angle's rows offset past the previous angle's."""
    yy = y[None, :] - np.tan(np.radians(angles))[:, None] * x[None, :]  # (A, N)
    rows = np.floor((yy - yy.min(axis=1, keepdims=True)) / bin_h).astype(np.int64)
    span = int(rows.max()) + 1
    rows += np.arange(len(angles))[:, None] * span
    counts = np.bincount(rows.ravel(), weights=np.broadcast_to(w, yy.shape).ravel(), minlength=len(angles) * span)
    return np.square(counts).reshape(len(angles), span).sum(axis=1)


def estimate_skew(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The skew (degrees) of a line given as points x, y (y down) with weights (ink); 0.0 when the points
    are too few, too short a line, or no angle is clearly better than none."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    w = np.ones_like(x) if weights is None else np.asarray(weights, np.float64).ravel()
    if len(x) < 8:
        return 0.0
    if len(x) > _MAX_POINTS:
        keep = np.linspace(0, len(x) - 1, _MAX_POINTS).astype(np.int64)
        x, y, w = x[keep], y[keep], w[keep]
    width, height = np.ptp(x), np.ptp(y)
    if height <= 0 or width < 1.4 * height:
        # a dot, a flat stroke, or ink that even levelled cannot be a line (MIN_ASPECT): a sloped line's box
        # is its levelled height plus width * tan(skew), and tan(MAX_SKEW) * 3 < 1.1
        return 0.0
    x = x - x.mean()
    bin_h = height / _BINS
    coarse = np.arange(-MAX_SKEW, MAX_SKEW + 1e-9, 2.0)
    s = _sharpness(x, y, w, coarse, bin_h)
    best = float(coarse[int(np.argmax(s))])
    fine = np.arange(best - 2.0, best + 2.0 + 1e-9, 0.25)
    fine = fine[np.abs(fine) <= MAX_SKEW]
    sf = _sharpness(x, y, w, fine, bin_h)
    angle = float(fine[int(np.argmax(sf))])
    flat = float(s[np.argmin(np.abs(coarse))])  # the coarse grid holds 0 degrees: the ink as it stands
    levelled_h = np.ptp(y - x * math.tan(math.radians(angle)))
    if sf.max() < MIN_GAIN * flat or width < MIN_ASPECT * levelled_h:
        return 0.0
    return angle


def ink_skew(ink: np.ndarray, level: float = 0.5) -> float:
    """The skew of the ink in an ink map (float, ink bright): `estimate_skew` of its ink pixels."""
    ys, xs = np.nonzero(ink > level)
    return estimate_skew(xs, ys, ink[ys, xs])


def level_ink(ink: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Turn an ink map (float, ink bright) level: (turned map on a canvas that holds all of it, the skew
    in degrees, the 2x3 affine matrix from the turned map's pixels back to `ink`'s). A line with no
    clear skew comes back unchanged (the same array, skew 0.0, the identity)."""
    angle = ink_skew(ink)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    if angle == 0.0:
        return ink, 0.0, identity
    h, w = ink.shape
    # cv2's angle is counter-clockwise on screen; a line whose right end is low (positive skew, y down)
    # is levelled by turning it counter-clockwise by that angle.
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(w * c + h * s)), int(math.ceil(w * s + h * c))
    m[0, 2] += (nw - w) / 2
    m[1, 2] += (nh - h) / 2
    turned = cv2.warpAffine(ink.astype(np.float32), m, (nw, nh), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return turned, angle, cv2.invertAffineTransform(m)


def level_crop(crop: np.ndarray, bbox_level: float, origin: list | None = None) -> tuple[np.ndarray, float, tuple]:
    """A line's crop (the framing's: cropped to its ink, its corner at `origin` in the input) turned
    level and cropped again to its ink above `bbox_level`: (crop, skew, (a, b)), where input column =
    a * canvas column + b along the crop's middle row. `origin` becomes the new crop's corner in the
    turned canvas. A level line comes back as it is, with skew 0.0 and (1.0, 0.0)."""
    turned, skew, back = level_ink(crop)
    if skew == 0.0:
        return crop, 0.0, (1.0, 0.0)
    x, y, w, h = cv2.boundingRect((turned > bbox_level).astype(np.uint8))
    ox = origin[0] if origin is not None else 0
    to_input = (float(back[0, 0]), float(back[0, 1] * (y + h / 2) + back[0, 2] + ox))
    if origin is not None:
        origin[:] = [x, y]
    return np.ascontiguousarray(turned[y : y + h, x : x + w]), skew, to_input
