"""What the care BPO's agents may read about one subscriber, and the network tickets
the MVNE opens at the MNO on their behalf.

Care agents call with a care-agent credential the MVNE issues per MVNO partner
(tenancy role `mvne-care`, `care-agent-<partner>`): it reaches only that partner's
subscribers, and reading them needs the credential's DIAGNOSTICS scope.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Column, Connection, Float, String

from simulators.core import audit, tenancy
from simulators.core.clock import isoformat
from simulators.core.store import role_table, select_equal
from simulators.core.tenancy import Partner

from . import errors, model

CARE_ROLE = "mvne-care"
DIAGNOSTICS = "DIAGNOSTICS"
# Which reference partners' care agents hold the diagnostic scope: Bravo's BPO contract
# never granted it, the gap DOMAIN.md's failure point 3 is about.
REFERENCE_SCOPES = {"mvno-alpha": [DIAGNOSTICS], "mvno-bravo": []}

# Names the MVNE's references to its network tickets at the MNO (see mno_ticket_reference).
_MNO_TICKET_NAMESPACE = uuid.UUID("5f0c3d1e-8a47-4b7e-9d2a-6c1b0e4f7a93")

network_ticket_table = role_table(
    "mvne",
    "mvne_network_ticket",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("external_id", String(64), nullable=False),
    Column("subscription_id", String(40), nullable=True),
    Column("category", String(32), nullable=False),
    Column("mno_ticket_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)


def served_partner(conn: Connection, credential: Partner) -> Partner:
    """The MVNO partner whose subscribers this care-agent credential reaches."""
    return tenancy.get_partner(conn, str(credential.agreement["partnerId"]))


def require_scope(credential: Partner, fault_fired: bool) -> None:
    if fault_fired or not credential.has(DIAGNOSTICS):
        raise errors.DiagnosticScopeMissing(
            "This care-agent credential is not granted the DIAGNOSTICS scope",
            scope=DIAGNOSTICS,
        )


def subscription(conn: Connection, credential: Partner, product_id: str) -> Any:
    return model.get_product(conn, served_partner(conn, credential), product_id)


def history(conn: Connection, product: Any) -> list[dict[str, Any]]:
    """The subscription's provisioning history: its order's and its own audit records."""
    entries: list[dict[str, Any]] = []
    for entity in (product.order_id, product.id):
        entries.extend(audit.query(conn, entity_id=entity, limit=1000)[1])
    entries.sort(key=lambda entry: (entry["at"], entry["id"]))
    return [
        {"date": isoformat(entry["at"]), "action": entry["action"], "actor": entry["actor"]}
        for entry in entries
        if entry["partner_id"] == product.partner_id
    ]


def sim_status(conn: Connection, product: Any) -> str:
    row = select_equal(conn, model.sim_table, iccid=product.iccid).first()
    return str(row.status) if row is not None else "unknown"


def seed_credentials(runtime_settings: Any, conn: Connection, now: float) -> None:
    """A care-agent credential for every reference partner, with its reference scope."""
    existing = {p.id for p in tenancy.list_partners(conn)}
    for partner_id, scopes in REFERENCE_SCOPES.items():
        credential = tenancy.care_agent_id(partner_id)
        if credential in existing or partner_id not in existing:
            continue
        tenancy.create_partner(
            conn,
            secret_key=runtime_settings.secret_key,
            partner_id=credential,
            role=CARE_ROLE,
            name=f"Care agents of {partner_id}",
            agreement={"partnerId": partner_id},
            granted=list(scopes),
            now=now,
            api_key=tenancy.peer_api_key(runtime_settings, credential),
        )


def mno_ticket_reference(conn: Connection, credential: Partner, external_id: str) -> str:
    """The ticket's `externalId` at the MNO. The MNO knows the MVNE as one client, and two
    MVNOs' care tickets may carry the same id: sent as it came, the second partner's ticket
    was linked to the first's. Derived, not random, so a retried ticket is still one."""
    partner = served_partner(conn, credential)
    return uuid.uuid5(_MNO_TICKET_NAMESPACE, f"{partner.id}\n{external_id}").hex


def record_network_ticket(
    conn: Connection,
    *,
    credential: Partner,
    body: dict[str, Any],
    mno_ticket_id: str,
    now: float,
) -> Any:
    partner = served_partner(conn, credential)
    existing = select_equal(
        conn, network_ticket_table, partner_id=partner.id, external_id=body["externalId"]
    ).first()
    if existing is not None:
        return existing
    ticket_id = uuid.uuid4().hex
    conn.execute(
        network_ticket_table.insert(),
        {
            "id": ticket_id,
            "partner_id": partner.id,
            "external_id": body["externalId"],
            "subscription_id": body.get("subscriptionId"),
            "category": body["category"],
            "mno_ticket_id": mno_ticket_id,
            "created_at": now,
        },
    )
    model._audit(
        conn,
        now=now,
        actor=f"care:{credential.id}",
        partner_id=partner.id,
        action="networkTicket.opened",
        entity_type="networkTicket",
        entity_id=ticket_id,
        correlation_id=None,
        details={"category": body["category"], "mnoTicketId": mno_ticket_id},
    )
    return select_equal(conn, network_ticket_table, id=ticket_id).one()


def get_network_ticket(conn: Connection, credential: Partner, ticket_id: str) -> Any:
    row = select_equal(
        conn,
        network_ticket_table,
        id=ticket_id,
        partner_id=str(credential.agreement["partnerId"]),
    ).first()
    if row is None:
        raise errors.NetworkTicketNotFound(f"No network ticket {ticket_id}")
    return row
