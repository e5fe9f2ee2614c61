"""The extra training characters of issue 15 on the real files (scrawl.data.chars_extra, chars_extra/ in the
data folder): UNIPEN's writer split and suspect rows, the stroke renderer's framing, pen and seeds, the
FEMNIST NIST forms; and how training takes them: `_extra_images` (only the model's classes), looks swapped
per epoch (TrainingData.looks), `--init` fine-tuning (class rows matched by label), and a tiny
`scrawl train --extra-train unipen-chars --junk` run's model card.

Rendering is the slow part (about 1 ms a character), so the training tests load a slice of the UNIPEN
training split (`sliced_unipen`), never all 83,000 characters.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

import scrawl.data as data_pkg
import scrawl.data.chars_extra as chars_extra
from scrawl.cli import main
from scrawl.errors import DataError, ScrawlError
from scrawl.labels import ALNUM, DIGITS, NOT_A_CHARACTER
from scrawl.models import build_model
from scrawl.runtime.checkpoint import load_checkpoint, save_checkpoint
from scrawl.training import RECIPES
from scrawl.training.data import TrainingData, _extra_images, load_training_data
from scrawl.training.loop import _init_from
from scrawl.vision import FrameSpec, frame

pytestmark = pytest.mark.realdata

EMNIST, MNIST = FrameSpec(framing="emnist"), FrameSpec(framing="mnist")
SLICE = 150  # the training tests keep every 150th UNIPEN character: ~550, ~90 of them digits


@pytest.fixture(scope="module")
def unipen_path(real_data_dir):
    return real_data_dir / "chars_extra" / "unipen_chars_strokes.npz"


@pytest.fixture(scope="module")
def raw(unipen_path):
    with np.load(unipen_path) as z:
        return {k: z[k] for k in ("y", "suspect", "cat", "contrib", "writer_id", "n_strokes")}


@pytest.fixture(scope="module")
def splits(unipen_path):
    return {s: chars_extra.load_unipen_chars(unipen_path, s) for s in ("train", "test", "all")}


@pytest.fixture(scope="module")
def sample(splits):
    """200 test-split characters spread over the file (every class, many writers)."""
    return splits["test"].strokes[::27][:200]


@pytest.fixture
def sliced_unipen(monkeypatch):
    """load_unipen_chars keeps every SLICE-th character of a split (what training sees, only fewer)."""
    real = chars_extra.load_unipen_chars

    def load(path, split):
        chars = real(path, split)
        return chars.subset(np.arange(len(chars)) % SLICE == 0)

    monkeypatch.setattr(chars_extra, "load_unipen_chars", load)
    return load


def _box(image, level=0.1):
    x, y, w, h = cv2.boundingRect((image > level).astype(np.uint8))
    return np.array([x, y, x + w, y + h])


def _centre_of_mass(image):
    m = cv2.moments(image.astype(np.float32))
    return np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])


def _stroke_width(image):
    """Core ink area / half its perimeter (the width of long strokes), in pixels."""
    core = (image > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(core, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return core.sum() / max(sum(cv2.arcLength(c, True) for c in contours) / 2, 1.0)


# --- the UNIPEN file ------------------------------------------------------------------------------


def test_the_writer_split_is_disjoint_complete_and_fixed_by_the_writer_key(splits, unipen_path):
    train, test, every = splits["train"], splits["test"], splits["all"]
    assert not set(train.writers) & set(test.writers)
    assert len(train) + len(test) == len(every)
    # Held out: exactly the writers whose key hashes to 0 (CRC-32: the same on any machine, whatever the
    # order of the file), about 1 in 10 of them.
    writers = set(every.writers)
    assert set(test.writers) == {w for w in writers if zlib.crc32(w.encode()) % 10 == 0}
    assert 0.05 <= len(set(test.writers)) / len(writers) <= 0.15
    assert 0.03 <= len(test) / len(every) <= 0.15
    again = chars_extra.load_unipen_chars(unipen_path, "test")
    assert np.array_equal(again.labels, test.labels) and np.array_equal(again.writers, test.writers)
    assert all(np.array_equal(a, b) for s, t in zip(again.strokes[::97], test.strokes[::97]) for a, b in zip(s, t))


def test_suspect_rows_are_dropped_and_the_rest_kept_in_order(splits, raw):
    every, suspect = splits["all"], raw["suspect"].astype(bool)
    assert 100 <= suspect.sum() <= 200  # SOURCES.md: 123 suspect segments
    assert len(every) == (~suspect).sum()
    assert np.array_equal(every.labels, raw["y"][~suspect])
    writers = np.char.add(np.char.add(raw["contrib"], ":"), raw["writer_id"])
    assert np.array_equal(every.writers, writers[~suspect])
    assert [len(s) for s in every.strokes] == raw["n_strokes"][~suspect].tolist()


def test_counts_labels_and_strokes_are_plausible(splits, raw):
    every = splits["all"]
    assert 85_000 <= len(every) <= 89_000 and 250 <= len(set(every.writers)) <= 300  # 88,907 rows, 281 writers
    counts = np.bincount(every.labels, minlength=62)
    assert len(counts) == 62 and counts.min() >= 300  # every class, and enough of each to learn from
    # The category says what the label must be: 1a digits, 1b capitals, 1c small letters.
    cat = raw["cat"][~raw["suspect"].astype(bool)]
    for name, lo, hi in (("1a", 0, 10), ("1b", 10, 36), ("1c", 36, 62)):
        labels = every.labels[cat == name]
        assert len(labels) > 10_000 and labels.min() >= lo and labels.max() < hi
    for strokes in every.strokes[::500]:
        assert strokes and all(s.ndim == 2 and s.shape[1] == 2 and len(s) >= 1 for s in strokes)
        pts = np.concatenate(strokes)
        assert np.isfinite(pts).all() and np.ptp(pts, axis=0).max() > 0  # a character, not a single point


def test_a_bad_file_or_split_is_a_data_error(tmp_path, unipen_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="not a readable UNIPEN"):
        chars_extra.load_unipen_chars(bad, "train")
    with pytest.raises(DataError, match="unknown split"):
        chars_extra.load_unipen_chars(unipen_path, "validation")
    with pytest.raises(DataError, match="not a readable FEMNIST"):
        chars_extra.load_femnist_nist(bad)


# --- the renderer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [EMNIST, MNIST], ids=["emnist", "mnist"])
def test_rendered_characters_are_framed_as_a_users_image_would_be(sample, spec, monkeypatch):
    """Each rendered character equals what scrawl.vision.frame makes of the same ink given as a user's
    image (dark on white): same ink box, same centre, nearly the same pixels."""
    drawn = []
    real_frame_batch = chars_extra.frame_batch

    def spy(images, spec):  # the ink render_chars draws, before its framing
        drawn.append(np.array(images[0]))
        return real_frame_batch(images, spec)

    monkeypatch.setattr(chars_extra, "frame_batch", spy)
    out = chars_extra.render_chars(sample, spec, seed=3, workers=1)
    assert out.shape == (len(sample), 28, 28) and out.dtype == np.uint8 and len(drawn) == len(sample)
    framed = out / 255.0
    for mine, ink in zip(framed, drawn):
        users = frame(255 - ink, spec)
        assert np.abs(_box(mine) - _box(users)).max() <= 1
        assert np.abs(_centre_of_mass(mine) - _centre_of_mass(users)).max() <= 0.5
        assert np.abs(mine - users).mean() <= 0.03
    # Ink bright on black, the edges blank (MNIST's centring of mass may push a lopsided character's rim
    # onto one), the training set's geometry.
    edges = np.maximum(framed[:, [0, -1]].max((1, 2)), framed[:, :, [0, -1]].max((1, 2)))
    assert (edges == 0).all() if spec.framing == "emnist" else (edges > 0.5).mean() <= 0.02
    assert (framed.reshape(len(framed), -1).max(1) > 0.8).all()
    long_side = np.array([np.diff(_box(x).reshape(2, 2), axis=0).max() for x in framed])
    if spec.framing == "emnist":  # box-centred, 2 px pad: the long side spans 24 px
        assert (np.abs(long_side - 24) <= 1).all()
        box_centres = np.array([_box(x).reshape(2, 2).mean(0) for x in framed])
        assert np.abs(box_centres - 14).max() <= 1
    else:  # 20x20 box, centre of mass at pixel 14
        assert (np.abs(long_side - 20) <= 1).all()
        assert np.abs(np.array([_centre_of_mass(x) for x in framed]) - 14).max() <= 0.3


def test_seeds_draw_other_pens_and_a_seed_the_same_pixels(sample, monkeypatch):
    pens = []
    real_style = chars_extra.random_char_style

    def record(rng):
        style = real_style(rng)
        pens.append(style.pen)
        return style

    monkeypatch.setattr(chars_extra, "random_char_style", record)
    looks = [chars_extra.render_chars(sample, EMNIST, seed=s, workers=1) for s in (1, 2, 1)]
    pen1, pen2, pen1_again = (np.array(pens[i * len(sample) : (i + 1) * len(sample)]) for i in range(3))
    assert np.array_equal(looks[0], looks[2]) and np.array_equal(pen1, pen1_again)
    assert not np.array_equal(looks[0], looks[1])
    assert np.mean(pen1 != pen2) > 0.99 and np.ptp(pen1) > 0.05  # a spread of pens, not one
    # The pen reaches the image: a thicker pen gives thicker ink (the framing's floor evens out only the
    # thinnest), for the same character drawn with the two seeds.
    widths = np.array([[_stroke_width(x / 255.0) for x in look] for look in looks[:2]])
    pen_diff, width_diff = pen2 - pen1, widths[1] - widths[0]
    big = np.abs(pen_diff) > 0.03
    assert big.sum() > 40 and np.mean(np.sign(width_diff[big]) == np.sign(pen_diff[big])) > 0.8


def test_worker_processes_and_chunks_draw_the_same_pixels(sample):
    one = chars_extra.render_chars(sample[:120], MNIST, seed=[7, 1], workers=1, chunk=50)
    two = chars_extra.render_chars(sample[:120], MNIST, seed=[7, 1], workers=2, chunk=50)
    assert np.array_equal(one, two)
    assert chars_extra.render_chars([], MNIST, seed=0).shape == (0, 28, 28)


def test_femnist_nist_forms_are_framed_like_emnist(real_data_dir):
    images, labels, users = chars_extra.load_femnist_nist(real_data_dir / "chars_extra" / "femnist_leaf_no_hsf4.npz")
    assert images.shape == (43_551, 28, 28) and images.dtype == np.uint8 and len(labels) == len(users) == len(images)
    # SOURCES.md: digits 28,026, capitals 8,073, small letters 7,452.
    assert [(labels < 10).sum(), ((labels >= 10) & (labels < 36)).sum(), (labels >= 36).sum()] == [28_026, 8_073, 7_452]
    some = images[::400] / 255.0
    assert some[:, [0, -1]].max() <= 0.1 and some[:, :, [0, -1]].max() <= 0.1  # ink bright, the 2 px pad blank
    assert np.median([np.diff(_box(x).reshape(2, 2), axis=0).max() for x in some]) in range(23, 26)


# --- how training takes them ------------------------------------------------------------------------


def test_a_digit_model_takes_only_the_digits_of_the_strokes(real_data_dir, sliced_unipen):
    cfg = replace(RECIPES["default"], looks=2)
    images, labels = _extra_images("unipen-chars", list(DIGITS), cfg, MNIST, real_data_dir, False)
    train = sliced_unipen(real_data_dir / "chars_extra" / "unipen_chars_strokes.npz", "train")
    digits = train.labels[train.labels < 10]
    assert 50 <= len(digits) < len(train)
    assert images.shape == (2, len(digits), 28, 28) and images.dtype == torch.uint8
    assert labels.tolist() == digits.tolist()  # ByClass's digits are 0-9: the same indices
    assert not torch.equal(images[0], images[1])  # two looks
    assert np.abs(np.array([_centre_of_mass(x) for x in images[0].numpy() / 255.0]) - 14).max() <= 0.3  # mnist framing


def test_labels_are_remapped_to_the_models_classes(real_data_dir, sliced_unipen):
    classes = ["x", "A", "3"]  # any model's order: labels follow it, other characters are left out
    images, labels = _extra_images("unipen-chars", classes, replace(RECIPES["default"], looks=1), EMNIST,
                                   real_data_dir, False)
    train = sliced_unipen(real_data_dir / "chars_extra" / "unipen_chars_strokes.npz", "train")
    wanted = [ALNUM[y] for y in train.labels if ALNUM[y] in classes]
    assert len(wanted) >= 3 and images.shape[:2] == (1, len(wanted))
    assert [classes[i] for i in labels.tolist()] == wanted
    with pytest.raises(ScrawlError, match="has none of"):
        _extra_images("unipen-chars", ["#"], RECIPES["default"], EMNIST, real_data_dir, False)


def test_a_digit_model_takes_the_digits_of_the_nist_forms_reframed(real_data_dir, monkeypatch):
    real_load = data_pkg.load_dataset

    def every_50th(name, split="train", data_dir=None, **kw):
        ds = real_load(name, split, data_dir, **kw)
        return replace(ds, images=ds.images[::50], labels=ds.labels[::50])

    monkeypatch.setattr(data_pkg, "load_dataset", every_50th)
    images, labels = _extra_images("femnist-nist", list(DIGITS), RECIPES["default"], MNIST, real_data_dir, False)
    nist = every_50th("femnist-nist", "train", real_data_dir)
    assert labels.tolist() == [y for y in nist.labels.tolist() if y < 10]
    assert images.shape == (len(labels), 28, 28)
    # EMNIST-framed forms, reframed like MNIST for a digit model: the centre of mass at 14.
    assert np.abs(np.array([_centre_of_mass(x) for x in images.numpy()[::10] / 255.0]) - 14).max() <= 0.3


def test_training_data_swaps_looks_per_epoch():
    base = torch.zeros(4, 28, 28, dtype=torch.uint8)
    looks = torch.stack([torch.full((3, 28, 28), 10 * (k + 1), dtype=torch.uint8) for k in range(3)])
    x = torch.cat([base, looks[0].clone()])
    y = torch.arange(7)
    data = TrainingData(x, y, x[:1], y[:1], list("0123456"), MNIST, looks=looks, looks_at=4)
    idx = torch.arange(7)
    for epoch in (0, 1, 2, 3, 5, 1):
        images, labels = data.train_batch(idx, epoch)
        assert torch.equal(labels, y)
        assert images[:4].max() == 0  # the rows before the looks never change
        expected = 10 * (epoch % 3 + 1) / 255.0
        assert torch.allclose(images[4:], torch.full_like(images[4:], expected))


def test_a_run_with_strokes_and_junk_has_its_looks_and_reject_class(real_data_dir, sliced_unipen):
    cfg = replace(RECIPES["default"], limit=300, extra_train=["unipen-chars"], looks=3, junk=0.1)
    data = load_training_data(cfg, real_data_dir, False)
    n_digits = data.extra_counts["unipen-chars"]
    assert data.classes == list(DIGITS) + [NOT_A_CHARACTER]
    assert data.looks.shape == (3, n_digits, 28, 28) and data.looks_at == 300
    assert torch.equal(data.x_train[300 : 300 + n_digits], data.looks[0])
    n_junk = data.extra_counts["not-a-character"]
    assert len(data.x_train) == 300 + n_digits + n_junk
    assert abs(n_junk - 0.1 / 0.9 * (300 + n_digits)) <= 3  # framing may drop an empty one
    assert (data.y_train[-n_junk:] == 10).all() and (data.y_train[: 300 + n_digits] < 10).all()
    rows = torch.arange(300, 300 + n_digits)
    images, _ = data.train_batch(rows, epoch=1)
    assert torch.equal((images[:, 0] * 255).round().to(torch.uint8), data.looks[1])


# --- fine-tuning ------------------------------------------------------------------------------------


def _ten_class_checkpoint(tmp_path):
    torch.manual_seed(1)
    old = build_model("fastnet", num_classes=10)
    card = {"arch": "fastnet", "model_config": {"num_classes": 10}, "classes": list(DIGITS),
            "frame": MNIST.to_dict()}
    return save_checkpoint(tmp_path / "ten.pt", card, old.state_dict()), old.state_dict()


@pytest.mark.parametrize("classes", [list(DIGITS) + [NOT_A_CHARACTER], [NOT_A_CHARACTER] + list(reversed(DIGITS))],
                         ids=["reject-last", "other-order"])
def test_init_copies_the_weights_and_matches_class_rows_by_label(tmp_path, classes):
    path, old = _ten_class_checkpoint(tmp_path)
    torch.manual_seed(2)
    model = build_model("fastnet", num_classes=11)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    _init_from(model, "fastnet", str(path), classes)
    new = model.state_dict()
    for key in old:
        if key.startswith("head."):
            for row, label in enumerate(classes):
                want = fresh[key][row] if label == NOT_A_CHARACTER else old[key][DIGITS.index(label)]
                assert torch.equal(new[key][row], want), (key, label)
        else:
            assert torch.equal(new[key], old[key]), key
    reject = classes.index(NOT_A_CHARACTER)
    assert not any(torch.equal(new["head.weight"][reject], old["head.weight"][i]) for i in range(10))


def test_init_matches_rows_by_label_when_only_the_order_differs(tmp_path):
    path, old = _ten_class_checkpoint(tmp_path)
    model = build_model("fastnet", num_classes=10)
    _init_from(model, "fastnet", str(path), list(reversed(DIGITS)))
    assert torch.equal(model.state_dict()["head.weight"], old["head.weight"].flip(0))


def test_init_refuses_another_architecture(tmp_path):
    path, _ = _ten_class_checkpoint(tmp_path)
    with pytest.raises(ScrawlError, match="fastnet model cannot start a scrawlnet run"):
        _init_from(build_model("scrawlnet", num_classes=11), "scrawlnet", str(path), list(DIGITS) + [NOT_A_CHARACTER])


# --- end to end -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_training_run_records_its_sources_and_reject_class(real_data_dir, tmp_path, sliced_unipen, capsys):
    path, old = _ten_class_checkpoint(tmp_path)
    out = tmp_path / "run"
    code = main(["train", "--model", "fastnet", "--limit", "300", "--epochs", "1", "--batch-size", "64",
                 "--extra-train", "unipen-chars", "--junk", "0.1", "--init", str(path), "--precision", "fp32",
                 "--no-progress", "--out", str(out), "--data-dir", str(real_data_dir)])
    assert code == 0, capsys.readouterr().err
    meta = load_checkpoint(out / "last.pt").meta
    assert meta["classes"] == list(DIGITS) + [NOT_A_CHARACTER]
    extra = meta["dataset"]["extra_train"]
    assert set(extra) == {"unipen-chars", "not-a-character"} and extra["unipen-chars"] >= 50
    assert meta["dataset"]["train_images"] == 300 + extra["unipen-chars"] + extra["not-a-character"]
    assert abs(extra["not-a-character"] - 0.1 / 0.9 * (300 + extra["unipen-chars"])) <= 3
    cfg = meta["train_config"]
    assert cfg["extra_train"] == ["unipen-chars"] and cfg["junk"] == 0.1 and cfg["init"] == str(path)
    assert meta["model_config"]["num_classes"] == 11
