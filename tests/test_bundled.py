"""The bundled models meet their bars, measured the way a user measures it: `scrawl evaluate`.
digits (scrawlnet) and digits-lite (fastnet, an eighth of the work) are held to the same floors;
chars to its own on the held-out part of its data, and to the digit bar with --charset digits."""

import json

import pytest

from scrawl.cli import main
from scrawl.labels import NOT_A_CHARACTER
from scrawl.runtime.recognizer import bundled_path
from scrawl.runtime.checkpoint import load_checkpoint

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


DIGIT_MODELS = ["digits", "digits-lite"]
# The character model's floors on its held-out ByClass part (README: 85.87% / 90.10% since issue 15, which
# traded 1.2 points here for other writers; issue 15's bar is 88.5% / 91.5%, not met).
CHARS_FLOOR = {"exact": 0.855, "merged": 0.895}


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
    assert ck.meta["classes"] == [*"0123456789", NOT_A_CHARACTER] and ck.meta["frame"]["framing"] == "mnist"
    assert ck.training_state is None  # weights only: no optimizer state shipped
    assert ck.meta["history"] and ck.meta["train_config"]["dataset"] == "mnist"


def test_bundled_character_model_on_the_held_out_byclass_part(tmp_path, real_data_dir):
    # The part of the ByClass test half that `scrawl train --recipe chars` never trains or validates on.
    metrics = _evaluate(tmp_path, real_data_dir, "emnist-byclass-testhalf", "chars")
    assert metrics["n"] == 23265
    assert metrics["accuracy"] >= CHARS_FLOOR["exact"] and metrics["merged_accuracy"] >= CHARS_FLOOR["merged"]


def test_bundled_character_model_reads_mnist_digits_when_told_to(tmp_path, real_data_dir):
    out = tmp_path / "digits"
    assert main(["evaluate", "chars", "--dataset", "mnist", "--charset", "digits", "--data-dir", str(real_data_dir),
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 10000 and metrics["accuracy"] >= 0.9930  # issue #4's bar


def test_bundled_character_model_is_self_describing():
    ck = load_checkpoint(bundled_path("chars"))
    classes = ck.meta["classes"]  # 62 characters and, since issue 15, "not a character"
    assert len(classes) == 63 and classes[-1] == NOT_A_CHARACTER and ck.meta["frame"]["framing"] == "emnist"
    assert ck.meta["train_config"]["dataset"] == "emnist-byclass-testhalf" and ck.training_state is None
    assert bundled_path("chars").stat().st_size < 8 * 2**20
