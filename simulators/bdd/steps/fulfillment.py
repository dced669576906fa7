"""SIM fulfillment as its MVNO sees it: production batches loaded into the MVNE, shipments on
the carrier's clock, returns, and the ICCID mapping each shipment owes the MVNE."""

from __future__ import annotations

from typing import Any

from ..catalogue import phrase
from ..world import StepFailed, World
from .stack import settled_read

FULFILLMENT = "fulfillment"
ORDERS = "/v1/productionOrders"
SHIPMENTS = "/v1/shipments"
STOCK = "/v1/sims"
MVNE_MAPPINGS = "/v1/iccidMappings"
MVNE_SIMS = "/tmf-api/resourceInventoryManagement/v4/resource"
PROFILE_TYPES = ("UICC", "eSIM")
SERVICE_LEVELS = ("express", "standard", "economy")
# The vendor accepts in 5 minutes and produces a UICC batch in 2 hours (an eSIM batch in
# 15 minutes); the load into the MVNE follows at once.
PRODUCTION_S = {"UICC": 2 * 3600 + 5 * 60 + 10, "eSIM": 20 * 60 + 10}
ADDRESS = {"line1": "1 High Street", "city": "Leeds", "postalCode": "LS1 1AA", "country": "GB"}


def _profile(text: str) -> str:
    if text not in PROFILE_TYPES:
        raise StepFailed(f"{text!r} is not a profile type: {' or '.join(PROFILE_TYPES)}")
    return text


def order_batch(world: World, count: int, profile_type: str) -> dict[str, Any]:
    body = {"profileType": _profile(profile_type), "quantity": count}
    answer = world.send(
        FULFILLMENT, "POST", ORDERS, operation="createProductionOrder", json_body=body
    )
    if answer.status == 201:
        world.remember("batch", answer.json())
    return answer.json() if answer.response is not None and answer.response.content else {}


def read_batch(world: World) -> dict[str, Any]:
    batch = world.recall("batch")
    answer = world.send(
        FULFILLMENT, "GET", f"{ORDERS}/{batch['id']}", operation="getProductionOrder"
    )
    found: dict[str, Any] = world.expect(answer, 200)
    return world.remember("batch", found)


def read_shipment(world: World) -> dict[str, Any]:
    shipment = world.recall("shipment")
    answer = world.send(
        FULFILLMENT, "GET", f"{SHIPMENTS}/{shipment['id']}", operation="getShipment"
    )
    found: dict[str, Any] = world.expect(answer, 200)
    return world.remember("shipment", found)


def ship(world: World, profile_type: str, account: str, level: str | None) -> None:
    body: dict[str, Any] = {
        "externalId": world.unique("subscriber-order"),
        "accountId": world.expand(account),
        "profileType": _profile(profile_type),
    }
    if profile_type == "UICC":
        body["addressTo"] = ADDRESS
        body["serviceLevel"] = level or "standard"
    else:
        body["email"] = "subscriber@example.com"
    answer = world.send(FULFILLMENT, "POST", SHIPMENTS, operation="createShipment", json_body=body)
    if answer.status == 201:
        shipment = world.remember("shipment", answer.json())
        # The shipped card is the SIM the subscriber activates with.
        world.remember("sim", {"iccid": shipment["iccid"]})


def mapping_at_mvne(world: World, iccid: str) -> Any:
    """The MVNE's mapping of one of the partner's ICCIDs (None: it maps nothing)."""
    answer = world.send("mvne", "GET", f"{MVNE_MAPPINGS}/{iccid}", operation="getIccidMapping")
    found = world.expect(answer, 200, 404)
    return found if answer.status == 200 else None


# --- production --------------------------------------------------------------------------------


@phrase(
    "given/when",
    "the partner orders a batch of {count:d} {profile:w} SIMs from the SIM vendor",
    role=FULFILLMENT,
    example="When the partner orders a batch of 5 UICC SIMs from the SIM vendor",
    summary="a production order (UICC or eSIM); remembered as ${batch}",
)
def orders_batch(handoff: World, count: int, profile: str) -> None:
    order_batch(handoff, count, profile)


@phrase(
    "given",
    "the partner has {count:d} {profile:w} SIMs in stock at fulfillment",
    role=FULFILLMENT,
    example="Given the partner has 3 UICC SIMs in stock at fulfillment",
    summary="a batch ordered, produced by the vendor and loaded into the MVNE (the clock "
    "moves on while it is); remembered as ${batch}",
)
def has_stock(handoff: World, count: int, profile: str) -> None:
    order_batch(handoff, count, profile)
    handoff.expect(handoff.last, 201)  # type: ignore[arg-type]
    handoff.advance(PRODUCTION_S[profile])
    batch = settled_read(handoff, lambda: read_batch(handoff), lambda b: b["state"] == "loaded")
    if batch["state"] != "loaded":
        raise StepFailed(f"the batch is {batch['state']}, not loaded: {batch.get('loadError')}")


@phrase(
    "then",
    'the batch is "{state:Q}"',
    role=FULFILLMENT,
    example='Then the batch is "loaded"',
    summary="the production order: acknowledged, inProduction, produced, loading, loaded, "
    "rejected or failed; the order read is the response",
)
def batch_state(handoff: World, state: str) -> None:
    batch = settled_read(handoff, lambda: read_batch(handoff), lambda b: b["state"] == state)
    if batch["state"] != state:
        raise StepFailed(f"the batch is {batch['state']}, not {state}: {batch.get('loadError')}")


@phrase(
    "then",
    'the MVNE refused the batch with "{code:Q}" at row {row:d}',
    role=FULFILLMENT,
    example='Then the MVNE refused the batch with "RANGE_BROKEN" at row 2',
    summary="the MVNE's refusal of the vendor file, as the production order keeps it",
)
def batch_refused(handoff: World, code: str, row: int) -> None:
    batch = settled_read(
        handoff, lambda: read_batch(handoff), lambda b: b["state"] not in ("produced", "loading")
    )
    error = batch.get("loadError") or {}
    if (batch["state"], error.get("code"), error.get("row")) != ("rejected", code, row):
        raise StepFailed(f"the batch is {batch['state']} with load error {error}")


@phrase(
    "then",
    "the MVNE holds {count:d} SIMs of the batch",
    role=FULFILLMENT,
    example="Then the MVNE holds 3 SIMs of the batch",
    summary="the partner's inventory at the MVNE, by the batch number",
)
def mvne_holds(handoff: World, count: int) -> None:
    batch = handoff.recall("batch")
    answer = handoff.send(
        "mvne",
        "GET",
        MVNE_SIMS,
        operation="listSims",
        params={"batchNumber": batch["batchNumber"], "limit": 1},
    )
    handoff.expect(answer, 200)
    total = int(answer.response.headers.get("X-Total-Count", -1))  # type: ignore[union-attr]
    if total != count:
        raise StepFailed(f"the MVNE holds {total} SIMs of {batch['batchNumber']}, not {count}")


# --- shipments ---------------------------------------------------------------------------------


@phrase(
    "given/when",
    'the partner ships a {profile:w} SIM to the account "{account:Q}"',
    role=FULFILLMENT,
    example='When the partner ships a UICC SIM to the account "acct-1001"',
    summary="the next SIM of the stock (a UICC by standard post, an eSIM by e-mail); "
    "remembered as ${shipment}, its card as ${sim}",
)
def ships(handoff: World, profile: str, account: str) -> None:
    ship(handoff, profile, account, None)


@phrase(
    "given/when",
    'the partner ships a UICC SIM by {level:w} post to the account "{account:Q}"',
    role=FULFILLMENT,
    example='When the partner ships a UICC SIM by express post to the account "acct-1001"',
    summary="express (promised in 1 day), standard (3 days) or economy (5 days)",
)
def ships_by(handoff: World, level: str, account: str) -> None:
    if level not in SERVICE_LEVELS:
        raise StepFailed(f"{level!r} is not a service level: {', '.join(SERVICE_LEVELS)}")
    ship(handoff, "UICC", account, level)


@phrase(
    "when",
    "the partner reads the shipment",
    role=FULFILLMENT,
    example="When the partner reads the shipment",
    summary="the answer is the response: check it with `the response property ...`",
)
def reads_shipment(handoff: World) -> None:
    shipment = handoff.recall("shipment")
    handoff.send(FULFILLMENT, "GET", f"{SHIPMENTS}/{shipment['id']}", operation="getShipment")


@phrase(
    "then",
    'the shipment is "{status:Q}"',
    role=FULFILLMENT,
    example='Then the shipment is "InTransit"',
    summary="the carrier's tracking status: InfoReceived, InTransit, OutForDelivery, "
    "AttemptFail, Delivered, Exception, Expired",
)
def shipment_status(handoff: World, status: str) -> None:
    shipment = settled_read(
        handoff, lambda: read_shipment(handoff), lambda found: found["status"] == status
    )
    if shipment["status"] != status:
        raise StepFailed(
            f"the shipment is {shipment['status']} ({shipment.get('statusReason')}), not {status}"
        )


@phrase(
    "then",
    'the shipment\'s ICCID mapping is "{status:Q}"',
    role=FULFILLMENT,
    example='Then the shipment\'s ICCID mapping is "sent"',
    summary="pending, sent, notSent, failed, withdrawn or cancelled; the shipment read is "
    "the response",
)
def mapping_status(handoff: World, status: str) -> None:
    shipment = settled_read(
        handoff, lambda: read_shipment(handoff), lambda found: found["mappingStatus"] == status
    )
    if shipment["mappingStatus"] != status:
        raise StepFailed(
            f"the shipment's mapping is {shipment['mappingStatus']}, not {status}: "
            f"{shipment.get('mapping')}"
        )


@phrase(
    "then",
    'fulfillment lists {count:d} shipments whose ICCID mapping is "{status:Q}"',
    role=FULFILLMENT,
    example='Then fulfillment lists 1 shipments whose ICCID mapping is "notSent"',
    summary="what a daily reconciliation of shipped ICCIDs against the MVNE starts from",
)
def shipments_by_mapping(handoff: World, count: int, status: str) -> None:
    _count_shipments(handoff, count, {"mappingStatus": status})


@phrase(
    "then",
    "fulfillment lists {count:d} shipments that breached their delivery promise",
    role=FULFILLMENT,
    example="Then fulfillment lists 1 shipments that breached their delivery promise",
)
def shipments_breached(handoff: World, count: int) -> None:
    _count_shipments(handoff, count, {"slaBreached": "true"})


def _count_shipments(world: World, count: int, params: dict[str, str]) -> None:
    answer = world.send(
        FULFILLMENT, "GET", SHIPMENTS, operation="listShipments", params={**params, "limit": 100}
    )
    found = world.expect(answer, 200)
    if len(found) != count:
        raise StepFailed(f"fulfillment lists {len(found)} shipments with {params}, not {count}")


@phrase(
    "when",
    "the subscriber sends the SIM back {condition:w}",
    role=FULFILLMENT,
    example="When the subscriber sends the SIM back intact",
    summary="a delivered UICC returned to the warehouse, intact or damaged",
)
def sends_back(handoff: World, condition: str) -> None:
    shipment = handoff.recall("shipment")
    handoff.send(
        FULFILLMENT,
        "POST",
        f"{SHIPMENTS}/{shipment['id']}/return",
        operation="returnShipment",
        json_body={"condition": condition, "reason": "Subscriber changed their mind"},
    )


@phrase(
    "then",
    'fulfillment\'s stock holds the SIM as "{state:Q}"',
    role=FULFILLMENT,
    example='Then fulfillment\'s stock holds the SIM as "quarantined"',
    summary="available, allocated, shipped, delivered, returned, quarantined or lost",
)
def stock_state(handoff: World, state: str) -> None:
    iccid = handoff.recall("sim")["iccid"]

    def read() -> Any:
        answer = handoff.send(FULFILLMENT, "GET", f"{STOCK}/{iccid}", operation="getStockItem")
        return handoff.expect(answer, 200)

    found = settled_read(handoff, read, lambda item: item["state"] == state)
    if found["state"] != state:
        raise StepFailed(f"the SIM {iccid} is {found['state']} ({found.get('stateReason')})")


@phrase(
    "when",
    'the device with EID "{eid:Q}" downloads the SIM\'s profile',
    role=FULFILLMENT,
    example='When the device with EID "89049032000000000000000000000163" downloads the '
    "SIM's profile",
    summary="SGP.22: the released eSIM profile, with its own matching ID",
)
def downloads_profile(handoff: World, eid: str) -> None:
    iccid = handoff.recall("sim")["iccid"]
    item = handoff.expect(
        handoff.send(FULFILLMENT, "GET", f"{STOCK}/{iccid}", operation="getStockItem"), 200
    )
    matching = (item.get("esimProfile") or {}).get("matchingId", "")
    handoff.send(
        FULFILLMENT,
        "POST",
        f"{STOCK}/{iccid}/download",
        operation="downloadEsimProfile",
        json_body={"eid": handoff.expand(eid), "matchingId": matching},
    )


# --- the ICCID at the MVNE ---------------------------------------------------------------------


@phrase(
    "then",
    'the MVNE maps the ICCID "{iccid:Q}" to the account "{account:Q}"',
    role=FULFILLMENT,
    example='Then the MVNE maps the ICCID "${sim.iccid}" to the account "acct-1001"',
    summary="GET /mvne/v1/iccidMappings/{iccid} with the partner's key",
)
def mvne_maps(handoff: World, iccid: str, account: str) -> None:
    iccid, account = handoff.expand(iccid), handoff.expand(account)
    found = mapping_at_mvne(handoff, iccid)
    if found is None or found.get("accountId") != account:
        raise StepFailed(f"the MVNE maps {iccid} to {found and found.get('accountId')}")


@phrase(
    "then",
    'the MVNE maps the ICCID "{iccid:Q}" to no account',
    role=FULFILLMENT,
    example='Then the MVNE maps the ICCID "${sim.iccid}" to no account',
)
def mvne_maps_nothing(handoff: World, iccid: str) -> None:
    iccid = handoff.expand(iccid)
    found = mapping_at_mvne(handoff, iccid)
    if found is not None:
        raise StepFailed(f"the MVNE maps {iccid} to the account {found.get('accountId')}")
