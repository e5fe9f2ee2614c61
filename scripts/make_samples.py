"""Make the sample images bundled in src/scrawl/assets/samples (what `make demo` reads).

Each sample is the first digit of its class in the MNIST test set, rendered the ways users' images
arrive: dark ink on white paper, a transparent canvas drawing, a JPEG photo with uneven light and
noise, off-centre and small, in every supported file format. The file name starts with the true digit.

    python scripts/make_samples.py [--data-dir ../shared/data]
"""

import argparse
import gzip
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "src" / "scrawl" / "assets" / "samples"


def mnist_test(data_dir: Path):
    images = np.frombuffer(gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    labels = np.frombuffer(gzip.open(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return images.reshape(-1, 28, 28), labels


def big(img: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    images, labels = mnist_test(args.data_dir)
    first = {d: images[np.argmax(labels == d)] for d in range(10)}
    rng = np.random.default_rng(0)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()

    ink = {d: big(first[d], 280) for d in range(10)}  # white ink on black, 280x280
    paper = {d: 255 - ink[d] for d in range(10)}  # dark ink on white
    Image.fromarray(paper[0]).save(OUT / "0-paper.png")
    Image.fromarray(ink[1]).save(OUT / "1-white-on-black.png")
    rgba = np.zeros((280, 280, 4), np.uint8)  # a canvas drawing: black strokes on transparency
    rgba[..., 3] = ink[2]
    Image.fromarray(rgba, "RGBA").save(OUT / "2-canvas-transparent.png")
    # A photo: blue ink on paper lit from one side, sensor noise, JPEG.
    h = w = 360
    light = np.linspace(150, 245, w)[None, :].repeat(h, 0)
    digit = np.zeros((h, w), np.float32)
    digit[40:320, 40:320] = ink[3] / 255.0
    noise = rng.normal(0, 6, (h, w))
    base = light + noise
    photo = np.stack([base * (1 - 0.55 * digit), base * (1 - 0.45 * digit), base * (1 - 0.15 * digit)], -1)
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(OUT / "3-photo.jpg", quality=85)
    Image.fromarray(255 - first[4]).save(OUT / "4-small.bmp")
    Image.fromarray(paper[5]).convert("P").save(OUT / "5-paper.gif")
    Image.fromarray(paper[6]).save(OUT / "6-paper.tiff")
    Image.fromarray(paper[7]).save(OUT / "7-paper.webp", lossless=True)
    canvas = np.full((600, 800), 255, np.uint8)  # small and off-centre on a big page
    canvas[60:200, 520:660] = 255 - big(first[8], 140)
    Image.fromarray(canvas).save(OUT / "8-off-centre.png")
    grey = np.full((300, 200, 3), 230, np.uint8)  # narrow grey page, dark pencil
    grey[10:290, :, :] = np.minimum(grey[10:290], (255 - 0.8 * cv2.resize(first[9], (200, 280)))[..., None]).astype(np.uint8)
    Image.fromarray(grey).save(OUT / "9-pencil.png")
    print(f"wrote {len(list(OUT.iterdir()))} samples to {OUT}")


if __name__ == "__main__":
    main()
