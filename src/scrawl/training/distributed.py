"""Devices and processes: where a run trains (`resolve_device`, `resolve_precision`) and the group of
processes that train one model together when started by torchrun (gloo on CPUs, NCCL on GPUs).

`Group` is this process's place in that group and the few collectives training needs; without
torchrun it is rank 0 of 1 and every collective is a no-op. `agree` is the handshake before training:
a failure on any process, or processes started with other settings or data, stops them all with one
clear message instead of leaving the others waiting.
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import timedelta

import torch

from ..errors import ScrawlError

log = logging.getLogger(__package__)  # "scrawl.training", as the -v log lines have always said
# oneDNN (PyTorch's CPU convolutions) keeps a compiled kernel, with its buffers, for each input shape it
# has seen, up to 1,024 by default. Line batches come in hundreds of widths: on a 16,000-word `line-numbers`
# run the cache alone took 1.5 GB (peak 3.3 GB -> 1.8 GB with 16, same speed and losses;
# benchmarks/line_step_memory.py shows it on synthetic steps). Character batches have one shape.
KERNEL_CACHE = 16


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


def resolve_precision(precision: str, device_type: str = "cpu") -> bool:
    """True to train under bf16 autocast (on `device_type`, "cpu" or "cuda")."""
    if precision == "auto":
        if device_type == "cuda":
            return bool(torch.cuda.is_bf16_supported())
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    return precision == "bf16"


def bound_kernel_cache(capacity: int = KERNEL_CACHE) -> None:
    """Cap oneDNN's kernel cache (ONEDNN_PRIMITIVE_CACHE_CAPACITY, unless the user set it). oneDNN reads
    the variable when it builds its first kernel, so call this before the process's first convolution."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))


class Group:
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


def _env_number(name: str, default, kind=int):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        raise ScrawlError(f"${name} must be a number, not {text!r}") from None


def join_processes(device: torch.device) -> tuple[Group, torch.device]:
    """Join the other training processes when started by torchrun (WORLD_SIZE > 1): gloo on the CPU,
    NCCL on GPUs (one GPU per process: LOCAL_RANK). Returns the group and this process's device."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # the caller's own script set it up
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = _env_number("LOCAL_RANK", rank)
        if device.type == "cuda" and world > 1:
            device = torch.device("cuda", torch.cuda.current_device())
        comm = device if dist.get_backend() == "nccl" else torch.device("cpu")
        return Group(rank, world, local_rank, dist.get_backend(), owned=False, device=comm), device
    world = _env_number("WORLD_SIZE", 1)
    if world <= 1:
        return Group(), device
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
    group = Group(dist.get_rank(), dist.get_world_size(), local_rank, backend, owned=True,
                  device=device if backend == "nccl" else torch.device("cpu"))
    log.info("process %d of %d (local rank %d), %s on %s", group.rank, group.world, local_rank, backend, device)
    return group, device


def rank_seed(seed: int, rank: int, *more) -> int:
    """Rank 0 of a fresh run keeps the single-process seed (seed + 1); every other (rank, ...) gets its own."""
    if rank == 0 and not more:
        return seed + 1
    digest = hashlib.sha256(repr(("scrawl", seed, rank) + more).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def agree(group: Group, failure: BaseException | None, fingerprint: dict | None) -> None:
    """Every process calls this once it has tried everything that can fail before training: `failure`
    is what went wrong here (None: nothing), `fingerprint` what this process is about to train (its
    settings, data sizes, resume position, device). Raises this process's own failure, else another's,
    else a ScrawlError naming the settings in which some process differs; returns when all agree."""
    notes = group.gather((f"{type(failure).__name__}: {failure}" if failure else None, fingerprint))
    if failure is not None:
        raise failure
    for r, (error, _) in enumerate(notes):
        if error:
            raise ScrawlError(f"training process {r} failed before training: {error}")
    for r, (_, other) in enumerate(notes):
        if other != fingerprint:
            raise ScrawlError(f"the training processes disagree: process {r} differs from process {group.rank} in "
                              f"{', '.join(_differences(fingerprint, other))}; start every process with the same "
                              "options and data")


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
