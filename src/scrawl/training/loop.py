"""The training loop: `train(cfg, out_dir)` prepares the data, model and optimizer, resumes if asked,
then runs `train_one_epoch` and `validate` for each pass and writes the checkpoints.

The task named by `cfg.task` (scrawl.tasks) batches the targets, computes the loss and the running and
validation figures; the loop itself knows nothing of classes. Data lives on the device as uint8 images,
batched by indexing and augmented as a whole batch. A first Ctrl-C/SIGTERM stops at the next step
boundary after writing a resumable last.pt. A step whose loss is not a number is not taken.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ScrawlError, TrainingInterrupted
from ..models import build_model, count_parameters
from ..runtime.checkpoint import Checkpoint
from ..tasks import Task, get_task
from ..tasks.base import BatchScore
from ..vision import to_input
from .augment import AugmentConfig, augment_batch
from .checkpointing import Checkpoints, RunState, load_last, make_card, resume_from
from .config import TrainConfig
from .data import TrainingData, load_training_data
from .distributed import (Group, agree, bound_kernel_cache, join_processes, rank_seed, resolve_device,
                          resolve_precision)
from .optim import StepPlan, lr_at, make_optimizer, step_if_finite
from .stages import needs_first_stage, run_first_stage

log = logging.getLogger(__package__)  # "scrawl.training", as the -v log lines have always said
MAX_BAD_STEPS = 20  # steps in a row whose loss is not a number (each skipped) before a run stops: it diverged


def train(cfg: TrainConfig, out_dir: str | Path, *, data_dir=None, resume: bool = False,
          progress: bool = True, threads: int | None = None, device: str = "auto") -> dict:
    """Train `cfg` into `out_dir` (best.pt, last.pt). Returns {"best", "last", "history", "best_val_acc",
    "rank", "world_size"}. With `resume`, the run in `out_dir` continues with its own saved settings
    (`cfg` is not used). `device`: "cpu", "cuda" or "auto" (a property of the run, not of the recipe, so
    it is not part of `cfg` or the checkpoint).

    Started by torchrun (WORLD_SIZE > 1), every process calls this and they train one model together
    with DistributedDataParallel: each step's global batch of `batch_size` images is split between the
    ranks and their gradients averaged, so a step is the single-process step (batch-norm statistics
    aside: each rank normalises its own part). Only rank 0 writes files, logs and shows progress.

    A `cfg.init` of "recipe:NAME" trains recipe NAME first, into OUT/NAME (scrawl.training.stages)."""
    out_dir = Path(out_dir)
    bound_kernel_cache()  # before the first convolution (line batches' many widths)
    if needs_first_stage(cfg, out_dir, resume):  # a recipe in stages (scrawl.training.stages)
        cfg = run_first_stage(cfg, out_dir, resume, train, data_dir=data_dir, progress=progress, threads=threads,
                              device=device)
        resume = False  # the second stage has not started
    group, dev = join_processes(resolve_device(device))
    try:
        return _train(cfg, out_dir, group, dev, data_dir=data_dir, resume=resume, progress=progress,
                      threads=threads)
    finally:
        group.close()


@dataclass
class Run:
    """What the steps of a run share once it is prepared."""

    cfg: TrainConfig
    task: Task
    group: Group
    device: torch.device
    data: TrainingData  # on `device`, validation sharded between the processes
    plan: StepPlan
    model: torch.nn.Module  # the bare model: what checkpoints hold and validation runs
    net: torch.nn.Module  # what training steps call: the model, or DistributedDataParallel around it
    optimizer: torch.optim.Optimizer
    augment: AugmentConfig | None  # None: no augmentation
    aug_gen: torch.Generator  # this process's augmentation random numbers
    use_bf16: bool  # bf16 autocast for the forward pass
    show: bool  # progress bar and per-epoch lines (rank 0, when asked)


def _train(cfg: TrainConfig, out_dir: Path, group: Group, device: torch.device, *, data_dir, resume: bool,
           progress: bool, threads: int | None) -> dict:
    # Settings, the run to resume, the data: everything that can fail, checked by every process together.
    start = _prepare(cfg, out_dir, group, device, data_dir=data_dir, resume=resume, progress=progress,
                     threads=threads)
    cfg, saved, task = start.cfg, start.saved, get_task(start.cfg.task)
    plan = StepPlan.of(cfg, start.data.n_train, group.world)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # The model: the same initial weights on every process (DDP also broadcasts rank 0's).
    torch.manual_seed(cfg.seed)
    model_config = {**task.model_config(start.data.classes), **cfg.model_config}
    model = build_model(cfg.model, **model_config)
    if saved is not None:
        model.load_state_dict(saved.state_dict)
    elif cfg.init:
        _init_from(model, cfg.model, cfg.init, start.data.classes)
    model = model.to(device=device, memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model)
    aug_gen = torch.Generator(device=device).manual_seed(rank_seed(cfg.seed, group.rank))
    if group.rank:  # dropout draws its own numbers on each process
        torch.manual_seed(rank_seed(cfg.seed, group.rank, "torch"))
    state = RunState() if saved is None else resume_from(saved, optimizer, aug_gen, group, device, cfg.seed)

    card = make_card(cfg, start.data, model_config, count_parameters(model), group, device)
    checkpoints = Checkpoints(out_dir, card, model, optimizer, aug_gen, group, device)
    run = Run(cfg=cfg, task=task, group=group, device=device, data=start.data.to(device, group.rank, group.world),
              plan=plan, model=model, net=_distribute(model, group, device), optimizer=optimizer,
              augment=start.augment, aug_gen=aug_gen, use_bf16=start.use_bf16, show=progress and group.main)

    with _StopFlag() as stop:
        while state.epoch < plan.epochs:
            steps, seconds = train_one_epoch(run, state, stop, checkpoints)
            improved = _end_epoch(run, state, steps, seconds)
            checkpoints.save_epoch(state, improved)
        group.barrier()  # every process returns once the files are written
    return {"best": checkpoints.best, "last": checkpoints.last, "history": state.history,
            "best_val_acc": state.best_val_acc, "rank": group.rank, "world_size": group.world}


def _init_from(model: torch.nn.Module, arch: str, path: str, classes: list[str]) -> None:
    """Fine-tuning: copy a checkpoint's weights into `model`. Its class rows (the output layer) are
    matched by label, so a model with a new class (the reject class) keeps what the old one learned and
    the new class starts from the fresh initialisation."""
    from ..runtime.checkpoint import load_checkpoint

    source = load_checkpoint(path)
    if source.card.arch != arch:
        raise ScrawlError(f"--init {path}: a {source.card.arch} model cannot start a {arch} run")
    old = list(source.card.classes)
    rows = [(i, old.index(c)) for i, c in enumerate(classes) if c in old]
    # The output layer (the model's last Linear) holds one row per class; everything else is copied as is.
    last = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    per_class = {f"{last}.weight", f"{last}.bias"}
    state = model.state_dict()
    for key, value in source.state_dict.items():
        if key not in state:
            raise ScrawlError(f"--init {path}: its weights do not fit this model ({key} is not in it)")
        if key in per_class and value.shape[:1] == (len(old),) and value.shape[1:] == state[key].shape[1:]:
            for new, was in rows:  # matched by label: a new class keeps its fresh row
                state[key][new] = value[was]
        elif value.shape == state[key].shape:
            state[key] = value
        else:
            raise ScrawlError(f"--init {path}: its weights do not fit this model ({key}: {tuple(value.shape)} "
                              f"against {tuple(state[key].shape)})")
    model.load_state_dict(state)


@dataclass
class _Start:
    cfg: TrainConfig  # the run's settings (a resumed run's own)
    saved: Checkpoint | None  # last.pt when resuming
    data: TrainingData  # on the CPU, whole
    use_bf16: bool
    augment: AugmentConfig | None


def _prepare(cfg: TrainConfig, out_dir: Path, group: Group, device: torch.device, *, data_dir, resume: bool,
             progress: bool, threads: int | None) -> _Start:
    """Everything that can fail before training, on every process; then the processes compare notes, so
    a problem on one (a missing file, other settings) stops them all with its message, none hangs."""
    failure: BaseException | None = None
    saved = data = use_bf16 = augment = None
    try:
        if group.main:
            _check_writable(out_dir)  # before loading data and training an epoch, not at the first checkpoint
        if resume:
            saved = load_last(out_dir / "last.pt", group)
            cfg = TrainConfig.from_dict(saved.card.train_config)
        cfg.check()
        if threads:
            torch.set_num_threads(threads)
        use_bf16 = resolve_precision(cfg.precision, device.type)
        augment = AugmentConfig(**cfg.augment) if cfg.augment else None
    except Exception as exc:  # noqa: BLE001 - reported to the other processes below, then raised
        failure = exc
    # The data: local rank 0 first, so a download happens once per machine.
    if group.local_rank != 0:
        group.barrier()
    if failure is None:
        try:
            data = load_training_data(cfg, data_dir, progress=progress and (group.main or group.local_rank == 0))
        except Exception as exc:  # noqa: BLE001
            failure = exc
    if group.local_rank == 0:
        group.barrier()
    position = None if saved is None else [saved.training_state["epoch"], saved.training_state["step"]]
    fingerprint = None if failure else {
        "train_config": cfg.to_dict(), "train_images": data.n_train, "val_images": data.n_val,
        "resume_at": position, "device": device.type}
    agree(group, failure, fingerprint)
    return _Start(cfg, saved, data, use_bf16, augment)


def _distribute(model: torch.nn.Module, group: Group, device: torch.device) -> torch.nn.Module:
    """The model as the training steps call it: wrapped in DistributedDataParallel with several processes."""
    if group.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    # Batch norm stays per process (no SyncBatchNorm): it has no CPU/gloo implementation, and each
    # process's share of a batch (64 of the default 128 with 2 processes) is plenty for its statistics.
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


# --- one pass ---------------------------------------------------------------------------------------

def train_one_epoch(run: Run, state: RunState, stop: "_StopFlag", checkpoints: Checkpoints) -> tuple[int, float]:
    """Steps `state.step` up to the end of pass `state.epoch`, adding to `state.score`; returns the steps
    taken and their seconds. A signal on any process stops every process after the same step, with
    last.pt written, by raising TrainingInterrupted."""
    from tqdm.auto import tqdm

    cfg, plan, group, epoch = run.cfg, run.plan, run.group, state.epoch
    first, end = state.step, plan.epoch_end(epoch)
    order = torch.randperm(plan.images, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
    order = run.data.epoch_order(order, plan.batch_size, epoch, cfg.seed).to(run.device)
    run.model.train()
    t0 = time.perf_counter()
    bar = tqdm(total=end, initial=first, desc=f"epoch {epoch + 1}/{plan.epochs}", disable=not run.show,
               leave=True, dynamic_ncols=True, unit="batch")
    bad = 0  # steps in a row not taken: their loss was not a number
    for step in range(first, end):
        idx = plan.batch(order, step, group.rank, group.world)
        score = train_step(run, idx, epoch, epoch * plan.steps_per_epoch + step)
        state.step, bad = step + 1, 0 if score is not None else bad + 1
        if score is not None:
            state.score.add(score)
        elif bad < MAX_BAD_STEPS:
            log.warning("epoch %d, step %d: the loss is not a number (NaN or inf); step not taken", epoch + 1, step + 1)
        else:
            bar.close()
            checkpoints.save_stopped(state)
            raise ScrawlError(f"training stopped at epoch {epoch + 1}, step {step + 1}: {bad} steps in a row had a "
                              f"loss that is not a number (NaN or inf), none of them taken; {checkpoints.last} holds "
                              "the weights before them. Try a lower --lr, or --precision fp32")
        bar.update(1)
        if run.show and (step % 10 == 0 or step == end - 1):
            rate = (step + 1 - first) * plan.batch_size / max(1e-9, time.perf_counter() - t0)
            bar.set_postfix(loss=f"{state.score.loss:.4f}", acc=f"{state.score.accuracy:.4f}",
                            img_s=f"{rate:.0f}", refresh=False)
        signum = group.max(stop.signum or 0)
        if signum:
            bar.close()
            checkpoints.save_stopped(state)
            how = "scrawl train" if group.world == 1 else "torchrun [the same options] -m scrawl train"
            raise TrainingInterrupted(f"stopped by {signal.Signals(signum).name} at epoch {epoch + 1}, step {step + 1}; "
                                      f"resume with: {how} --resume --out {checkpoints.folder}")
    bar.close()
    return end - first, time.perf_counter() - t0


def train_step(run: Run, idx: torch.Tensor, epoch: int, global_step: int) -> BatchScore | None:
    """One optimizer step on the images `idx` (this process's share of the batch); its running figures.
    The share goes through the network in the pieces the data cuts it into (`micro_batches`: long lines
    in several), their gradients summed, each piece's mean loss weighted by its share. None: not taken, as
    its gradients were not all numbers (one such step would make every weight NaN for the rest of the run)."""
    for param_group in run.optimizer.param_groups:
        param_group["lr"] = lr_at(run.cfg, global_step, run.plan.total_steps)
    run.optimizer.zero_grad(set_to_none=True)
    buffers = [b.clone() for b in run.model.buffers()]  # batch-norm statistics, which the forward pass moves
    # DDP averages the processes' gradients; weighting each one's mean by its share of the batch makes
    # that the mean over the whole global batch, even when shares differ by one.
    share = len(idx) * run.group.world / run.plan.batch_size if run.group.world > 1 else 1.0
    pieces = run.data.micro_batches(idx, epoch)
    score = BatchScore()
    for k, piece in enumerate(pieces):
        x, y = run.data.train_batch(piece, epoch)
        targets = run.task.collate(y)
        if run.augment is not None and global_step < run.plan.augmented_steps:
            x = augment_batch(x, run.augment, run.aug_gen)
        x = x.contiguous(memory_format=torch.channels_last)
        # DDP exchanges gradients on the last piece's backward only (each process has exactly one)
        sync = k == len(pieces) - 1 or run.group.world == 1
        with (contextlib.nullcontext() if sync else run.net.no_sync()):
            with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.use_bf16):
                logits = run.net(x)
            loss = run.task.loss(logits, targets, label_smoothing=run.cfg.label_smoothing)
            (loss * (share * len(piece) / len(idx))).backward()
        score.add(run.task.score(logits, targets, loss.item()))
    return score if step_if_finite(run.optimizer, run.model, buffers) else None


def _peak_memory() -> dict:
    """This process's peak resident memory so far, and the largest of its finished child processes' (the
    line renderers), in MB: what a training run needs, read from the kernel (where it keeps the count)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return {}
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "children_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def _end_epoch(run: Run, state: RunState, steps: int, seconds: float) -> bool:
    """Sum the pass's figures over the processes, validate, add the history row, move `state` to the next
    pass. True when validation accuracy is the best so far (ties go to the later pass: lower learning rate)."""
    group, epoch = run.group, state.epoch
    rank_images = [int(v) for v in group.gather(state.score.seen)]
    train_score = BatchScore.from_list(group.sum(state.score.as_list()))
    val = validate(run)
    state.history.append({"epoch": epoch + 1, "train_loss": train_score.loss, "train_acc": train_score.accuracy,
                          "val_loss": val.loss, "val_acc": val.accuracy, "lr": run.optimizer.param_groups[0]["lr"],
                          "seconds": round(seconds, 2), "images_per_s": round(steps * run.plan.batch_size / seconds, 1),
                          "world_size": group.world, "rank_images": rank_images, **_peak_memory()})
    if group.main:
        log.info("epoch %d/%d: train loss %.4f acc %.4f, val loss %.4f acc %.4f, %.1fs, peak memory %s MB", epoch + 1,
                 run.plan.epochs, train_score.loss, train_score.accuracy, val.loss, val.accuracy, seconds,
                 state.history[-1].get("peak_rss_mb", "?"))
    if run.show:
        from tqdm.auto import tqdm

        tqdm.write(f"epoch {epoch + 1}: val_loss {val.loss:.4f} val_acc {val.accuracy:.4f} ({seconds:.1f}s)")
    state.epoch, state.step, state.score = epoch + 1, 0, BatchScore()
    improved = val.accuracy >= state.best_val_acc  # the same on every process
    if improved:
        state.best_val_acc = val.accuracy
    return improved


# --- validation -------------------------------------------------------------------------------------

def validate(run: Run) -> BatchScore:
    """Validation loss and accuracy over every process's share (rank 0's batch-norm statistics on all),
    computed by the task in float32."""
    run.group.broadcast_buffers(run.model)
    mine = BatchScore()
    for x, y in run.data.val_batches():
        mine.add(run.task.validate(predict_logits(run.model, x), run.task.collate(y)))
    return BatchScore.from_list(run.group.sum(mine.as_list()))


def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The model's outputs in fp32 for (N, H, W) uint8 or (N, 1, H, W) float images, in eval mode.
    Batches go to the model's device; the result is on the images' device."""
    return _batched(model, images, batch_size, lambda out: out)


def predict_probs(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Softmax probabilities (N, C) of a classifier, in fp32, like `predict_logits`."""
    return _batched(model, images, batch_size, lambda out: torch.softmax(out, dim=1))


@torch.no_grad()
def _batched(model: torch.nn.Module, images: torch.Tensor, batch_size: int, then) -> torch.Tensor:
    model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else images.device
    out = []
    for i in range(0, len(images), batch_size):
        x = to_input(images[i : i + batch_size].to(device, non_blocking=True))
        out.append(then(model(x.contiguous(memory_format=torch.channels_last)).float()).to(images.device))
    return torch.cat(out) if out else torch.empty(0)


# --- stopping and the output folder -----------------------------------------------------------------

class _StopFlag:
    """Turns the first Ctrl-C / SIGTERM into a request to stop at the next step boundary."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ScrawlError(f"cannot write to the output folder {folder}: {exc.strerror or exc}") from None
