"""Suspension of a partner's new activations for an unpaid wholesale invoice.

Only the capability stops: the MVNO's ACTIVATE_SIM at the MVNE is suspended, and the
network refuses new lines for the partner's IMSI blocks. Everything else goes on (changes
to existing lines, barring, usage, top-ups, queries, settlement). A payment that brings the
overdue amount back within the threshold lifts it.

The cut-off rule for activations in flight:

1. The cut-off is the simulated instant the suspension was decided.
2. From the cut-off the MVNE refuses new activation orders (403 CAPABILITY_SUSPENDED);
   an order it accepted before the cut-off is in flight and goes on.
3. The network provisions an activation whose service order it receives before the
   cut-off plus the agreement's in-flight grace (`inFlightGraceSeconds`, 900 s in the
   reference agreement): the order the MVNE accepted just before the cut-off reaches it
   within seconds. Such an activation completes and is charged as usual.
4. A service order received after cut-off + grace is refused item by item
   (`ACTIVATIONS_SUSPENDED`) and charged nothing.
5. Every decision about a partner's activation while a suspension is in force is kept
   (order, item, received at, cut-off, grace, rule, outcome), so the race can be replayed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    String,
    bindparam,
    select,
)

from simulators.core import audit, tenancy
from simulators.core.clock import isoformat
from simulators.core.store import role_table, select_equal, update_equal

ROLE = "mno"
ACTIVATE_SIM = "ACTIVATE_SIM"
ADMITTED = "admitted"
REFUSED = "refused"
REFUSAL_CODE = "ACTIVATIONS_SUSPENDED"

suspensions = role_table(
    ROLE,
    "mno_activation_suspension",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("cut_off", Float, nullable=False),
    Column("grace_s", Float, nullable=False),
    Column("overdue_micros", BigInteger, nullable=False),
    Column("threshold_micros", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("invoice_ids", JSON, nullable=False),
    Column("lifted_at", Float, nullable=True),
    Column("lifted_by", String(80), nullable=True),
)

decisions = role_table(
    ROLE,
    "mno_activation_decision",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("suspension_id", String(40), nullable=False, index=True),
    Column("partner_id", String(64), nullable=False),
    Column("service_order_id", String(40), nullable=False),
    Column("item_id", String(64), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("decision", String(10), nullable=False),
    Column("rule", String(200), nullable=False),
)

# Built once and run with bound values: see simulators/core/store.py.
_HISTORY = (
    select(suspensions)
    .where(suspensions.c.partner_id == bindparam("partner_id"))
    .order_by(suspensions.c.cut_off)
)
_DECISIONS = (
    select(decisions)
    .where(decisions.c.suspension_id == bindparam("suspension_id"))
    .order_by(decisions.c.pk)
    .limit(bindparam("limit"))
)
_PARTNER_STATUS = select(tenancy.partners.c.status).where(
    tenancy.partners.c.id == bindparam("partner_id")
)


@dataclass(frozen=True)
class Suspension:
    id: str
    partner_id: str
    cut_off: float
    grace_s: float
    overdue_micros: int
    threshold_micros: int
    currency: str
    invoice_ids: tuple[str, ...]
    lifted_at: float | None
    lifted_by: str | None

    @property
    def in_force(self) -> bool:
        return self.lifted_at is None


def _from_row(row: Any) -> Suspension:
    return Suspension(
        id=row.id,
        partner_id=row.partner_id,
        cut_off=row.cut_off,
        grace_s=row.grace_s,
        overdue_micros=int(row.overdue_micros),
        threshold_micros=int(row.threshold_micros),
        currency=row.currency,
        invoice_ids=tuple(row.invoice_ids),
        lifted_at=row.lifted_at,
        lifted_by=row.lifted_by,
    )


def current(conn: Connection, partner_id: str) -> Suspension | None:
    row = select_equal(conn, suspensions, partner_id=partner_id, lifted_at=None).first()
    return None if row is None else _from_row(row)


def history(conn: Connection, partner_id: str) -> list[Suspension]:
    rows = conn.execute(_HISTORY, {"partner_id": partner_id}).all()
    return [_from_row(row) for row in rows]


def decisions_of(conn: Connection, suspension_id: str, limit: int = 100) -> list[Any]:
    return list(conn.execute(_DECISIONS, {"suspension_id": suspension_id, "limit": limit}).all())


def gate_activation(
    conn: Connection,
    *,
    partner_id: str,
    service_order_id: str,
    item_id: str,
    received_at: float,
) -> str | None:
    """Apply the cut-off rule to one activation the network received; the refusal code, or
    None when it may be provisioned."""
    suspension = current(conn, partner_id)
    if suspension is None:
        return None
    deadline = suspension.cut_off + suspension.grace_s
    if received_at < deadline:
        outcome, rule = (
            ADMITTED,
            (
                f"received at {isoformat(received_at)}, before cut-off + grace "
                f"({isoformat(deadline)}): in flight"
            ),
        )
    else:
        outcome, rule = (
            REFUSED,
            (
                f"received at {isoformat(received_at)}, after cut-off + grace "
                f"({isoformat(deadline)})"
            ),
        )
    conn.execute(
        decisions.insert(),
        {
            "suspension_id": suspension.id,
            "partner_id": partner_id,
            "service_order_id": service_order_id,
            "item_id": item_id,
            "received_at": received_at,
            "decision": outcome,
            "rule": rule,
        },
    )
    return REFUSAL_CODE if outcome == REFUSED else None


def _set_mvne_capability(conn: Connection, mvne_partner_id: str, status: str, now: float) -> bool:
    """Suspend or grant the MVNO's ACTIVATE_SIM; False when the MVNE has no such partner."""
    known = conn.execute(_PARTNER_STATUS, {"partner_id": mvne_partner_id}).scalar()
    if known is None or known == tenancy.PARTNER_TERMINATED:
        return False
    tenancy.set_capability(conn, mvne_partner_id, ACTIVATE_SIM, status, now)
    return True


def suspend(
    conn: Connection,
    *,
    partner_id: str,
    mvne_partner_id: str,
    overdue_micros: int,
    threshold_micros: int,
    currency: str,
    invoice_ids: list[str],
    grace_s: float,
    now: float,
    correlation_id: str | None,
) -> Suspension:
    suspension_id = f"susp-{uuid.uuid4().hex[:20]}"
    conn.execute(
        suspensions.insert(),
        {
            "id": suspension_id,
            "partner_id": partner_id,
            "cut_off": now,
            "grace_s": grace_s,
            "overdue_micros": overdue_micros,
            "threshold_micros": threshold_micros,
            "currency": currency,
            "invoice_ids": invoice_ids,
        },
    )
    propagated = _set_mvne_capability(conn, mvne_partner_id, tenancy.CAPABILITY_SUSPENDED, now)
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor="system",
        partner_id=partner_id,
        action="activations.suspended",
        entity_type="activationSuspension",
        entity_id=suspension_id,
        correlation_id=correlation_id,
        details={
            "cutOff": isoformat(now),
            "graceSeconds": grace_s,
            "overdueMicros": overdue_micros,
            "thresholdMicros": threshold_micros,
            "invoices": invoice_ids,
            "mvneCapability": ACTIVATE_SIM if propagated else None,
        },
    )
    found = current(conn, partner_id)
    assert found is not None
    return found


def lift(
    conn: Connection,
    suspension: Suspension,
    *,
    mvne_partner_id: str,
    reason: str,
    now: float,
    correlation_id: str | None,
) -> None:
    update_equal(conn, suspensions, {"id": suspension.id}, lifted_at=now, lifted_by=reason)
    _set_mvne_capability(conn, mvne_partner_id, tenancy.CAPABILITY_GRANTED, now)
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor="system",
        partner_id=suspension.partner_id,
        action="activations.restored",
        entity_type="activationSuspension",
        entity_id=suspension.id,
        correlation_id=correlation_id,
        details={"reason": reason},
    )
