"""The data folder: which one (`resolve_data_dir`), finding a dataset file in it (`locate`), and
removing the folders a failed fetch created (`removing_new_folders`).

The folder is an explicit one (``--data-dir``), else ``$SCRAWL_DATA``, else a user cache folder, laid out
as ``<data_dir>/<subdir>/<file>`` with each dataset's subdir and file names from the catalogue, e.g.
``<data_dir>/mnist/train-images-idx3-ubyte.gz``. A raw (un-gzipped) file of the same name without
``.gz`` is accepted too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def resolve_with_source(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """The data folder and how it was chosen (for messages)."""
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
    return resolve_with_source(data_dir)[0]


def locate(folder: Path, fname: str) -> Path | None:
    """The file, or its uncompressed twin (same name without .gz), or None."""
    path = folder / fname
    if path.is_file():
        return path
    if fname.endswith(".gz"):
        plain = folder / fname[: -len(".gz")]
        if plain.is_file():
            return plain
    return None


@contextlib.contextmanager
def removing_new_folders(folder: Path) -> Iterator[None]:
    """If the block fails, remove the folders up to `folder` that it created and left empty."""
    created: list[Path] = []
    path = folder
    while not path.exists() and path.parent != path:
        created.append(path)
        path = path.parent
    try:
        yield
    except BaseException:
        for path in created:  # deepest first; a folder that holds anything stays
            try:
                path.rmdir()
            except OSError:
                break
        raise
