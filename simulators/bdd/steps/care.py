"""The care BPO: trouble tickets with tiers and SLA timers, diagnostics through the MVNE,
network tickets through the MVNE to the MNO."""

from __future__ import annotations

from typing import Any

from ..catalogue import phrase
from ..world import StepFailed, World

CARE = "care"
TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"
REPORT = "/tmf-api/troubleTicket/v4/report"


def open_ticket(world: World, severity: str, product: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {
        "description": "No data since this morning",
        "severity": severity,
        "ticketType": "complaint",
    }
    if product is not None:
        body["relatedEntity"] = [
            {"id": product["id"], "role": "subscription", "@referredType": "Product"}
        ]
    answer = world.send(CARE, "POST", TICKETS, operation="createTroubleTicket", json_body=body)
    world.remember("ticket", world.expect(answer, 201))


def read_ticket(world: World) -> dict[str, Any]:
    ticket = world.recall("ticket")
    answer = world.send(CARE, "GET", f"{TICKETS}/{ticket['id']}", operation="getTroubleTicket")
    found: dict[str, Any] = world.expect(answer, 200)
    return world.remember("ticket", found)


@phrase(
    "given",
    "the subscriber has a severity {severity:d} ticket at the care BPO",
    role=CARE,
    example="Given the subscriber has a severity 1 ticket at the care BPO",
    summary="about the remembered subscription; remembered as ${ticket}",
)
def ticket_for_subscription(handoff: World, severity: int) -> None:
    open_ticket(handoff, str(severity), handoff.recall("subscription"))


@phrase(
    "given",
    "a severity {severity:d} ticket at the care BPO",
    role=CARE,
    example="Given a severity 1 ticket at the care BPO",
)
def ticket_alone(handoff: World, severity: int) -> None:
    open_ticket(handoff, str(severity), None)


@phrase(
    "given/when",
    "the agent runs diagnostics on the ticket",
    role=CARE,
    example="When the agent runs diagnostics on the ticket",
    summary="care asks the MVNE's diagnostic API with its care-agent credential",
)
def run_diagnostics(handoff: World) -> None:
    ticket = handoff.recall("ticket")
    answer = handoff.send(
        CARE, "POST", f"{TICKETS}/{ticket['id']}/diagnostics", operation="runTicketDiagnostics"
    )
    if answer.status == 200:
        handoff.remember("ticket", answer.json())


@phrase(
    "given/when",
    'the agent sets the ticket "{status:Q}"',
    role=CARE,
    example='When the agent sets the ticket "pending"',
)
def set_ticket(handoff: World, status: str) -> None:
    ticket = handoff.recall("ticket")
    handoff.send(
        CARE,
        "PATCH",
        f"{TICKETS}/{ticket['id']}",
        operation="patchTroubleTicket",
        json_body={"status": status},
    )


@phrase(
    "given/when",
    'the agent adds the note "{text:Q}"',
    role=CARE,
    example='When the agent adds the note "Looking into it"',
)
def add_note(handoff: World, text: str) -> None:
    ticket = handoff.recall("ticket")
    handoff.send(
        CARE,
        "PATCH",
        f"{TICKETS}/{ticket['id']}",
        operation="patchTroubleTicket",
        json_body={"note": [{"text": handoff.expand(text)}]},
    )


@phrase(
    "then", 'the ticket is at tier "{tier:Q}"', role=CARE, example='Then the ticket is at tier "L2"'
)
def ticket_tier(handoff: World, tier: str) -> None:
    found = read_ticket(handoff)
    if found["tier"] != tier:
        raise StepFailed(f"the ticket is at {found['tier']}, not {tier}")


@phrase(
    "then",
    'the ticket escalated because "{reason:Q}"',
    role=CARE,
    example='Then the ticket escalated because "DIAGNOSTICS_UNAVAILABLE"',
)
def escalated_because(handoff: World, reason: str) -> None:
    reasons = [item["reason"] for item in read_ticket(handoff).get("escalation", [])]
    if reason not in reasons:
        raise StepFailed(f"the ticket's escalations are {reasons}")


@phrase(
    "then", "the ticket did not escalate", role=CARE, example="Then the ticket did not escalate"
)
def not_escalated(handoff: World) -> None:
    found = read_ticket(handoff)
    if found.get("escalation"):
        raise StepFailed(f"the ticket escalated: {found['escalation']}")


@phrase(
    "then",
    'the ticket\'s last note mentions "{text:Q}"',
    role=CARE,
    example='Then the ticket\'s last note mentions "${subscription.msisdn}"',
)
def last_note(handoff: World, text: str) -> None:
    notes = read_ticket(handoff).get("note", [])
    expected = handoff.expand(text)
    if not notes or expected not in notes[-1]["text"]:
        raise StepFailed(f"the last note is {notes[-1]['text'] if notes else None!r}")


@phrase(
    "then", "the ticket's SLA is breached", role=CARE, example="Then the ticket's SLA is breached"
)
def sla_breached(handoff: World) -> None:
    if not read_ticket(handoff)["slaBreached"]:
        raise StepFailed("the ticket's SLA is not breached")


@phrase(
    "then",
    "the ticket's SLA is not breached",
    role=CARE,
    example="Then the ticket's SLA is not breached",
)
def sla_kept(handoff: World) -> None:
    found = read_ticket(handoff)
    if found["slaBreached"]:
        raise StepFailed(f"the ticket's SLA is breached: {found['sla'].get('breach')}")


@phrase(
    "then",
    "the care report shows a diagnostics escalation after {minutes:d} minutes",
    role=CARE,
    example="Then the care report shows a diagnostics escalation after 5 minutes",
)
def report_delay(handoff: World, minutes: int) -> None:
    report = handoff.expect(handoff.send(CARE, "GET", REPORT, operation="getTicketReport"), 200)
    delays = [item["delaySeconds"] for item in report.get("diagnosticsEscalations", [])]
    if minutes * 60 not in delays:
        raise StepFailed(f"the care report's diagnostics escalation delays are {delays} s")


@phrase(
    "given",
    "the ticket has escalated to L3",
    role=CARE,
    example="Given the ticket has escalated to L3",
    summary="a severity 1 ticket left alone for an hour climbs a tier per 30 minutes",
)
def to_l3(handoff: World) -> None:
    handoff.advance(61 * 60)
    found = read_ticket(handoff)
    if found["tier"] != "L3":
        raise StepFailed(f"the ticket is at {found['tier']} after an hour")


@phrase(
    "when",
    'the agent escalates the ticket to the network as "{category:Q}"',
    role=CARE,
    example='When the agent escalates the ticket to the network as "coverage"',
    summary="care -> MVNE -> MNO: a TMF621 network ticket in that category",
)
def to_network(handoff: World, category: str) -> None:
    ticket = handoff.recall("ticket")
    answer = handoff.send(
        CARE,
        "POST",
        f"{TICKETS}/{ticket['id']}/networkTicket",
        operation="escalateToNetwork",
        json_body={"category": category},
    )
    if answer.status == 200:
        found = handoff.remember("ticket", answer.json())
        related = [e for e in found.get("relatedEntity", []) if e["role"] == "networkTicket"]
        if related:
            handoff.remember("network ticket", {"id": related[-1]["id"]})


@phrase(
    "then",
    "the MVNE shows the network ticket as stalled",
    role=CARE,
    example="Then the MVNE shows the network ticket as stalled",
)
def mvne_stalled(handoff: World) -> None:
    ticket = handoff.recall("network ticket")
    answer = handoff.send(
        "mvne",
        "GET",
        f"/diagnostics/v1/networkTicket/{ticket['id']}",
        caller=f"care-agent-{handoff.partner}",
        operation="getNetworkTicket",
    )
    if handoff.expect(answer, 200)["stalled"] is not True:
        raise StepFailed(f"the MVNE's network ticket is not stalled: {answer.describe()}")


@phrase(
    "when",
    'the care agent of "{partner:Q}" reads the subscription\'s diagnostics',
    role=CARE,
    example='When the care agent of "mvno-alpha" reads the subscription\'s diagnostics',
    summary="the MVNE's diagnostic API, called directly with that care-agent credential",
)
def read_diagnostics(handoff: World, partner: str) -> None:
    product = handoff.recall("subscription")
    handoff.send(
        "mvne",
        "GET",
        f"/diagnostics/v1/subscription/{product['id']}",
        caller=f"care-agent-{partner}",
        operation="getSubscriptionDiagnostics",
    )
