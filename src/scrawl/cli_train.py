"""`scrawl train`: its options and the command (the rest of the CLI is in scrawl.cli)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .errors import ScrawlError, TrainingInterrupted


def add_train(sub) -> argparse.ArgumentParser:
    t = sub.add_parser("train", help="train a model; writes best.pt and last.pt")
    t.add_argument("--recipe", default="default",
                   help="named settings: default, fast, lite, chars, keras, chars-byclass, digits-tune, lite-tune, "
                        "and the line model's stages line, line-tune, line-polish, line-more, line-extra, "
                        "line-numbers, line-refine, line-phrases (default: default)")
    t.add_argument("--dataset", help="dataset name (default: the recipe's, mnist)")
    t.add_argument("--task", help="what the model learns, see scrawl.tasks: classify (one character per image; "
                                  "the default) or ctc (a line of characters)")
    t.add_argument("--model", help="architecture: baseline, scrawlnet, fastnet, crnn (lines) (default: the recipe's)")
    t.add_argument("--epochs", type=_epochs, help="passes over the training data; a fraction such as 3.5 ends "
                                                   "the schedule part-way into the last (default: the recipe's)")
    t.add_argument("--batch-size", type=int, help="images per optimizer step (default: the recipe's, 128)")
    t.add_argument("--lr", type=float, help="peak learning rate")
    t.add_argument("--seed", type=int, help="makes a run repeatable on the same machine (default 0)")
    t.add_argument("--no-augment", action="store_true", help="train on the images as they are")
    t.add_argument("--augment-until", type=float, metavar="FRACTION",
                   help="augment only this share of the training steps, the first ones (default: the recipe's; "
                        "fast: 0.7, others: 1)")
    t.add_argument("--extra-train", action="append", metavar="DATASET",
                   help="add another dataset's train split to the training part, framed like the main dataset "
                        "(e.g. femnist-sample for a character model); repeatable")
    t.add_argument("--junk", type=float, metavar="SHARE",
                   help="add negatives (dots, dashes, scribbles, pairs...) as this share of the training images, "
                        "with a 'not a character' class (default: the recipe's; 0 = none)")
    t.add_argument("--init", metavar="CHECKPOINT",
                   help="start from this checkpoint's weights (fine-tuning); classes it lacks start fresh "
                        "(default: the recipe's; digits-tune, lite-tune and chars first train the recipe they "
                        "start from, into OUT/RECIPE)")
    t.add_argument("--precision", choices=["auto", "bf16", "fp32"],
                   help="bf16 autocast, fp32, or auto: bf16 where the CPU or GPU does it natively (default: auto)")
    t.add_argument("--limit", type=int, help="use only N training images (smoke runs)")
    t.add_argument("--threads", type=int, help="CPU threads for torch")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to train: auto (a GPU when there is one), cpu or cuda (default: auto)")
    t.add_argument("--out", default="runs/latest", help="output folder (default: runs/latest)")
    t.add_argument("--resume", action="store_true", help="continue exactly where OUT/last.pt stopped")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    return t  # scrawl.cli adds --data-dir, shared with other commands


def _epochs(text: str) -> int | float:
    """--epochs: a positive number, kept an int when it is one (so checkpoints say 4, not 4.0)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return int(value) if value.is_integer() else value


def cmd_train(args) -> int:
    from dataclasses import replace

    from .training import RECIPES, TrainConfig, train

    if args.recipe not in RECIPES:
        raise ScrawlError(f"unknown recipe {args.recipe!r}; choose one of: {', '.join(RECIPES)}")
    cfg: TrainConfig = RECIPES[args.recipe]
    overrides = {k: getattr(args, k) for k in ("dataset", "task", "model", "epochs", "batch_size", "lr", "seed", "precision",
                                               "limit", "augment_until", "junk", "init")
                 if getattr(args, k) is not None}
    if args.no_augment:
        overrides["augment"] = None
    if args.extra_train:
        overrides["extra_train"] = args.extra_train
    if args.resume and overrides:
        raise ScrawlError("--resume continues a run exactly, with the settings it was started with; "
                          "drop the other training options (--recipe may stay: a two-stage recipe needs it "
                          "when its first stage stopped)")
    if overrides.get("model") and overrides["model"] != cfg.model:
        overrides["model_config"] = {}  # the recipe's architecture settings belong to the recipe's model
    cfg = replace(cfg, **overrides)
    out = Path(args.out)
    if not args.resume and (out / "last.pt").exists():
        raise ScrawlError(f"{out} already holds a training run; use --resume to continue it or --out for a new folder")

    try:
        result = train(cfg, out, data_dir=args.data_dir, resume=args.resume, progress=not args.no_progress,
                       threads=args.threads, device=args.device)
    except TrainingInterrupted:
        if int(os.environ.get("RANK", "0") or 0) > 0:  # under torchrun, rank 0 says it for all
            return 130
        raise
    if result["rank"] > 0:
        return 0
    last = result["history"][-1] if result["history"] else {}
    print(f"best validation accuracy {result['best_val_acc']:.4f}; final epoch: {json.dumps(last)}")
    print(f"wrote {result['best']} and {result['last']}")
    return 0
