"""The architecture registry: name -> constructor, with the task its outputs are for (scrawl.tasks) and
a one-line description for people."""

from __future__ import annotations

from typing import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}
_TASKS: dict[str, str] = {}


def register(name: str, description: str, task: str = "classify"):
    def wrap(fn):
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description
        _TASKS[name] = task
        return fn

    return wrap


def model_task(arch: str) -> str:
    """The task an architecture's outputs are for ("classify", "ctc"); ValueError for an unknown name."""
    if arch not in _TASKS:
        raise ValueError(f"unknown model {arch!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _TASKS[arch]


def available_models() -> dict[str, str]:
    """Name -> one-line description of each registered architecture."""
    return dict(_DESCRIPTIONS)


def build_model(arch: str, **config) -> nn.Module:
    if arch not in _REGISTRY:
        raise ValueError(f"unknown model {arch!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[arch](**config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
