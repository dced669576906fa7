"""The MNO as the MVNE sees it: service orders, the HLR/HSS record, network tickets."""

from __future__ import annotations

from typing import Any

from ..catalogue import phrase
from ..world import StepFailed, World

MNO = "mno"
SERVICE_ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
SERVICES = "/tmf-api/serviceInventory/v4/service"
TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"


def characteristic(service: dict[str, Any], name: str) -> Any:
    for item in service.get("serviceCharacteristic", []):
        if item["name"] == name:
            return item["value"]
    return None


def services_of_sim(world: World) -> list[dict[str, Any]]:
    iccid = world.recall("sim")["iccid"]
    answer = world.send(MNO, "GET", SERVICES, operation="listServices", params={"iccid": iccid})
    found: list[dict[str, Any]] = world.expect(answer, 200)
    return found


@phrase(
    "then",
    "the MNO holds {count:d} service for the SIM",
    role=MNO,
    example="Then the MNO holds 1 service for the SIM",
)
def service_count(handoff: World, count: int) -> None:
    found = services_of_sim(handoff)
    if len(found) != count:
        raise StepFailed(f"the MNO holds {len(found)} services for the SIM, not {count}")


@phrase(
    "then",
    'the network record of the SIM has "{name:Q}" set to "{value:Q}"',
    role=MNO,
    example='Then the network record of the SIM has "barring" set to "all"',
    summary="a characteristic of the MNO's TMF638 service: IMSI, MSISDN, ICCID, barring, "
    "attachState",
)
def record_has(handoff: World, name: str, value: str) -> None:
    live = [s for s in services_of_sim(handoff) if s["state"] != "terminated"] or services_of_sim(
        handoff
    )
    if not live:
        raise StepFailed("the MNO holds no service for the SIM")
    found = characteristic(live[0], name)
    if str(found) != handoff.expand(value):
        raise StepFailed(f"the network record's {name} is {found!r}, not {value!r}")


@phrase(
    "then",
    'the network record of the SIM is "{state:Q}"',
    role=MNO,
    example='Then the network record of the SIM is "terminated"',
)
def record_state(handoff: World, state: str) -> None:
    states = [service["state"] for service in services_of_sim(handoff)]
    if state not in states or (state == "terminated" and any(s != state for s in states)):
        raise StepFailed(f"the MNO's services for the SIM are {states}")


@phrase(
    "then",
    'the MNO\'s service order for the order is "{state:Q}"',
    role=MNO,
    example='Then the MNO\'s service order for the order is "acknowledged"',
    summary="found by externalId, which the MVNE sets to its own order id",
)
def service_order_state(handoff: World, state: str) -> None:
    order = handoff.recall("order")
    answer = handoff.send(
        MNO,
        "GET",
        SERVICE_ORDERS,
        operation="listServiceOrders",
        params={"externalId": order["id"]},
    )
    found = handoff.expect(answer, 200)
    states = [item["state"] for item in found]
    if states != [state]:
        raise StepFailed(f"the MNO's service orders for {order['id']} are {states}")


@phrase(
    "given",
    "the MNO already holds a network record for the SIM's IMSI",
    role=MNO,
    example="Given the MNO already holds a network record for the SIM's IMSI",
    summary="a clash the HLR will refuse when the MVNE provisions the SIM",
)
def clash(handoff: World) -> None:
    sim = handoff.recall("sim")
    body = {
        "externalId": handoff.unique("clash"),
        "serviceOrderItem": [
            {
                "id": "1",
                "action": "add",
                "service": {
                    "serviceCharacteristic": [
                        {"name": "IMSI", "value": sim["imsi"]},
                        {"name": "MSISDN", "value": "+447700900999"},
                        {"name": "ICCID", "value": sim["iccid"]},
                    ]
                },
            }
        ],
    }
    handoff.expect(
        handoff.send(MNO, "POST", SERVICE_ORDERS, operation="createServiceOrder", json_body=body),
        201,
    )
    handoff.advance(5)


# --- network tickets -------------------------------------------------------------------------


def network_tickets(world: World, **params: str) -> list[dict[str, Any]]:
    answer = world.send(MNO, "GET", TICKETS, operation="listTroubleTickets", params=params)
    found: list[dict[str, Any]] = world.expect(answer, 200)
    return found


@phrase(
    "then",
    'the MNO\'s network ticket is "{status:Q}"',
    role=MNO,
    example='Then the MNO\'s network ticket is "resolved"',
)
def network_ticket_status(handoff: World, status: str) -> None:
    found = [ticket["status"] for ticket in network_tickets(handoff)]
    if found != [status]:
        raise StepFailed(f"the MNO's network tickets are {found}")


@phrase(
    "then",
    "the MNO flags the network ticket as stalled",
    role=MNO,
    example="Then the MNO flags the network ticket as stalled",
)
def flagged_stalled(handoff: World) -> None:
    found = network_tickets(handoff, stalled="true")
    if len(found) != 1 or found[0]["slaCovered"]:
        raise StepFailed(f"the MNO's stalled network tickets are {found}")


@phrase(
    "then",
    "the MNO flags no network ticket as stalled",
    role=MNO,
    example="Then the MNO flags no network ticket as stalled",
)
def flagged_none(handoff: World) -> None:
    found = network_tickets(handoff, stalled="true")
    if found:
        raise StepFailed(f"the MNO flags {[t['id'] for t in found]} as stalled")
