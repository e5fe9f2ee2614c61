"""Loading a dataset split into memory (`load_dataset` -> `Dataset`) and cutting train/validation parts
(`split_train_val`).

`load_dataset` looks the name up in the catalogue and hands it to the entry's reader: ``idx`` (official
MNIST/EMNIST files, fetched by `ensure_files`), ``resplit`` (a fixed cut of another dataset's split) or
``leaf-npz`` (LEAF's FEMNIST sample). Every reader returns the same thing: images ``(N, 28, 28) uint8``,
upright (EMNIST's transposed storage is undone), ink bright on a 0 background, labels ``int64`` from 0,
and the class names. torch is imported inside the functions.
"""

from __future__ import annotations

import logging
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from .catalogue import DatasetInfo, check_split, dataset_info
from .download import ensure_files
from .idx import read_idx, read_mapping

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a dataset, in memory.

    images: (N, 28, 28) uint8, upright, ink bright (high) on a dark 0 background, like MNIST.
    labels: (N,) int64, 0-based class indices into `classes`.
    classes: class index -> character.
    """

    name: str
    split: str
    images: torch.Tensor = field(repr=False)
    labels: torch.Tensor = field(repr=False)
    classes: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, classes={len(self.classes)})"


def classes_for(info: DatasetInfo, mapping: Path | None) -> list[str]:
    """The class list: the catalogue's, checked against the dataset's mapping file where there is one."""
    if mapping is None:
        return list(info.classes)
    classes = read_mapping(mapping)
    if tuple(classes) != info.classes:
        raise DataError(
            f"{mapping}: does not match the official {info.name} mapping "
            f"(expected {len(info.classes)} classes {''.join(info.classes)!r}, "
            f"got {len(classes)} {''.join(classes)!r}). "
            "Delete it (Scrawl then uses its built-in list) or replace it with the official file."
        )
    return classes


def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None, *,
                 download: bool = True, mirrors: list[str] | None = None, progress: bool = False) -> Dataset:
    """Load one split as a `Dataset` (images upright, uint8; labels int64 from 0), downloading the
    files first if needed (see `ensure_files`)."""
    info = dataset_info(name)
    if info.kind == "lines":
        raise DataError(f"{info.name} holds lines of handwriting, not single characters: read it with "
                        "scrawl.data.lines (load_unipen_words)")
    check_split(info, split)
    fetch = {"download": download, "mirrors": mirrors, "progress": progress}
    if info.reader == "resplit":
        return _load_resplit(info, split, data_dir, fetch)
    if info.reader == "leaf-npz":
        return _load_leaf_npz(info, split, data_dir)
    if info.reader in ("unipen-chars-npz", "femnist-npz"):
        return _load_chars_extra(info, split, data_dir)
    return _load_idx(info, split, data_dir, fetch)


def _load_resplit(info: DatasetInfo, split: str, data_dir, fetch: dict) -> Dataset:
    cut = info.resplit
    full = load_dataset(cut.source, cut.split, data_dir, **fetch)
    train_idx, test_idx = split_train_val(len(full), cut.test_fraction, cut.seed)
    idx = train_idx if split == "train" else test_idx
    return Dataset(name=info.name, split=split, images=full.images[idx].contiguous(),
                   labels=full.labels[idx].contiguous(), classes=full.classes)


def _load_idx(info: DatasetInfo, split: str, data_dir, fetch: dict) -> Dataset:
    import torch

    paths = ensure_files(info.name, split, data_dir, **fetch)
    images = read_idx(paths["images"], ndim=3)
    labels = read_idx(paths["labels"], ndim=1)
    classes = classes_for(info, paths.get("mapping"))
    if images.shape[1:] != (28, 28):
        raise DataError(f"{paths['images']}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{paths['images']} holds {images.shape[0]} images but {paths['labels']} holds {labels.shape[0]} "
            "labels: the two files do not belong together. Replace them with a matching pair."
        )
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        first = info.label_offset
        if low < first or high - first >= len(classes):
            raise DataError(
                f"{paths['labels']}: labels run from {low} to {high}, but {info.name} has labels "
                f"{first}..{first + len(classes) - 1}: the file does not belong to this dataset"
            )
    if info.transposed:
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    label_tensor = torch.from_numpy(labels.astype(np.int64))
    if info.label_offset:
        label_tensor -= info.label_offset
    counts = info.counts.get(split)
    if counts is not None and counts != len(labels):
        log.warning("%s %s has %d samples; the official split has %d", info.name, split, len(labels), counts)
    log.info("loaded %s %s: %d images, %d classes", info.name, split, len(labels), len(classes))
    return Dataset(name=info.name, split=split, images=torch.from_numpy(images), labels=label_tensor,
                   classes=classes)


def _load_leaf_npz(info: DatasetInfo, split: str, data_dir) -> Dataset:
    import torch

    path = ensure_files(info.name, split, data_dir)["arrays"]
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a readable FEMNIST sample: {exc}") from None
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(f"{path}: expected (N, 28, 28) images with N labels, got {images.shape} and {labels.shape}")
    # LEAF stores dark ink on white (255 = background): flip to Scrawl's ink-bright convention.
    images = 255 - images.astype(np.uint8)
    return Dataset(name=info.name, split=split, images=torch.from_numpy(np.ascontiguousarray(images)),
                   labels=torch.from_numpy(labels.astype(np.int64)), classes=list(info.classes))


def _load_chars_extra(info: DatasetInfo, split: str, data_dir) -> Dataset:
    """UNIPEN characters (drawn once, seed 0, and framed like EMNIST) or the FEMNIST NIST forms."""
    import torch

    from ..vision.framing import FrameSpec
    from .chars_extra import load_femnist_nist, load_unipen_chars, render_chars

    path = ensure_files(info.name, split, data_dir)["arrays"]
    if info.reader == "femnist-npz":
        images, labels, _ = load_femnist_nist(path)
    else:
        chars = load_unipen_chars(path, split)
        images, labels = render_chars(chars.strokes, FrameSpec(framing="emnist"), seed=0), chars.labels
    return Dataset(name=info.name, split=split, images=torch.from_numpy(images),
                   labels=torch.from_numpy(labels.astype(np.int64)), classes=list(info.classes))


def split_train_val(n: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split range(n) into (train_idx, val_idx): a seeded random permutation (torch.Generator, so the
    same seed gives the same split on any machine), round(n * val_fraction) indices for validation.
    Both are sorted int64 tensors, disjoint, and together cover range(n)."""
    import torch

    try:
        n = operator.index(n)
    except TypeError:
        raise DataError(f"cannot split {n!r} samples: need a whole number") from None
    if n < 0:
        raise DataError(f"cannot split {n} samples: need a count of at least 0")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise DataError(f"validation fraction must be at least 0 and below 1, got {val_fraction}")
    n_val = min(n, int(round(n * float(val_fraction))))
    generator = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=generator, dtype=torch.int64)
    val_idx, _ = torch.sort(perm[:n_val])
    train_idx, _ = torch.sort(perm[n_val:])
    return train_idx, val_idx
