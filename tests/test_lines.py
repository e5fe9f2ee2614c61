"""Line data (scrawl.data.lines, scrawl.data.synth): the line alphabet, padding into training arrays,
the synthetic string builder (on made-up glyphs, and on MNIST), and the UNIPEN words reader on the real
file (counts against SOURCES.md, filters, a writer-disjoint split, a rendered sample in test-artifacts/)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from scrawl.data.lines import (LINE_ALPHABET, PAD, LineBatch, ctc_min_frames, encode_text, fits_ctc,
                               load_unipen_words, pad_lines)
from scrawl.data.synth import (MARKS, NUMBER_KINDS, TOUCHING_BAR_LAYOUT, GlyphBank, LineLayout, compose_line,
                               random_number_text, synthetic_number_line, touching_digit_strings)
from scrawl.errors import DataError
from scrawl.tasks.ctc import PAD as CTC_PAD

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# A layout without randomness in the geometry: no jitter, slant, drift or tilt.
FIXED = LineLayout(size=(1.0, 1.0), baseline=0.0, drift=0.0, tilt=(0.0, 0.0), slant=(0.0, 0.0), fill=(0.8, 0.8))


def _bar_bank() -> GlyphBank:
    """Digit d is a solid bar 3 + d pixels wide and 20 high (in a 28x28 image): its width names it."""
    images = np.zeros((20, 28, 28), np.uint8)
    chars = []
    for k in range(20):
        d = k % 10
        images[k, 4:24, 4 : 4 + 3 + d] = 255
        chars.append(str(d))
    return GlyphBank(images, chars)


def _components(image: np.ndarray) -> int:
    return cv2.connectedComponents((image > 0).astype(np.uint8), connectivity=8)[0] - 1


# ---- alphabet and padding -----------------------------------------------------------------------

def test_line_alphabet():
    assert len(LINE_ALPHABET) == 80 == len(set(LINE_ALPHABET))
    assert LINE_ALPHABET.startswith("0123456789ABC") and " " in LINE_ALPHABET
    assert set(".,'\"-/:;()!?&+%#@") <= set(LINE_ALPHABET) and "$" not in LINE_ALPHABET
    assert PAD == CTC_PAD


def test_encode_text():
    assert encode_text("0aA ").tolist() == [0, 36, 10, 62]
    assert encode_text("").dtype == np.int64
    with pytest.raises(ValueError, match=r"\$"):
        encode_text("$5")


def test_ctc_frames():
    assert ctc_min_frames("abc") == 3 and ctc_min_frames("aab") == 4 and ctc_min_frames("") == 0
    assert fits_ctc(16, "aab") and not fits_ctc(15, "aab")


def test_pad_lines():
    a, b = np.full((32, 10), 9, np.uint8), np.full((32, 17), 7, np.uint8)
    batch = pad_lines([(a, "12"), (b, "hello")], width_multiple=4)
    assert isinstance(batch, LineBatch)
    assert batch.images.shape == (2, 32, 20) and batch.images.dtype == np.uint8
    assert batch.widths.tolist() == [10, 17] and batch.lengths.tolist() == [2, 5]
    assert (batch.images[0, :, 10:] == 0).all() and (batch.images[0, :, :10] == 9).all()
    assert (batch.images[1, :, 17:] == 0).all()
    assert batch.targets.dtype == np.int64 and batch.targets.shape == (2, 5)
    assert batch.targets[0].tolist() == [1, 2, PAD, PAD, PAD]
    assert batch.targets[1].tolist() == encode_text("hello").tolist()
    assert pad_lines([(a, "")]).targets.tolist() == [[PAD]]
    assert pad_lines([(a, "1")], min_width=64).images.shape == (1, 32, 64)
    with pytest.raises(ValueError):
        pad_lines([(a, "1"), (np.zeros((28, 5), np.uint8), "2")])
    with pytest.raises(ValueError):
        pad_lines([(a, "$")])
    with pytest.raises(ValueError):
        pad_lines([])


def test_pad_lines_as_torch_matches_the_ctc_task():
    torch = pytest.importorskip("torch")
    from scrawl.tasks.ctc import CTCTask

    batch = pad_lines([(np.full((32, 8), 255, np.uint8), "ab"), (np.zeros((32, 12), np.uint8), "a")])
    images, widths, targets = batch.as_torch()
    assert images.shape == (2, 1, 32, 12) and images.dtype == torch.float32 and float(images.max()) == 1.0
    t = CTCTask().collate(targets)
    assert t.lengths.tolist() == [2, 1] and t.flat.tolist() == [37, 38, 37]  # class index + 1 (blank = 0)


# ---- synthetic strings --------------------------------------------------------------------------

def test_text_matches_the_digits_drawn():
    bank = _bar_bank()
    layout = replace(FIXED, touch=0.0, gap=(0.2, 0.3))
    for text in ("0123456789", "9072", "55"):
        im = compose_line(text, bank, np.random.default_rng(0), height=None, layout=layout)
        n, _, stats, _ = cv2.connectedComponentsWithStats((im > 0).astype(np.uint8))
        boxes = sorted(stats[1:].tolist())
        widths = [w for _, _, w, _, _ in boxes]
        # each bar scaled from 20 to 24 px high: width (3 + d) * 1.2
        assert "".join(str(int(round(w / 1.2)) - 3) for w in widths) == text


def test_overlap_makes_ink_touch():
    bank = _bar_bank()
    rng = np.random.default_rng(1)
    for layout, expect in ((replace(FIXED, touch=1.0, overlap=(0.3, 0.3)), 1),
                           (replace(FIXED, touch=0.0, gap=(0.1, 0.2)), None)):
        for _ in range(5):
            text = "".join(str(d) for d in rng.integers(0, 10, 6))
            im = compose_line(text, bank, rng, height=None, layout=layout)
            assert _components(im) == (expect or len(text))


def test_overlap_is_a_fraction_of_the_narrower_width():
    bank = _bar_bank()
    layout = replace(FIXED, touch=1.0, overlap=(0.3, 0.3))
    im = compose_line("09", bank, np.random.default_rng(0), height=None, layout=layout)
    w0, w9 = 3 * 1.2, 12 * 1.2
    assert abs((im > 0).any(axis=0).sum() - (w0 + w9 - 0.3 * w0)) <= 1.5


def test_widths_grow_with_length_and_height_is_kept():
    bank = _bar_bank()
    rng = np.random.default_rng(2)
    widths = []
    for n in (2, 5, 12):
        ims = [compose_line("7" * n, bank, rng, height=32) for _ in range(5)]
        assert all(im.shape[0] == 32 and im.dtype == np.uint8 for im in ims)
        widths.append(np.mean([im.shape[1] for im in ims]))
    assert widths[0] < widths[1] < widths[2]


def test_punctuation_is_drawn_and_unknown_characters_refused():
    bank = _bar_bank()
    for ch in MARKS:
        im = compose_line("1" + ch + "2", bank, np.random.default_rng(0), height=32)
        plain = compose_line("12", bank, np.random.default_rng(0), height=32)
        assert im.shape[0] == 32 and (im > 0).sum() != (plain > 0).sum()
    spaced = compose_line("1 2", bank, np.random.default_rng(0), height=None, layout=replace(FIXED, touch=1.0))
    assert _components(spaced) == 2
    with pytest.raises(ValueError, match="no glyph"):
        compose_line("1x", bank, np.random.default_rng(0))
    with pytest.raises(ValueError):
        compose_line("  ", bank, np.random.default_rng(0))


def test_builder_is_deterministic():
    bank = _bar_bank()
    a = synthetic_number_line(bank, np.random.default_rng(3))
    b = synthetic_number_line(bank, np.random.default_rng(3))
    assert a[1] == b[1] and np.array_equal(a[0], b[0])
    images = np.stack([bank.images[k] for k in range(20)])
    labels = [k % 10 for k in range(20)]
    s1 = touching_digit_strings(images, labels, 4, seed=9)
    s2 = touching_digit_strings(images, labels, 4, seed=9)
    assert [t for _, t in s1] == [t for _, t in s2]
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(s1, s2))


def test_number_texts():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        text = random_number_text(rng)
        assert set(text) <= set(LINE_ALPHABET) and text == text.strip() and "  " not in text
        assert sum(c.isdigit() for c in text) >= 1
        seen.add(text)
    assert len(seen) > 350
    for _ in range(100):
        digits = random_number_text(rng, ["digits"])
        assert digits.isdigit() and 2 <= len(digits) <= 12
    assert all(random_number_text(rng, ["date"]).count(s) in (0, 2) for s in "/." for _ in range(20))
    with pytest.raises(ValueError):
        random_number_text(rng, ["words"])
    assert "phone" in NUMBER_KINDS and "amount" in NUMBER_KINDS


def test_touching_strings_follow_the_bar():
    bank = _bar_bank()
    images = np.stack([bank.images[k] for k in range(20)])
    labels = [k % 10 for k in range(20)]
    out = touching_digit_strings(images, labels, 30, seed=0, height=40)
    assert all(im.shape[0] == 40 and t.isdigit() and 3 <= len(t) <= 10 for im, t in out)
    assert {len(t) for _, t in out} >= {3, 10} or len({len(t) for _, t in out}) >= 6
    assert TOUCHING_BAR_LAYOUT.touch == 1.0 and TOUCHING_BAR_LAYOUT.overlap == (0.0, 0.3)


def test_unipen_reader_refuses_bad_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read"):
        load_unipen_words(junk)
    partial = tmp_path / "partial.npz"
    np.savez(partial, points=np.zeros((3, 2), np.uint16), label=np.array(["a"]))
    with pytest.raises(DataError, match="missing arrays"):
        load_unipen_words(partial)
    with pytest.raises(DataError, match="not found"):
        load_unipen_words(tmp_path)


# ---- real data ----------------------------------------------------------------------------------

def _montage(images: list[np.ndarray], width: int = 600) -> np.ndarray:
    rows = []
    for im in images:
        im = im[:, :width]
        row = np.zeros((im.shape[0] + 2, width), np.uint8)
        row[1:-1, : im.shape[1]] = im
        rows.append(row)
    return 255 - np.vstack(rows)


@pytest.mark.realdata
def test_touching_mnist_test_digits_really_touch(real_data_dir):
    from scrawl.data.idx import read_idx

    x = read_idx(real_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    y = read_idx(real_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    bank = GlyphBank.from_labels(x, y)
    rng = np.random.default_rng(0)
    fewer = 0
    layout = replace(FIXED, touch=1.0, overlap=(0.3, 0.3))
    for _ in range(40):
        text = "".join(str(d) for d in rng.integers(0, 10, 6))
        fewer += _components(compose_line(text, bank, rng, height=None, layout=layout)) < len(text)
    assert fewer >= 36  # at a 30% overlap nearly every string has touching digits
    bar = touching_digit_strings(x, y, 12, seed=1, height=40)
    numbers = [synthetic_number_line(bank, rng, height=40) for _ in range(12)]
    ARTIFACTS.mkdir(exist_ok=True)
    cv2.imwrite(str(ARTIFACTS / "lines-synthetic-numbers.png"), _montage([im for im, _ in bar + numbers]))
    (ARTIFACTS / "lines-synthetic-numbers.txt").write_text("\n".join(t for _, t in bar + numbers) + "\n")


@pytest.fixture(scope="module")
def unipen(real_data_dir):
    return load_unipen_words(real_data_dir)


@pytest.mark.realdata
def test_unipen_counts_and_filters(unipen, real_data_dir):
    path = real_data_dir / "unipen_words" / "unipen_words_train.npz"
    with np.load(path, allow_pickle=False) as z:
        n_file, writers = len(z["label"]), len(set(z["writer"].tolist()))
        flags = {k: z[k][unipen.rows] for k in ("multiline", "has_xxx", "quality", "punct_spacing")}
        n_points = z["n_points"][unipen.rows]
    assert n_file == 85742 and writers == 497  # SOURCES.md: 85,742 segments from 497 writers
    assert 75_000 < len(unipen) < n_file and 400 < len(set(unipen.writers.tolist())) <= 497
    assert sum(unipen.dropped.values()) == n_file - len(unipen)
    assert not flags["multiline"].any() and not flags["has_xxx"].any() and not flags["punct_spacing"].any()
    assert "BAD" not in set(flags["quality"].tolist())
    assert set("".join(unipen.labels.tolist())) <= set(LINE_ALPHABET)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(unipen), 50, replace=False):
        strokes = unipen.strokes(i)
        assert all(s.dtype == np.float32 and s.ndim == 2 and s.shape[1] == 2 for s in strokes)
        assert sum(len(s) for s in strokes) == n_points[i]
    with pytest.raises(DataError):
        load_unipen_words(real_data_dir / "nowhere")


@pytest.mark.realdata
def test_unipen_writer_split_is_writer_disjoint(unipen):
    train, val = unipen.writer_split(0.1, seed=0)
    assert len(train) + len(val) == len(unipen) and not set(train.tolist()) & set(val.tolist())
    assert not set(unipen.writers[train].tolist()) & set(unipen.writers[val].tolist())
    assert 0.1 <= len(val) / len(unipen) < 0.13
    again, _ = unipen.writer_split(0.1, seed=0)
    other, _ = unipen.writer_split(0.1, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    sub = unipen.subset(val)
    assert len(sub) == len(val) and sub.labels[0] == unipen.labels[val[0]]
    assert sum(len(s) for s in sub.strokes(0)) == sum(len(s) for s in unipen.strokes(val[0]))


@pytest.mark.realdata
def test_unipen_renders(unipen):
    from scrawl.data.strokes import augment_paper

    rng = np.random.default_rng(1)
    images = []
    for i in rng.choice(len(unipen), 16, replace=False):
        im = unipen.render(i, 40, rng=rng)
        assert im.shape[0] == 40 and im.dtype == np.uint8 and im.max() == 255
        images += [im, augment_paper(im, rng)]
    ARTIFACTS.mkdir(exist_ok=True)
    cv2.imwrite(str(ARTIFACTS / "lines-unipen-rendered.png"), _montage(images))
