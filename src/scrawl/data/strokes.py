"""Pen strokes -> images: render on-line handwriting (UNIPEN's pen strokes, drawn templates) into the
ink-bright uint8 images a line or character model reads, and vary their look like screens and paper do.

* `render_strokes(strokes, height, style)`: strokes (a list of (P, 2) float arrays, x right, y down, any
  units) drawn with a round pen, antialiased (cv2.polylines with LINE_AA on a `supersample`-times larger
  canvas, then shrunk with INTER_AREA), aspect ratio kept: 0 background, 255 ink, `height` rows.
* `StrokeStyle` / `random_style(rng)`: pen width (a fraction of the height), blur, slant, rotation,
  how much of the height the ink spans and where, horizontal stretch. A style renders deterministically;
  `random_style` draws one from a seeded numpy Generator.
* `draw_polylines`: the drawing primitive (pixel coordinates onto a canvas); `fit_to_height`: lay out
  any ink image at a height the same way `render_strokes` does (the synthetic strings use it).
* `augment_paper(image, rng)`: a screen-like or paper-like variation of a rendered line, returned as
  the ink map Scrawl's own image reader (`scrawl.vision.ink.load_image`) makes of it.

Plain NumPy and OpenCV; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..vision.ink import FLATTEN_MIN_SIDE, load_image
from ..vision.skew import estimate_skew

_SHIFT = 4  # cv2 drawing with 4 fractional bits: points are placed to 1/16 of a canvas pixel


@dataclass(frozen=True)
class StrokeStyle:
    """How one rendering looks. Lengths are fractions of the output height unless said otherwise."""

    pen: float = 0.08  # pen width (UNIPEN ink has a uniform width: SOURCES.md suggests 5-14% of a box)
    blur: float = 0.0  # Gaussian sigma in output pixels (0: none)
    slant: float = 0.0  # shear: x += slant * (height above the ink's centre); > 0 leans right
    rotate: float = 0.0  # degrees, counter-clockwise on the page: a baseline that climbs
    fill: float = 0.8  # the ink's box spans this fraction of the height (less where min_extent binds)
    stretch: float = 1.0  # horizontal scale relative to vertical (narrow or wide writing)
    offset: float = 0.5  # where the ink sits in the height it leaves free: 0 top, 1 bottom


def random_style(rng: np.random.Generator, *, pen=(0.03, 0.09), blur=(0.0, 0.8), slant=(-0.3, 0.3),
                 rotate=(-3.0, 3.0), fill=(0.65, 0.95), stretch=(0.8, 1.25), offset=(0.2, 0.8)) -> StrokeStyle:
    """A StrokeStyle drawn uniformly from these (low, high) ranges by `rng` (deterministic for a seed).

    Default ranges (the renders were checked by eye): pens of 3-9% of a line's height, because a line's
    height also holds ascenders and descenders, and x-height letters are a third to a half of it (5-14%
    is SOURCES.md's range for a character's box; pass pen=(0.05, 0.14) for characters);
    slants within about +-17 degrees; rotations within +-3 degrees; ink spanning 65-95% of the height.
    """
    def u(r):
        return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])

    return StrokeStyle(pen=u(pen), blur=u(blur), slant=u(slant), rotate=u(rotate), fill=u(fill),
                       stretch=u(stretch), offset=u(offset))


def _check_strokes(strokes: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = []
    for s in strokes:
        a = np.asarray(s, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(f"each stroke must be a (P, 2) array of x, y; got shape {a.shape}")
        if len(a):
            if not np.isfinite(a).all():
                raise ValueError("stroke coordinates must be finite")
            out.append(a)
    if not out:
        raise ValueError("nothing to render: no stroke has a point")
    return out


def _pose(strokes: list[np.ndarray], slant: float, rotate: float) -> list[np.ndarray]:
    """Rotate and shear the strokes about the centre of their box (y down)."""
    pts = np.concatenate(strokes)
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
    t = np.deg2rad(rotate)
    # y points down, so a counter-clockwise turn on the page is [[cos, sin], [-sin, cos]] here.
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    shear = np.array([[1.0, -slant], [0.0, 1.0]])  # points above the centre (y < 0) move right
    m = shear @ rot
    return [(s - centre) @ m.T for s in strokes]


def _skew(strokes: list[np.ndarray]) -> float:
    """The strokes' skew (degrees, vision.skew): segment midpoints weighted by their length, so the pen's
    speed (points per unit of ink) does not weigh."""
    mids, lengths = [], []
    for s in strokes:
        if len(s) > 1:
            mids.append((s[1:] + s[:-1]) / 2)
            lengths.append(np.hypot(*np.diff(s, axis=0).T))
    if not mids:
        return 0.0
    m = np.concatenate(mids)
    return estimate_skew(m[:, 0], m[:, 1], np.concatenate(lengths))


def draw_polylines(canvas: np.ndarray, strokes: Sequence[np.ndarray], pen_px: float, *,
                   supersample: int = 4, value: int = 255) -> np.ndarray:
    """Draw strokes given in `canvas` pixel coordinates (x, y; pixel centres at integers) with a round,
    antialiased pen `pen_px` pixels wide into `canvas` (uint8 (H, W), combined by maximum). The pen is
    drawn on a canvas `supersample` times larger and shrunk with INTER_AREA, so widths and positions
    below a pixel still count. Returns `canvas`."""
    h, w = canvas.shape
    k = int(supersample)
    big = np.zeros((h * k, w * k), np.uint8)
    thick = max(1, int(round(pen_px * k)))
    for s in strokes:
        # a canvas pixel i covers big pixels k*i .. k*i + k - 1, whose centre is k*i + (k - 1) / 2
        p = np.round((np.asarray(s, np.float64) * k + (k - 1) / 2) * (1 << _SHIFT)).astype(np.int64)
        if len(p) == 1:
            p = np.repeat(p, 2, axis=0)  # polylines draws nothing for a single point: a dot is a 0-length line
        p = np.clip(p, -(1 << 24), 1 << 24).astype(np.int32)
        cv2.polylines(big, [p.reshape(-1, 1, 2)], False, int(value), thickness=thick, lineType=cv2.LINE_AA,
                      shift=_SHIFT)
    small = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA) if k > 1 else big
    np.maximum(canvas, small, out=canvas)
    return canvas


def _finish(image: np.ndarray, blur: float) -> np.ndarray:
    """Blur (sigma in pixels) and stretch so the brightest ink is 255 again."""
    if blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), float(blur))
    top = int(image.max())
    if 0 < top < 255:
        image = cv2.convertScaleAbs(image, alpha=255.0 / top)
    return image


def render_strokes(strokes: Sequence[np.ndarray], height: int = 32, style: StrokeStyle | None = None, *,
                   rng: np.random.Generator | None = None, min_extent: float | None = None,
                   pen_extent: float | None = None, level: bool = False,
                   margin: float = 0.1, max_aspect: float = 80.0, supersample: int = 4) -> np.ndarray:
    """Render pen strokes into a uint8 (height, W) image, 0 background, 255 ink, aspect ratio kept.

    strokes: (P, 2) arrays of x, y with y pointing down, in any one unit. style: how it looks; None
    draws one with `random_style(rng)` if `rng` is given, else the default StrokeStyle.
    The ink's box is scaled to span `style.fill` of the height, as a reader that crops the ink and
    scales it to the line height sees it. min_extent (stroke units): the box counts as at least this tall,
    so a lone dash or dot is not blown up to a full line's height (it then sits at `style.offset` in the
    free height). max_aspect: the box also counts as at least width / max_aspect tall (bounds W).
    margin: blank columns on each side, as a fraction of the height. W is at least 1.
    pen_extent (stroke units): the writing's usual height (a writer's median word); the pen is sized
    against it, not against a taller box, so a long line that drifts or a tall phrase is not drawn with a
    pen as thick as its letters (a real pen is as wide as it is, however the line runs). Never thicker
    than against the box. level: turn a sloping line level first (vision.skew, as the framing levels a
    user's line); style.rotate still turns it after.
    """
    if height < 1:
        raise ValueError(f"height must be at least 1, got {height}")
    if style is None:
        style = random_style(rng) if rng is not None else StrokeStyle()
    strokes = _check_strokes(strokes)
    skew = _skew(strokes) if level else 0.0
    posed = _pose(strokes, style.slant, style.rotate + skew)
    pts = np.concatenate(posed)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    ink_w, ink_h = hi - lo
    ref_h = max(ink_h, min_extent or 0.0, ink_w / max_aspect)
    pen_px = style.pen * height * (min(1.0, pen_extent / ref_h) if pen_extent and ref_h > 0 else 1.0)
    target = max(0.0, min(style.fill * height, height - pen_px - 1.0))  # keep the pen's edge inside
    scale = target / ref_h if ref_h > 0 else 0.0
    sx, sy = scale * style.stretch, scale
    left = margin * height + pen_px / 2 + 0.5
    width = max(1, int(np.ceil(ink_w * sx + 2 * left)))
    free = max(0.0, height - ink_h * sy - pen_px - 1.0)
    top = 0.5 + pen_px / 2 + style.offset * free
    if ref_h <= 0:  # a single dot: centre it
        left, top = width / 2 - 0.5, (height - 1) / 2
    placed = [np.column_stack([(s[:, 0] - lo[0]) * sx + left - 0.5, (s[:, 1] - lo[1]) * sy + top - 0.5])
              for s in posed]
    canvas = np.zeros((height, width), np.uint8)
    draw_polylines(canvas, placed, pen_px, supersample=supersample)
    return _finish(canvas, style.blur)


def fit_to_height(image: np.ndarray, height: int, *, fill: float = 0.8, offset: float = 0.5,
                  margin: float = 0.1) -> np.ndarray:
    """Crop an ink-bright uint8 image to its ink and lay it out like `render_strokes` does: the ink's box
    spans `fill` of `height` (aspect kept), sits at `offset` in the free height, with `margin` * height
    blank columns each side. An image without ink gives a blank (height, 1) image."""
    x, y, w, h = cv2.boundingRect((image > 0).astype(np.uint8))
    if not (w and h):
        return np.zeros((height, 1), np.uint8)
    crop = image[y : y + h, x : x + w]
    s = fill * height / h
    nw, nh = max(1, int(round(w * s))), max(1, min(height, int(round(h * s))))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    crop = cv2.resize(crop, (nw, nh), interpolation=interp)
    pad = int(round(margin * height))
    out = np.zeros((height, nw + 2 * pad), np.uint8)
    top = int(round(offset * (height - nh)))
    out[top : top + nh, pad : pad + nw] = crop
    return out


def augment_paper(image: np.ndarray, rng: np.random.Generator, *, paper: float = 0.7) -> np.ndarray:
    """A look variation of an ink-bright uint8 line image, returned as the ink-bright uint8 image (same
    shape) the model would get. With probability `paper` a photo of paper, else a screen drawing.

    Screen: a canvas' alpha is the ink and Scrawl's reader maps its level to 1, so only the softness of
    the antialiased edges varies (a gamma). Paper: the ink is laid on a gray sheet (paper level, a
    lighting gradient and a vignette, blurred grain and sensor noise), its darkness varied from faint
    pencil to black ink (ink colour counts only through its gray level: the reader works in gray) and
    mottled, sometimes defocused and JPEG-compressed, and one time in ten inverted (light ink on a dark
    board). That picture is then read back by `scrawl.vision.ink.load_image`, the reader every user
    image goes through (polarity, lighting divided out, contrast stretched, faint noise cut), at a size
    where it corrects lighting, and shrunk back. If the reader finds no ink, the input is returned.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a uint8 (H, W) image, got {image.dtype} {image.shape}")
    if not image.any():
        return image.copy()
    if rng.random() >= paper:
        gamma = float(rng.uniform(0.6, 1.6))
        return (255 * (image / 255.0) ** gamma + 0.5).astype(np.uint8)
    h, w = image.shape
    k = int(np.ceil(FLATTEN_MIN_SIDE / h)) if h < FLATTEN_MIN_SIDE else 1  # big enough to flatten
    ink = cv2.resize(image, (w * k, h * k), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    gray = _paper_photo(ink, rng, k)
    read = load_image(gray)
    out = cv2.resize(read, (w, h), interpolation=cv2.INTER_AREA) if k > 1 else read
    out = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
    return out if out.any() else image.copy()


def _smooth_noise(rng: np.random.Generator, shape: tuple, sigma: float) -> np.ndarray:
    n = rng.standard_normal(shape).astype(np.float32)
    if sigma > 0:
        n = cv2.GaussianBlur(n, (0, 0), sigma)
        n /= max(float(n.std()), 1e-6)
    return n


def _paper_photo(ink: np.ndarray, rng: np.random.Generator, k: int) -> np.ndarray:
    """Gray float32 picture in [0, 1] of `ink` (float, 1 = ink) written on paper and photographed."""
    h, w = ink.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(t) * xx / max(w, 1) + np.sin(t) * yy / max(h, 1)).astype(np.float32)
    ramp -= ramp.min()
    light = 1 - rng.uniform(0, 0.35) * ramp / max(float(ramp.max()), 1e-6)  # shadow across the sheet
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r2 = ((xx - cx) / max(w, h)) ** 2 + ((yy - cy) / max(w, h)) ** 2
    light *= 1 - rng.uniform(0, 0.3) * np.clip(r2, 0, 1)  # vignette / uneven lamp
    sheet = rng.uniform(0.6, 0.98) * light
    sheet += rng.uniform(0, 0.04) * _smooth_noise(rng, (h, w), rng.uniform(0.5, 2.0) * k)  # paper grain
    darkness = rng.uniform(0.35, 0.92)  # pencil (faint) .. black ballpoint or marker
    mottle = 1 - rng.uniform(0, 0.35) * np.clip(np.abs(_smooth_noise(rng, (h, w), 1.5 * k)), 0, 1)
    gray = sheet * (1 - darkness * ink * mottle)
    if rng.random() < 0.4:
        gray = cv2.GaussianBlur(gray, (0, 0), rng.uniform(0.3, 1.2) * k)  # defocus
    gray += rng.uniform(0, 0.03) * rng.standard_normal((h, w)).astype(np.float32)  # sensor noise
    gray = np.clip(gray, 0, 1)
    if rng.random() < 0.1:
        gray = 1 - gray  # light ink on a dark board or a dark-mode screen photo
    if rng.random() < 0.5:
        q = int(rng.integers(35, 96))
        ok, buf = cv2.imencode(".jpg", (gray * 255 + 0.5).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, q])
        gray = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    return gray.astype(np.float32)
