"""TMF621 network trouble tickets the MVNE opens at the host network, under the MNO's SLA.

The MNO's SLA covers some categories: those are acknowledged and progress on the
simulated clock. Others are taken and never worked: they stay acknowledged and
are flagged as stalled once the SLA threshold has passed.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Boolean, Column, Connection, Float, String, Text, select

from simulators.core.store import role_table, select_equal

from . import errors

# Category -> (seconds to inProgress, seconds to resolved) after creation.
COVERED: dict[str, tuple[float, float]] = {
    "coverage": (15 * 60, 4 * 3600),
    "provisioning": (15 * 60, 2 * 3600),
    "roaming": (30 * 60, 8 * 3600),
}
NOT_COVERED = ("billing-dispute", "number-porting")
CATEGORIES = (*COVERED, *NOT_COVERED)
# An uncovered ticket still acknowledged after this long is flagged as stalled.
STALL_THRESHOLD_S = 24 * 3600

ticket_table = role_table(
    "mno",
    "mno_trouble_ticket",
    Column("id", String(40), primary_key=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("external_id", String(64), nullable=False),
    Column("category", String(32), nullable=False),
    Column("severity", String(1), nullable=False),
    Column("description", Text, nullable=False),
    Column("covered", Boolean, nullable=False),
    Column("creation_date", Float, nullable=False),
)


def status_changes(row: Any, now: float) -> list[tuple[str, float]]:
    """The ticket's statuses so far, derived from the clock (no step needs to run)."""
    changes = [("acknowledged", row.creation_date)]
    if row.covered:
        progress, resolve = COVERED[row.category]
        for status, offset in (("inProgress", progress), ("resolved", resolve)):
            if now >= row.creation_date + offset:
                changes.append((status, row.creation_date + offset))
    return changes


def stalled(row: Any, now: float) -> bool:
    return not row.covered and now - row.creation_date >= STALL_THRESHOLD_S


def create_ticket(
    conn: Connection, *, client_id: str, body: dict[str, Any], now: float, not_covered: bool
) -> tuple[Any, bool]:
    """Take a ticket; a retry with the same externalId answers the first one."""
    existing = select_equal(
        conn, ticket_table, client_id=client_id, external_id=body["externalId"]
    ).first()
    if existing is not None:
        if existing.category != body["category"]:
            raise errors.ExternalIdInUse(f"externalId {body['externalId']} names another ticket")
        return existing, False
    ticket_id = uuid.uuid4().hex
    conn.execute(
        ticket_table.insert(),
        {
            "id": ticket_id,
            "client_id": client_id,
            "external_id": body["externalId"],
            "category": body["category"],
            "severity": body["severity"],
            "description": body["description"],
            "covered": body["category"] in COVERED and not not_covered,
            "creation_date": now,
        },
    )
    row = select_equal(conn, ticket_table, id=ticket_id).one()
    return row, True


def get_ticket(conn: Connection, client_id: str, ticket_id: str) -> Any:
    row = select_equal(conn, ticket_table, id=ticket_id, client_id=client_id).first()
    if row is None:
        raise errors.TroubleTicketNotFound(f"No trouble ticket {ticket_id}")
    return row


def list_tickets(
    conn: Connection,
    client_id: str,
    now: float,
    *,
    status: str | None,
    category: str | None,
    stalled_only: bool | None,
    offset: int,
    limit: int,
) -> tuple[int, list[Any]]:
    query = select(ticket_table).where(ticket_table.c.client_id == client_id)
    if category:
        query = query.where(ticket_table.c.category == category)
    rows = list(conn.execute(query.order_by(ticket_table.c.creation_date, ticket_table.c.id)))
    if status:
        rows = [row for row in rows if status_changes(row, now)[-1][0] == status]
    if stalled_only is not None:
        rows = [row for row in rows if stalled(row, now) == stalled_only]
    return len(rows), rows[offset : offset + limit]
