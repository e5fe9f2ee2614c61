"""Reading exported ONNX models: the sidecar (the model card plus the export's own fields), the check
that an .onnx file is the one its sidecar describes, and ONNX Runtime sessions. Needs only
onnxruntime and numpy, never torch.

An exported model is two files with the same stem, side by side (written by scrawl.runtime.export):

    digits.onnx   the network, self-contained (weights inside): input "image" (N, 1, H, W) float32 in
                  [0, 1] (ink bright, framed as the card's frame spec says), output as the task says
                  (classify: "logits" (N, C); ctc: "logits" (N, T, C + 1)); N is a dynamic batch axis,
                  and for a line model (framing "line", H = the spec's size) so are W and T
    digits.json   the sidecar: {"format": "scrawl-onnx", "format_version": 2, the model card's fields
                  (arch, model_config, classes, frame, task, dataset, parameters, description),
                  "input", "output", "onnx_file", "onnx_sha256", "source", "opset", "versions", "parity",
                  and for int8 models "quantization"}

Format 1 sidecars (no "task") load as classification models.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from .card import ModelCard

FORMAT = "scrawl-onnx"
FORMAT_VERSION = 2
INPUT = "image"  # the exported model's input name
EXPORT_FIELDS = ("input", "output", "onnx_sha256")  # what a sidecar holds beyond the model card


def sidecar_path(onnx_path: str | os.PathLike) -> Path:
    """digits.onnx -> digits.json"""
    return Path(onnx_path).with_suffix(".json")


def read_sidecar(onnx_path: str | os.PathLike) -> dict:
    """The validated sidecar of an .onnx file; CheckpointError naming the file and the problem."""
    onnx_path = Path(onnx_path)
    side = sidecar_path(onnx_path)
    if not side.is_file():
        raise CheckpointError(f"{onnx_path}: its metadata file {side.name} is missing (an exported model is "
                              f"the .onnx file plus the .json file `scrawl export` writes next to it)")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{side}: not a readable Scrawl ONNX metadata file: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{side}: not a Scrawl ONNX metadata file (no \"format\": \"{FORMAT}\"); "
                              "write it with `scrawl export`")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{side}: bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{side}: written by a newer Scrawl (format {version}, this Scrawl reads up to "
                              f"{FORMAT_VERSION}); upgrade Scrawl to load it")
    missing = [k for k in EXPORT_FIELDS if k not in meta]
    if missing:
        raise CheckpointError(f"{side}: damaged metadata: lacks {', '.join(missing)}")
    if version == 1 and "task" in meta:
        raise CheckpointError(f"{side}: damaged metadata: format 1 files have no task")
    for key in ("input", "output"):
        if not isinstance(meta[key], dict) or not isinstance(meta[key].get("name"), str):
            raise CheckpointError(f"{side}: damaged metadata: {key!r} must name the model's {key}")
    card = ModelCard.from_dict(meta, f"{side}")  # the one validation of a card; format 1: classify
    return {**meta, **card.to_dict()}


def check_onnx_file(path: str | os.PathLike) -> tuple[dict, bytes]:
    """(sidecar metadata, file contents) of an exported .onnx file whose sidecar is valid and describes
    this very file (sha256). Cheap (no ONNX Runtime), so `scrawl serve` checks its models before it
    starts; CheckpointError naming the file otherwise."""
    path = Path(path)
    meta = read_sidecar(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != meta["onnx_sha256"]:
        raise CheckpointError(f"{path} is not the model its metadata file {sidecar_path(path).name} describes "
                              "(sha256 differs: modified, truncated, or a sidecar from another export); "
                              "export it again with `scrawl export`")
    return meta, data


def load_onnx_session(path: str | os.PathLike, threads: int | None = None, spin: bool = True):
    """(ONNX Runtime session, sidecar metadata) for an exported .onnx file, checked against each other:
    the file is the one the sidecar describes (sha256), with the input and the number of outputs it
    says (a line model: any width). Every problem is a CheckpointError that names the file."""
    path = Path(path)
    meta, data = check_onnx_file(path)
    session = make_session(data, threads=threads, name=str(path), spin=spin)
    card = ModelCard.from_dict(meta, str(path))
    size, line = card.frame.size, card.frame.framing == "line"
    inputs, outputs = session.get_inputs(), session.get_outputs()
    names_in, names_out = [i.name for i in inputs], [o.name for o in outputs]
    if meta["input"]["name"] not in names_in or len(inputs) != 1:
        raise CheckpointError(f"{path}: the model takes inputs {names_in}, its metadata says {meta['input']['name']!r}")
    if meta["output"]["name"] not in names_out:
        raise CheckpointError(f"{path}: the model gives outputs {names_out}, its metadata says {meta['output']['name']!r}")
    _check_input(path, inputs[0], size, line)
    out = next(o for o in outputs if o.name == meta["output"]["name"])
    spec = card.task_impl.output_spec(len(card.classes))["shape"]  # e.g. ["N", C] or ["N", "T", C + 1]
    if out.shape is not None and len(out.shape) != len(spec):
        raise CheckpointError(f"{path}: the model gives outputs of shape {out.shape}, its {card.task} task "
                              f"expects {spec}")
    n_out = out.shape[-1] if out.shape else None
    if not isinstance(n_out, int):  # a symbolic size: ask the model itself
        n_out = session.run([out.name], {inputs[0].name: np.zeros((1, 1, size, size), np.float32)})[0].shape[-1]
    if n_out != spec[-1]:
        why = "" if spec[-1] == len(card.classes) else f" (its {card.task} task expects {spec[-1]} outputs)"
        raise CheckpointError(f"{path}: the model gives {n_out} outputs but its metadata lists "
                              f"{len(meta['classes'])} classes{why}")
    return session, meta


def _check_input(path: Path, arg, size: int, line: bool) -> None:
    """CheckpointError unless the model takes float images (N, 1, size, size), or for a line model
    (N, 1, size, W) with W dynamic (ONNX Runtime shows a dynamic axis as a name or None)."""
    shape = list(arg.shape)
    ok = arg.type == "tensor(float)" and len(shape) == 4 and shape[1:3] == [1, size]
    if ok and (not isinstance(shape[3], int) if line else shape[3] == size):
        return
    if line and ok:  # a line exported with a fixed width could read no other line
        raise CheckpointError(f"{path}: a line model must take lines of any width, this one takes only width "
                              f"{shape[3]} (shape {shape}); export it again with `scrawl export`")
    want = f"(N, 1, {size}, W) of any width W" if line else f"(N, 1, {size}, {size})"
    raise CheckpointError(f"{path}: the model takes {arg.type} of shape {shape}, not float images {want}")


def make_session(data: bytes, threads: int | None, name: str, spin: bool = True):
    """An ONNX Runtime CPU session. spin: idle intra-op threads busy-wait for the next op (ONNX Runtime's
    default: quickest on an otherwise idle machine); False where other processes need the CPUs between
    model calls (framing workers feeding a model in this process: spinning threads take the CPUs
    the workers need)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads or 0)  # 0: ONNX Runtime's default, one per core
    opts.inter_op_num_threads = 1  # a chain of convolutions: nothing runs in parallel between ops
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: a bad file is reported once, as a CheckpointError
    from .quantize import DISABLED_OPTIMIZERS  # what int8 models run without (no effect on float ones)

    try:
        return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=DISABLED_OPTIMIZERS)
    except Exception as exc:  # ONNX Runtime's errors (InvalidProtobuf, InvalidGraph, Fail, ...) derive from Exception
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{name}: not a usable ONNX model (truncated or corrupted file?): {first}") from None
