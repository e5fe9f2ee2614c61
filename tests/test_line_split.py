"""Line splitting (scrawl.vision.lines.split_lines) on synthetic pages: real UNIPEN words rendered from
their pen strokes (scrawl.data.strokes) and numbers composed of MNIST digits (scrawl.data.synth),
stacked into lines with gaps, with descenders reaching into the gap, i-dots above the line and a slight
tilt. Every ink pixel of the page is known to belong to one line, so a split is checked pixel by pixel:
the right number of lines, top to bottom, each holding only its own line's ink and all of it. Also: a
page of 500 lines, a blank page, and the boxes and crops of a single line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from scrawl.data.strokes import StrokeStyle, draw_polylines
from scrawl.errors import EmptyImageError, ImageError
from scrawl.vision.lines import MAX_LINES, TooManyLinesError, split_lines

STYLE = StrokeStyle(pen=0.06, blur=0.0, slant=0.0, rotate=0.0, fill=0.8, stretch=1.0, offset=0.5)
LINE_H = 40  # px per rendered line (the ink spans 80% of it)
WORD_GAP = 14  # px between the words of a line


@pytest.fixture(scope="module")
def unipen(real_data_dir):
    from scrawl.data.lines import load_unipen_words

    return load_unipen_words(real_data_dir)


@pytest.fixture(scope="module")
def mnist_bank(real_data_dir):
    from scrawl.data.idx import read_idx
    from scrawl.data.synth import GlyphBank

    x = read_idx(real_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    y = read_idx(real_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    return GlyphBank.from_labels(x[:2000], y[:2000])


def _word_line(unipen, rng: np.random.Generator, words: int = 4) -> np.ndarray:
    """A line of `words` UNIPEN words (uint8, LINE_H high), each rendered on its own with STYLE."""
    parts = []
    for i in rng.choice(len(unipen), words, replace=False):
        parts += [unipen.render(int(i), LINE_H, STYLE, margin=0.0), np.zeros((LINE_H, WORD_GAP), np.uint8)]
    return np.hstack(parts[:-1])


def _number_line(bank, rng: np.random.Generator) -> np.ndarray:
    from scrawl.data.synth import compose_line, random_number_text

    return compose_line(random_number_text(rng), bank, rng, height=LINE_H, margin=0.0)


def _add_marks(layer: np.ndarray, bottom: int, gap: int, rng: np.random.Generator, *, descend: float,
               dots: float) -> None:
    """Descenders (tails hanging from the line's ink, `descend` of the gap below its bottom) and i-dots
    (`dots` of the gap above the ink of their column: in the gap where that is an ascender), drawn into
    `layer` in place. Tails and dots use different columns (x mod 40 in 10..17 and 28..35), so one
    line's tails never touch the next line's dots."""
    inked = np.flatnonzero(layer.any(axis=0))
    inked = inked[(inked > inked[0] + 10) & (inked < inked[-1] - 10)]
    pen = STYLE.pen * LINE_H
    tails = inked[(inked % 40 >= 10) & (inked % 40 < 18)]
    for x in rng.choice(tails, 3, replace=False):
        y0 = bottom - 4  # starts inside the line's ink: a g's tail is one piece with its letter
        y1 = bottom + descend * gap
        draw_polylines(layer, [np.array([[x, y0], [x, y1], [x - 5, y1 + 1], [x - 8, y1 - 3]], np.float64)], pen)
    tops = layer.argmax(axis=0)  # the first inked row of each column
    spots = inked[(inked % 40 >= 28) & (inked % 40 < 36)]
    spots = spots[np.argsort(tops[spots])][: max(5, len(spots) // 3)]  # among the highest ink: in the gap
    for x in rng.choice(spots, 5, replace=False):
        draw_polylines(layer, [np.array([[x, tops[x] - dots * gap]], np.float64)], pen * 1.3)


def _page(lines: list[np.ndarray], gap: int, rng: np.random.Generator, *, tilt: float = 0.0,
          descend: float = 0.0, dots: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Stack `lines` top to bottom with `gap` px between them -> (page as an ink map float32, owner)
    where owner[y, x] is the index of the line whose ink is at (y, x) (-1: no ink)."""
    width = max(im.shape[1] for im in lines) + 40
    height = len(lines) * LINE_H + (len(lines) + 1) * gap
    layers = []
    for k, im in enumerate(lines):
        layer = np.zeros((height, width), np.uint8)
        y = gap + k * (LINE_H + gap)
        layer[y : y + LINE_H, 20 : 20 + im.shape[1]] = im
        if descend or dots:
            bottom = int(np.flatnonzero(layer.any(axis=1))[-1]) + 1
            _add_marks(layer, bottom, gap, rng, descend=descend, dots=dots)
        if tilt:
            turn = cv2.getRotationMatrix2D((width / 2, height / 2), tilt, 1.0)
            layer = cv2.warpAffine(layer, turn, (width, height), flags=cv2.INTER_LINEAR)
        layers.append(layer)
    stack = np.stack(layers)
    page = stack.max(axis=0)
    owner = np.where(page > 0, stack.argmax(axis=0), -1)
    return page.astype(np.float32) / 255, owner


def _check_split(page: np.ndarray, owner: np.ndarray, n: int) -> None:
    """split_lines(page) gives n lines, top to bottom, each all of one line's ink and nothing else."""
    lines = split_lines(page)
    assert len(lines) == n
    got = np.full(page.shape, -1)
    for k, line in enumerate(lines):
        x0, y0, x1, y1 = line.box
        assert line.ink.shape == (y1 - y0, x1 - x0) and line.ink.dtype == np.float32
        own = line.ink > 0
        assert (got[y0:y1, x0:x1][own] == -1).all(), "two lines hold the same pixel"
        got[y0:y1, x0:x1][own] = k
        assert np.array_equal(line.ink[own], page[y0:y1, x0:x1][own])  # the ink as it is on the page
    # Line k holds exactly the ink of the k-th line from the top (faint antialiasing rims aside).
    solid = page > 0.25
    assert np.array_equal(got[solid], owner[solid])


@pytest.mark.realdata
@pytest.mark.parametrize("gap", [12, 30])
def test_stacked_unipen_lines_split_top_to_bottom(unipen, gap):
    rng = np.random.default_rng(gap)
    lines = [_word_line(unipen, rng) for _ in range(6)]
    page, owner = _page(lines, gap, rng)
    _check_split(page, owner, 6)


@pytest.mark.realdata
def test_descenders_into_the_gap_and_i_dots_stay_with_their_line(unipen):
    rng = np.random.default_rng(1)
    lines = [_word_line(unipen, rng) for _ in range(5)]
    # Tails reach 90% down into the gap below, dots sit 30% of the gap above their letters: their rows
    # overlap, so the next line's box holds the tails of the line above, which must be masked out of its crop.
    page, owner = _page(lines, 30, rng, descend=0.9, dots=0.3)
    _check_split(page, owner, 5)
    second = split_lines(page)[1]
    x0, y0, x1, y1 = second.box
    assert (owner[y0:y1, x0:x1] == 0).any()  # the first line's tails do reach into the second's box


@pytest.mark.realdata
@pytest.mark.parametrize("tilt", [-1.5, 1.0])
def test_a_slightly_tilted_page(unipen, tilt):
    rng = np.random.default_rng(2)
    lines = [_word_line(unipen, rng, words=3) for _ in range(5)]
    page, owner = _page(lines, 30, rng, tilt=tilt)
    _check_split(page, owner, 5)


@pytest.mark.realdata
def test_lines_of_numbers_from_mnist_digits(mnist_bank):
    rng = np.random.default_rng(3)
    lines = [_number_line(mnist_bank, rng) for _ in range(8)]
    page, owner = _page(lines, 16, rng)
    _check_split(page, owner, 8)


@pytest.mark.realdata
def test_mixed_words_and_numbers_with_marks(unipen, mnist_bank):
    rng = np.random.default_rng(4)
    lines = [_word_line(unipen, rng, 2) if k % 2 else _number_line(mnist_bank, rng) for k in range(6)]
    page, owner = _page(lines, 24, rng, descend=0.5, dots=0.2, tilt=0.5)
    _check_split(page, owner, 6)


def _bars(n: int, gap: int = 6, h: int = 10, width: int = 120) -> np.ndarray:
    """n lines, each a row of 'letters' (h px high blocks with 4 px between them), `gap` px apart."""
    page = np.zeros((n * (h + gap) + gap, width), np.float32)
    for k in range(n):
        y = gap + k * (h + gap)
        for x in range(4, width - 10, 10):
            page[y : y + h, x : x + 6] = 1.0
    return page


# "12" as pen strokes (x right, y down): a one, then a two.
TWELVE = [np.array([[10.0, 20.0], [22.0, 5.0], [22.0, 95.0]]),
          np.array([[45.0, 25.0], [55.0, 8.0], [75.0, 5.0], [88.0, 20.0], [85.0, 42.0], [45.0, 95.0], [95.0, 95.0]])]


def test_a_page_of_500_lines_is_refused():
    from scrawl.data.strokes import render_strokes

    line = np.hstack([render_strokes(TWELVE, 14, STYLE)] * 6)  # "121212121212", 14 px high
    page = np.vstack([np.pad(line, ((3, 3), (0, 0)))] * 500).astype(np.float32) / 255
    with pytest.raises(TooManyLinesError, match="too many lines: 500 found") as err:
        split_lines(page)
    assert isinstance(err.value, ImageError) and f"at most {MAX_LINES}" in str(err.value)
    assert len(split_lines(page[: 20 * 40])) == 40  # the same lines, 40 of them: read


def test_the_line_limit_is_exact():
    assert len(split_lines(_bars(MAX_LINES))) == MAX_LINES
    with pytest.raises(TooManyLinesError):
        split_lines(_bars(MAX_LINES + 1))
    assert [line.box[1] for line in split_lines(_bars(7))] == [6 + 16 * k for k in range(7)]
    with pytest.raises(TooManyLinesError, match="at most 6"):
        split_lines(_bars(7), max_lines=6)


@pytest.mark.parametrize("blank", [np.zeros((50, 80), np.float32), np.full((9, 9), 0.3, np.float32)])
def test_a_blank_page_is_nothing_to_read(blank):
    with pytest.raises(EmptyImageError, match="nothing to read"):
        split_lines(blank)


def test_a_page_of_specks_is_nothing_to_read():
    page = np.zeros((280, 280), np.float32)
    page[100:102, 100:102] = 1.0  # a 2x2 speck: dust, not a line cropped to it and read as writing
    page[200, 30:33] = 1.0
    with pytest.raises(EmptyImageError, match="nothing to read: only specks"):
        split_lines(page)
    page[50:60, 40:48] = 1.0  # a mark 10 px high, 3.6% of the side: ink
    assert len(split_lines(page)) >= 1


def test_not_an_ink_map():
    with pytest.raises(ImageError, match="2-D"):
        split_lines(np.zeros((4, 5, 3), np.float32))


def test_one_line_is_cropped_to_its_ink():
    page = np.zeros((100, 200), np.float32)
    page[40:60, 30:150] = 1.0
    page[38:40, 30:150] = 0.05  # a rim too faint to count (below the piece level)
    page[90, 190] = 0.05
    (line,) = split_lines(page)
    assert line.box == (30, 40, 150, 60)
    assert line.ink.shape == (20, 120) and (line.ink == 1).all()


def test_lines_of_different_heights_and_a_short_last_line():
    page = np.zeros((200, 300), np.float32)
    page[20:60, 10:290] = 1.0  # a tall line
    page[90:110, 10:200] = 1.0  # a lower one
    page[150:170, 10:40] = 1.0  # one short word
    boxes = [line.box for line in split_lines(page)]
    assert boxes == [(10, 20, 290, 60), (10, 90, 200, 110), (10, 150, 40, 170)]
