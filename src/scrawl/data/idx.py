"""Strict readers of the IDX files (MNIST, EMNIST) and EMNIST's class mapping files.

`read_idx` accepts only unsigned-byte IDX data, gzip-compressed (detected by its magic bytes) or raw,
and checks the header against the payload; `read_mapping` reads "label ascii-code" rows. Any problem
raises DataError naming the file and saying what to do.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

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
