"""Negatives: images that are not a character (issue 15), for the reject class ("not a character") of
the digit and character models and for the tests that check it.

`make_junk(n, rng, chars)` draws `n` ink-bright images of these kinds (KINDS), on a 64x64 canvas
before framing, the way a user's taps and slips reach Scrawl:
  dot (a tap), dash (a line that is not upright: an upright one is a 1, l or I), blob (a filled
  smudge), scribble (a tangle of strokes), crossed (a real character scribbled over), pair (two real
  characters side by side, touching or not), fragment (a small corner of a real character's ink),
  noise (scattered specks).
`chars` are real character images (N, H, W) uint8, ink bright, for the kinds that use them.
`frame_junk` frames them like a user's image (images left without ink are dropped).

NumPy and OpenCV; no torch.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..vision.framing import FrameSpec, frame_batch
from .strokes import draw_polylines

KINDS = ("dot", "dash", "blob", "scribble", "crossed", "pair", "fragment", "noise")
CANVAS = 64


def _dot(rng) -> np.ndarray:
    c = np.zeros((CANVAS, CANVAS), np.uint8)
    centre = rng.uniform(20, 44, 2)
    pts = [centre + rng.normal(0, rng.uniform(0, 1.5), (int(rng.integers(1, 4)), 2))]  # a tap, maybe a wobble
    return draw_polylines(c, pts, float(rng.uniform(2, 9)))


def _dash(rng) -> np.ndarray:
    c = np.zeros((CANVAS, CANVAS), np.uint8)
    angle = np.deg2rad(rng.uniform(-40, 40))  # from horizontal: never near upright (a slanted 1)
    length = rng.uniform(10, 50)
    centre = rng.uniform(24, 40, 2)
    d = np.array([np.cos(angle), np.sin(angle)]) * length / 2
    t = np.linspace(-1, 1, 8)[:, None]
    line = centre + t * d + rng.normal(0, 0.4, (8, 2))  # a hand-drawn wobble
    return draw_polylines(c, [line], float(rng.uniform(1.5, 6)))


def _blob(rng) -> np.ndarray:
    c = np.zeros((CANVAS, CANVAS), np.uint8)
    k = int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radius = rng.uniform(6, 22) * rng.uniform(0.6, 1.0, k)
    pts = np.stack([32 + radius * np.cos(angles) * rng.uniform(0.6, 1.4), 32 + radius * np.sin(angles)], 1)
    cv2.fillPoly(c, [np.round(pts).astype(np.int32)], 255, lineType=cv2.LINE_AA)
    return c


def _scribble(rng, c: np.ndarray | None = None, span: float = 22) -> np.ndarray:
    c = np.zeros((CANVAS, CANVAS), np.uint8) if c is None else c
    n = int(rng.integers(8, 26))
    if rng.random() < 0.5:  # a zigzag back and forth, as when crossing something out
        x = np.where(np.arange(n) % 2 == 0, 32 - span, 32 + span) + rng.normal(0, 4, n)
        y = np.linspace(32 - span * 0.7, 32 + span * 0.7, n) + rng.normal(0, 2, n)
        pts = np.stack([x, y], 1)
    else:  # a tangle: a random walk
        pts = 32 + np.cumsum(rng.normal(0, span / 3, (n, 2)), 0)
        pts = np.clip(pts, 4, CANVAS - 5)
    return draw_polylines(c, [pts], float(rng.uniform(1.5, 5)))


def _paste(canvas: np.ndarray, image: np.ndarray, x: int, y: int, size: int) -> None:
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    h, w = canvas.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + size, w), min(y + size, h)
    if x1 > x0 and y1 > y0:
        part = small[y0 - y : y1 - y, x0 - x : x1 - x]
        np.maximum(canvas[y0:y1, x0:x1], part, out=canvas[y0:y1, x0:x1])


def _crossed(rng, chars) -> np.ndarray:
    c = np.zeros((CANVAS, CANVAS), np.uint8)
    _paste(c, chars[rng.integers(len(chars))], 8, 8, 48)
    return _scribble(rng, c, span=rng.uniform(14, 24))


def _pair(rng, chars) -> np.ndarray:
    size = int(rng.integers(28, 40))
    gap = int(round(size * rng.uniform(-0.35, 0.25)))  # < 0: the two overlap (touching ink)
    c = np.zeros((CANVAS, 2 * size + max(gap, 0) + 8), np.uint8)
    _paste(c, chars[rng.integers(len(chars))], 4, (CANVAS - size) // 2, size)
    _paste(c, chars[rng.integers(len(chars))], 4 + size + gap, (CANVAS - size) // 2 + int(rng.integers(-4, 5)), size)
    return c


def _bar_like(piece: np.ndarray) -> bool:
    """Whether the ink is a thin stroke steeper than 45 degrees: its second moments' axes differ more
    than 4:1 in variance and the long one points up. A bounding-box test missed slanted bars."""
    m = cv2.moments((piece > 64).astype(np.uint8), binaryImage=True)
    if m["m00"] < 1:
        return False
    cov = np.array([[m["mu20"], m["mu11"]], [m["mu11"], m["mu02"]]]) / m["m00"]
    values, vectors = np.linalg.eigh(cov)  # ascending
    long_axis = vectors[:, 1]  # (x, y)
    steep = abs(long_axis[1]) > abs(long_axis[0])
    return steep and values[1] > 4 * max(values[0], 1e-6)


def _fragment(rng, chars) -> np.ndarray:
    image = chars[rng.integers(len(chars))]
    h, w = image.shape
    fh, fw = int(h * rng.uniform(0.25, 0.45)), int(w * rng.uniform(0.25, 0.45))
    ys, xs = np.nonzero(image > 64)
    if len(ys) == 0:
        return np.zeros((CANVAS, CANVAS), np.uint8)
    k = rng.integers(len(ys))  # a window around a point of ink
    y0 = int(np.clip(ys[k] - fh // 2, 0, h - fh))
    x0 = int(np.clip(xs[k] - fw // 2, 0, w - fw))
    c = np.zeros((CANVAS, CANVAS), np.uint8)
    piece = np.zeros_like(image)
    piece[y0 : y0 + fh, x0 : x0 + fw] = image[y0 : y0 + fh, x0 : x0 + fw]
    if _bar_like(piece):  # framed, a steep bar (upright or slanted) is a 1, l or I, not junk
        return _pair(rng, chars)
    _paste(c, piece, 8, 8, 48)
    return c


def _noise(rng) -> np.ndarray:
    c = np.zeros((CANVAS, CANVAS), np.uint8)
    n = int(rng.integers(4, 30))
    pts = [p[None] for p in rng.uniform(4, CANVAS - 5, (n, 2))]
    return draw_polylines(c, pts, float(rng.uniform(1.5, 4)))


def make_junk(n: int, rng: np.random.Generator, chars: np.ndarray | None = None,
              kinds: tuple[str, ...] = KINDS) -> tuple[list[np.ndarray], list[str]]:
    """`n` negatives (uint8 ink-bright images, most 64x64, pairs wider) and the kind of each, kinds drawn
    in turn. Kinds that need real characters are skipped when `chars` is None or empty."""
    have_chars = chars is not None and len(chars) > 0
    usable = [k for k in kinds if have_chars or k not in ("crossed", "pair", "fragment")]
    if not usable:
        raise ValueError("no kind of negative can be made: pass real characters for crossed, pair and fragment")
    images, made = [], []
    for i in range(n):
        kind = usable[i % len(usable)]
        if kind in ("crossed", "pair", "fragment"):
            image = {"crossed": _crossed, "pair": _pair, "fragment": _fragment}[kind](rng, chars)
        else:
            image = {"dot": _dot, "dash": _dash, "blob": _blob, "scribble": _scribble, "noise": _noise}[kind](rng)
        images.append(image)
        made.append(kind)
    return images, made


def frame_junk(images: list[np.ndarray], spec: FrameSpec) -> tuple[np.ndarray, np.ndarray]:
    """The negatives framed by `spec` like a user's image: ((M, size, size) uint8, indices kept); images
    the framing finds no ink in (it drops lone specks) are left out."""
    out = np.zeros((len(images), spec.size, spec.size), np.uint8)
    for i, image in enumerate(images):
        out[i] = np.round(frame_batch(image[None], spec)[0] * 255).astype(np.uint8)
    kept = np.flatnonzero(out.reshape(len(out), -1).max(1) > 0) if len(out) else np.zeros(0, np.int64)
    return out[kept], kept
