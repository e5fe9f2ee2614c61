"""Checkpoints: one file holding the weights and the model card, written atomically.

Layout of the dict saved with torch.save (and read back with `torch.load(weights_only=True)`, so a
checkpoint can never run code when it is opened):

    {"format": "scrawl-checkpoint", "format_version": 2,
     "meta": {...}            # the model card (scrawl.runtime.card.ModelCard.to_dict()): JSON-safe
     "state_dict": {...}      # model weights
     "training_state": {...}} # only in `last`: optimizer, RNG states, position, to resume exactly

Format 1 files (the same, without "task" in the card) load as classification models.
`load_checkpoint` checks every one of those and turns each failure into a CheckpointError that says
what is wrong with the file.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..fsutil import atomic_write
from .card import ModelCard

FORMAT = "scrawl-checkpoint"
FORMAT_VERSION = 2


@dataclass
class Checkpoint:
    card: ModelCard
    state_dict: dict
    training_state: dict | None
    path: Path | None = None

    @property
    def meta(self) -> dict:
        """The model card as a plain dict (what the file stores)."""
        return self.card.to_dict()

    def build_model(self) -> torch.nn.Module:
        """The network this checkpoint describes, with its weights loaded, in eval mode."""
        try:
            model = self.card.build_model()
            model.load_state_dict(self.state_dict)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{self._name()}: weights do not fit model {self.card.arch!r}: {_first_line(exc)}") from None
        return model.eval()

    def _name(self) -> str:
        return str(self.path) if self.path else "checkpoint"


def library_versions() -> dict[str, str]:
    import numpy
    import scrawl

    return {"scrawl": scrawl.__version__, "torch": torch.__version__, "numpy": numpy.__version__}


def save_checkpoint(path: str | os.PathLike, card: ModelCard | dict, state_dict: dict,
                    training_state: dict | None = None) -> Path:
    """Write atomically (a temp file in the same folder, fsynced, renamed over `path`). `card` is a
    ModelCard or its dict; either way it is validated and must be JSON-safe."""
    path = Path(path)
    if isinstance(card, ModelCard):
        card = card.to_dict()
    try:
        meta = json.loads(json.dumps(card, allow_nan=False))  # proves it is JSON-safe, and copies it
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint metadata is not JSON-safe: {exc}") from None
    try:
        meta = ModelCard.from_dict(meta, "checkpoint metadata").to_dict()
    except CheckpointError as exc:
        raise ValueError(str(exc)) from None
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "meta": meta,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
    }
    if training_state is not None:
        payload["training_state"] = training_state
    try:
        return atomic_write(path, lambda f: torch.save(payload, f), binary=True)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None


def _check_torch_file(path: Path) -> None:
    """A CheckpointError for a file that is no torch file at all (an image given as the model, say):
    torch.save writes a zip archive ("PK"), older torch a pickle (protocol byte 0x80)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return
    what = ("an image" if head.startswith((b"\x89PNG", b"\xff\xd8", b"GIF8", b"BM", b"RIFF", b"II*", b"MM*"))
            else "not a PyTorch file")
    raise CheckpointError(f"{path}: not a model checkpoint ({what}): give a bundled model's name or a "
                          "checkpoint from `scrawl train` (.pt)")


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint. Never unpickles anything but tensors and plain data."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    _check_torch_file(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: it contains Python objects other than tensors and plain data "
            f"(weights_only unpickling blocked {_first_line(exc)!r}). Only load checkpoints you trust "
            "to have been written by Scrawl."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupted file?): {_first_line(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a Scrawl checkpoint (a torch file without Scrawl's metadata, e.g. a bare state_dict); "
            "train one with `scrawl train`"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: bad checkpoint format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer Scrawl (checkpoint format {version}, this Scrawl reads up to "
            f"{FORMAT_VERSION}); upgrade Scrawl to load it"
        )
    meta, state = payload.get("meta"), payload.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: damaged checkpoint: metadata or weights missing")
    if version == 1 and "task" in meta:
        raise CheckpointError(f"{path}: damaged checkpoint: format 1 files have no task")
    card = ModelCard.from_dict(meta, f"{path}: damaged checkpoint")  # format 1: no task, so classify
    return Checkpoint(card=card, state_dict=state, training_state=payload.get("training_state"), path=path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
