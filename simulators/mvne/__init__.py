"""The MVNE fake: partner gateway, SIM inventory, activation orders, rating, real-time balance."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from simulators.core.admin import current_seed
from simulators.core.runtime import Runtime

from . import admin as admin  # registers the partner lifecycle on the control plane
from . import errors, partners, steps
from .api import api


def install(runtime: Runtime) -> None:
    steps.register(runtime)
    runtime.seeders["mvne"] = partners.seed
    runtime.pack_data_loaders["partners"] = load_partners


def load_partners(
    runtime: Runtime, conn: Connection, items: list[dict[str, Any]], now: float, source: str
) -> list[dict[str, str]]:
    """A scenario pack's partners, onboarded as `POST /__admin/partners` would; one that
    exists already (the pack applied again) is left as it is. Returns the new partners' keys."""
    created = []
    seed = current_seed(conn, runtime.settings.faker_seed)
    for item in items:
        try:
            partner, key = partners.onboard(
                runtime,
                conn,
                partner_id=item["id"],
                name=item["name"],
                agreement=item["agreement"],
                seed=seed,
                now=now,
                actor=source,
                correlation_id=None,
            )
        except errors.PartnerExists:  # refused before anything is written
            continue
        created.append({"id": partner.id, "apiKey": key})
    return created


__all__ = ["api", "install"]
