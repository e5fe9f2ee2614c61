"""The bundled digit models meet their bars, measured the way a user measures it: `scrawl evaluate`.
digits (scrawlnet) and digits-lite (fastnet, an eighth of the work) are held to the same floors."""

import json

import pytest

from scrawl.cli import main
from scrawl.inference import bundled_path
from scrawl.checkpoint import load_checkpoint

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


DIGIT_MODELS = ["digits", "digits-lite"]


def _evaluate(tmp_path, real_data_dir, dataset, model="digits"):
    out = tmp_path / dataset
    assert main(["evaluate", model, "--dataset", dataset, "--data-dir", str(real_data_dir), "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("model", DIGIT_MODELS)
def test_bundled_model_on_the_official_mnist_test_set(tmp_path, real_data_dir, model):
    metrics = _evaluate(tmp_path, real_data_dir, "mnist", model)
    assert metrics["n"] == 10000
    assert metrics["accuracy"] >= 0.9960


@pytest.mark.parametrize("model", DIGIT_MODELS)
def test_bundled_model_on_emnist_digits_through_user_preprocessing(tmp_path, real_data_dir, model):
    # Other writers, other scanning and framing: the images go through the preprocessing a user's
    # image gets (evaluate reframes a dataset framed differently from the model's training data).
    metrics = _evaluate(tmp_path, real_data_dir, "emnist-mnist", model)
    assert metrics["n"] == 10000 and "Scrawl's framing" in metrics["info"]["preprocessing"]
    assert metrics["accuracy"] >= 0.9930


@pytest.mark.parametrize("model", DIGIT_MODELS)
def test_bundled_model_is_small_and_self_describing(model):
    path = bundled_path(model)
    assert path.stat().st_size < 5 * 2**20
    ck = load_checkpoint(path)
    assert ck.meta["classes"] == list("0123456789") and ck.meta["frame"]["framing"] == "mnist"
    assert ck.training_state is None  # weights only: no optimizer state shipped
    assert ck.meta["history"] and ck.meta["train_config"]["dataset"] == "mnist"
