"""Model files: the bundled models by name, a user's by path, and which runtime reads which.

No torch and no ONNX Runtime here, so the CLI, the web app and the ONNX path can resolve a model
without loading either.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ..errors import CheckpointError, ScrawlError

# Models shipped inside the package (src/scrawl/assets), by the name users type.
# digits-lite: fastnet, an eighth of digits' multiply-adds for a few hundredths of a point (README).
BUNDLED = {"digits": "digits.pt", "digits-lite": "digits-lite.pt", "chars": "chars.pt", "line": "line.pt"}
DEFAULT_MODEL = "digits"
# Short human names for the bundled models, as the page's model picker shows them (a user's own model
# file is shown by its file stem); the details (classes, network, training data) are one click away.
BUNDLED_TITLES = {"digits": "Digits", "digits-lite": "Digits (fast)", "chars": "Letters and digits",
                  "line": "Words and numbers (lines)"}
RUNTIMES = ("torch", "onnx")
# Bundled int8 exports (`scrawl export NAME --int8`), which `scrawl predict` reads a folder with: on a
# 2-core AVX2 CPU 15-35% faster than the float .onnx, 2 of MNIST's 10,000 test labels differing, both
# uncertain (benchmarks/predict_folder.py; the export's own check is in the .json beside it).
BUNDLED_INT8 = {"digits": "digits-int8.onnx"}


def _asset(filename: str) -> Path:
    return Path(str(resources.files("scrawl") / "assets" / filename))


def bundled_path(name: str, runtime: str = "torch") -> Path:
    """Where the bundled model `name` lives: its checkpoint (torch) or its exported .onnx (onnx)."""
    return _asset(BUNDLED[name] if runtime == "torch" else Path(BUNDLED[name]).with_suffix(".onnx").name)


def bundled_int8_path(name: str) -> Path | None:
    """The bundled int8 export of the bundled model `name`, or None when there is none."""
    if name not in BUNDLED_INT8:
        return None
    path = _asset(BUNDLED_INT8[name])
    return path if path.is_file() else None


def sample_images() -> list[Path]:
    """The bundled sample photos and drawings (src/scrawl/assets/samples), sorted."""
    folder = _asset("samples")
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise ScrawlError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")


def resolve_model(model: str | os.PathLike | None, runtime: str = "torch") -> Path:
    """A bundled model's name ("digits") or a model file path -> the file the runtime loads: a
    checkpoint for "torch", an .onnx file for "onnx". Raises CheckpointError when there is none, or
    when the file is for the other runtime (with what to do about it)."""
    check_runtime(runtime)
    model = DEFAULT_MODEL if model is None else model
    if isinstance(model, str) and model in BUNDLED:
        path = bundled_path(model, runtime)
        if not path.is_file():
            raise CheckpointError(f"the bundled model {model!r} is missing from the installation ({path})")
        return path
    path = Path(model)
    if not path.is_file():
        names = ", ".join(sorted(BUNDLED))
        kind = "an .onnx file path" if runtime == "onnx" else "a checkpoint file path"
        raise CheckpointError(f"no model {str(model)!r}: give a bundled model name ({names}) or {kind}")
    if runtime == "onnx" and is_torch_file(path):
        raise CheckpointError(f"{path} is a PyTorch checkpoint; the onnx runtime reads .onnx files: "
                              f"run `scrawl export {path}` first and use the .onnx file it writes")
    if runtime == "torch" and path.suffix.lower() == ".onnx":
        raise CheckpointError(f"{path} is an ONNX model: use the onnx runtime for it (--runtime onnx)")
    return path


def is_torch_file(path: Path) -> bool:
    # torch.save writes a zip archive; an ONNX file is a protobuf and never starts with "PK".
    if path.suffix.lower() in (".pt", ".pth"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False
