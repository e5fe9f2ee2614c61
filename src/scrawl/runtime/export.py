"""Writing ONNX models: `export_onnx` turns a checkpoint into an .onnx file plus its sidecar (the
model card and how the export was made and checked; the format is described in scrawl.runtime.onnx).

An export is checked before anything is written: ONNX Runtime must give the same outputs as PyTorch
(max |difference| <= 1e-4) on real handwriting (the bundled sample images, plus any `check_images`),
in batches of other sizes than the one the export traced. Both files are written atomically, all or
none.

A line model gets a dynamic width (and time) axis; its check frames the images as lines (`frame_line`),
adds them side by side as one long line, and runs them one by one and as zero-right-padded batches.

With int8, the checked float model is then quantized (scrawl.runtime.quantize) and must answer as the
float model does on held-out images (lines, for a line model) of its own dataset; the sidecar records
how it was made and checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ImageError, ScrawlError
from ..fsutil import atomic_write_all, file_digest
from ..vision import frame, to_input
from ..vision.framing import MAX_LINE_WIDTH, frame_line
from ..vision.ink import load_image
from .card import ModelCard
from .files import BUNDLED, DEFAULT_MODEL, resolve_model, sample_images
from .onnx import FORMAT, FORMAT_VERSION, INPUT, make_session, sidecar_path

log = logging.getLogger(__name__)

OPSET = 18
PARITY_TOLERANCE = 1e-4  # max |logit difference| allowed between ONNX Runtime and PyTorch
INT8_AGREEMENT = 0.99  # least share of held-out images on which an int8 model must answer as the float one
# Line models go straight to the TorchScript exporter: torch 2.13's dynamo exporter cannot give their LSTM
# a dynamic width (with Dim("width") it fails after 20-60 s of CPU; with 4 * Dim it declares a fixed time
# axis). True: try dynamo first again (a fixed width or time axis in its result still falls back).
DYNAMO_FOR_LINES = False


def default_out_path(model: str | os.PathLike | None, int8: bool = False) -> Path:
    """Where `scrawl export` writes by default: next to a checkpoint file, with the .onnx suffix;
    for a bundled model name, <name>.onnx in the current folder. An int8 model gets "-int8" added."""
    model = DEFAULT_MODEL if model is None else model
    tag = "-int8" if int8 else ""
    if isinstance(model, str) and model in BUNDLED:
        return Path(f"{model}{tag}.onnx")
    path = Path(model)
    return path.with_name(f"{path.stem}{tag}.onnx")


# --------------------------------------------------------------------------------------- export


def export_onnx(model: str | os.PathLike | None = "digits", out_path: str | os.PathLike | None = None, *,
                check_images: list[str | os.PathLike] | None = None, opset: int = OPSET, int8: bool = False,
                data_dir: str | os.PathLike | None = None, calibration: int = 2000) -> dict:
    """Export a checkpoint (a bundled model name or a .pt path) to `out_path` (.onnx) plus its sidecar.

    Checks ONNX Runtime against PyTorch on the bundled sample images and `check_images` first; raises
    ScrawlError, and writes nothing, if they differ by more than PARITY_TOLERANCE or no image can be
    used. Returns {"onnx": path, "sidecar": path, "max_abs_diff": float, "images": int, "batch_sizes": [...],
    "bytes": size of the .onnx file}, plus "int8": the quantization check, for an int8 export.

    int8: quantize the checked float model (scrawl.quantize), calibrated on `calibration` images of the
    model's training part (its dataset, loaded from `data_dir` or downloaded), then check it on images
    of the validation part it was never trained or calibrated on: its answers must agree with the
    float model's on at least INT8_AGREEMENT of them, or nothing is written. A line model is quantized
    without calibration and checked on held-out lines (quantize.check_line_int8).
    """
    from .checkpoint import load_checkpoint

    source = resolve_model(model, "torch")
    out = Path(out_path) if out_path is not None else default_out_path(model, int8)
    if out.suffix.lower() != ".onnx":
        raise ScrawlError(f"the output file must end in .onnx, got {out}")
    if int8 and calibration < 1:
        raise ScrawlError(f"--calibration must be at least 1 image, got {calibration}")
    _check_writable(out)  # before the export's seconds of work, not after
    checkpoint = load_checkpoint(source)
    net = checkpoint.build_model()
    card = checkpoint.card
    output = card.task_impl.output_spec(len(card.classes))
    paths = [*sample_images(), *(check_images or [])]
    if card.frame.framing == "line":
        data, images, parity = _export_line(net, card, source, paths, opset, output)
    else:
        data, images, parity = _export_chars(net, card, source, paths, opset, output)
    diff = parity["max_abs_diff"]
    log.info("%s: ONNX Runtime vs PyTorch on %d real images, batches of %s: max |logit diff| %.3g",
             source, parity["images"], parity["batch_sizes"], diff)
    if not diff <= PARITY_TOLERANCE:  # also catches NaN
        raise ScrawlError(f"export of {source} refused: ONNX Runtime's logits differ from PyTorch's by up to "
                          f"{diff:.3g} on {parity['images']} real images (allowed: {PARITY_TOLERANCE:g}); nothing written")
    quantization = None
    if int8:
        data, quantization = _int8(data, card, data_dir, calibration, images, output["name"])
        log.info("%s: int8 model agrees with the float model on %.2f%% of the held-out %s", source,
                 100 * quantization["check"]["agreement"], quantization["check"]["of"])

    sidecar = _sidecar(card, out, data, source, opset, output)
    sidecar["parity"] = {"max_abs_diff": diff, "tolerance": PARITY_TOLERANCE, **{k: v for k, v in parity.items() if k != "max_abs_diff"}}
    if quantization is not None:
        sidecar["parity"]["of"] = "the float model, before quantization"
        sidecar["quantization"] = quantization
    text = json.dumps(sidecar, indent=2, allow_nan=False) + "\n"
    side = sidecar_path(out)
    try:
        atomic_write_all([(out, data), (side, text.encode())])  # the sidecar, which readers check, last
    except OSError as exc:
        raise ScrawlError(f"cannot write {getattr(exc, 'filename', None) or out}: {exc.strerror or exc}") from None
    log.info("wrote %s (%d bytes) and %s", out, len(data), side)
    return {"onnx": out, "sidecar": side, "max_abs_diff": diff, "images": parity["images"],
            "batch_sizes": parity["batch_sizes"], "bytes": len(data), "int8": quantization and quantization["check"],
            "task": card.task}


def _export_chars(net, card: ModelCard, source: Path, paths: list, opset: int, output: dict) -> tuple[bytes, np.ndarray, dict]:
    """A character model's checked export: (ONNX bytes, the framed check images, the parity entry)."""
    import torch

    classes, task = list(card.classes), card.task_impl
    images = _real_images(card.frame, paths)
    with torch.inference_mode():
        expected = net(torch.from_numpy(images)).float().numpy()
    if list(expected.shape[1:]) != output["shape"][1:]:
        raise CheckpointError(f"{source}: the model gives outputs of shape {list(expected.shape[1:])}, its "
                              f"{task.name} task expects {output['shape'][1:]} for {len(classes)} classes")
    # Traced with a batch of 2 (torch.export treats sizes 0 and 1 as special); checked with others.
    example = np.resize(images, (2, *images.shape[1:]))
    data = _to_onnx(net, torch.from_numpy(np.ascontiguousarray(example)), opset, output["name"])
    diff, sizes = _parity(data, images, expected, output["name"])
    return data, images, {"max_abs_diff": diff, "images": len(images), "batch_sizes": sizes}


def _export_line(net, card: ModelCard, source: Path, paths: list, opset: int, output: dict) -> tuple[bytes, list, dict]:
    """A line model's checked export: (ONNX bytes, the framed check lines, the parity entry with the widths)."""
    import torch

    lines = _real_lines(card.frame, paths)
    with torch.inference_mode():
        got = net(torch.from_numpy(lines[-1][None, None])).float()
    n_out = output["shape"][-1]
    if got.ndim != 3 or got.shape[-1] != n_out:
        raise CheckpointError(f"{source}: the model gives outputs of shape {list(got.shape)} for one line, its "
                              f"{card.task} task expects (1, T, {n_out}) for {len(card.classes)} classes")
    # Traced with a batch of 2 (torch.export treats sizes 0 and 1 as special) at the widest line's width;
    # checked at every other width, and in batches of other sizes.
    padded = _pad_right(lines)
    example = torch.from_numpy(np.ascontiguousarray(np.resize(padded, (2, *padded.shape[1:]))))
    data = _to_onnx(net, example, opset, output["name"], line=True)
    diff, sizes, widths = _line_parity(data, net, lines, output["name"])
    return data, lines, {"max_abs_diff": diff, "images": len(lines), "batch_sizes": sizes, "widths": widths}


def _sidecar(card: ModelCard, out: Path, data: bytes, source: Path, opset: int, output: dict) -> dict:
    """The model card (its history, training config and optimizer state stay behind) plus what the export
    adds: the input and output, the file it describes, where it came from, the versions that made it."""
    carried = ModelCard(arch=card.arch, model_config=card.model_config, classes=card.classes, frame=card.frame,
                        task=card.task, dataset=card.dataset, metrics=card.metrics, parameters=card.parameters,
                        description=card.description)
    size = card.frame.size
    width = "W" if card.frame.framing == "line" else size  # a line model reads lines of any width
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            **{k: v for k, v in carried.to_dict().items() if k != "history"},
            "input": {"name": INPUT, "shape": ["N", 1, size, width], "dtype": "float32", "range": [0.0, 1.0]},
            "output": {**output, "dtype": "float32", "meaning": "logits"},
            "onnx_file": out.name, "onnx_sha256": hashlib.sha256(data).hexdigest(),
            "source": {"file": source.name, "sha256": file_sha256(source)}, "opset": opset, "versions": _versions()}


def _int8(data: bytes, card: ModelCard, data_dir, calibration: int, samples: np.ndarray,
          output: str) -> tuple[bytes, dict]:
    """(int8 model bytes, the sidecar's "quantization" entry) for the float model `data`."""
    from .quantize import line_int8, quantize_model

    if card.frame.framing == "line":
        return line_int8(data, lambda d, name: make_session(d, threads=None, name=name), card, data_dir, output)

    softmax = card.task_impl.probabilities
    calib, held, labels, dataset = _calibration_data(card.dataset, data_dir, calibration)
    quantized, info = quantize_model(data, calib, INPUT)
    float_session = make_session(data, threads=None, name="the exported model")
    int8_session = make_session(quantized, threads=None, name="the int8 model")
    held_all = np.concatenate([held, samples])
    a, b = _onnx_logits(float_session, held_all, output), _onnx_logits(int8_session, held_all, output)
    if b.shape != a.shape or not np.isfinite(b).all():
        raise ScrawlError(f"the int8 model gives logits of shape {b.shape} (or non-finite ones); nothing written")
    agree = float(np.mean(a.argmax(1) == b.argmax(1)))
    n = len(held)
    check = {"images": len(held_all), "of": f"{n} images of {dataset}'s validation part and {len(samples)} sample images",
             "agreement": agree, "accuracy_float": float(np.mean(a[:n].argmax(1) == labels)),
             "accuracy_int8": float(np.mean(b[:n].argmax(1) == labels)),
             "max_abs_prob_diff": float(np.max(np.abs(softmax(a) - softmax(b)))), "min_agreement": INT8_AGREEMENT}
    if agree < INT8_AGREEMENT:
        raise ScrawlError(f"int8 export refused: its answers agree with the float model's on only {agree:.2%} of "
                          f"{len(held_all)} held-out images (required: {INT8_AGREEMENT:.0%}); nothing written")
    info["calibration"] = f"{len(calib)} images of {dataset}'s training part"
    return quantized, {**info, "check": check}


def _calibration_data(ds: dict, data_dir, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(n calibration images from the training part, up to 2,000 validation images, their labels, the
    dataset's name), as (N, 1, H, W) float32 in [0, 1]: the model's own data is in its framing."""
    from ..data import load_dataset, split_train_val

    name = ds.get("name")
    if not name:
        raise ScrawlError("this checkpoint does not say which dataset it was trained on; int8 calibration needs it")
    try:
        data = load_dataset(name, "train", data_dir)
    except ScrawlError as exc:
        raise type(exc)(f"int8 calibration needs the model's training data ({name}): {exc}") from None
    train_idx, val_idx = split_train_val(len(data), ds.get("val_fraction", 0.1), ds.get("split_seed", 0))

    def pick(idx, k):  # evenly spread over the part, so every class shows up
        idx = idx.numpy()
        return idx[np.linspace(0, len(idx) - 1, min(k, len(idx))).round().astype(int)] if len(idx) else idx

    images = data.images.numpy()
    calib, held = pick(train_idx, n), pick(val_idx, 2000)
    return to_input(images[calib]), to_input(images[held]), data.labels.numpy()[held], name


def _check_writable(out: Path) -> None:
    """Fail early when `out` can certainly not be written: its nearest existing ancestor is a file or
    a read-only folder. (Writing still handles every error; this only saves the wait.)"""
    folder = out.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ScrawlError(f"cannot write {out}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ScrawlError(f"cannot write {out}: no permission to write in {folder}")


def file_sha256(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


def _real_images(spec, paths: list) -> np.ndarray:
    """(N, 1, size, size) float32: each image framed as a user's image is. An image that cannot be
    used (no ink, unreadable) is skipped with a warning; none usable is an error."""
    framed = []
    for path in paths:
        try:
            framed.append(frame(path, spec))
        except ImageError as exc:
            log.warning("parity check: skipping %s: %s", path, exc)
    if not framed:
        raise ScrawlError("no usable image for the ONNX parity check (the bundled samples are missing?)")
    return to_input(np.stack(framed))


def _real_lines(spec, paths: list) -> list[np.ndarray]:
    """Float32 (size, W) lines: each image framed as `Recognizer.read` frames a line (unusable: skipped with a
    warning), then all side by side, framed again as one long line (so long sequences are checked too)."""
    lines = []
    for path in paths:
        try:
            lines.append(frame_line(load_image(path), spec).image)
        except ImageError as exc:  # EmptyImageError included
            log.warning("parity check: skipping %s: %s", path, exc)
    if not lines:
        raise ScrawlError("no usable image for the ONNX parity check (the bundled samples are missing?)")
    if len(lines) > 1:
        # Each framed line has blank margins, so side by side they read as one line with gaps.
        long = np.concatenate(lines, axis=1)[:, : MAX_LINE_WIDTH - 2 * spec.size]
        lines.append(frame_line(long, spec).image)
    return lines


def _pad_right(lines: list[np.ndarray]) -> np.ndarray:
    """(N, 1, size, widest) float32: the lines side by side in a batch, zeros right of each line's end."""
    out = np.zeros((len(lines), 1, lines[0].shape[0], max(x.shape[1] for x in lines)), np.float32)
    for i, line in enumerate(lines):
        out[i, 0, :, : line.shape[1]] = line
    return out


@contextlib.contextmanager
def _quiet_exporter():
    # The exporter prints progress, logs warnings about optional packages (torchvision) and emits
    # deprecation warnings from torch internals: none of it is the user's concern.
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _to_onnx(net, example, opset: int, output: str, line: bool = False) -> bytes:
    """The serialized ONNX model, batch axis dynamic (a line model's width, and so its output's time
    axis, too), weights inside: from the dynamo exporter, or where it fails, the TorchScript one."""
    import torch

    if not line or DYNAMO_FOR_LINES:
        dims = {0: torch.export.Dim("batch", max=65536)}
        if line:
            dims[3] = torch.export.Dim("width", min=4, max=MAX_LINE_WIDTH)
        try:
            with _quiet_exporter():
                program = torch.onnx.export(
                    net, (example,), None, input_names=[INPUT], output_names=[output], opset_version=opset,
                    dynamo=True, verbose=False, dynamic_shapes=(dims,))
            # Serialized here, in memory: the weights stay inside the one file (export to a path would
            # put them in a separate .onnx.data file).
            if not line or _width_is_dynamic(program.model_proto):
                return program.model_proto.SerializeToString()
            log.warning("dynamo ONNX export fixed the width or the time axis; trying the TorchScript exporter")
        except Exception as exc:  # the dynamo exporter failed on this network: the TorchScript one may not
            first = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()[:1]  # without terminal colours
            log.warning("dynamo ONNX export failed (%s: %s); trying the TorchScript exporter",
                        type(exc).__name__, (first or [""])[0])
    buf = io.BytesIO()
    axes = {INPUT: {0: "N", 3: "W"}, output: {0: "N", 1: "T"}} if line else {INPUT: {0: "N"}, output: {0: "N"}}
    with _quiet_exporter():
        torch.onnx.export(net, (example,), buf, input_names=[INPUT], output_names=[output], opset_version=opset,
                          dynamo=False, dynamic_axes=axes)
    return buf.getvalue()


def _width_is_dynamic(proto) -> bool:
    """Whether an exported line model declares its input's width and its output's time axis symbolic."""
    dims = [list(v.type.tensor_type.shape.dim) for v in (proto.graph.input[0], proto.graph.output[0])]
    return len(dims[0]) == 4 and len(dims[1]) == 3 and not any(d.HasField("dim_value") for d in (dims[0][3], dims[1][1]))


def _onnx_logits(session, batch: np.ndarray, output: str) -> np.ndarray:
    return session.run([output], {INPUT: np.ascontiguousarray(batch, dtype=np.float32)})[0]


def _parity(data: bytes, images: np.ndarray, expected: np.ndarray, output: str) -> tuple[float, list[int]]:
    """Max |ONNX Runtime - PyTorch| over all images, run as one batch, one by one, and as a batch of
    another size (the images plus the first again), so the dynamic batch axis is exercised."""
    session = make_session(data, threads=None, name="the exported model")
    n = len(images)
    batches = [np.arange(n), *[np.array([i]) for i in range(n)], np.r_[np.arange(n), 0]]
    diff = 0.0
    for idx in batches:
        got = _onnx_logits(session, images[idx], output)
        if got.shape != expected[idx].shape:
            raise ScrawlError(f"the exported model gives logits of shape {got.shape} for a batch of {len(idx)}, "
                              f"expected {expected[idx].shape}")
        diff = max(diff, float(np.max(np.abs(got.astype(np.float64) - expected[idx]))))
    return diff, sorted({len(b) for b in batches})


def _line_parity(data: bytes, net, lines: list[np.ndarray], output: str) -> tuple[float, list[int], list[int]]:
    """Max |ONNX Runtime - PyTorch| over lines one by one (each at its own width) and in zero-right-padded
    batches of two sizes, PyTorch running the very same inputs (padding changes what a bidirectional LSTM
    computes). Returns (max difference, batch sizes, widths)."""

    import torch

    session = make_session(data, threads=None, name="the exported model")
    padded = _pad_right(lines)
    batches = [line[None, None] for line in lines] + [padded, np.concatenate([padded, padded[:1]])]
    diff = 0.0
    for batch in batches:
        with torch.inference_mode():
            expected = net(torch.from_numpy(np.ascontiguousarray(batch))).float().numpy()
        got = _onnx_logits(session, batch, output)
        if got.shape != expected.shape:
            raise ScrawlError(f"the exported model gives logits of shape {got.shape} for lines of shape "
                              f"{batch.shape}, PyTorch {expected.shape}")
        diff = max(diff, float(np.max(np.abs(got.astype(np.float64) - expected))))
    return diff, sorted({len(b) for b in batches}), sorted({b.shape[3] for b in batches})


def _versions() -> dict:
    import onnxruntime
    import torch

    from .. import __version__

    out = {"scrawl": __version__, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    try:
        import onnx

        out["onnx"] = onnx.__version__
    except ImportError:
        pass
    return out
