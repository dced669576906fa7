"""The MVNE as its partners use it: SIMs, activation orders, subscriptions, balances, usage."""

from __future__ import annotations

from typing import Any

from simulators.core.identifiers import iccid_with_check_digit

from ..catalogue import phrase
from ..world import StepFailed, World
from .stack import settled_read

MVNE = "mvne"
SIMS = "/tmf-api/resourceInventoryManagement/v4/resource"
ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder"
PRODUCTS = "/tmf-api/productInventoryManagement/v4/product"
BUCKETS = "/tmf-api/prepayBalanceManagement/v4/bucket"
TOPUPS = "/tmf-api/prepayBalanceManagement/v4/topupBalance"
USAGE = "/tmf-api/usageManagement/v4/usage"
# Long enough for the MVNE to submit, the MNO to provision and the MVNE to poll.
PROVISIONING_S = 5


def correlation(world: World) -> dict[str, str]:
    found = world.remembered.get("correlation id")
    return {"X-Correlation-ID": found} if found else {}


def available_sims(world: World, count: int, partner: str | None = None) -> list[dict[str, Any]]:
    answer = world.send(
        MVNE,
        "GET",
        SIMS,
        caller=partner or world.partner,
        operation="listSims",
        params={"resourceStatus": "available", "limit": count},
    )
    sims: list[dict[str, Any]] = world.expect(answer, 200)
    if len(sims) < count:
        raise StepFailed(f"{partner or world.partner} has {len(sims)} available SIMs, not {count}")
    return sims


def order_body(iccids: list[str], offering: str, external_id: str) -> dict[str, Any]:
    return {
        "externalId": external_id,
        "productOrderItem": [
            {
                "id": str(number),
                "action": "add",
                "productOffering": {"id": offering},
                "product": {"productCharacteristic": [{"name": "ICCID", "value": iccid}]},
            }
            for number, iccid in enumerate(iccids, start=1)
        ],
    }


def place_order(world: World, body: dict[str, Any]) -> None:
    world.remember("order request", body)
    answer = world.send(
        MVNE,
        "POST",
        ORDERS,
        operation="createProductOrder",
        json_body=body,
        headers=correlation(world),
    )
    if answer.status == 201:
        world.remember("order", answer.json())


def read_order(world: World) -> dict[str, Any]:
    order = world.recall("order")
    answer = world.send(MVNE, "GET", f"{ORDERS}/{order['id']}", operation="getProductOrder")
    found: dict[str, Any] = world.expect(answer, 200)
    return world.remember("order", found)


def read_subscription(world: World) -> dict[str, Any]:
    product = world.recall("subscription")
    answer = world.send(MVNE, "GET", f"{PRODUCTS}/{product['id']}", operation="getProduct")
    found: dict[str, Any] = world.expect(answer, 200)
    return world.remember("subscription", found)


def activate(world: World, offering: str) -> dict[str, Any]:
    """Order one activation, let the network complete it, remember the subscription."""
    sim = available_sims(world, 1)[0]
    world.remember("sim", sim)
    place_order(world, order_body([sim["iccid"]], offering, world.unique("shop")))
    world.expect(world.last, 201)  # type: ignore[arg-type]
    world.advance(PROVISIONING_S)
    order = settled_read(world, lambda: read_order(world), lambda o: o["state"] == "completed")
    if order["state"] != "completed":
        raise StepFailed(f"the activation ended {order['state']}: {order.get('stateReason')}")
    world.remember("subscription", {"id": order["productOrderItem"][0]["product"]["id"]})
    return read_subscription(world)


# --- SIMs ----------------------------------------------------------------------------------


@phrase(
    "given",
    "the partner has an available SIM",
    role=MVNE,
    example="Given the partner has an available SIM",
    summary="remembered as ${sim} (iccid, imsi)",
)
def has_sim(handoff: World) -> None:
    handoff.remember("sim", available_sims(handoff, 1)[0])


@phrase(
    "given",
    "the partner has {count:d} available SIMs",
    role=MVNE,
    example="Given the partner has 2 available SIMs",
    summary="remembered as ${sims.0}, ${sims.1}, ...",
)
def has_sims(handoff: World, count: int) -> None:
    handoff.remember("sims", available_sims(handoff, count))


@phrase(
    "given",
    'a SIM of the partner "{partner:Q}"',
    role=MVNE,
    example='Given a SIM of the partner "mvno-bravo"',
    summary="another partner's SIM, remembered as ${sim}",
)
def sim_of(handoff: World, partner: str) -> None:
    handoff.remember("sim", available_sims(handoff, 1, partner=partner)[0])


@phrase(
    "given",
    "an ICCID the MVNE never mapped to the partner",
    role=MVNE,
    example="Given an ICCID the MVNE never mapped to the partner",
    summary="a valid E.118 ICCID in no pool, remembered as ${sim}",
)
def unmapped_iccid(handoff: World) -> None:
    handoff.remember("sim", {"iccid": iccid_with_check_digit("894401999999999999")})


@phrase(
    "given",
    "the SIM's ICCID has a wrong check digit",
    role=MVNE,
    example="Given the SIM's ICCID has a wrong check digit",
)
def wrong_check_digit(handoff: World) -> None:
    sim = dict(handoff.recall("sim"))
    iccid = sim["iccid"]
    sim["iccid"] = iccid[:-1] + str((int(iccid[-1]) + 1) % 10)
    handoff.remember("sim", sim)


@phrase(
    "when",
    'the partner reads the SIM "{iccid:Q}"',
    role=MVNE,
    example='When the partner reads the SIM "${sim.iccid}"',
)
def read_sim(handoff: World, iccid: str) -> None:
    handoff.send(MVNE, "GET", f"{SIMS}/{handoff.expand(iccid)}", operation="getSim")


@phrase("then", 'the SIM is "{status:Q}"', role=MVNE, example='Then the SIM is "available"')
def sim_status(handoff: World, status: str) -> None:
    iccid = handoff.recall("sim")["iccid"]
    found = handoff.expect(handoff.send(MVNE, "GET", f"{SIMS}/{iccid}", operation="getSim"), 200)
    if found["resourceStatus"] != status:
        raise StepFailed(f"the SIM {iccid} is {found['resourceStatus']}, not {status}")


# --- activation orders ---------------------------------------------------------------------


@phrase(
    "given",
    'the partner\'s requests carry the correlation ID "{value:Q}"',
    role=MVNE,
    example='Given the partner\'s requests carry the correlation ID "shop-0001"',
)
def carries_correlation(handoff: World, value: str) -> None:
    handoff.remember("correlation id", handoff.expand(value))


@phrase(
    "given/when",
    'the partner orders the activation of the SIM on "{offering:Q}"',
    role=MVNE,
    example='When the partner orders the activation of the SIM on "po-gb-payg"',
    summary="a TMF622 productOrder with a fresh externalId; the answer is the response",
)
def order_sim(handoff: World, offering: str) -> None:
    iccid = handoff.recall("sim")["iccid"]
    place_order(handoff, order_body([iccid], offering, handoff.unique("shop")))


@phrase(
    "when",
    'the partner orders the activation of the SIM on "{offering:Q}" with external '
    'ID "{external_id:Q}"',
    role=MVNE,
    example='When the partner orders the activation of the SIM on "po-gb-payg" with '
    'external ID "shop-0001"',
)
def order_sim_external(handoff: World, offering: str, external_id: str) -> None:
    iccid = handoff.recall("sim")["iccid"]
    place_order(handoff, order_body([iccid], offering, handoff.expand(external_id)))


@phrase(
    "when",
    'the partner orders the activation of both SIMs on "{offering:Q}"',
    role=MVNE,
    example='When the partner orders the activation of both SIMs on "po-gb-payg"',
)
def order_two(handoff: World, offering: str) -> None:
    iccids = [sim["iccid"] for sim in handoff.recall("sims")[:2]]
    place_order(handoff, order_body(iccids, offering, handoff.unique("shop")))


@phrase(
    "when",
    "the partner sends the same order again",
    role=MVNE,
    example="When the partner sends the same order again",
    summary="a retry: the same body, so the same externalId",
)
def order_again(handoff: World) -> None:
    place_order(handoff, handoff.recall("order request"))


@phrase("then", 'the order is "{state:Q}"', role=MVNE, example='Then the order is "completed"')
def order_state(handoff: World, state: str) -> None:
    order = read_order(handoff)
    if order["state"] != state:
        raise StepFailed(f"the order is {order['state']}, not {state}: {order.get('stateReason')}")


@phrase(
    "then",
    'the order is "{state:Q}" with reason "{code:Q}"',
    role=MVNE,
    example='Then the order is "failed" with reason "ACTIVATION_PENDING_VERIFICATION"',
)
def order_state_reason(handoff: World, state: str, code: str) -> None:
    order = read_order(handoff)
    reason = (order.get("stateReason") or {}).get("code")
    if (order["state"], reason) != (state, code):
        raise StepFailed(f"the order is {order['state']} with reason {reason}, not {state}/{code}")


@phrase(
    "then", 'order line {line:d} is "{state:Q}"', role=MVNE, example='Then order line 2 is "failed"'
)
def order_line(handoff: World, line: int, state: str) -> None:
    items = {item["id"]: item for item in read_order(handoff)["productOrderItem"]}
    found = items.get(str(line), {}).get("state")
    if found != state:
        raise StepFailed(f"order line {line} is {found}, not {state}")


@phrase(
    "then",
    'the partner has {count:d} order with external ID "{external_id:Q}"',
    role=MVNE,
    example='Then the partner has 1 order with external ID "shop-0001"',
)
def orders_with_external_id(handoff: World, count: int, external_id: str) -> None:
    answer = handoff.send(
        MVNE,
        "GET",
        ORDERS,
        operation="listProductOrders",
        params={"externalId": handoff.expand(external_id)},
    )
    found = handoff.expect(answer, 200)
    if len(found) != count:
        raise StepFailed(f"{len(found)} orders carry external ID {external_id}, not {count}")


@phrase("then", "the partner has no order", role=MVNE, example="Then the partner has no order")
def no_order(handoff: World) -> None:
    answer = handoff.send(MVNE, "GET", ORDERS, operation="listProductOrders")
    if handoff.expect(answer, 200):
        raise StepFailed(f"the partner has orders: {answer.describe()}")


# --- subscriptions -------------------------------------------------------------------------


@phrase(
    "given",
    'the partner has an active subscription on "{offering:Q}"',
    role=MVNE,
    example='Given the partner has an active subscription on "po-gb-payg"',
    summary="ordered and completed by the network; remembered as ${subscription}",
)
def active_subscription(handoff: World, offering: str) -> None:
    activate(handoff, offering)


@phrase(
    "given/when",
    'the partner sets the subscription "{status:Q}"',
    role=MVNE,
    example='When the partner sets the subscription "suspended"',
    summary="PATCH status: suspended, active (resume) or terminated",
)
def set_status(handoff: World, status: str) -> None:
    product = handoff.recall("subscription")
    handoff.send(
        MVNE,
        "PATCH",
        f"{PRODUCTS}/{product['id']}",
        operation="updateProductStatus",
        json_body={"status": status},
    )


@phrase(
    "when",
    "the partner reads the subscription",
    role=MVNE,
    example="When the partner reads the subscription",
)
def read_product(handoff: World) -> None:
    product = handoff.recall("subscription")
    handoff.send(MVNE, "GET", f"{PRODUCTS}/{product['id']}", operation="getProduct")


@phrase(
    "then",
    'the subscription is "{status:Q}"',
    role=MVNE,
    example='Then the subscription is "suspended"',
)
def subscription_status(handoff: World, status: str) -> None:
    product = read_subscription(handoff)
    if product["status"] != status:
        raise StepFailed(f"the subscription is {product['status']}, not {status}")


@phrase(
    "then",
    'the subscription\'s {field:w} is "{value:Q}"',
    role=MVNE,
    example='Then the subscription\'s networkBarring is "outgoing"',
    summary="any member of the TMF637 product: barring, networkBarring, ...",
)
def subscription_field(handoff: World, field: str, value: str) -> None:
    product = read_subscription(handoff)
    found = product.get(field)
    shown = str(found).lower() if isinstance(found, bool) else found
    if shown != value:
        raise StepFailed(f"the subscription's {field} is {found!r}, not {value!r}")


# --- balances and usage --------------------------------------------------------------------


@phrase(
    "given/when",
    "the subscriber uses {quantity:d} {kind:Usage}",
    role=MVNE,
    example="When the subscriber uses 600 MB of data",
    summary="traffic on the network: the MNO records it and the MVNE charges it",
)
def subscriber_uses(handoff: World, quantity: int, kind: str) -> None:
    msisdn = handoff.recall("subscription")["msisdn"]
    body = {"msisdn": msisdn, "usageType": kind, "quantity": quantity}
    handoff.remember("traffic", handoff.admin("POST", "/traffic", body, roles=("mno", "mvne")))


@phrase(
    "given/when",
    'the MNO charges the usage record "{record:Q}" of {quantity:d} {kind:Usage}',
    role=MVNE,
    example='When the MNO charges the usage record "net-evt-1" of 5 minutes of voice',
    summary="the network calls the MVNE's charging API itself (chargeUsage)",
)
def network_charges(handoff: World, record: str, quantity: int, kind: str) -> None:
    msisdn = handoff.recall("subscription")["msisdn"]
    body = {
        "externalId": handoff.expand(record),
        "usageType": kind,
        "usageDate": "2026-03-02T09:00:10Z",
        "msisdn": msisdn,
        "quantity": quantity,
    }
    handoff.send(MVNE, "POST", USAGE, caller="mno-network", operation="chargeUsage", json_body=body)


@phrase(
    "then",
    "the balance is {amount:N} {currency:w}",
    role=MVNE,
    example="Then the balance is 4.9 GBP",
)
def balance_is(handoff: World, amount: float, currency: str) -> None:
    product = handoff.recall("subscription")
    answer = handoff.send(MVNE, "GET", f"{BUCKETS}/{product['id']}", operation="getBucket")
    value = handoff.expect(answer, 200)["remainingValue"]
    if (round(float(value["amount"]), 2), value["units"]) != (round(amount, 2), currency):
        raise StepFailed(f"the balance is {value['amount']} {value['units']}")


@phrase(
    "given/when",
    "the partner tops up {amount:N} {currency:w}",
    role=MVNE,
    example="When the partner tops up 10.07 GBP",
)
def top_up(handoff: World, amount: float, currency: str) -> None:
    product = handoff.recall("subscription")
    body = {"product": {"id": product["id"]}, "amount": {"amount": amount, "units": currency}}
    handoff.send(MVNE, "POST", TOPUPS, operation="createTopup", json_body=body)


@phrase(
    "then",
    "the usage of the subscription holds {count:d} records",
    role=MVNE,
    example="Then the usage of the subscription holds 1 records",
)
def usage_records(handoff: World, count: int) -> None:
    product = handoff.recall("subscription")
    answer = handoff.send(
        MVNE, "GET", USAGE, operation="listUsage", params={"product.id": product["id"]}
    )
    found = handoff.expect(answer, 200)
    if len(found) != count:
        raise StepFailed(f"the MVNE holds {len(found)} usage records, not {count}")
