"""Lines on a page: split an ink map into its lines of handwriting, top to bottom, for a line model.

`split_lines(ink)` finds the rows that hold ink (a horizontal projection profile, the classic first
step of page segmentation; e.g. Likforman-Sulem, Zahour and Taconet 2007, "Text line segmentation of
historical documents: a survey"); a band too thin to be a line (an i's dots, an accent, a stray comma)
joins its nearest neighbour. Then every connected piece of ink goes to the line whose body (its densely
inked rows, the x-height zone) is nearest to the piece's middle row, so an ascender or descender that
reaches into the gap between two lines stays with its own line, and so do the dots above a line, even
where a thin band of dots or tails was joined to the line on the other side of the gap.
Each `Line` is the ink of its pieces only (a neighbour's loop that pokes into its box is masked out).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import EmptyImageError, ImageError
from .framing import MIN_INK_EXTENT, MIN_INK_PIXELS

# Pieces of ink: connected pixels above this level (the framing's bounding-box level: faint rims count).
PIECE_LEVEL = 0.1
# Rows are inked when their smoothed core-ink count reaches this fraction of the busiest row's.
ROW_LEVEL = 0.04
# A band lower than this fraction of the tallest band is not a line of its own (dots, accents, commas).
THIN_BAND = 0.35
# A line's body: the rows of its band at least this fraction as inked as its busiest row. A piece of ink
# outside every band's body (a dot, an accent, a detached descender) goes to the line with the nearest body.
BODY_LEVEL = 0.5
# At most this many lines per image: a page of handwriting holds 20-40; more is not a page of writing.
MAX_LINES = 100


class TooManyLinesError(ImageError):
    """More lines than MAX_LINES."""


@dataclass
class Line:
    ink: np.ndarray  # float32 (h, w) ink map of this line's pieces only, cropped to them
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in the image


def _profile(core: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """The horizontal projection profile of the core ink, smoothed over about a stroke's width (`heights`:
    the core pieces' heights)."""
    profile = core.sum(axis=1).astype(np.float32)
    k = max(1, int(round(0.15 * float(np.median(heights))))) if len(heights) else 1  # smooth over a stroke or so
    return np.convolve(profile, np.ones(2 * k + 1, np.float32) / (2 * k + 1), mode="same")


def _bands(profile: np.ndarray) -> list[tuple[int, int]]:
    """Runs of inked rows [y0, y1) in the smoothed profile."""
    inked = profile >= ROW_LEVEL * float(profile.max())
    edges = np.flatnonzero(np.diff(np.r_[0, inked.astype(np.int8), 0]))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _bodies(profile: np.ndarray, bands: list[tuple[int, int]]) -> np.ndarray:
    """Each band's body [y0, y1): its rows at least BODY_LEVEL of the band's busiest (the x-height zone,
    without the sparse ascenders, descenders and dots that a band may have taken in)."""
    out = np.zeros((len(bands), 2))
    for k, (a, b) in enumerate(bands):
        rows = a + np.flatnonzero(profile[a:b] >= BODY_LEVEL * float(profile[a:b].max()))
        out[k] = rows[0], rows[-1] + 1
    return out


def _core_pieces(core: np.ndarray) -> np.ndarray:
    """(width, height) of every connected piece of core ink; EmptyImageError when they are all specks
    (no piece spans MIN_INK_EXTENT of the image's shorter side, framing's rule for a whole image): a line
    cropped to a speck would otherwise be read as if it were handwriting."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(core.astype(np.uint8), connectivity=8)
    sizes = stats[1:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]]
    extent, total = int(sizes.max()), int(core.sum())
    if extent < max(2, MIN_INK_EXTENT * min(core.shape)) or total < MIN_INK_PIXELS:
        raise EmptyImageError(f"nothing to read: only specks of ink ({total} ink pixel(s), at most {extent} px "
                              f"across) in a {core.shape[1]}x{core.shape[0]} image")
    return sizes


def _merge_thin(bands: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Bands lower than THIN_BAND of the tallest join the nearer neighbour (by gap)."""
    bands = list(bands)
    while len(bands) > 1:
        tallest = max(b - a for a, b in bands)
        thin = [i for i, (a, b) in enumerate(bands) if b - a < THIN_BAND * tallest]
        if not thin:
            break
        i = thin[0]
        up = bands[i][0] - bands[i - 1][1] if i > 0 else np.inf
        down = bands[i + 1][0] - bands[i][1] if i + 1 < len(bands) else np.inf
        j = i - 1 if up <= down else i + 1
        lo, hi = min(i, j), max(i, j)
        bands[lo : hi + 1] = [(bands[lo][0], bands[hi][1])]
    return bands


def split_lines(ink: np.ndarray, *, max_lines: int = MAX_LINES) -> list[Line]:
    """An ink map (float, ink bright, as scrawl.vision.ink.load_image makes) -> its lines, top to bottom.

    EmptyImageError when there is no ink, or only specks; TooManyLinesError beyond `max_lines`."""
    ink = np.asarray(ink, dtype=np.float32)
    if ink.ndim != 2:
        raise ImageError(f"expected a 2-D ink map, got shape {ink.shape}")
    core = ink > 0.5
    if not core.any():
        raise EmptyImageError("nothing to read: no ink found (the image is blank)")
    profile = _profile(core, _core_pieces(core)[:, 1])
    bands = _merge_thin(_bands(profile))
    if len(bands) > max_lines:
        raise TooManyLinesError(f"too many lines: {len(bands)} found, at most {max_lines} are read from one image; "
                                "send a part of the page")
    if len(bands) == 1:  # every piece is this line's: its box is theirs, not the whole image's
        return [_line(ink, ink > PIECE_LEVEL)]
    _, labels, stats, _ = cv2.connectedComponentsWithStats((ink > PIECE_LEVEL).astype(np.uint8), connectivity=8)
    bodies = _bodies(profile, bands)
    cy = stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT] / 2  # each piece's middle row
    distance = np.maximum(np.maximum(bodies[None, :, 0] - cy[:, None], cy[:, None] - bodies[None, :, 1]), 0)
    owner = np.argmin(distance, axis=1)
    owner[0] = -1  # the background
    lines = []
    for k in range(len(bands)):
        mask = (owner == k)[labels]
        if mask.any():
            lines.append(_line(ink, mask))
    return lines


def _line(ink: np.ndarray, mask: np.ndarray) -> Line:
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    crop = np.where(mask[y : y + h, x : x + w], ink[y : y + h, x : x + w], 0).astype(np.float32)
    return Line(crop, (int(x), int(y), int(x + w), int(y + h)))
