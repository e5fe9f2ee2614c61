"""Models: the registry of every architecture Scrawl can train, rebuilt from (arch name, config dict).

A model card stores `arch` and `model_config`; `build_model(arch, **config)` rebuilds the network
without any flags (the nanoGPT `GPTConfig(**model_args)` idea). `cnn` holds the character
classifiers: (B, 1, 28, 28) float images in [0, 1], ink bright -> logits (B, num_classes); `crnn` the
line recognizer: (B, 1, H, W) -> CTC logits (B, W / 4, num_classes). `fold`
folds batch norm into the convolutions for serving.
"""

from .cnn import Baseline, FastNet, ScrawlNet  # noqa: F401 (importing registers them)
from .crnn import CRNN  # noqa: F401
from .registry import available_models, build_model, count_parameters, model_task, register  # noqa: F401

__all__ = ["CRNN", "Baseline", "FastNet", "ScrawlNet", "available_models", "build_model", "count_parameters",
           "model_task", "register"]
