"""A line model's training data in memory: real UNIPEN words and texts rendered from their pen strokes,
lines of several words of one writer (their strokes side by side), and synthetic number lines composed
from MNIST training digits, as variable-width uint8 images, widened by the framing's LINE_STRETCH.

* `LineDataConfig`: how the images are made (height, renditions per word, share of paper-like looks,
  how many synthetic lines); stored in the run's TrainConfig (`lines`), so a resumed run rebuilds the
  same images.
* `LineTrainingData`: the same interface as `TrainingData` (the loop does not care which): batches are
  padded to their widest line, and every pass groups lines of similar width (`epoch_order`), so a batch
  rarely pads a short word to a long text.

Validation: UNIPEN writers kept apart by `writer_split` (no writer on both sides) plus synthetic numbers
from MNIST training digits held out by `split_train_val`; MNIST's test digits stay for the bar's test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np
import torch

from ..errors import ScrawlError
from ..labels import LINE_ALPHABET
from ..vision import FrameSpec, line_spec
from .config import TrainConfig

STRIDE = 4  # the CRNN's frames per pixel of width (scrawl.models.crnn); widths are padded to a multiple


class PackedLines:
    """Line images kept PNG-compressed in memory (lossless): the `line-tune` renders take 489 MB instead of
    1,095 MB (benchmarks/line_data_memory.py) for about 0.13 ms to decode a line (~1% of a training step).
    Indexing gives the uint8 (H, W) image; `widths` the images' widths without decoding."""

    def __init__(self, blobs: list, widths):
        self.blobs = blobs  # PNG bytes as uint8 arrays, one per line
        self.widths = np.asarray(widths, np.int64)

    @classmethod
    def pack(cls, images) -> "PackedLines":
        return cls([_png(im) for im in images], [im.shape[1] for im in images])

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> np.ndarray:
        return cv2.imdecode(self.blobs[i], cv2.IMREAD_UNCHANGED)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def subset(self, rows) -> "PackedLines":
        return PackedLines([self.blobs[i] for i in rows], self.widths[list(rows)])


def _png(image: np.ndarray) -> np.ndarray:
    ok, blob = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ScrawlError(f"could not compress a {image.shape} line image")
    return blob


@dataclass(frozen=True)
class LineDataConfig:
    height: int = 32  # line images' height in pixels (the model's input height)
    renditions: int = 2  # renderings of each training word, each in its own random style; pass e uses e % renditions
    looks: int = 0  # which renditions: k..k+renditions-1 (a run that goes on from another draws new looks)
    paper: float = 0.45  # share of renderings made to look like a photo of paper (the rest: a screen)
    numbers: int = 30000  # synthetic number lines per rendition (MNIST training digits; dates, amounts, ...)
    phrases: int = 15000  # lines of 2-6 random words of one writer side by side (long lines with spaces)
    touching: float = 0.35  # share of those that are plain digit strings with every neighbour touching
    val_numbers: int = 2000  # synthetic number lines for validation (held-out MNIST training digits)
    max_width: int = 3200  # training lines wider than this (after rendering) are left out
    # A batch's lines go through the network in pieces of at most this many columns (lines x padded
    # width), gradients summed: backward's activations grow with the columns; one step of 64 lines
    # 3,200 px wide takes 5.2 GB in one piece, 1.25 GB per 15-line piece (benchmarks/line_step_memory.py).
    max_columns: int = 48 * 1024
    # Off in `line` (trained before they existed), on in the stages after it (`line-phrases`: the bundled model):
    level: bool = False  # turn sloping UNIPEN lines level before rendering, as the framing levels a user's line
    writer_pen: bool = False  # size the pen against the writer's median word height, not the line's box

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LineTrainingData:
    """Lines as uint8 (height, W) images, ink bright, and their texts as class indices."""

    train: list  # renditions: each PackedLines (a list of uint8 (H, W) arrays is packed), one per training line
    y_train: torch.Tensor  # (N, Lmax) int64 class indices padded with -1
    val: list  # uint8 (H, W) arrays
    y_val: torch.Tensor  # (Nv, Lmax) int64
    classes: list[str]
    spec: FrameSpec
    counts: dict = field(default_factory=dict)  # lines from each source
    device: torch.device = torch.device("cpu")
    val_texts: list = field(default_factory=list)
    max_columns: int = LineDataConfig.max_columns  # see LineDataConfig

    def __post_init__(self):
        self.train = [r if isinstance(r, PackedLines) else PackedLines.pack(r) for r in self.train]

    @property
    def n_train(self) -> int:
        return len(self.train[0])

    @property
    def n_val(self) -> int:
        return len(self.val)

    def to(self, device: torch.device, rank: int = 0, world: int = 1) -> "LineTrainingData":
        """Images stay in host memory (batches are padded there, then moved); validation is sharded."""
        return replace(self, val=self.val[rank::world], y_val=self.y_val[rank::world].contiguous(),
                       val_texts=self.val_texts[rank::world], device=device)

    def describe(self, cfg: TrainConfig) -> dict:
        return {"name": cfg.dataset, "train_images": self.n_train, "val_images": self.n_val,
                "sources": dict(self.counts), "lines": dict(cfg.lines or {}), "split_seed": cfg.seed}

    def epoch_order(self, order: torch.Tensor, batch_size: int, epoch: int, seed: int) -> torch.Tensor:
        """`order` regrouped so each batch holds lines of similar width: sorted by width inside chunks of
        50 batches, then the batches shuffled (Hannun et al.'s SortaGrad idea, without the sorting pass)."""
        widths = torch.from_numpy(self.train[epoch % len(self.train)].widths)
        chunk, out = batch_size * 50, []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            out.append(part[torch.argsort(widths[part], stable=True)])
        order = torch.cat(out)
        full = len(order) // batch_size * batch_size
        blocks = order[:full].view(-1, batch_size)
        perm = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed * 104729 + epoch))
        return torch.cat([blocks[perm].reshape(-1), order[full:]])

    def micro_batches(self, idx: torch.Tensor, epoch: int) -> list[torch.Tensor]:
        """The batch `idx` cut, in order, into pieces of at most `max_columns` lines x padded width (a line
        wider than that goes alone): the optimizer step is the same, the peak memory bounded."""
        widths = self.train[epoch % len(self.train)].widths
        pieces, start, widest = [], 0, 0
        for k, i in enumerate(idx.tolist()):
            widest_then = max(widest, _padded(int(widths[i])))
            if k > start and (k + 1 - start) * widest_then > self.max_columns:
                pieces.append(idx[start:k])
                start, widest_then = k, _padded(int(widths[i]))
            widest = widest_then
        pieces.append(idx[start:])
        return pieces

    def train_batch(self, idx: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (B, 1, H, Wmax) float in [0, 1] on the device, targets (B, Lmax)) of lines `idx`."""
        images = self.train[epoch % len(self.train)]
        return self._pad([images[i] for i in idx.tolist()]), self.y_train[idx.cpu()].to(self.device)

    def val_batches(self, batch_size: int = 256):
        """Validation in batches of similar width, each at most `max_columns` lines x padded width (as a
        training piece: validation lines are not capped by max_width; a run that validated 256 lines of
        any width at once logged an 8.4 GB peak): (images, targets) pairs."""
        widths = np.array([_padded(im.shape[1]) for im in self.val], np.int64)
        order, start = np.argsort(widths, kind="stable"), 0
        while start < len(order):
            stop = min(start + batch_size, len(order))
            while stop - start > 1 and (stop - start) * widths[order[stop - 1]] > self.max_columns:
                stop = start + max(1, self.max_columns // int(widths[order[stop - 1]]))
            part = order[start:stop]
            yield self._pad([self.val[i] for i in part]), self.y_val[torch.from_numpy(part)].to(self.device)
            start = stop

    def _pad(self, images: list) -> torch.Tensor:
        width = max(_padded(im.shape[1]) for im in images)
        out = np.zeros((len(images), images[0].shape[0], width), np.uint8)
        for k, im in enumerate(images):
            out[k, :, : im.shape[1]] = im
        return torch.from_numpy(out).to(self.device).float().div_(255).unsqueeze(1)


def _padded(width: int) -> int:
    return -(-width // STRIDE) * STRIDE


def _targets(texts: list[str], classes: str) -> torch.Tensor:
    from ..data.lines import PAD, encode_text

    codes = [encode_text(t, classes) for t in texts]
    out = np.full((len(codes), max(1, max(len(c) for c in codes))), PAD, dtype=np.int64)
    for k, c in enumerate(codes):
        out[k, : len(c)] = c
    return torch.from_numpy(out)


def _number_texts(n: int, rng: np.random.Generator, touching: float) -> list[str]:
    """Synthetic number texts: a `touching` share of plain 2-12 digit strings (drawn touching, marked
    with a leading "="), the rest number-like texts (dates, amounts, phone numbers, ...; scrawl.data.synth)."""
    from ..data.synth import random_number_text

    return ["=" + "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(2, 13))))
            if rng.random() < touching else random_number_text(rng) for _ in range(n)]


def _phrases(words, rows: np.ndarray, n: int, rng: np.random.Generator, max_chars: int = 60) -> list:
    """n phrases: (rows, gaps) of 2-6 random words of one writer (writers drawn by their share of `rows`),
    at most `max_chars` characters; gaps of 0.25-0.7 of the writer's median word height."""
    by_writer: dict = {}
    for i in rows:
        by_writer.setdefault(str(words.writers[i]), []).append(int(i))
    names = sorted(by_writer)
    weights = np.array([len(by_writer[w]) for w in names], np.float64)
    out = []
    while len(out) < n:
        pool = by_writer[names[int(rng.choice(len(names), p=weights / weights.sum()))]]
        pick = [pool[int(k)] for k in rng.integers(0, len(pool), int(rng.integers(2, 7)))]
        while len(pick) > 1 and sum(len(str(words.labels[i])) + 1 for i in pick) > max_chars:
            pick.pop()
        if len(pick) > 1:
            out.append((tuple(pick), tuple(float(g) for g in rng.uniform(0.25, 0.7, len(pick) - 1))))
    return out


# What the rendering jobs draw from (and LineDataConfig's level and writer_pen): set before the worker
# processes fork, so they inherit it.
_SOURCES: dict = {}
_CHUNK = 1000  # lines per rendering job


def _render_job(job: tuple) -> PackedLines:
    """One job: (seed, what, items, height, paper) -> uint8 line images, packed (in the worker, so the
    main process never holds them raw). `what` "words": items are UNIPEN rows; "numbers" or
    "val_numbers": texts composed from that glyph bank."""
    from ..data.strokes import augment_paper, render_strokes
    from ..data.synth import TOUCHING_BAR_LAYOUT, compose_line
    from ..vision.framing import LINE_STRETCH

    seed, what, items, height, paper = job
    rng = np.random.default_rng(seed)
    level, writer_pen = _SOURCES.get("level", False), _SOURCES.get("writer_pen", False)
    out = []
    for item in items:
        if what == "words":
            image = _SOURCES["words"].render(int(item), height, rng=rng, level=level, writer_pen=writer_pen)
        elif what == "phrases":
            words = _SOURCES["words"]
            strokes, _ = words.phrase(item[0], item[1])
            first = int(item[0][0])
            image = render_strokes(strokes, height, rng=rng, min_extent=words.min_extent(first), level=level,
                                   pen_extent=float(words.writer_median_h[first]) if writer_pen else None)
        else:
            layout = TOUCHING_BAR_LAYOUT if item.startswith("=") else None
            image = compose_line(item.lstrip("="), _SOURCES[what], rng, height=height, layout=layout)
        image = augment_paper(image, rng, paper=paper)
        # widened like the framing widens a user's line (LINE_STRETCH), the margins included
        out.append(cv2.resize(image, (max(1, round(image.shape[1] * LINE_STRETCH)), height),
                              interpolation=cv2.INTER_LINEAR))
    return PackedLines.pack(out)


def _render_all(jobs: list, total: int, progress: bool) -> list:
    """Run the jobs (in 2 processes where the machine has 2 cores or more: rendering is a third of a
    line run's time), results in job order: the same images for any number of processes."""
    import multiprocessing as mp
    import os

    from tqdm.auto import tqdm

    out = []
    workers = min(2, os.cpu_count() or 1)
    with tqdm(total=total, desc="rendering lines", unit="line", disable=not progress, dynamic_ncols=True) as bar:
        if workers > 1 and "fork" in mp.get_all_start_methods():
            with mp.get_context("fork").Pool(workers) as pool:
                for images in pool.imap(_render_job, jobs):
                    out.append(images)
                    bar.update(len(images))
        else:
            for job in jobs:
                out.append(_render_job(job))
                bar.update(len(out[-1]))
    return out


def _join(parts: list) -> PackedLines:
    return PackedLines([b for p in parts for b in p.blobs], np.concatenate([p.widths for p in parts] or [[]]))


def _look_seed(seed: int, look: int) -> int:
    """The seed of rendition `look`'s jobs (+5 numbers, +7 phrases): looks 0 and 1 as the bundled model's
    runs drew them; later looks apart from those and from validation's (seed * 10 + 8, + 9)."""
    return seed * 10 + look if look < 2 else 1_000_000 * (seed + 1) + 10 * look


def _jobs(seed: int, what: str, items, height: int, paper: float) -> list:
    return [(seed * 1_000_003 + k, what, list(items[i : i + _CHUNK]), height, paper)
            for k, i in enumerate(range(0, len(items), _CHUNK))]


def load_line_training_data(cfg: TrainConfig, data_dir, progress: bool) -> LineTrainingData:
    """Render the run's lines (deterministic for cfg.seed). cfg.limit > 0: that many UNIPEN training
    words and a proportional share of numbers (smoke runs)."""
    from tqdm.auto import tqdm

    from ..data import load_dataset, split_train_val
    from ..data.download import ensure_files
    from ..data.lines import fits_ctc, load_unipen_words
    from ..data.synth import GlyphBank
    from ..labels import DIGITS

    lc = LineDataConfig(**(cfg.lines or {}))
    classes = LINE_ALPHABET
    path = ensure_files(cfg.dataset, "train", data_dir)["arrays"]
    words = load_unipen_words(path, alphabet=classes)
    train_rows, val_rows = words.writer_split(cfg.val_fraction, cfg.seed)  # whole writers
    mnist = load_dataset("mnist", "train", data_dir, progress=progress)
    m_train, m_val = split_train_val(len(mnist), 0.1, cfg.seed)
    n_numbers, n_val_numbers = lc.numbers, lc.val_numbers
    if cfg.limit:
        train_rows, val_rows = train_rows[: cfg.limit], val_rows[: max(200, cfg.limit // 9)]
        n_numbers = min(n_numbers, cfg.limit // 2)
        n_val_numbers = min(n_val_numbers, max(100, cfg.limit // 18))
    bank = GlyphBank.from_labels(mnist.images[m_train].numpy(), mnist.labels[m_train].tolist(), DIGITS)
    val_bank = GlyphBank.from_labels(mnist.images[m_val].numpy(), mnist.labels[m_val].tolist(), DIGITS)
    rng = np.random.default_rng(cfg.seed)
    number_texts = _number_texts(n_numbers, rng, lc.touching)
    val_number_texts = _number_texts(n_val_numbers, rng, lc.touching)
    n_phrases = min(lc.phrases, cfg.limit // 4) if cfg.limit else lc.phrases
    phrases = _phrases(words, train_rows, n_phrases, rng)
    parts = []  # (jobs, rendition or "val")
    for r in range(lc.renditions):
        base = _look_seed(cfg.seed, r + lc.looks)
        parts.append((_jobs(base, "words", train_rows, lc.height, lc.paper)
                      + _jobs(base + 5, "numbers", number_texts, lc.height, lc.paper)
                      + _jobs(base + 7, "phrases", phrases, lc.height, lc.paper), r))
    parts.append((_jobs(cfg.seed * 10 + 9, "words", val_rows, lc.height, 0.5)
                  + _jobs(cfg.seed * 10 + 8, "val_numbers", val_number_texts, lc.height, 0.5), "val"))
    _SOURCES.update(words=words, numbers=bank, val_numbers=val_bank, level=lc.level, writer_pen=lc.writer_pen)
    try:
        jobs = [job for part, _ in parts for job in part]
        total = lc.renditions * (len(train_rows) + n_numbers + len(phrases)) + len(val_rows) + n_val_numbers
        done = iter(_render_all(jobs, total, progress))
    finally:
        _SOURCES.clear()
    images = {which: _join([next(done) for _ in part]) for part, which in parts}
    renditions, val = [images[r] for r in range(lc.renditions)], list(images["val"])
    texts = ([str(t) for t in words.labels[train_rows]] + [t.lstrip("=") for t in number_texts]
             + [" ".join(str(words.labels[i]) for i in rows) for rows, _ in phrases])
    val_texts = [str(t) for t in words.labels[val_rows]] + [t.lstrip("=") for t in val_number_texts]
    # Lines CTC cannot align (too narrow for their text) or too wide to batch are left out.
    keep = [i for i, t in enumerate(texts)
            if all(fits_ctc(int(r.widths[i]), t, STRIDE) and r.widths[i] <= lc.max_width for r in renditions)]
    counts = {"unipen_words": len(train_rows), "mnist_numbers": n_numbers, "unipen_phrases": len(phrases),
              "left_out": len(texts) - len(keep),
              "val_unipen_words": len(val_rows), "val_mnist_numbers": n_val_numbers}
    spec = line_spec(lc.height)
    return LineTrainingData(train=[r.subset(keep) for r in renditions],
                            y_train=_targets([texts[i] for i in keep], classes), val=val,
                            y_val=_targets(val_texts, classes), classes=list(classes), spec=spec, counts=counts,
                            val_texts=val_texts, max_columns=lc.max_columns)

