"""Tests for scrawl.vision.segment: strings of characters are split, ordered and read like single characters."""

import gzip
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from scrawl import Recognizer
from scrawl.errors import ImageError
from scrawl.vision.segment import MAX_CHARACTERS, Piece, Segmentation, TooManyCharactersError, join_lines, read, segment


# ------------------------------------------------------------------------------------------ helpers


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def load_mnist_test(data_dir):
    raw = gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz").read()
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.open(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return images, labels


def make_number(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, n: int):
    """A page with `n` MNIST digits side by side, dark ink on white, as PNG bytes.

    Random overall size (digit height ~40-90 px), per-digit size (x0.8-1.25) and baseline (+-15% of the
    height); neighbours' ink boxes overlap by up to 20% of the wider one's width or leave a gap of up to
    40%, but the ink of two digits never touches (at least one blank pixel between them).
    Returns (png bytes, the digits as a string, the ink boxes [x, y, w, h], the MNIST indices).
    """
    height = rng.uniform(40, 90)
    picks = rng.integers(0, len(images), n)
    crops = []
    for i in picks:
        img = images[i]
        ys, xs = np.nonzero(img)
        crop = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        s = height / 20 * rng.uniform(0.8, 1.25)  # MNIST ink is ~20 px tall
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
                          interpolation=cv2.INTER_LINEAR)
        crops.append(crop)
    margin = int(height)
    H = int(max(c.shape[0] for c in crops) + 2 * margin)
    W = int(sum(c.shape[1] for c in crops) * 1.5 + 2 * margin)
    canvas = np.zeros((H, W), np.uint8)
    boxes = []
    x = margin
    kernel = np.ones((3, 3), np.uint8)
    for k, crop in enumerate(crops):
        ch, cw = crop.shape
        y = int(margin + (max(c.shape[0] for c in crops) - ch) + rng.uniform(-0.15, 0.15) * height)
        y = min(max(y, 1), H - ch - 1)
        if k:
            pw = boxes[-1][2]
            x = boxes[-1][0] + pw - int(round(rng.uniform(-0.4, 0.2) * max(pw, cw)))
        grown = cv2.dilate(np.pad((crop > 0).astype(np.uint8), 1), kernel)  # the ink and a 1 px rim
        while True:  # slide right until the ink does not touch the digits already placed
            window = canvas[y - 1 : y + ch + 1, x - 1 : x + cw + 1]
            if not (grown & (window > 0)).any():
                break
            x += 1
        canvas[y : y + ch, x : x + cw] = np.maximum(canvas[y : y + ch, x : x + cw], crop)
        boxes.append((x, y, cw, ch))
    right = max(b[0] + b[2] for b in boxes) + margin
    page = 255 - canvas[:, :right]
    return png(page), "".join(str(int(labels[i])) for i in picks), boxes, picks


def draw_strokes(strokes, size=(280, 280), width=18) -> np.ndarray:
    """Polylines as dark ink on white."""
    img = np.full((size[1], size[0]), 255, np.uint8)
    for pts in strokes:
        cv2.polylines(img, [np.array(pts, np.int32)], False, 0, width, cv2.LINE_AA)
    return img


SEVEN = [[(20, 20), (90, 20), (45, 120)]]
ONE = [[(50, 20), (50, 120)]]
# A '4' in two strokes that do not touch: the stem starts just below the bar.
FOUR_APART = [[(30, 20), (20, 80), (95, 80)], [(75, 94), (75, 135)]]


def _shift(strokes, dx, dy=0):
    return [[(x + dx, y + dy) for x, y in s] for s in strokes]


# ----------------------------------------------------------------------------------- unit tests


def test_empty_image_has_no_pieces():
    seg = segment(png(np.full((100, 300), 255, np.uint8)))
    assert seg.pieces == [] and seg.lines == 0 and seg.size == (300, 100)


def test_characters_come_in_reading_order_with_boxes():
    strokes = SEVEN + _shift(ONE, 120) + _shift(SEVEN, 220)
    img = draw_strokes(strokes, size=(340, 150), width=10)
    seg = segment(png(img))
    assert len(seg.pieces) == 3 and seg.lines == 1
    xs = [p.box[0] for p in seg.pieces]
    assert xs == sorted(xs)
    # The '1' is at x = 50 + 120 (pen 10 px wide, anti-aliased): its box says so.
    x, y, w, h = seg.pieces[1].box
    assert 160 <= x <= 166 and 174 <= x + w <= 180 and 12 <= y <= 16 and 124 <= y + h <= 128


def test_two_lines_are_read_top_to_bottom_then_left_to_right():
    strokes = _shift(SEVEN, 150) + _shift(ONE, 20) + _shift(SEVEN, 20, 160) + _shift(ONE, 150, 160)
    seg = segment(png(draw_strokes(strokes, size=(300, 320), width=10)))
    assert seg.lines == 2
    assert [p.line for p in seg.pieces] == [0, 0, 1, 1]
    # Line 0: the '1' (left) then the '7'; line 1: the '7' then the '1'.
    widths = [p.box[2] for p in seg.pieces]
    assert widths[0] < 30 < widths[1] and widths[2] > 30 > widths[3]


def test_strokes_of_one_character_are_merged_and_specks_dropped():
    img = draw_strokes(FOUR_APART + _shift(SEVEN, 130), size=(260, 160), width=10)
    img[150:153, 240:243] = 0  # a 3x3 speck far from the writing
    seg = segment(png(img))
    assert len(seg.pieces) == 2, [p.box for p in seg.pieces]
    four = seg.pieces[0].box
    assert four[1] < 20 and four[1] + four[3] > 135  # both strokes of the 4 in one box


def test_dot_joins_its_character():
    # An 'i': a stem and a dot above it, next to a '1'.
    img = draw_strokes([[(40, 50), (40, 130)], [(100, 20), (100, 130)]], size=(160, 160), width=10)
    cv2.circle(img, (40, 25), 6, 0, -1)
    seg = segment(png(img))
    assert len(seg.pieces) == 2
    assert seg.pieces[0].box[1] <= 20  # the dot is inside the first character's box


def test_a_one_under_the_arm_of_a_seven_is_settled_by_the_recogniser():
    # The 1's box lies almost inside the 7's (like the two strokes of an open '4'): geometry alone
    # merges them; with the recogniser as judge they stay two characters, and the 1's crop holds none
    # of the 7's ink.
    img = png(draw_strokes(SEVEN + [[(92, 60), (92, 130)]], size=(140, 150), width=8))
    assert len(segment(img).pieces) == 1
    seg, preds = read(img, Recognizer())
    assert [p.label for p in preds] == ["7", "1"]
    ys, xs = np.nonzero(seg.pieces[1].crop > 0.1)
    assert xs.max() - xs.min() < 16  # only the vertical stroke, not the 7's bar


def test_a_four_in_two_strokes_is_read_as_one_character():
    seg, preds = read(png(draw_strokes(FOUR_APART, size=(120, 160), width=10)), Recognizer())
    assert [p.label for p in preds] == ["4"]


def test_too_many_characters_is_a_clear_error():
    img = np.full((400, 800), 255, np.uint8)
    for i in range(30):
        for j in range(12):
            cv2.circle(img, (15 + i * 26, 15 + j * 32), 8, 0, 3)
    with pytest.raises(TooManyCharactersError, match="too many characters: found 360, .* at most 200"):
        segment(png(img))
    assert len(segment(png(img), max_characters=400).pieces) == 360
    assert MAX_CHARACTERS == 200


def test_bad_image_is_an_image_error():
    with pytest.raises(ImageError, match="not an image"):
        segment(b"hello")


def test_read_recognises_a_drawn_number():
    img = draw_strokes(SEVEN + _shift(ONE, 120) + _shift(SEVEN, 200), size=(320, 150), width=12)
    seg, preds = read(png(img), Recognizer())
    assert "".join(p.label for p in preds) == "717"
    assert all(p.framed.shape == (28, 28) for p in preds)


def test_join_lines_gives_each_lines_text_top_to_bottom():
    crop = np.zeros((4, 4), np.float32)
    pieces = [Piece((0, 0, 4, 4), line, crop) for line in (0, 0, 0, 1, 2, 2)]
    seg = Segmentation(pieces, 3, (100, 100))
    assert join_lines(seg, ["1", "2", "3", "4", "5", "6"]) == ["123", "4", "56"]
    assert join_lines(Segmentation([], 0, (10, 10)), []) == []
    with pytest.raises(ValueError, match="2 label.* for 6 piece"):
        join_lines(seg, ["1", "2"])


def test_join_lines_of_a_read():
    strokes = _shift(SEVEN, 150) + _shift(ONE, 20) + _shift(SEVEN, 20, 160) + _shift(ONE, 150, 160)
    seg, preds = read(png(draw_strokes(strokes, size=(300, 320), width=10)), Recognizer())
    assert join_lines(seg, [p.label for p in preds]) == ["17", "71"]


# ------------------------------------------------------------------------------ real-data bar


@pytest.mark.realdata
@pytest.mark.slow
def test_reads_numbers_made_of_real_mnist_digits(real_data_dir):
    # 300 numbers of 3-8 real MNIST test digits (see make_number: random gaps, sizes and baselines,
    # boxes overlapping by up to 20% of a digit's width, ink never touching). Two measures:
    # - exact: the string read equals the true digits (segmentation and recognition; the bar, >= 97%);
    # - segmentation: the string read equals what the model reads from each MNIST image on its own, so
    #   the model's own mistakes do not count (>= 99%).
    images, labels = load_mnist_test(real_data_dir)
    rec = Recognizer()
    rng = np.random.default_rng(2024)
    total, exact, same_as_alone, counted, wrong = 300, 0, 0, 0, []
    for k in range(total):
        data, truth, boxes, picks = make_number(rng, images, labels, int(rng.integers(3, 9)))
        seg, preds = read(data, rec)
        text = "".join(p.label for p in preds)
        alone = "".join(rec.predict(images[i]).label for i in picks)
        exact += text == truth
        same_as_alone += text == alone
        counted += len(seg.pieces) == len(truth)
        if text != truth:
            wrong.append((k, truth, text))
    print(f"\nread {exact}/{total} numbers exactly ({exact / total:.1%}); {same_as_alone}/{total} as the model "
          f"reads the digits one by one; right number of characters in {counted}/{total}; wrong: {wrong}")
    assert counted / total >= 0.99
    assert same_as_alone / total >= 0.99
    assert exact / total >= 0.97
