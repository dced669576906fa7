"""The domain audit trail: who, as which partner, changed what, under which correlation ID.

Written in the same transaction as the change it describes, so the trail and
the state never disagree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Connection, Float, Integer, String, func, select

from .store import CORE_ROLE, role_table

audit_table = role_table(
    CORE_ROLE,
    "audit",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("role", String(16), nullable=False),
    # "partner:<id>", "admin", "system" (a lifecycle step) or "peer:<role>".
    Column("actor", String(80), nullable=False),
    Column("partner_id", String(64), nullable=True, index=True),
    Column("action", String(60), nullable=False),
    Column("entity_type", String(40), nullable=False),
    Column("entity_id", String(80), nullable=False),
    Column("correlation_id", String(256), nullable=True, index=True),
    Column("details", JSON, nullable=True),
)

_INSERT = audit_table.insert()


def record(
    conn: Connection,
    *,
    at: float,
    role: str,
    actor: str,
    partner_id: str | None,
    action: str,
    entity_type: str,
    entity_id: str,
    correlation_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        _INSERT,
        {
            "at": at,
            "role": role,
            "actor": actor,
            "partner_id": partner_id,
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "correlation_id": correlation_id,
            "details": details,
        },
    )


def query(
    conn: Connection,
    *,
    correlation_id: str | None = None,
    partner_id: str | None = None,
    entity_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    conditions = []
    if correlation_id:
        conditions.append(audit_table.c.correlation_id == correlation_id)
    if partner_id:
        conditions.append(audit_table.c.partner_id == partner_id)
    if entity_id:
        conditions.append(audit_table.c.entity_id == entity_id)
    total = conn.execute(
        select(func.count()).select_from(audit_table).where(*conditions)
    ).scalar_one()
    rows = conn.execute(
        select(audit_table)
        .where(*conditions)
        .order_by(audit_table.c.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return total, [dict(row._mapping) for row in rows]
