"""Reading lines with the bundled line model (Recognizer("line").read, scrawl.runtime.reader): every bad
input gets a ScrawlError subclass with a message that says what is wrong, a Reading's JSON shape,
character boxes inside the image and left to right, and a line model's checkpoint round trip (the card
alone rebuilds the CRNN and its framing). Accuracy floors of the real model: tests/test_line_model.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scrawl import Recognizer
from scrawl.errors import EmptyImageError, ImageError, ScrawlError
from scrawl.labels import LINE_ALPHABET
from scrawl.models import build_model
from scrawl.runtime.checkpoint import load_checkpoint, save_checkpoint
from scrawl.runtime.reader import Reading
from scrawl.vision.framing import MAX_LINE_WIDTH, line_spec
from scrawl.vision.lines import MAX_LINES, TooManyLinesError

# "12" written as pen strokes: a one, then a two (x right, y down, any units).
TWELVE = [np.array([[10.0, 20.0], [22.0, 5.0], [22.0, 95.0]]),
          np.array([[45.0, 25.0], [55.0, 8.0], [75.0, 5.0], [88.0, 20.0], [85.0, 42.0], [45.0, 95.0],
                    [95.0, 95.0]])]


@pytest.fixture(scope="module")
def line_model() -> Recognizer:
    return Recognizer("line")


def _paper(ink: np.ndarray, pad: int = 20) -> np.ndarray:
    """An ink-bright uint8 image as a scan shows it: dark ink on white paper, with a margin."""
    return 255 - np.pad(ink, pad)


def _writing(text_strokes, copies: int = 1, height: int = 64) -> np.ndarray:
    """`copies` renders of the strokes side by side, a gap apart: one line, ink bright."""
    from scrawl.data.strokes import StrokeStyle, render_strokes

    one = render_strokes(text_strokes, height, StrokeStyle(pen=0.07, fill=0.8), margin=0.3)
    return np.hstack([one] * copies)


# ---- bad input: a ScrawlError subclass that says what is wrong ----------------------------------

@pytest.mark.parametrize("image", [np.full((120, 300), 255, np.uint8), np.zeros((120, 300), np.uint8),
                                   np.full((1, 1), 255, np.uint8), np.zeros((1, 1), np.uint8),
                                   np.full((40, 40, 3), 128, np.uint8)],
                         ids=["white", "all-ink", "1x1-white", "1x1-black", "gray-rgb"])
def test_nothing_to_read(line_model, image):
    with pytest.raises(EmptyImageError, match="nothing to read"):
        line_model.read(image)


def test_a_speck_on_a_canvas_is_nothing_to_read(line_model):
    canvas = np.zeros((280, 280, 4), np.uint8)  # a transparent canvas: alpha is the ink
    canvas[100:102, 100:102, 3] = 255
    with pytest.raises(EmptyImageError, match="nothing to read"):
        line_model.read(canvas)


def test_ink_everywhere_but_a_few_holes_is_not_a_line(line_model):
    # Ink all over the image but for a few pin holes: read as specks of light ink on a dark board.
    image = np.zeros((200, 300), np.uint8)
    image[::37, ::41] = 255
    with pytest.raises(EmptyImageError, match="nothing to read"):
        line_model.read(image)


def test_a_line_20000_px_wide(line_model):
    page = np.full((240, 20_000), 255, np.uint8)
    page[100:140] = _paper(_writing(TWELVE, copies=600, height=40), pad=0)[:, :20_000]
    with pytest.raises(ImageError, match=f"too long to read in one piece.*at most {MAX_LINE_WIDTH}"):
        line_model.read(page)


def test_a_page_of_500_lines(line_model):
    page = np.full((500 * 16 + 8, 160), 255, np.uint8)
    for k in range(500):
        for x in range(6, 150, 12):
            page[8 + 16 * k : 18 + 16 * k, x : x + 7] = 0
    with pytest.raises(TooManyLinesError, match=f"too many lines: 500 found, at most {MAX_LINES}"):
        line_model.read(page)


@pytest.mark.parametrize("bad, error, message", [(b"", ImageError, "0 bytes"),
                                                 (b"not an image at all", ImageError, "not an image"),
                                                 ("/no/such/file.png", ImageError, "not found")])
def test_unreadable_inputs(line_model, bad, error, message):
    with pytest.raises(error, match=message):
        line_model.read(bad)


def test_bad_arguments_and_a_character_model():
    rec = Recognizer("line")
    image = _paper(_writing(TWELVE))
    with pytest.raises(ScrawlError, match="top_k"):
        rec.read(image, top_k=0)
    with pytest.raises(ScrawlError, match="unknown charset"):
        rec.read(image, charset="kanji")
    with pytest.raises(ScrawlError, match="not lines"):
        Recognizer("digits").read(image)


# ---- what a reading looks like ------------------------------------------------------------------

def test_reading_json_shape(line_model):
    reading = line_model.read(_paper(_writing(TWELVE, copies=3)), top_k=4)
    assert isinstance(reading, Reading)
    d = json.loads(json.dumps(reading.to_dict()))
    assert set(d) == {"text", "lines"} and d["text"] == reading.text and len(d["lines"]) == 1
    line = d["lines"][0]
    assert set(line) == {"text", "confidence", "uncertain", "box", "chars", "alternatives"}
    assert isinstance(line["text"], str) and line["text"].strip()
    assert 0 < line["confidence"] <= 1 and line["uncertain"] == (line["confidence"] < 0.6)
    assert len(line["box"]) == 4 and all(isinstance(v, int) for v in line["box"])
    assert "".join(c["char"] for c in line["chars"]) == line["text"]
    for c in line["chars"]:
        assert set(c) == {"char", "confidence", "box", "uncertain"} and 0 < c["confidence"] <= 1
        assert len(c["box"]) == 4 and all(isinstance(v, int) for v in c["box"])
    alternatives = line["alternatives"]
    assert 1 <= len(alternatives) <= 4 and alternatives[0]["text"] == line["text"]
    assert all(set(a) == {"text", "probability"} and 0 <= a["probability"] <= 1 for a in alternatives)
    probs = [a["probability"] for a in alternatives]
    assert probs == sorted(probs, reverse=True) and len({a["text"] for a in alternatives}) == len(alternatives)
    assert min(c["confidence"] for c in line["chars"]) == pytest.approx(line["confidence"], abs=1e-6)


def test_boxes_lie_inside_the_image_left_to_right(line_model):
    ink = _writing(TWELVE, copies=4)
    image = _paper(ink, pad=30)
    h, w = image.shape
    (line,) = line_model.read(image).lines
    x0, y0, x1, y1 = line.box
    cols, rows = np.flatnonzero((ink > 64).any(0)), np.flatnonzero((ink > 64).any(1))
    want = (30 + cols[0], 30 + rows[0], 31 + cols[-1], 31 + rows[-1])  # the ink's box (its faint rim aside)
    assert np.abs(np.subtract(line.box, want)).max() <= 2
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert len(line.chars) >= 4
    for c in line.chars:
        cx0, cy0, cx1, cy1 = c.box
        assert x0 <= cx0 < cx1 <= x1 and y0 <= cy0 < cy1 <= y1  # inside the line's box, so the image
    lefts = [c.box[0] for c in line.chars]
    rights = [c.box[2] for c in line.chars]
    assert lefts == sorted(lefts) and rights == sorted(rights)
    assert lefts[-1] - lefts[0] > 0.5 * (x1 - x0)  # spread along the line, not piled at one end


def test_each_box_holds_its_own_character(line_model):
    """Digits a few pixels apart, where each one lies is known: every character's box covers its own
    digit's columns, not the neighbour's (halfway between the CTC firings, the boxes sat half a digit to
    the left: benchmarks/char_boxes.py)."""
    from scrawl.runtime.files import sample_images
    from scrawl.vision.framing import frame

    digits = [frame(p) for p in sample_images()]  # (28, 28) ink-bright, sample k shows the digit k
    parts, where, x = [], [], 0
    for ch in "3075194":
        d = digits[int(ch)]
        cols = np.flatnonzero(d.max(axis=0) > 0.3)
        d = d[:, cols[0] : cols[-1] + 1]
        parts += [d, np.zeros((28, 4), np.float32)]
        where.append((x, x + d.shape[1]))
        x += d.shape[1] + 4
    image = _paper((np.hstack(parts[:-1]) * 255).astype(np.uint8), pad=20)
    (line,) = line_model.read(image, charset="digits", top_k=1).lines
    assert line.text == "3075194"
    def shared(x0, x1, a, b):  # columns two spans share
        return max(0, min(x1, b) - max(x0, a))

    for k, (c, (a, b)) in enumerate(zip(line.chars, where)):
        x0, x1 = c.box[0] - 20, c.box[2] - 20
        assert a <= (x0 + x1) / 2 < b, (c.char, (x0, x1), (a, b))  # its middle on its own digit
        assert shared(x0, x1, a, b) >= 0.7 * (b - a), (c.char, (x0, x1), (a, b))  # most of its digit
        for na, nb in where[max(0, k - 1) : k] + where[k + 1 : k + 2]:  # little of its neighbours
            assert shared(x0, x1, na, nb) <= 0.3 * (nb - na), (c.char, (x0, x1), (na, nb))


def test_a_page_reads_line_by_line_top_to_bottom(line_model):
    one = _writing(TWELVE, copies=2)
    gap = np.zeros((30, one.shape[1]), np.uint8)
    page = _paper(np.vstack([one, gap, one, gap, one]))
    reading = line_model.read(page)
    assert len(reading.lines) == 3 and reading.text.count("\n") == 2
    tops = [line.box[1] for line in reading.lines]
    assert tops == sorted(tops) and tops[1] - tops[0] >= one.shape[0] // 2


# ---- a line model's checkpoint ------------------------------------------------------------------

CARD = {"arch": "crnn", "model_config": {"num_classes": len(LINE_ALPHABET) + 1, "width": 8, "hidden": 16},
        "classes": list(LINE_ALPHABET), "frame": line_spec(32).to_dict(), "task": "ctc",
        "history": [{"epoch": 1, "val_loss": 3.5}]}


def test_a_line_model_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("crnn", **CARD["model_config"]).eval()
    path = save_checkpoint(tmp_path / "line.pt", CARD, model.state_dict())
    ck = load_checkpoint(path)
    assert ck.card.task == "ctc" and ck.card.arch == "crnn" and ck.card.frame == line_spec(32)
    assert ck.card.classes == list(LINE_ALPHABET) and ck.meta["history"] == CARD["history"]
    rebuilt = ck.build_model()  # from the card alone: no flags
    assert type(rebuilt) is type(model) and not rebuilt.training
    x = torch.rand(3, 1, 32, 148)
    with torch.no_grad():
        want = model(x)
        assert want.shape == (3, 37, len(LINE_ALPHABET) + 1)
        assert torch.equal(rebuilt(x), want)
    rec = Recognizer(path)  # and the reader's way in: the same card, framing and logits
    assert rec.card.task == "ctc" and rec.spec == line_spec(32) and rec.classes == list(LINE_ALPHABET)
    np.testing.assert_allclose(rec.logits(x.numpy()), want.numpy(), rtol=1e-5, atol=1e-5)


def test_the_bundled_line_model_card(line_model):
    card = line_model.card
    assert card.task == "ctc" and card.arch == "crnn" and card.frame.framing == "line"
    assert card.classes == list(LINE_ALPHABET)
    assert card.model_config["num_classes"] == len(LINE_ALPHABET) + 1
