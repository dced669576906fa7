"""The billing vendor fake: billing accounts, bill runs, bills, disputes, payments, dunning."""

from __future__ import annotations

from simulators.core.runtime import Runtime

from . import steps
from .api import api


def install(runtime: Runtime) -> None:
    """Register billing's steps on the clock (accounts, bill runs, dunning, MVNE orders)."""
    steps.register(runtime)


__all__ = ["api", "install"]
