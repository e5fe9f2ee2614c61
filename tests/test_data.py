"""Tests for scrawl.data: IDX parsing, EMNIST orientation and labels, checksums, downloads (against a
local HTTP server only, never the internet), data-folder resolution, train/val splits, real data."""

from __future__ import annotations

import dataclasses
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers_idx import (
    BALANCED_CLASSES,
    LETTERS,
    MNIST_FILES,
    emnist_file_bytes,
    glyph_f,
    gz,
    idx_bytes,
    mapping_text,
    mnist_file_bytes,
    sha256,
    write_idx,
    zip_bytes,
)
from scrawl import data
from scrawl.errors import DataError, DownloadError, ScrawlError
from scrawl.fsutil import TMP_SUFFIX


# --------------------------------------------------------------------------------------------------
# helpers / fixtures
# --------------------------------------------------------------------------------------------------


def pin(monkeypatch, name: str, files: dict[str, bytes], *, keep_others: bool = False) -> None:
    """Make DATASETS[name] pin exactly these files' SHA-256 and sizes (nothing else, unless keep_others)."""
    info = data.DATASETS[name]
    sha = dict(info.sha256) if keep_others else {}
    sizes = dict(info.sizes) if keep_others else {}
    for fname, content in files.items():
        sha[fname] = sha256(content)
        sizes[fname] = len(content)
    monkeypatch.setitem(data.DATASETS, name, dataclasses.replace(info, sha256=sha, sizes=sizes, md5={}))


def unpin(monkeypatch, name: str) -> None:
    info = data.DATASETS[name]
    monkeypatch.setitem(data.DATASETS, name, dataclasses.replace(info, sha256={}, sizes={}, md5={}))


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for fname, content in files.items():
        (folder / fname).write_bytes(content)


def leftovers(folder: Path) -> list[str]:
    """Temporary files a download or extraction may have left behind (scrawl.fsutil's temp names, and
    the names older versions used)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if ".part-" in p.name or ".download-" in p.name or p.name.endswith(TMP_SUFFIX))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the caller's SCRAWL_DATA / SCRAWL_MIRRORS, or writes to the real cache."""
    monkeypatch.delenv("SCRAWL_DATA", raising=False)
    monkeypatch.delenv("SCRAWL_MIRRORS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


class _Server:
    """A local HTTP server: routes[path] = (body, mode), mode 'ok', 'truncate' (announces the full
    Content-Length, sends half, closes) or 'missing' (404)."""

    def __init__(self):
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.hits: list[str] = []
        routes, hits = self.routes, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                hits.append(self.path)
                body, mode = routes.get(self.path, (b"", "missing"))
                if mode == "missing":
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, prefix: str, files: dict[str, bytes], mode: str = "ok") -> str:
        for fname, body in files.items():
            self.routes[f"/{prefix}/{fname}"] = (body, mode)
        return f"{self.base}/{prefix}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture
def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# --------------------------------------------------------------------------------------------------
# IDX parsing
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("shape", [(5, 28, 28), (7,), (2, 3, 4, 5)])
def test_read_idx_round_trip(tmp_path, compress, shape):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    path = write_idx(tmp_path / "x-idx", array, compress=compress)
    out = data.read_idx(path)
    assert out.dtype == np.uint8
    assert out.shape == shape
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable  # torch.from_numpy must get a writable array


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8)
    path = tmp_path / "labels.idx1-ubyte"  # no .gz, but gzip inside
    path.write_bytes(gz(idx_bytes(array)))
    np.testing.assert_array_equal(data.read_idx(path), array)
    named_gz = tmp_path / "plain.gz"  # .gz name, raw IDX inside
    named_gz.write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(data.read_idx(named_gz), array)


def test_read_idx_empty_dataset(tmp_path):
    path = write_idx(tmp_path / "empty.gz", np.zeros((0, 28, 28), dtype=np.uint8))
    assert data.read_idx(path).shape == (0, 28, 28)


def _good() -> bytes:
    return idx_bytes(np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28))


def _flip(blob: bytes, index: int) -> bytes:
    b = bytearray(blob)
    b[index] ^= 0xFF
    return bytes(b)


BAD_IDX = {
    # name: (file bytes, words the message must contain)
    "wrong-magic": (b"\x12\x34" + _good()[2:], ["not an IDX file"]),
    "gzip-wrong-magic": (gz(b"PK\x03\x04" + _good()[4:]), ["not an IDX file"]),
    "wrong-dtype-float": (bytes([0, 0, 0x0D, 3]) + _good()[4:], ["0x0d", "unsigned-byte"]),
    "wrong-dtype-int": (gz(bytes([0, 0, 0x0C, 3]) + _good()[4:]), ["0x0c", "unsigned-byte"]),
    "zero-dims": (bytes([0, 0, 8, 0]), ["dimensions"]),
    "empty-file": (b"", ["too short"]),
    "short-header": (_good()[:9], ["truncated", "header"]),
    "truncated-payload-raw": (_good()[:-100], ["truncated", "needs 1568"]),
    "truncated-payload-gzip": (gz(_good()[:-100]), ["truncated", "needs 1568"]),
    "trailing-bytes-raw": (_good() + b"\x00junk", ["5 unexpected bytes"]),
    "trailing-bytes-gzip": (gz(_good() + b"junk"), ["unexpected bytes"]),
    "truncated-gzip": (gz(_good())[:-30], ["truncated"]),
    "gzip-crc-corrupted": (_flip(gz(_good()), -6), ["corrupted", "CRC"]),
    "gzip-deflate-corrupted": (_flip(gz(_good()), 20), ["corrupted"]),
    "garbage-after-gzip": (gz(_good()) + b"garbage!", ["corrupted"]),
    "implausible-size": (bytes([0, 0, 8, 3]) + (0xFFFFFFFF).to_bytes(4, "big") * 3, ["implausible"]),
}


@pytest.mark.parametrize("case", sorted(BAD_IDX))
def test_read_idx_rejects_bad_files(tmp_path, case):
    blob, words = BAD_IDX[case]
    path = tmp_path / f"{case}-idx3-ubyte.gz"
    path.write_bytes(blob)
    with pytest.raises(DataError) as info:
        data.read_idx(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word.lower() in message.lower(), message


def test_read_idx_missing_file_and_wrong_ndim(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        data.read_idx(tmp_path / "nope.gz")
    assert "nope.gz" in str(info.value)
    path = write_idx(tmp_path / "labels.gz", np.arange(5, dtype=np.uint8))
    with pytest.raises(DataError, match="expected 3") as info:
        data.read_idx(path, ndim=3)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------------------
# mapping files
# --------------------------------------------------------------------------------------------------


def test_read_mapping_crlf_and_letters(tmp_path):
    path = tmp_path / "m.txt"
    path.write_bytes(mapping_text(BALANCED_CLASSES))
    assert path.read_bytes().count(b"\r\n") == 47
    assert data.read_mapping(path) == BALANCED_CLASSES
    path.write_bytes(mapping_text(LETTERS, first_label=1, letters=True))
    assert path.read_bytes().startswith(b"1 65 97\r\n")
    assert data.read_mapping(path) == LETTERS
    path.write_bytes(b"2 50\n0 48\n\n1 49\n")  # any order, blank lines tolerated
    assert data.read_mapping(path) == ["0", "1", "2"]


@pytest.mark.parametrize(
    "text, words",
    [
        (b"0 48\n1 x\n", ["line 2"]),
        (b"0 48\n0 49\n", ["line 2", "twice"]),
        (b"0 48\n2 50\n", ["consecutive"]),
        (b"5 48\n6 49\n", ["start at 0 or 1"]),
        (b"", ["empty"]),
        (b"\xff\xfe", ["ASCII"]),
    ],
)
def test_read_mapping_rejects_bad_files(tmp_path, text, words):
    path = tmp_path / "bad-mapping.txt"
    path.write_bytes(text)
    with pytest.raises(DataError) as info:
        data.read_mapping(path)
    assert str(path) in str(info.value)
    for word in words:
        assert word in str(info.value)


# --------------------------------------------------------------------------------------------------
# EMNIST orientation, labels and classes (synthetic files in the official layout)
# --------------------------------------------------------------------------------------------------


def test_emnist_images_are_made_upright(tmp_path, monkeypatch):
    files, upright = emnist_file_bytes("emnist-balanced", n=6)
    write_files(tmp_path / "emnist", files)
    pin(monkeypatch, "emnist-balanced", files)
    ds = data.load_dataset("emnist-balanced", "test", tmp_path, download=False)
    assert ds.images.shape == (6, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.images.is_contiguous()
    np.testing.assert_array_equal(ds.images.numpy(), upright["test"])
    stored = data.read_idx(tmp_path / "emnist" / "emnist-balanced-test-images-idx3-ubyte.gz")
    assert not np.array_equal(stored, upright["test"])  # the glyph really is asymmetric
    # the 'F' is upright: its top bar is a horizontal run of ink at rows 4-6
    assert ds.images[0, 5, 7:21].min() == 255 and ds.images[0, 20, 12:21].max() == 0
    assert ds.classes == BALANCED_CLASSES
    assert ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == list(range(6))
    assert len(ds) == 6


def test_emnist_letters_labels_are_zero_based(tmp_path, monkeypatch):
    files, upright = emnist_file_bytes("emnist-letters", n=30)
    write_files(tmp_path / "emnist", files)
    pin(monkeypatch, "emnist-letters", files)
    ds = data.load_dataset("emnist-letters", "train", tmp_path, download=False)
    assert ds.classes == LETTERS
    stored_labels = data.read_idx(tmp_path / "emnist" / "emnist-letters-train-labels-idx1-ubyte.gz")
    assert stored_labels.min() == 1 and stored_labels.max() == 26
    assert ds.labels.tolist() == [i % 26 for i in range(30)]
    assert ds.classes[ds.labels[0]] == "A" and ds.classes[ds.labels[25]] == "Z"
    np.testing.assert_array_equal(ds.images.numpy(), upright["train"])


def test_emnist_missing_mapping_uses_builtin_classes(tmp_path, monkeypatch):
    files, _ = emnist_file_bytes("emnist-letters", n=4)
    files.pop("emnist-letters-mapping.txt")
    write_files(tmp_path / "emnist", files)
    unpin(monkeypatch, "emnist-letters")
    paths = data.ensure_files("emnist-letters", "test", tmp_path, download=False)
    assert "mapping" not in paths
    assert data.load_dataset("emnist-letters", "test", tmp_path, download=False).classes == LETTERS


def test_emnist_wrong_mapping_is_rejected(tmp_path, monkeypatch):
    files, _ = emnist_file_bytes("emnist-balanced", n=4)
    files["emnist-balanced-mapping.txt"] = mapping_text(list("0123456789"))
    write_files(tmp_path / "emnist", files)
    unpin(monkeypatch, "emnist-balanced")
    with pytest.raises(DataError, match="does not match the official") as info:
        data.load_dataset("emnist-balanced", "test", tmp_path, download=False)
    assert "emnist-balanced-mapping.txt" in str(info.value)


def test_labels_out_of_range_and_count_mismatch(tmp_path, monkeypatch):
    unpin(monkeypatch, "mnist")
    folder = tmp_path / "mnist"
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 10], np.uint8))
    with pytest.raises(DataError, match="labels run from 0 to 10") as info:
        data.load_dataset("mnist", "test", tmp_path, download=False)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([0, 1], np.uint8))
    with pytest.raises(DataError, match="3 images but .* 2 labels"):
        data.load_dataset("mnist", "test", tmp_path, download=False)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(DataError, match="32x32, expected 28x28"):
        data.load_dataset("mnist", "test", tmp_path, download=False)


def test_unknown_dataset_and_split():
    with pytest.raises(DataError, match="unknown dataset 'kmnist'.*emnist-letters"):
        data.load_dataset("kmnist")
    with pytest.raises(DataError, match="no split 'val'"):
        data.ensure_files("mnist", "val")
    assert data.DATASETS.keys() >= {"mnist", "emnist-byclass", "emnist-bymerge", "emnist-balanced",
                                    "emnist-letters", "emnist-digits", "emnist-mnist"}


# --------------------------------------------------------------------------------------------------
# catalogue: framing, kind, readers, names
# --------------------------------------------------------------------------------------------------

# What every dataset's images are and how they were framed: the catalogue owns this, not the name.
CATALOGUE = {
    # name: (framing, kind, reader)
    "mnist": ("mnist", "characters", "idx"),
    "emnist-byclass": ("emnist", "characters", "idx"),
    "emnist-bymerge": ("emnist", "characters", "idx"),
    "emnist-balanced": ("emnist", "characters", "idx"),
    "emnist-letters": ("emnist", "characters", "idx"),
    "emnist-digits": ("emnist", "characters", "idx"),
    "emnist-mnist": ("emnist", "characters", "idx"),
    "emnist-byclass-testhalf": ("emnist", "characters", "resplit"),
    "femnist-sample": (None, "characters", "leaf-npz"),
    "unipen-words": (None, "lines", "unipen-npz"),
    "unipen-chars": ("emnist", "characters", "unipen-chars-npz"),
    "femnist-nist": ("emnist", "characters", "femnist-npz"),
}


def test_a_line_dataset_is_not_loaded_as_characters(tmp_path):
    with pytest.raises(DataError, match="holds lines of handwriting.*scrawl.data.lines"):
        data.load_dataset("unipen-words", "train", tmp_path)


def test_catalogue_framing_kind_and_reader_of_every_dataset():
    assert set(data.DATASETS) == set(CATALOGUE)  # a new dataset must be added to this table too
    for name, (framing, kind, reader) in CATALOGUE.items():
        info = data.DATASETS[name]
        assert (info.framing, info.kind, info.reader) == (framing, kind, reader), name
        assert data.framing_of(name) == framing
        assert data.dataset_info(name) is info
        # line sets and the NIST forms (extra training data only) have no test split
        assert info.splits == (("train",) if kind == "lines" or name == "femnist-nist" else ("train", "test"))
    cut = data.DATASETS["emnist-byclass-testhalf"].resplit
    assert cut == data.Resplit(source="emnist-byclass", split="test", test_fraction=0.2, seed=20171201)
    assert all(data.DATASETS[n].resplit is None for n in CATALOGUE if n != "emnist-byclass-testhalf")


def test_catalogue_classes_come_from_labels():
    from scrawl import labels

    expected = {"mnist": labels.DIGITS, "emnist-byclass": labels.ALNUM, "emnist-bymerge": labels.BYMERGE_CLASSES,
                "emnist-balanced": labels.BYMERGE_CLASSES, "emnist-letters": labels.UPPER,
                "emnist-digits": labels.DIGITS, "emnist-mnist": labels.DIGITS,
                "emnist-byclass-testhalf": labels.ALNUM, "femnist-sample": labels.ALNUM}
    for name, classes in expected.items():
        assert data.DATASETS[name].classes == tuple(classes), name
    assert list(data.DATASETS["emnist-balanced"].classes) == BALANCED_CLASSES


def test_framing_is_not_guessed_from_the_name():
    # "femnist-sample" starts like neither; an unknown "emnist-..." name is an error, not "emnist"
    assert data.framing_of("femnist-sample") is None
    for unknown in ("emnist-kuzushiji", "mnist-fashion"):
        with pytest.raises(DataError, match="unknown dataset"):
            data.framing_of(unknown)


@pytest.mark.parametrize("spelling, name", [
    ("EMNIST_ByClass", "emnist-byclass"),
    ("  MNIST ", "mnist"),
    ("Emnist_Byclass_TestHalf", "emnist-byclass-testhalf"),
    ("FEMNIST_SAMPLE", "femnist-sample"),
    ("emnist-letters", "emnist-letters"),
])
def test_dataset_info_normalises_names(spelling, name):
    assert data.dataset_info(spelling).name == name
    assert data.framing_of(spelling) == CATALOGUE[name][0]


def test_dataset_info_error_names_every_dataset_derived_ones_too():
    with pytest.raises(DataError) as info:
        data.dataset_info("kmnist")
    message = str(info.value)
    assert message.startswith("unknown dataset 'kmnist'")
    for name in CATALOGUE:
        assert name in message
    with pytest.raises(DataError, match="emnist-byclass-testhalf.*femnist-sample"):
        data.load_dataset("kmnist")


def _byclass_test_files(n: int) -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    """Tiny emnist-byclass test files (stored transposed, as EMNIST does): files, upright images, labels."""
    info = data.DATASETS["emnist-byclass"]
    images = np.stack([glyph_f(shift=i % 5) for i in range(n)])
    images[:, 0, 0] = np.arange(n)  # every image different, to tell them apart after the cut
    labels = (np.arange(n) % 62).astype(np.uint8)
    files = {info.mapping: mapping_text(list(info.classes)),
             info.files["test"]["images"]: gz(idx_bytes(images.transpose(0, 2, 1).copy())),
             info.files["test"]["labels"]: gz(idx_bytes(labels))}
    return files, images, labels


def test_resplit_is_cut_from_its_source_split(tmp_path, monkeypatch):
    files, images, labels = _byclass_test_files(70)
    write_files(tmp_path / "emnist", files)
    unpin(monkeypatch, "emnist-byclass")
    train = data.load_dataset("EMNIST_ByClass_TestHalf", "train", tmp_path, download=False)
    test = data.load_dataset("emnist-byclass-testhalf", "test", tmp_path, download=False)
    assert (train.name, train.split, test.split) == ("emnist-byclass-testhalf", "train", "test")
    assert (len(train), len(test)) == (56, 14)  # round(70 * 0.2) in the test part
    assert train.classes == test.classes == list(data.DATASETS["emnist-byclass"].classes)
    marks = [int(x) for x in train.images[:, 0, 0]] + [int(x) for x in test.images[:, 0, 0]]
    assert sorted(marks) == list(range(70))  # every source image exactly once
    np.testing.assert_array_equal(test.images.numpy(), images[[int(m) for m in test.images[:, 0, 0]]])
    assert test.labels.tolist() == [int(labels[int(m)]) for m in test.images[:, 0, 0]]
    again = data.load_dataset("emnist-byclass-testhalf", "test", tmp_path, download=False)
    assert torch.equal(again.images, test.images)
    # its files are its source's
    assert data.ensure_files("emnist-byclass-testhalf", "train", tmp_path, download=False) == \
        data.ensure_files("emnist-byclass", "test", tmp_path, download=False)
    with pytest.raises(DataError, match="no split 'val'"):
        data.load_dataset("emnist-byclass-testhalf", "val", tmp_path, download=False)


def test_femnist_sample_reader(tmp_path):
    folder = tmp_path / "femnist_leaf_sample"
    folder.mkdir()
    ink_dark = np.full((3, 28, 28), 255, np.uint8)
    ink_dark[:, 10:18, 12:16] = 0
    np.savez(folder / "femnist_leaf_sample.npz", train_images=ink_dark, train_labels=np.array([0, 10, 61]),
             test_images=ink_dark[:2], test_labels=np.array([36, 35]))
    assert data.ensure_files("femnist-sample", "test", tmp_path) == {"arrays": folder / "femnist_leaf_sample.npz"}
    ds = data.load_dataset("femnist-sample", "train", tmp_path)
    assert ds.images.shape == (3, 28, 28) and ds.images.dtype == torch.uint8
    assert int(ds.images[0, 0, 0]) == 0 and int(ds.images[0, 12, 13]) == 255  # flipped: ink bright
    assert ds.labels.tolist() == [0, 10, 61] and ds.classes[10] == "A" and len(ds.classes) == 62
    assert [ds.classes[i] for i in data.load_dataset("femnist-sample", "test", tmp_path).labels] == ["a", "Z"]


def test_dataset_status_lists_derived_datasets(tmp_path, monkeypatch):
    empty = {(e["dataset"], e["split"]): e for e in data.dataset_status(tmp_path)}
    for split in ("train", "test"):
        assert empty["emnist-byclass-testhalf", split]["present"] is False
        assert empty["femnist-sample", split]["present"] is False
    files, _, _ = _byclass_test_files(10)
    write_files(tmp_path / "emnist", files)
    pin(monkeypatch, "emnist-byclass", files)
    (tmp_path / "femnist_leaf_sample").mkdir()
    (tmp_path / "femnist_leaf_sample" / "femnist_leaf_sample.npz").write_bytes(b"not checked here")
    status = {(e["dataset"], e["split"]): e for e in data.dataset_status(tmp_path)}
    for split in ("train", "test"):
        half = status["emnist-byclass-testhalf", split]
        assert half["present"] is True and half["verified"] is True  # as its source, emnist-byclass test
        assert half["source"] == "emnist-byclass test"
        assert half["files"] == status["emnist-byclass", "test"]["files"]
        leaf = status["femnist-sample", split]
        assert leaf["present"] is True and leaf["verified"] is None and leaf["source"] is None
    assert status["emnist-byclass", "test"]["source"] is None


def _run_data_cli(capsys, *argv) -> tuple[int, list[str]]:
    from scrawl.cli import main

    code = main(["data", *map(str, argv)])
    out = capsys.readouterr().out
    return code, out.splitlines()


def test_cli_data_list_shows_derived_datasets(tmp_path, monkeypatch, capsys):
    code, lines = _run_data_cli(capsys, "list", "--data-dir", tmp_path)
    assert code == 0
    rows = {tuple(line.split()[:3]) for line in lines if line.startswith("  ")}
    for name in CATALOGUE:
        for split in data.DATASETS[name].splits:
            assert (name, split, "missing") in rows, (name, split)
    files, _, _ = _byclass_test_files(10)
    write_files(tmp_path / "emnist", files)
    unpin(monkeypatch, "emnist-byclass")
    (tmp_path / "femnist_leaf_sample").mkdir()
    (tmp_path / "femnist_leaf_sample" / "femnist_leaf_sample.npz").write_bytes(b"x")
    code, lines = _run_data_cli(capsys, "list", "--data-dir", tmp_path)
    assert code == 0
    rows = {tuple(line.split()[:3]) for line in lines if line.startswith("  ")}
    for split in ("train", "test"):
        assert ("emnist-byclass-testhalf", split, "present") in rows
        assert ("femnist-sample", split, "present") in rows
    assert any("emnist-byclass-testhalf" in line and "emnist-byclass test" in line for line in lines)
    # the columns line up: every state starts at the same place
    starts = {line.index(line.split()[2], len(line.split()[0]) + 3) for line in lines if line.startswith("  ")}
    assert len(starts) == 1


def test_cli_data_download_unknown_names_every_dataset(tmp_path, capsys):
    from scrawl.cli import main

    assert main(["data", "download", "kmnist", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'kmnist'" in err and "emnist-byclass-testhalf" in err and "femnist-sample" in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# a failed fetch leaves no folder behind
# --------------------------------------------------------------------------------------------------


def test_failed_mnist_download_leaves_no_new_folder(tmp_path, closed_port_url):
    root = tmp_path / "new" / "data"
    with pytest.raises(DownloadError):
        data.ensure_files("mnist", "test", root, mirrors=[closed_port_url])
    assert list(tmp_path.iterdir()) == []  # neither data/mnist nor data nor new


def test_failed_emnist_download_leaves_no_new_folder(tmp_path, closed_port_url, monkeypatch):
    monkeypatch.setenv("SCRAWL_MIRRORS", closed_port_url)
    with pytest.raises(DownloadError):
        data.load_dataset("emnist-digits", "test")  # into the default cache folder, which does not exist
    assert not (tmp_path / "xdg-cache").exists()


def test_failed_download_keeps_folders_that_existed_or_hold_files(tmp_path, server, closed_port_url, monkeypatch):
    (tmp_path / "mnist").mkdir()
    with pytest.raises(DownloadError):
        data.ensure_files("mnist", "test", tmp_path, mirrors=[closed_port_url])
    assert (tmp_path / "mnist").is_dir() and list((tmp_path / "mnist").iterdir()) == []  # it was there before
    # a half-successful fetch keeps the file it got (and so its folder)
    files = mnist_file_bytes()
    pin(monkeypatch, "mnist", files)
    url = server.add("half", {MNIST_FILES["test"][0]: files[MNIST_FILES["test"][0]]})
    other = tmp_path / "other"
    with pytest.raises(DownloadError):
        data.ensure_files("mnist", "test", other, mirrors=[url])
    assert [p.name for p in (other / "mnist").iterdir()] == [MNIST_FILES["test"][0]]


def test_download_file_into_a_new_folder_removes_it_on_failure(tmp_path, closed_port_url):
    dest = tmp_path / "a" / "b" / "f.gz"
    with pytest.raises(DownloadError):
        data.download_file([closed_port_url + "f.gz"], dest, None, timeout=5)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# checksums of present files
# --------------------------------------------------------------------------------------------------


def test_present_file_with_wrong_size_is_rejected(tmp_path):
    # tiny fakes under the real MNIST names: they fail the real pinned sizes
    write_files(tmp_path / "mnist", mnist_file_bytes())
    with pytest.raises(DataError) as info:
        data.ensure_files("mnist", "test", tmp_path, download=False)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "size mismatch" in message
    assert "expected 1648877" in message and "delete it" in message


def test_present_file_with_wrong_checksum_is_rejected(tmp_path, monkeypatch):
    files = mnist_file_bytes()
    write_files(tmp_path / "mnist", files)
    pin(monkeypatch, "mnist", files)
    info = data.DATASETS["mnist"]
    wrong = "0" * 64
    monkeypatch.setitem(data.DATASETS, "mnist", dataclasses.replace(
        info, sha256={**info.sha256, "train-labels-idx1-ubyte.gz": wrong}))
    assert data.ensure_files("mnist", "test", tmp_path, download=False)  # test files are fine
    with pytest.raises(DataError) as exc:
        data.ensure_files("mnist", "train", tmp_path, download=False)
    message = str(exc.value)
    assert str(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz") in message
    assert f"expected {wrong}" in message
    assert f"got {sha256(files['train-labels-idx1-ubyte.gz'])}" in message
    assert "delete it" in message


def test_raw_uncompressed_files_are_accepted_without_checksum(tmp_path):
    images, labels = np.zeros((4, 28, 28), np.uint8), np.array([3, 1, 4, 1], np.uint8)
    images[:, 10, 10] = 200
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte", images, compress=False)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", labels, compress=False)
    paths = data.ensure_files("mnist", "test", tmp_path, download=False)
    assert paths["images"].name == "t10k-images-idx3-ubyte"
    ds = data.load_dataset("mnist", "test", tmp_path, download=False)
    assert ds.labels.tolist() == [3, 1, 4, 1] and ds.classes == list("0123456789")
    assert int(ds.images[:, 10, 10].min()) == 200
    status = {(e["dataset"], e["split"]): e for e in data.dataset_status(tmp_path)}
    assert status["mnist", "test"]["present"] is True
    assert status["mnist", "test"]["verified"] is None  # nothing to check a raw file against
    assert status["mnist", "train"]["present"] is False and status["mnist", "train"]["verified"] is False


def test_dataset_status_reports_verified_and_corrupted(tmp_path, monkeypatch):
    files = mnist_file_bytes()
    write_files(tmp_path / "mnist", files)
    pin(monkeypatch, "mnist", files)
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    status = {(e["dataset"], e["split"]): e for e in data.dataset_status(tmp_path)}
    assert status["mnist", "test"]["verified"] is True
    train = status["mnist", "train"]
    assert train["present"] is True and train["verified"] is False
    bad = [f for f in train["files"] if f["verified"] is False]
    assert [f["file"] for f in bad] == ["train-images-idx3-ubyte.gz"]
    assert "mismatch" in bad[0]["detail"]
    assert status["emnist-byclass", "test"]["present"] is False
    quick = {(e["dataset"], e["split"]): e for e in data.dataset_status(tmp_path, verify=False)}
    assert quick["mnist", "train"]["present"] is True and quick["mnist", "train"]["verified"] is None


# --------------------------------------------------------------------------------------------------
# data folder
# --------------------------------------------------------------------------------------------------


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.resolve_data_dir() == tmp_path / "home" / ".cache" / "scrawl" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.resolve_data_dir() == tmp_path / "xdg" / "scrawl" / "data"
    monkeypatch.setenv("SCRAWL_DATA", str(tmp_path / "env"))
    assert data.resolve_data_dir() == tmp_path / "env"
    assert data.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data.resolve_data_dir(str(tmp_path / "s")) == tmp_path / "s"
    assert data.resolve_data_dir("~/d") == tmp_path / "home" / "d"


# --------------------------------------------------------------------------------------------------
# downloads (local server only)
# --------------------------------------------------------------------------------------------------


def test_download_file_success(tmp_path, server):
    body = b"hello scrawl" * 1000
    url = server.add("a", {"f.gz": body}) + "f.gz"
    dest = tmp_path / "out" / "f.gz"
    assert data.download_file([url], dest, sha256(body), progress=True, size=len(body)) == dest
    assert dest.read_bytes() == body
    assert leftovers(dest.parent) == []


def test_download_interrupted_falls_back_to_next_mirror(tmp_path, server):
    body = bytes(range(256)) * 400
    bad = server.add("cut", {"f.gz": body}, mode="truncate") + "f.gz"
    good = server.add("ok", {"f.gz": body}) + "f.gz"
    dest = tmp_path / "f.gz"
    data.download_file([bad, good], dest, sha256(body))
    assert dest.read_bytes() == body
    assert server.hits == ["/cut/f.gz", "/ok/f.gz"]
    assert leftovers(tmp_path) == []


def test_download_interrupted_everywhere_leaves_nothing(tmp_path, server):
    body = bytes(range(256)) * 400
    bad = server.add("cut", {"f.gz": body}, mode="truncate") + "f.gz"
    dest = tmp_path / "f.gz"
    with pytest.raises(DownloadError) as info:
        data.download_file([bad], dest, None)  # even without a checksum, a short transfer is caught
    message = str(info.value)
    assert bad in message and "incomplete transfer" in message and f"of {len(body)} bytes" in message
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_download_wrong_checksum_then_good_mirror(tmp_path, server):
    body = b"the real file" * 100
    evil = server.add("evil", {"f.gz": body[::-1]}) + "f.gz"
    good = server.add("good", {"f.gz": body}) + "f.gz"
    dest = tmp_path / "f.gz"
    with pytest.raises(DownloadError) as info:
        data.download_file([evil], dest, sha256(body))
    message = str(info.value)
    assert evil in message and "checksum mismatch" in message
    assert f"expected SHA-256 {sha256(body)}" in message and f"got {sha256(body[::-1])}" in message
    assert not dest.exists() and leftovers(tmp_path) == []
    data.download_file([evil, good], dest, sha256(body))
    assert dest.read_bytes() == body


def test_download_reports_every_mirror(tmp_path, server, closed_port_url):
    missing = server.add("none", {}) + "f.gz"
    with pytest.raises(DownloadError) as info:
        data.download_file([missing, closed_port_url + "f.gz"], tmp_path / "f.gz", None, timeout=5)
    message = str(info.value)
    assert f"{missing}: HTTP error 404" in message
    assert f"{closed_port_url}f.gz: cannot connect" in message
    assert isinstance(info.value, DataError) and isinstance(info.value, ScrawlError)
    assert list(tmp_path.iterdir()) == []


def test_mnist_download_through_ensure_files(tmp_path, server, monkeypatch):
    files = mnist_file_bytes(n_train=20, n_test=10)
    pin(monkeypatch, "mnist", files)
    url = server.add("mnist", files)
    ds = data.load_dataset("mnist", "test", tmp_path, mirrors=[url])
    assert len(ds) == 10 and ds.images.shape == (10, 28, 28)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(MNIST_FILES["test"])
    # the base URL list also comes from SCRAWL_MIRRORS; the first (dead) mirror is skipped
    monkeypatch.setenv("SCRAWL_MIRRORS", f"{server.base}/nothing-here/, {url}")
    assert len(data.load_dataset("mnist", "train", tmp_path)) == 20
    assert (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").read_bytes() == files["train-images-idx3-ubyte.gz"]
    assert leftovers(tmp_path / "mnist") == []


def test_emnist_download_from_zip(tmp_path, server, monkeypatch):
    files, upright = emnist_file_bytes("emnist-balanced", n=8)
    pin(monkeypatch, "emnist-balanced", files)
    url = server.add("nist", {"gzip.zip": zip_bytes(files)})
    ds = data.load_dataset("emnist-balanced", "test", tmp_path, mirrors=[url])
    np.testing.assert_array_equal(ds.images.numpy(), upright["test"])
    assert ds.classes == BALANCED_CLASSES
    folder = tmp_path / "emnist"
    # everything of this dataset was extracted while the zip was there; the zip itself is gone
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    for fname, content in files.items():
        assert (folder / fname).read_bytes() == content
    assert server.hits == ["/nist/gzip.zip"]
    assert len(data.load_dataset("emnist-balanced", "train", tmp_path, mirrors=[url])) == 8
    assert server.hits == ["/nist/gzip.zip"]  # no second download


def test_emnist_zip_with_corrupted_member(tmp_path, server, monkeypatch):
    files, _ = emnist_file_bytes("emnist-balanced", n=8)
    pin(monkeypatch, "emnist-balanced", files)
    target = "emnist-balanced-test-images-idx3-ubyte.gz"
    damaged = dict(files, **{target: _flip(files[target], -12)})  # same size, other bytes
    url = server.add("nist", {"gzip.zip": zip_bytes(damaged)})
    with pytest.raises(DownloadError) as info:
        data.ensure_files("emnist-balanced", "test", tmp_path, mirrors=[url])
    message = str(info.value)
    assert f"gzip/{target}" in message and "checksum mismatch" in message
    assert f"expected SHA-256 {sha256(files[target])}" in message and f"got {sha256(damaged[target])}" in message
    folder = tmp_path / "emnist"
    assert not (folder / target).exists()
    assert leftovers(folder) == [] and not list(folder.glob("*.zip*")) and not list(folder.glob(".*"))


def test_emnist_zip_already_in_folder_is_used_offline(tmp_path, monkeypatch):
    files, upright = emnist_file_bytes("emnist-letters", n=5)
    pin(monkeypatch, "emnist-letters", files)
    folder = tmp_path / "emnist"
    folder.mkdir()
    (folder / "gzip.zip").write_bytes(zip_bytes(files))
    ds = data.load_dataset("emnist-letters", "test", tmp_path, download=False)
    np.testing.assert_array_equal(ds.images.numpy(), upright["test"])
    assert (folder / "gzip.zip").exists()  # the user's file is kept


def test_offline_without_download_names_files_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRAWL_DATA", str(tmp_path / "from-env"))
    with pytest.raises(DataError) as info:
        data.ensure_files("mnist", "train", download=False)
    message = str(info.value)
    folder = tmp_path / "from-env" / "mnist"
    assert str(folder / "train-images-idx3-ubyte.gz") in message
    assert str(folder / "train-labels-idx1-ubyte.gz") in message
    assert "$SCRAWL_DATA" in message and "--data-dir" in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in message
    assert not folder.exists()


def test_offline_dead_mirrors_name_files_folder_and_urls(tmp_path, closed_port_url):
    with pytest.raises(DataError) as info:
        data.load_dataset("emnist-digits", "test", tmp_path, mirrors=[closed_port_url])
    message = str(info.value)
    assert isinstance(info.value, DownloadError)
    assert f"{closed_port_url}gzip.zip: cannot connect" in message
    assert str(tmp_path / "emnist" / "emnist-digits-test-images-idx3-ubyte.gz") in message
    assert "given explicitly (--data-dir)" in message and "SCRAWL_DATA" in message
    assert leftovers(tmp_path / "emnist") == [] and not list((tmp_path / "emnist").glob(".*"))


# --------------------------------------------------------------------------------------------------
# train / validation split
# --------------------------------------------------------------------------------------------------


def test_split_train_val_is_deterministic_disjoint_and_complete():
    train, val = data.split_train_val(1000, 0.1, seed=3)
    assert train.dtype == torch.int64 and val.dtype == torch.int64
    assert len(train) == 900 and len(val) == 100
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(1000))
    again = data.split_train_val(1000, 0.1, seed=3)
    assert torch.equal(train, again[0]) and torch.equal(val, again[1])
    other = data.split_train_val(1000, 0.1, seed=4)
    assert not torch.equal(val, other[1])
    t, v = data.split_train_val(60000)
    assert (len(t), len(v)) == (54000, 6000)


def test_split_train_val_golden_values():
    # pinned: the same seed must give the same split on every machine (and torch release)
    train, val = data.split_train_val(20, 0.25, seed=0)
    assert val.tolist() == [4, 5, 7, 13, 19]
    assert train.tolist() == [i for i in range(20) if i not in (4, 5, 7, 13, 19)]


def test_split_train_val_edge_cases():
    train, val = data.split_train_val(10, 0.0)
    assert train.tolist() == list(range(10)) and val.tolist() == []
    assert [len(x) for x in data.split_train_val(0)] == [0, 0]
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(DataError, match="validation fraction"):
            data.split_train_val(10, bad)


# --------------------------------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_test(real_data_dir):
    return data.load_dataset("mnist", "test", real_data_dir, download=False)


@pytest.mark.realdata
def test_real_mnist(real_data_dir, mnist_test):
    train = data.load_dataset("mnist", "train", real_data_dir, download=False)
    for ds, n in ((train, 60000), (mnist_test, 10000)):
        assert ds.images.shape == (n, 28, 28) and ds.images.dtype == torch.uint8
        assert ds.labels.shape == (n,) and ds.labels.dtype == torch.int64
        assert ds.classes == list("0123456789")
        counts = torch.bincount(ds.labels, minlength=10)
        assert len(counts) == 10 and int(counts.min()) > n // 20
    assert int(torch.bincount(train.labels).min()) == 5421 and int(torch.bincount(train.labels).max()) == 6742
    # ink is bright on a black background: borders are empty, the centre is not
    assert float(mnist_test.images[:, 0, :].float().mean()) == 0.0
    assert float(mnist_test.images[:, 10:18, 10:18].float().mean()) > 50


@pytest.mark.realdata
def test_real_emnist_byclass_test(real_data_dir):
    ds = data.load_dataset("emnist-byclass", "test", real_data_dir, download=False)
    assert len(ds) == 116323 and ds.images.shape == (116323, 28, 28)
    assert ds.classes == list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    assert int(ds.labels.min()) == 0 and int(ds.labels.max()) == 61
    assert ds.images.is_contiguous()


def _class_means(ds, k):
    return torch.stack([ds.images[ds.labels == c].float().mean(0) for c in range(k)])


def _corr(a, b):
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.realdata
def test_real_emnist_is_upright_like_mnist(real_data_dir, mnist_test):
    # EMNIST stores images transposed; loaded digits must look like MNIST's, not like their transpose
    emnist = data.load_dataset("emnist-mnist", "test", real_data_dir, download=False)
    assert len(emnist) == 10000 and torch.bincount(emnist.labels).tolist() == [1000] * 10
    ours, ref = _class_means(emnist, 10), _class_means(mnist_test, 10)
    for c in range(10):
        upright, transposed = _corr(ours[c], ref[c]), _corr(ours[c].T, ref[c])
        assert upright > transposed + 0.03, (c, upright, transposed)
    # on average over classes, upright beats every other orientation (transposes, rotations, flips) clearly
    def mean_corr(images):
        return sum(_corr(images[c], ref[c]) for c in range(10)) / 10

    best = mean_corr(ours)
    assert best > 0.7
    for other in (ours.transpose(1, 2), ours.rot90(1, (1, 2)), ours.rot90(-1, (1, 2)), ours.flip(1), ours.flip(2)):
        assert best > mean_corr(other) + 0.1


@pytest.mark.realdata
def test_real_checksums_verified(real_data_dir):
    for name in ("mnist", "emnist-byclass", "emnist-bymerge", "emnist-mnist"):
        split = "train" if name == "mnist" else "test"
        paths = data.ensure_files(name, split, real_data_dir, download=False)
        assert all(p.suffix in (".gz", ".txt") for p in paths.values())
    status = {(e["dataset"], e["split"]): e for e in data.dataset_status(real_data_dir)}
    for key in [("mnist", "train"), ("mnist", "test"), ("emnist-byclass", "test"), ("emnist-bymerge", "test"),
                ("emnist-mnist", "test")]:
        assert status[key]["verified"] is True, status[key]
    # every pinned sum looks like a SHA-256
    for info in data.DATASETS.values():
        for fname in info.all_files():
            digest = info.sha256.get(fname)
            assert digest is None or (len(digest) == 64 and int(digest, 16) >= 0)


@pytest.mark.realdata
def test_byclass_test_half_resplit_is_fixed_and_disjoint(real_data_dir):
    import torch

    full = data.load_dataset("emnist-byclass", "test", real_data_dir)
    train = data.load_dataset("emnist-byclass-testhalf", "train", real_data_dir)
    test = data.load_dataset("emnist-byclass-testhalf", "test", real_data_dir)
    assert len(train) + len(test) == len(full) == 116_323
    assert len(test) == round(len(full) * data.dataset_info("emnist-byclass-testhalf").resplit.test_fraction)
    assert train.classes == full.classes and len(train.classes) == 62
    # Together the parts hold every image exactly once: label counts add up ...
    assert torch.equal(train.labels.bincount(minlength=62) + test.labels.bincount(minlength=62),
                       full.labels.bincount(minlength=62))
    # ... and no image of the test part is in the train part (compare exact pixel rows).
    seen = {bytes(img) for img in train.images[:, 10:18].reshape(len(train), -1).numpy()}
    overlap = sum(bytes(img) in seen for img in test.images[:2000, 10:18].reshape(2000, -1).numpy())
    assert overlap <= 5  # NIST holds a few exact duplicates; a leak would be ~80%
    again = data.load_dataset("emnist-byclass-testhalf", "test", real_data_dir)
    assert torch.equal(again.labels, test.labels) and torch.equal(again.images, test.images)


@pytest.mark.realdata
def test_femnist_sample_loads_ink_bright(real_data_dir):
    ds = data.load_dataset("femnist-sample", "test", real_data_dir)
    assert len(ds) == 4088 and len(ds.classes) == 62 and ds.classes[10] == "A"
    border = ds.images[:, 0, :].float().mean()
    assert border < 40  # background dark after flipping LEAF's white paper


def test_femnist_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="femnist_leaf_sample.npz is missing"):
        data.load_dataset("femnist-sample", "test", tmp_path)


@pytest.mark.parametrize("name", ["emnist-byclass", "emnist-bymerge", "emnist-balanced", "emnist-letters",
                                  "emnist-digits", "emnist-mnist"])
def test_every_emnist_split_is_upright_with_mapped_labels(tmp_path, monkeypatch, name):
    info = data.DATASETS[name]
    classes = list(info.classes)
    letters = name == "emnist-letters"
    n = len(classes) + 3
    images = np.stack([glyph_f(shift=i % 5) for i in range(n)])
    labels = np.arange(n) % len(classes) + info.label_offset  # letters: 1-based in the files
    files = {f"{name}-mapping.txt": mapping_text(classes, info.label_offset, letters)}
    for split in ("train", "test"):
        files[info.files[split]["images"]] = gz(idx_bytes(images.transpose(0, 2, 1).copy()))  # stored transposed
        files[info.files[split]["labels"]] = gz(idx_bytes(labels.astype(np.uint8)))
    write_files(tmp_path / "emnist", files)
    pin(monkeypatch, name, files)
    for split in ("train", "test"):
        ds = data.load_dataset(name, split, tmp_path, download=False)
        np.testing.assert_array_equal(ds.images.numpy(), images)  # upright, like every image in Scrawl
        assert ds.classes == classes
        assert ds.labels.tolist() == (np.arange(n) % len(classes)).tolist()  # 0-based
        assert ds.classes[ds.labels[-1]] == classes[(n - 1) % len(classes)]
