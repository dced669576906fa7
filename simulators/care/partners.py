"""The care BPO's tenants: one per MVNO it serves, each tied to that MVNO's MVNE tenancy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from simulators.core import tenancy
from simulators.core.runtime import Runtime

PARTNER_ROLE = "care"
CAPABILITIES = ["MANAGE_TICKETS", "MANAGE_EVENTS"]
# The MVNOs the reference BPO serves; `mvnePartner` picks the MVNE care-agent credential.
REFERENCE_PARTNERS: list[dict[str, Any]] = [
    {"id": "mvno-alpha-care", "name": "Alpha Mobile care desk", "mvnePartner": "mvno-alpha"},
    {"id": "mvno-bravo-care", "name": "Bravo Connect care desk", "mvnePartner": "mvno-bravo"},
]


def seed(runtime: Runtime, conn: Connection, seed_value: int) -> None:
    now = runtime.clock.now(conn)
    existing = {p.id for p in tenancy.list_partners(conn)}
    for reference in REFERENCE_PARTNERS:
        if reference["id"] in existing:
            continue
        tenancy.create_partner(
            conn,
            secret_key=runtime.settings.secret_key,
            partner_id=reference["id"],
            role=PARTNER_ROLE,
            name=reference["name"],
            agreement={"mvnePartner": reference["mvnePartner"], "capabilities": CAPABILITIES},
            granted=CAPABILITIES,
            now=now,
        )
