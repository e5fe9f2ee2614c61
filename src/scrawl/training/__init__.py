"""Training: data in memory as uint8 tensors, batched by indexing, augmented on the whole batch.

`train(config, out_dir)` writes `last.pt` after every epoch (and when stopped by Ctrl-C/SIGTERM,
mid-epoch, with everything needed to continue exactly: optimizer, RNG states, position, running
sums) and `best.pt` whenever validation accuracy improves. `resume=True` continues from `last.pt`.

`device` picks the CPU or a GPU (CUDA: the data, batching and augmentation all live on the GPU).
Started by torchrun, the processes train one model together with DistributedDataParallel (gloo on
CPUs, NCCL on GPUs); only rank 0 writes checkpoints, which are ordinary single-process checkpoints.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from .augment import AugmentConfig, augment_batch
from ..runtime.checkpoint import library_versions, load_checkpoint, save_checkpoint
from ..errors import ScrawlError, TrainingInterrupted  # noqa: F401 (re-exported)
from ..models import build_model, count_parameters

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    dataset: str = "mnist"  # dataset name, see `scrawl data list`
    model: str = "scrawlnet"  # architecture, see scrawl.models.available_models()
    model_config: dict = field(default_factory=dict)  # extra architecture arguments, e.g. {"width": 32}
    epochs: float = 15  # passes over the training part; a fraction (3.5) ends the schedule part-way into the last
    batch_size: int = 128  # images per optimizer step
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
    extra_train: list = field(default_factory=list)  # more datasets' train splits, reframed to this model's
    # framing by scrawl.preprocess and added to the training part only (never to validation)

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Raises ScrawlError naming the first setting that cannot train."""
        for name, ok, need in (("epochs", self.epochs > 0, "a positive number"),
                               ("batch_size", self.batch_size >= 1, "at least 1"),
                               ("lr", self.lr > 0, "positive"), ("limit", self.limit >= 0, "0 (all) or more"),
                               ("augment_until", 0 <= self.augment_until <= 1, "between 0 and 1")):
            if not ok:
                raise ScrawlError(f"{name} must be {need}, not {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


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
    # The bundled 62-class character model: EMNIST ByClass's test half, re-split (see scrawl.data.RESPLITS).
    "chars": TrainConfig(dataset="emnist-byclass-testhalf", epochs=20,
                         augment=AugmentConfig(rotate=10.0, scale=0.1, shear=0.2, translate=2.0, stroke=0.2).to_dict()),
    "keras": TrainConfig(model="baseline", epochs=10, optimizer="adam", lr=1e-3, schedule="constant",
                         weight_decay=0.0, label_smoothing=0.0, augment=None),
}


def dataset_framing(name: str) -> str:
    """Which framing a dataset's images were made with (see scrawl.preprocess.FrameSpec); "leaf" is
    LEAF's FEMNIST resizing, which no model is trained on, so evaluation always reframes it."""
    if name.startswith("femnist"):
        return "leaf"
    return "emnist" if name.startswith("emnist") else "mnist"


def resolve_precision(precision: str, device_type: str = "cpu") -> bool:
    """True to train under bf16 autocast (on `device_type`, "cpu" or "cuda")."""
    if precision == "auto":
        if device_type == "cuda":
            return bool(torch.cuda.is_bf16_supported())
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    return precision == "bf16"


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.schedule == "constant":
        return cfg.lr
    warm = max(1, int(cfg.warmup * total))
    if step < warm:
        return cfg.lr * (0.1 + 0.9 * step / warm)
    t = (step - warm) / max(1, total - warm)
    return cfg.lr * (0.002 + 0.998 * 0.5 * (1 + math.cos(math.pi * t)))


def to_input(images_u8: torch.Tensor) -> torch.Tensor:
    """(B, 28, 28) uint8 -> (B, 1, 28, 28) float in [0, 1]: the models' input."""
    return images_u8.unsqueeze(1).float().div_(255)


@torch.no_grad()
def predict_probs(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Softmax probabilities (N, C) for (N, 28, 28) uint8 or (N, 1, 28, 28) float images, in fp32.
    Batches go to the model's device; the result is on the images' device."""
    model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else images.device
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device, non_blocking=True)
        x = to_input(x) if x.dtype == torch.uint8 else x
        probs = torch.softmax(model(x.contiguous(memory_format=torch.channels_last)).float(), dim=1)
        out.append(probs.to(images.device))
    return torch.cat(out) if out else torch.empty(0)


def _make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
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
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ScrawlError(f"cannot write to the output folder {folder}: {exc.strerror or exc}") from None


# --- devices and processes ----------------------------------------------------------------------

def resolve_device(device: str = "auto") -> torch.device:
    """"cpu", "cuda" or "auto" (CUDA when a GPU is usable, else the CPU) -> a torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            why = ("this PyTorch build has no CUDA support" if torch.version.cuda is None
                   else "PyTorch finds no usable GPU: check the driver and CUDA_VISIBLE_DEVICES")
            raise ScrawlError(f"CUDA is not available on this machine ({why}; torch {torch.__version__}); "
                              "train with --device cpu (or --device auto)")
        return torch.device("cuda")
    raise ScrawlError(f"device must be cpu, cuda or auto, not {device!r}")


def _env_number(name: str, default, kind=int):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        raise ScrawlError(f"${name} must be a number, not {text!r}") from None


class _Group:
    """This process's place among the processes training one model together (torchrun), and the few
    collectives training needs. Without torchrun it is rank 0 of 1 and every method is a no-op."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0, backend: str | None = None,
                 owned: bool = False, device: torch.device = torch.device("cpu")):
        self.rank, self.world, self.local_rank, self.backend, self.owned = rank, world, local_rank, backend, owned
        self.device = device  # where collectives' tensors live: the GPU for NCCL, the CPU for gloo

    @property
    def main(self) -> bool:
        return self.rank == 0

    def max(self, value: int) -> int:
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def sum(self, values: list) -> list:
        if self.world == 1:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj) -> list:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's batch-norm statistics to every rank, so all hold the very model rank 0 saves."""
        if self.world > 1:
            import torch.distributed as dist

            for buf in module.buffers():
                dist.broadcast(buf, 0)

    def close(self) -> None:
        if self.owned:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _join_processes(device: torch.device) -> tuple[_Group, torch.device]:
    """Join the other training processes when started by torchrun (WORLD_SIZE > 1): gloo on the CPU,
    NCCL on GPUs (one GPU per process: LOCAL_RANK). Returns the group and this process's device."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # the caller's own script set it up
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = _env_number("LOCAL_RANK", rank)
        if device.type == "cuda" and world > 1:
            device = torch.device("cuda", torch.cuda.current_device())
        comm = device if dist.get_backend() == "nccl" else torch.device("cpu")
        return _Group(rank, world, local_rank, dist.get_backend(), owned=False, device=comm), device
    world = _env_number("WORLD_SIZE", 1)
    if world <= 1:
        return _Group(), device
    if not dist.is_available():
        raise ScrawlError("WORLD_SIZE is set but this PyTorch build has no torch.distributed: "
                          "train in one process (plain `scrawl train`)")
    rank, local_rank = _env_number("RANK", 0), _env_number("LOCAL_RANK", 0)
    extra = {}
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise ScrawlError(f"process {rank} is local rank {local_rank} but this machine has {count} GPU(s): "
                              f"start at most {count} processes per machine with --device cuda")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        extra["device_id"] = device
    backend = "nccl" if device.type == "cuda" else "gloo"
    # Long enough for the slowest one-sided wait (local rank 0 downloading a dataset while the others wait),
    # short enough that a process stuck for good does not hold the rest forever.
    timeout = timedelta(seconds=_env_number("SCRAWL_DIST_TIMEOUT", 1800.0, float))
    try:
        dist.init_process_group(backend, timeout=timeout, **extra)
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ScrawlError(f"could not join the other training processes ({backend}): {first}") from None
    group = _Group(dist.get_rank(), dist.get_world_size(), local_rank, backend, owned=True,
                   device=device if backend == "nccl" else torch.device("cpu"))
    log.info("process %d of %d (local rank %d), %s on %s", group.rank, group.world, local_rank, backend, device)
    return group, device


def _rank_seed(seed: int, rank: int, *more) -> int:
    """Rank 0 of a fresh run keeps the single-process seed (seed + 1); every other (rank, ...) gets its own."""
    if rank == 0 and not more:
        return seed + 1
    digest = hashlib.sha256(repr(("scrawl", seed, rank) + more).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _differences(a: dict, b: dict) -> list[str]:
    """The keys whose values differ; a dict value (train_config) is compared field by field."""
    out = []
    for key in sorted(a.keys() | b.keys()):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [f"{key}.{f}" for f in sorted(x.keys() | y.keys()) if x.get(f) != y.get(f)]
        elif x != y:
            out.append(key)
    return out


def _to_cpu(obj):
    """Tensors anywhere in a state dict -> CPU copies, so a checkpoint loads on any machine."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _load_training_data(cfg: TrainConfig, data_dir, progress: bool) -> dict:
    """The training and validation tensors (CPU, uint8 images) and what the checkpoint says about them."""
    from ..data import load_dataset, split_train_val
    from ..vision.preprocess import FrameSpec, frame_batch

    data = load_dataset(cfg.dataset, "train", data_dir, progress=progress)
    train_idx, val_idx = split_train_val(len(data), cfg.val_fraction, cfg.seed)
    if cfg.limit:
        train_idx = train_idx[: cfg.limit]
        val_idx = val_idx[: max(500, cfg.limit // 9)]
    x_train, y_train = data.images[train_idx].contiguous(), data.labels[train_idx].contiguous()
    x_val, y_val = data.images[val_idx].contiguous(), data.labels[val_idx].contiguous()
    spec = FrameSpec(framing=dataset_framing(cfg.dataset))
    extra_counts = {}
    for name in cfg.extra_train:
        extra = load_dataset(name, "train", data_dir, progress=progress)
        if extra.classes != data.classes:
            raise ScrawlError(f"{name} has other classes than {cfg.dataset}: it cannot add to its training data")
        images = extra.images
        if dataset_framing(name) != spec.framing:  # frame it the way this model's data was made
            images = torch.from_numpy((frame_batch(images.numpy(), spec) * 255).round().astype("uint8"))
        x_train, y_train = torch.cat([x_train, images]), torch.cat([y_train, extra.labels])
        extra_counts[name] = len(images)
    if len(x_train) < 2 or len(x_val) < 1:
        raise ScrawlError(f"{cfg.dataset}: too few images to train ({len(x_train)} for training, {len(x_val)} for validation)")
    return {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val, "classes": list(data.classes),
            "spec": spec, "extra_counts": extra_counts}


def train(cfg: TrainConfig, out_dir: str | Path, *, data_dir=None, resume: bool = False,
          progress: bool = True, threads: int | None = None, device: str = "auto") -> dict:
    """Train `cfg` into `out_dir` (best.pt, last.pt). Returns {"best", "last", "history", "best_val_acc",
    "rank", "world_size"}. With `resume`, the run in `out_dir` continues with its own saved settings
    (`cfg` is not used). `device`: "cpu", "cuda" or "auto" (a property of the run, not of the recipe, so
    it is not part of `cfg` or the checkpoint).

    Started by torchrun (WORLD_SIZE > 1), every process calls this and they train one model together
    with DistributedDataParallel: each step's global batch of `batch_size` images is split between the
    ranks and their gradients averaged, so a step is the single-process step (batch-norm statistics
    aside: each rank normalises its own part). Only rank 0 writes files, logs and shows progress."""
    dev = resolve_device(device)
    group, dev = _join_processes(dev)
    try:
        return _train(cfg, Path(out_dir), group=group, device=dev, data_dir=data_dir, resume=resume,
                      progress=progress, threads=threads)
    finally:
        group.close()


def _train(cfg: TrainConfig, out_dir: Path, *, group: _Group, device: torch.device, data_dir, resume: bool,
           progress: bool, threads: int | None) -> dict:
    rank, world = group.rank, group.world
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    show = progress and group.main

    # Everything that can fail before training, on every rank; then the ranks compare notes, so a
    # problem on one rank (a missing file, other settings) stops them all with its message, none hangs.
    failure: BaseException | None = None
    saved = prepared = None
    try:
        if group.main:
            _check_writable(out_dir)  # before loading data and training an epoch, not at the first checkpoint
        if resume:
            try:
                saved = load_checkpoint(last_path)
            except ScrawlError as exc:
                if world > 1:  # every process reads last.pt: on several machines it must be shared or copied
                    raise type(exc)(f"{exc} (process {rank}: with several machines, every machine needs "
                                    "the --out folder: share it or copy it)") from None
                raise
            if not saved.training_state:
                raise ScrawlError(f"{last_path} has no training state to resume from")
            cfg = TrainConfig.from_dict(saved.meta["train_config"])
        cfg.check()
        if threads:
            torch.set_num_threads(threads)
        use_bf16 = resolve_precision(cfg.precision, device.type)
        aug = AugmentConfig(**cfg.augment) if cfg.augment else None
    except Exception as exc:  # noqa: BLE001 - reported to the other ranks below, then raised
        failure = exc
    # The data: local rank 0 first, so a download happens once per machine.
    if group.local_rank != 0:
        group.barrier()
    if failure is None:
        try:
            prepared = _load_training_data(cfg, data_dir, progress=show or (progress and group.local_rank == 0))
        except Exception as exc:  # noqa: BLE001
            failure = exc
    if group.local_rank == 0:
        group.barrier()
    position = None
    if saved is not None:
        position = [saved.training_state["epoch"], saved.training_state["step"]]
    fingerprint = None if failure else {
        "train_config": cfg.to_dict(), "train_images": len(prepared["x_train"]), "val_images": len(prepared["x_val"]),
        "resume_at": position, "device": device.type}
    notes = group.gather((f"{type(failure).__name__}: {failure}" if failure else None, fingerprint))
    if failure is not None:
        raise failure
    for r, (error, _) in enumerate(notes):
        if error:
            raise ScrawlError(f"training process {r} failed before training: {error}")
    for r, (_, other) in enumerate(notes):
        if other != fingerprint:
            raise ScrawlError(f"the training processes disagree: process {r} differs from process {rank} in "
                              f"{', '.join(_differences(fingerprint, other))}; start every process with the same "
                              "options and data")

    x_train, y_train = prepared["x_train"], prepared["y_train"]
    n = len(x_train)
    bs = min(cfg.batch_size, n)
    if bs < world:
        raise ScrawlError(f"a batch of {bs} images cannot be split between {world} processes: "
                          "use a batch size of at least the number of processes")
    steps_per_epoch = n // bs  # drop the ragged last batch: keeps batch-norm statistics sane
    total_steps = max(1, round(steps_per_epoch * cfg.epochs))
    n_epochs = -(-total_steps // steps_per_epoch)  # the last one may be part of a pass
    augmented_steps = round(cfg.augment_until * total_steps)
    # uint8 images move to the device once; batches are indexed and augmented there.
    x_train, y_train = x_train.to(device), y_train.to(device)
    # Validation is sharded: each rank scores every world-th image and the sums are all-reduced.
    x_val = prepared["x_val"][rank::world].contiguous().to(device)
    y_val = prepared["y_val"][rank::world].contiguous().to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model_config = {"num_classes": len(prepared["classes"]), **cfg.model_config}
    model = build_model(cfg.model, **model_config)
    if saved is not None:
        model.load_state_dict(saved.state_dict)
    model = model.to(device=device, memory_format=torch.channels_last)
    opt = _make_optimizer(cfg, model)
    aug_gen = torch.Generator(device=device).manual_seed(_rank_seed(cfg.seed, rank))
    if rank:  # dropout draws its own numbers on each rank
        torch.manual_seed(_rank_seed(cfg.seed, rank, "torch"))
    history: list[dict] = []
    epoch, start_step, best_acc = 0, 0, -1.0
    sums = [0.0, 0, 0]  # running loss sum, correct, seen (this epoch, this rank; all-reduced when needed)
    if saved is not None:
        ts = saved.training_state
        opt.load_state_dict(ts["optimizer"])
        epoch, start_step, best_acc = ts["epoch"], ts["step"], ts["best_val_acc"]
        history = list(saved.meta["history"])
        saved_world, saved_device = ts.get("world_size", 1), ts.get("rng_device", "cpu")
        exact = saved_world == world and saved_device == device.type
        if exact and world > 1:
            sums = list(ts["rank_sums"][rank])
        elif group.main:  # the saved sums are the sum over the ranks that wrote them
            sums = list(ts["sums"])
        if exact:  # every rank gets its own RNG states back
            mine = ts["rank_rng"][rank] if world > 1 else ts
            aug_gen.set_state(mine["aug_rng"])
            torch.set_rng_state(mine["torch_rng"])
            if device.type == "cuda" and mine.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(mine["cuda_rng"], device)
        else:  # same batches from the same step on, fresh random numbers for augmentation and dropout
            aug_gen.manual_seed(_rank_seed(cfg.seed, rank, epoch, start_step))
            torch.manual_seed(_rank_seed(cfg.seed, rank, "torch", epoch, start_step))
            if group.main:
                log.warning("%s was written by %d %s process(es), this run has %d on %s: it continues at the same "
                            "step with the same batches, but not bit-identically (new random numbers for "
                            "augmentation and dropout)", last_path, saved_world, saved_device, world, device.type)
        if group.main:
            log.info("resuming %s at epoch %d step %d", last_path, epoch + 1, start_step)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # Batch norm stays per rank (no SyncBatchNorm): it has no CPU/gloo implementation, and each
        # rank's share of a batch (64 of the default 128 with 2 processes) is plenty for its statistics.
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    meta = {
        "arch": cfg.model,
        "model_config": model_config,
        "classes": prepared["classes"],
        "frame": prepared["spec"].to_dict(),
        "dataset": {"name": cfg.dataset, "train_images": n, "val_images": len(prepared["x_val"]),
                    "extra_train": prepared["extra_counts"], "val_fraction": cfg.val_fraction, "split_seed": cfg.seed},
        "train_config": cfg.to_dict(),
        "parameters": count_parameters(model),
        "run": {"world_size": world, "device": device.type, "backend": group.backend},
        "versions": library_versions(),
    }

    def rng_states() -> list[dict]:  # every rank's, gathered (a collective: all ranks call it)
        mine = {"aug_rng": aug_gen.get_state(), "torch_rng": torch.get_rng_state()}
        if device.type == "cuda":
            mine["cuda_rng"] = torch.cuda.get_rng_state(device)
        return group.gather(mine)

    def checkpoint(path, *, step: int, ep: int, rngs: list[dict] | None = None,
                   rank_sums: list[list] | None = None):  # rank 0 only
        meta_now = dict(meta, history=history, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        epochs_done=ep)
        state = None
        if rngs is not None:  # last.pt: everything needed to continue
            rank_sums = rank_sums or [[0.0, 0, 0]] * world
            state = {"optimizer": _to_cpu(opt.state_dict()), "aug_rng": rngs[0]["aug_rng"],
                     "torch_rng": rngs[0]["torch_rng"], "epoch": ep, "step": step, "best_val_acc": best_acc,
                     "sums": [sum(col) for col in zip(*rank_sums)], "world_size": world, "rng_device": device.type}
            if "cuda_rng" in rngs[0]:
                state["cuda_rng"] = rngs[0]["cuda_rng"]
            if world > 1:  # each rank's own RNG states and running sums, for an exact resume
                state["rank_rng"], state["rank_sums"] = rngs, rank_sums
        save_checkpoint(path, meta_now, model.state_dict(), state)  # the bare model: no "module." prefix

    from tqdm.auto import tqdm

    with _StopFlag() as stop:
        while epoch < n_epochs:
            end = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)  # this epoch's last step + 1
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch)).to(device)
            model.train()
            t0 = time.perf_counter()
            bar = tqdm(total=end, initial=start_step, desc=f"epoch {epoch + 1}/{n_epochs}",
                       disable=not show, leave=True, dynamic_ncols=True, unit="batch")
            for step in range(start_step, end):
                idx = perm[step * bs : (step + 1) * bs]
                if world > 1:
                    idx = idx[rank::world]  # this rank's share of the global batch
                xb, yb = to_input(x_train[idx]), y_train[idx]
                if aug is not None and epoch * steps_per_epoch + step < augmented_steps:
                    xb = augment_batch(xb, aug, aug_gen)
                xb = xb.contiguous(memory_format=torch.channels_last)
                for pg in opt.param_groups:
                    pg["lr"] = lr_at(cfg, epoch * steps_per_epoch + step, total_steps)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    logits = net(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                if world > 1:
                    # DDP averages the ranks' gradients; weighting each rank's mean by its share of the
                    # batch makes that the mean over the whole global batch, even when shares differ by one.
                    (loss * (len(yb) * world / bs)).backward()
                else:
                    loss.backward()
                opt.step()
                sums[0] += loss.item() * len(yb)
                sums[1] += int((logits.argmax(1) == yb).sum())
                sums[2] += len(yb)
                bar.update(1)
                if show and (step % 10 == 0 or step == end - 1):
                    rate = (step + 1 - start_step) * bs / max(1e-9, time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{sums[0] / sums[2]:.4f}", acc=f"{sums[1] / sums[2]:.4f}",
                                    img_s=f"{rate:.0f}", refresh=False)
                # A signal on any rank stops every rank after this same step.
                signum = group.max(stop.signum or 0)
                if signum:
                    bar.close()
                    rngs, rank_sums = rng_states(), group.gather(list(sums))
                    if group.main:
                        checkpoint(last_path, step=step + 1, ep=epoch, rngs=rngs, rank_sums=rank_sums)
                    group.barrier()  # nobody exits (and makes torchrun stop the others) before last.pt is written
                    how = "scrawl train" if world == 1 else "torchrun [the same options] -m scrawl train"
                    raise TrainingInterrupted(
                        f"stopped by {signal.Signals(signum).name} at epoch {epoch + 1}, step {step + 1}; "
                        f"resume with: {how} --resume --out {out_dir}")
            bar.close()
            seconds = time.perf_counter() - t0
            rank_images = [int(v) for v in group.gather(sums[2])]
            sums = group.sum(sums)
            group.broadcast_buffers(model)
            probs = predict_probs(model, x_val)
            if len(y_val):
                val_sums = [float(F.nll_loss(probs.clamp_min(1e-12).log(), y_val, reduction="sum")),
                            int((probs.argmax(1) == y_val).sum()), len(y_val)]
            else:
                val_sums = [0.0, 0, 0]
            val_sums = group.sum(val_sums)
            val_loss, val_acc = val_sums[0] / val_sums[2], val_sums[1] / val_sums[2]
            history.append({"epoch": epoch + 1, "train_loss": sums[0] / max(1, sums[2]),
                            "train_acc": sums[1] / max(1, sums[2]), "val_loss": val_loss, "val_acc": val_acc,
                            "lr": opt.param_groups[0]["lr"], "seconds": round(seconds, 2),
                            "images_per_s": round((end - start_step) * bs / seconds, 1),
                            "world_size": world, "rank_images": rank_images})
            if group.main:
                log.info("epoch %d/%d: train loss %.4f acc %.4f, val loss %.4f acc %.4f, %.1fs", epoch + 1,
                         n_epochs, history[-1]["train_loss"], history[-1]["train_acc"], val_loss, val_acc, seconds)
            if show:
                tqdm.write(f"epoch {epoch + 1}: val_loss {val_loss:.4f} val_acc {val_acc:.4f} ({seconds:.1f}s)")
            epoch, start_step, sums = epoch + 1, 0, [0.0, 0, 0]
            improved = val_acc >= best_acc  # ties go to the later epoch (lower learning rate); the same on every rank
            if improved:
                best_acc = val_acc
            rngs = rng_states()
            if group.main:
                if improved:
                    checkpoint(best_path, step=0, ep=epoch)
                checkpoint(last_path, step=0, ep=epoch, rngs=rngs)
        group.barrier()  # every rank returns once the files are written
    return {"best": best_path, "last": last_path, "history": history, "best_val_acc": best_acc,
            "rank": rank, "world_size": world}
