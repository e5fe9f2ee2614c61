"""The "not a character" answer (issue 15, item 2): a model with the reject class says when an image is
no character at all, in the answers of the Python API, `scrawl predict` (table, JSON, folders), the web
API (/api/predict, and /api/read's segmenter, which leaves such pieces out of the text) and the page.

The model is a real checkpoint file with the class, made here so that its answers are known: the
bundled digit model's ten digit outputs with an 11th, "not a character", whose logit is a constant REJECT_LOGIT.
Clear digits still read (the digit model's best logit is about 4 on them, so the reject class takes
about 20%), while a dash or a zigzag (best logit below about 2) is rejected. Models without the class
answer exactly as before (test_inference, test_cli, test_web_api check those answers).
"""

import json
import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from scrawl.labels import NOT_A_CHARACTER, charset_indices
from scrawl.settings import UNCERTAIN_BELOW
from scrawl.tasks.classify import ClassifyTask, softmax
from test_browser import _strokes, browser, draw_with_mouse, shot, wait_text  # noqa: F401 (browser: a fixture)

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "scrawl" / "assets" / "samples"
SEVEN = SAMPLES / "7-paper.webp"
REJECT_LOGIT = 3.0
CLASSES = [*"0123456789", NOT_A_CHARACTER]


def plain_model(path: Path) -> Path:
    """The bundled digit model without its reject class: the ten digit outputs only, as a model trained
    without negatives answers."""
    from conftest import without_reject_class

    return without_reject_class("digits", path)


def reject_model(path: Path) -> Path:
    """The digit model without its reject class plus a made one (a zero weight row, bias REJECT_LOGIT),
    saved with the checkpoint writer like any trained model."""
    import torch

    from scrawl.runtime.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(plain_model(path.with_name("plain-" + path.name)))
    state = dict(ck.state_dict)
    weight, bias = state["head.1.weight"], state["head.1.bias"]
    state["head.1.weight"] = torch.cat([weight, torch.zeros(1, weight.shape[1])])
    state["head.1.bias"] = torch.cat([bias, torch.tensor([REJECT_LOGIT])])
    card = replace(ck.card, classes=[*ck.card.classes, NOT_A_CHARACTER],
                   model_config={**ck.card.model_config, "num_classes": len(ck.card.classes) + 1}, description=None)
    return save_checkpoint(path, card, state)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return reject_model(tmp_path_factory.mktemp("reject") / "digits-reject.pt")


@pytest.fixture(scope="module")
def plain_path(tmp_path_factory) -> Path:
    return plain_model(tmp_path_factory.mktemp("plain") / "digits-plain.pt")


@pytest.fixture(scope="module")
def rec(model_path):
    from scrawl.runtime.recognizer import Recognizer

    return Recognizer(model_path)


def _dash() -> np.ndarray:
    """A horizontal stroke: no digit (the digit model alone splits its vote between 2 and 5)."""
    img = np.full((100, 100), 255, np.uint8)
    cv2.line(img, (20, 50), (80, 50), 0, 6)
    return img


def _png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def _canvas(strokes, size=(640, 320), width=13) -> bytes:
    """Dark strokes on a transparent canvas, as the page sends them."""
    img = np.zeros((size[1], size[0], 4), np.uint8)
    for pts in strokes:
        cv2.polylines(img, [np.array(pts, np.int32)], False, (39, 24, 17, 255), width, cv2.LINE_AA)
    return _png(img)


CANVAS_SEVEN = [[(60, 80), (180, 80), (100, 250)]]
ZIGZAG = [[(300 + 20 * (i % 2) + 8 * i, 90 + 160 * (i % 2)) for i in range(12)]]  # a slip of the pen, 7's height


# ------------------------------------------------------------------------------------------ decode


def test_decode_without_the_reject_class_is_as_before():
    task = ClassifyTask()
    probs = np.array([[0.1, 0.7, 0.2], [0.4, 0.35, 0.25]], np.float32)
    a, b = task.decode(probs, ["a", "b", "c"], top_k=5)
    assert (a.label, a.confidence, [c for c, _ in a.top_k]) == ("b", pytest.approx(0.7), ["b", "c", "a"])
    assert (a.not_a_character, a.rejected, a.uncertain) == (0.0, False, False)
    assert b.label == "a" and b.uncertain is (0.4 < UNCERTAIN_BELOW) and b.rejected is False


def test_decode_names_characters_only_and_says_when_the_image_is_none():
    task = ClassifyTask()
    classes = ["a", "b", "c", NOT_A_CHARACTER]
    probs = np.array([[0.2, 0.1, 0.05, 0.65],  # more likely nothing than 'a': rejected
                      [0.7, 0.05, 0.05, 0.2],  # 'a', fairly sure
                      [0.4, 0.1, 0.1, 0.4]], np.float32)  # a tie is no rejection
    none, sure, tie = task.decode(probs, classes, top_k=10)
    for answer in (none, sure, tie):
        assert answer.label == "a" and NOT_A_CHARACTER not in dict(answer.top_k) and len(answer.top_k) == 3
    assert none.confidence == pytest.approx(0.2) and none.not_a_character == pytest.approx(0.65)
    assert none.rejected is True and none.uncertain is True
    assert sure.rejected is False and sure.not_a_character == pytest.approx(0.2) and sure.uncertain is False
    assert tie.rejected is False and tie.uncertain is True  # 0.4 is below the threshold all the same


def test_charset_masks_keep_the_reject_class_allowed():
    task = ClassifyTask()
    classes = [*"0123456789AB", NOT_A_CHARACTER]
    allowed = charset_indices(classes, "digits")
    assert classes.index(NOT_A_CHARACTER) in allowed and classes.index("A") not in allowed
    logits = np.zeros((1, len(classes)), np.float32)
    logits[0, classes.index("A")] = 9.0  # a letter, masked away
    logits[0, -1] = 4.0  # and more likely no character than any digit
    probs = task.probabilities(logits, allowed)
    assert probs[0, classes.index("A")] == 0.0 and probs[0, -1] > 0.8  # e^4 / (e^4 + 10 digits at e^0)
    (answer,) = task.decode(probs, classes, top_k=20, allowed=allowed)
    assert answer.rejected and set(dict(answer.top_k)) == set("0123456789")
    np.testing.assert_allclose(softmax(logits, allowed).sum(), 1.0, rtol=1e-6)


# ------------------------------------------------------------------------------------- recognizer


def test_recognizer_rejects_a_dash_and_reads_a_digit(rec, plain_path):
    from scrawl.runtime.recognizer import Recognizer

    seven = rec.predict(SEVEN, top_k=10)
    assert seven.label == "7" and not seven.rejected and not seven.uncertain
    assert 0.1 < seven.not_a_character < seven.confidence
    # confidence is under the softmax over all classes: the characters and the reject class make 1
    assert sum(p for _, p in seven.top_k) + seven.not_a_character == pytest.approx(1.0, abs=1e-5)
    for charset in (None, "digits"):  # a digits-only read of a dash must still be able to say "none"
        dash = rec.predict(_dash(), charset=charset)
        assert dash.rejected and dash.uncertain and dash.not_a_character > dash.confidence
        assert dash.label in "0123456789" and all(c != NOT_A_CHARACTER for c, _ in dash.top_k)
        d = dash.to_dict()
        assert d["rejected"] is True and d["not_a_character"] == round(dash.not_a_character, 6)
        assert d["label"] == dash.label
    plain = Recognizer(plain_path).predict(_dash())  # no reject class: as before
    assert plain.to_dict()["not_a_character"] == 0.0 and plain.to_dict()["rejected"] is False
    assert plain.uncertain == (plain.confidence < UNCERTAIN_BELOW)


def test_segmenter_leaves_a_rejected_piece_out_of_the_text(rec):
    from scrawl.vision.segment import join_lines, lines_text, read

    seg, preds = read(_canvas(CANVAS_SEVEN + ZIGZAG), rec)
    assert len(preds) == 2  # the zigzag is still a piece of the read, marked
    assert [p.rejected for p in preds] == [False, True] and preds[0].label == "7"
    assert lines_text(seg, preds) == ["7"]
    assert join_lines(seg, [p.label for p in preds])[0].startswith("7")  # its labels alone would read it


def test_folders_carry_the_fields_in_both_paths(rec, tmp_path, monkeypatch):
    from scrawl.runtime import batch

    cv2.imwrite(str(tmp_path / "a-dash.png"), _dash())
    (tmp_path / "b-seven.webp").write_bytes(SEVEN.read_bytes())
    paths = batch.expand_paths([str(tmp_path)])
    one_by_one = dict(batch.predict_files(rec, paths))
    monkeypatch.setattr(batch, "POOL_MIN_FILES", 2)  # the batched path, framed in this process
    batched = dict(batch.predict_files(rec, paths, workers=1))
    for answers in (one_by_one, batched):
        dash, seven = (answers[p] for p in paths)
        assert dash.rejected and dash.not_a_character > 0.5 and not seven.rejected and seven.label == "7"


# -------------------------------------------------------------------------------------------- CLI


def test_cli_predict_table_says_not_a_character(model_path, tmp_path, capsys):
    from scrawl.cli import main

    dash = tmp_path / "dash.png"
    cv2.imwrite(str(dash), _dash())
    assert main(["predict", "--model", str(model_path), str(dash), str(SEVEN)]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith(str(dash)))
    cells = row.split()
    assert cells[1] == "-" and cells[3] == "?" and "not a character" in row  # no digit in the label column
    seven = next(line for line in lines if line.startswith(str(SEVEN))).split()
    assert seven[1] == "7" and seven[3] == "7"  # read, and not flagged
    assert any(line.startswith("- = not a character (1 of 2)") for line in lines)
    assert lines[-1].startswith("? = uncertain (1 of 2)") and "not a character" in lines[-1]


def test_cli_predict_json_has_the_fields(model_path, tmp_path, capsys):
    from scrawl.cli import main

    dash = tmp_path / "dash.png"
    cv2.imwrite(str(dash), _dash())
    assert main(["predict", "--json", "--model", str(model_path), str(dash), str(SEVEN)]) == 0
    none, seven = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert none["rejected"] is True and none["uncertain"] is True and none["not_a_character"] > none["confidence"]
    assert none["label"] in "0123456789" and NOT_A_CHARACTER not in {a["label"] for a in none["top_k"]}
    assert seven["rejected"] is False and seven["uncertain"] is False and seven["label"] == "7"
    assert 0 < seven["not_a_character"] < seven["confidence"]


# -------------------------------------------------------------------------------------------- API


@pytest.fixture(scope="module")
def client(model_path, plain_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from scrawl.web import create_app

    with TestClient(create_app([str(model_path), str(plain_path)])) as c:
        yield c


def _post(client, endpoint, data, **query):
    r = client.post(f"/api/{endpoint}", params=query, content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    return r.json()


def test_api_predict_says_not_a_character(client):
    d = _post(client, "predict", _png(_dash()))
    assert d["model"] == "digits-reject" and d["rejected"] is True and d["uncertain"] is True
    assert d["not_a_character"] > d["confidence"] and d["label"] in "0123456789"
    assert _post(client, "predict", _png(_dash()), charset="digits")["rejected"] is True
    seven = _post(client, "predict", SEVEN.read_bytes())
    assert seven["label"] == "7" and seven["rejected"] is False and 0 < seven["not_a_character"] < 0.5
    plain = _post(client, "predict", _png(_dash()), model="digits-plain")  # no reject class
    assert plain["not_a_character"] == 0.0 and plain["rejected"] is False
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert "not a character" in models["digits-reject"]["description"]
    assert "not a character" not in models["digits-plain"]["description"]


def test_api_read_marks_a_rejected_piece_and_reads_the_rest(client):
    d = _post(client, "read", _canvas(CANVAS_SEVEN + ZIGZAG))
    assert d["method"] == "segmenter" and d["text"] == "7"
    (line,) = d["lines"]
    seven, zig = line["chars"]
    assert (seven["char"], seven["rejected"]) == ("7", False)
    assert zig["char"] == "" and zig["rejected"] is True and zig["uncertain"] is True
    assert zig["not_a_character"] > zig["confidence"] and zig["top_k"] and zig["framed"]
    assert line["text"] == "7" and line["confidence"] == seven["confidence"]  # the zigzag counts for nothing
    assert all(a["text"].isdigit() and len(a["text"]) == 1 for a in line["alternatives"])
    assert line["box"][2] >= zig["box"][2]  # the line's box still covers all of its ink
    only = _post(client, "read", _canvas(ZIGZAG))  # nothing but a slip: nothing read, the piece still marked
    assert only["text"] == "" and only["lines"][0]["chars"][0]["rejected"] is True
    assert only["lines"][0]["uncertain"] is True and only["lines"][0]["alternatives"] == []


def test_openapi_documents_the_fields(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("PredictResult", "ReadCharacter"):
        assert {"not_a_character", "rejected"} <= set(schemas[name]["properties"]), name


# ------------------------------------------------------------------------------------------- page


@pytest.fixture(scope="module")
def server(model_path):
    from conftest import live_server

    with live_server("--model", str(model_path)) as port:
        yield f"http://127.0.0.1:{port}"


VIEWPORTS = {"desktop": {"viewport": {"width": 1100, "height": 800}},
             "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}}


@pytest.fixture(params=["desktop"])
def page(request, browser, server):
    context = browser.new_context(**VIEWPORTS[request.param])
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(server + "/")
    page.locator("#model-info").filter(has_text="model:").wait_for()  # the models are loaded
    yield page
    context.close()
    assert not problems, problems


def _zigzag(x, y, w, h, n=12):
    return [[(x + w * i / (n - 1), y + h * (i % 2)) for i in range(n)]]


def test_page_says_not_a_character_for_one_character(page):
    draw_with_mouse(page, _zigzag(90, 60, 100, 160))
    wait_text(page, "#label", "Not a character")
    wait_text(page, "#status", re.compile(r"^not a character \(\d+(\.\d)?%\)"))
    assert page.locator("#label.rejected").is_visible() and not page.locator("#uncertain").is_visible()
    assert page.locator("#top3 li").count() == 3  # the digits it looks most like, as alternatives
    shot(page, "single-not-a-character.png")
    page.click("#clear")
    draw_with_mouse(page, _strokes("7", (70, 50, 140 / 0.6, 180)))
    wait_text(page, "#label", "7")  # a character again: a big, plain answer
    assert page.locator("#label.rejected").count() == 0


@pytest.mark.parametrize("page", ["desktop", "phone"], indirect=True)
def test_page_marks_a_rejected_piece_and_reads_the_rest(page):
    page.click("#mode-multi")
    draw_with_mouse(page, _strokes("7", (40, 70, 200, 170)) + _zigzag(330, 70, 90, 170))
    wait_text(page, "#text", "7")
    wait_text(page, "#status", re.compile(r"^1 character\(s\) found.*1 mark not a character"))
    assert page.locator("#pad-boxes rect").count() == 2 and page.locator("#pad-boxes rect.rejected").count() == 1
    assert page.locator("#pad-boxes text.rejected").text_content() == "\u00d7"
    cards = page.locator("#chars li")
    assert cards.count() == 2
    assert page.locator("#chars li.rejected .c-label").text_content() == "Not a character"
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # the marked card fits the screen
    card = page.locator("#chars li.rejected").bounding_box()
    parts = [page.locator(f"#chars li.rejected {part}").bounding_box() for part in ("img", ".c-none", ".c-alt")]
    for i, a in enumerate(parts):  # the card holds its parts, side by side or wrapped, never on top of each other
        assert card["x"] - 1 <= a["x"] and a["x"] + a["width"] <= card["x"] + card["width"] + 1, (a, card)
        assert all(_apart(a, b) for b in parts[i + 1:]), parts
    # and the words fit their part (a word that does not fit spills over the alternatives)
    assert page.eval_on_selector("#chars li.rejected .c-none", "e => e.scrollWidth <= e.clientWidth")
    shot(page, f"multi-not-a-character-{width}.png")


def _apart(a: dict, b: dict) -> bool:
    """Two bounding boxes do not overlap (to within a pixel)."""
    return (a["x"] + a["width"] <= b["x"] + 1 or b["x"] + b["width"] <= a["x"] + 1
            or a["y"] + a["height"] <= b["y"] + 1 or b["y"] + b["height"] <= a["y"] + 1)
