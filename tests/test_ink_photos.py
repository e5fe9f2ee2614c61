"""Photos with hard light (issue 14, item 5): digits on a page whose light falls to 45% or 30% across it,
under a shadow's hard edge, on coloured, ruled or squared paper, are found and read, and the empty paper
(a bright corner, a dark side, a shadow) holds no ink.

The photos are generated: real MNIST test digits, about 100 px high, written in dark ink on a 1200x900
sheet, lit unevenly, with sensor noise and JPEG compression.
"""

import gzip
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from scrawl import Recognizer
from scrawl.errors import EmptyImageError
from scrawl.vision.segment import join_lines, read, segment

pytestmark = pytest.mark.realdata

W, H = 1200, 900
DIGIT_HEIGHT = 100  # px, of the ink (MNIST's ink is ~20 of its 28 px)
# The first '5' and '8' of the MNIST test set (indices 8 and 61).
FIVE, EIGHT = 8, 61


# ------------------------------------------------------------------------------------------ photos


def linear(to, angle=0.0):
    """Light falling linearly from 1 to `to` across the page, along `angle` (0: left to right)."""
    def light(yy, xx):
        t = np.cos(angle) * xx / W + np.sin(angle) * yy / H
        return 1 - (1 - to) * (t - t.min()) / (t.max() - t.min())
    return light


def lamp(to, cx, cy):
    """A lamp near the corner (cx, cy) (fractions of the page): inverse-square fall-off to `to`."""
    def light(yy, xx):
        r2 = ((xx - cx * W) ** 2 + (yy - cy * H) ** 2) / (W**2 + H**2)
        return 1 / (1 + (1 / to - 1) * r2 / r2.max())
    return light


def vignette(to):
    def light(yy, xx):
        r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
        return 1 - (1 - to) * r2 / 2
    return light


def shadow(depth, at, slope, vertical=True, soft=4.0):
    """A hard shadow edge crossing the page (top to bottom if `vertical`, else left to right) at `at`
    (fraction of the page) with `slope`: right of it (or below it) the light is `depth`."""
    def light(yy, xx):
        u, v, length, across = (xx, yy, H, W) if vertical else (yy, xx, W, H)
        d = (u - at * across - slope * (v - length / 2)) / soft
        return 1 - (1 - depth) / (1 + np.exp(-np.clip(d, -50, 50)))
    return light


def photo(digits, light=None, paper=(235, 232, 225), rules=None, at=(0.5, 0.5), seed=0):
    """JPEG bytes of a 1200x900 photo of `digits` (MNIST, ink bright) written side by side, centred at
    `at`; also the ink boxes (x, y, w, h) of the digits."""
    rng = np.random.default_rng(seed)
    sheet = np.ones((H, W, 3), np.float32) * np.float32(paper) / 255
    blue = np.float32([0.55, 0.72, 0.95])
    if rules == "ruled":  # blue lines every 32 px and a red margin
        for y in range(40, H, 32):
            sheet[y : y + 2] = 0.55 * sheet[y : y + 2] + 0.45 * blue
        sheet[:, 100:102] = 0.5 * sheet[:, 100:102] + 0.5 * np.float32([0.95, 0.5, 0.5])
    elif rules == "squared":  # a 5 mm grid
        for v in range(10, max(W, H), 25):
            sheet[v : v + 1] = 0.6 * sheet[v : v + 1] + 0.4 * blue
            sheet[:, v : v + 1] = 0.6 * sheet[:, v : v + 1] + 0.4 * blue
    side = round(28 * DIGIT_HEIGHT / 20)
    x = int(at[0] * W - 0.8 * side * len(digits) / 2)
    y = int(at[1] * H - side / 2)
    cover, boxes = np.zeros((H, W), np.float32), []
    for digit in digits:
        big = np.clip(cv2.resize(digit, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255, 0, 1)
        cover[y : y + side, x : x + side] = np.maximum(cover[y : y + side, x : x + side], big)
        bx, by, bw, bh = cv2.boundingRect((big > 0.3).astype(np.uint8))
        boxes.append((x + bx, y + by, bw, bh))
        x += int(0.8 * side)
    sheet *= 1 - 0.85 * cover[..., None]  # dark ink: reflects 15% of what the paper does
    if light is not None:
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        sheet *= light(yy, xx).astype(np.float32)[..., None]
    pixels = np.clip(sheet * 255 + rng.normal(0, 3, sheet.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=88)
    return buf.getvalue(), boxes


LIGHTS = {
    "flat": {},
    "light falls to 45% left to right": {"light": linear(0.45)},
    "light falls to 45% from a lamp at a corner": {"light": lamp(0.45, 0, 0)},
    "light falls to 45% towards a corner": {"light": lamp(0.45, 1, 1)},
    "light falls to 30% left to right": {"light": linear(0.30)},
    "light falls to 30% bottom to top": {"light": linear(0.30, -np.pi / 2)},
    "light falls to 30% from a lamp at a corner": {"light": lamp(0.30, 1, 0)},
    "vignette to 30% in the corners": {"light": vignette(0.30)},
    "a hard shadow edge across the page": {"light": shadow(0.45, 0.5, 0.3)},
    "a hard shadow edge along the page": {"light": shadow(0.4, 0.5, -0.2, vertical=False)},
    "yellowish paper": {"paper": (240, 225, 150)},
    "blue paper": {"paper": (170, 200, 235)},
    "ruled paper": {"rules": "ruled"},
    "squared paper": {"rules": "squared"},
    "ruled paper, light falling to 30%": {"rules": "ruled", "light": linear(0.30, 0.5)},
    "yellowish paper, a lamp at a corner, 30%": {"paper": (240, 225, 150), "light": lamp(0.30, 0, 1)},
}
PLACES = [(0.5, 0.5), (0.22, 0.75), (0.8, 0.22)]


@pytest.fixture(scope="module")
def digits(real_data_dir):
    raw = gzip.open(real_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz").read()
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    return {"5": images[FIVE], "8": images[EIGHT]}


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer("digits")


def overlaps(box, boxes):
    x, y, w, h = box
    return any(min(x + w, bx + bw) > max(x, bx) and min(y + h, by + bh) > max(y, by) for bx, by, bw, bh in boxes)


# ------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("at", PLACES, ids=["centre", "lower-left", "upper-right"])
@pytest.mark.parametrize("case", list(LIGHTS))
def test_a_number_in_hard_light_reads_right(case, at, digits, recognizer):
    data, boxes = photo([digits["5"], digits["8"]], at=at, seed=len(case), **LIGHTS[case])
    seg, preds = read(data, recognizer)
    found = [(p.box, q.label, round(q.confidence, 2)) for p, q in zip(seg.pieces, preds)]
    assert join_lines(seg, [p.label for p in preds]) == ["58"], found
    for piece in seg.pieces:  # no box over empty paper (a bright corner, a shadow's edge)
        assert overlaps(piece.box, boxes), found


@pytest.fixture(scope="module")
def default_recognizer():
    return Recognizer()


@pytest.mark.parametrize("case", list(LIGHTS))
def test_a_single_digit_in_hard_light_reads_right(case, digits, default_recognizer):
    for label, at in (("5", (0.3, 0.35)), ("8", (0.75, 0.7))):
        data, _ = photo([digits[label]], at=at, seed=len(case), **LIGHTS[case])
        prediction = default_recognizer.predict(data)
        assert prediction.label == label, (label, at, prediction.label, round(prediction.confidence, 2))


@pytest.mark.parametrize("case", [c for c in LIGHTS if "ruled" not in c and "squared" not in c])
def test_empty_paper_in_hard_light_has_no_ink(case, recognizer):
    # Ruled and squared paper are left out: their lines are marks on the paper, which step back (are
    # scaled below the ink's level) only beside writing.
    data, _ = photo([], seed=len(case), **LIGHTS[case])
    with pytest.raises(EmptyImageError, match="no ink"):
        recognizer.predict(data)
    assert segment(data).pieces == []
