"""Training settings: `TrainConfig` (every choice of one run, stored in its checkpoints) and the named
`RECIPES` that `scrawl train --recipe` starts from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from ..errors import ScrawlError
from ..tasks import DEFAULT_TASK, TASKS
from .augment import AugmentConfig


@dataclass
class TrainConfig:
    dataset: str = "mnist"  # dataset name, see `scrawl data list`
    task: str = DEFAULT_TASK  # what the model learns, see scrawl.tasks: "classify" (one character per image)
    model: str = "scrawlnet"  # architecture, see scrawl.models.available_models()
    model_config: dict = field(default_factory=dict)  # extra architecture arguments, e.g. {"width": 32}
    epochs: float = 15  # passes over the training part; a fraction (3.5) ends the schedule part-way into the last
    batch_size: int = 128  # images per optimizer step, over all processes together
    optimizer: str = "adamw"  # "adamw" or "adam" (the Keras seed's)
    lr: float = 4e-3  # peak learning rate
    schedule: str = "onecycle"  # "onecycle" (linear warm-up, cosine decay) or "constant"
    warmup: float = 0.15  # fraction of all steps spent warming up (onecycle)
    weight_decay: float = 5e-4  # decoupled weight decay (AdamW)
    label_smoothing: float = 0.05  # softer targets: better calibrated confidences
    augment: dict | None = field(default_factory=lambda: AugmentConfig().to_dict())  # None = no augmentation
    # Share of the training steps that are augmented; the rest see the images as they are, so the last
    # steps fit the real data (YOLOX, Ge et al. 2021, turns its augmentation off for the last epochs).
    augment_until: float = 1.0
    val_fraction: float = 0.1  # held out from the training files for validation (the seed's 90/10)
    seed: int = 0  # seeds the split, the batch order, augmentation and initialisation
    precision: str = "auto"  # "bf16" autocast, "fp32", or "auto" (bf16 where the CPU or GPU does it natively)
    limit: int = 0  # use only this many training images (smoke runs); 0 = all
    # More datasets' train splits, framed like this model's data (scrawl.vision) and added to the
    # training part only (never to validation).
    extra_train: list = field(default_factory=list)
    # Negatives ("not a character": dots, dashes, blobs, scribbles, pairs, fragments; scrawl.data.junk)
    # added to the training part as this share of its size, with a reject class after the dataset's
    # classes (scrawl.labels.NOT_A_CHARACTER). 0: no reject class.
    junk: float = 0.0
    looks: int = 3  # extra datasets kept as pen strokes (unipen-chars) are drawn this many times; one look per epoch
    init: str = ""  # start from this checkpoint's weights (fine-tuning; a class it lacks starts fresh); "": random
    # Line models (task "ctc"): how the line images are made, see scrawl.training.lines.LineDataConfig
    # (None: its defaults).
    lines: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Raises ScrawlError naming the first setting that cannot train."""
        for name, ok, need in (("task", self.task in TASKS, f"one of {', '.join(TASKS)}"),
                               ("epochs", self.epochs > 0, "a positive number"),
                               ("batch_size", self.batch_size >= 1, "at least 1"),
                               ("lr", self.lr > 0, "positive"), ("limit", self.limit >= 0, "0 (all) or more"),
                               ("augment_until", 0 <= self.augment_until <= 1, "between 0 and 1"),
                               ("junk", 0 <= self.junk < 1, "at least 0 and below 1"), ("looks", self.looks >= 1, "at least 1"),
                               ("lines", self.lines is None or isinstance(self.lines, dict), "a mapping")):
            if not ok:
                raise ScrawlError(f"{name} must be {need}, not {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config a checkpoint stored; fields it lacks (`task` in runs written before tasks) take
        their defaults, fields this Scrawl does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


_LINE = TrainConfig(dataset="unipen-words", task="ctc", model="crnn",
                    model_config={"width": 24, "hidden": 128, "layers": 2}, epochs=4, batch_size=64, lr=2e-3,
                    warmup=0.05, weight_decay=1e-4, label_smoothing=0.0, val_fraction=0.1,
                    augment=AugmentConfig(rotate=0.0, scale=0.0, aspect=0.0, shear=0.0, translate=0.0,
                                          stroke=0.3, blur=0.15).to_dict(), augment_until=0.9, lines={})

# Named recipes. `default` makes the bundled digit model; `fast` is the seconds-to-99% recipe;
# `keras` trains the seed's network the way the seed notebook did (Adam 1e-3, no augmentation).
RECIPES: dict[str, TrainConfig] = {
    "default": TrainConfig(),
    # fastnet with pooling before batch norm, batch 128, light augmentation for the first 70% of the steps
    # (validation after 1 epoch, seeds 0-2: 99.13% against 99.03% augmenting throughout), label smoothing
    # 0.1. MNIST test 99.19-99.27% after 1 epoch (about 4 s of training), 99.48-99.59% after 3 (--epochs 3);
    # see benchmarks/time_to_accuracy.py.
    "fast": TrainConfig(model="fastnet", model_config={"pool_first": True}, epochs=1, batch_size=128, lr=8e-3,
                        warmup=0.2, label_smoothing=0.1, augment_until=0.7,
                        augment=AugmentConfig(rotate=8.0, scale=0.08, aspect=0.05, shear=0.15, translate=1.5,
                                              stroke=0.0, blur=0.0).to_dict()),
    # The bundled digits-lite model: fastnet trained like the default (the best epoch, by validation).
    "lite": TrainConfig(model="fastnet", epochs=20),
    # The line model before 2026-12-07 (issue 13): a CRNN read with CTC, trained on real UNIPEN words and
    # texts rendered from their pen strokes (two looks each), lines of 2-6 words of one writer, and
    # synthetic number lines made of MNIST training digits (scrawl.training.lines). Only the pen width and
    # blur are augmented per batch: the renders already vary slant, size, pen and paper. 4 passes: about an
    # hour on one core of the 2-core machine it was trained on.
    "line": _LINE,
    # The bundled line model of 7 December's afternoon: `line` (trained first, in OUT/line; --init PATH
    # starts from a model you have) fine-tuned for 2 more passes on renders made the way the framing now
    # shows a user's line: sloping lines levelled, the pen sized by the writer's word height.
    "line-tune": replace(_LINE, epochs=2, lr=1e-3, warmup=0.1, lines={"level": True, "writer_pen": True},
                         init="recipe:line"),
    # What `line-tune` makes (trained first, in OUT/line-tune, after `line` in OUT/line-tune/line), one more
    # pass over new looks of every line (look 2: line-tune saw 0 and 1), at a lower rate.
    "line-polish": replace(_LINE, epochs=1, lr=4e-4, warmup=0.05,
                           lines={"level": True, "writer_pen": True, "renditions": 1, "looks": 2},
                           init="recipe:line-tune"),
    # Two more passes from what `line-polish` makes (trained first, in OUT/line-polish), over looks 3 and 4
    # of every line; it still underfits (52% of its training lines read exactly in the last pass).
    # Validation exact 52.9% -> 54.6%.
    "line-more": replace(_LINE, epochs=2, lr=6e-4, warmup=0.05,
                         lines={"level": True, "writer_pen": True, "renditions": 2, "looks": 3},
                         init="recipe:line-polish"),
    # Two more passes from what `line-more` makes (trained first, in OUT/line-more), over looks 5 and 6, at
    # a lower rate; 54% of its training lines read exactly in the last pass. Validation exact 54.6% -> 55.4%.
    "line-extra": replace(_LINE, epochs=2, lr=4e-4, warmup=0.05,
                          lines={"level": True, "writer_pen": True, "renditions": 2, "looks": 5},
                          init="recipe:line-more"),
    # Two more passes from what `line-extra` makes (trained first, in OUT/line-extra), over looks 7 and 8,
    # with twice the synthetic number lines, half of them digit strings with every neighbour touching.
    # Validation exact 57.1% (not comparable to the 55.4% before: its 2,000 validation number lines are
    # drawn the same new way, with more touching strings).
    "line-numbers": replace(_LINE, epochs=2, lr=3e-4, warmup=0.05,
                            lines={"level": True, "writer_pen": True, "renditions": 2, "looks": 7,
                                   "numbers": 60000, "touching": 0.5},
                            init="recipe:line-extra"),
    # Two more passes from what `line-numbers` makes (trained first, in OUT/line-numbers), over looks 9 and
    # 10, the number lines as there. Validation exact 57.1% -> 57.6%; 24.6 min on 8 December's AVX-512
    # host, peak memory 3.3 GB.
    "line-refine": replace(_LINE, epochs=2, lr=3e-4, warmup=0.05,
                           lines={"level": True, "writer_pen": True, "renditions": 2, "looks": 9,
                                  "numbers": 60000, "touching": 0.5},
                           init="recipe:line-numbers"),
    # The bundled line model: two more passes from what `line-refine` makes (trained first, in
    # OUT/line-refine), over looks 11 and 12, with 25,000 lines of a writer's words side by side instead of
    # 15,000: long lines hold half the held-out writers' characters and read worst (CER 31% over 20
    # characters against 13-17%). Validation exact 57.6% -> 57.7%, held-out CER 23.2% -> 22.8%; 29.3 min on
    # 8 December's AVX-512 host, peak memory 3.6 GB.
    "line-phrases": replace(_LINE, epochs=2, lr=2.5e-4, warmup=0.05,
                            lines={"level": True, "writer_pen": True, "renditions": 2, "looks": 11,
                                   "numbers": 60000, "touching": 0.5, "phrases": 25000},
                            init="recipe:line-refine"),
    # Issue 15: the bundled digit models, fine-tuned from what `default` or `lite` makes (trained first, in
    # OUT/default or OUT/lite; --init PATH starts from a model you have) on MNIST plus the digits of UNIPEN's
    # writers from several countries (drawn from pen strokes, another look each epoch) and of NIST's forms,
    # with 8% negatives and a "not a character" class.
    "digits-tune": TrainConfig(epochs=4, lr=1e-3, warmup=0.1, extra_train=["unipen-chars", "femnist-nist"], junk=0.08,
                               init="recipe:default"),
    "lite-tune": TrainConfig(model="fastnet", epochs=4, lr=1e-3, warmup=0.1, extra_train=["unipen-chars", "femnist-nist"],
                             junk=0.08, init="recipe:lite"),
    # The character model before issue 15: the ByClass test half's train part only, 20 passes (~14 min).
    "chars-byclass": TrainConfig(dataset="emnist-byclass-testhalf", epochs=20,
                                 augment=AugmentConfig(rotate=10.0, scale=0.1, shear=0.2, translate=2.0,
                                                       stroke=0.2).to_dict()),
    # The bundled 62-class character model (issue 15): `chars-byclass` first (OUT/chars-byclass), then
    # fine-tuned on the ByClass train part plus UNIPEN's isolated characters drawn from their pen strokes
    # (another look each epoch) and NIST forms from EMNIST's training partitions, with 8% negatives and a
    # "not a character" class; the last 20% of the steps see the images as they are. Validation stays
    # in-domain (ByClass). It reads other writers far better than the ByClass-only model (UNIPEN's held-out
    # writers 65.7% -> 81.3%) for 1.2 points of held-out ByClass (87.1% -> 85.9%); 8 passes from scratch
    # over all of it (58 min) gave 86.5%, still rising.
    "chars": TrainConfig(dataset="emnist-byclass-testhalf", epochs=6, lr=1e-3, warmup=0.1,
                         extra_train=["unipen-chars", "femnist-nist"], junk=0.08, augment_until=0.8,
                         init="recipe:chars-byclass",
                         augment=AugmentConfig(rotate=10.0, scale=0.1, shear=0.2, translate=2.0, stroke=0.2).to_dict()),
    "keras": TrainConfig(model="baseline", epochs=10, optimizer="adam", lr=1e-3, schedule="constant",
                         weight_decay=0.0, label_smoothing=0.0, augment=None),
}
