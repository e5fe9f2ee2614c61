"""Folders of scans: frame many small grayscale scans at once, exactly as one at a time.

`frame_many(files, spec)` is `[frame(file, spec) ...]` (errors included) for what `scrawl predict`'s
workers read, a chunk of a folder at a time. The same steps, arranged for many small scans: a small
picture's light is flat (lighting.FLATTEN_MIN_SIDE), so `lighting.flatten` and the ink map's contrast
stretch make each pixel's value from its own grey level only. Everything they decide (polarity,
paper level, Otsu thresholds, medians, noise) is arithmetic on 256-bin histograms, which numpy does
for a whole chunk in the calls one picture takes; the picture's map is then a table of its 256 levels.
Same operations on the same numbers, so the same maps to the last bit (tests/test_framing_speedpath.py
compares them with `frame`, `load_image` and `flatten` on varied pictures). Larger pictures and
colour, transparent or other sources take the general path.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ScrawlError
from .framing import FrameSpec, _frame_ink
from .ink import _decode, _Gray8, _ink_from_gray, _ink_scales, _noise_sigma
from .lighting import (BALANCED, DEADZONE, DEADZONE_SIGMAS, FLATTEN_MIN_SIDE, FRAME_MARGIN, LIGHT_ODDS, MEDIAN_SIDE,
                       STRONG, _reduced_scale, hist, hist_percentiles, otsu_rows, u8)

__all__ = ["flatten_levels", "frame_many", "load_ink_many"]

_LEVELS_INT = np.arange(256, dtype=np.int64)
_GRAY = np.arange(256, dtype=np.float32) / 255  # what load_image makes of each uint8 level
# _dark_ink's dead zone per background level, by the same OpenCV call (its rounding included)
_DEAD_U8 = cv2.convertScaleAbs(np.arange(256, dtype=np.uint8)[None], alpha=DEADZONE).ravel()


def frame_many(images, spec: FrameSpec = FrameSpec()) -> list[np.ndarray | ScrawlError]:
    """[frame(image, spec), or the ScrawlError it raises, for each of `images`]: the same arrays, made
    faster for many small grayscale scans (their ink maps are made together: load_ink_many). For
    a chunk of a folder's files (they are all in memory at once); other exceptions (bugs) propagate."""
    out: list = []
    for ink in load_ink_many(images):
        if not isinstance(ink, ScrawlError):
            try:
                ink = _frame_ink(ink, spec)
            except ScrawlError as exc:
                ink = exc
        out.append(ink)
    return out


def load_ink_many(sources) -> list:
    """[load_ink(source), or the ScrawlError it raises, for each source]: the same maps, made faster for
    many small grayscale scans (a folder of digits), whose histogram arithmetic is done all at once.
    Other exceptions (bugs) propagate."""
    decoded = []
    for source in sources:
        try:
            decoded.append(_decode(source))
        except ScrawlError as exc:
            decoded.append(exc)
    inks = iter(_inks_from_gray8([d.g8 for d in decoded if isinstance(d, _Gray8)]))
    return [next(inks) if isinstance(d, _Gray8) else d for d in decoded]


def _inks_from_gray8(pictures: list[np.ndarray]) -> list[np.ndarray]:
    """The ink maps of uint8 grayscale pictures: _ink_from_gray(g8 / 255) for each. Small pictures (a
    scan of one character) have flat light, so their maps are tables of their levels
    (flatten_levels), made together: most of the work is arithmetic on 256-bin histograms."""
    out: list = [None] * len(pictures)
    levels = flatten_levels(pictures)
    rows = [i for i, lv in enumerate(levels) if lv is not None]
    for i, lv in enumerate(levels):
        if lv is None:
            out[i] = _ink_from_gray(pictures[i].astype(np.float32) / 255)
    if rows:
        tables = np.stack([levels[i][0] for i in rows])
        noises = [_noise_sigma(levels[i][0][pictures[i]]) if levels[i][1] else None for i in rows]
        scales = _ink_scales(np.stack([levels[i][2] for i in rows]), noises)
        for i, table in zip(rows, _stretch_rows(tables, scales)):
            out[i] = table[pictures[i]]
    return out


def _stretch_rows(x: np.ndarray, scales: list) -> np.ndarray:
    """_stretch of each row of x (N, 256) by its (level, floor); 0 where that is None."""
    ok = np.array([s is not None for s in scales])
    level = np.array([s[0] if s else 1.0 for s in scales])[:, None]
    floor = np.array([s[1] if s else 0.0 for s in scales])[:, None]
    y = (x * (1 / level).astype(np.float32) - floor.astype(np.float32)) * (1 / (1 - floor)).astype(np.float32)
    return np.where(ok[:, None], np.clip(y, 0, 1), np.float32(0))


def flatten_levels(pictures: list[np.ndarray]) -> list[tuple[np.ndarray, bool, np.ndarray] | None]:
    """`flatten` of many small uint8 pictures (each as `g8 / 255`), as tables: a small picture's
    background is one level, so each pixel's result depends on its own level only, and all the rest is
    arithmetic on 256-bin histograms, done here for all the pictures at once. For each picture: (x per
    level, 256 float32: flatten's x is table[g8]; flatten's flag; the 256-bin histogram of u8(x) as
    `hist` counts it), the very numbers flatten gives; None for a picture this does not cover (too
    large: flatten it)."""
    out: list = [None] * len(pictures)
    todo = [i for i, g8 in enumerate(pictures) if _levels_cover(g8.shape)]
    if todo:
        h = np.stack([hist(pictures[i]) for i in todo])
        ring = np.stack([np.bincount(_ring(pictures[i]), minlength=256) for i in todo])
        sizes = np.array([pictures[i].size for i in todo])
        for i, row in zip(todo, zip(*_flatten_rows(h, ring, sizes))):
            out[i] = (row[0], bool(row[1]), row[2])
    return out


def _levels_cover(shape: tuple) -> bool:
    """flatten_levels covers a picture: flat lighting (small), not reduced for the frame shares."""
    rows, cols = shape
    return min(rows, cols) < FLATTEN_MIN_SIDE and _reduced_scale(rows, cols, 2 * MEDIAN_SIDE) >= 1


def _ring(a: np.ndarray) -> np.ndarray:
    """The outermost pixels, as flatten and _frame_share take them."""
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def _flatten_rows(h: np.ndarray, ring: np.ndarray, sizes: np.ndarray) -> tuple:
    """flatten's steps for pictures given as rows: h (their histograms), ring (their frames' histograms,
    int), sizes (pixels). Returns (tables, flags, histograms of u8(table[g8]))."""
    t = otsu_rows(h)
    dark = _dark_ink_rows(h, np.rint(hist_percentiles(h, 50) * 255).astype(np.int64), sizes)
    x = _flatten_tables(h, t, dark)
    below = (h * (_LEVELS_INT <= t[:, None])).sum(1) / sizes  # exact: integer counts of a small picture
    n_ring = ring.sum(1)
    done = (np.minimum(below, 1 - below) < BALANCED) & ((ring * (x >= STRONG)).sum(1) * 2 <= n_ring)
    cropped = np.zeros(len(h), bool)
    hx, x8 = _remap(h, x)
    b = np.flatnonzero(~done)  # balanced, or a frame mostly "ink": try the other polarity too
    if b.size:
        other = _flatten_tables(h[b], t[b], ~dark[b])
        ho, o8 = _remap(h[b], other)
        share, strong = _frame_shares(hx[b], x8[b], ring[b], n_ring[b])
        other_share, other_strong = _frame_shares(ho, o8, ring[b], n_ring[b])
        take = (other_strong >= STRONG) & (other_share + FRAME_MARGIN < share)
        x[b[take]], hx[b[take]] = other[take], ho[take]
        cropped[b] = take | (strong >= STRONG)
    flat = (h > 0).argmax(1) + (h[:, ::-1] > 0).argmax(1) > 253  # fewer than 3 levels apart: no ink
    if flat.any():
        x[flat], cropped[flat] = 0, False
        hx[flat] = _remap(h[flat], x[flat])[0]
    return x, cropped, hx


def _flatten_tables(h: np.ndarray, t: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """_flatten of small pictures, per level (their background is one level, so x is a function of g)."""
    side = np.where((_LEVELS_INT > t[:, None]) == dark[:, None], h, 0)  # the background class
    paper = np.where(side.any(1), hist_percentiles(side, 50), hist_percentiles(h, 50))
    bg = paper.astype(np.float32)[:, None]
    x = np.where(dark[:, None], 1 - _GRAY / np.maximum(bg, np.float32(1 / 255)), _GRAY - bg)
    return np.clip(x, 0, 1).astype(np.float32)


def _dark_ink_rows(h: np.ndarray, m: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """_dark_ink of small pictures (local median = the global one, m; no subsampling: under 200,000
    pixels each) from their histograms: the same median, dead zone and integer sums."""
    d = _LEVELS_INT - m[:, None]  # v - m for each level v
    c = _row_bincount(np.abs(d), h).cumsum(1)  # counts of |v - m|, exact
    k = (sizes // 2)[:, None]
    mid = (c <= k).sum(1)  # np.median: the middle value, or the mean of the middle two
    med = np.where(sizes % 2 == 1, mid, ((c <= k - 1).sum(1) + mid) / 2)
    floor = np.clip(np.round(DEADZONE_SIGMAS * (1.4826 * med)), 1, 255).astype(np.int64)
    dead = np.maximum(_DEAD_U8[m].astype(np.int64), floor)[:, None]
    counts = h.astype(np.int64)
    dark = (counts * np.maximum(-d - dead, 0)).sum(1)
    light = (counts * np.maximum(d - dead, 0)).sum(1)
    return light <= LIGHT_ODDS * dark


def _frame_shares(hx: np.ndarray, x8: np.ndarray, ring: np.ndarray, n_ring: np.ndarray) -> tuple:
    """_frame_share of pictures given by their maps' histograms hx and u8 tables x8, and their frames'."""
    return (ring * (x8 > otsu_rows(hx)[:, None])).sum(1) / n_ring, hist_percentiles(hx, 90)


def _remap(h: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(The histograms of u8(table[g8]), float32 like `hist`'s, from g8's histograms h; u8(tables))."""
    x8 = u8(x)
    return _row_bincount(x8, h).astype(np.float32), x8


def _row_bincount(index: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row: the sums of `weights` by `index` (levels 0..255), float64 (exact for counts)."""
    n = len(index)
    flat = (index + 256 * np.arange(n)[:, None]).ravel()
    return np.bincount(flat, weights=weights.ravel(), minlength=256 * n).reshape(n, 256)
