"""The care BPO's rules, called directly: reopened tickets' timers, network tickets."""

from __future__ import annotations

from typing import Any

from conftest import T0

from simulators.care import model
from simulators.core.runtime import Runtime

PARTNER = "mvno-alpha-care"
HOUR = 3600.0


def open_ticket(runtime: Runtime, severity: str = "1") -> Any:
    body = {"description": "No data since this morning", "severity": severity,
            "ticketType": "complaint"}  # fmt: skip
    with runtime.store.write() as conn:
        row, _ = model.create_ticket(conn, partner_id=PARTNER, body=body, now=T0)
    return row


def move(runtime: Runtime, row: Any, status: str, now: float) -> tuple[Any, list[model.Schedule]]:
    with runtime.store.write() as conn:
        updated, schedules, _ = model.update_ticket(
            conn, partner_id=PARTNER, ticket_id=row.id, status=status, reason=None, notes=[],
            now=now,
        )  # fmt: skip
    return updated, schedules


def test_a_reopened_ticket_runs_its_sla_and_tier_timers_again(runtime: Runtime) -> None:
    row = open_ticket(runtime)  # severity 1: updated hourly, 30 min per tier
    move(runtime, row, "inProgress", T0 + 10 * 60)
    resolved, _ = move(runtime, row, "resolved", T0 + 10 * 60)
    assert resolved.sla_due is None

    reopened_at = T0 + 70 * 60
    reopened, schedules = move(runtime, row, "inProgress", reopened_at)

    assert reopened.status == "inProgress" and reopened.resolution_date is None
    # The reopening is an agent update: the next one is due an update window later.
    assert reopened.sla_due == reopened_at + HOUR
    # 10 min were worked at L1 before the resolution; the hour resolved does not count.
    assert {(s.kind, s.due_at) for s in schedules} == {
        (model.SLA_CHECK, reopened_at + HOUR),
        (model.TIER_CHECK, reopened_at + 20 * 60),
    }
    with runtime.store.write() as conn:
        escalated, _ = model.tier_check(conn, row.id, "L1", reopened_at + 20 * 60)
    assert escalated is not None and escalated.tier == "L2"


NETWORK_TICKET = {"id": "nt-1", "category": "coverage", "status": "acknowledged"}
HREF = "http://127.0.0.1:8700/mvne/diagnostics/v1/networkTicket/nt-1"


def test_a_repeated_network_escalation_relates_the_network_ticket_once(
    runtime: Runtime,
) -> None:
    row = open_ticket(runtime)
    with runtime.store.write() as conn:
        first, changed = model.record_network_ticket(conn, row, NETWORK_TICKET, HREF, T0 + 60)
    assert changed
    with runtime.store.write() as conn:
        again, changed_again = model.record_network_ticket(
            conn, first, NETWORK_TICKET, HREF, T0 + 120
        )

    assert not changed_again
    assert [e["id"] for e in again.related_entity if e["role"] == "networkTicket"] == ["nt-1"]
    assert again.note == first.note and again.last_update == T0 + 60
