"""The `scrawl` command end to end: predict, evaluate, train, data; errors without tracebacks."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scrawl.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "scrawl" / "assets" / "samples"


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "scrawl", *map(str, args)], capture_output=True, text=True, timeout=300, **kw)


def test_help_and_version():
    r = run_cli("--help")
    assert r.returncode == 0 and "predict" in r.stdout and "train" in r.stdout
    assert run_cli("--version").stdout.startswith("scrawl ")


def test_predict_bundled_samples_table():
    r = run_cli("predict", SAMPLES)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert len(rows) == 10
    for row in rows:
        truth = Path(row[0]).name[0]  # sample files are named after their digit
        assert row[1] == truth, row


def test_predict_json_with_a_bad_file_in_the_batch(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    shutil.copy(SAMPLES / "7-paper.webp", tmp_path / "seven.webp")
    r = run_cli("predict", "--json", "--top-k", "2", bad, tmp_path / "seven.webp", tmp_path / "missing.png")
    assert r.returncode == 1
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["path"] for d in lines] == [str(bad), str(tmp_path / "seven.webp"), str(tmp_path / "missing.png")]
    assert "error" in lines[0] and "error" in lines[2]
    assert lines[1]["label"] == "7" and 0 < lines[1]["confidence"] <= 1
    assert len(lines[1]["top_k"]) == 2 and lines[1]["top_k"][0]["label"] == "7"
    assert "Traceback" not in r.stderr


def test_predict_glob(tmp_path):
    for name in ("0-paper.png", "1-white-on-black.png", "3-photo.jpg"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    r = run_cli("predict", "--json", str(tmp_path / "*.png"))
    assert r.returncode == 0
    assert [json.loads(line)["label"] for line in r.stdout.splitlines()] == ["0", "1"]


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["predict", "--model", "nonesuch", str(SAMPLES / "0-paper.png")]) == 2
    err = capsys.readouterr().err
    assert "no model 'nonesuch'" in err and "digits" in err


def test_train_refuses_to_overwrite_a_run(tmp_path, capsys):
    (tmp_path / "last.pt").write_bytes(b"x")
    assert main(["train", "--out", str(tmp_path)]) == 2
    assert "already holds a training run" in capsys.readouterr().err


def test_data_list_names_the_folder(tmp_path):
    r = run_cli("data", "list", "--data-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    assert str(tmp_path) in r.stdout and "mnist" in r.stdout and "missing" in r.stdout


def test_evaluate_offline_without_data_says_what_is_missing(tmp_path):
    r = run_cli("evaluate", "--data-dir", tmp_path, "--out", tmp_path / "rep", env={"SCRAWL_MIRRORS": "http://127.0.0.1:9/", "PATH": ""})
    assert r.returncode == 2
    assert "t10k-images-idx3-ubyte" in r.stderr and str(tmp_path) in r.stderr and "Traceback" not in r.stderr


@pytest.mark.realdata
@pytest.mark.slow  # trains a model
def test_train_then_evaluate_end_to_end(real_data_dir, tmp_path):
    run = tmp_path / "run"
    r = run_cli("train", "--recipe", "fast", "--epochs", "1", "--limit", "6000", "--batch-size", "64",
                "--no-progress",
                "--data-dir", real_data_dir, "--out", run)
    assert r.returncode == 0, r.stderr
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    rep = tmp_path / "report"
    r = run_cli("evaluate", run / "best.pt", "--data-dir", real_data_dir, "--out", rep)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((rep / "metrics.json").read_text())
    assert metrics["n"] == 10000 and metrics["accuracy"] > 0.93
    assert f"{metrics['accuracy']:.4%}" in r.stdout
    for name in ("report.md", "curves.png", "confusion.png", "errors.png"):
        assert (rep / name).is_file(), name
    report = (rep / "report.md").read_text()
    assert "confusion.png" in report and "errors.png" in report


@pytest.mark.parametrize("epochs", ["0", "-2", "nan", "two"])
def test_train_epochs_must_be_a_positive_number(tmp_path, capsys, epochs):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--epochs", epochs, "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "--epochs" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_train_augment_until_outside_0_to_1_is_named(tmp_path, capsys):
    assert main(["train", "--augment-until", "1.5", "--out", str(tmp_path / "run")]) == 2
    assert "augment_until must be between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").iterdir())


def test_resume_refuses_new_settings(tmp_path, capsys):
    assert main(["train", "--resume", "--epochs", "3", "--out", str(tmp_path)]) == 2
    assert "settings it was started with" in capsys.readouterr().err


# --- uncertain answers (issue 14, item 7) and evaluate's progress bar (item 8) ---------------------


def _dash(path: Path) -> Path:
    """A horizontal stroke: the digit model splits its vote between "2" and "5" (about 33% / 31%)."""
    import cv2
    import numpy as np

    img = np.full((100, 100), 255, np.uint8)
    cv2.line(img, (20, 50), (80, 50), 0, 6)
    cv2.imwrite(str(path), img)
    return path


def test_predict_json_says_which_answers_are_uncertain(tmp_path):
    from scrawl.settings import UNCERTAIN_BELOW

    dash = _dash(tmp_path / "dash.png")
    r = run_cli("predict", "--json", dash, SAMPLES / "7-paper.webp")
    assert r.returncode == 0, r.stderr
    unsure, sure = (json.loads(line) for line in r.stdout.splitlines())
    assert unsure["confidence"] < UNCERTAIN_BELOW and unsure["uncertain"] is True
    assert sure["label"] == "7" and sure["confidence"] >= UNCERTAIN_BELOW and sure["uncertain"] is False


def test_predict_table_marks_uncertain_answers_and_explains_the_mark(tmp_path):
    dash = _dash(tmp_path / "dash.png")
    r = run_cli("predict", dash, SAMPLES / "7-paper.webp")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    unsure = next(line.split() for line in lines if line.startswith(str(dash)))
    sure = next(line.split() for line in lines if line.startswith(str(SAMPLES)))
    assert unsure[3] == "?" and sure[3] == "7"  # the mark follows the confidence; a sure row has none
    assert lines[-1].startswith("? = uncertain (1 of 2)") and "below 60%" in lines[-1]
    confident = run_cli("predict", SAMPLES / "7-paper.webp").stdout.splitlines()
    assert len(confident) == 2 and "uncertain" not in confident[-1]  # no footer when nothing is uncertain


@pytest.mark.realdata
def test_evaluate_shows_progress_and_counts_uncertain_answers(real_data_dir, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["evaluate", "digits-lite", "--runtime", "onnx", "--data-dir", str(real_data_dir),
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "evaluating mnist test" in captured.err and "10000/10000" in captured.err and "img/s" in captured.err
    assert "img/s" not in captured.out  # the bar never mixes into the results
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    n_unsure = metrics["uncertain_count"]
    assert metrics["uncertain_below"] == 0.6 and 0 < n_unsure < 1000
    assert metrics["confident_accuracy"] > metrics["accuracy"] > metrics["uncertain_accuracy"]
    # accuracy is the weighted mean of the two parts
    n = metrics["n"]
    whole = (metrics["confident_accuracy"] * (n - n_unsure) + metrics["uncertain_accuracy"] * n_unsure) / n
    assert abs(whole - metrics["accuracy"]) < 1e-9
    assert (f"uncertain (confidence below 60%): {n_unsure} of {n}; accuracy on the {n - n_unsure} confident "
            f"answers {metrics['confident_accuracy']:.4%}") in captured.out
