"""Shared fixtures.

Real-data tests use `real_data_dir`: $SCRAWL_DATA if set, else ../shared/data next to the repo.
In CI (CI=true) a missing data folder fails the test instead of skipping it, so the real-data checks
can never silently vanish there.
"""

import os
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
