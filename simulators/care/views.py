"""TMF621 representations shared by API answers and event payloads."""

from __future__ import annotations

from typing import Any

from simulators.core.clock import isoformat

from .model import SLA_TABLE

TICKET_PATH = "/tmf-api/troubleTicket/v4/troubleTicket"


def ticket_view(row: Any, base_url: str, now: float) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "href": f"{base_url}{TICKET_PATH}/{row.id}",
        "@type": "TroubleTicket",
    }
    if row.external_id is not None:
        body["externalId"] = row.external_id
    if row.name is not None:
        body["name"] = row.name
    body.update(
        {
            "description": row.description,
            "severity": row.severity,
            "ticketType": row.ticket_type,
            "status": row.status,
            "creationDate": isoformat(row.creation_date),
            "lastUpdate": isoformat(row.last_update),
            "statusChange": [
                {**entry, "changeDate": isoformat(entry["changeDate"])}
                for entry in row.status_change
            ],
            "note": [{**note, "date": isoformat(note["date"])} for note in row.note],
            "relatedEntity": list(row.related_entity),
            "tier": row.tier,
            "sla": _sla_view(row, now),
            "slaBreached": bool(row.breaches),
            "escalation": [
                {**entry, "date": isoformat(entry["date"])} for entry in row.escalations
            ],
        }
    )
    if row.resolution_date is not None:
        body["resolutionDate"] = isoformat(row.resolution_date)
    if row.diagnostics_delay is not None:
        body["diagnosticsEscalationDelaySeconds"] = row.diagnostics_delay
    return body


def _sla_view(row: Any, now: float) -> dict[str, Any]:
    terms = SLA_TABLE[row.severity]
    paused_s = row.paused_total + (now - row.paused_since if row.paused_since is not None else 0)
    sla: dict[str, Any] = {
        "respondWithinSeconds": terms["respond"],
        "updateEverySeconds": terms["update"],
        "responded": row.responded,
        "paused": row.paused_since is not None,
        "pausedSeconds": paused_s,
        "breach": [
            {
                "kind": b["kind"],
                "tier": b["tier"],
                "dueDate": isoformat(b["dueDate"]),
                "detectedDate": isoformat(b["detectedDate"]),
            }
            for b in row.breaches
        ],
    }
    if row.sla_due is not None:
        sla["nextDueDate"] = isoformat(row.sla_due)
    if row.sla_remaining is not None:
        sla["remainingSeconds"] = row.sla_remaining
    return sla
