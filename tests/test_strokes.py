"""Stroke rendering (scrawl.data.strokes): size, dtype, where the ink goes, pen width, slant, blur,
antialiasing, determinism, the layout helper, and the paper/screen look variation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from scrawl.data.strokes import (StrokeStyle, augment_paper, draw_polylines, fit_to_height, random_style,
                                 render_strokes)

# An "L": a vertical stroke down the left side, then a horizontal one along the bottom (y down).
L_SHAPE = [np.array([[0.0, 0.0], [0.0, 100.0]]), np.array([[0.0, 100.0], [100.0, 100.0]])]
PLAIN = StrokeStyle(pen=0.08, blur=0.0, slant=0.0, rotate=0.0, fill=0.8, stretch=1.0, offset=0.5)


def _box(image, level=128):
    x, y, w, h = cv2.boundingRect((image >= level).astype(np.uint8))
    return x, y, w, h


@pytest.mark.parametrize("height", [28, 32, 40])
def test_height_dtype_and_aspect(height):
    im = render_strokes(L_SHAPE, height, PLAIN)
    assert im.dtype == np.uint8 and im.ndim == 2 and im.shape[0] == height
    assert im.max() == 255 and im[0].max() == 0 and im[-1].max() == 0  # ink inside, borders blank
    x, y, w, h = _box(im)
    assert abs(w - h) <= 2  # a square box stays square
    assert abs(h - (0.8 * height + 0.08 * height)) <= 2.5  # spans `fill` of the height, plus the pen


def test_ink_is_where_the_strokes_are():
    im = render_strokes(L_SHAPE, 40, PLAIN)
    x, y, w, h = _box(im)
    assert abs(x - 0.1 * 40) <= 2  # the left margin is 10% of the height
    left_col = im[y : y + h, x : x + 3]
    bottom_row = im[y + h - 3 : y + h, x : x + w]
    assert (left_col.max(axis=1) > 128).mean() > 0.95  # the vertical stroke runs down the left side
    assert (bottom_row.max(axis=0) > 128).mean() > 0.95  # the horizontal one along the bottom
    top_right = im[y : y + h // 2, x + w // 2 : x + w]
    assert top_right.max() == 0  # nothing where the L has no ink


def test_pen_width_grows_the_ink():
    areas = [int((render_strokes(L_SHAPE, 32, StrokeStyle(pen=p)) > 127).sum()) for p in (0.04, 0.08, 0.14)]
    assert areas[0] < areas[1] < areas[2]


def test_antialiased_edges_and_blur():
    sharp = render_strokes([np.array([[0.0, 0.0], [30.0, 100.0]])], 32, PLAIN)
    assert ((sharp > 0) & (sharp < 255)).any()  # antialiased edges have in-between values
    blurred = render_strokes([np.array([[0.0, 0.0], [30.0, 100.0]])], 32, StrokeStyle(blur=1.0))
    assert blurred.max() == 255  # stretched back to full ink
    assert (blurred > 0).sum() > (sharp > 0).sum()


def test_slant_leans_right():
    vertical = [np.array([[0.0, 0.0], [0.0, 100.0]])]
    im = render_strokes(vertical, 40, StrokeStyle(slant=0.4))
    rows = np.flatnonzero(im.max(axis=1) > 128)
    top_x = np.flatnonzero(im[rows[2]] > 128).mean()
    bottom_x = np.flatnonzero(im[rows[-3]] > 128).mean()
    assert top_x > bottom_x + 5
    left = render_strokes(vertical, 40, StrokeStyle(slant=-0.4))
    rows = np.flatnonzero(left.max(axis=1) > 128)
    assert np.flatnonzero(left[rows[2]] > 128).mean() < np.flatnonzero(left[rows[-3]] > 128).mean() - 5


def test_stretch_and_rotation_change_the_shape():
    base = render_strokes(L_SHAPE, 32, PLAIN)
    wide = render_strokes(L_SHAPE, 32, StrokeStyle(pen=0.08, stretch=1.25))
    assert wide.shape[1] > base.shape[1]
    turned = render_strokes(L_SHAPE, 32, StrokeStyle(pen=0.08, rotate=10.0))
    assert turned.shape[0] == 32 and not np.array_equal(turned[:, : base.shape[1]], base)


def test_deterministic_for_a_seed():
    a = render_strokes(L_SHAPE, 32, rng=np.random.default_rng(7))
    b = render_strokes(L_SHAPE, 32, rng=np.random.default_rng(7))
    c = render_strokes(L_SHAPE, 32, rng=np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert random_style(np.random.default_rng(3)) == random_style(np.random.default_rng(3))


def test_random_style_stays_in_its_ranges():
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = random_style(rng, pen=(0.05, 0.14))
        assert 0.05 <= s.pen <= 0.14 and -0.3 <= s.slant <= 0.3 and 0.65 <= s.fill <= 0.95


def test_min_extent_keeps_a_dash_small_and_dots_render():
    dash = [np.array([[0.0, 50.0], [40.0, 52.0]])]
    free = render_strokes(dash, 32, PLAIN, max_aspect=1000)  # no floor: its 2-unit height fills the line
    kept = render_strokes(dash, 32, PLAIN, min_extent=100.0)
    assert _box(kept)[3] < 8 and kept.shape[1] < 30
    assert free.shape[1] > 200
    dot = render_strokes([np.array([[5.0, 5.0]])], 32, PLAIN)
    assert dot.shape[0] == 32 and dot.max() == 255


def test_bad_strokes_are_refused():
    with pytest.raises(ValueError):
        render_strokes([], 32)
    with pytest.raises(ValueError):
        render_strokes([np.zeros((0, 2))], 32)
    with pytest.raises(ValueError):
        render_strokes([np.zeros((3, 3))], 32)
    with pytest.raises(ValueError):
        render_strokes([np.array([[0.0, np.nan]])], 32)


def test_draw_polylines_puts_a_dot_at_its_pixel():
    canvas = np.zeros((20, 20), np.uint8)
    draw_polylines(canvas, [np.array([[5.0, 7.0]])], 3.0)
    ys, xs = np.mgrid[0:20, 0:20]
    w = canvas.astype(float)
    assert abs((w * ys).sum() / w.sum() - 7) < 0.05 and abs((w * xs).sum() / w.sum() - 5) < 0.05
    assert canvas[7, 5] == 255 and canvas[7, 8] == 0


def test_fit_to_height_lays_out_like_the_renderer():
    src = np.zeros((50, 80), np.uint8)
    src[10:40, 20:35] = 255
    out = fit_to_height(src, 32, fill=0.75, margin=0.125)
    x, y, w, h = _box(out)
    assert out.shape[0] == 32 and h == 24 and x == 4 and abs(w - 12) <= 1
    assert fit_to_height(np.zeros((5, 5), np.uint8), 32).shape == (32, 1)


def test_augment_paper_keeps_shape_and_the_ink():
    rng = np.random.default_rng(0)
    im = render_strokes(L_SHAPE + [np.array([[130.0, 0.0], [160.0, 100.0]])], 32, PLAIN)
    for paper in (0.0, 1.0):
        for _ in range(6):
            out = augment_paper(im, rng, paper=paper)
            assert out.shape == im.shape and out.dtype == np.uint8 and out.max() > 100
            ink, got = im > 127, out > 127
            assert (ink & got).sum() > 0.5 * ink.sum()  # the strokes are still there ...
            assert (got & ~cv2.dilate(ink.astype(np.uint8), np.ones((5, 5))).astype(bool)).sum() < 0.05 * im.size
    blank = np.zeros((32, 50), np.uint8)
    assert not augment_paper(blank, rng).any()
    a = augment_paper(im, np.random.default_rng(5), paper=1.0)
    assert np.array_equal(a, augment_paper(im, np.random.default_rng(5), paper=1.0))
    with pytest.raises(ValueError):
        augment_paper(im.astype(np.float32), rng)
