"""Synthetic lines built from isolated handwritten characters: numbers (2-12 digits, with and without
separators, amounts, dates, times, phone numbers, percentages) for training a line model, and the
touching digit strings of issue 13's first bar.

* `GlyphBank(images, chars)`: upright ink-bright uint8 character images (MNIST's or EMNIST's 28x28)
  with their characters; a glyph is cropped to its ink when drawn.
* `compose_line(text, bank, rng, height, layout)` -> uint8 (height, W): each character from the bank,
  or, for punctuation the bank lacks, drawn as pen strokes from a small template (`MARKS`); spaces are
  gaps. Neighbours leave a random gap or overlap (their ink combined with np.maximum) by up to
  `layout.overlap` of the narrower one's width; per-glyph size and baseline jitter, a baseline that
  drifts and tilts, and a slant of the whole line (`LineLayout`).
* `random_number_text(rng)`, `synthetic_number_line(bank, rng)`: a number-like text and its line.
* `touching_digit_strings(images, labels, n, seed)`: the bar's test set: 3-10 digits, every pair of
  neighbours overlapping by up to 30% of a digit's width, random baseline and size.

Everything is deterministic for a seeded numpy Generator. Plain NumPy and OpenCV; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..labels import DIGITS
from .strokes import draw_polylines, fit_to_height


@dataclass(frozen=True)
class LineLayout:
    """How glyphs are put together. Lengths are fractions of `unit`, a digit's height; (low, high) pairs
    are drawn uniformly per line (tilt, slant, fill) or per glyph (the others)."""

    unit: int = 24  # a digit's height in pixels while composing (MNIST's ink box is about 20 px)
    touch: float = 0.5  # probability that a glyph overlaps its left neighbour instead of leaving a gap
    overlap: tuple[float, float] = (0.0, 0.3)  # fraction of the narrower neighbour's width (issue 13: <= 30%)
    gap: tuple[float, float] = (0.02, 0.3)  # gap between neighbours that do not touch
    space: tuple[float, float] = (0.5, 1.0)  # a space, on top of the gap: clearly wider than any gap
    size: tuple[float, float] = (0.85, 1.15)  # each glyph's height factor
    baseline: float = 0.06  # each glyph's baseline moves by up to this, up or down
    drift: float = 0.08  # amplitude of a slow wave in the baseline
    tilt: tuple[float, float] = (-0.03, 0.03)  # baseline slope
    slant: tuple[float, float] = (-0.25, 0.25)  # shear of the whole line; > 0 leans right
    pen: tuple[float, float] = (0.08, 0.15)  # pen width of drawn marks (MNIST strokes are about 0.12 unit)
    fill: tuple[float, float] = (0.65, 0.95)  # the ink's box spans this fraction of the output height
    jitter: float = 0.025  # drawn marks: random displacement of their points


# Issue 13's first bar: neighbours' ink overlapping by up to 30% of a digit's width, random baseline
# and size; nothing else (no slant, drift or tilt).
TOUCHING_BAR_LAYOUT = LineLayout(touch=1.0, overlap=(0.0, 0.3), size=(0.8, 1.2), baseline=0.1, drift=0.0,
                                 tilt=(0.0, 0.0), slant=(0.0, 0.0), fill=(0.8, 0.8))

# Where characters from the bank stand: (height, depth below the baseline), as fractions of `unit`.
# Character images (MNIST, EMNIST) are each scaled to their own box, so the relative sizes of a line are
# restored here from usual handwriting proportions: x-height about 0.6 of the capital height, descenders
# about 0.3 below the baseline (approximate; typographic convention, not measured). Digits, capitals and
# anything not listed: (1.0, 0.0).
_X_HEIGHT = 0.6
_GEOMETRY = {**{c: (_X_HEIGHT, 0.0) for c in "acemnorsuvwxz"}, **{c: (1.0, 0.0) for c in "bdfhkl"},
             "t": (0.85, 0.0), "i": (0.8, 0.0), "j": (1.1, 0.3), **{c: (0.9, 0.3) for c in "gpqy"}}

def _arc(cx, cy, rx, ry, t0, t1, n=9):
    t = np.linspace(t0, t1, n)
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t)))


# Punctuation as pen strokes in `unit` coordinates: x from 0, y from 0 (a digit's top) to 1 (the
# baseline); > 1 goes below it. A stroke of one point is a dot. Drawn by hand here (simple shapes).
MARKS: dict[str, list[list[tuple[float, float]]]] = {
    ".": [[(0.0, 0.95)]],
    ",": [[(0.08, 0.9), (0.06, 1.0), (0.0, 1.15)]],
    "-": [[(0.0, 0.57), (0.42, 0.53)]],
    "/": [[(0.5, 0.0), (0.0, 1.0)]],
    ":": [[(0.0, 0.42)], [(0.0, 0.95)]],
    ";": [[(0.06, 0.42)], [(0.08, 0.9), (0.06, 1.0), (0.0, 1.15)]],
    "'": [[(0.05, 0.0), (0.0, 0.28)]],
    '"': [[(0.05, 0.0), (0.0, 0.28)], [(0.25, 0.0), (0.2, 0.28)]],
    "(": [_arc(0.3, 0.5, 0.3, 0.6, 0.6 * np.pi, 1.4 * np.pi)],
    ")": [_arc(0.0, 0.5, 0.3, 0.6, 0.4 * np.pi, -0.4 * np.pi)],
    "+": [[(0.0, 0.55), (0.5, 0.55)], [(0.25, 0.3), (0.25, 0.8)]],
    "%": [_arc(0.12, 0.15, 0.12, 0.15, 0, 2 * np.pi), [(0.6, 0.0), (0.0, 1.0)],
          _arc(0.5, 0.85, 0.12, 0.15, 0, 2 * np.pi)],
    "#": [[(0.2, 0.15), (0.12, 0.95)], [(0.48, 0.15), (0.4, 0.95)], [(0.0, 0.4), (0.6, 0.4)],
          [(0.0, 0.7), (0.6, 0.7)]],
    "!": [[(0.05, 0.0), (0.0, 0.7)], [(0.0, 0.95)]],
    "?": [_arc(0.25, 0.25, 0.25, 0.22, 1.1 * np.pi, 2.4 * np.pi) + [(0.25, 0.65)], [(0.25, 0.95)]],
}


class GlyphBank:
    """Character images by character: upright, ink bright (0 background), uint8 (N, h, w)."""

    def __init__(self, images: np.ndarray, chars: Sequence[str]):
        images = np.asarray(images)
        if images.ndim != 3 or images.dtype != np.uint8 or len(images) != len(chars):
            raise ValueError("images must be uint8 (N, h, w) with one character each")
        self.images = images
        chars = np.asarray([str(c) for c in chars])
        self._index = {c: np.flatnonzero(chars == c) for c in np.unique(chars)}

    @classmethod
    def from_labels(cls, images: np.ndarray, labels: Sequence[int], classes: Sequence[str] = DIGITS) -> "GlyphBank":
        """From integer labels that index `classes` (MNIST: labels 0-9, classes "0123456789")."""
        return cls(images, [classes[int(k)] for k in labels])

    @property
    def chars(self) -> str:
        return "".join(sorted(self._index))

    def __contains__(self, char: str) -> bool:
        return char in self._index

    def sample(self, char: str, rng: np.random.Generator) -> np.ndarray:
        """One image of `char`, cropped to its ink (KeyError if the bank has none; a blank image is
        skipped for another, ValueError if all are blank)."""
        pool = self._index[char]
        for _ in range(8):
            im = self.images[pool[int(rng.integers(len(pool)))]]
            x, y, w, h = cv2.boundingRect((im > 0).astype(np.uint8))
            if w and h:
                return im[y : y + h, x : x + w]
        raise ValueError(f"no ink in the images of {char!r} that were drawn")


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _bank_glyph(char: str, bank: GlyphBank, rng: np.random.Generator, lay: LineLayout) -> tuple[np.ndarray, float]:
    """(glyph scaled to its place in the line, its depth below the baseline in pixels)."""
    crop = bank.sample(char, rng)
    rel_h, depth = _GEOMETRY.get(char, (1.0, 0.0))
    s = _u(rng, lay.size) * lay.unit
    h = max(2, int(round(rel_h * s)))
    w = max(1, int(round(crop.shape[1] * h / crop.shape[0])))
    interp = cv2.INTER_AREA if h < crop.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(crop, (w, h), interpolation=interp), depth * s


def _drawn_glyph(char: str, rng: np.random.Generator, lay: LineLayout) -> tuple[np.ndarray, float]:
    """A punctuation mark drawn from its template with a random pen, size and wobble."""
    s = _u(rng, lay.size) * lay.unit
    pen = _u(rng, lay.pen) * lay.unit
    strokes = [np.asarray(st, np.float64) + rng.normal(0, lay.jitter, (len(st), 2)) for st in MARKS[char]]
    pts = np.concatenate(strokes)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = pen / 2 + 1
    h, w = int(np.ceil((hi[1] - lo[1]) * s + 2 * pad)), int(np.ceil((hi[0] - lo[0]) * s + 2 * pad))
    canvas = np.zeros((h, w), np.uint8)
    draw_polylines(canvas, [(st - lo) * s + pad for st in strokes], pen)
    depth = (hi[1] - 1.0) * s + pad  # how far the canvas' bottom lies below the baseline
    return canvas, depth


def _glyph(char: str, bank: GlyphBank, rng: np.random.Generator, lay: LineLayout) -> tuple[np.ndarray, float]:
    if char in bank:
        return _bank_glyph(char, bank, rng, lay)
    if char in MARKS:
        return _drawn_glyph(char, rng, lay)
    raise ValueError(f"no glyph for {char!r}: the bank has {bank.chars!r}, the drawn marks {''.join(MARKS)!r}")


def _place(text: str, bank: GlyphBank, rng: np.random.Generator, lay: LineLayout) -> list[tuple[int, int, np.ndarray]]:
    """(x, y, glyph) of each character, in composition pixels (y down, the baseline near 0)."""
    u = lay.unit
    phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(4, 10) * u
    tilt = _u(rng, lay.tilt)
    placed, right, prev_w, cursor = [], None, 0, 0.0
    for ch in text:
        if ch == " ":
            cursor = (right if right is not None else cursor) + _u(rng, lay.space) * u
            right = None
            continue
        glyph, depth = _glyph(ch, bank, rng, lay)
        w = glyph.shape[1]
        if right is None:
            x = cursor
        elif rng.random() < lay.touch:
            x = right - _u(rng, lay.overlap) * min(prev_w, w)
        else:
            x = right + _u(rng, lay.gap) * u
        base = lay.drift * u * np.sin(2 * np.pi * x / period + phase) - tilt * x
        base += rng.uniform(-lay.baseline, lay.baseline) * u
        placed.append((int(round(x)), int(round(base + depth - glyph.shape[0])), glyph))
        right, prev_w = x + w, w
    return placed


def _shear(image: np.ndarray, slant: float) -> np.ndarray:
    """Shear columns so the line leans right by `slant` (x += slant * height above the bottom row)."""
    if slant == 0:
        return image
    h, w = image.shape
    extra = int(np.ceil(abs(slant) * h))
    m = np.float32([[1, -slant, slant * (h - 1) if slant > 0 else 0], [0, 1, 0]])
    return cv2.warpAffine(image, m, (w + extra, h), flags=cv2.INTER_LINEAR, borderValue=0)


def compose_line(text: str, bank: GlyphBank, rng: np.random.Generator, *, height: int | None = 32,
                 layout: LineLayout | None = None, margin: float = 0.1) -> np.ndarray:
    """`text` as one handwritten line: uint8 (height, W), ink bright. Characters come from `bank`, or
    are drawn (`MARKS`) for punctuation it lacks; ValueError for any other. height None: the composition
    as it is (about `layout.unit` px per digit), cropped to its ink with a 2 px border."""
    lay = layout or LineLayout()
    if not text.strip():
        raise ValueError("nothing to compose: the text has no character")
    placed = _place(text, bank, rng, lay)
    x0 = min(x for x, _, _ in placed)
    y0 = min(y for _, y, _ in placed)
    x1 = max(x + g.shape[1] for x, _, g in placed)
    y1 = max(y + g.shape[0] for _, y, g in placed)
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for x, y, g in placed:
        region = canvas[y - y0 : y - y0 + g.shape[0], x - x0 : x - x0 + g.shape[1]]
        np.maximum(region, g, out=region)  # touching and overlapping ink merges, it does not add up
    canvas = _shear(canvas, _u(rng, lay.slant))
    if height is None:
        x, y, w, h = cv2.boundingRect((canvas > 0).astype(np.uint8))
        return np.pad(canvas[y : y + h, x : x + w], 2)
    return fit_to_height(canvas, height, fill=_u(rng, lay.fill), offset=0.5, margin=margin)


def _digits(rng: np.random.Generator, n: int, lead_zero: bool = True) -> str:
    d = "".join(str(int(k)) for k in rng.integers(0, 10, n))
    return d if lead_zero or n == 1 else str(int(rng.integers(1, 10))) + d[1:]


def _grouped(rng: np.random.Generator, digits: str, sep: str) -> str:
    head = len(digits) % 3 or 3
    return sep.join([digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)])


def _date(rng: np.random.Generator) -> str:
    d, m, y = int(rng.integers(1, 32)), int(rng.integers(1, 13)), int(rng.integers(1900, 2100))
    if rng.random() < 0.25:
        return f"{y}-{m:02d}-{d:02d}"  # ISO 8601
    sep = str(rng.choice(["/", ".", "-"]))
    pad = rng.random() < 0.5
    a, b = (f"{d:02d}", f"{m:02d}") if pad else (str(d), str(m))
    if rng.random() < 0.5:
        a, b = b, a  # month first
    return sep.join([a, b, str(y) if rng.random() < 0.6 else f"{y % 100:02d}"])


def _phone(rng: np.random.Generator) -> str:
    g = lambda n: _digits(rng, n)  # noqa: E731
    return str(rng.choice([f"({g(3)}) {g(3)}-{g(4)}", f"{g(3)}-{g(3)}-{g(4)}", f"{g(3)}.{g(3)}.{g(4)}",
                           f"+{g(2)} {g(2)} {g(4)} {g(4)}", f"0{g(3)} {g(3)} {g(3)}", f"{g(3)}-{g(4)}",
                           f"+{g(1)} {g(3)} {g(3)} {g(4)}"]))


def _amount(rng: np.random.Generator) -> str:
    whole = _digits(rng, int(rng.integers(1, 8)), lead_zero=False)
    group, point = [(",", "."), (".", ","), ("", "."), ("", ","), (" ", ","), ("'", ".")][int(rng.integers(6))]
    text = _grouped(rng, whole, group) if group else whole
    if rng.random() < 0.8:
        text += point + _digits(rng, 2)
    if rng.random() < 0.15:
        text = str(rng.choice(["-", "+"])) + text
    return text


def _number_kinds() -> dict:
    return {
        "digits": lambda rng: _digits(rng, int(rng.integers(2, 13))),
        "grouped": lambda rng: _grouped(rng, _digits(rng, int(rng.integers(4, 13)), lead_zero=False),
                                        str(rng.choice([",", ".", " ", "'"]))),
        "amount": _amount,
        "date": _date,
        "time": lambda rng: f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"
                            + (f":{int(rng.integers(0, 60)):02d}" if rng.random() < 0.3 else ""),
        "phone": _phone,
        "percent": lambda rng: _digits(rng, int(rng.integers(1, 4)), lead_zero=False)
                               + ("." + _digits(rng, 1) if rng.random() < 0.3 else "") + "%",
        "ratio": lambda rng: _digits(rng, int(rng.integers(1, 4)), False) + str(rng.choice(["/", ":", "-"]))
                             + _digits(rng, int(rng.integers(1, 4)), False),
        "id": lambda rng: "#" + _digits(rng, int(rng.integers(2, 9))),
    }


NUMBER_KINDS = tuple(_number_kinds())


def random_number_text(rng: np.random.Generator, kinds: Sequence[str] | None = None) -> str:
    """A number-like text of one of `kinds` (default all of NUMBER_KINDS, equally likely): plain digits
    (2-12), digits grouped by thousands, amounts, dates, times, phone numbers, percentages, ratios, ids."""
    table = _number_kinds()
    kinds = list(kinds or NUMBER_KINDS)
    unknown = set(kinds) - set(table)
    if unknown:
        raise ValueError(f"unknown number kinds {sorted(unknown)}; choose from {NUMBER_KINDS}")
    return table[kinds[int(rng.integers(len(kinds)))]](rng)


def synthetic_number_line(bank: GlyphBank, rng: np.random.Generator, *, height: int | None = 32,
                          layout: LineLayout | None = None, kinds: Sequence[str] | None = None) -> tuple[np.ndarray, str]:
    """(image, text) of a random number-like text (`random_number_text`) composed by `compose_line`."""
    text = random_number_text(rng, kinds)
    return compose_line(text, bank, rng, height=height, layout=layout), text


def touching_digit_strings(images: np.ndarray, labels: Sequence[int], n: int, seed: int = 0, *,
                           min_digits: int = 3, max_digits: int = 10, max_overlap: float = 0.3,
                           height: int | None = None) -> list[tuple[np.ndarray, str]]:
    """Issue 13's first bar: `n` strings of min_digits..max_digits digits drawn from `images` (uint8
    (N, 28, 28) ink-bright, e.g. MNIST test) with `labels` (0-9); every pair of neighbours overlaps
    by a uniform 0..max_overlap of the narrower digit's width, each digit's baseline moves by up to
    10% and its size by up to 20% of a digit's height (TOUCHING_BAR_LAYOUT). height None: at
    composition scale (digits about 24 px high). Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    bank = GlyphBank.from_labels(images, labels, DIGITS)
    layout = replace(TOUCHING_BAR_LAYOUT, overlap=(0.0, float(max_overlap)))
    out = []
    for _ in range(n):
        text = _digits(rng, int(rng.integers(min_digits, max_digits + 1)))
        out.append((compose_line(text, bank, rng, height=height, layout=layout), text))
    return out
