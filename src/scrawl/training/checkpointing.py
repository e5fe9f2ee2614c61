"""Where a run is (`RunState`), and its two files: `best.pt` whenever validation accuracy improves,
`last.pt` after every epoch and when stopped mid-epoch, with everything needed to continue exactly
(optimizer, every process's RNG states, position, running sums).

Both are ordinary checkpoints (scrawl.runtime.checkpoint) whose model card is built once per run;
only rank 0 writes them. `load_last` and `resume_from` read a run back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..errors import ScrawlError
from ..runtime.card import ModelCard
from ..runtime.checkpoint import Checkpoint, library_versions, load_checkpoint, save_checkpoint
from ..tasks.base import BatchScore
from .distributed import Group, rank_seed

log = logging.getLogger(__package__)  # "scrawl.training", as the -v log lines have always said


@dataclass
class RunState:
    """Where a run is: what each checkpoint records and resuming restores."""

    epoch: int = 0  # passes finished
    step: int = 0  # steps done in the current pass (non-zero only when stopped mid-epoch)
    best_val_acc: float = -1.0  # the best validation accuracy so far; -1 before the first validation
    history: list[dict] = field(default_factory=list)  # one row per finished pass
    score: BatchScore = field(default_factory=BatchScore)  # this process's running figures this pass


class Checkpoints:
    """best.pt and last.pt in `folder`: the run's model card, the bare model's weights (no DDP "module."
    prefix), and in last.pt the training state. Methods that gather from every process say so."""

    def __init__(self, folder: Path, card: ModelCard, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 aug_gen: torch.Generator, group: Group, device: torch.device):
        self.folder, self.card, self.model, self.optimizer = folder, card, model, optimizer
        self.aug_gen, self.group, self.device = aug_gen, group, device
        self.last, self.best = folder / "last.pt", folder / "best.pt"

    def save_epoch(self, state: RunState, improved: bool) -> None:
        """At the end of a pass (every process calls it): best.pt if validation improved, then last.pt."""
        rngs = self.rng_states()
        if self.group.main:
            if improved:
                self._save(self.best, state, None)
            self._save(self.last, state, self._training_state(state, rngs, None))

    def save_stopped(self, state: RunState) -> None:
        """Mid-epoch, stopped by a signal (every process calls it): last.pt with every process's running sums;
        returns once it is written, so no process exits (and makes torchrun stop the others) before."""
        rngs, rank_scores = self.rng_states(), self.group.gather(state.score.as_list())
        if self.group.main:
            self._save(self.last, state, self._training_state(state, rngs, rank_scores))
        self.group.barrier()

    def rng_states(self) -> list[dict]:
        """Every process's RNG states, gathered (a collective: every process calls it)."""
        mine = {"aug_rng": self.aug_gen.get_state(), "torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            mine["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return self.group.gather(mine)

    def _save(self, path: Path, state: RunState, training_state: dict | None) -> None:
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        card = replace(self.card, history=list(state.history),
                       metrics={"best_val_acc": state.best_val_acc} if state.best_val_acc >= 0 else {},
                       extra={**self.card.extra, "created": created, "epochs_done": state.epoch})
        save_checkpoint(path, card, self.model.state_dict(), training_state)

    def _training_state(self, state: RunState, rngs: list[dict], rank_scores: list[list] | None) -> dict:
        world = self.group.world
        rank_scores = rank_scores or [[0.0, 0, 0]] * world
        out = {"optimizer": _to_cpu(self.optimizer.state_dict()), "aug_rng": rngs[0]["aug_rng"],
               "torch_rng": rngs[0]["torch_rng"], "epoch": state.epoch, "step": state.step,
               "best_val_acc": state.best_val_acc, "sums": [sum(col) for col in zip(*rank_scores)],
               "world_size": world, "rng_device": self.device.type}
        if "cuda_rng" in rngs[0]:
            out["cuda_rng"] = rngs[0]["cuda_rng"]
        if world > 1:  # each process's own RNG states and running sums, for an exact resume
            out["rank_rng"], out["rank_sums"] = rngs, rank_scores
        return out


def make_card(cfg, data, model_config: dict, parameters: int, group: Group, device: torch.device) -> ModelCard:
    """The run's model card (`cfg` a TrainConfig, `data` its TrainingData before sharding); each
    checkpoint adds its history, best accuracy, time written and epochs done."""
    return ModelCard(arch=cfg.model, model_config=model_config, classes=list(data.classes), frame=data.spec,
                     task=cfg.task, dataset=data.describe(cfg), train_config=cfg.to_dict(), parameters=parameters,
                     extra={"run": {"world_size": group.world, "device": device.type, "backend": group.backend},
                            "versions": library_versions()})


def load_last(path: Path, group: Group) -> Checkpoint:
    """The last.pt a run resumes from; ScrawlError if there is none or it cannot be resumed."""
    try:
        saved = load_checkpoint(path)
    except ScrawlError as exc:
        if group.world > 1:  # every process reads last.pt: on several machines it must be shared or copied
            raise type(exc)(f"{exc} (process {group.rank}: with several machines, every machine needs "
                            "the --out folder: share it or copy it)") from None
        raise
    if not saved.training_state or saved.card.train_config is None:
        raise ScrawlError(f"{path} has no training state to resume from")
    return saved


def resume_from(saved: Checkpoint, optimizer: torch.optim.Optimizer, aug_gen: torch.Generator, group: Group,
                device: torch.device, seed: int) -> RunState:
    """Restore the optimizer and RNG states of `saved` (its weights are already in the model) and return
    where it stopped. Exact when it was written by as many processes on the same kind of device; otherwise
    the same batches follow from the same step, with fresh random numbers for augmentation and dropout."""
    ts = saved.training_state
    optimizer.load_state_dict(ts["optimizer"])
    state = RunState(epoch=ts["epoch"], step=ts["step"], best_val_acc=ts["best_val_acc"],
                     history=list(saved.card.history))
    saved_world, saved_device = ts.get("world_size", 1), ts.get("rng_device", "cpu")
    exact = saved_world == group.world and saved_device == device.type
    if exact and group.world > 1:
        state.score = BatchScore.from_list(ts["rank_sums"][group.rank])
    elif group.main:  # the saved sums are the sum over the processes that wrote them
        state.score = BatchScore.from_list(ts["sums"])
    if exact:  # every process gets its own RNG states back
        mine = ts["rank_rng"][group.rank] if group.world > 1 else ts
        aug_gen.set_state(mine["aug_rng"])
        torch.set_rng_state(mine["torch_rng"])
        if device.type == "cuda" and mine.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(mine["cuda_rng"], device)
    else:
        aug_gen.manual_seed(rank_seed(seed, group.rank, state.epoch, state.step))
        torch.manual_seed(rank_seed(seed, group.rank, "torch", state.epoch, state.step))
        if group.main:
            log.warning("%s was written by %d %s process(es), this run has %d on %s: it continues at the same "
                        "step with the same batches, but not bit-identically (new random numbers for "
                        "augmentation and dropout)", saved.path, saved_world, saved_device, group.world, device.type)
    if group.main:
        log.info("resuming %s at epoch %d step %d", saved.path, state.epoch + 1, state.step)
    return state


def _to_cpu(obj):
    """Tensors anywhere in a state dict -> CPU copies, so a checkpoint loads on any machine."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
