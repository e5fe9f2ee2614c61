"""Recognizer with the bundled digit model: the same digit gets the same answer however it arrives."""

import gzip
import io

import numpy as np
import pytest
from PIL import Image

from scrawl import Recognizer
from scrawl.errors import EmptyImageError, ImageError


@pytest.fixture(scope="module")
def rec():
    return Recognizer()


@pytest.fixture(scope="module")
def digits(real_data_dir):
    raw = gzip.open(real_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz").read()
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.open(real_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return images[:40], labels[:40]


def _png(array, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG")
    return buf.getvalue()


def _variants(img: np.ndarray) -> dict[str, object]:
    big = np.array(Image.fromarray(img).resize((280, 280), Image.BICUBIC))
    page = np.zeros((500, 700), np.uint8)
    page[300:440, 40:180] = np.array(Image.fromarray(img).resize((140, 140), Image.BICUBIC))
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = big  # black strokes on a transparent canvas
    rgba_white = rgba.copy()
    rgba_white[..., :3] = 255  # white strokes on a transparent canvas
    return {
        "scaled 10x": _png(big),
        "shifted on a big page": _png(page),
        "dark ink on white": _png(255 - big),
        "transparent canvas, black ink": _png(rgba, "RGBA"),
        "transparent canvas, white ink": _png(rgba_white, "RGBA"),
    }


@pytest.mark.realdata
def test_same_prediction_however_the_digit_arrives(rec, digits):
    images, labels = digits
    disagreements = []
    for img, label in zip(images, labels):
        plain = rec.predict(img).label
        for name, data in _variants(img).items():
            got = rec.predict(data).label
            if got != plain:
                disagreements.append((int(label), name, plain, got))
    # 40 digits x 5 variants: allow at most one borderline digit to flip.
    assert len(disagreements) <= 1, disagreements
    assert sum(rec.predict(img).label == str(lab) for img, lab in zip(images, labels)) >= 39


def test_prediction_shape_and_top_k(rec):
    img = np.zeros((100, 100), np.uint8)
    img[20:80, 45:55] = 255  # a bar: a '1'
    pred = rec.predict(img, top_k=4)
    assert pred.label == "1" and pred.top_k[0] == (pred.label, pred.confidence)
    assert len(pred.top_k) == 4 and [p for _, p in pred.top_k] == sorted((p for _, p in pred.top_k), reverse=True)
    assert pred.framed.shape == (28, 28)
    d = pred.to_dict()
    assert d["label"] == "1" and len(d["top_k"]) == 4


def test_blank_and_broken_images(rec):
    with pytest.raises(EmptyImageError):
        rec.predict(np.full((200, 200), 255, np.uint8))
    with pytest.raises(ImageError):
        rec.predict(b"not an image")


def test_charset_masks_the_answer(rec):
    from scrawl import cli
    from scrawl.runtime.recognizer import CHARSETS, charset_indices
    from scrawl.errors import ScrawlError

    assert set(cli.CHARSETS) == set(CHARSETS)  # the CLI's copy (kept to avoid importing torch) agrees
    img = np.zeros((100, 100), np.uint8)
    img[20:80, 45:55] = 255
    masked = rec.predict(img, top_k=10, charset="digits")
    assert all(c in CHARSETS["digits"] for c, _ in masked.top_k)
    # the digits and "not a character" (the bundled model has that class) share the probability
    assert abs(sum(p for _, p in masked.top_k) + masked.not_a_character - 1) < 1e-4
    with pytest.raises(ScrawlError, match="knows none"):
        rec.predict(img, charset="upper")
    with pytest.raises(ScrawlError, match="unknown charset"):
        charset_indices(rec.classes, "klingon")
    classes = list("0123456789ABCabc")
    assert charset_indices(classes, "upper") == [10, 11, 12]
    assert charset_indices(classes, "letters") == [10, 11, 12, 13, 14, 15]
    assert charset_indices(classes, None) is None


def test_charset_on_a_62_class_model_never_leaves_the_set(tmp_path):
    import torch

    from scrawl.runtime.checkpoint import save_checkpoint
    from scrawl.runtime.recognizer import CHARSETS, merge_map
    from scrawl.models import build_model

    classes = list(CHARSETS["alnum"])
    torch.manual_seed(0)
    meta = {"arch": "fastnet", "model_config": {"num_classes": 62, "width": 8}, "classes": classes,
            "frame": {"framing": "emnist", "size": 28, "box": 20}}
    path = save_checkpoint(tmp_path / "c.pt", meta, build_model("fastnet", num_classes=62, width=8).state_dict())
    rec62 = Recognizer(path)
    rng = np.random.default_rng(0)
    for name, allowed in CHARSETS.items():
        for _ in range(5):
            img = (rng.random((40, 40)) > 0.7).astype(np.uint8) * 255
            img[:5] = img[-5:] = 0
            pred = rec62.predict(img, top_k=5, charset=name)
            assert pred.label in allowed and all(c in allowed for c, _ in pred.top_k)
    merge = merge_map(classes)
    assert merge["o"] == "O" and merge["s"] == "S" and "a" not in merge and len(merge) == 15
