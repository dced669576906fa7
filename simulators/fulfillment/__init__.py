"""The SIM fulfillment fake: SIM production with a fake SIM vendor, batch loads into the
MVNE, shipments tracked through a carrier on the simulated clock, returns, and the ICCID
mapping handoff to the MVNE."""

from __future__ import annotations

from typing import Any

from simulators.core import tenancy
from simulators.core.runtime import Runtime

from . import model, steps
from .api import PARTNERS_OF, api


def seed(runtime: Runtime, conn: Any, seed_value: int) -> None:
    """Each MVNO partner's own ICCID/IMSI range, in partner order, so blocks are stable."""
    for partner in tenancy.list_partners(conn, PARTNERS_OF):
        model.ensure_range(conn, partner.id)


def install(runtime: Runtime) -> None:
    """Register fulfillment's steps on the clock and its reference data."""
    steps.register(runtime)
    runtime.seeders[model.ROLE] = seed


__all__ = ["api", "install"]
