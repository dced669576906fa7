"""The MVNE fake: partner gateway, SIM inventory, activation orders, rating, real-time balance."""

from __future__ import annotations

from simulators.core.runtime import Runtime

from . import admin as admin  # registers the partner lifecycle on the control plane
from . import partners, steps
from .api import api


def install(runtime: Runtime) -> None:
    steps.register(runtime)
    runtime.seeders["mvne"] = partners.seed


__all__ = ["api", "install"]
