"""Training: data in memory as uint8 tensors, batched by indexing, augmented on the whole batch.

`train(config, out_dir)` writes `last.pt` after every epoch (and when stopped by Ctrl-C/SIGTERM,
mid-epoch, with everything needed to continue exactly: optimizer, RNG states, position, running
sums) and `best.pt` whenever validation accuracy improves. `resume=True` continues from `last.pt`.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from .augment import AugmentConfig, augment_batch
from .checkpoint import library_versions, load_checkpoint, save_checkpoint
from .errors import ScrawlError
from .models import build_model, count_parameters

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    dataset: str = "mnist"  # dataset name, see `scrawl data list`
    model: str = "scrawlnet"  # architecture, see scrawl.models.available_models()
    model_config: dict = field(default_factory=dict)  # extra architecture arguments, e.g. {"width": 32}
    epochs: int = 15  # passes over the training part
    batch_size: int = 128  # images per optimizer step
    optimizer: str = "adamw"  # "adamw" or "adam" (the Keras seed's)
    lr: float = 4e-3  # peak learning rate
    schedule: str = "onecycle"  # "onecycle" (linear warm-up, cosine decay) or "constant"
    warmup: float = 0.15  # fraction of all steps spent warming up (onecycle)
    weight_decay: float = 5e-4  # decoupled weight decay (AdamW)
    label_smoothing: float = 0.05  # softer targets: better calibrated confidences
    augment: dict | None = field(default_factory=lambda: AugmentConfig().to_dict())  # None = no augmentation
    val_fraction: float = 0.1  # held out from the training files for validation (the seed's 90/10)
    seed: int = 0  # seeds the split, the batch order, augmentation and initialisation
    precision: str = "auto"  # "bf16" autocast, "fp32", or "auto" (bf16 where the CPU does it natively)
    limit: int = 0  # use only this many training images (smoke runs); 0 = all
    extra_train: list = field(default_factory=list)  # more datasets' train splits, reframed to this model's
    # framing by scrawl.preprocess and added to the training part only (never to validation)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# Named recipes. `default` makes the bundled digit model; `fast` is the seconds-to-99% recipe;
# `keras` trains the seed's network the way the seed notebook did (Adam 1e-3, no augmentation).
RECIPES: dict[str, TrainConfig] = {
    "default": TrainConfig(),
    "fast": TrainConfig(model="fastnet", epochs=1, batch_size=64, lr=4e-3, warmup=0.2, augment=None, label_smoothing=0.0),
    # The bundled 62-class character model: EMNIST ByClass's test half, re-split (see scrawl.data.RESPLITS).
    "chars": TrainConfig(dataset="emnist-byclass-testhalf", epochs=20,
                         augment=AugmentConfig(rotate=10.0, scale=0.1, shear=0.2, translate=2.0, stroke=0.2).to_dict()),
    "keras": TrainConfig(model="baseline", epochs=10, optimizer="adam", lr=1e-3, schedule="constant",
                         weight_decay=0.0, label_smoothing=0.0, augment=None),
}


class TrainingInterrupted(ScrawlError):
    """Raised after Ctrl-C / SIGTERM once a resumable `last.pt` has been written."""


def dataset_framing(name: str) -> str:
    """Which framing a dataset's images were made with (see scrawl.preprocess.FrameSpec); "leaf" is
    LEAF's FEMNIST resizing, which no model is trained on, so evaluation always reframes it."""
    if name.startswith("femnist"):
        return "leaf"
    return "emnist" if name.startswith("emnist") else "mnist"


def resolve_precision(precision: str) -> bool:
    """True to train under bf16 autocast."""
    if precision == "auto":
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
    """Softmax probabilities (N, C) for (N, 28, 28) uint8 or (N, 1, 28, 28) float images, in fp32."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size]
        x = to_input(x) if x.dtype == torch.uint8 else x
        out.append(torch.softmax(model(x.contiguous(memory_format=torch.channels_last)).float(), dim=1))
    return torch.cat(out) if out else torch.empty(0)


def _make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        # No weight decay on biases and batch-norm parameters (standard practice, e.g. timm).
        decay = [p for p in model.parameters() if p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
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


def train(cfg: TrainConfig, out_dir: str | Path, *, data_dir=None, resume: bool = False,
          progress: bool = True, threads: int | None = None) -> dict:
    """Train `cfg` into `out_dir` (best.pt, last.pt). Returns {"best", "last", "history", "best_val_acc"}.
    With `resume`, the run in `out_dir` continues with its own saved settings (`cfg` is not used)."""
    from .data import load_dataset, split_train_val
    from .preprocess import FrameSpec, frame_batch

    out_dir = Path(out_dir)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    _check_writable(out_dir)  # before loading data and training an epoch, not at the first checkpoint
    saved = None
    if resume:
        saved = load_checkpoint(last_path)
        if not saved.training_state:
            raise ScrawlError(f"{last_path} has no training state to resume from")
        cfg = TrainConfig.from_dict(saved.meta["train_config"])
    if threads:
        torch.set_num_threads(threads)
    use_bf16 = resolve_precision(cfg.precision)
    aug = AugmentConfig(**cfg.augment) if cfg.augment else None

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
    n = len(x_train)
    if n < 2 or len(x_val) < 1:
        raise ScrawlError(f"{cfg.dataset}: too few images to train ({n} for training, {len(x_val)} for validation)")
    bs = min(cfg.batch_size, n)
    steps_per_epoch = n // bs  # drop the ragged last batch: keeps batch-norm statistics sane
    total_steps = steps_per_epoch * cfg.epochs

    torch.manual_seed(cfg.seed)
    model_config = {"num_classes": len(data.classes), **cfg.model_config}
    model = build_model(cfg.model, **model_config).to(memory_format=torch.channels_last)
    opt = _make_optimizer(cfg, model)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    history: list[dict] = []
    epoch, start_step, best_acc = 0, 0, -1.0
    sums = [0.0, 0, 0]  # running loss sum, correct, seen (this epoch)
    if saved is not None:
        ts = saved.training_state
        model.load_state_dict(saved.state_dict)
        opt.load_state_dict(ts["optimizer"])
        aug_gen.set_state(ts["aug_rng"])
        torch.set_rng_state(ts["torch_rng"])
        epoch, start_step, best_acc = ts["epoch"], ts["step"], ts["best_val_acc"]
        sums = list(ts["sums"])
        history = list(saved.meta["history"])
        log.info("resuming %s at epoch %d step %d", last_path, epoch + 1, start_step)

    meta = {
        "arch": cfg.model,
        "model_config": model_config,
        "classes": list(data.classes),
        "frame": spec.to_dict(),
        "dataset": {"name": cfg.dataset, "train_images": n, "val_images": len(x_val), "extra_train": extra_counts,
                    "val_fraction": cfg.val_fraction, "split_seed": cfg.seed},
        "train_config": cfg.to_dict(),
        "parameters": count_parameters(model),
        "versions": library_versions(),
    }

    def checkpoint(path, *, with_state: bool, step: int, ep: int):
        meta_now = dict(meta, history=history, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        epochs_done=ep)
        state = None
        if with_state:
            state = {"optimizer": opt.state_dict(), "aug_rng": aug_gen.get_state(), "torch_rng": torch.get_rng_state(),
                     "epoch": ep, "step": step, "best_val_acc": best_acc, "sums": list(sums)}
        save_checkpoint(path, meta_now, model.state_dict(), state)

    from tqdm.auto import tqdm

    with _StopFlag() as stop:
        while epoch < cfg.epochs:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
            model.train()
            t0 = time.perf_counter()
            bar = tqdm(total=steps_per_epoch, initial=start_step, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not progress, leave=True, dynamic_ncols=True, unit="batch")
            for step in range(start_step, steps_per_epoch):
                idx = perm[step * bs : (step + 1) * bs]
                xb, yb = to_input(x_train[idx]), y_train[idx]
                if aug is not None:
                    xb = augment_batch(xb, aug, aug_gen)
                xb = xb.contiguous(memory_format=torch.channels_last)
                for group in opt.param_groups:
                    group["lr"] = lr_at(cfg, epoch * steps_per_epoch + step, total_steps)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                    logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sums[0] += loss.item() * len(yb)
                sums[1] += int((logits.argmax(1) == yb).sum())
                sums[2] += len(yb)
                bar.update(1)
                if progress and (step % 10 == 0 or step == steps_per_epoch - 1):
                    rate = (step + 1 - start_step) * bs / max(1e-9, time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{sums[0] / sums[2]:.4f}", acc=f"{sums[1] / sums[2]:.4f}",
                                    img_s=f"{rate:.0f}", refresh=False)
                if stop.signum is not None:
                    bar.close()
                    checkpoint(last_path, with_state=True, step=step + 1, ep=epoch)
                    raise TrainingInterrupted(
                        f"stopped by {signal.Signals(stop.signum).name} at epoch {epoch + 1}, step {step + 1}; "
                        f"resume with: scrawl train --resume --out {out_dir}")
            bar.close()
            seconds = time.perf_counter() - t0
            probs = predict_probs(model, x_val)
            val_loss = float(F.nll_loss(probs.clamp_min(1e-12).log(), y_val))
            val_acc = float((probs.argmax(1) == y_val).float().mean())
            history.append({"epoch": epoch + 1, "train_loss": sums[0] / max(1, sums[2]),
                            "train_acc": sums[1] / max(1, sums[2]), "val_loss": val_loss, "val_acc": val_acc,
                            "lr": opt.param_groups[0]["lr"], "seconds": round(seconds, 2),
                            "images_per_s": round((steps_per_epoch - start_step) * bs / seconds, 1)})
            log.info("epoch %d/%d: train loss %.4f acc %.4f, val loss %.4f acc %.4f, %.1fs", epoch + 1,
                     cfg.epochs, history[-1]["train_loss"], history[-1]["train_acc"], val_loss, val_acc, seconds)
            if progress:
                tqdm.write(f"epoch {epoch + 1}: val_loss {val_loss:.4f} val_acc {val_acc:.4f} ({seconds:.1f}s)")
            epoch, start_step, sums = epoch + 1, 0, [0.0, 0, 0]
            if val_acc >= best_acc:  # ties go to the later epoch (lower learning rate)
                best_acc = val_acc
                checkpoint(best_path, with_state=False, step=0, ep=epoch)
            checkpoint(last_path, with_state=True, step=0, ep=epoch)
    return {"best": best_path, "last": last_path, "history": history, "best_val_acc": best_acc}
