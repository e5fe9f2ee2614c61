"""Datasets: what Scrawl knows about each one, and finding, downloading, verifying and loading them as
in-memory uint8 tensors.

* `catalogue`: one `DatasetInfo` per dataset (files, pinned checksums, mirrors, classes, framing,
  kind, reader); `dataset_info(name)`, `framing_of(name)`.
* `folder`: which data folder (``--data-dir``, ``$SCRAWL_DATA``, a cache folder); `resolve_data_dir`.
* `idx`: strict IDX and EMNIST mapping readers.
* `checksums`, `download`: pinned-sum checks; `ensure_files` and `download_file` (atomic, verified).
* `datasets`: `Dataset`, `load_dataset` (dispatching on the entry's reader), `split_train_val`.
* `status`: `dataset_status`, for `scrawl data list` / `scrawl data verify`.
* For line recognition (kind "lines"): `strokes` renders pen strokes into images, `lines` reads the
  UNIPEN words (writer-disjoint splits) and pads lines into training tensors, `synth` composes strings
  of real isolated characters (numbers, dates, touching digits).

Adding a dataset is one catalogue entry plus, where needed, a reader: an entry in `catalogue.DATASETS`
(its files, checksums, classes, framing and kind); if its files are not IDX, a `_load_<reader>`
function in `datasets.py` that `load_dataset` dispatches to (and a branch in `ensure_files` if the
files are found or fetched differently).

Every problem a user can cause or fix raises `DataError` (or its subclass `DownloadError`) with a
message that names the file and says what to do. Importing this package reads no file; torch is
imported inside the functions that need it.
"""

from __future__ import annotations

from .catalogue import DATASETS, DatasetInfo, Resplit, dataset_info, framing_of
from .datasets import Dataset, load_dataset, split_train_val
from .download import download_file, ensure_files
from .folder import resolve_data_dir
from .idx import read_idx, read_mapping
from .status import dataset_status

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "Resplit",
    "dataset_info",
    "dataset_status",
    "download_file",
    "ensure_files",
    "framing_of",
    "load_dataset",
    "read_idx",
    "read_mapping",
    "resolve_data_dir",
    "split_train_val",
]
