"""Fixtures for the MNO's CAMARA APIs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from mno_support import Network

from simulators.core.runtime import Runtime


@pytest.fixture
def carrier(client: FlaskClient, runtime: Runtime) -> Iterator[Network]:
    """The host network (named apart from the in-process `network` of HTTP mocks)."""
    yield Network(client, runtime)
