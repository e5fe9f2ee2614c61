"""Calibration in the evaluation (issue 15): the expected and maximum calibration error computed by hand
and against scikit-learn's binning, the reliability diagram in the report, and the reject class
("not a character"): answers are judged on the best character, rejected answers are counted and are
uncertain, and a model without the class gives the figures it always gave."""

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from scrawl.evaluation import EvaluationInputError, compute_metrics, evaluate, write_report
from scrawl.evaluation.calibration import BINS, calibration
from scrawl.evaluation.evaluate import uncertainty
from scrawl.labels import NOT_A_CHARACTER

# --------------------------------------------------------------------------------------------------
# ECE and MCE


def test_a_perfectly_calibrated_set_has_no_calibration_error():
    # In each bin the share of right answers is exactly the confidence: 10 answers at 0.1, 1 right...
    conf = np.repeat([0.1, 0.3, 0.5, 0.7, 0.9, 1.0], 10)
    correct = np.concatenate([np.arange(10) < round(10 * c) for c in (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)])
    cal = calibration(correct, conf)
    assert cal["ece"] == pytest.approx(0, abs=1e-12) and cal["mce"] == pytest.approx(0, abs=1e-12)
    assert sum(b["count"] for b in cal["bins"]) == 60 and len(cal["bins"]) == BINS == 15


def test_sampled_calibration_is_near_zero_and_overconfidence_is_not():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200_000)
    draw = rng.uniform(0, 1, conf.size)
    assert calibration(draw < conf, conf)["ece"] < 0.01  # right with probability = confidence
    # Right with probability conf**2: every bin is over-confident by about c - c**2, so the ECE is the
    # mean of c - c**2 over uniform c, 1/2 - 1/3.
    assert calibration(draw < conf**2, conf)["ece"] == pytest.approx(1 / 6, abs=0.01)


def test_ece_of_an_overconfident_hand_case():
    # Four answers at 95% (two right) fall in bin 15 (14/15, 1]: accuracy 0.5, confidence 0.95, gap 0.45.
    # Answers at 55% (right) and 58% (wrong) fall in bin 9 (8/15, 9/15]: accuracy 0.5, confidence 0.565,
    # gap 0.065. ECE = (4 * 0.45 + 2 * 0.065) / 6; MCE = 0.45.
    probs = np.array([[0.95, 0.03, 0.02]] * 4 + [[0.55, 0.25, 0.20], [0.58, 0.22, 0.20]])
    labels = np.array([0, 0, 1, 2, 0, 2])
    cal = compute_metrics(labels, probs, list("abc"))["calibration"]
    assert cal["ece"] == pytest.approx((4 * 0.45 + 2 * 0.065) / 6)
    assert cal["mce"] == pytest.approx(0.45)
    filled = {i: b for i, b in enumerate(cal["bins"]) if b["count"]}
    assert set(filled) == {8, 14}
    assert filled[14]["count"] == 4 and filled[14]["accuracy"] == 0.5
    assert filled[14]["confidence"] == pytest.approx(0.95)
    assert filled[8]["count"] == 2 and filled[8]["confidence"] == pytest.approx(0.565)
    assert filled[8]["lower"] == pytest.approx(8 / 15) and filled[8]["upper"] == pytest.approx(9 / 15)
    assert cal["bins"][0]["accuracy"] is None and cal["bins"][0]["gap"] is None  # empty bins have no rates
    assert json.loads(json.dumps(cal, allow_nan=False)) == cal


def test_bins_agree_with_scikit_learns_calibration_curve():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(1)
    conf = np.concatenate([rng.uniform(0, 1, 3000), np.linspace(0, 1, 16), [0.0, 1.0]])  # edges included
    correct = rng.uniform(0, 1, conf.size) < conf
    cal = calibration(correct, conf)
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=15, strategy="uniform")
    filled = [b for b in cal["bins"] if b["count"]]
    np.testing.assert_allclose([b["accuracy"] for b in filled], prob_true)
    np.testing.assert_allclose([b["confidence"] for b in filled], prob_pred)
    assert cal["bins"][0]["count"] >= 1 and cal["bins"][-1]["count"] >= 1  # 0 and 1 are binned


@pytest.mark.parametrize(("correct", "confidence"), [
    ([True, False], [0.5]), ([], []), ([True], [1.5]), ([True], [np.nan]), ([[True]], [[0.5]]),
])
def test_calibration_refuses_arrays_that_do_not_fit(correct, confidence):
    with pytest.raises(EvaluationInputError):
        calibration(np.array(correct, dtype=bool), np.array(confidence, dtype=float))


# --------------------------------------------------------------------------------------------------
# The report


def _fake_set(n=300, classes=10, seed=3):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 3
    labels = rng.integers(0, classes, n)
    logits[np.arange(n), labels] += 2.5
    probs = np.exp(logits)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 8:20, 12:15] = 255
    return images, labels, probs / probs.sum(axis=1, keepdims=True)


def test_report_has_the_reliability_diagram_and_the_ece(tmp_path):
    images, labels, probs = _fake_set()
    classes = list("0123456789")
    metrics = compute_metrics(labels, probs, classes)
    files = write_report(tmp_path, metrics=metrics, images=images, labels=labels, probs=probs, classes=classes)
    with Image.open(files["calibration"]) as im:
        assert im.format == "PNG" and files["calibration"].name == "calibration.png"
        assert im.size[0] >= 400 and im.size[1] > im.size[0]  # diagram over histogram
    markdown = files["report"].read_text(encoding="utf-8")
    ece = metrics["calibration"]["ece"]
    assert ece > 0.05  # random logits: far from calibrated, so the figure below means something
    assert "## Calibration" in markdown and "![Reliability diagram](calibration.png)" in markdown
    assert f"| Calibration error (ECE, 15 bins) | {ece:.2%} |" in markdown
    assert "Rejected" not in markdown  # no reject class
    saved = json.loads(files["metrics"].read_text(encoding="utf-8"))
    assert saved["calibration"] == metrics["calibration"]
    assert sum(b["count"] for b in saved["calibration"]["bins"]) == len(labels)


def test_report_draws_calibration_for_a_metrics_dict_without_it(tmp_path):
    images, labels, probs = _fake_set(n=40)
    metrics = compute_metrics(labels, probs, list("0123456789"))
    older = {k: v for k, v in metrics.items() if k != "calibration"}  # from before the figure existed
    files = write_report(tmp_path, metrics=older, images=images, labels=labels, probs=probs,
                         classes=list("0123456789"))
    assert files["calibration"].exists()
    assert json.loads(files["metrics"].read_text(encoding="utf-8"))["calibration"] == metrics["calibration"]


# --------------------------------------------------------------------------------------------------
# The reject class

# Classes a, b and the reject class. Best character, reject probability, rejected:
#   row 0: a 0.6, 0.3, no          row 1: b 0.3, 0.5, yes (right: the best character is b)
#   row 2: a 0.3, 0.5, yes (wrong) row 3: b 0.7, 0.2, no (wrong)
#   row 4: a 0.4 (a tie with b: the first wins, like argmax), 0.2, no (right)
REJECT_CLASSES = ["a", "b", NOT_A_CHARACTER]
REJECT_PROBS = np.array([[0.6, 0.1, 0.3], [0.2, 0.3, 0.5], [0.3, 0.2, 0.5], [0.1, 0.7, 0.2], [0.4, 0.4, 0.2]])
REJECT_LABELS = np.array([0, 1, 1, 0, 0])


def test_metrics_judge_the_best_character_and_count_rejections():
    m = compute_metrics(REJECT_LABELS, REJECT_PROBS, REJECT_CLASSES)
    assert m["accuracy"] == pytest.approx(3 / 5) and m["errors"] == 2  # argmax over all classes would say 2/5
    assert (m["rejected_count"], m["rejected_share"]) == (2, pytest.approx(2 / 5))
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.6, 0.3, 0.2, 0.1, 0.4])))  # softmax over all classes
    assert m["classes"] == ["a", "b"] and m["num_classes"] == 2 and set(m["per_class"]) == {"a", "b"}
    assert m["confusion_matrix"] == [[2, 1], [1, 1]]
    conf = np.array([0.6, 0.3, 0.3, 0.7, 0.4])  # the best character's probability, never the reject class's
    assert m["calibration"] == calibration(np.array([1, 1, 0, 0, 1], bool), conf)


def test_rejected_answers_are_uncertain():
    # Below 0.5: rows 1, 2 (rejected) and 4 (0.4) are uncertain; right among the others: 0 yes, 3 no.
    got = uncertainty(REJECT_LABELS, REJECT_PROBS, 0.5, REJECT_CLASSES)
    assert got == {"uncertain_below": 0.5, "uncertain_count": 3, "confident_accuracy": 0.5,
                   "uncertain_accuracy": pytest.approx(2 / 3)}
    # Below 0.3 no character is unsure of itself: the two rejected answers alone are uncertain.
    assert uncertainty(REJECT_LABELS, REJECT_PROBS, 0.3, REJECT_CLASSES)["uncertain_count"] == 2
    assert uncertainty(REJECT_LABELS, REJECT_PROBS, 0.3)["uncertain_count"] == 0  # without the class's name


def test_top_k_lists_characters_only():
    classes = list("abcde") + [NOT_A_CHARACTER]
    probs = np.array([[0.2, 0.25, 0.05, 0.05, 0.15, 0.3]])  # e is third among characters, fourth overall
    assert compute_metrics(np.array([4]), probs, classes)["top3_accuracy"] == 1.0


def test_labels_naming_the_reject_class_are_refused(tmp_path):
    labels = np.array([0, 2, 1, 0, 0])
    with pytest.raises(EvaluationInputError, match="reject class"):
        compute_metrics(labels, REJECT_PROBS, REJECT_CLASSES)
    metrics = compute_metrics(REJECT_LABELS, REJECT_PROBS, REJECT_CLASSES)
    with pytest.raises(EvaluationInputError, match="reject class"):
        write_report(tmp_path, metrics=metrics, images=np.zeros((5, 28, 28), np.uint8), labels=labels,
                     probs=REJECT_PROBS, classes=REJECT_CLASSES)


def test_a_reject_class_that_takes_nothing_changes_nothing():
    _, labels, probs = _fake_set(n=200, seed=4)
    plain = compute_metrics(labels, probs, list("0123456789"))
    padded = compute_metrics(labels, np.hstack([probs, np.zeros((200, 1))]), list("0123456789") + [NOT_A_CHARACTER])
    assert padded == plain and plain["rejected_count"] == 0


def test_the_report_of_a_reject_class_model(tmp_path):
    images = np.zeros((5, 28, 28), np.uint8)
    metrics = compute_metrics(REJECT_LABELS, REJECT_PROBS, REJECT_CLASSES)
    files = write_report(tmp_path, metrics=metrics, images=images, labels=REJECT_LABELS, probs=REJECT_PROBS,
                         classes=REJECT_CLASSES)
    markdown = files["report"].read_text(encoding="utf-8")
    assert "| Rejected as not a character | 2 / 5 (40.00%) |" in markdown
    assert NOT_A_CHARACTER not in markdown  # never a predicted class, nor a row of the class report
    assert "| Accuracy | 60.00% (3 / 5) |" in markdown


# --- evaluate() with a real model that has the reject class ----------------------------------------


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    from scrawl.runtime.files import sample_images
    from scrawl.runtime.recognizer import Recognizer

    from conftest import without_reject_class

    # digits-lite's ten digit outputs only (the bundled model has the reject class since issue 15)
    plain = without_reject_class("digits-lite", tmp_path_factory.mktemp("plain") / "digits-lite-plain.pt")
    rec = Recognizer(plain, runtime="torch")
    paths = sorted(sample_images(), key=lambda p: p.name)
    images = np.stack([(rec.frame(p) * 255).round().astype(np.uint8) for p in paths])
    ds = SimpleNamespace(name="mnist", split="test", images=images, labels=np.array([int(p.name[0]) for p in paths]),
                         classes=list("0123456789"))
    return rec, ds


def _with_reject_class(rec, path, bias: float):
    """digits-lite's digits with an 11th class, the reject class, whose logit is `bias` for every image."""
    import torch

    from scrawl.runtime.checkpoint import save_checkpoint
    from scrawl.runtime.recognizer import Recognizer

    card = dataclasses.replace(rec.checkpoint.card, classes=list(rec.classes) + [NOT_A_CHARACTER],
                               model_config={**rec.checkpoint.card.model_config, "num_classes": 11})
    state = dict(rec.checkpoint.state_dict)
    state["head.weight"] = torch.cat([state["head.weight"], torch.zeros(1, state["head.weight"].shape[1])])
    state["head.bias"] = torch.cat([state["head.bias"], torch.tensor([bias])])
    return Recognizer(save_checkpoint(path, card, state), runtime="torch")


def test_evaluate_a_model_with_the_reject_class(samples, tmp_path):
    from scrawl.vision.framing import to_input

    rec, ds = samples
    plain = evaluate(rec, ds)
    top = float(np.asarray(rec.logits(to_input(ds.images))).max())
    never = evaluate(_with_reject_class(rec, tmp_path / "never.pt", top - 200.0), ds)
    always = evaluate(_with_reject_class(rec, tmp_path / "always.pt", top + 5.0), ds)  # wins on every image
    for ev in (never, always):
        assert ev.classes == list("0123456789") + [NOT_A_CHARACTER] and ev.probs.shape == (10, 11)
        assert ev.metrics["classes"] == list("0123456789")
        assert ev.metrics["accuracy"] == plain.metrics["accuracy"]  # the best character is the same
        assert ev.metrics["confusion_matrix"] == plain.metrics["confusion_matrix"]
    assert never.metrics["rejected_count"] == 0
    assert never.metrics["uncertain_count"] == plain.metrics["uncertain_count"]
    assert never.metrics["calibration"]["ece"] == pytest.approx(plain.metrics["calibration"]["ece"], abs=1e-6)
    assert always.metrics["rejected_count"] == 10 and always.metrics["rejected_share"] == 1.0
    assert always.metrics["uncertain_count"] == 10 and always.metrics["confident_accuracy"] is None
    assert always.metrics["loss"] > plain.metrics["loss"]  # the reject class took the probability
    files = always.write_report(tmp_path / "report")
    assert "| Rejected as not a character | 10 / 10 (100.00%) |" in files["report"].read_text(encoding="utf-8")
