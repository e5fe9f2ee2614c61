"""More real handwritten characters for the character and digit models (issue 15), from the shared data
folder's `chars_extra/` (described in its SOURCES.md):

* UNIPEN isolated characters (`unipen_chars_strokes.npz`): 88,907 digits and letters written on tablets
  by 281 writers, as pen strokes. `load_unipen_chars` reads them (suspect segments dropped) and splits
  them by writer; `render_chars` draws them with a random pen width, blur, slant and rotation and frames
  them exactly as a user's image is framed (scrawl.vision.frame), so one call with another seed gives
  another look of the same characters (training uses one look per epoch).
* NIST forms from EMNIST's training partitions (`femnist_leaf_no_hsf4.npz`, LEAF FEMNIST shards with the
  EMNIST test partition's writers removed), already framed like EMNIST: `load_femnist_nist`.

NumPy and OpenCV; torch only where a Dataset is built.
"""

from __future__ import annotations

import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import multiprocessing as mp
import numpy as np

from ..errors import DataError
from ..vision.framing import FrameSpec, frame_batch
from .strokes import StrokeStyle, render_strokes

# Writers held out of training as the "test" split (a seeded hash of the writer key, so the split never
# depends on the order of the file): about 1 in 10.
TEST_WRITERS_MOD = 10
RENDER_HEIGHT = 64  # strokes are drawn 64 px high before framing shrinks them to the model's box


@dataclass
class UnipenChars:
    """One split of the UNIPEN characters: strokes (one list of (P, 2) float arrays per character, y
    down), labels in EMNIST ByClass order (0-9, A-Z, a-z) and the writer key of each."""

    strokes: list
    labels: np.ndarray
    writers: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: np.ndarray) -> "UnipenChars":
        idx = np.flatnonzero(keep)
        return UnipenChars([self.strokes[i] for i in idx], self.labels[idx], self.writers[idx])


def test_writer(key: str) -> bool:
    """True for a writer of the held-out "test" split (CRC-32 of the key, so the same on every machine)."""
    return zlib.crc32(key.encode()) % TEST_WRITERS_MOD == 0


def load_unipen_chars(path: os.PathLike, split: str) -> UnipenChars:
    """The characters of `split` ("train", "test" or "all") of the UNIPEN npz at `path`, suspect ones dropped."""
    try:
        with np.load(path, allow_pickle=False) as z:
            points, stroke_len, n_strokes = z["points"], z["stroke_len"], z["n_strokes"]
            labels, suspect = z["y"].astype(np.int64), z["suspect"].astype(bool)
            writers = np.char.add(np.char.add(z["contrib"], ":"), z["writer_id"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a readable UNIPEN characters file: {exc}") from None
    if stroke_len.sum() != len(points) or n_strokes.sum() != len(stroke_len) or len(n_strokes) != len(labels):
        raise DataError(f"{path}: stroke counts do not add up ({len(points)} points, {len(stroke_len)} strokes, "
                        f"{len(labels)} characters)")
    ends = np.cumsum(stroke_len)
    strokes_all = np.split(points, ends[:-1])
    first = np.concatenate([[0], np.cumsum(n_strokes)[:-1]])
    chars = [strokes_all[f : f + n] for f, n in zip(first, n_strokes)]
    held = np.array([test_writer(w) for w in writers])
    keep = ~suspect & (labels >= 0) & (labels < 62)
    if split == "train":
        keep &= ~held
    elif split == "test":
        keep &= held
    elif split != "all":
        raise DataError(f"unknown split {split!r} of the UNIPEN characters (train, test or all)")
    return UnipenChars(chars, labels, writers).subset(keep)


def random_char_style(rng: np.random.Generator) -> StrokeStyle:
    """A tablet character's look: SOURCES.md's pen of 5-14% of the character's box (the box spans 80% of
    the render height), a blur of up to 1.5 render px, slant and rotation a writer might have."""
    return StrokeStyle(pen=float(rng.uniform(0.04, 0.11)), blur=float(rng.uniform(0.0, 1.5)),
                       slant=float(rng.uniform(-0.25, 0.25)), rotate=float(rng.uniform(-6.0, 6.0)), fill=0.8,
                       stretch=float(rng.uniform(0.85, 1.15)), offset=0.5)


def _render_part(args) -> np.ndarray:
    strokes, seed, spec = args
    rng = np.random.default_rng(seed)
    out = np.zeros((len(strokes), spec.size, spec.size), np.uint8)
    for i, s in enumerate(strokes):
        ink = render_strokes(s, RENDER_HEIGHT, random_char_style(rng), margin=0.1, supersample=2)
        framed = frame_batch(ink[None], spec)[0]
        out[i] = np.round(framed * 255).astype(np.uint8)
    return out


def render_chars(strokes: list, spec: FrameSpec, seed, workers: int = 2, chunk: int = 2000) -> np.ndarray:
    """Each character's strokes drawn in a random style (seeded) and framed by `spec` like a user's
    image: (N, size, size) uint8, ink bright. seed: an int or a list of ints (numpy's SeedSequence);
    `workers` processes share the work (1: in this process)."""
    parts = [(strokes[i : i + chunk], [*np.atleast_1d(seed).tolist(), i], spec) for i in range(0, len(strokes), chunk)]
    if workers <= 1 or len(parts) <= 1:
        results = [_render_part(p) for p in parts]
    else:
        # fork: the workers start at once and inherit the imported modules (no torch is needed there)
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            results = list(pool.map(_render_part, parts))
    if not results:
        return np.zeros((0, spec.size, spec.size), np.uint8)
    return np.concatenate(results)


def load_femnist_nist(path: os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8 framed like EMNIST, ink bright; labels in ByClass order; LEAF user ids)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels, users = z["x_emnist_style"], z["y"].astype(np.int64), z["user"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a readable FEMNIST file: {exc}") from None
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(f"{path}: expected (N, 28, 28) images with N labels, got {images.shape} and {labels.shape}")
    return np.ascontiguousarray(images, np.uint8), labels, users
