"""The optimizer and the steps: how many, of which images, at which learning rate, and whether one is taken.

`StepPlan` lays a run out in steps (a fractional `epochs` ends part-way into the last pass), `lr_at`
is the learning rate of each step, `make_optimizer` builds AdamW (no decay on biases and norms) or Adam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ScrawlError
from .config import TrainConfig


@dataclass(frozen=True)
class StepPlan:
    images: int  # training images: one pass
    batch_size: int  # images per step, over all processes together
    steps_per_epoch: int  # full batches per pass: the ragged last batch is dropped (keeps batch-norm statistics sane)
    total_steps: int  # steps in the whole run
    epochs: int  # passes started; the last one may be part of a pass
    augmented_steps: int  # the first this-many steps are augmented (TrainConfig.augment_until)

    @classmethod
    def of(cls, cfg: TrainConfig, images: int, world: int = 1) -> "StepPlan":
        batch_size = min(cfg.batch_size, images)
        if batch_size < world:
            raise ScrawlError(f"a batch of {batch_size} images cannot be split between {world} processes: "
                              "use a batch size of at least the number of processes")
        steps_per_epoch = images // batch_size
        total = max(1, round(steps_per_epoch * cfg.epochs))
        return cls(images, batch_size, steps_per_epoch, total, -(-total // steps_per_epoch),
                   round(cfg.augment_until * total))

    def epoch_end(self, epoch: int) -> int:
        """One past the last step of pass `epoch` (from 0): the last pass may stop early."""
        return min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)

    def batch(self, order: torch.Tensor, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        """The indices of `step`'s images (the pass's `order` is a permutation): with several processes,
        this process's share of the global batch."""
        idx = order[step * self.batch_size : (step + 1) * self.batch_size]
        return idx[rank::world] if world > 1 else idx


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """The learning rate of `step` of `total`: constant, or one-cycle (linear warm-up from a tenth of the
    peak, then cosine decay to 0.2% of it)."""
    if cfg.schedule == "constant":
        return cfg.lr
    warm = max(1, int(cfg.warmup * total))
    if step < warm:
        return cfg.lr * (0.1 + 0.9 * step / warm)
    t = (step - warm) / max(1, total - warm)
    return cfg.lr * (0.002 + 0.998 * 0.5 * (1 + math.cos(math.pi * t)))


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        # No weight decay on biases and batch-norm parameters (standard practice, e.g. timm).
        decay = [p for p in model.parameters() if p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # fused: one kernel updates every parameter (the fast recipe's steps took about 15% less time).
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    raise ValueError(f"optimizer must be adamw or adam, not {cfg.optimizer!r}")


def step_if_finite(optimizer: torch.optim.Optimizer, model: torch.nn.Module, buffers: list[torch.Tensor]) -> bool:
    """Take the optimizer step if every gradient is a number; otherwise drop the gradients, put the
    model's buffers (batch-norm statistics) back to `buffers`, taken before the forward pass, and return
    False: one step with a NaN or inf would make every weight NaN for the rest of the run. After DDP's
    all-reduce every process has the same gradients, so all of them take the step or none does."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):  # one sync on a GPU
        optimizer.step()
        return True
    optimizer.zero_grad(set_to_none=True)
    for saved, buffer in zip(buffers, model.buffers()):
        buffer.copy_(saved)
    return False
