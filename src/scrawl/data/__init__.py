"""Datasets: find, download, verify and load MNIST and EMNIST as in-memory uint8 tensors.

What this module does:

* Knows the files of MNIST and of the six EMNIST splits (`DATASETS`), with pinned SHA-256 sums (and sizes)
  of the official `.gz` files.
* Finds them in a data folder (`resolve_data_dir`: an explicit folder, else ``$SCRAWL_DATA``, else a user
  cache folder) laid out as ``<data_dir>/mnist/train-images-idx3-ubyte.gz`` and
  ``<data_dir>/emnist/emnist-byclass-test-images-idx3-ubyte.gz``, ``<data_dir>/emnist/emnist-byclass-mapping.txt``.
  A raw (un-gzipped) file of the same name without ``.gz`` is accepted too; it has no checksum, only the
  structural IDX checks.
* Downloads what is missing (`ensure_files`, `download_file`): MNIST file by file from its mirrors; EMNIST
  from NIST's single ``gzip.zip`` archive (or from a ``gzip.zip`` you put in ``<data_dir>/emnist/``),
  extracting only the members needed. Every write goes to a temporary file that is verified, fsynced and
  renamed into place, so a data folder never holds a half-written file.
* Parses IDX files strictly (`read_idx`) and loads a split (`load_dataset`) as a `Dataset`: images
  ``(N, 28, 28) uint8``, upright (EMNIST's transposed storage is undone), ink bright on a 0 background,
  labels ``int64`` starting at 0, and the class names.

Every problem a user can cause or fix (missing, truncated or corrupted files, a failed download, an
unknown dataset name) raises `DataError` (or its subclass `DownloadError`) with a message that names
the file and says what to do.

Nothing is read or imported heavily at import time; torch is imported inside the functions that need it.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import operator
import os
import secrets
import struct
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, DownloadError
from ..fsutil import file_digest, fsync_folder

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "dataset_status",
    "download_file",
    "ensure_files",
    "load_dataset",
    "read_idx",
    "read_mapping",
    "resolve_data_dir",
    "split_train_val",
]

# --------------------------------------------------------------------------------------------------
# Dataset catalogue
# --------------------------------------------------------------------------------------------------

_DIGITS = tuple("0123456789")
_UPPER = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = tuple("abcdefghijklmnopqrstuvwxyz")
# ByMerge / Balanced merge the lower-case letters that look like their capitals (c i j k l m o p s u v w x y z).
_MERGED_LOWER = tuple("abdefghnqrt")

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# NIST's official EMNIST distribution: one zip (~560 MB) whose members are gzip/emnist-<split>-....gz and
# gzip/emnist-<split>-mapping.txt. Its MD5 is 58c8d27c78d21e728a6bc7b3cc06412e (as pinned by other
# loaders); it is not checked here because every extracted member is verified on its own.
EMNIST_MIRRORS = ("https://biometrics.nist.gov/cs_links/EMNIST/",)
EMNIST_ARCHIVE = "gzip.zip"

# SHA-256 and size of every official .gz file.
# MNIST: from /work/shared/data/SOURCES.md (the files match the official MD5s).
# EMNIST: from the Git LFS pointers ("oid sha256:...", "size ...") of the official NIST files stored in
# the GitHub repository aurelienduarte/emnist (gzip/emnist-*.gz). The byclass, bymerge and mnist test files
# were also checked against the real files in the shared data folder.
# The LFS pointers of the two ByMerge TRAIN files could not be found; for those only the MD5 that other
# loaders pin is known (see _MD5), which is what they are verified against.
_SHA256: dict[str, str] = {
    # MNIST
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    # EMNIST balanced
    "emnist-balanced-train-images-idx3-ubyte.gz": "74295e75e4e9fa2c102147460ee7eb763653d5132d883a84fb88932bfb8d2db4",
    "emnist-balanced-train-labels-idx1-ubyte.gz": "b46d41e5156a0a8aaaa4d18979fdd1588850fa8571018acffd5d93b325a7d6ed",
    "emnist-balanced-test-images-idx3-ubyte.gz": "117fc12b015e37ea98bfb2cbba3f77c3782c056cdbd219b87abfc8661d7135db",
    "emnist-balanced-test-labels-idx1-ubyte.gz": "a67cac948379b67270b9a4d0a01c8ec661598accf2f2b1964340b7c83cb175cd",
    # EMNIST byclass
    "emnist-byclass-train-images-idx3-ubyte.gz": "9e21987f03a6eb8b870187e785883ddad96947299587908f1a7ec2ca0f4be5f0",
    "emnist-byclass-train-labels-idx1-ubyte.gz": "f7ef403d48dc18a89dae0d83d11ee69cecb6e1c12c3a961d03712e495c02a8fa",
    "emnist-byclass-test-images-idx3-ubyte.gz": "5ec835bd5d5b1a66378a132e727fef20fe994b3cc666899befcca5ac766f50cd",
    "emnist-byclass-test-labels-idx1-ubyte.gz": "501e305eeeacb093b162592d80e8a2632040872360fa6d85cfcb2200d91ca92a",
    # EMNIST bymerge (train: no SHA-256 found, MD5 only)
    "emnist-bymerge-test-images-idx3-ubyte.gz": "5e5815ec1b522089134435f7c55e75a00960b58414793593ffff23efc0821683",
    "emnist-bymerge-test-labels-idx1-ubyte.gz": "8bda1516255683ba9071e141947ca0c91a911176065cdd6259b0b4d8dc5b5f35",
    # EMNIST digits
    "emnist-digits-train-images-idx3-ubyte.gz": "f7c95004d14d81af89522e67d8f0c781dfb3bd544181c81bfe1eb6b41c35b726",
    "emnist-digits-train-labels-idx1-ubyte.gz": "6638a6ff5fe2eefd9cca2471995b46c82986b8e4b2a70d2f5ce8e05d7edb319e",
    "emnist-digits-test-images-idx3-ubyte.gz": "20ebe43509264f7639d37c835a3f0b009e90b29e00a099a03101abe1644a3f63",
    "emnist-digits-test-labels-idx1-ubyte.gz": "bad1834c45d5988e270b99d43b13edc3fd898f658ffbc2caf2846ef27f7b05b0",
    # EMNIST letters
    "emnist-letters-train-images-idx3-ubyte.gz": "6288f418a917e007bf5fddb823a2dc7a5c6a35031401b93292a539cb12bd881f",
    "emnist-letters-train-labels-idx1-ubyte.gz": "9759af91ea6bccdf07a6040fd085861f2ec88e37f7c3f5760f6feb57106fbe5c",
    "emnist-letters-test-images-idx3-ubyte.gz": "50f0e93d75b99b463e9760b8345866f22587fa2c2fba472730a5ba09c693412d",
    "emnist-letters-test-labels-idx1-ubyte.gz": "924955c31fe7fd809b7303b5c0141282955f4b8390c74cdfd5d80435e0f4b4cb",
    # EMNIST mnist
    "emnist-mnist-train-images-idx3-ubyte.gz": "5f9942f441031c0f1f2e4d162059fd6e19ea808b34c328b6d16cab0ed24c78f2",
    "emnist-mnist-train-labels-idx1-ubyte.gz": "00c6d3c2342fdffb1711e0b5656cac4ce5862d2826399d383a9bac07d612e9f8",
    "emnist-mnist-test-images-idx3-ubyte.gz": "b25640fa9e356c618132f5df347c95ef5bae6d9c2596be1de40f7e0ae1c3eac6",
    "emnist-mnist-test-labels-idx1-ubyte.gz": "bcc5385d38f083dba046f5f756e99b32f5ea7fad122c6243c71c2239873065ca",
}

_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte.gz": 9912422,
    "train-labels-idx1-ubyte.gz": 28881,
    "t10k-images-idx3-ubyte.gz": 1648877,
    "t10k-labels-idx1-ubyte.gz": 4542,
    "emnist-balanced-train-images-idx3-ubyte.gz": 28207740,
    "emnist-balanced-train-labels-idx1-ubyte.gz": 80618,
    "emnist-balanced-test-images-idx3-ubyte.gz": 4714707,
    "emnist-balanced-test-labels-idx1-ubyte.gz": 13504,
    "emnist-byclass-train-images-idx3-ubyte.gz": 173367313,
    "emnist-byclass-train-labels-idx1-ubyte.gz": 491603,
    "emnist-byclass-test-images-idx3-ubyte.gz": 28908322,
    "emnist-byclass-test-labels-idx1-ubyte.gz": 81839,
    "emnist-bymerge-test-images-idx3-ubyte.gz": 28905295,
    "emnist-bymerge-test-labels-idx1-ubyte.gz": 79351,
    "emnist-digits-train-images-idx3-ubyte.gz": 59515779,
    "emnist-digits-train-labels-idx1-ubyte.gz": 113859,
    "emnist-digits-test-images-idx3-ubyte.gz": 9908519,
    "emnist-digits-test-labels-idx1-ubyte.gz": 19960,
    "emnist-letters-train-images-idx3-ubyte.gz": 30804864,
    "emnist-letters-train-labels-idx1-ubyte.gz": 79283,
    "emnist-letters-test-images-idx3-ubyte.gz": 5039157,
    "emnist-letters-test-labels-idx1-ubyte.gz": 144,  # the test labels are sorted: they compress to almost nothing
    "emnist-mnist-train-images-idx3-ubyte.gz": 14873795,
    "emnist-mnist-train-labels-idx1-ubyte.gz": 29480,
    "emnist-mnist-test-images-idx3-ubyte.gz": 2484884,
    "emnist-mnist-test-labels-idx1-ubyte.gz": 5144,
}

# Fallback for files without a known SHA-256 (MD5s of the official files, as pinned by other loaders).
_MD5: dict[str, str] = {
    "emnist-bymerge-train-images-idx3-ubyte.gz": "4a792d4df261d7e1ba27979573bf53f3",
    "emnist-bymerge-train-labels-idx1-ubyte.gz": "491be69ef99e1ab1f5b7f9ccc908bb26",
}


@dataclass(frozen=True)
class DatasetInfo:
    """What Scrawl knows about one dataset: its files, their checksums, where to get them."""

    name: str
    subdir: str  # folder under the data dir: "mnist" or "emnist"
    files: Mapping[str, Mapping[str, str]]  # split -> {"images": file name, "labels": file name}
    classes: tuple[str, ...]  # class index -> character (what the official mapping file says)
    mapping: str | None = None  # EMNIST mapping file name ("label ascii" per line)
    sha256: Mapping[str, str | None] = field(default_factory=dict)  # file name -> hex digest
    sizes: Mapping[str, int | None] = field(default_factory=dict)  # file name -> bytes
    md5: Mapping[str, str | None] = field(default_factory=dict)  # used only where no SHA-256 is known
    mirrors: tuple[str, ...] = ()  # base URLs; file URL = base + file name (or + archive)
    archive: str | None = None  # EMNIST: the files come inside this zip (at each mirror)
    archive_dir: str = ""  # folder of the files inside the archive
    transposed: bool = False  # images are stored transposed (EMNIST): fixed at load time
    label_offset: int = 0  # subtracted from the labels in the file (1 for emnist-letters)
    counts: Mapping[str, int] = field(default_factory=dict)  # split -> official number of samples
    description: str = ""

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.files)

    def all_files(self) -> list[str]:
        """Every file of the dataset: images and labels of each split, then the mapping file."""
        names = [f for split in self.files.values() for f in split.values()]
        return names + ([self.mapping] if self.mapping else [])


def _mnist_info() -> DatasetInfo:
    files = {
        "train": {"images": "train-images-idx3-ubyte.gz", "labels": "train-labels-idx1-ubyte.gz"},
        "test": {"images": "t10k-images-idx3-ubyte.gz", "labels": "t10k-labels-idx1-ubyte.gz"},
    }
    names = [f for s in files.values() for f in s.values()]
    return DatasetInfo(
        name="mnist",
        subdir="mnist",
        files=files,
        classes=_DIGITS,
        sha256={f: _SHA256[f] for f in names},
        sizes={f: _SIZES[f] for f in names},
        mirrors=MNIST_MIRRORS,
        counts={"train": 60000, "test": 10000},
        description="MNIST handwritten digits (LeCun, Cortes, Burges): 10 classes, 60,000 train / 10,000 test.",
    )


def _emnist_info(split_name: str, classes: Sequence[str], counts: tuple[int, int], description: str,
                 label_offset: int = 0) -> DatasetInfo:
    prefix = f"emnist-{split_name}"
    files = {
        s: {"images": f"{prefix}-{s}-images-idx3-ubyte.gz", "labels": f"{prefix}-{s}-labels-idx1-ubyte.gz"}
        for s in ("train", "test")
    }
    names = [f for s in files.values() for f in s.values()]
    return DatasetInfo(
        name=prefix,
        subdir="emnist",
        files=files,
        classes=tuple(classes),
        mapping=f"{prefix}-mapping.txt",
        sha256={f: _SHA256.get(f) for f in names},
        sizes={f: _SIZES.get(f) for f in names},
        md5={f: _MD5.get(f) for f in names},
        mirrors=EMNIST_MIRRORS,
        archive=EMNIST_ARCHIVE,
        archive_dir="gzip/",
        transposed=True,
        label_offset=label_offset,
        counts={"train": counts[0], "test": counts[1]},
        description=description,
    )


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        _mnist_info(),
        _emnist_info("byclass", _DIGITS + _UPPER + _LOWER, (697932, 116323),
                     "EMNIST ByClass: all of NIST SD 19, 62 unbalanced classes (digits, A-Z, a-z)."),
        _emnist_info("bymerge", _DIGITS + _UPPER + _MERGED_LOWER, (697932, 116323),
                     "EMNIST ByMerge: all of NIST SD 19, 47 unbalanced classes (look-alike lower case merged)."),
        _emnist_info("balanced", _DIGITS + _UPPER + _MERGED_LOWER, (112800, 18800),
                     "EMNIST Balanced: 47 classes (as ByMerge), 2,400 train / 400 test per class."),
        # Letters: the file labels are 1..26 and each mapping row is "label upper lower"; the class name
        # is the upper-case letter (class 'A' holds both 'A' and 'a').
        _emnist_info("letters", _UPPER, (124800, 20800),
                     "EMNIST Letters: 26 classes, upper and lower case merged (named by the capital).",
                     label_offset=1),
        _emnist_info("digits", _DIGITS, (240000, 40000),
                     "EMNIST Digits: 10 balanced digit classes, 24,000 train / 4,000 test per class."),
        _emnist_info("mnist", _DIGITS, (60000, 10000),
                     "EMNIST MNIST: 10 balanced digit classes, MNIST-sized (NIST SD 19 digits, not MNIST's)."),
    )
}

# --------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a dataset, in memory.

    images: (N, 28, 28) uint8, upright, ink bright (high) on a dark 0 background, like MNIST.
    labels: (N,) int64, 0-based class indices into `classes`.
    classes: class index -> character.
    """

    name: str
    split: str
    images: torch.Tensor = field(repr=False)
    labels: torch.Tensor = field(repr=False)
    classes: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, classes={len(self.classes)})"


# --------------------------------------------------------------------------------------------------
# Data folder
# --------------------------------------------------------------------------------------------------


def _resolve_with_source(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser(), "given explicitly (--data-dir)"
    env = os.environ.get("SCRAWL_DATA", "").strip()
    if env:
        return Path(env).expanduser(), "from $SCRAWL_DATA"
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "scrawl" / "data", "the default cache folder (neither --data-dir nor SCRAWL_DATA was set)"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: `data_dir` if given, else $SCRAWL_DATA, else $XDG_CACHE_HOME/scrawl/data
    (~/.cache/scrawl/data when XDG_CACHE_HOME is unset). The folder need not exist."""
    return _resolve_with_source(data_dir)[0]


def _info(name: str) -> DatasetInfo:
    key = str(name).strip().lower().replace("_", "-")
    try:
        return DATASETS[key]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}") from None


def _check_split(info: DatasetInfo, split: str) -> None:
    if split not in info.files:
        raise DataError(f"{info.name} has no split {split!r}: choose one of {', '.join(info.files)}")


def _mirror_bases(info: DatasetInfo, mirrors: Sequence[str] | None) -> list[str]:
    if mirrors:
        bases = [m for m in mirrors if m and m.strip()]
    else:
        env = os.environ.get("SCRAWL_MIRRORS", "")
        bases = [m for m in (s.strip() for s in env.split(",")) if m] or list(info.mirrors)
    return [b.strip() for b in bases]


def _join_url(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


# --------------------------------------------------------------------------------------------------
# IDX and mapping files
# --------------------------------------------------------------------------------------------------

_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int", 0x0D: "float", 0x0E: "double"}
_MAX_IDX_BYTES = 1 << 32  # no real dataset comes close; refuses absurd headers before allocating


def _read_exact(stream, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_idx(path: str | os.PathLike, *, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) of unsigned bytes into a numpy array.

    Gzip is detected by its magic bytes (1f 8b), not by the file name. The header must be
    00 00 08 <ndim> followed by ndim big-endian uint32 sizes, and the payload must hold exactly
    prod(sizes) bytes. If `ndim` is given, the file must have that many dimensions.
    Any problem (missing file, wrong magic, other data type, truncated or trailing data, truncated or
    corrupted gzip) raises DataError naming the file.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot open: {exc.strerror or exc}") from None
    with raw:
        is_gzip = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        try:
            if is_gzip:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _read_idx_stream(stream, path, ndim, compressed_size=None)
            return _read_idx_stream(raw, path, ndim, compressed_size=os.fstat(raw.fileno()).st_size)
        except EOFError:
            raise DataError(
                f"{path}: the gzip data ends early: the file is truncated (an incomplete download or copy). "
                "Delete it and download it again."
            ) from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise DataError(
                f"{path}: corrupted gzip data ({exc}). Delete it and download it again."
            ) from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _read_idx_stream(stream, path: Path, ndim: int | None, compressed_size: int | None) -> np.ndarray:
    what = "decompressed data" if compressed_size is None else "file"
    header = _read_exact(stream, 4)
    if len(header) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(header)} bytes of {what})")
    if header[0] != 0 or header[1] != 0:
        raise DataError(
            f"{path}: not an IDX file: it starts with bytes {header.hex(' ')} instead of 00 00 08 <ndim>"
        )
    if header[2] != 0x08:
        kind = _IDX_TYPES.get(header[2], "unknown")
        raise DataError(
            f"{path}: IDX data type 0x{header[2]:02x} ({kind}) is not supported: only unsigned-byte (0x08) "
            "IDX files, as in MNIST and EMNIST, can be read"
        )
    nd = header[3]
    if not 1 <= nd <= 4:
        raise DataError(f"{path}: IDX header claims {nd} dimensions (expected 1 to 4): the file is not valid IDX")
    if ndim is not None and nd != ndim:
        kind = {1: "a labels file", 3: "an images file"}.get(ndim, f"{ndim}-dimensional")
        raise DataError(f"{path}: has {nd} dimension(s), expected {ndim} ({kind}): is it the right file?")
    dims_raw = _read_exact(stream, 4 * nd)
    if len(dims_raw) < 4 * nd:
        raise DataError(f"{path}: truncated in the IDX header (the dimension sizes are incomplete)")
    dims = struct.unpack(f">{nd}I", dims_raw)
    count = 1
    for d in dims:
        count *= d
    shape = " x ".join(map(str, dims))
    if count > _MAX_IDX_BYTES:
        raise DataError(f"{path}: IDX header claims an implausible size ({shape}): the file is not valid IDX")
    header_len = 4 + 4 * nd
    if compressed_size is not None:  # raw file: its size says everything before reading it
        payload = compressed_size - header_len
        if payload < count:
            raise DataError(
                f"{path}: truncated: {payload} bytes of data, but the header ({shape}) needs {count}. "
                "Replace the file with a complete copy."
            )
        if payload > count:
            raise DataError(
                f"{path}: {payload - count} unexpected bytes after the data (header says {shape}): "
                "the file is damaged or not what its name says. Replace it."
            )
    array = np.empty(count, dtype=np.uint8)
    view = memoryview(array)
    got = 0
    while got < count:  # bounded chunks: never a second full-size copy of the data in memory
        chunk = stream.read(min(count - got, 1 << 24))
        if not chunk:
            break
        view[got:got + len(chunk)] = chunk
        got += len(chunk)
    if got < count:
        raise DataError(
            f"{path}: truncated: {got} bytes of {what} after the header, but the header ({shape}) needs {count}. "
            "Delete the file and download it again."
        )
    if stream.read(1):  # also makes gzip check its CRC and length trailer
        raise DataError(
            f"{path}: unexpected bytes after the data (header says {shape}): the file is damaged or not what "
            "its name says. Delete it and download it again."
        )
    return array.reshape(dims)


def read_mapping(path: str | os.PathLike) -> list[str]:
    """Read an EMNIST mapping file ("label ascii-code" per line, CRLF tolerated) into class names in
    label order (list index i = i-th smallest label).

    Labels must be consecutive, starting at 0 or 1 (emnist-letters starts at 1). Rows with more than one
    code ("1 65 97" in letters: label, upper, lower) are named by the first code, the upper-case letter.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("ascii")
    except FileNotFoundError:
        raise DataError(f"{path}: mapping file not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not an EMNIST mapping file (it is not plain ASCII text)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    rows: dict[int, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) < 2 or not 0 <= numbers[0] or not 32 < numbers[1] < 127:
            raise DataError(
                f"{path}, line {lineno}: expected 'label ascii-code' (two integers, a printable ASCII code), "
                f"got {line.strip()!r}"
            )
        if numbers[0] in rows:
            raise DataError(f"{path}, line {lineno}: label {numbers[0]} appears twice")
        rows[numbers[0]] = chr(numbers[1])
    if not rows:
        raise DataError(f"{path}: empty mapping file")
    labels = sorted(rows)
    if labels[0] not in (0, 1) or labels != list(range(labels[0], labels[0] + len(labels))):
        raise DataError(
            f"{path}: labels must be consecutive and start at 0 or 1, got {labels[0]}..{labels[-1]} "
            f"with {len(labels)} rows"
        )
    return [rows[label] for label in labels]


# --------------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------------

_digest_cache: dict[tuple[str, int, int, str], str] = {}


def _file_digest(path: Path, algo: str) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, algo)
    if key in _digest_cache:
        return _digest_cache[key]
    _digest_cache[key] = digest = file_digest(path, algo)
    return digest


def _remember_digest(path: Path, algo: str, digest: str) -> None:
    st = path.stat()
    _digest_cache[(str(path.resolve()), st.st_size, st.st_mtime_ns, algo)] = digest


def _check_file(info: DatasetInfo, path: Path) -> tuple[bool | None, str]:
    """(True, how) if verified, (False, problem) if it fails its pinned size/checksum,
    (None, why) if it cannot be verified (raw file, no pinned sum)."""
    fname = path.name
    if path.suffix != ".gz":
        return None, "uncompressed file: no checksum to check (its structure is checked when loaded)"
    sha, size, md5 = info.sha256.get(fname), info.sizes.get(fname), info.md5.get(fname)
    try:
        actual_size = path.stat().st_size
        if size is not None and actual_size != size:
            shorter = "truncated? " if actual_size < size else ""
            return False, f"size mismatch: {actual_size} bytes, expected {size} ({shorter}not the official file)"
        if sha:
            got = _file_digest(path, "sha256")
            if got != sha.lower():
                return False, f"SHA-256 mismatch: expected {sha}, got {got}"
            return True, "SHA-256 matches"
        if md5:
            got = _file_digest(path, "md5")
            if got != md5.lower():
                return False, f"MD5 mismatch: expected {md5}, got {got}"
            return True, "MD5 matches (no SHA-256 is known for this file)"
    except OSError as exc:
        return False, f"cannot read: {exc.strerror or exc}"
    return None, "no pinned checksum for this file (its structure is checked when loaded)"


def _verify_or_raise(info: DatasetInfo, path: Path) -> None:
    ok, detail = _check_file(info, path)
    if ok is False:
        raise DataError(
            f"{path}: {detail}. The file is damaged or not the official one: delete it and run again to "
            "download a fresh copy (or replace it with the official file)."
        )


# --------------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------------


class _MirrorFailure(Exception):
    """One mirror failed; the next one may work."""


def _tmp_name(dest: Path) -> Path:
    return dest.with_name(f"{dest.name}.part-{secrets.token_hex(6)}")


def _progress_bar(total: int | None, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled,
                leave=False)


def _copy_verified(src, tmp: Path, *, sha256: str | None, md5: str | None, size: int | None,
                   announced: int | None, read_error: tuple[type[BaseException], ...], bar,
                   broke_off: str = "transfer broke off") -> str:
    """Stream `src` into the new file `tmp`, hashing as it goes; raise _MirrorFailure on a bad transfer.
    Returns the SHA-256 of what was written."""
    h_sha = hashlib.sha256()
    h_md5 = hashlib.md5() if md5 and not sha256 else None
    written = 0
    try:
        out = open(tmp, "xb")
    except OSError as exc:
        raise DataError(f"cannot write {tmp}: {exc.strerror or exc}. Choose a writable data folder "
                        "with --data-dir or SCRAWL_DATA.") from None
    with out:
        while True:
            try:
                chunk = src.read(1 << 16)
            except read_error as exc:
                reason = str(exc) or type(exc).__name__
                raise _MirrorFailure(f"{broke_off} after {written} bytes ({reason})") from None
            if not chunk:
                break
            try:
                out.write(chunk)
            except OSError as exc:
                raise DataError(f"cannot write {tmp}: {exc.strerror or exc} (is the disk full?)") from None
            h_sha.update(chunk)
            if h_md5 is not None:
                h_md5.update(chunk)
            written += len(chunk)
            bar.update(len(chunk))
        if announced is not None and written < announced:
            raise _MirrorFailure(f"incomplete transfer: got {written} of {announced} bytes (Content-Length)")
        if size is not None and written != size:
            raise _MirrorFailure(f"wrong size: got {written} bytes, expected {size}")
        digest = h_sha.hexdigest()
        if sha256 and digest != sha256.lower():
            raise _MirrorFailure(f"checksum mismatch: expected SHA-256 {sha256}, got {digest}")
        if h_md5 is not None and h_md5.hexdigest() != md5.lower():
            raise _MirrorFailure(f"checksum mismatch: expected MD5 {md5}, got {h_md5.hexdigest()}")
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise DataError(f"cannot write {tmp}: {exc.strerror or exc} (is the disk full?)") from None
    return digest


def _download_one(url: str, dest: Path, sha256: str | None, md5: str | None, size: int | None,
                  progress: bool, timeout: float) -> None:
    tmp = _tmp_name(dest)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "scrawl (python urllib)"})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise _MirrorFailure(f"HTTP error {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise _MirrorFailure(f"cannot connect: {exc.reason}") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise _MirrorFailure(f"cannot connect: {exc or type(exc).__name__}") from None
        with response:
            length = response.headers.get("Content-Length", "")
            announced = int(length) if length.strip().isdigit() else None
            if size is not None and announced is not None and announced != size:
                raise _MirrorFailure(f"server announces {announced} bytes, expected {size}: not the official file")
            with _progress_bar(announced, dest.name, progress) as bar:
                digest = _copy_verified(
                    response, tmp, sha256=sha256, md5=md5, size=size, announced=announced,
                    read_error=(OSError, http.client.HTTPException), bar=bar,
                )
        os.replace(tmp, dest)
        fsync_folder(dest.parent)
        _remember_digest(dest, "sha256", digest)
    finally:
        tmp.unlink(missing_ok=True)


def download_file(urls: Sequence[str] | str, dest: str | os.PathLike, sha256: str | None, *,
                  progress: bool = False, timeout: float = 30, size: int | None = None,
                  md5: str | None = None) -> Path:
    """Download `dest` from the first of `urls` that delivers a complete, verified copy.

    Each try streams into a temporary file next to `dest` (``<name>.part-<random>``), hashing as it
    goes; the file must be as long as the server's Content-Length (and `size`, if given) and match
    `sha256` (or `md5` when no SHA-256 is given). Only then is it fsynced and renamed to `dest`. A failed
    try removes its temporary file and moves on to the next URL; if all fail, DownloadError lists each
    URL and why it failed. `dest` is never left half-written.
    """
    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise DownloadError(f"no URL to download {dest.name} from: give a mirror (SCRAWL_MIRRORS)")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the folder {dest.parent}: {exc.strerror or exc}. Choose a writable data folder "
            "with --data-dir or SCRAWL_DATA."
        ) from None
    failures: list[str] = []
    for url in urls:
        log.info("downloading %s from %s", dest.name, url)
        try:
            _download_one(url, dest, sha256, md5, size, progress, timeout)
        except _MirrorFailure as exc:
            log.info("download of %s from %s failed: %s", dest.name, url, exc)
            failures.append(f"  - {url}: {exc}")
            continue
        log.info("saved %s", dest)
        return dest
    raise DownloadError(f"could not download {dest.name} into {dest.parent}; tried:\n" + "\n".join(failures))


# --------------------------------------------------------------------------------------------------
# Finding and fetching a split's files
# --------------------------------------------------------------------------------------------------


def _locate(folder: Path, fname: str) -> Path | None:
    """The file, or its uncompressed twin (same name without .gz), or None."""
    path = folder / fname
    if path.is_file():
        return path
    if fname.endswith(".gz"):
        plain = folder / fname[: -len(".gz")]
        if plain.is_file():
            return plain
    return None


def _missing_message(info: DatasetInfo, split: str, missing: Sequence[str], folder: Path, how: str,
                     bases: Sequence[str], reason: str) -> str:
    lines = [f"{info.name} ({split}) is not available: {reason}. Missing:"]
    lines += [f"  {folder / f}" for f in missing]
    lines.append(f"Looked in {folder} (data folder {folder.parent}, {how}).")
    lines.append("To fix, do one of:")
    if info.archive:
        urls = [_join_url(b, info.archive) for b in bases]
        lines.append(f"  - download NIST's {info.archive} ({' or '.join(urls)}) and put it in {folder}/ "
                     "(Scrawl extracts what it needs), or put the listed files there;")
    else:
        lines.append("  - download the listed files into " + f"{folder}/ from " + " or ".join(bases) + ";")
    lines.append(f"  - point --data-dir or SCRAWL_DATA at a folder that holds {info.subdir}/ with these files;")
    lines.append("  - allow downloading (and a network connection), or set SCRAWL_MIRRORS to mirrors you can reach.")
    return "\n".join(lines)


def _extract_from_archive(info: DatasetInfo, archive: Path, wanted: Sequence[str], folder: Path,
                          progress: bool) -> dict[str, str]:
    """Extract the `wanted` members of `archive` into `folder`, each verified and renamed into place.
    Returns {file name: problem} for those that failed."""
    failures: dict[str, str] = {}
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        return {f: f"{archive} is not a readable zip archive ({exc})" for f in wanted}
    with zf:
        members: dict[str, str] = {}
        for member in zf.namelist():
            base = PurePosixPath(member).name
            if base not in members or member == info.archive_dir + base:
                members[base] = member
        for fname in wanted:
            member = members.get(fname)
            if member is None:
                failures[fname] = f"not in {archive.name}"
                continue
            dest = folder / fname
            tmp = _tmp_name(dest)
            try:
                with zf.open(member) as src, _progress_bar(zf.getinfo(member).file_size, fname, progress) as bar:
                    digest = _copy_verified(
                        src, tmp, sha256=info.sha256.get(fname), md5=info.md5.get(fname),
                        size=info.sizes.get(fname), announced=None,
                        read_error=(zipfile.BadZipFile, zlib.error, EOFError, OSError), bar=bar,
                        broke_off="damaged archive member: reading failed",
                    )
                os.replace(tmp, dest)
                fsync_folder(folder)
                _remember_digest(dest, "sha256", digest)
                log.info("extracted %s from %s", fname, archive.name)
            except _MirrorFailure as exc:
                failures[fname] = f"{member} in {archive.name}: {exc}"
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                failures[fname] = f"{member} in {archive.name} is damaged ({exc})"
            finally:
                tmp.unlink(missing_ok=True)
    return failures


def _fetch(info: DatasetInfo, split: str, missing: list[str], folder: Path, how: str,
           bases: list[str], progress: bool) -> None:
    """Download (or extract) the `missing` files of `split` into `folder`; DataError if that fails."""
    if not info.archive:
        for fname in missing:
            try:
                download_file([_join_url(b, fname) for b in bases], folder / fname, info.sha256.get(fname),
                              progress=progress, size=info.sizes.get(fname), md5=info.md5.get(fname))
            except DownloadError as exc:
                raise DownloadError(
                    f"{exc}\n\n" + _missing_message(info, split, missing, folder, how, bases, "the download failed")
                ) from None
        return

    # EMNIST: everything comes out of one big zip. While we have it, extract every missing file of
    # this dataset (both splits and the mapping), not only the split asked for.
    extra = [f for f in info.all_files() if f not in missing and _locate(folder, f) is None]
    local = folder / info.archive
    if local.is_file():
        log.info("extracting %s from %s", ", ".join(missing), local)
        failures = _extract_from_archive(info, local, missing + extra, folder, progress)
        _raise_extract_failures(info, split, missing, failures, folder, how, bases,
                                hint=f"{local} is damaged or incomplete: delete it or replace it with NIST's "
                                     f"{info.archive}.")
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the folder {folder}: {exc.strerror or exc}. Choose a writable data "
                        "folder with --data-dir or SCRAWL_DATA.") from None
    tmp_zip = folder / f".{info.archive}.download-{secrets.token_hex(6)}"
    try:
        try:
            download_file([_join_url(b, info.archive) for b in bases], tmp_zip, None, progress=progress,
                          timeout=60)
        except DownloadError as exc:
            raise DownloadError(
                f"{exc}\n\n" + _missing_message(info, split, missing, folder, how, bases, "the download failed")
            ) from None
        failures = _extract_from_archive(info, tmp_zip, missing + extra, folder, progress)
        _raise_extract_failures(info, split, missing, failures, folder, how, bases,
                                hint="The downloaded archive was damaged or not the official one; try again later "
                                     "or another mirror (SCRAWL_MIRRORS).", download=True)
    finally:
        tmp_zip.unlink(missing_ok=True)


def _raise_extract_failures(info, split, missing, failures, folder, how, bases, *, hint, download=False):
    for fname, problem in failures.items():
        if fname not in missing:
            log.warning("could not extract %s (not needed now): %s", fname, problem)
    needed = {f: p for f, p in failures.items() if f in missing}
    if needed:
        details = "\n".join(f"  - {f}: {p}" for f, p in needed.items())
        cls = DownloadError if download else DataError
        raise cls(f"could not get {', '.join(needed)} from the archive:\n{details}\n{hint}\n\n"
                  + _missing_message(info, split, list(needed), folder, how, bases, "extraction failed"))


def ensure_files(name: str, split: str, data_dir: str | os.PathLike | None = None, *, download: bool = True,
                 mirrors: list[str] | None = None, progress: bool = False) -> dict[str, Path]:
    """Paths of a split's files: {"images": ..., "labels": ...} plus "mapping" for EMNIST.

    Missing files are downloaded if `download` (MNIST from its mirrors, EMNIST out of NIST's gzip.zip or
    a gzip.zip already in the folder). Every present .gz file is checked against its pinned size and
    SHA-256. Raw (un-gzipped) files are used as they are.

    The EMNIST mapping file is optional: if it is missing (and nothing else is), "mapping" is left out
    and the loader uses the official class list built into `DATASETS`.
    """
    info = _info(name)
    _check_split(info, split)
    root, how = _resolve_with_source(data_dir)
    folder = root / info.subdir
    bases = _mirror_bases(info, mirrors)

    wanted = dict(info.files[split])
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, fname in wanted.items():
        path = _locate(folder, fname)
        if path is None:
            missing.append(fname)
        else:
            found[role] = path
    if missing:
        if info.mapping and _locate(folder, info.mapping) is None:
            missing.append(info.mapping)
        local_archive = info.archive and (folder / info.archive).is_file()
        if not download and not local_archive:
            raise DataError(_missing_message(info, split, missing, folder, how, bases, "downloading is turned off"))
        _fetch(info, split, missing, folder, how, bases, progress)
        for role, fname in wanted.items():
            found.setdefault(role, folder / fname)
    if info.mapping:
        mapping = _locate(folder, info.mapping)
        if mapping is not None:
            found["mapping"] = mapping
        else:
            log.info("%s not found in %s: using the built-in class list", info.mapping, folder)
    for role in ("images", "labels"):
        _verify_or_raise(info, found[role])
    return found


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _classes_for(info: DatasetInfo, mapping: Path | None) -> list[str]:
    if mapping is None:
        return list(info.classes)
    classes = read_mapping(mapping)
    if tuple(classes) != info.classes:
        raise DataError(
            f"{mapping}: does not match the official {info.name} mapping "
            f"(expected {len(info.classes)} classes {''.join(info.classes)!r}, "
            f"got {len(classes)} {''.join(classes)!r}). "
            "Delete it (Scrawl then uses its built-in list) or replace it with the official file."
        )
    return classes


# Datasets derived from the files above, for what can be trained offline here (see SOURCES.md):
# name -> (source dataset, source split, test fraction, fixed seed). The source split is cut once,
# by the fixed seed, into a "train" part and a "test" part that never mix; training then holds out
# its own validation part from "train". Figures on these are NOT official EMNIST test results.
RESPLITS: dict[str, tuple[str, str, float, int]] = {
    "emnist-byclass-testhalf": ("emnist-byclass", "test", 0.2, 20171201),
}
# LEAF's FEMNIST sample (other pixel processing, ink dark on white, grouped by writer): a robustness
# check for character models, not a benchmark. File: <data_dir>/femnist_leaf_sample/femnist_leaf_sample.npz
FEMNIST = "femnist-sample"
FEMNIST_FILE = ("femnist_leaf_sample", "femnist_leaf_sample.npz")


def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None, *,
                 download: bool = True, mirrors: list[str] | None = None, progress: bool = False) -> Dataset:
    """Load one split as a `Dataset` (images upright, uint8; labels int64 from 0), downloading the
    files first if needed (see `ensure_files`)."""
    import torch

    key = str(name).strip().lower().replace("_", "-")
    if key in RESPLITS:
        source, source_split, test_fraction, seed = RESPLITS[key]
        if split not in ("train", "test"):
            raise DataError(f"{key} has no split {split!r}: choose train or test")
        full = load_dataset(source, source_split, data_dir, download=download, mirrors=mirrors, progress=progress)
        train_idx, test_idx = split_train_val(len(full), test_fraction, seed)
        idx = train_idx if split == "train" else test_idx
        return Dataset(name=key, split=split, images=full.images[idx].contiguous(), labels=full.labels[idx].contiguous(),
                       classes=full.classes)
    if key == FEMNIST:
        return _load_femnist(split, data_dir)

    info = _info(name)
    paths = ensure_files(info.name, split, data_dir, download=download, mirrors=mirrors, progress=progress)
    images = read_idx(paths["images"], ndim=3)
    labels = read_idx(paths["labels"], ndim=1)
    classes = _classes_for(info, paths.get("mapping"))
    if images.shape[1:] != (28, 28):
        raise DataError(f"{paths['images']}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{paths['images']} holds {images.shape[0]} images but {paths['labels']} holds {labels.shape[0]} "
            "labels: the two files do not belong together. Replace them with a matching pair."
        )
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        first = info.label_offset
        if low < first or high - first >= len(classes):
            raise DataError(
                f"{paths['labels']}: labels run from {low} to {high}, but {info.name} has labels "
                f"{first}..{first + len(classes) - 1}: the file does not belong to this dataset"
            )
    if info.transposed:
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    label_tensor = torch.from_numpy(labels.astype(np.int64))
    if info.label_offset:
        label_tensor -= info.label_offset
    counts = info.counts.get(split)
    if counts is not None and counts != len(labels):
        log.warning("%s %s has %d samples; the official split has %d", info.name, split, len(labels), counts)
    log.info("loaded %s %s: %d images, %d classes", info.name, split, len(labels), len(classes))
    return Dataset(name=info.name, split=split, images=torch.from_numpy(images), labels=label_tensor,
                   classes=classes)


def _load_femnist(split: str, data_dir) -> Dataset:
    import torch

    if split not in ("train", "test"):
        raise DataError(f"{FEMNIST} has no split {split!r}: choose train or test")
    root, how = _resolve_with_source(data_dir)
    path = root.joinpath(*FEMNIST_FILE)
    if not path.is_file():
        raise DataError(f"{FEMNIST}: {path} is missing (looked in {root}, chosen by {how}); it is LEAF's FEMNIST "
                        "sample as a numpy .npz with train_images/train_labels/test_images/test_labels")
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a readable FEMNIST sample: {exc}") from None
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(f"{path}: expected (N, 28, 28) images with N labels, got {images.shape} and {labels.shape}")
    # LEAF stores dark ink on white (255 = background): flip to Scrawl's ink-bright convention.
    images = 255 - images.astype(np.uint8)
    return Dataset(name=FEMNIST, split=split, images=torch.from_numpy(np.ascontiguousarray(images)),
                   labels=torch.from_numpy(labels.astype(np.int64)), classes=list(_DIGITS + _UPPER + _LOWER))


def split_train_val(n: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split range(n) into (train_idx, val_idx): a seeded random permutation (torch.Generator, so the
    same seed gives the same split on any machine), round(n * val_fraction) indices for validation.
    Both are sorted int64 tensors, disjoint, and together cover range(n)."""
    import torch

    try:
        n = operator.index(n)
    except TypeError:
        raise DataError(f"cannot split {n!r} samples: need a whole number") from None
    if n < 0:
        raise DataError(f"cannot split {n} samples: need a count of at least 0")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise DataError(f"validation fraction must be at least 0 and below 1, got {val_fraction}")
    n_val = min(n, int(round(n * float(val_fraction))))
    generator = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=generator, dtype=torch.int64)
    val_idx, _ = torch.sort(perm[:n_val])
    train_idx, _ = torch.sort(perm[n_val:])
    return train_idx, val_idx


# --------------------------------------------------------------------------------------------------
# Status (for `scrawl data list` / `scrawl data verify`)
# --------------------------------------------------------------------------------------------------


def dataset_status(data_dir: str | os.PathLike | None = None, *, verify: bool = True) -> list[dict[str, Any]]:
    """One entry per dataset and split:
    {"dataset", "split", "description", "folder", "present": bool, "verified": bool | None, "files": [...]},
    each file {"role", "file", "path", "present", "verified": bool | None, "detail"}.

    With `verify`, each present .gz file is checked against its pinned size and checksum (this hashes the
    files: a few seconds for the big ones) and a mapping file against the official class list.
    verified is True when every file checked out, False when one is missing or fails, None when all
    are present but some cannot be checked (raw files, no pinned sum) or `verify` is off.
    """
    root, _ = _resolve_with_source(data_dir)
    entries: list[dict[str, Any]] = []
    for info in DATASETS.values():
        folder = root / info.subdir
        for split in info.files:
            roles = list(info.files[split].items()) + ([("mapping", info.mapping)] if info.mapping else [])
            files = []
            for role, fname in roles:
                path = _locate(folder, fname)
                item: dict[str, Any] = {"role": role, "file": fname, "path": str(path or folder / fname),
                                        "present": path is not None, "verified": None, "detail": ""}
                if path is None:
                    if role == "mapping":
                        item["detail"] = "missing (optional: the built-in class list is used)"
                    else:
                        item["verified"], item["detail"] = False, "missing"
                elif verify and role == "mapping":
                    try:
                        _classes_for(info, path)
                        item["verified"], item["detail"] = True, "matches the official class list"
                    except DataError as exc:
                        item["verified"], item["detail"] = False, str(exc)
                elif verify:
                    item["verified"], item["detail"] = _check_file(info, path)
                files.append(item)
            data_files = [f for f in files if f["role"] != "mapping"]
            present = all(f["present"] for f in data_files)
            checked = [f for f in files if f["present"]]
            if not present or any(f["verified"] is False for f in checked):
                verified: bool | None = False
            elif all(f["verified"] is True for f in checked):
                verified = True
            else:
                verified = None
            entries.append({"dataset": info.name, "split": split, "description": info.description,
                            "folder": str(folder), "present": present, "verified": verified, "files": files})
    return entries


# --- temporary (the catalogue split replaces this): what each dataset's images look like ------------
def framing_of(name: str) -> str | None:
    """The framing a dataset's images were made with ("mnist", "emnist"), None for a foreign one (LEAF's
    FEMNIST resizing, which no model is trained on: evaluation always reframes it)."""
    key = str(name).strip().lower().replace("_", "-")
    if key == FEMNIST:
        return None
    return "emnist" if key.startswith("emnist") else "mnist"
