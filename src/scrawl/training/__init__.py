"""Training: `train(config, out_dir)` writes `best.pt` whenever validation accuracy improves and
`last.pt` after every epoch (and when stopped by Ctrl-C/SIGTERM, mid-epoch, with everything needed to
continue exactly); `resume=True` continues from `last.pt`. On the CPU or a GPU; started by torchrun,
the processes train one model together with DistributedDataParallel.

    config.py         TrainConfig (every setting of a run) and the named RECIPES
    loop.py           train(): prepare, resume, then train_one_epoch / validate / checkpoints per epoch
    stages.py         recipes in stages: an init of "recipe:NAME" trains that recipe first
    data.py           the run's images in memory (TrainingData), framed like the main dataset
    lines.py          a line model's data (LineTrainingData): UNIPEN words rendered from their strokes
                      and synthetic number lines, variable width, batched by similar width
    optim.py          the optimizer, the step plan and the learning-rate schedule
    checkpointing.py  RunState, best.pt / last.pt with the run's model card, resuming
    distributed.py    devices, precision, the torchrun process group and its agreement before training
    augment.py        batch augmentation (affine, elastic, stroke width, blur) in torch ops

The loop calls the task named by `TrainConfig.task` (scrawl.tasks) for targets, loss and figures.
"""

from ..errors import ScrawlError, TrainingInterrupted
from .augment import AugmentConfig, augment_batch
from .config import RECIPES, TrainConfig
from .distributed import resolve_device, resolve_precision
from .loop import predict_logits, predict_probs, train, train_one_epoch, validate
from .optim import lr_at

__all__ = ["RECIPES", "AugmentConfig", "ScrawlError", "TrainConfig", "TrainingInterrupted", "augment_batch",
           "lr_at", "predict_logits", "predict_probs", "resolve_device", "resolve_precision", "train",
           "train_one_epoch", "validate"]
