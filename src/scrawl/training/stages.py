"""Recipes in stages: a recipe whose `init` is "recipe:NAME" starts from the model recipe NAME makes,
which is trained first into OUT/NAME (skipped when it finished there, continued when it stopped part-way
and the run is resumed). `chars` fine-tunes what `chars-byclass` makes; `digits-tune` and `lite-tune`
what `default` and `lite` make; `line-phrases` what `line-refine` makes, which starts from `line-numbers`',
then `line-extra`'s, `line-more`'s, `line-polish`'s, `line-tune`'s and `line`'s (a chain: each stage in
the folder of the one after it). One command then reproduces a bundled model from nothing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

from ..errors import ScrawlError
from .config import TrainConfig

log = logging.getLogger(__package__)

STAGE = "recipe:"  # the prefix of an `init` that names a recipe


def needs_first_stage(cfg: TrainConfig, out_dir: Path, resume: bool) -> bool:
    """Whether `cfg` starts from a recipe's model that is not trained yet (a resumed second stage has
    its own last.pt and needs nothing)."""
    return cfg.init.startswith(STAGE) and not (resume and (out_dir / "last.pt").exists())


def run_first_stage(cfg: TrainConfig, out_dir: Path, resume: bool, train_fn, **options) -> TrainConfig:
    """Trains the recipe `cfg.init` names into OUT/NAME with `train_fn(cfg, out, resume=..., **options)`
    (its smoke-run settings limit, precision and seed taken from `cfg`) and returns `cfg` starting from
    its best.pt."""
    from ..runtime.checkpoint import load_checkpoint
    from .config import RECIPES

    name = cfg.init[len(STAGE):]
    if name not in RECIPES:
        raise ScrawlError(f"init {cfg.init}: no such recipe; choose one of: {', '.join(RECIPES)}")
    # A first stage with a first stage of its own trains that one first, into OUT/NAME/ITS_NAME (train_fn
    # comes back here): line-phrases <- line-refine <- line-numbers <- line-extra <- line-more <- line-polish
    # <- line-tune <- line.
    first = replace(RECIPES[name], limit=cfg.limit, precision=cfg.precision, seed=cfg.seed)
    stage = out_dir / name
    started = (stage / "last.pt").exists()
    if started and load_checkpoint(stage / "last.pt").card.extra.get("epochs_done", 0) >= math.ceil(first.epochs):
        log.info("first stage %s: finished in %s", name, stage)
        return replace(cfg, init=str(stage / "best.pt"))
    if started and not resume:
        raise ScrawlError(f"{stage} holds a first stage that stopped part-way; use --resume to continue it "
                          "or --out for a new folder")
    log.info("first stage: recipe %s -> %s", name, stage)
    train_fn(first, stage, resume=started, **options)
    return replace(cfg, init=str(stage / "best.pt"))
