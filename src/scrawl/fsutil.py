"""Small file-system helpers shared by downloads, checkpoints and exports."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


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
