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
