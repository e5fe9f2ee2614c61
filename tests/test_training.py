"""Training: smoke run with an accuracy floor, exact resume after SIGTERM, repeatability, CLI Ctrl-C."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

import scrawl.training as training
import scrawl.training.loop as loop  # where the training steps look up augment_batch (patched below)
from scrawl.runtime.checkpoint import load_checkpoint
from scrawl.training import RECIPES, TrainingInterrupted, train

pytestmark = pytest.mark.realdata

TINY = replace(RECIPES["default"], model="fastnet", model_config={"width": 8}, epochs=2, batch_size=64, limit=640,
               precision="fp32")


def _weights(path):
    return load_checkpoint(path).state_dict


@pytest.mark.slow
def test_smoke_training_reaches_accuracy_floor(real_data_dir, tmp_path):
    cfg = replace(RECIPES["fast"], limit=12000)  # 93 steps of the fast recipe's 128 images
    result = train(cfg, tmp_path, data_dir=real_data_dir, progress=False)
    assert result["best_val_acc"] >= 0.93, result["history"]
    ck = load_checkpoint(result["best"])
    assert ck.meta["classes"] == [str(d) for d in range(10)]
    assert ck.meta["history"][0]["epoch"] == 1 and ck.meta["dataset"]["train_images"] == 12000
    # The test set was never touched by training; check the model generalises to it.
    from scrawl.data import load_dataset
    from scrawl.training import predict_probs

    test = load_dataset("mnist", "test", real_data_dir)
    acc = (predict_probs(ck.build_model(), test.images[:2000]).argmax(1) == test.labels[:2000]).float().mean()
    assert acc >= 0.93


@pytest.mark.slow
def test_same_seed_same_weights_other_seed_differs(real_data_dir, tmp_path):
    cfg = replace(TINY, epochs=1)
    a = train(cfg, tmp_path / "a", data_dir=real_data_dir, progress=False)
    b = train(cfg, tmp_path / "b", data_dir=real_data_dir, progress=False)
    c = train(replace(cfg, seed=1), tmp_path / "c", data_dir=real_data_dir, progress=False)
    wa, wb, wc = _weights(a["last"]), _weights(b["last"]), _weights(c["last"])
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_matches_uninterrupted_run(real_data_dir, tmp_path, monkeypatch):
    straight = train(TINY, tmp_path / "straight", data_dir=real_data_dir, progress=False)

    calls = {"n": 0}
    real_augment = loop.augment_batch

    def augment_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 13:  # epoch 2 of 2 (10 steps per epoch), step 3
            os.kill(os.getpid(), signal.SIGTERM)
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(loop, "augment_batch", augment_then_signal)
    out = tmp_path / "interrupted"
    with pytest.raises(TrainingInterrupted, match="SIGTERM at epoch 2, step 3"):
        train(TINY, out, data_dir=real_data_dir, progress=False)
    state = load_checkpoint(out / "last.pt").training_state
    assert (state["epoch"], state["step"]) == (1, 3)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    monkeypatch.setattr(loop, "augment_batch", real_augment)

    resumed = train(TINY, out, data_dir=real_data_dir, resume=True, progress=False)
    w1, w2 = _weights(straight["last"]), _weights(resumed["last"])
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    h1, h2 = straight["history"], resumed["history"]
    assert [h["val_acc"] for h in h1] == [h["val_acc"] for h in h2]
    assert [round(h["train_loss"], 6) for h in h1] == [round(h["train_loss"], 6) for h in h2]


def _poison_steps(monkeypatch, steps) -> None:
    """The images of these optimizer steps (1-based) hold a NaN, as a broken batch would."""
    real_augment, calls = loop.augment_batch, {"n": 0}

    def poisoned(x, *args, **kwargs):  # one call per optimizer step
        calls["n"] += 1
        x = real_augment(x, *args, **kwargs)
        if calls["n"] in steps:
            x = x.clone()
            x[0, 0, 0, 0] = float("nan")
        return x

    monkeypatch.setattr(loop, "augment_batch", poisoned)


@pytest.mark.slow
def test_a_step_whose_loss_is_not_a_number_is_not_taken(real_data_dir, tmp_path, monkeypatch):
    import math

    _poison_steps(monkeypatch, {3, 4})
    result = train(TINY, tmp_path, data_dir=real_data_dir, progress=False)
    # Before: the two steps turned every weight and batch-norm statistic into NaN for the rest of the run.
    weights = _weights(result["last"])
    assert all(bool(torch.isfinite(w).all()) for w in weights.values() if w.is_floating_point())
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"]) for h in result["history"])


@pytest.mark.slow
def test_a_run_whose_loss_stays_not_a_number_stops_with_a_clear_error(real_data_dir, tmp_path, monkeypatch):
    from scrawl.errors import ScrawlError

    _poison_steps(monkeypatch, set(range(3, 100)))
    monkeypatch.setattr(loop, "MAX_BAD_STEPS", 4)
    with pytest.raises(ScrawlError, match=r"epoch 1, step 6: 4 steps in a row had a loss that is not a number"):
        train(TINY, tmp_path, data_dir=real_data_dir, progress=False)
    last = load_checkpoint(tmp_path / "last.pt").state_dict  # the weights before the bad steps, kept
    assert all(bool(torch.isfinite(w).all()) for w in last.values() if w.is_floating_point())


def test_resume_without_a_run_is_a_clear_error(tmp_path):
    from scrawl.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(TINY, tmp_path, resume=True, progress=False)


def test_training_bounds_onednn_kernel_cache_unless_the_user_did(tmp_path, monkeypatch):
    """oneDNN keeps a kernel per input shape (1,024 by default) and line batches come in hundreds of widths:
    unbounded, that cache grew a line run by 1.5 GB. train() bounds it before its first convolution."""
    from scrawl.errors import CheckpointError
    from scrawl.training.distributed import KERNEL_CACHE

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    with pytest.raises(CheckpointError):  # the cheapest way through train(): nothing to resume
        train(TINY, tmp_path, resume=True, progress=False)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(KERNEL_CACHE)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")  # a user's own setting stays
    with pytest.raises(CheckpointError):
        train(TINY, tmp_path, resume=True, progress=False)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"


@pytest.mark.slow
def test_a_fraction_of_an_epoch_ends_the_schedule_part_way_into_the_last_pass(real_data_dir, tmp_path, monkeypatch):
    steps = {"n": 0}
    real_augment = loop.augment_batch

    def counting(*args, **kwargs):  # one call per optimizer step
        steps["n"] += 1
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(loop, "augment_batch", counting)
    cfg = replace(TINY, epochs=1.5)  # 640 images in batches of 64: 10 steps a pass
    result = train(cfg, tmp_path, data_dir=real_data_dir, progress=False)
    assert steps["n"] == 15
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    # The one-cycle schedule spans the 15 steps: it has decayed to its floor by the last one.
    assert result["history"][-1]["lr"] < 0.05 * cfg.lr


@pytest.mark.slow
def test_augment_until_leaves_the_last_steps_unaugmented(real_data_dir, tmp_path, monkeypatch):
    calls = []
    real_augment = loop.augment_batch

    def counting(*args, **kwargs):
        calls.append(1)
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(loop, "augment_batch", counting)
    train(replace(TINY, augment_until=0.35), tmp_path, data_dir=real_data_dir, progress=False)  # 20 steps
    assert len(calls) == 7


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"epochs": -1.5}, {"batch_size": 0}, {"lr": 0.0}, {"limit": -1},
                                 {"augment_until": 1.5}])
def test_settings_that_cannot_train_are_named(tmp_path, bad):
    from scrawl.errors import ScrawlError

    name = next(iter(bad))
    with pytest.raises(ScrawlError, match=f"^{name} must be"):
        train(replace(TINY, **bad), tmp_path, progress=False)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_cli_ctrl_c_leaves_a_resumable_run(real_data_dir, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "scrawl", "train", "--recipe", "fast", "--limit", "20000", "--epochs", "2",
           "--data-dir", str(real_data_dir), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    deadline = time.monotonic() + 120
    while "epoch 1/2" not in seen and time.monotonic() < deadline:  # the progress bar has started
        seen += proc.stderr.read(1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resume with: scrawl train --resume" in err
    assert "Traceback" not in err
    ck = load_checkpoint(out / "last.pt")
    assert ck.training_state["step"] > 0
    done = subprocess.run(cmd[:4] + ["--resume", "--no-progress", "--data-dir", str(real_data_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    final = load_checkpoint(out / "last.pt")
    assert final.meta["epochs_done"] == 2 and len(final.meta["history"]) == 2
    assert final.meta["history"][-1]["val_acc"] > 0.95


@pytest.mark.slow
def test_extra_training_data_is_reframed_and_only_trained_on(real_data_dir, tmp_path):
    cfg = replace(TINY, dataset="emnist-byclass-testhalf", epochs=1, limit=640, extra_train=["femnist-sample"])
    result = train(cfg, tmp_path, data_dir=real_data_dir, progress=False)
    meta = load_checkpoint(result["last"]).meta
    assert meta["dataset"]["extra_train"] == {"femnist-sample": 14708}
    assert meta["dataset"]["train_images"] == 640 + 14708 and meta["dataset"]["val_images"] == 500
    assert meta["frame"]["framing"] == "emnist" and len(meta["classes"]) == 62
    # A digit model takes only the digits of a 62-class set (issue 15), with their labels.
    from scrawl.data import load_dataset

    sample = load_dataset("femnist-sample", "train", real_data_dir)
    digits = int((sample.labels < 10).sum())
    result = train(replace(cfg, dataset="mnist"), tmp_path / "x", data_dir=real_data_dir, progress=False)
    meta = load_checkpoint(result["last"]).meta
    assert 0 < digits < 14708 and meta["dataset"]["extra_train"] == {"femnist-sample": digits}
    assert meta["classes"] == list("0123456789")


def test_fastnet_pool_first_is_an_option_that_leaves_old_fastnet_checkpoints_loadable():
    """The fast recipe's pool_first fastnet pools before batch norm; plain fastnet (every fastnet
    checkpoint written before the option existed) keeps its layer names and output."""
    import torch

    from scrawl.models import build_model

    plain, pooled = build_model("fastnet", num_classes=10), build_model("fastnet", num_classes=10, pool_first=True)
    assert "features.0.1.running_mean" in plain.state_dict()  # conv+BN+ReLU block, then the pool
    assert "features.2.running_mean" in pooled.state_dict()  # conv, pool, BN, ReLU
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in pooled.parameters())
    x = torch.rand(3, 1, 28, 28)
    assert pooled.eval()(x).shape == plain.eval()(x).shape == (3, 10)
    assert RECIPES["fast"].model_config == {"pool_first": True}
