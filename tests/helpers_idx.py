"""Test helpers: write tiny IDX datasets (MNIST / EMNIST layout) and glyphs whose orientation shows."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import zipfile
from pathlib import Path

import numpy as np

BALANCED_CLASSES = list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt")
LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 00 00 08 ndim, big-endian sizes, then the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = idx_bytes(array)
    path.write_bytes(gz(raw) if compress else raw)
    return path


def sha256(data: bytes | Path) -> str:
    if isinstance(data, Path):
        data = data.read_bytes()
    return hashlib.sha256(data).hexdigest()


def glyph_f(shift: int = 0) -> np.ndarray:
    """A 28x28 'F' (ink 255 on 0): not symmetric under transposition or flips."""
    img = np.zeros((28, 28), dtype=np.uint8)
    img[4:24, 7 + shift:10 + shift] = 255  # stem
    img[4:7, 7 + shift:21 + shift] = 255  # top bar
    img[12:15, 7 + shift:17 + shift] = 255  # middle bar
    return img


def mapping_text(classes: list[str], first_label: int = 0, letters: bool = False) -> bytes:
    """An EMNIST mapping file with CRLF line ends (as published)."""
    rows = []
    for i, c in enumerate(classes):
        label = first_label + i
        rows.append(f"{label} {ord(c)} {ord(c.lower())}" if letters else f"{label} {ord(c)}")
    return ("\r\n".join(rows) + "\r\n").encode("ascii")


def mnist_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def mnist_file_bytes(n_train: int = 20, n_test: int = 10) -> dict[str, bytes]:
    """The four MNIST .gz files (tiny, random) as {file name: bytes}."""
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = mnist_split(n, seed=n)
        out[MNIST_FILES[split][0]] = gz(idx_bytes(images))
        out[MNIST_FILES[split][1]] = gz(idx_bytes(labels))
    return out


def emnist_file_bytes(name: str, n: int = 6) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """Tiny official-layout files of an EMNIST dataset ("emnist-balanced" or "emnist-letters"), both splits.

    Images are stored TRANSPOSED, as EMNIST stores them. Returns ({file name: bytes},
    {split: upright images}). Labels in the file: i % classes (+1 for letters).
    """
    letters = name == "emnist-letters"
    classes = LETTERS if letters else BALANCED_CLASSES
    files: dict[str, bytes] = {f"{name}-mapping.txt": mapping_text(classes, 1 if letters else 0, letters)}
    upright: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        imgs = np.stack([glyph_f(shift=i % 5) for i in range(n)])
        labels = (np.arange(n) % len(classes) + (1 if letters else 0)).astype(np.uint8)
        upright[split] = imgs
        files[f"{name}-{split}-images-idx3-ubyte.gz"] = gz(idx_bytes(imgs.transpose(0, 2, 1)))
        files[f"{name}-{split}-labels-idx1-ubyte.gz"] = gz(idx_bytes(labels))
    return files, upright


def zip_bytes(members: dict[str, bytes], folder: str = "gzip/") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(folder + name, data)
    return buffer.getvalue()
