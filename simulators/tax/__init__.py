"""The tax engine fake: telecom tax quotes per jurisdiction level, stored and reconciled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .api import api
from .model import ROLE, seed_reference_data

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime

__all__ = ["api", "install"]


def install(runtime: Runtime) -> None:
    """Register the tax engine's reference data (its billing client) with the stack."""
    runtime.seeders[ROLE] = seed_reference_data
