"""Payment events through the outbox to the built-in sink: signed, complete, and, under the
callback fault rules, replayed and out of order as a merchant's receiver must expect."""

from __future__ import annotations

import json
from typing import Any

from conftest import BASE_URL, conforms, json_of
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from payments.conftest import HUB, PAYMENTS, REFUNDS, add_card, authorized, pay

from simulators.core.contract import FORMAT_CHECKER, load_contract


def subscribe(client: FlaskClient, headers: dict[str, str], sink: str, query: str | None = None):
    body: dict[str, Any] = {"callback": f"{BASE_URL}/__sink/{sink}"}
    if query:
        body["query"] = query
    response = client.post(HUB, json=body, headers=headers)
    return conforms(response, "payments", "registerPaymentListener")


def received(client: FlaskClient, sink: str) -> list[Any]:
    """What the sink received, in arrival order, each body parsed."""
    page = client.get(f"/__admin/sinks/{sink}/deliveries?limit=1000")
    deliveries = sorted(page.get_json(), key=lambda delivery: delivery["id"])
    for delivery in deliveries:
        delivery["body"] = json.loads(delivery["body"])
    return deliveries


def add_fault(client: FlaskClient, rule: dict[str, Any]) -> None:
    response = client.post("/__admin/faults", json=rule)
    assert response.status_code == 201, response.get_data(as_text=True)


def event_schema() -> Draft202012Validator:
    contract = load_contract("payments")
    schema = {"$ref": "#/components/schemas/PaymentEvent", **contract.document}
    return Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


def test_every_step_of_a_payment_reaches_the_merchant_signed(client, runtime, billing):
    hub = subscribe(client, billing, "billing")
    assert hub["secret"].startswith("whsec_")
    read = client.get(f"{HUB}/{hub['id']}", headers=billing)
    assert conforms(read, "payments", "getPaymentListener")["callback"].endswith("/billing")
    payment = authorized(client, billing, "40.00")
    client.post(f"{PAYMENTS}/{payment['id']}/capture", headers=billing)
    client.post(REFUNDS, json={"payment": {"id": payment["id"]}}, headers=billing)
    runtime.settle()
    everything = received(client, "billing")
    assert len(everything) == 4, client.get("/__admin/outbox").get_json()
    assert {d["signature"] for d in everything} == {"valid"}
    # One resource's events arrive in order; the refund is another resource.
    deliveries = [d for d in everything if d["eventType"] != "RefundCreateEvent"]
    deliveries += [d for d in everything if d["eventType"] == "RefundCreateEvent"]
    assert [d["path"].rsplit("/", 1)[1] for d in deliveries] == [
        "paymentCreateEvent", "paymentStateChangeEvent", "paymentStateChangeEvent",
        "refundCreateEvent",
    ]  # fmt: skip
    validator = event_schema()
    for delivery in deliveries:
        errors = [error.message for error in validator.iter_errors(delivery["body"])]
        assert not errors, (delivery["eventType"], errors)
    statuses = [d["body"]["event"].get("payment", {}).get("status") for d in deliveries[:3]]
    assert statuses == ["pendingAuthorization", "authorized", "captured"]
    assert deliveries[3]["body"]["event"]["refund"]["amount"]["amount"] == "40.00"


def test_a_decline_and_a_void_are_events_too(client, runtime, billing):
    subscribe(client, billing, "declines", query="eventType=PaymentStateChangeEvent")
    card = add_card(client, billing, "tok_hard_do_not_honor")
    pay(client, billing, card["id"])
    voided = authorized(client, billing)
    client.post(f"{PAYMENTS}/{voided['id']}/void", headers=billing)
    runtime.settle()
    by_payment: dict[str, list[tuple[str, str | None]]] = {}
    for delivery in received(client, "declines"):
        payment = delivery["body"]["event"]["payment"]
        by_payment.setdefault(payment["id"], []).append(
            (payment["status"], payment.get("statusReason", {}).get("code"))
        )
    assert sorted(by_payment.values()) == [
        [("authorized", None), ("voided", None)], [("denied", "DO_NOT_HONOR")],
    ]  # fmt: skip


def test_another_merchants_payments_send_it_nothing(client, runtime, billing, other_merchant):
    subscribe(client, other_merchant, "other")
    authorized(client, billing)
    runtime.settle()
    assert received(client, "other") == []
    hub = subscribe(client, billing, "mine")
    foreign = client.get(f"{HUB}/{hub['id']}", headers=other_merchant)
    assert conforms(foreign, "payments", "getPaymentListener")["code"] == "NOT_FOUND"
    gone = client.delete(f"{HUB}/{hub['id']}", headers=billing)
    assert conforms(gone, "payments", "unregisterPaymentListener") is None


def test_a_replayed_payment_event_reaches_the_sink_again_under_its_webhook_id(
    client, runtime, billing
):
    subscribe(client, billing, "replay")
    first = authorized(client, billing)
    runtime.settle()
    add_fault(
        client,
        {
            "match": {"role": "callbacks", "partner": "billing-merchant"},
            "effect": {"type": "replay", "count": 1},
            "dosage": {"firstN": 1},
        },
    )
    client.post(f"{PAYMENTS}/{first['id']}/capture", headers=billing)
    runtime.settle()
    deliveries = received(client, "replay")
    ids = [d["webhookId"] for d in deliveries]
    assert len(ids) == 4 and len(set(ids)) == 3  # one earlier event came back
    replayed = deliveries[-1] if ids[-1] in ids[:-1] else deliveries[-2]
    assert replayed["eventType"] == "PaymentStateChangeEvent"
    assert replayed["body"]["event"]["payment"]["status"] == "authorized"
    summary = client.get("/__admin/sinks/replay").get_json()
    assert summary["duplicates"] == 1 and summary["invalidSignatures"] == 0


def test_a_held_back_create_event_arrives_after_the_state_change(client, runtime, billing):
    subscribe(client, billing, "order")
    add_fault(client, {"match": {"role": "callbacks", "event": "PaymentCreateEvent"},
                       "effect": {"type": "outOfOrder", "seconds": 30},
                       "dosage": {"firstN": 1}})  # fmt: skip
    payment = authorized(client, billing)
    runtime.advance(31)
    deliveries = received(client, "order")
    assert [d["eventType"] for d in deliveries] == [
        "PaymentStateChangeEvent", "PaymentCreateEvent",
    ]  # fmt: skip
    # What a receiver orders by: the late event is the older state of the same payment.
    late, early = (
        deliveries[1]["body"]["event"]["payment"],
        deliveries[0]["body"]["event"]["payment"],
    )
    assert late["id"] == early["id"] == payment["id"]
    assert (late["status"], early["status"]) == ("pendingAuthorization", "authorized")
    assert json_of(client.get(f"{PAYMENTS}/{payment['id']}", headers=billing))["status"] == (
        "authorized"
    )
