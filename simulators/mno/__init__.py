"""The host network (MNO) fake: service ordering, the HLR/HSS service inventory and usage,
and the CAMARA network APIs (SIM Swap, Number Verification, Device Roaming Status) with the
authorization server that issues their access tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulators.core.http import RoleApi

from . import (
    admin,  # noqa: F401  (registers the admin traffic operation)
    authorization,
    authorization_api,
    camara_api,
)
from .api import api
from .model import PROGRESS_SERVICE_ORDER, run_progress_step, seed_reference_data

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from simulators.core.runtime import Runtime

__all__ = ["EXTRA_APIS", "api", "install"]

# The MNO's APIs besides its TMF one, each under its own base path.
EXTRA_APIS: dict[str, RoleApi] = {
    authorization_api.PREFIX: authorization_api.api,
    **camara_api.NETWORK_APIS,
}


def _seed(runtime: Runtime, conn: Connection, seed: int) -> None:
    seed_reference_data(runtime, conn, seed)
    authorization.seed_clients(runtime, conn, seed)


def install(runtime: Runtime) -> None:
    """Register the MNO's lifecycle steps and reference data with the running stack."""
    runtime.tasks.register(PROGRESS_SERVICE_ORDER, run_progress_step)
    runtime.seeders["mno"] = _seed
