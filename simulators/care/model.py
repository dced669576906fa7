"""The care BPO's domain: TMF621 trouble tickets, tiers, SLA timers on the simulated clock.

No Flask here; every function takes a Connection and the simulated time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Connection, Float, ForeignKey, String, Text, select

from simulators.core.store import partner_row, role_table, select_equal, update_equal

from . import errors

ROLE = "care"
TIERS = ("L1", "L2", "L3")

# Severity -> seconds: first agent response, then an agent update at least this often, and
# how long a ticket may stay at one tier (active time) before it escalates to the next.
# Severity 1 follows the usual BPO contract: answered within 15 min, updated hourly.
SLA_TABLE: dict[str, dict[str, float]] = {
    "1": {"respond": 15 * 60, "update": 60 * 60, "tierThreshold": 30 * 60},
    "2": {"respond": 30 * 60, "update": 4 * 3600, "tierThreshold": 2 * 3600},
    "3": {"respond": 4 * 3600, "update": 24 * 3600, "tierThreshold": 8 * 3600},
    "4": {"respond": 24 * 3600, "update": 72 * 3600, "tierThreshold": 24 * 3600},
}

OPEN = ("acknowledged", "pending", "held", "inProgress")
FINAL = ("closed", "cancelled", "rejected")
# TMF621 statuses and who may follow whom; anything else is refused with 409.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "acknowledged": ("inProgress", "pending", "held", "rejected", "cancelled"),
    "inProgress": ("pending", "held", "resolved", "cancelled"),
    "pending": ("inProgress", "held", "cancelled"),
    "held": ("inProgress", "cancelled"),
    "resolved": ("closed", "inProgress"),
    "closed": (),
    "cancelled": (),
    "rejected": (),
}

SLA_CHECK = "care.sla.check"
TIER_CHECK = "care.tier.check"
DIAGNOSTICS_UNAVAILABLE = "DIAGNOSTICS_UNAVAILABLE"

ticket_table = role_table(
    ROLE,
    "care_ticket",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), ForeignKey("partner.id"), nullable=False, index=True),
    Column("external_id", String(64), nullable=True),
    Column("name", String(200), nullable=True),
    Column("description", Text, nullable=False),
    Column("severity", String(1), nullable=False),
    Column("ticket_type", String(64), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("tier", String(2), nullable=False),
    Column("tier_since", Float, nullable=False),
    Column("tier_paused_base", Float, nullable=False),
    Column("creation_date", Float, nullable=False),
    Column("last_update", Float, nullable=False),
    Column("resolution_date", Float, nullable=True),
    Column("sla_due", Float, nullable=True),
    Column("responded", Boolean, nullable=False),
    Column("sla_remaining", Float, nullable=True),
    Column("paused_since", Float, nullable=True),
    Column("paused_total", Float, nullable=False),
    Column("breaches", JSON, nullable=False),
    Column("escalations", JSON, nullable=False),
    Column("diagnostics_delay", Float, nullable=True),
    Column("status_change", JSON, nullable=False),
    Column("note", JSON, nullable=False),
    Column("related_entity", JSON, nullable=False),
)


@dataclass(frozen=True)
class Schedule:
    """A clock-driven check the caller must queue (the model knows no task runner)."""

    kind: str
    ticket_id: str
    due_at: float
    payload: dict[str, Any]


def new_id() -> str:
    return uuid.uuid4().hex


def _row(conn: Connection, ticket_id: str) -> Any:
    return select_equal(conn, ticket_table, id=ticket_id).one()


def get_ticket(conn: Connection, partner_id: str, ticket_id: str) -> Any:
    """A partner's ticket; another partner's is as absent as a missing one."""
    row = partner_row(conn, ticket_table, ticket_id, partner_id)
    if row is None:
        raise errors.TicketNotFound(f"No trouble ticket {ticket_id}")
    return row


def list_tickets(
    conn: Connection,
    partner_id: str,
    *,
    status: str | None = None,
    severity: str | None = None,
    tier: str | None = None,
    sla_breached: bool | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Any]]:
    query = select(ticket_table).where(ticket_table.c.partner_id == partner_id)
    if status:
        query = query.where(ticket_table.c.status == status)
    if severity:
        query = query.where(ticket_table.c.severity == severity)
    if tier:
        query = query.where(ticket_table.c.tier == tier)
    rows = list(conn.execute(query.order_by(ticket_table.c.creation_date, ticket_table.c.id)))
    if sla_breached is not None:
        rows = [row for row in rows if bool(row.breaches) == sla_breached]
    return len(rows), rows[offset : offset + limit]


def _status_entry(status: str, now: float, reason: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": status, "changeDate": now}
    if reason:
        entry["changeReason"] = reason
    return entry


def _note(now: float, author: str, text: str) -> dict[str, Any]:
    return {"id": new_id(), "author": author, "date": now, "text": text}


def create_ticket(
    conn: Connection, *, partner_id: str, body: dict[str, Any], now: float
) -> tuple[Any, list[Schedule]]:
    """A new ticket: acknowledged, at L1, with its response timer and tier timer running."""
    severity = body["severity"]
    sla = SLA_TABLE[severity]
    ticket_id = new_id()
    notes = [_note(now, n.get("author", "partner"), n["text"]) for n in body.get("note", [])]
    conn.execute(
        ticket_table.insert(),
        {
            "id": ticket_id,
            "partner_id": partner_id,
            "external_id": body.get("externalId"),
            "name": body.get("name"),
            "description": body["description"],
            "severity": severity,
            "ticket_type": body["ticketType"],
            "status": "acknowledged",
            "tier": "L1",
            "tier_since": now,
            "tier_paused_base": 0.0,
            "creation_date": now,
            "last_update": now,
            "sla_due": now + sla["respond"],
            "responded": False,
            "paused_total": 0.0,
            "breaches": [],
            "escalations": [],
            "status_change": [_status_entry("acknowledged", now, "Ticket received")],
            "note": notes,
            "related_entity": [dict(entity) for entity in body.get("relatedEntity", [])],
        },
    )
    row = _row(conn, ticket_id)
    return row, [_sla_check(row), _tier_check(row, now)]


def _sla_check(row: Any) -> Schedule:
    return Schedule(SLA_CHECK, row.id, row.sla_due, {"ticket_id": row.id, "due": row.sla_due})


def _active_at_tier(row: Any, now: float) -> float:
    """Seconds the ticket has been worked at its tier, pauses (pending) excluded."""
    paused = row.paused_total - row.tier_paused_base
    if row.paused_since is not None:
        paused += now - row.paused_since
    return float(now - row.tier_since - paused)


def _tier_check(row: Any, now: float) -> Schedule:
    remaining = SLA_TABLE[row.severity]["tierThreshold"] - _active_at_tier(row, now)
    due = now + max(0.0, remaining)
    return Schedule(TIER_CHECK, row.id, due, {"ticket_id": row.id, "tier": row.tier})


def _agent_update(row: Any, now: float, status: str | None = None) -> dict[str, Any]:
    """An agent touched the ticket: the response is made and the update timer restarts.

    `status` is the ticket's status once the update is applied (its current one if the
    update changes none): the timer runs for an open ticket, whatever it was before.
    """
    if (status or row.status) not in OPEN or row.paused_since is not None:
        return {"responded": True}
    return {"responded": True, "sla_due": now + SLA_TABLE[row.severity]["update"]}


def update_ticket(
    conn: Connection,
    *,
    partner_id: str,
    ticket_id: str,
    status: str | None,
    reason: str | None,
    notes: list[dict[str, Any]],
    now: float,
) -> tuple[Any, list[Schedule], bool]:
    """Apply a status change and/or notes (TMF621 PATCH); return the row, the checks to
    queue and whether the status changed."""
    row = get_ticket(conn, partner_id, ticket_id)
    values: dict[str, Any] = {"last_update": now}
    schedules: list[Schedule] = []
    if status is not None:
        if status not in TRANSITIONS[row.status]:
            raise errors.InvalidStatusTransition(
                f"A {row.status} ticket cannot become {status}; allowed: "
                f"{', '.join(TRANSITIONS[row.status]) or 'none (final)'}",
                fromStatus=row.status,
                toStatus=status,
            )
        values["status"] = status
        values["status_change"] = [*row.status_change, _status_entry(status, now, reason)]
        if status == "resolved":
            values["resolution_date"] = now
    elif row.status in FINAL:
        raise errors.TicketFinal(f"The ticket is {row.status}; it takes no more notes")
    if notes:
        values["note"] = [
            *row.note,
            *(_note(now, n.get("author", "agent"), n["text"]) for n in notes),
        ]
    values.update(_agent_update(row, now, status))
    leaving_pause = row.paused_since is not None and status is not None and status != "pending"
    entering_pause = row.paused_since is None and status == "pending"
    reopening = row.status == "resolved" and status == "inProgress"
    if reopening:
        # The SLA due time (set by _agent_update) is one update window after the reopening:
        # the reopening PATCH is itself an agent update, the first response was made before
        # the resolution, and the deadline that ran at the resolution is long gone.
        # Nobody works a resolved ticket: like a pause, the time it spent resolved is not
        # active time at its tier, so the tier timer resumes where it stopped.
        values["resolution_date"] = None
        values["tier_since"] = row.tier_since + (now - row.resolution_date)
    if entering_pause:
        # The SLA clock stops while the ticket waits on the customer: keep what is left.
        values["paused_since"] = now
        values["sla_remaining"] = max(0.0, (values.get("sla_due") or row.sla_due or now) - now)
        values["sla_due"] = None
    if leaving_pause:
        # ... and runs on from where it stopped.
        values["paused_since"] = None
        values["paused_total"] = row.paused_total + (now - row.paused_since)
        values["sla_due"] = now + (row.sla_remaining or 0.0)
        values["sla_remaining"] = None
    if status in FINAL or status == "resolved":
        values["sla_due"] = None
    update_equal(conn, ticket_table, {"id": row.id}, **values)
    updated = _row(conn, row.id)
    if updated.status in OPEN and updated.paused_since is None:
        if updated.sla_due is not None:
            schedules.append(_sla_check(updated))
        # A tier timer that came due while the ticket was pending or resolved was dropped
        # (tier_check ignores a ticket that is not worked): start it again.
        if leaving_pause or reopening:
            schedules.append(_tier_check(updated, now))
    return updated, schedules, status is not None


def sla_check(
    conn: Connection, ticket_id: str, due: float, now: float
) -> tuple[Any, list[Schedule]]:
    """The SLA timer came due: record a breach if nobody answered in time; the next
    window starts at the missed deadline. A superseded timer does nothing."""
    row = _row(conn, ticket_id)
    if row.status not in OPEN or row.paused_since is not None or row.sla_due != due:
        return None, []
    kind = "update" if row.responded else "response"
    breach = {"kind": kind, "dueDate": due, "detectedDate": now, "tier": row.tier}
    next_due = due + SLA_TABLE[row.severity]["update"]
    update_equal(
        conn, ticket_table, {"id": row.id}, breaches=[*row.breaches, breach], sla_due=next_due
    )
    updated = _row(conn, row.id)
    return updated, [_sla_check(updated)]


def _escalate(conn: Connection, row: Any, now: float, reason: str, note: str) -> Any:
    index = TIERS.index(row.tier)
    target = TIERS[index + 1]
    entry: dict[str, Any] = {"fromTier": row.tier, "toTier": target, "date": now, "reason": reason}
    values: dict[str, Any] = {
        "tier": target,
        "tier_since": now,
        "tier_paused_base": row.paused_total,
        "last_update": now,
        "note": [*row.note, _note(now, "care-bpo", note)],
    }
    if reason == DIAGNOSTICS_UNAVAILABLE:
        delay = now - row.creation_date
        entry["delaySeconds"] = delay
        if row.diagnostics_delay is None:
            values["diagnostics_delay"] = delay
    values["escalations"] = [*row.escalations, entry]
    update_equal(conn, ticket_table, {"id": row.id}, **values)
    return _row(conn, row.id)


def tier_check(
    conn: Connection, ticket_id: str, tier: str, now: float
) -> tuple[Any, list[Schedule]]:
    """The tier's threshold may have passed: escalate if the ticket is still there, open
    and worked for that long; otherwise look again when it would be."""
    row = _row(conn, ticket_id)
    if row.tier != tier or row.status not in OPEN or row.paused_since is not None:
        return None, []
    if _active_at_tier(row, now) < SLA_TABLE[row.severity]["tierThreshold"]:
        return None, [_tier_check(row, now)]
    if tier == TIERS[-1]:
        return None, []
    updated = _escalate(
        conn, row, now, "TIER_THRESHOLD", f"Escalated: {tier} threshold passed unresolved"
    )
    return updated, [_tier_check(updated, now)]


def subscription_of(row: Any) -> str:
    """The MVNE subscription the ticket is about (relatedEntity with role `subscription`)."""
    for entity in row.related_entity:
        if entity.get("@referredType") == "Product" or entity.get("role") == "subscription":
            return str(entity["id"])
    raise errors.NoSubscription("The ticket names no MVNE subscription in relatedEntity")


def record_diagnostics(
    conn: Connection, row: Any, summary: str, now: float
) -> tuple[Any, list[Schedule]]:
    """The MVNE answered: its findings become a note, and they count as an agent update."""
    values: dict[str, Any] = {
        "note": [*row.note, _note(now, "diagnostics", summary)],
        "last_update": now,
        **_agent_update(row, now),
    }
    update_equal(conn, ticket_table, {"id": row.id}, **values)
    updated = _row(conn, row.id)
    schedules = (
        [_sla_check(updated)] if updated.status in OPEN and updated.paused_since is None else []
    )
    return updated, schedules


def diagnostics_refused(
    conn: Connection, row: Any, code: str, now: float
) -> tuple[Any, list[Schedule]]:
    """The agent could not see the subscription: without diagnostics the tier cannot
    work the ticket, so it goes to the next tier (L3 keeps it, with the note)."""
    if row.status not in OPEN:
        raise errors.TicketFinal(f"The ticket is {row.status}")
    text = f"Diagnostics refused by the MVNE ({code})"
    if row.tier == TIERS[-1]:
        values = {"note": [*row.note, _note(now, "diagnostics", text)], "last_update": now}
        update_equal(conn, ticket_table, {"id": row.id}, **values)
        return _row(conn, row.id), []
    updated = _escalate(conn, row, now, DIAGNOSTICS_UNAVAILABLE, f"{text}; escalated")
    return updated, [_tier_check(updated, now)]


def record_network_ticket(
    conn: Connection, row: Any, network_ticket: dict[str, Any], href: str, now: float
) -> tuple[Any, bool]:
    """The MVNE opened a network ticket at the MNO for this L3 ticket; return the row and
    whether it changed.

    The MVNE answers a repeated escalation with the network ticket it already opened (it
    dedupes on our ticket id, the externalId): that ticket is related once, and a repeat
    leaves the care ticket as it was, without a note, since nothing new happened at the
    MNO and a note per retry would only bury the agents' notes.
    """
    if any(
        entity.get("role") == "networkTicket" and entity.get("id") == network_ticket["id"]
        for entity in row.related_entity
    ):
        return row, False
    entity = {
        "id": network_ticket["id"],
        "href": href,
        "role": "networkTicket",
        "@referredType": "NetworkTicket",
    }
    text = (
        f"Network ticket {network_ticket['id']} opened at the MNO via the MVNE "
        f"(category {network_ticket['category']}, status {network_ticket['status']})"
    )
    values = {
        "related_entity": [*row.related_entity, entity],
        "note": [*row.note, _note(now, "care-bpo", text)],
        "last_update": now,
    }
    update_equal(conn, ticket_table, {"id": row.id}, **values)
    return _row(conn, row.id), True


def require_network_escalation(row: Any) -> None:
    if row.tier != TIERS[-1]:
        raise errors.NotAtL3(f"Only an L3 ticket goes to the network; this one is at {row.tier}")
    if row.status not in OPEN:
        raise errors.TicketFinal(f"The ticket is {row.status}")


def report(conn: Connection, partner_id: str) -> dict[str, Any]:
    """SLA breaches and the escalations caused by missing diagnostics, for one partner."""
    rows = list(select_equal(conn, ticket_table, partner_id=partner_id))
    delays = [
        {"ticketId": row.id, "delaySeconds": row.diagnostics_delay, "tier": row.tier}
        for row in rows
        if row.diagnostics_delay is not None
    ]
    seconds = [entry["delaySeconds"] for entry in delays]
    return {
        "ticketCount": len(rows),
        "openCount": sum(1 for row in rows if row.status in OPEN),
        "breachedCount": sum(1 for row in rows if row.breaches),
        "breachCount": sum(len(row.breaches) for row in rows),
        "escalationCount": sum(len(row.escalations) for row in rows),
        "diagnosticsEscalations": delays,
        "averageDiagnosticsEscalationDelaySeconds": sum(seconds) / len(seconds)
        if seconds
        else None,
        "maxDiagnosticsEscalationDelaySeconds": max(seconds) if seconds else None,
    }
