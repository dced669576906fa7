"""Fulfillment's events (TMF hub pattern), queued in the outbox with the change they report."""

from __future__ import annotations

from sqlalchemy import Connection

from simulators.core.runtime import Runtime

from . import model
from .views import production_order_view, shipment_view

HUB_API = "fulfillment"


def base_url(runtime: Runtime) -> str:
    return f"{runtime.settings.public_base_url}/fulfillment"


def publish(
    runtime: Runtime,
    conn: Connection,
    outcome: model.Outcome,
    correlation_id: str | None,
    now: float,
) -> None:
    """One event per type the outcome names, about the resource it changed."""
    if not outcome.events:
        return
    row = outcome.row
    if outcome.events[0].startswith("ProductionOrder"):
        resource_name = "productionOrder"
        resource = production_order_view(row, base_url(runtime))
    else:
        resource_name = "shipment"
        sim = model.profiles_of(conn, [row.iccid]).get(row.iccid)
        resource = shipment_view(row, base_url(runtime), sim)
    for event_type in outcome.events:
        runtime.outbox.publish(
            conn,
            role=model.ROLE,
            api=HUB_API,
            partner_id=row.partner_id,
            event_type=event_type,
            resource_name=resource_name,
            resource=resource,
            correlation_id=correlation_id,
            now=now,
        )
