"""The model registry, the model card and the task seam, directly: every architecture builds, returns
logits of the right shape, and rebuilds from its card; cards validate once and old files load as
`classify`; the classify task's pieces agree with the numbers training and inference used before."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scrawl.errors import CheckpointError
from scrawl.models import available_models, build_model, count_parameters, model_task
from scrawl.runtime.card import ModelCard
from scrawl.runtime.checkpoint import load_checkpoint, save_checkpoint
from scrawl.tasks import TASKS, get_task
from scrawl.vision import FrameSpec

CLASSES = list("0123456789")


# An input each task's architectures take, and the output shape they must give for it.
INPUTS = {"classify": ((5, 1, 28, 28), lambda c: (5, c)), "ctc": ((5, 1, 32, 96), lambda c: (5, 24, c))}


@pytest.mark.parametrize("arch", sorted(available_models()))
@pytest.mark.parametrize("num_classes", [10, 62])
def test_every_architecture_gives_logits_of_its_shape(arch, num_classes):
    torch.manual_seed(0)
    model = build_model(arch, num_classes=num_classes).eval()
    shape, out_shape = INPUTS[model_task(arch)]
    with torch.no_grad():
        out = model(torch.rand(*shape))
    assert out.shape == out_shape(num_classes) and out.dtype == torch.float32
    assert not torch.allclose(out.softmax(-1), out)  # logits, not probabilities
    assert torch.isfinite(out).all() and count_parameters(model) > 0


@pytest.mark.parametrize("arch", sorted(available_models()))
def test_every_architecture_rebuilds_from_its_card(arch, tmp_path):
    torch.manual_seed(1)
    task = model_task(arch)
    model = build_model(arch, num_classes=10).eval()
    card = ModelCard(arch=arch, model_config={"num_classes": 10}, classes=CLASSES[: 10 - (task == "ctc")],
                     frame=FrameSpec(), task=task)
    ck = load_checkpoint(save_checkpoint(tmp_path / "m.pt", card, model.state_dict()))
    assert ck.card.arch == arch and ck.card.task == task
    x = torch.rand(*INPUTS[task][0])
    with torch.no_grad():
        assert torch.equal(model(x), ck.build_model()(x))


def test_a_card_whose_task_does_not_fit_its_architecture_is_refused():
    card = ModelCard(arch="crnn", model_config={"num_classes": 11}, classes=CLASSES, frame=FrameSpec())
    with pytest.raises(ValueError, match="for task 'ctc'"):
        card.build_model()


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet9000'.*scrawlnet"):
        build_model("resnet9000")


def _card_dict(**over):
    d = {"arch": "fastnet", "model_config": {"num_classes": 10}, "classes": CLASSES,
         "frame": {"framing": "mnist", "size": 28, "box": 20}}
    d.update(over)
    return d


def test_card_round_trip_keeps_every_field_and_extras():
    d = _card_dict(task="classify", dataset={"name": "mnist"}, history=[{"epoch": 1}], metrics={"best_val_acc": 0.9},
                   parameters=123, description="digits", train_config={"epochs": 1}, versions={"scrawl": "0.1.0"})
    card = ModelCard.from_dict(d)
    assert card.frame == FrameSpec() and card.extra == {"versions": {"scrawl": "0.1.0"}}
    again = card.to_dict()
    assert json.loads(json.dumps(again)) == again and ModelCard.from_dict(again) == card
    assert {k: again[k] for k in d} == d


def test_a_card_without_task_is_classify():
    assert ModelCard.from_dict(_card_dict()).task == "classify"


@pytest.mark.parametrize("bad, message", [
    ({"classes": []}, "classes"), ({"classes": "0123"}, "classes"), ({"arch": 3}, "arch"),
    ({"model_config": [1]}, "model_config"), ({"frame": {"framing": "nope"}}, "frame spec"),
    ({"task": "ocr-of-the-future"}, "task 'ocr-of-the-future'.*upgrade"), ({"history": {}}, "history"),
    ({"parameters": "many"}, "parameters"),
])
def test_card_validation_names_the_problem(bad, message):
    with pytest.raises(CheckpointError, match=message):
        ModelCard.from_dict(_card_dict(**bad), "m.pt")


def test_card_missing_fields_are_named():
    d = _card_dict()
    del d["frame"], d["arch"]
    with pytest.raises(CheckpointError, match="lacks arch, frame"):
        ModelCard.from_dict(d)


def test_format_1_checkpoints_load_as_classify(tmp_path):
    model = build_model("fastnet", num_classes=10)
    payload = {"format": "scrawl-checkpoint", "format_version": 1, "meta": _card_dict(),
               "state_dict": model.state_dict()}
    torch.save(payload, tmp_path / "v1.pt")
    ck = load_checkpoint(tmp_path / "v1.pt")
    assert ck.card.task == "classify" and ck.meta["task"] == "classify"
    payload["meta"]["task"] = "classify"  # format 1 never had a task: such a file was tampered with
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="format 1"):
        load_checkpoint(tmp_path / "odd.pt")


def test_bundled_checkpoints_are_format_2_and_format_1_still_loads(tmp_path):
    from scrawl.runtime.files import BUNDLED, bundled_path

    for name in BUNDLED:  # retrained (issue 15) or made after cards had tasks (line): format 2
        raw = torch.load(bundled_path(name), weights_only=True)
        ck = load_checkpoint(bundled_path(name))
        assert raw["format_version"] == 2 and ck.card.task == raw["meta"]["task"]
        assert ck.card.task == ("ctc" if name == "line" else "classify") and ck.card.classes == raw["meta"]["classes"]
    # A format-1 file (written before tasks: no "task" in its card) loads as a character classifier.
    raw = torch.load(bundled_path("digits-lite"), weights_only=True)
    raw["format_version"] = 1
    del raw["meta"]["task"]
    torch.save(raw, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")
    assert old.card.task == "classify" and old.card.classes == raw["meta"]["classes"]
    assert old.build_model()(torch.zeros(1, 1, 28, 28)).shape == (1, len(raw["meta"]["classes"]))


def test_tasks_are_named_and_unknown_ones_refused():
    assert set(TASKS) == {"classify", "ctc"} and get_task("classify").name == "classify"
    with pytest.raises(ValueError, match="unknown task"):
        get_task("ctc-someday")


def test_classify_loss_and_scores_are_the_training_formulas():
    task = get_task("classify")
    torch.manual_seed(0)
    logits, y = torch.randn(16, 10), torch.randint(0, 10, (16,))
    loss = task.loss(logits, task.collate(y), label_smoothing=0.05)
    assert torch.equal(loss, F.cross_entropy(logits, y, label_smoothing=0.05))
    s = task.score(logits, y, float(loss))
    assert s.seen == 16 and s.correct == int((logits.argmax(1) == y).sum())
    v = task.validate(logits, y)
    probs = torch.softmax(logits, 1)
    assert v.loss_sum == pytest.approx(float(F.nll_loss(probs.log(), y, reduction="sum")), rel=1e-6)


def test_classify_probabilities_mask_and_decode():
    task = get_task("classify")
    logits = np.array([[0.0, 3.0, 1.0], [2.0, 2.0, -1.0]], np.float32)
    p = task.probabilities(logits)
    assert np.allclose(p.sum(1), 1) and p.dtype == np.float32
    masked = task.probabilities(logits, allowed=[0, 2])
    assert masked[0, 1] == 0 and np.allclose(masked.sum(1), 1)
    answers = task.decode(p, ["a", "b", "c"], top_k=2)
    assert [a.label for a in answers] == ["b", "a"]  # a tie goes to the lower index, like argmax
    assert len(answers[0].top_k) == 2 and answers[0].confidence == pytest.approx(float(p[0, 1]))
    assert len(task.decode(masked, ["a", "b", "c"], top_k=5, allowed=[0, 2])[0].top_k) == 2
    assert task.output_spec(3) == {"name": "logits", "shape": ["N", 3]}
    m = task.metrics(np.array([1, 0]), p, ["a", "b", "c"])
    assert m["accuracy"] == 1.0 and m["n"] == 2
