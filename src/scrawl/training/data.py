"""A run's data in memory: the training and validation parts of its dataset as uint8 tensors, plus
any extra training datasets, framed the way the main dataset's images were (from the catalogue), and
negatives for a reject class (TrainConfig.junk).

An extra dataset kept as pen strokes (unipen-chars) is drawn `cfg.looks` times with another pen and
blur each time; each epoch trains on one of those looks (TrainingData.looks).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..errors import ScrawlError
from ..labels import NOT_A_CHARACTER
from ..vision import FrameSpec, to_input
from .config import TrainConfig


@dataclass
class TrainingData:
    """Images (N, H, W) uint8 with ink bright, labels (N,) int64, and what the model card says about them."""

    x_train: torch.Tensor  # the training part of the dataset, then every extra_train dataset's images
    y_train: torch.Tensor  # their class indices
    x_val: torch.Tensor  # held out from the dataset's own training files (never extra data)
    y_val: torch.Tensor
    classes: list[str]  # class index -> label
    spec: FrameSpec  # how the images are framed: what the model is trained to read
    extra_counts: dict[str, int] = field(default_factory=dict)  # images added from each extra_train dataset
    # Other looks of some training images: (K, M, H, W) uint8; epoch e trains on look e % K of rows
    # looks_at .. looks_at + M of x_train (None: every epoch sees the same images).
    looks: torch.Tensor | None = None
    looks_at: int = 0
    _look: int = 0  # the look x_train holds now

    def to(self, device: torch.device, rank: int = 0, world: int = 1) -> "TrainingData":
        """The tensors on `device` (moved once: batches are indexed and augmented there), validation
        sharded: process `rank` of `world` keeps every world-th image (their sums are all-reduced)."""
        return replace(self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
                       x_val=self.x_val[rank::world].contiguous().to(device),
                       y_val=self.y_val[rank::world].contiguous().to(device),
                       looks=None if self.looks is None else self.looks.to(device))

    # The interface the loop uses (LineTrainingData, scrawl.training.lines, has the same).
    @property
    def n_train(self) -> int:
        return len(self.x_train)

    @property
    def n_val(self) -> int:
        return len(self.x_val)

    def epoch_order(self, order: torch.Tensor, batch_size: int, epoch: int, seed: int) -> torch.Tensor:
        return order  # every image has the same size: any order batches as well as any other

    def micro_batches(self, idx: torch.Tensor, epoch: int) -> list[torch.Tensor]:
        """The batch `idx` in the pieces one forward pass takes: whole (every image is small)."""
        return [idx]

    def train_batch(self, idx: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (B, 1, H, W) float in [0, 1], labels) of training images `idx`, on the data's device."""
        if self.looks is not None and epoch % len(self.looks) != self._look:
            self._look = epoch % len(self.looks)
            self.x_train[self.looks_at : self.looks_at + self.looks.shape[1]] = self.looks[self._look]
        return to_input(self.x_train[idx]), self.y_train[idx]

    def val_batches(self, batch_size: int = 1000):
        """The validation images in batches: (images (B, 1, H, W) float, labels) pairs."""
        for i in range(0, len(self.x_val), batch_size):
            yield to_input(self.x_val[i : i + batch_size]), self.y_val[i : i + batch_size]

    def describe(self, cfg: TrainConfig) -> dict:
        """The model card's `dataset` entry (call it before sharding: it counts all validation images)."""
        return {"name": cfg.dataset, "train_images": len(self.x_train), "val_images": len(self.x_val),
                "extra_train": dict(self.extra_counts), "val_fraction": cfg.val_fraction, "split_seed": cfg.seed}


def load_training_data(cfg: TrainConfig, data_dir, progress: bool):
    """The training and validation data of `cfg` (on the CPU), split by `cfg.seed`: TrainingData, or
    for a line model (task "ctc") LineTrainingData."""
    from ..data import dataset_info, framing_of, load_dataset, split_train_val

    if cfg.task == "ctc" or dataset_info(cfg.dataset).kind == "lines":
        if cfg.task != "ctc" or dataset_info(cfg.dataset).kind != "lines":
            raise ScrawlError(f"task {cfg.task!r} cannot train on {cfg.dataset}: line models (task ctc) train on "
                              "line datasets (unipen-words), character models (classify) on character datasets")
        from .lines import load_line_training_data

        return load_line_training_data(cfg, data_dir, progress)

    data = load_dataset(cfg.dataset, "train", data_dir, progress=progress)
    train_idx, val_idx = split_train_val(len(data), cfg.val_fraction, cfg.seed)
    if cfg.limit:
        train_idx = train_idx[: cfg.limit]
        val_idx = val_idx[: max(500, cfg.limit // 9)]
    x_train, y_train = data.images[train_idx].contiguous(), data.labels[train_idx].contiguous()
    x_val, y_val = data.images[val_idx].contiguous(), data.labels[val_idx].contiguous()
    framing = framing_of(cfg.dataset)
    if framing is None:
        raise ScrawlError(f"{cfg.dataset}'s images are framed in a way no model is trained on: train on another "
                          f"dataset and add {cfg.dataset} to it with --extra-train")
    spec = FrameSpec(framing=framing)
    classes = list(data.classes)
    extra_counts, looks, looks_at = {}, None, 0
    for name in cfg.extra_train:
        images, labels = _extra_images(name, classes, cfg, spec, data_dir, progress)
        if images.ndim == 4:  # several looks of the same characters
            if looks is not None:
                raise ScrawlError("only one extra dataset of pen strokes can be added to a run")
            looks, looks_at, images = images, len(x_train), images[0].clone()
        x_train, y_train = torch.cat([x_train, images]), torch.cat([y_train, labels])
        extra_counts[name] = len(images)
    if cfg.junk:
        images = _junk_images(round(cfg.junk / (1 - cfg.junk) * len(x_train)), x_train, spec, cfg.seed)
        classes.append(NOT_A_CHARACTER)
        x_train = torch.cat([x_train, images])
        y_train = torch.cat([y_train, torch.full((len(images),), len(classes) - 1, dtype=torch.int64)])
        extra_counts["not-a-character"] = len(images)
    if len(x_train) < 2 or len(x_val) < 1:
        raise ScrawlError(f"{cfg.dataset}: too few images to train ({len(x_train)} for training, {len(x_val)} for validation)")
    return TrainingData(x_train, y_train, x_val, y_val, classes, spec, extra_counts, looks, looks_at)


def _extra_images(name: str, classes: list[str], cfg: TrainConfig, spec: FrameSpec, data_dir, progress: bool):
    """Dataset `name`'s train split as (images, labels in `classes`), framed to `spec`: only its
    characters that are among `classes` (a digit model takes the digits of a 62-class set). A dataset
    kept as pen strokes comes as (cfg.looks, N, H, W): each look drawn with another pen and blur."""
    from ..data import dataset_info, framing_of, load_dataset
    from ..vision import frame_batch

    info = dataset_info(name)
    if info.kind != "characters":
        raise ScrawlError(f"{name} does not hold single characters: it cannot add to a character model's data")
    extra_classes = list(info.classes)
    missing = [c for c in classes if c not in extra_classes]
    if missing == classes:
        raise ScrawlError(f"{name} has none of {cfg.dataset}'s classes: it cannot add to its training data")
    remap = torch.tensor([classes.index(c) if c in classes else -1 for c in extra_classes], dtype=torch.int64)
    if info.reader == "unipen-chars-npz":
        from ..data.chars_extra import load_unipen_chars, render_chars
        from ..data.download import ensure_files

        chars = load_unipen_chars(ensure_files(name, "train", data_dir)["arrays"], "train")
        chars = chars.subset(remap[torch.from_numpy(chars.labels)].numpy() >= 0)
        looks = [torch.from_numpy(render_chars(chars.strokes, spec, seed=[cfg.seed, k])) for k in range(cfg.looks)]
        return torch.stack(looks), remap[torch.from_numpy(chars.labels)]
    extra = load_dataset(name, "train", data_dir, progress=progress)
    keep = remap[extra.labels] >= 0
    images, labels = extra.images[keep], remap[extra.labels[keep]]
    if framing_of(name) != spec.framing:  # a foreign framing (None) or the other one: frame it like the main data
        images = torch.from_numpy((frame_batch(images.numpy(), spec) * 255).round().astype("uint8"))
    return images, labels


def _junk_images(n: int, chars: torch.Tensor, spec: FrameSpec, seed: int) -> torch.Tensor:
    """`n` negatives framed by `spec` (scrawl.data.junk), made with the training characters `chars`."""
    import numpy as np

    from ..data.junk import frame_junk, make_junk

    rng = np.random.default_rng([seed, 15])
    images, _ = make_junk(n, rng, chars.numpy())
    framed, _ = frame_junk(images, spec)
    return torch.from_numpy(framed)
