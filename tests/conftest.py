"""Shared fixtures.

Real-data tests use `real_data_dir`: $SCRAWL_DATA if set, else ../shared/data next to the repo.
In CI (CI=true) a missing data folder fails the test instead of skipping it, so the real-data checks
can never silently vanish there.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_real_data() -> Path | None:
    env = os.environ.get("SCRAWL_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for path in candidates:
        if (path / "mnist").is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    path = _find_real_data()
    if path is None:
        message = "real data not found: set SCRAWL_DATA or put it in ../shared/data"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextmanager
def live_server(*options: str):
    """A real `scrawl serve` on a free port with `options`, ready (its /api/health answers); yields the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "scrawl", "serve", "--port", str(port), *options],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"scrawl serve did not start: {proc.stdout.read()}")
            time.sleep(0.1)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def without_reject_class(model: str, path):
    """A bundled character model saved to `path` with its "not a character" output removed: how a model
    trained without negatives answers (test_reject, test_calibration). Its last Linear holds the rows."""
    from dataclasses import replace

    import torch

    from scrawl.labels import NOT_A_CHARACTER
    from scrawl.runtime.checkpoint import load_checkpoint, save_checkpoint
    from scrawl.runtime.recognizer import bundled_path

    ck = load_checkpoint(bundled_path(model))
    keep = [i for i, c in enumerate(ck.card.classes) if c != NOT_A_CHARACTER]
    last = [n for n, m in ck.build_model().named_modules() if isinstance(m, torch.nn.Linear)][-1]
    state = dict(ck.state_dict)
    for key in (f"{last}.weight", f"{last}.bias"):
        state[key] = state[key][keep]
    card = replace(ck.card, classes=[ck.card.classes[i] for i in keep],
                   model_config={**ck.card.model_config, "num_classes": len(keep)}, description=None)
    return save_checkpoint(path, card, state)
