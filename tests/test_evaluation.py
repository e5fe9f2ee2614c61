"""Tests for scrawl.evaluation: metrics computed by hand, the report folder it writes, and `evaluate` on the
torch, ONNX and int8 runtimes."""

import json
import math
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from scrawl import Recognizer
from scrawl.errors import ScrawlError
from scrawl.evaluation import (
    Evaluation,
    EvaluationInputError,
    compute_metrics,
    evaluate,
    most_confused_pairs,
    write_report,
)
from scrawl.fsutil import atomic_write
from scrawl.labels import NOT_A_CHARACTER
from scrawl.runtime.files import sample_images

# --------------------------------------------------------------------------------------------------
# A hand-made 3-class case. Predictions (argmax) and the true class's probability per row:
#   row 0: true a, pred a (0.7)    row 1: true a, pred b (0.2)
#   row 2: true b, pred b (0.8)    row 3: true b, pred c (0.3)
#   row 4: true c, pred c (0.6)    row 5: true c, pred b (0.1)
HAND_CLASSES = ["a", "b", "c"]
HAND_LABELS = np.array([0, 0, 1, 1, 2, 2])
HAND_PROBS = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.8, 0.1],
        [0.1, 0.3, 0.6],
        [0.2, 0.2, 0.6],
        [0.1, 0.8, 0.1],
    ]
)


def test_compute_metrics_hand_case():
    m = compute_metrics(HAND_LABELS, HAND_PROBS, HAND_CLASSES)
    assert m["n"] == 6
    assert m["errors"] == 3
    assert m["accuracy"] == pytest.approx(3 / 6)
    expected_loss = -(math.log(0.7) + math.log(0.2) + math.log(0.8) + math.log(0.3) + math.log(0.6) + math.log(0.1)) / 6
    assert m["loss"] == pytest.approx(expected_loss)
    # predicted a: {0} -> 1/1; predicted b: {1, 2, 5} -> 1/3; predicted c: {3, 4} -> 1/2
    assert m["per_class"]["a"]["precision"] == pytest.approx(1.0)
    assert m["per_class"]["b"]["precision"] == pytest.approx(1 / 3)
    assert m["per_class"]["c"]["precision"] == pytest.approx(1 / 2)
    for name in HAND_CLASSES:
        assert m["per_class"][name]["recall"] == pytest.approx(1 / 2)
        assert m["per_class"][name]["support"] == 2
    assert m["per_class"]["a"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["f1"] == pytest.approx(2 / 5)
    assert m["per_class"]["c"]["f1"] == pytest.approx(1 / 2)
    assert m["macro_avg"]["precision"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    assert m["macro_avg"]["f1"] == pytest.approx((2 / 3 + 2 / 5 + 1 / 2) / 3)
    assert m["weighted_avg"]["recall"] == pytest.approx(1 / 2)
    assert m["macro_avg"]["support"] == 6
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 1, 1]]
    assert m["classes"] == HAND_CLASSES
    assert "top3_accuracy" not in m and "top5_accuracy" not in m  # only 3 classes
    assert "merged_accuracy" not in m
    # JSON-safe: plain types all the way down, round-trips unchanged.
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_loss_clips_zero_probability():
    m = compute_metrics(np.array([0, 1]), np.array([[0.0, 1.0], [0.0, 1.0]]), ["x", "y"])
    assert m["loss"] == pytest.approx((-math.log(1e-12) + 0.0) / 2)
    assert math.isfinite(m["loss"])


def test_topk_accuracy():
    classes = list("pqrstu")
    base = np.array([0.30, 0.25, 0.20, 0.12, 0.08, 0.05])  # ranks: class 0 first ... class 5 last
    probs = np.tile(base, (4, 1))
    labels = np.array([0, 2, 3, 5])  # ranks 1, 3, 4, 6
    m = compute_metrics(labels, probs, classes)
    assert m["accuracy"] == pytest.approx(1 / 4)
    assert m["top3_accuracy"] == pytest.approx(2 / 4)
    assert m["top5_accuracy"] == pytest.approx(3 / 4)


def _one_hot_probs(preds, n_classes, confidence=0.9):
    probs = np.full((len(preds), n_classes), (1 - confidence) / (n_classes - 1))
    probs[np.arange(len(preds)), preds] = confidence
    return probs


def test_merged_accuracy():
    classes = ["c", "C", "o", "O", "x"]
    # c->C, C->c, o->O (all fine once merged), O->c (wrong), x->x (right), c->x (wrong)
    labels = np.array([0, 1, 2, 3, 4, 0])
    preds = np.array([1, 0, 3, 0, 4, 4])
    m = compute_metrics(labels, _one_hot_probs(preds, 5), classes, merge={"c": "C", "o": "O"})
    assert m["accuracy"] == pytest.approx(1 / 6)
    assert m["merged_accuracy"] == pytest.approx(4 / 6)
    assert m["merge"] == {"c": "C", "o": "O"}


def test_merge_with_unknown_class_is_rejected():
    with pytest.raises(ValueError, match="merge"):
        compute_metrics(HAND_LABELS, HAND_PROBS, HAND_CLASSES, merge={"q": "Q"})


def test_most_confused_pairs_order():
    cm = np.array([[5, 2, 0], [7, 3, 1], [0, 2, 4]])
    pairs = most_confused_pairs(cm, ["a", "b", "c"])
    assert pairs == [
        {"true": "b", "predicted": "a", "count": 7},
        {"true": "a", "predicted": "b", "count": 2},  # ties keep row order: (a, b) before (c, b)
        {"true": "c", "predicted": "b", "count": 2},
        {"true": "b", "predicted": "c", "count": 1},
    ]
    assert most_confused_pairs(cm, ["a", "b", "c"], k=2) == pairs[:2]
    assert most_confused_pairs(np.diag([3, 4]), ["a", "b"]) == []
    with pytest.raises(ValueError):
        most_confused_pairs(np.zeros((2, 3)), ["a", "b"])


@pytest.mark.parametrize(
    ("labels", "probs", "classes", "message"),
    [
        (HAND_LABELS, HAND_PROBS[:, 0], HAND_CLASSES, "2-D"),
        (HAND_LABELS[:5], HAND_PROBS, HAND_CLASSES, "must agree"),
        (HAND_LABELS.reshape(2, 3), HAND_PROBS, HAND_CLASSES, "1-D"),
        (np.array([0, 0, 1, 1, 2, 3]), HAND_PROBS, HAND_CLASSES, r"\[0, 2\]"),
        (np.array([0, 0, 1, 1, 2, -1]), HAND_PROBS, HAND_CLASSES, r"\[0, 2\]"),
        (HAND_LABELS, HAND_PROBS, ["a", "b"], "class names"),
        (HAND_LABELS, HAND_PROBS, ["a", "b", "a"], "unique"),
        (HAND_LABELS, HAND_PROBS * 3, HAND_CLASSES, "logits"),
        (HAND_LABELS, HAND_PROBS * 0.5, HAND_CLASSES, "sum to 1"),
        (HAND_LABELS, np.where(HAND_PROBS == 0.7, np.nan, HAND_PROBS), HAND_CLASSES, "NaN"),
        (HAND_LABELS + 0.5, HAND_PROBS, HAND_CLASSES, "integer"),
        (np.array([], dtype=int), np.zeros((0, 3)), HAND_CLASSES, "empty"),
    ],
)
def test_bad_input_raises_value_error(labels, probs, classes, message):
    with pytest.raises(ValueError, match=message) as info:
        compute_metrics(labels, probs, classes)
    assert isinstance(info.value, EvaluationInputError)


# --------------------------------------------------------------------------------------------------
# Reports


def _fake_set(n_classes, n, n_errors, seed):
    """Images (bright strokes on black), labels, probs with exactly n_errors mistakes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    preds = labels.copy()
    wrong = rng.choice(n, size=n_errors, replace=False)
    preds[wrong] = (labels[wrong] + 1 + rng.integers(0, n_classes - 1, n_errors)) % n_classes
    probs = _one_hot_probs(preds, n_classes, confidence=0.6)
    probs[wrong, preds[wrong]] = rng.uniform(0.5, 0.99, n_errors)  # distinct confidences for ordering
    probs[wrong] = probs[wrong] / probs[wrong].sum(axis=1, keepdims=True)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        r, c = rng.integers(4, 20, 2)
        images[i, r : r + 8, c : c + 3] = 255  # a bright stroke
    return images, labels, probs


HISTORY = [
    {"epoch": e, "train_loss": 1.0 / e, "train_acc": 1 - 0.4 / e, "val_loss": 1.1 / e, "val_acc": 1 - 0.45 / e,
     "lr": 1e-3, "seconds": 12.5}
    for e in range(1, 6)
]
HISTORY[2]["val_loss"] = float("nan")  # a diverged value must not break the plot or the JSON


def _linked_images(markdown):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


@pytest.fixture(scope="module")
def ten_class_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("ten") / "nested" / "report"  # created by write_report
    classes = [str(d) for d in range(10)]
    images, labels, probs = _fake_set(10, 200, 23, seed=1)
    metrics = compute_metrics(labels, probs, classes)
    files = write_report(out, metrics=metrics, images=images, labels=labels, probs=probs, classes=classes,
                         history=HISTORY, info={"model": "tiny-cnn", "parameters": 12345}, max_errors=16)
    return out, files, metrics


@pytest.fixture(scope="module")
def many_class_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("sixtytwo")
    classes = [chr(c) for c in range(48, 58)] + [chr(c) for c in range(65, 91)] + [chr(c) for c in range(97, 123)]
    images, labels, probs = _fake_set(62, 310, 40, seed=2)
    metrics = compute_metrics(labels, probs, classes, merge={"c": "C", "o": "O"})
    files = write_report(out, metrics=metrics, images=(images / 255.0).astype(np.float32), labels=labels,
                         probs=probs, classes=classes, history=None, title="Sixty-two classes")
    return out, files, metrics


def _check_png(path, min_w=300, min_h=150, max_side=4000):
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        w, h = im.size
    assert min_w <= w <= max_side and min_h <= h <= max_side, (path.name, im.size)
    return w, h


def test_ten_class_report_files(ten_class_report):
    out, files, _ = ten_class_report
    assert set(files) == {"curves", "confusion", "calibration", "errors", "metrics", "report"}  # no pairs: 10 classes
    assert {p.name for p in out.iterdir()} == {p.name for p in files.values()}  # nothing else, no temp files
    for name in ("curves", "confusion", "calibration", "errors"):
        _check_png(files[name])
    w, h = _check_png(files["curves"])
    assert w > 1.8 * h  # two panels side by side


def test_report_links_exactly_the_pictures(ten_class_report, many_class_report):
    for out, files, _ in (ten_class_report, many_class_report):
        markdown = files["report"].read_text(encoding="utf-8")
        links = _linked_images(markdown)
        assert len(links) == len(set(links))
        assert set(links) == {p.name for p in out.glob("*.png")}
        assert all("/" not in link for link in links)  # relative, next to report.md


def test_report_markdown_content(ten_class_report):
    _, files, metrics = ten_class_report
    markdown = files["report"].read_text(encoding="utf-8")
    assert markdown.startswith("# Scrawl evaluation\n")
    assert f"{metrics['accuracy']:.2%}" in markdown
    assert "23 / 200" in markdown  # errors / N
    assert "| model | tiny-cnn |" in markdown
    assert "![Accuracy and loss](curves.png)" in markdown
    assert "Best validation accuracy" in markdown
    # classification report table: one row per class plus macro and weighted averages
    rows = [line for line in markdown.splitlines() if re.match(r"\| (\d|\*\*\w+ avg\*\*) \| \d\.\d{4} \|", line)]
    assert len(rows) == 12
    pair = most_confused_pairs(np.array(metrics["confusion_matrix"]), metrics["classes"])[0]
    assert f"- {pair['true']} → {pair['predicted']}: {pair['count']}" in markdown


def test_metrics_json_matches(ten_class_report):
    _, files, metrics = ten_class_report

    def no_constants(name):
        raise AssertionError(f"metrics.json holds {name}")

    saved = json.loads(files["metrics"].read_text(encoding="utf-8"), parse_constant=no_constants)
    for key in ("n", "accuracy", "loss", "errors", "per_class", "macro_avg", "confusion_matrix", "classes"):
        assert saved[key] == metrics[key], key
    assert saved["info"] == {"model": "tiny-cnn", "parameters": 12345}
    assert saved["history"][2]["val_loss"] is None  # NaN written as null
    assert saved["gallery_count"] == min(metrics["errors"], 16) == 16


def test_errors_gallery_is_dark_ink_on_white(ten_class_report):
    _, files, _ = ten_class_report
    with Image.open(files["errors"]) as im:
        gray = np.asarray(im.convert("L"), dtype=float)
    # The fake images are black with a bright stroke; drawn as ink on paper the picture is mostly white.
    assert gray.mean() > 200


def test_sixty_two_classes(many_class_report, ten_class_report):
    out, files, metrics = many_class_report
    assert set(files) == {"confusion", "calibration", "errors", "confused_pairs", "metrics", "report"}
    assert not (out / "curves.png").exists()
    assert {p.name for p in out.iterdir()} == {p.name for p in files.values()}
    big_w, big_h = _check_png(files["confusion"])
    small_w, _ = _check_png(ten_class_report[1]["confusion"])
    assert big_w > 1.3 * small_w and big_h > 1000  # room for 62 tick labels
    _check_png(files["confused_pairs"])
    _check_png(files["errors"])
    markdown = files["report"].read_text(encoding="utf-8")
    assert markdown.startswith("# Sixty-two classes")
    assert "No training history" in markdown
    assert "Merged accuracy" in markdown
    saved = json.loads(files["metrics"].read_text(encoding="utf-8"))
    assert saved["gallery_count"] == metrics["errors"] == 40
    assert saved["merged_accuracy"] == metrics["merged_accuracy"]


def test_perfect_predictions_and_odd_class_names(tmp_path):
    classes = ["a|b", "*", "c"]
    labels = np.array([0, 1, 2, 0])
    probs = _one_hot_probs(labels, 3)
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    metrics = compute_metrics(labels, probs, classes)
    files = write_report(tmp_path, metrics=metrics, images=images, labels=labels, probs=probs, classes=classes,
                         history=[])
    assert "errors" in files and "curves" not in files
    _check_png(files["errors"], min_h=100)  # the "no mistakes" picture
    markdown = files["report"].read_text(encoding="utf-8")
    assert "every prediction was right" in markdown
    assert "No training history" in markdown
    # "a|b" escaped so the table keeps five columns
    row = next(line for line in markdown.splitlines() if line.startswith("| a"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 6
    assert json.loads(files["metrics"].read_text(encoding="utf-8"))["gallery_count"] == 0


def test_max_errors_zero_skips_gallery_and_rewrite_replaces(tmp_path):
    images, labels, probs = _fake_set(3, 12, 5, seed=3)
    metrics = compute_metrics(labels, probs, ["x", "y", "z"])
    write_report(tmp_path, metrics=metrics, images=images, labels=labels, probs=probs, classes=["x", "y", "z"])
    assert (tmp_path / "errors.png").exists()
    files = write_report(tmp_path, metrics=metrics, images=images, labels=labels, probs=probs,
                         classes=["x", "y", "z"], max_errors=0)
    assert "errors" not in files
    markdown = files["report"].read_text(encoding="utf-8")
    assert "errors.png" not in markdown
    assert "5 mistakes; no gallery" in markdown
    assert json.loads(files["metrics"].read_text(encoding="utf-8"))["gallery_count"] == 0
    assert not list(tmp_path.glob(".*"))  # no temp files


def test_write_report_rejects_bad_input(tmp_path):
    metrics = compute_metrics(HAND_LABELS, HAND_PROBS, HAND_CLASSES)
    good = dict(metrics=metrics, labels=HAND_LABELS, probs=HAND_PROBS, classes=HAND_CLASSES)
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="images"):
        write_report(out, images=np.zeros((6, 28)), **good)
    with pytest.raises(ValueError, match="images"):
        write_report(out, images=np.zeros((5, 28, 28)), **good)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_report(out, images=np.full((6, 28, 28), 255.0), **good)
    with pytest.raises(ValueError, match="metrics"):
        write_report(out, images=np.zeros((6, 28, 28)), **{**good, "metrics": {**metrics, "n": 7}})
    assert not out.exists()  # validated before anything is written


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def fail(fh):
        fh.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "metrics.json", fail, binary=False)  # the writer write_report uses
    assert list(tmp_path.iterdir()) == []


def test_import_is_light():
    code = ("import sys, scrawl.evaluation; "
            "print(sorted(m for m in ('matplotlib', 'sklearn', 'torch', 'onnxruntime') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_report_files_have_the_mode_open_gives(tmp_path):
    metrics = compute_metrics(HAND_LABELS, HAND_PROBS, HAND_CLASSES)
    files = write_report(tmp_path / "rep", metrics=metrics, images=np.zeros((6, 28, 28), np.uint8), labels=HAND_LABELS,
                         probs=HAND_PROBS, classes=HAND_CLASSES)
    probe = tmp_path / "probe"
    probe.write_text("x")  # 0o666 less the umask, as for any file a program writes
    for path in files.values():
        assert path.stat().st_mode & 0o777 == probe.stat().st_mode & 0o777, path.name


# --------------------------------------------------------------------------------------------------
# evaluate(): any recognizer, any runtime


@pytest.fixture(scope="module")
def samples_set():
    """The ten bundled sample drawings, framed like MNIST, as a dataset whose class order is the reverse
    of the models' (so the class mapping is exercised): classes "9".."0", labels 9 - digit."""
    rec = Recognizer("digits", runtime="onnx")
    paths = sorted(sample_images(), key=lambda p: p.name)
    digits = np.array([int(p.name[0]) for p in paths])
    images = np.stack([(rec.frame(p) * 255).round().astype(np.uint8) for p in paths])
    return SimpleNamespace(name="mnist", split="test", images=images, labels=9 - digits,
                           classes=list("9876543210")), digits


@pytest.fixture(scope="module")
def runtimes():
    return {rt: Recognizer("digits-lite", runtime=rt) for rt in ("torch", "onnx")}


def test_evaluate_maps_classes_and_agrees_across_runtimes(samples_set, runtimes):
    ds, digits = samples_set
    results = {rt: evaluate(rec, ds, batch_size=3) for rt, rec in runtimes.items()}
    for rt, ev in results.items():
        assert isinstance(ev, Evaluation)
        assert ev.classes == [*"0123456789", NOT_A_CHARACTER]  # the bundled model's reject class too
        np.testing.assert_array_equal(ev.labels, digits)  # mapped onto the model's classes
        assert ev.images.dtype == np.uint8 and ev.images.shape == (10, 28, 28)
        np.testing.assert_array_equal(ev.images, ds.images)  # MNIST-framed: shown as they are
        assert ev.probs.shape == (10, 11) and ev.probs.dtype == np.float32
        assert ev.metrics["n"] == 10 and ev.metrics["accuracy"] >= 0.9
        assert ev.info["preprocessing"].startswith("none")
        assert ev.info["model"] == "digits-lite" and ev.info["architecture"] == "fastnet"
    assert results["torch"].metrics["accuracy"] == results["onnx"].metrics["accuracy"]
    np.testing.assert_allclose(results["torch"].probs, results["onnx"].probs, atol=1e-4)
    assert "checkpoint" in results["torch"].info and "runtime" not in results["torch"].info
    assert results["onnx"].info["runtime"] == "onnx" and results["onnx"].info["model file"].endswith(".onnx")
    assert results["torch"].history and not results["onnx"].history  # the .pt carries its training history


def test_evaluate_batches_give_the_same_answers(samples_set, runtimes):
    ds, _ = samples_set
    one = evaluate(runtimes["onnx"], ds, batch_size=1)
    all_ = evaluate(runtimes["onnx"], ds, batch_size=1000)
    np.testing.assert_array_equal(one.probs, all_.probs)


def test_evaluate_charset_restricts_classes_and_metrics_come_from_the_task(samples_set):
    ds, digits = samples_set
    ev = evaluate(Recognizer("chars", runtime="onnx"), ds, charset="digits")
    assert ev.classes == [*"0123456789", NOT_A_CHARACTER] and ev.probs.shape == (10, 11)  # a charset keeps "none"
    np.testing.assert_array_equal(ev.labels, digits)
    np.testing.assert_allclose(ev.probs.sum(axis=1), 1, atol=1e-5)  # the charset's classes hold all the mass
    assert ev.info["charset"] == "digits"
    assert "merged_accuracy" not in ev.metrics  # no look-alike case pairs among digits
    with pytest.raises(ScrawlError, match="cannot answer: 0 1 2"):
        evaluate(Recognizer("chars", runtime="onnx"), ds, charset="upper")


def test_evaluate_reframes_foreign_framings(samples_set, runtimes):
    ds, _ = samples_set
    foreign = SimpleNamespace(**{**vars(ds), "name": "femnist-sample"})  # a framing no model is trained on
    ev = evaluate(runtimes["onnx"], foreign)
    assert ev.info["preprocessing"].startswith("Scrawl's framing")
    assert ev.images.dtype == np.uint8 and ev.images.shape == ds.images.shape
    assert evaluate(runtimes["onnx"], ds, reframe="yes").info["preprocessing"].startswith("Scrawl's framing")
    assert evaluate(runtimes["onnx"], foreign, reframe="no").info["preprocessing"].startswith("none")
    with pytest.raises(ScrawlError, match="reframe"):
        evaluate(runtimes["onnx"], ds, reframe="sometimes")


def test_evaluate_rejects_classes_the_model_lacks_and_bad_images(samples_set, runtimes):
    ds, _ = samples_set
    letters = SimpleNamespace(**{**vars(ds), "classes": list("9876543X10")})
    with pytest.raises(ScrawlError, match="mnist has classes the model cannot answer: X"):
        evaluate(runtimes["onnx"], letters)
    floats = SimpleNamespace(**{**vars(ds), "images": ds.images / 255.0})
    with pytest.raises(EvaluationInputError, match="uint8"):
        evaluate(runtimes["onnx"], floats)


def test_evaluation_writes_a_report(samples_set, runtimes, tmp_path):
    ds, _ = samples_set
    ev = evaluate(runtimes["torch"], ds)
    files = ev.write_report(tmp_path, title="Samples")
    assert {"curves", "confusion", "calibration", "errors", "metrics", "report"} <= set(files)
    saved = json.loads(files["metrics"].read_text(encoding="utf-8"))
    assert saved["accuracy"] == ev.metrics["accuracy"] and saved["info"]["model"] == "digits-lite"


def test_onnx_evaluation_never_imports_torch():
    code = """
import sys
from types import SimpleNamespace
import numpy as np
from scrawl import Recognizer
from scrawl.evaluation import evaluate
rec = Recognizer("digits", runtime="onnx")
images = np.zeros((4, 28, 28), np.uint8)
images[:, 8:20, 13:15] = 255
ds = SimpleNamespace(name="mnist", split="test", images=images, labels=np.ones(4, int), classes=list("0123456789"))
print(evaluate(rec, ds).metrics["n"], "torch" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["4", "False"]


# --- real data ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_test(real_data_dir):
    from scrawl.data import load_dataset

    return load_dataset("mnist", "test", real_data_dir, download=False)


def _head(ds, n):
    from dataclasses import replace

    return replace(ds, images=ds.images[:n], labels=ds.labels[:n])


@pytest.mark.realdata
def test_evaluate_torch_and_onnx_agree_on_mnist(mnist_test, runtimes):
    part = _head(mnist_test, 2000)
    torch_ev, onnx_ev = (evaluate(runtimes[rt], part) for rt in ("torch", "onnx"))
    assert torch_ev.metrics["n"] == onnx_ev.metrics["n"] == 2000
    assert torch_ev.metrics["accuracy"] == onnx_ev.metrics["accuracy"] > 0.99
    assert torch_ev.metrics["errors"] == onnx_ev.metrics["errors"]
    np.testing.assert_array_equal(torch_ev.probs.argmax(1), onnx_ev.probs.argmax(1))
    np.testing.assert_array_equal(torch_ev.images, np.asarray(part.images))


@pytest.mark.realdata
def test_evaluate_full_mnist_gives_the_published_figure(mnist_test, runtimes):
    ev = evaluate(runtimes["torch"], mnist_test)
    assert (ev.metrics["n"], ev.metrics["errors"]) == (10000, 31)  # 99.69%, as the README says


@pytest.mark.realdata
def test_cli_evaluate_onnx_writes_a_report(real_data_dir, tmp_path, capsys):
    from scrawl.cli import main

    out = tmp_path / "rep"
    assert main(["evaluate", "digits-lite", "--runtime", "onnx", "--dataset", "mnist",
                 "--data-dir", str(real_data_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mnist test: accuracy 99.6900% (31 errors / 10000)" in printed
    assert f"report: {out / 'report.md'}" in printed
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert saved["n"] == 10000 and saved["info"]["runtime"] == "onnx"
    assert saved["info"]["model file"].endswith("digits-lite.onnx")
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "confusion.png" in report and "errors.png" in report and "| runtime | onnx |" in report


def test_cli_evaluate_torch_file_with_onnx_runtime_is_a_clear_error(tmp_path, capsys):
    from scrawl.cli import main
    from scrawl.runtime.recognizer import bundled_path

    assert main(["evaluate", str(bundled_path("digits")), "--runtime", "onnx", "--out", str(tmp_path)]) == 2
    assert "scrawl export" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.realdata
def test_int8_model_evaluates_like_its_float_model(real_data_dir, mnist_test, runtimes, tmp_path, capsys):
    from scrawl.cli import main
    from scrawl.runtime.export import export_onnx

    path = export_onnx("digits-lite", tmp_path / "lite-int8.onnx", int8=True, data_dir=real_data_dir,
                       calibration=200)["onnx"]
    int8 = Recognizer(path, runtime="onnx")
    part = _head(mnist_test, 2000)
    ev, ref = evaluate(int8, part), evaluate(runtimes["onnx"], part)
    assert ev.info["runtime"] == "onnx (int8)"
    assert abs(ev.metrics["accuracy"] - ref.metrics["accuracy"]) <= 0.005
    assert np.mean(ev.probs.argmax(1) == ref.probs.argmax(1)) >= 0.99
    out = tmp_path / "rep"
    assert main(["evaluate", str(path), "--runtime", "onnx", "--data-dir", str(real_data_dir), "--out", str(out)]) == 0
    assert "mnist test: accuracy 99." in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["info"]["runtime"] == "onnx (int8)"
