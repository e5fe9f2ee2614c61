"""Levelling sloping lines (scrawl.vision.skew) in the framing and the stroke renderer."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from scrawl.data.strokes import StrokeStyle, render_strokes
from scrawl.vision.framing import frame_line, line_spec
from scrawl.vision.skew import estimate_skew, ink_skew, level_ink


def _sloped_text(angle: float, n: int = 40, shape=(500, 1300)) -> np.ndarray:
    """A line of n letter-like rings (some with ascenders) whose baseline runs at `angle` degrees
    (y down: > 0, the right end lower)."""
    img = np.zeros(shape, np.uint8)
    rng = np.random.default_rng(3)
    y0 = shape[0] / 2 - (n * 25 / 2) * math.tan(math.radians(angle))
    for k in range(n):
        x = 40 + k * 25
        y = y0 + x * math.tan(math.radians(angle))
        cv2.ellipse(img, (x, int(y)), (9, 12), 0, 0, 360, 255, 3)
        if rng.random() < 0.3:  # an ascender
            cv2.line(img, (x + 9, int(y)), (x + 9, int(y) - 35), 255, 3)
    return img.astype(np.float32) / 255


@pytest.mark.parametrize("angle", [-14.0, -6.5, 0.0, 3.0, 11.0])
def test_skew_of_a_sloping_line_is_found(angle):
    assert ink_skew(_sloped_text(angle)) == pytest.approx(angle, abs=0.5)


def test_short_or_tall_ink_is_not_turned():
    word = _sloped_text(10.0, n=3)
    assert ink_skew(word) == 0.0  # three letters: too short a line to find a slope from
    assert ink_skew(word.T.copy()) == 0.0  # taller than wide
    assert estimate_skew(np.arange(5), np.arange(5)) == 0.0  # too few points


def test_levelled_ink_is_flat_and_keeps_all_ink():
    ink = _sloped_text(9.0)
    turned, angle, back = level_ink(ink)
    assert angle == pytest.approx(9.0, abs=0.5)
    assert ink_skew(turned) == pytest.approx(0.0, abs=0.5)
    assert turned.sum() == pytest.approx(ink.sum(), rel=0.02)  # nothing cut off at the canvas' edges
    rows = np.flatnonzero(turned.max(axis=1) > 0.5)
    before = np.flatnonzero(ink.max(axis=1) > 0.5)
    assert rows[-1] - rows[0] < 0.5 * (before[-1] - before[0])  # the drift is gone, the letters stay
    # `back` takes the turned canvas' pixels to the input's: the brightest pixels land on ink
    ys, xs = np.nonzero(turned > 0.9)
    px = back @ np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)
    hit = ink[np.clip(np.round(px[1]).astype(int), 0, ink.shape[0] - 1),
              np.clip(np.round(px[0]).astype(int), 0, ink.shape[1] - 1)]
    assert np.mean(hit > 0.3) > 0.95


def test_level_line_comes_back_unchanged():
    ink = _sloped_text(0.0)
    turned, angle, back = level_ink(ink)
    assert angle == 0.0 and turned is ink and np.allclose(back, [[1, 0, 0], [0, 1, 0]])


def test_frame_line_levels_and_maps_columns_back():
    ink = _sloped_text(12.0)
    flat = frame_line(_sloped_text(0.0), line_spec(32))
    framed = frame_line(ink, line_spec(32))
    assert framed.skew == pytest.approx(12.0, abs=0.5) and flat.skew == 0.0
    # levelled, the line is framed about as large as the same line written level (not squeezed 3x)
    assert framed.image.shape[1] == pytest.approx(flat.image.shape[1], rel=0.15)
    xs = np.flatnonzero(ink.max(axis=0) > 0.5)
    left, right = framed.input_x(framed.margin), framed.input_x(framed.image.shape[1] - framed.margin)
    span = xs[-1] - xs[0]
    assert abs(left - xs[0]) < 0.04 * span and abs(right - xs[-1]) < 0.04 * span


def _stroke_line(angle: float) -> list[np.ndarray]:
    """Pen strokes of a wavy 'handwriting' line of 30 loops sloping at `angle` (y down)."""
    t = np.linspace(0, 30 * 2 * np.pi, 3000)
    x = t / (2 * np.pi) * 10 + 3 * np.sin(t)
    y = -8 * np.abs(np.sin(t / 2)) + x * math.tan(math.radians(angle))
    return [np.column_stack([x[i : i + 300], y[i : i + 300]]) for i in range(0, 3000, 300)]


def test_render_level_turns_the_strokes_level():
    style = StrokeStyle(pen=0.05)
    sloped = render_strokes(_stroke_line(10.0), 64, style)
    levelled = render_strokes(_stroke_line(10.0), 64, style, level=True)
    assert ink_skew(sloped / 255.0) == pytest.approx(10.0, abs=1.0)
    assert abs(ink_skew(levelled / 255.0)) <= 1.0
    assert levelled.shape[1] > 2 * sloped.shape[1]  # the letters fill the height instead of the drift


def test_pen_extent_thins_the_pen_of_a_tall_box_only():
    strokes = _stroke_line(10.0)
    style = StrokeStyle(pen=0.08)
    thick = render_strokes(strokes, 64, style)
    thin = render_strokes(strokes, 64, style, pen_extent=8.0)  # letters 8 units high in a ~60-unit box
    same = render_strokes(strokes, 64, style, pen_extent=1e6)  # never thicker than against the box
    assert np.array_equal(same, thick)
    assert (thin > 127).sum() < 0.6 * (thick > 127).sum()


@pytest.mark.realdata
def test_real_lines_turned_on_the_page_are_levelled(real_data_dir):
    """Real UNIPEN texts of 20+ characters, rendered with a 7-degree climb: the skew found changes by
    that much, and the framing levels them back."""
    from scrawl.data.download import ensure_files
    from scrawl.data.lines import load_unipen_words

    words = load_unipen_words(ensure_files("unipen-words", "train", real_data_dir)["arrays"])
    rows = [i for i in range(len(words.labels)) if len(str(words.labels[i])) >= 20][:40]
    diffs = []
    for i in rows:
        a = ink_skew(words.render(i, 64, StrokeStyle(pen=0.04, fill=0.9)) / 255.0)
        b = ink_skew(words.render(i, 64, StrokeStyle(pen=0.04, fill=0.9, rotate=7.0)) / 255.0)
        diffs.append(a - b)  # rotate > 0 climbs: the skew falls by 7
    assert np.median(np.abs(np.array(diffs) - 7.0)) < 1.0
    assert np.mean(np.abs(np.array(diffs) - 7.0) < 2.0) > 0.8
