"""The care BPO fake: TMF621 trouble tickets worked in tiers under SLA timers, with
diagnostics from the MVNE and network tickets through the MVNE to the MNO."""

from __future__ import annotations

from simulators.core.runtime import Runtime

from . import partners, steps
from .api import api
from .model import SLA_CHECK, TIER_CHECK


def install(runtime: Runtime) -> None:
    runtime.tasks.register(SLA_CHECK, steps.run_sla_check)
    runtime.tasks.register(TIER_CHECK, steps.run_tier_check)
    runtime.seeders["care"] = partners.seed


__all__ = ["api", "install"]
