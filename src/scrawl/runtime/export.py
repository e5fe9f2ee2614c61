"""ONNX files: `export_onnx` writes one, `load_onnx_session` opens one for ONNX Runtime.

An exported model is two files with the same stem, written side by side:

    digits.onnx   the network, self-contained (weights inside, no .onnx.data): input "image"
                  (N, 1, 28, 28) float32 in [0, 1] (ink bright, framed as `frame` says), output
                  "logits" (N, C); N is a dynamic batch axis
    digits.json   the sidecar: {"format": "scrawl-onnx", "format_version": 1, "classes": [...],
                  "frame": {...}, "arch", "model_config", "dataset", "description", "input", "output",
                  "onnx_sha256" (of the .onnx file), "source": {"file", "sha256"} (the checkpoint it
                  came from), "opset", "versions", "parity": {"max_abs_diff", ...}}

The sidecar carries what the network alone does not know (what each output means, how to frame an
image for it); Recognizer(runtime="onnx") refuses an .onnx file without a sidecar that fits it.

An export is checked before anything is written: ONNX Runtime must give the same logits as PyTorch
(max |difference| <= 1e-4) on real handwriting (the bundled sample images, plus any `check_images`),
in batches of other sizes than the one the export traced. Both files are written atomically.

With int8, the checked float model is then quantized (scrawl.quantize) and must answer as the float
model does on held-out images of its own dataset; the sidecar records how it was made and checked.

torch is imported by `export_onnx` only; reading an ONNX model needs just onnxruntime and numpy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ImageError, ScrawlError
from ..fsutil import file_digest, fsync_folder

log = logging.getLogger(__name__)

FORMAT = "scrawl-onnx"
FORMAT_VERSION = 1
OPSET = 18
INPUT, OUTPUT = "image", "logits"
PARITY_TOLERANCE = 1e-4  # max |logit difference| allowed between ONNX Runtime and PyTorch
INT8_AGREEMENT = 0.99  # least share of held-out images on which an int8 model must answer as the float one
REQUIRED = ("classes", "frame", "input", "output", "onnx_sha256")
# The checkpoint metadata an export carries over (history, training config and optimizer state stay behind).
CARRIED = ("arch", "model_config", "parameters", "dataset", "description")


def sidecar_path(onnx_path: str | os.PathLike) -> Path:
    """digits.onnx -> digits.json"""
    return Path(onnx_path).with_suffix(".json")


def default_out_path(model: str | os.PathLike | None, int8: bool = False) -> Path:
    """Where `scrawl export` writes by default: next to a checkpoint file, with the .onnx suffix;
    for a bundled model name, <name>.onnx in the current folder. An int8 model gets "-int8" added."""
    from .recognizer import BUNDLED, DEFAULT_MODEL

    model = DEFAULT_MODEL if model is None else model
    tag = "-int8" if int8 else ""
    if isinstance(model, str) and model in BUNDLED:
        return Path(f"{model}{tag}.onnx")
    path = Path(model)
    return path.with_name(f"{path.stem}{tag}.onnx")


def sample_images() -> list[Path]:
    """The bundled sample photos and drawings (src/scrawl/assets/samples), sorted."""
    folder = Path(str(resources.files("scrawl") / "assets" / "samples"))
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


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
    float model's on at least INT8_AGREEMENT of them, or nothing is written.
    """
    import torch

    from .checkpoint import load_checkpoint
    from .recognizer import resolve_model
    from ..vision.preprocess import FrameSpec

    source = resolve_model(model, "torch")
    out = Path(out_path) if out_path is not None else default_out_path(model, int8)
    if out.suffix.lower() != ".onnx":
        raise ScrawlError(f"the output file must end in .onnx, got {out}")
    if int8 and calibration < 1:
        raise ScrawlError(f"--calibration must be at least 1 image, got {calibration}")
    _check_writable(out)  # before the export's seconds of work, not after
    checkpoint = load_checkpoint(source)
    net = checkpoint.build_model()
    spec = FrameSpec.from_dict(checkpoint.meta["frame"])
    classes = list(checkpoint.meta["classes"])

    images = _real_images(spec, [*sample_images(), *(check_images or [])])
    with torch.inference_mode():
        expected = net(torch.from_numpy(images)).float().numpy()
    if expected.shape != (len(images), len(classes)):
        raise CheckpointError(f"{source}: the model gives {expected.shape[1]} outputs for {len(classes)} classes")
    # Traced with a batch of 2 (torch.export treats sizes 0 and 1 as special); checked with others.
    example = np.resize(images, (2, *images.shape[1:]))
    data = _to_onnx(net, torch.from_numpy(np.ascontiguousarray(example)), opset)
    diff, sizes = _parity(data, images, expected)
    log.info("%s: ONNX Runtime vs PyTorch on %d real images, batches of %s: max |logit diff| %.3g",
             source, len(images), sizes, diff)
    if not diff <= PARITY_TOLERANCE:  # also catches NaN
        raise ScrawlError(f"export of {source} refused: ONNX Runtime's logits differ from PyTorch's by up to "
                          f"{diff:.3g} on {len(images)} real images (allowed: {PARITY_TOLERANCE:g}); nothing written")
    meta = checkpoint.meta
    quantization = None
    if int8:
        data, quantization = _int8(data, meta, data_dir, calibration, images)
        log.info("%s: int8 model agrees with the float model on %.2f%% of %d held-out images",
                 source, 100 * quantization["check"]["agreement"], quantization["check"]["images"])

    sidecar = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "classes": classes, "frame": dict(meta["frame"]),
        **{k: meta[k] for k in CARRIED if meta.get(k) is not None},
        "input": {"name": INPUT, "shape": ["N", 1, spec.size, spec.size], "dtype": "float32", "range": [0.0, 1.0]},
        "output": {"name": OUTPUT, "shape": ["N", len(classes)], "dtype": "float32", "meaning": "logits"},
        "onnx_file": out.name,
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "source": {"file": source.name, "sha256": file_sha256(source)},
        "opset": opset,
        "versions": _versions(),
        "parity": {"max_abs_diff": diff, "tolerance": PARITY_TOLERANCE, "images": len(images), "batch_sizes": sizes},
    }
    if quantization is not None:
        sidecar["parity"]["of"] = "the float model, before quantization"
        sidecar["quantization"] = quantization
    text = json.dumps(sidecar, indent=2, allow_nan=False) + "\n"
    side = sidecar_path(out)
    _write_files([(out, data), (side, text.encode())])
    log.info("wrote %s (%d bytes) and %s", out, len(data), side)
    return {"onnx": out, "sidecar": side, "max_abs_diff": diff, "images": len(images), "batch_sizes": sizes,
            "bytes": len(data), "int8": quantization and quantization["check"]}


def _int8(data: bytes, meta: dict, data_dir, calibration: int, samples: np.ndarray) -> tuple[bytes, dict]:
    """(int8 model bytes, the sidecar's "quantization" entry) for the float model `data`."""
    from .recognizer import softmax
    from .quantize import quantize_model

    calib, held, labels, dataset = _calibration_data(meta, data_dir, calibration)
    quantized, info = quantize_model(data, calib, INPUT)
    float_session = _session(data, threads=None, name="the exported model")
    int8_session = _session(quantized, threads=None, name="the int8 model")
    held_all = np.concatenate([held, samples])
    a, b = _onnx_logits(float_session, held_all), _onnx_logits(int8_session, held_all)
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


def _calibration_data(meta: dict, data_dir, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(n calibration images from the training part, up to 2,000 validation images, their labels, the
    dataset's name), as (N, 1, H, W) float32 in [0, 1]: the model's own data is in its framing."""
    from ..data import load_dataset, split_train_val

    ds = meta.get("dataset") or {}
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

    def as_input(i):
        return np.ascontiguousarray(images[i][:, None], dtype=np.float32) / 255

    return as_input(calib), as_input(held), data.labels.numpy()[held], name


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
    from ..vision.preprocess import frame

    framed = []
    for path in paths:
        try:
            framed.append(frame(path, spec))
        except ImageError as exc:
            log.warning("parity check: skipping %s: %s", path, exc)
    if not framed:
        raise ScrawlError("no usable image for the ONNX parity check (the bundled samples are missing?)")
    return np.ascontiguousarray(np.stack(framed)[:, None], dtype=np.float32)


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


def _to_onnx(net, example, opset: int) -> bytes:
    """The serialized ONNX model, batch axis dynamic, weights inside."""
    import torch

    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                net, (example,), None, input_names=[INPUT], output_names=[OUTPUT], opset_version=opset,
                dynamo=True, verbose=False, dynamic_shapes=({0: torch.export.Dim("batch", max=65536)},))
        # Serialized here, in memory: the weights stay inside the one file (export to a path would
        # put them in a separate .onnx.data file).
        return program.model_proto.SerializeToString()
    except Exception as exc:  # the dynamo exporter failed on this network: the TorchScript one may not
        log.warning("dynamo ONNX export failed (%s: %s); trying the TorchScript exporter",
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
    import io

    buf = io.BytesIO()
    with _quiet_exporter():
        torch.onnx.export(net, (example,), buf, input_names=[INPUT], output_names=[OUTPUT], opset_version=opset,
                          dynamo=False, dynamic_axes={INPUT: {0: "N"}, OUTPUT: {0: "N"}})
    return buf.getvalue()


def _onnx_logits(session, batch: np.ndarray) -> np.ndarray:
    return session.run([OUTPUT], {INPUT: np.ascontiguousarray(batch, dtype=np.float32)})[0]


def _parity(data: bytes, images: np.ndarray, expected: np.ndarray) -> tuple[float, list[int]]:
    """Max |ONNX Runtime - PyTorch| over all images, run as one batch, one by one, and as a batch of
    another size (the images plus the first again), so the dynamic batch axis is exercised."""
    session = _session(data, threads=None, name="the exported model")
    n = len(images)
    batches = [np.arange(n), *[np.array([i]) for i in range(n)], np.r_[np.arange(n), 0]]
    diff = 0.0
    for idx in batches:
        got = _onnx_logits(session, images[idx])
        if got.shape != expected[idx].shape:
            raise ScrawlError(f"the exported model gives logits of shape {got.shape} for a batch of {len(idx)}, "
                              f"expected {expected[idx].shape}")
        diff = max(diff, float(np.max(np.abs(got.astype(np.float64) - expected[idx]))))
    return diff, sorted({len(b) for b in batches})


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


def _write_files(files: list[tuple[Path, bytes]]) -> None:
    """Write each (path, data) atomically, all or none: every file goes to a temp file in its folder
    and is fsynced; only when all are complete are they renamed into place (the sidecar, listed
    last, last), then the folder is fsynced. A failure before the renames leaves no file behind."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            folder = path.parent if str(path.parent) else Path(".")
            try:
                folder.mkdir(parents=True, exist_ok=True)
                for stale in folder.glob(f".{path.name}.*.tmp"):  # left by a writer that was killed
                    stale.unlink(missing_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
                temps.append((tmp, path))
                umask = os.umask(0)
                os.umask(umask)
                with os.fdopen(fd, "wb") as f:
                    os.fchmod(f.fileno(), 0o666 & ~umask)  # an ordinary file, not mkstemp's private one
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise ScrawlError(f"cannot write {path}: {exc.strerror or exc}") from None
        for tmp, path in temps:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise ScrawlError(f"cannot write {path}: {exc.strerror or exc}") from None
        for folder in {path.parent for path, _ in files}:
            fsync_folder(folder if str(folder) else Path("."))
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # already renamed unless something failed


# ----------------------------------------------------------------------------------------- load


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
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise CheckpointError(f"{side}: damaged metadata: lacks {', '.join(missing)}")
    classes = meta["classes"]
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise CheckpointError(f"{side}: damaged metadata: \"classes\" must be a list of labels")
    for key in ("input", "output"):
        if not isinstance(meta[key], dict) or not isinstance(meta[key].get("name"), str):
            raise CheckpointError(f"{side}: damaged metadata: {key!r} must name the model's {key}")
    try:
        from ..vision.preprocess import FrameSpec

        FrameSpec.from_dict(meta["frame"])
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{side}: damaged metadata: bad frame spec {meta['frame']!r}: {exc}") from None
    return meta


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


def load_onnx_session(path: str | os.PathLike, threads: int | None = None):
    """(ONNX Runtime session, sidecar metadata) for an exported .onnx file, checked against each other:
    the file is the one the sidecar describes (sha256), with the input and the number of outputs it
    says. Every problem is a CheckpointError that names the file."""
    path = Path(path)
    meta, data = check_onnx_file(path)
    session = _session(data, threads=threads, name=str(path))
    from ..vision.preprocess import FrameSpec

    size = FrameSpec.from_dict(meta["frame"]).size
    inputs, outputs = session.get_inputs(), session.get_outputs()
    names_in, names_out = [i.name for i in inputs], [o.name for o in outputs]
    if meta["input"]["name"] not in names_in or len(inputs) != 1:
        raise CheckpointError(f"{path}: the model takes inputs {names_in}, its metadata says {meta['input']['name']!r}")
    if meta["output"]["name"] not in names_out:
        raise CheckpointError(f"{path}: the model gives outputs {names_out}, its metadata says {meta['output']['name']!r}")
    shape_in = list(inputs[0].shape)
    if inputs[0].type != "tensor(float)" or len(shape_in) != 4 or shape_in[1:] != [1, size, size]:
        raise CheckpointError(f"{path}: the model takes {inputs[0].type} of shape {shape_in}, not float "
                              f"images (N, 1, {size}, {size})")
    out = next(o for o in outputs if o.name == meta["output"]["name"])
    n_out = out.shape[-1] if out.shape else None
    if not isinstance(n_out, int):  # a symbolic size: ask the model itself
        n_out = session.run([out.name], {inputs[0].name: np.zeros((1, 1, size, size), np.float32)})[0].shape[-1]
    if n_out != len(meta["classes"]):
        raise CheckpointError(f"{path}: the model gives {n_out} outputs but its metadata lists "
                              f"{len(meta['classes'])} classes")
    return session, meta


def _session(data: bytes, threads: int | None, name: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads or 0)  # 0: ONNX Runtime's default, one per core
    opts.inter_op_num_threads = 1  # a chain of convolutions: nothing runs in parallel between ops
    opts.log_severity_level = 3  # errors only: a bad file is reported once, as a CheckpointError
    from .quantize import DISABLED_OPTIMIZERS  # what int8 models run without (no effect on float ones)

    try:
        return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=DISABLED_OPTIMIZERS)
    except Exception as exc:  # ONNX Runtime's errors (InvalidProtobuf, InvalidGraph, Fail, ...) derive from Exception
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{name}: not a usable ONNX model (truncated or corrupted file?): {first}") from None
