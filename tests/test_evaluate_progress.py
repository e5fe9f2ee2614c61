"""evaluate() in the library: a progress bar only when asked for (stderr, images/s), and the count of
uncertain answers with the accuracy on the confident ones, by the same rule as the web API."""

from types import SimpleNamespace

import numpy as np
import pytest

from scrawl.evaluation import evaluate
from scrawl.runtime.files import sample_images
from scrawl.runtime.recognizer import Recognizer


@pytest.fixture(scope="module")
def samples():
    rec = Recognizer("digits-lite", runtime="onnx")
    paths = sorted(sample_images(), key=lambda p: p.name)
    images = np.stack([(rec.frame(p) * 255).round().astype(np.uint8) for p in paths])
    ds = SimpleNamespace(name="mnist", split="test", images=images, labels=np.array([int(p.name[0]) for p in paths]),
                         classes=list("0123456789"))
    return rec, ds


def test_evaluate_prints_nothing_unless_asked(samples, capsys):
    rec, ds = samples
    evaluate(rec, ds, batch_size=4)
    assert capsys.readouterr() == ("", "")
    evaluate(rec, ds, batch_size=4, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "evaluating mnist test" in captured.err and "10/10" in captured.err and "img/s" in captured.err


def test_evaluate_counts_uncertain_answers(samples):
    rec, ds = samples
    ev = evaluate(rec, ds)
    confidence, right = ev.probs.max(axis=1), ev.probs.argmax(axis=1) == ev.labels
    unsure = confidence < 0.6
    assert ev.metrics["uncertain_below"] == 0.6 and ev.metrics["uncertain_count"] == unsure.sum()
    assert ev.metrics["confident_accuracy"] == right[~unsure].mean()
    none = evaluate(rec, ds, uncertain_below=0.0).metrics  # nothing is below 0%
    assert none["uncertain_count"] == 0 and none["uncertain_accuracy"] is None
    assert none["confident_accuracy"] == none["accuracy"]
    every = evaluate(rec, ds, uncertain_below=1.01).metrics  # everything is below 101%
    assert every["uncertain_count"] == 10 and every["confident_accuracy"] is None
    assert every["uncertain_accuracy"] == every["accuracy"]


def test_uncertainty_by_hand():
    from scrawl.evaluation.evaluate import uncertainty

    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4]], np.float32)
    labels = np.array([0, 1, 1, 0, 0])
    # confidences 0.9, 0.55, 0.6, 0.7, 0.6: only 0.55 is below 0.6 (0.6 itself is not, as in the API)
    got = uncertainty(labels, probs, 0.6)
    assert got == {"uncertain_below": 0.6, "uncertain_count": 1, "confident_accuracy": 0.75,
                   "uncertain_accuracy": 0.0}
