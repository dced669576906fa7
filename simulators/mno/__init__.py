"""The host network (MNO) fake: service ordering, the HLR/HSS service inventory, usage and
its feed to real-time charging, and wholesale settlement with the MVNOs it hosts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import (
    admin,  # noqa: F401  (registers the admin traffic and generator operations)
    partners,
    rating,
    settlement,
    summaries,
    usage,
    wholesale_api,  # noqa: F401  (registers the wholesale and settlement operations)
)
from .api import api
from .model import PROGRESS_SERVICE_ORDER, run_progress_step, seed_reference_data

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime

__all__ = ["api", "install"]


def install(runtime: Runtime) -> None:
    """Register the MNO's lifecycle steps and reference data with the running stack."""
    runtime.tasks.register(PROGRESS_SERVICE_ORDER, run_progress_step)
    runtime.tasks.register(rating.PUBLISH_SUMMARY, summaries.run_publish)
    runtime.tasks.register(settlement.INVOICE_DUE, settlement.run_invoice_due)
    runtime.tasks.register(usage.GENERATE, usage.run_generator)
    runtime.seeders["mno"] = seed


def seed(runtime: Runtime, conn: Any, seed_value: int) -> None:
    """The MVNE platform as the network's client; the wholesale partners with their IMSI
    blocks, agreements and credentials; the settlement staff."""
    seed_reference_data(runtime, conn, seed_value)
    partners.seed(runtime.settings.secret_key, conn, seed_value, runtime.clock.now(conn))
