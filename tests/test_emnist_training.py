"""EMNIST's official protocol on made-up files: train on the official train split, evaluate on the
official test split, with letters' 1-based labels and transposed storage handled, and the
checkpoint remembering the EMNIST framing and class names."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers_idx import LETTERS, idx_bytes, mapping_text
from scrawl.runtime.checkpoint import load_checkpoint
from scrawl.runtime.recognizer import Recognizer
from scrawl.vision import FrameSpec, frame


def _glyph_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n upright 28x28 images of the letters A-Z in a Hershey font, jittered in place, size and pen."""
    labels = np.arange(n) % 26
    images = np.zeros((n, 28, 28), np.uint8)
    for i, k in enumerate(labels):
        scale = rng.uniform(0.75, 0.9)
        org = (int(rng.integers(3, 7)), int(rng.integers(21, 25)))
        cv2.putText(images[i], LETTERS[k], org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, int(rng.integers(1, 3)), cv2.LINE_AA)
    return images, labels


def _write_letters(root, rng):
    folder = root / "emnist"
    folder.mkdir(parents=True)
    (folder / "emnist-letters-mapping.txt").write_bytes(mapping_text(LETTERS, 1, True))
    upright = {}
    for split, n in (("train", 1560), ("test", 520)):
        images, labels = _glyph_images(n, rng)
        upright[split] = (images, labels)
        # Raw (un-gzipped) IDX in the official names: stored transposed, labels 1..26 as EMNIST does.
        (folder / f"emnist-letters-{split}-images-idx3-ubyte").write_bytes(idx_bytes(images.transpose(0, 2, 1).copy()))
        (folder / f"emnist-letters-{split}-labels-idx1-ubyte").write_bytes(idx_bytes((labels + 1).astype(np.uint8)))
    return upright


@pytest.mark.slow
def test_train_and_evaluate_on_official_layout_letters(tmp_path):
    data = tmp_path / "data"
    _write_letters(data, np.random.default_rng(0))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "scrawl", "train", "--dataset", "emnist-letters", "--recipe", "fast", "--epochs", "3",
           "--batch-size", "32", "--data-dir", str(data), "--out", str(run), "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ck = load_checkpoint(run / "best.pt")
    assert ck.meta["classes"] == LETTERS
    assert ck.meta["frame"]["framing"] == "emnist"
    assert ck.meta["dataset"]["train_images"] == 1404  # 90% of the official train split
    out = tmp_path / "report"
    r = subprocess.run([sys.executable, "-m", "scrawl", "evaluate", str(run / "best.pt"), "--dataset", "emnist-letters",
                        "--data-dir", str(data), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 520  # the official test split, untouched by training
    assert metrics["accuracy"] > 0.9, metrics["accuracy"]


def test_recognizer_frames_the_way_its_checkpoint_says(tmp_path):
    import torch

    from scrawl.runtime.checkpoint import save_checkpoint
    from scrawl.models import build_model

    torch.manual_seed(0)
    img = np.zeros((120, 90), np.uint8)
    img[10:110, 20:35] = 255
    img[10:25, 20:80] = 255  # an 'F'-ish glyph
    for framing in ("mnist", "emnist"):
        meta = {"arch": "fastnet", "model_config": {"num_classes": 26, "width": 8}, "classes": LETTERS,
                "frame": FrameSpec(framing=framing).to_dict()}
        path = save_checkpoint(tmp_path / f"{framing}.pt", meta, build_model("fastnet", num_classes=26, width=8).state_dict())
        got = Recognizer(path).predict(Image.fromarray(img)).framed
        np.testing.assert_allclose(got, frame(img, FrameSpec(framing=framing)), atol=1e-6)
    # and the two framings really differ (EMNIST fills the frame, MNIST a 20x20 box)
    assert np.abs(frame(img, FrameSpec("mnist")) - frame(img, FrameSpec("emnist"))).mean() > 0.05
