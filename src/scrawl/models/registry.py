"""The architecture registry: name -> constructor, with a one-line description for `scrawl train --help`."""

from __future__ import annotations

from typing import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register(name: str, description: str):
    def wrap(fn):
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description
        return fn

    return wrap


def available_models() -> dict[str, str]:
    """Name -> one-line description of each registered architecture."""
    return dict(_DESCRIPTIONS)


def build_model(arch: str, **config) -> nn.Module:
    if arch not in _REGISTRY:
        raise ValueError(f"unknown model {arch!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[arch](**config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
