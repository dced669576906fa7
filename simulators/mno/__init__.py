"""The host network (MNO) fake: service ordering, the HLR/HSS service inventory and usage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import admin  # noqa: F401  (registers the admin traffic operation)
from .api import api
from .model import PROGRESS_SERVICE_ORDER, run_progress_step, seed_reference_data

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime

__all__ = ["api", "install"]


def install(runtime: Runtime) -> None:
    """Register the MNO's lifecycle steps and reference data with the running stack."""
    runtime.tasks.register(PROGRESS_SERVICE_ORDER, run_progress_step)
    runtime.seeders["mno"] = seed_reference_data
