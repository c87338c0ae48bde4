"""Shared test helpers: the shared data folder (the repository root is on sys.path by pyproject.toml's pytest
`pythonpath`)."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not available (the shared data folder sits beside the repository)")
    return path
