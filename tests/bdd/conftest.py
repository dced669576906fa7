"""The features run on the step library's own in-process stack, reset per scenario by the
plugin; the suite's own stack need not be reset for them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    yield
