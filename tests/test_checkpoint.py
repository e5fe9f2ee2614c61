"""Checkpoint round trip and every bad-checkpoint case."""

import os
from pathlib import Path

import pytest
import torch

from scrawl.runtime.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from scrawl.errors import CheckpointError
from scrawl.models import available_models, build_model

META = {"arch": "fastnet", "model_config": {"num_classes": 10, "width": 8}, "classes": list("0123456789"),
        "frame": {"framing": "mnist", "size": 28, "box": 20}, "history": [{"epoch": 1, "val_acc": 0.5}]}


def _saved(tmp_path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model("fastnet", num_classes=10, width=8)
    path = save_checkpoint(tmp_path / "m.pt", META, model.state_dict())
    return path, model


def test_round_trip_rebuilds_the_same_model(tmp_path):
    path, model = _saved(tmp_path)
    ck = load_checkpoint(path)
    assert ck.meta["classes"] == META["classes"] and ck.meta["history"] == META["history"]
    rebuilt = ck.build_model()
    x = torch.rand(4, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), rebuilt(x))
    # Plain torch can read it with the safe loader, too.
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == FORMAT_VERSION


def test_no_temp_files_left_and_overwrite_is_atomic(tmp_path):
    path, model = _saved(tmp_path)
    save_checkpoint(path, META, model.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_metadata_must_be_json_safe(tmp_path):
    with pytest.raises(ValueError, match="JSON-safe"):
        save_checkpoint(tmp_path / "x.pt", dict(META, bad=object()), {})
    assert not any(tmp_path.iterdir())


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        save_checkpoint(blocker / "m.pt", META, {})


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated(tmp_path, keep):
    path, _ = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(path)


def test_corrupted_bytes(tmp_path):
    path, _ = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    for i in range(200, len(data), 97):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_not_a_checkpoint_at_all(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match=r"not a model checkpoint \(not a PyTorch file\)"):
        load_checkpoint(path)


def test_foreign_torch_file(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(build_model("fastnet", width=8).state_dict(), path)
    with pytest.raises(CheckpointError, match="not a Scrawl checkpoint"):
        load_checkpoint(path)


def test_too_new(tmp_path):
    path, _ = _saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="newer Scrawl"):
        load_checkpoint(path)


def test_missing_metadata(tmp_path):
    path, _ = _saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    del payload["meta"]["classes"]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="lacks classes"):
        load_checkpoint(path)


def test_weights_that_do_not_fit(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", META, build_model("fastnet", width=16).state_dict())
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path).build_model()


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "scrawl-checkpoint", "format_version": 1, "meta": _Evil(marker), "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()
    # The payload really is live: unsafe unpickling runs it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_registry_builds_every_model_and_returns_logits():
    from scrawl.models import model_task

    for arch in (a for a in available_models() if model_task(a) == "classify"):  # lines: tests/test_models.py
        model = build_model(arch, num_classes=7).eval()
        out = model(torch.rand(3, 1, 28, 28))
        assert out.shape == (3, 7)
        # logits, not probabilities: rows do not sum to 1
        assert not torch.allclose(out.sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet9000")


def test_disk_full_is_a_clear_error_and_leaves_the_old_file(tmp_path, monkeypatch):
    import errno

    path, model = _saved(tmp_path)
    before = path.read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # some bytes reach the temp file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device"):
        save_checkpoint(path, META, model.state_dict())
    assert path.read_bytes() == before  # the previous checkpoint is untouched and still loads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no half-written temp file left
    load_checkpoint(path)


def test_stale_temp_files_are_cleared_and_mode_follows_umask(tmp_path):
    stale = tmp_path / ".m.pt.k1ll3d.tmp"  # what a writer killed mid-save leaves behind
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.pt.x.tmp"  # another file's temp is not ours to remove
    other.write_bytes(b"x")
    old = os.umask(0o022)
    try:
        path, _ = _saved(tmp_path)
    finally:
        os.umask(old)
    assert not stale.exists() and other.exists()
    assert (path.stat().st_mode & 0o777) == 0o644
