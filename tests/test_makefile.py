"""`make setup` / `make demo` say what they are doing (issue 14, item 12): a line per step and pip's own
output, never a silent `pip install --quiet` of several minutes. Read from `make -n` (nothing runs)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(*targets: str) -> list[str]:
    """The commands `make` would run for targets, as if nothing were installed yet (-B: all of them)."""
    r = subprocess.run(["make", "-n", "-B", "-C", str(REPO), *targets], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_setup_shows_pips_progress_and_a_line_per_step():
    lines = dry_run("setup")
    pip = [line for line in lines if "pip install" in line]
    assert pip, lines
    for line in pip:
        assert "--quiet" not in line and " -q " not in line, line
        assert "--progress-bar on" in line, line
    steps = [line for line in lines if line.startswith("echo") and "==>" in line]
    assert len(steps) >= 2, lines  # the virtual environment, then the packages
    assert any("venv" in line for line in steps) and any("install" in line for line in steps)
    # each step is announced before its command runs
    assert lines.index(steps[0]) < next(i for i, line in enumerate(lines) if "-m venv" in line)


def test_demo_says_it_is_starting_the_web_app():
    lines = dry_run("demo")
    serve = next(i for i, line in enumerate(lines) if "scrawl serve" in line and not line.startswith("echo"))
    assert any(line.startswith("echo") and "==>" in line for line in lines[:serve])
    assert not any("--quiet" in line for line in lines if "pip" in line)
