"""The report reads files only: no stack, so the suite's per-test reset is not needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from report_support import FEATURES, write


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    yield


@pytest.fixture
def features(tmp_path: Path) -> Path:
    """A small features/ of three handoff folders."""
    root = tmp_path / "features"
    for relative, text in FEATURES.items():
        write(root / relative, text)
    return root
