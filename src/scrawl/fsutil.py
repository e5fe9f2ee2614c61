"""File-system helpers: the one atomic writer (checkpoints, ONNX files, reports, downloads) and hashing.

An atomic write goes to a temp file in the destination's folder, is fsynced, then renamed over the
destination, so a reader sees the old file or the new one, never half of one. Temp files are created
with `os.open(..., 0o666)`, so the kernel applies the process umask: no umask toggling, which would
race with other threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

TMP_SUFFIX = ".tmp"


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries, so that a rename into it survives a power cut (POSIX; a no-op where
    folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """Hex digest of a file's contents, read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def temp_path(dest: Path) -> Path:
    """A fresh temp file name beside `dest` (hidden, random, ending in .tmp)."""
    return dest.with_name(f".{dest.name}.{secrets.token_hex(6)}{TMP_SUFFIX}")


def remove_stale_temps(dest: Path) -> None:
    """Delete temp files that a writer killed between creating and renaming them left beside `dest`."""
    for stale in dest.parent.glob(f".{dest.name}.*{TMP_SUFFIX}"):
        stale.unlink(missing_ok=True)


@contextlib.contextmanager
def open_temp(dest: Path, *, binary: bool = True) -> Iterator[tuple[IO, Path]]:
    """Create a new temp file beside `dest` (mode 0o666 less the umask) and yield (file, path). The data
    is flushed and fsynced on exit; on an exception the temp file is removed. Renaming is the caller's."""
    tmp = temp_path(dest)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None] | bytes | str, *, binary: bool | None = None) -> Path:
    """Write one file atomically. `write` is the content (bytes or str) or a function that writes to the
    open file. Raises OSError as it comes (callers turn it into their own error)."""
    path = Path(path)
    if binary is None:
        binary = not isinstance(write, str)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    with open_temp(path, binary=binary) as (f, tmp):
        if callable(write):
            write(f)
        else:
            f.write(write)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_folder(folder)  # so the rename itself survives a power cut
    return path


def atomic_write_all(files: Sequence[tuple[Path, bytes]]) -> None:
    """Write several files all or none: each goes to a complete, fsynced temp file first; only then are
    they renamed into place in the order given (put the file readers check last, last)."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            path = Path(path)
            (path.parent if str(path.parent) else Path(".")).mkdir(parents=True, exist_ok=True)
            remove_stale_temps(path)
            with open_temp(path) as (f, tmp):
                temps.append((tmp, path))
                f.write(data)
        for tmp, path in temps:
            os.replace(tmp, path)
        for folder in {path.parent for _, path in temps}:
            fsync_folder(folder if str(folder) else Path("."))
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # already renamed unless something failed
