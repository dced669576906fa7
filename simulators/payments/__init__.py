"""The payment gateway fake: tokenised cards (TMF670), payments and refunds (TMF676), events."""

from __future__ import annotations

from simulators.core.runtime import Runtime

from .api import api
from .model import seed_reference_data


def install(runtime: Runtime) -> None:
    runtime.seeders["payments"] = seed_reference_data


__all__ = ["api", "install"]
