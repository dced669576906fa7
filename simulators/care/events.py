"""The care BPO's ticket events (TMF hub pattern), queued in the outbox with the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from simulators.core.runtime import Runtime

from .views import ticket_view

TICKET_API = "troubleTicket"


def ticket_event(
    runtime: Runtime,
    conn: Connection,
    ticket: Any,
    event_type: str,
    correlation_id: str | None,
    now: float,
) -> None:
    runtime.outbox.publish(
        conn,
        role="care",
        api=TICKET_API,
        partner_id=ticket.partner_id,
        event_type=event_type,
        resource_name="troubleTicket",
        resource=ticket_view(ticket, f"{runtime.settings.public_base_url}/care", now),
        correlation_id=correlation_id,
        now=now,
    )
