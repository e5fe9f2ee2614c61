"""Reading many files (scrawl.runtime.batch, `scrawl predict FOLDER`): worker processes and batched model
calls give the answers `Recognizer.predict` gives one file at a time, in input order, with each
unreadable file's own error in its place; a few files never start a process pool."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from scrawl.errors import EmptyImageError, ImageError, ScrawlError
from scrawl.runtime.recognizer import Recognizer

REPO = Path(__file__).resolve().parents[1]
FONTS = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_PLAIN]
BROKEN = 97  # the broken file's position, in the middle of a batch and of a worker's chunk
BLANK = 150  # a white image: "no ink found"


def _digit(i: int, rng: np.random.Generator) -> np.ndarray:
    """Digit i % 10 typeset in one of OpenCV's fonts, at a random size, stroke, place and polarity."""
    size = int(rng.integers(48, 160))
    img = np.full((size, size), 255, np.uint8)
    scale = size / 40 * rng.uniform(0.6, 1.0)
    thickness = int(rng.integers(1, 4)) * max(1, size // 60)
    (w, h), _ = cv2.getTextSize(str(i % 10), FONTS[i % len(FONTS)], scale, thickness)
    x = int(rng.integers(0, max(1, size - w)))
    y = int(rng.integers(h, max(h + 1, size)))
    cv2.putText(img, str(i % 10), (x, y), FONTS[i % len(FONTS)], scale, 0, thickness, cv2.LINE_AA)
    return 255 - img if i % 7 == 0 else img


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """200 images (PNG, some JPEG) named in order, one broken file and one blank image among them,
    and last a dash that the digit model is unsure about (two classes near 30% each)."""
    out = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(14)
    for i in range(200):
        name = out / f"{i:03d}-{i % 10}.{'jpg' if i % 11 == 0 else 'png'}"
        if i == BROKEN:
            name.write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
        elif i == BLANK:
            cv2.imwrite(str(name), np.full((64, 64), 255, np.uint8))
        else:
            cv2.imwrite(str(name), _digit(i, rng))
    dash = np.full((100, 100), 255, np.uint8)
    cv2.line(dash, (20, 50), (80, 50), 0, 6)
    cv2.imwrite(str(out / "zz-dash.png"), dash)
    return out


@pytest.fixture
def one_thread():
    """torch at one thread while a test reads files one at a time: two OpenMP threads on a busy
    machine crawl (the very problem the batch path avoids)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _listed(folder: Path) -> list[str]:
    """The folder's files, sorted: what `scrawl predict FOLDER` reads, in its order."""
    return sorted(str(p) for p in folder.iterdir())


def _one_by_one(rec: Recognizer, paths: list[str], top_k: int = 3) -> list:
    out = []
    for path in paths:
        try:
            out.append(rec.predict(path, top_k=top_k))
        except ScrawlError as exc:
            out.append(exc)
    return out


def _assert_same(got: list, expected: list, tol: float = 0.0) -> None:
    """The same errors, framed images and answers; with tol, probabilities to within tol (torch: a
    batch may round the last digit differently), compared over all classes (top_k = every class) so
    that a near-tie may swap places."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        if isinstance(e, ScrawlError):
            assert type(g) is type(e) and str(g) == str(e)
            continue
        np.testing.assert_array_equal(g.framed, e.framed)
        if not tol:
            assert (g.label, g.confidence, g.top_k) == (e.label, e.confidence, e.top_k)
            continue
        assert _close(dict(g.top_k), dict(e.top_k), tol)
        assert g.label == e.label or e.top_k[0][1] - e.top_k[1][1] <= 2 * tol


def _close(got: dict, want: dict, tol: float) -> bool:
    return got.keys() == want.keys() and all(abs(got[c] - want[c]) <= tol for c in want)


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_workers_give_the_one_by_one_answers_in_order(folder, runtime, one_thread):
    from scrawl.runtime.batch import expand_paths, predict_files

    paths = expand_paths([str(folder)])
    assert paths == _listed(folder) and len(paths) == 201
    rec = Recognizer("digits", runtime=runtime)
    top_k = 3 if runtime == "onnx" else 10
    expected = _one_by_one(rec, paths, top_k)
    assert isinstance(expected[BROKEN], ImageError) and isinstance(expected[BLANK], EmptyImageError)
    results = list(predict_files(rec, paths, workers=2, batch_size=64, top_k=top_k))
    assert [p for p, _ in results] == paths
    _assert_same([r for _, r in results], expected, tol=0 if runtime == "onnx" else 2e-6)
    # the digits are clear: the model reads nearly all of them
    right = sum(r.label == Path(p).stem[-1] for p, r in results if not isinstance(r, ScrawlError))
    assert right >= 0.9 * 198


def test_frame_files_keeps_order_and_errors_with_small_chunks(folder):
    from scrawl.runtime.batch import frame_files

    paths = _listed(folder)
    spec = Recognizer("digits", runtime="onnx").spec
    pooled = list(frame_files(paths, spec, workers=3, chunk=7))
    alone = list(frame_files(paths, spec, workers=1))
    assert len(pooled) == len(alone) == 201
    for a, b in zip(pooled, alone):
        if isinstance(b, ScrawlError):
            assert type(a) is type(b) and str(a) == str(b)
        else:
            np.testing.assert_array_equal(a, b)


def test_a_charset_the_model_cannot_answer_is_each_files_error(folder):
    from scrawl.runtime.batch import predict_files

    paths = _listed(folder)[: BROKEN + 10]  # enough for workers, the broken file among them
    rec = Recognizer("digits", runtime="onnx")
    results = [r for _, r in predict_files(rec, paths, charset="upper", workers=2)]
    assert isinstance(results[BROKEN], ImageError)  # framing fails first, as one at a time
    others = [r for i, r in enumerate(results) if i != BROKEN]
    assert all(isinstance(r, ScrawlError) and "charset 'upper'" in str(r) for r in others)


def test_few_files_start_no_pool(folder, monkeypatch):
    import concurrent.futures

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started for a few files")

    from scrawl.runtime.batch import POOL_MIN_FILES, predict_files

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)
    paths = _listed(folder)[: POOL_MIN_FILES - 1]
    rec = Recognizer("digits", runtime="onnx")
    results = list(predict_files(rec, paths))
    _assert_same([r for _, r in results], _one_by_one(rec, paths))


def test_progress_bar_on_stderr_only_when_asked(folder, capsys):
    from scrawl.runtime.batch import predict_files

    paths = _listed(folder)[:10]
    rec = Recognizer("digits-lite", runtime="onnx")
    list(predict_files(rec, paths))
    assert capsys.readouterr() == ("", "")
    list(predict_files(rec, paths, progress=True))
    captured = capsys.readouterr()
    assert captured.out == "" and "10/10" in captured.err and "img/s" in captured.err


def test_workers_are_one_per_cpu():
    import os

    from scrawl.runtime.batch import default_workers

    assert 1 <= default_workers() <= (os.cpu_count() or 1)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "scrawl", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_cli_predict_folder_json_is_in_order_with_the_broken_files_error(folder, runtime, one_thread):
    top_k = 3 if runtime == "onnx" else 10
    r = run_cli("predict", "--json", "--runtime", runtime, "--top-k", top_k, folder)
    assert r.returncode == 1  # a file could not be read
    assert "Traceback" not in r.stderr and r.stderr == ""  # no progress bar when stderr is not a terminal
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    paths = _listed(folder)
    assert [d["path"] for d in lines] == paths
    expected = _one_by_one(Recognizer("digits", runtime=runtime), paths, top_k)
    for d, e in zip(lines, expected):
        if isinstance(e, ScrawlError):
            assert d == {"path": d["path"], "error": str(e)}
            continue
        want = {"path": d["path"], **e.to_dict(), "uncertain": e.confidence < 0.6}
        if runtime == "onnx":
            assert d == want  # what one file at a time gives, to the last digit
        else:  # torch: a batch may round the last digit of a probability differently
            alternatives = {t["label"]: t["probability"] for t in d["top_k"]}
            assert _close(alternatives, {t["label"]: t["probability"] for t in want["top_k"]}, 2e-6)
            assert d["label"] == want["label"] and d["uncertain"] == want["uncertain"]
    assert "error" in lines[BROKEN] and "no ink" in lines[BLANK]["error"]


def test_cli_predict_folder_table_keeps_order_and_marks_uncertain_answers(folder):
    r = run_cli("predict", "--runtime", "onnx", folder)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    footers = [line for line in lines if line.startswith(("- = ", "? = "))]
    rows = [line.split() for line in lines[1:] if line not in footers]
    assert [row[0] for row in rows] == _listed(folder)
    assert rows[BROKEN][1] == "error:" and rows[BLANK][1] == "error:"
    # the dash: "not a character" (the bundled digit model has the reject class), flagged uncertain
    assert rows[-1][0].endswith("zz-dash.png") and rows[-1][1] == "-" and rows[-1][3] == "?"
    unsure = sum(len(row) > 3 and row[3] == "?" for row in rows)
    rejected = sum(len(row) > 1 and row[1] == "-" for row in rows)
    assert footers[0].startswith(f"- = not a character ({rejected} of 201)")
    assert footers[-1].startswith(f"? = uncertain ({unsure} of 201)") and lines[-1] == footers[-1]
    assert r.stderr.strip() == "2 of 201 inputs could not be read"


@pytest.mark.realdata
@pytest.mark.slow
def test_an_onnx_session_that_does_not_spin_answers_the_same(folder):
    """scrawl predict reads a folder with ONNX Runtime threads that sleep between batches (spin=False):
    the option reaches the session, and the answers are the spinning session's, to the last bit."""
    from scrawl.runtime.batch import expand_paths, predict_files

    paths = expand_paths([str(folder)])
    calm, spinning = Recognizer("digits", runtime="onnx", spin=False), Recognizer("digits", runtime="onnx")
    options = calm.backend.model.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    got = [r for _, r in predict_files(calm, paths, workers=2, batch_size=64)]
    want = [r for _, r in predict_files(spinning, paths, workers=2, batch_size=64)]
    _assert_same(got, want, tol=0)


def test_workers_with_the_onnx_model_read_to_the_end_with_the_same_answers(folder):
    """A FramePool made with the recognizer's .onnx file reads the files in its workers (pool.read):
    the answers, errors and order are the ones of framing there and reading here, to the last bit; a
    charset the model cannot answer is still each framed file's error."""
    from scrawl.runtime.batch import FramePool, expand_paths, predict_files

    paths = expand_paths([str(folder)])
    rec = Recognizer("digits", runtime="onnx")
    with FramePool(2) as framing_only:
        want = [r for _, r in predict_files(rec, paths, batch_size=64, pool=framing_only)]
    with FramePool(2, model=rec.path) as reading:
        assert reading.model == rec.path
        got = list(predict_files(rec, paths, batch_size=64, pool=reading))
        assert [p for p, _ in got] == paths
        _assert_same([r for _, r in got], want, tol=0)
        assert got[0][1].framed.shape == (28, 28)  # what the model saw comes back too
        refused = [r for _, r in predict_files(rec, paths, charset="upper", pool=reading)]
    assert isinstance(refused[BROKEN], ImageError)
    assert all(isinstance(r, ScrawlError) and "upper" in str(r) for i, r in enumerate(refused) if i not in (BROKEN, BLANK))
    with FramePool(2) as no_model, pytest.raises(ValueError, match="no model"):
        next(no_model.read(paths))


def test_cli_predict_folder_with_a_broken_onnx_file_says_so_once(folder, tmp_path):
    """The workers load the model too: a broken file is one clear error, no worker traceback."""
    import shutil

    from scrawl.runtime.files import bundled_path

    onnx = bundled_path("digits", "onnx")
    shutil.copy(onnx.with_suffix(".json"), tmp_path / "digits.json")
    (tmp_path / "digits.onnx").write_bytes(onnx.read_bytes()[:5000])
    r = run_cli("predict", "--json", "--runtime", "onnx", "--model", tmp_path / "digits.onnx", folder)
    assert r.returncode == 2 and r.stdout == ""
    assert "Traceback" not in r.stderr and r.stderr.count("error:") == 1 and "sha256" in r.stderr


def test_predict_runtime_auto_takes_onnx_for_a_folder_of_a_bundled_model():
    from scrawl.cli import _predict_runtime
    from scrawl.runtime.files import bundled_int8_path

    int8 = str(bundled_int8_path("digits"))
    assert int8.endswith("digits-int8.onnx")
    # A folder of the default model: its bundled int8 export; of chars (no int8 bundled): its float .onnx.
    assert _predict_runtime("auto", None, 64) == _predict_runtime("auto", "digits", 10_000) == ("onnx", int8)
    assert _predict_runtime("auto", "chars", 1000) == ("onnx", "chars")
    assert _predict_runtime("auto", None, 63) == ("torch", None) and _predict_runtime("auto", "digits", 1) == ("torch", "digits")
    assert _predict_runtime("auto", "mine.onnx", 1) == ("onnx", "mine.onnx")
    assert _predict_runtime("auto", "mine.pt", 500) == ("torch", "mine.pt")
    # An explicit runtime keeps the model asked for: --runtime onnx is the float export.
    assert _predict_runtime("torch", None, 10_000) == ("torch", None) and _predict_runtime("onnx", None, 500) == ("onnx", None)


def test_cli_predict_folder_by_default_reads_with_the_bundled_int8_model(folder):
    from scrawl.runtime.files import bundled_int8_path

    default = run_cli("predict", "--json", folder)
    int8 = run_cli("predict", "--json", "--runtime", "onnx", "--model", bundled_int8_path("digits"), folder)
    assert default.returncode == int8.returncode == 1 and default.stdout == int8.stdout
    assert len(default.stdout.splitlines()) == 201
    # The same labels as the float model's, confidences close (int8 rounding).
    floats = run_cli("predict", "--json", "--runtime", "onnx", folder)
    pairs = [(json.loads(a), json.loads(b)) for a, b in zip(default.stdout.splitlines(), floats.stdout.splitlines())]
    read = [(a, b) for a, b in pairs if "error" not in b]
    assert len(read) == 199 and all(a.get("label") == b["label"] for a, b in read)
    assert max(abs(a["confidence"] - b["confidence"]) for a, b in read) < 0.05


def test_cli_predict_into_a_pipe_closed_early_stops_quietly(folder):
    """`scrawl predict --json FOLDER | head -1`: the reader goes away; no traceback, the shell's 141."""
    proc = subprocess.Popen([sys.executable, "-m", "scrawl", "predict", "--json", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    assert json.loads(first)["path"].startswith(str(folder))
    assert proc.returncode == 141 and b"Traceback" not in err and b"Error" not in err


def test_benchmark_script_runs_and_writes_its_results(real_data_dir, tmp_path):
    out = tmp_path / "results"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "predict_folder.py"), "--images", "300",
                        "--runtimes", "torch,auto", "--data-dir", str(real_data_dir), "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "predict_folder.json").read_text())
    runs = report["runs"]
    assert {(run["runtime"], run["load"]) for run in runs} == {(rt, load) for rt in ("torch", "auto")
                                                               for load in ("idle", "busy")}
    assert all(run["images"] == 300 and run["images_per_s"] > 0 and run["answers"] == 300 for run in runs)
    assert all(run["accuracy"] >= 0.97 for run in runs)  # the int8 model reads these digits too
    # The default's labels are counted against torch's (int8 may move a few uncertain ones).
    assert all(run["labels_other_than_torch"] <= 3 for run in runs)
    assert all(len(run["other_labels"]) == run["labels_other_than_torch"] for run in runs)
    assert all(0 <= run["max_confidence_diff_to_torch"] < 0.1 for run in runs)
    assert [b["bar"].split(",")[0] for b in report["bars"]] == ["auto", "auto"]  # the bars are the default's
    md = (out / "predict_folder.md").read_text()
    assert "images/s" in md and "| torch |" in md and "| auto |" in md


def test_a_line_model_does_not_predict_it_reads(folder, tmp_path):
    """`scrawl predict --model line` (one file or a folder) and Recognizer('line').predict: a clear error
    that points to `scrawl read`, no traceback (a line's framing has no fixed width to batch)."""
    from scrawl.runtime.batch import expand_paths, predict_files

    line = Recognizer("line", runtime="onnx")
    with pytest.raises(ScrawlError, match="scrawl read"):
        line.predict(np.zeros((28, 28), np.float32) + np.eye(28, dtype=np.float32))
    with pytest.raises(ScrawlError, match="scrawl read"):
        next(predict_files(line, expand_paths([str(folder)])))
    for target in (folder, next(folder.glob("*.png"))):
        r = run_cli("predict", "--model", "line", target)
        assert r.returncode == 2 and "Traceback" not in r.stderr and "scrawl read --model line" in r.stderr


def test_cli_predict_says_what_is_wrong_with_an_empty_folder_or_an_image_as_the_model(folder, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    for command in ("predict", "read"):
        r = run_cli(command, tmp_path / "empty")
        assert r.returncode == 2 and "no images to read" in r.stderr and ".png" in r.stderr
    image = next(folder.glob("*.png"))
    r = run_cli("predict", "--model", image, image)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "not a model checkpoint (an image)" in r.stderr and "weights_only" not in r.stderr
