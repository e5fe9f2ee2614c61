"""The bundled digit model meets its bars, measured the way a user measures it: `scrawl evaluate`."""

import json

import pytest

from scrawl.cli import main
from scrawl.inference import bundled_path
from scrawl.checkpoint import load_checkpoint

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _evaluate(tmp_path, real_data_dir, dataset):
    out = tmp_path / dataset
    assert main(["evaluate", "--dataset", dataset, "--data-dir", str(real_data_dir), "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_bundled_model_on_the_official_mnist_test_set(tmp_path, real_data_dir):
    metrics = _evaluate(tmp_path, real_data_dir, "mnist")
    assert metrics["n"] == 10000
    assert metrics["accuracy"] >= 0.9960


def test_bundled_model_on_emnist_digits_through_user_preprocessing(tmp_path, real_data_dir):
    # Other writers, other scanning and framing: the images go through the preprocessing a user's
    # image gets (evaluate reframes a dataset framed differently from the model's training data).
    metrics = _evaluate(tmp_path, real_data_dir, "emnist-mnist")
    assert metrics["n"] == 10000 and "Scrawl's framing" in metrics["info"]["preprocessing"]
    assert metrics["accuracy"] >= 0.9930


def test_bundled_model_is_small_and_self_describing():
    path = bundled_path("digits")
    assert path.stat().st_size < 5 * 2**20
    ck = load_checkpoint(path)
    assert ck.meta["classes"] == list("0123456789") and ck.meta["frame"]["framing"] == "mnist"
    assert ck.training_state is None  # weights only: no optimizer state shipped
    assert ck.meta["history"] and ck.meta["train_config"]["dataset"] == "mnist"
