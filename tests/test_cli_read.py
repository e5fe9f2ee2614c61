"""`scrawl read` (lines of handwriting) and `scrawl evaluate` of a line model, end to end; and
`scrawl predict` pointing to `scrawl read` when an image holds several characters."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from scrawl.cli import main
from scrawl.vision import load_image

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "scrawl" / "assets" / "samples"
NUMBER = "3785"  # composed from the bundled sample digits (files are named after their digit)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "scrawl", *map(str, args)], capture_output=True, text=True, timeout=300)


def _digit(d: str, height: int = 60) -> np.ndarray:
    path = next(SAMPLES.glob(f"{d}-*"))
    ink = load_image(path)
    ys, xs = np.nonzero(ink > 0.3)
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    w = max(1, round(crop.shape[1] * height / crop.shape[0]))
    return cv2.resize(crop, (w, height), interpolation=cv2.INTER_AREA)


def compose_number(text: str, overlap: float = 0.15) -> np.ndarray:
    """Dark-on-white uint8 image of the sample digits side by side, each overlapping the last by `overlap`
    of its width (touching ink)."""
    glyphs = [_digit(d) for d in text]
    width = sum(g.shape[1] for g in glyphs) + 40
    canvas = np.zeros((100, width), np.float32)
    x = 20
    for g in glyphs:
        x = max(20, x - int(overlap * g.shape[1]))
        region = canvas[20 : 20 + g.shape[0], x : x + g.shape[1]]
        np.maximum(region, g, out=region)
        x += g.shape[1]
    return (255 - np.clip(canvas, 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def number_png(tmp_path):
    path = tmp_path / "number.png"
    cv2.imwrite(str(path), compose_number(NUMBER))
    return path


def test_read_json_gives_text_boxes_and_alternatives(number_png):
    r = run_cli("read", "--json", "--top-k", "3", "--charset", "digits", number_png)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["path"] == str(number_png) and len(out["lines"]) == 1
    line = out["lines"][0]
    assert line["text"] == out["text"] and line["text"].isdigit()  # --charset digits: never a letter
    assert line["text"] == NUMBER
    assert len(line["chars"]) == len(line["text"])
    h, w = cv2.imread(str(number_png), cv2.IMREAD_GRAYSCALE).shape
    lefts = [c["box"][0] for c in line["chars"]]
    assert lefts == sorted(lefts)
    for c in line["chars"]:
        x0, y0, x1, y1 = c["box"]
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert 0 < c["confidence"] <= 1
    alts = line["alternatives"]
    assert 1 <= len(alts) <= 3 and alts[0]["text"] == line["text"]
    assert all(a["probability"] >= b["probability"] for a, b in zip(alts, alts[1:]))


def test_read_table_and_bad_inputs_without_traceback(tmp_path, number_png):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((80, 200), 255, np.uint8))
    r = run_cli("read", number_png, blank, tmp_path / "missing.png")
    assert r.returncode == 1
    assert f"{number_png}: {NUMBER}" in r.stdout
    assert f"{blank}: error: nothing to read" in r.stdout
    assert f"{tmp_path / 'missing.png'}: error:" in r.stdout
    assert "Traceback" not in r.stderr and "2 of 3 images could not be read" in r.stderr


def test_read_with_a_character_model_says_which_to_use(number_png, capsys):
    assert main(["read", "--model", "digits", str(number_png)]) == 2
    err = capsys.readouterr().err
    assert "scrawl read` needs a line model" in err and "Traceback" not in err


def test_read_lexicon_file_that_cannot_be_read(number_png, tmp_path, capsys):
    assert main(["read", "--lexicon", str(tmp_path / "nope.txt"), str(number_png)]) == 2
    assert "cannot read the word list" in capsys.readouterr().err


def test_predict_points_to_read_for_several_characters(number_png):
    r = run_cli("predict", "--json", number_png)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["several_characters"] >= 2 and "scrawl read" in out["hint"]
    one = run_cli("predict", "--json", SAMPLES / "7-paper.webp")
    assert "hint" not in json.loads(one.stdout)


@pytest.mark.realdata
@pytest.mark.slow
def test_evaluate_line_model_writes_a_report(tmp_path, real_data_dir):
    r = run_cli("evaluate", "line", "--dataset", "touching-digits", "--limit", "40", "--out", tmp_path / "rep",
                "--data-dir", real_data_dir)
    assert r.returncode == 0, r.stderr
    assert "touching-digits: CER" in r.stdout
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())["metrics"]
    assert metrics["n"] == 40 and 0 <= metrics["cer"] <= 1
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "CER by line length" in report and "Most confused characters" in report


@pytest.mark.realdata
def test_unipen_test_lines_are_drawn_with_the_writers_pen(real_data_dir):
    """The evaluation draws a held-out line with the pen of its writer's usual word height. A line whose box
    is much taller than the writer's usual word (a long sloping sentence) is shrunk to fit: a pen sized by
    the image stays thick and makes blobs of its letters; the writer's pen shrinks with the writing."""
    from scrawl.data.download import ensure_files
    from scrawl.data.lines import load_unipen_words
    from scrawl.data.strokes import StrokeStyle
    from scrawl.evaluation.lines import RENDER_HEIGHT, line_test_set

    test = line_test_set("unipen-words", real_data_dir, limit=200, seed=0)
    words = load_unipen_words(ensure_files("unipen-words", "train", real_data_dir)["arrays"])
    where = {(str(words.labels[i]), str(words.writers[i])): int(i) for i in words.writer_split(0.1, 0)[1]}
    rows = [where[t, w] for t, w in zip(test.texts, test.writers)]
    tall = max(range(len(rows)), key=lambda k: words.bbox_h[rows[k]] / words.writer_median_h[rows[k]])
    assert words.bbox_h[rows[tall]] > 2 * words.writer_median_h[rows[tall]]

    def ink_per_column(image: np.ndarray) -> float:  # about the stroke width where the line has ink
        ink = image > 127
        return ink.sum() / max(1, ink.any(axis=0).sum())

    style = StrokeStyle(pen=0.08, blur=0.0, slant=0.0, rotate=0.0, fill=0.8, stretch=1.0, offset=0.5)
    by_image = words.render(rows[tall], RENDER_HEIGHT, style)
    by_writer = words.render(rows[tall], RENDER_HEIGHT, style, writer_pen=True)
    assert ink_per_column(by_writer) < 0.7 * ink_per_column(by_image)
    # The test set's own image of that line (dark ink on paper, in a random style) is drawn the thin way.
    drawn = 255 - np.asarray(test.images[tall])
    assert ink_per_column(drawn) < 0.7 * ink_per_column(by_image)
