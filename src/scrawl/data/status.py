"""What is in the data folder, for `scrawl data list` and `scrawl data verify`: `dataset_status`.

One entry per catalogue dataset and split. A derived dataset reports the files it is made from: a
re-split is present (and verified) when its source split is; LEAF's FEMNIST sample when its .npz is
there (it has no pinned checksum).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DataError
from .catalogue import DATASETS, DatasetInfo
from .checksums import check_file
from .datasets import classes_for
from .folder import locate, resolve_with_source


def dataset_status(data_dir: str | os.PathLike | None = None, *, verify: bool = True) -> list[dict[str, Any]]:
    """One entry per dataset and split:
    {"dataset", "split", "description", "folder", "present": bool, "verified": bool | None,
    "source": "<dataset> <split>" for a re-split (else None), "files": [...]},
    each file {"role", "file", "path", "present", "verified": bool | None, "detail"}.

    With `verify`, each present .gz file is checked against its pinned size and checksum (this hashes the
    files: a few seconds for the big ones) and a mapping file against the official class list.
    verified is True when every file checked out, False when one is missing or fails, None when all
    are present but some cannot be checked (raw files, no pinned sum) or `verify` is off.
    """
    root, _ = resolve_with_source(data_dir)
    done: dict[tuple[str, str], dict[str, Any]] = {}
    for info in DATASETS.values():
        for split in info.splits:
            done[info.name, split] = _split_status(info, split, root, verify, done)
    return list(done.values())


def _split_status(info: DatasetInfo, split: str, root: Path, verify: bool,
                  done: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    if info.resplit is not None:
        cut = info.resplit
        source = done.get((cut.source, cut.split))
        if source is None:
            source = _split_status(DATASETS[cut.source], cut.split, root, verify, done)
        return {**source, "dataset": info.name, "split": split, "description": info.description,
                "source": f"{cut.source} {cut.split}", "files": [dict(f) for f in source["files"]]}
    folder = root / info.subdir
    roles = list(info.files[split].items()) + ([("mapping", info.mapping)] if info.mapping else [])
    files = [_file_status(info, role, fname, folder, verify) for role, fname in roles]
    data_files = [f for f in files if f["role"] != "mapping"]
    present = all(f["present"] for f in data_files)
    checked = [f for f in files if f["present"]]
    if not present or any(f["verified"] is False for f in checked):
        verified: bool | None = False
    elif all(f["verified"] is True for f in checked):
        verified = True
    else:
        verified = None
    return {"dataset": info.name, "split": split, "description": info.description, "folder": str(folder),
            "present": present, "verified": verified, "source": None, "files": files}


def _file_status(info: DatasetInfo, role: str, fname: str, folder: Path, verify: bool) -> dict[str, Any]:
    path = locate(folder, fname)
    item: dict[str, Any] = {"role": role, "file": fname, "path": str(path or folder / fname),
                            "present": path is not None, "verified": None, "detail": ""}
    if path is None:
        if role == "mapping":
            item["detail"] = "missing (optional: the built-in class list is used)"
        else:
            item["verified"], item["detail"] = False, "missing"
    elif verify and role == "mapping":
        try:
            classes_for(info, path)
            item["verified"], item["detail"] = True, "matches the official class list"
        except DataError as exc:
            item["verified"], item["detail"] = False, str(exc)
    elif verify:
        item["verified"], item["detail"] = check_file(info, path)
    return item
