"""The ICCID mapping handoff: sent at dispatch with the partner's key, its faults (never sent,
wrong ICCID, sent twice, late), retries, and an ICCID_UNMAPPED activation traced back to the
shipment that caused it through the journal and the audit trail."""

from __future__ import annotations

import json

from conftest import ORDERS, conforms, order_body, settle

from .conftest import (
    ALPHA,
    DAY,
    HOUR,
    MAPPINGS,
    SHIPMENTS,
    add_fault,
    data_fault,
    get_shipment,
    mapping_at_mvne,
    produce,
    ship,
)


def loaded(client, runtime, quantity=3):
    batch = produce(client, runtime, quantity=quantity)
    assert batch["state"] == "loaded", batch
    return batch


def test_the_mapping_is_sent_when_the_sim_leaves_the_warehouse(client, runtime, network):
    loaded(client, runtime)
    created = client.post(
        SHIPMENTS,
        json={
            "accountId": "acct-7",
            "subscriberName": "Pat Doe",
            "addressTo": {"line1": "1 Rd", "city": "Leeds", "postalCode": "LS1", "country": "GB"},
        },
        headers={**ALPHA, "X-Correlation-ID": "shop-order-7"},
    ).get_json()
    assert mapping_at_mvne(client, created["iccid"]) is None
    settle(runtime, 6 * HOUR)
    sent = get_shipment(client, created["id"])
    assert sent["mappingStatus"] == "sent" and sent["mapping"]["iccid"] == created["iccid"]
    assert sent["mapping"]["correlationId"] == "shop-order-7"
    assert sent["mapping"]["sentDate"] == sent["dispatchDate"]
    assert [(c["method"], c["httpStatus"]) for c in sent["mapping"]["calls"]] == [("PUT", 201)]
    mapped = mapping_at_mvne(client, created["iccid"])
    assert (mapped["accountId"], mapped["shipmentId"]) == ("acct-7", created["id"])
    journal = client.get("/__admin/journal?correlationId=shop-order-7&direction=outbound")
    calls = [(e["method"], e["url"]) for e in journal.get_json() if e["role"] == "fulfillment"]
    assert calls == [("PUT", f"http://127.0.0.1:8700{MAPPINGS}/{created['iccid']}")]
    assert conforms(client.get(f"{SHIPMENTS}?mappingStatus=sent", headers=ALPHA),
                    "fulfillment", "listShipments")[0]["id"] == created["id"]  # fmt: skip


def test_a_mapping_never_sent(client, runtime, network):
    loaded(client, runtime)
    client.post("/__admin/scenarios/iccid-never-mapped")
    created = ship(client)
    settle(runtime, 3 * DAY)
    delivered = get_shipment(client, created["id"])
    assert delivered["status"] == "Delivered" and delivered["mappingStatus"] == "notSent"
    assert delivered["mapping"]["calls"] == []
    assert mapping_at_mvne(client, created["iccid"]) is None
    listed = client.get(f"{SHIPMENTS}?mappingStatus=notSent", headers=ALPHA).get_json()
    assert [s["id"] for s in listed] == [created["id"]]


def test_a_mapping_sent_for_the_neighbouring_iccid(client, runtime, network):
    batch = loaded(client, runtime)
    add_fault(client, {**data_fault("createShipment", "MAPPING_WRONG_ICCID"),
                       "dosage": {"firstN": 1}})  # fmt: skip
    first = ship(client, accountId="acct-1")
    second = ship(client, accountId="acct-2")  # gets the neighbour the first mapping named
    settle(runtime, 6 * HOUR)
    wrong = get_shipment(client, first["id"])
    assert wrong["mappingStatus"] == "sent" and wrong["mapping"]["iccid"] == second["iccid"]
    assert mapping_at_mvne(client, first["iccid"]) is None
    assert mapping_at_mvne(client, second["iccid"])["accountId"] == "acct-1"
    refused = get_shipment(client, second["id"])
    assert refused["mappingStatus"] == "failed"
    assert refused["mapping"]["code"] == "ICCID_MAPPED_TO_OTHER_ACCOUNT"
    # Whoever looks up the neighbour finds both shipments.
    both = client.get(f"{SHIPMENTS}?iccid={second['iccid']}", headers=ALPHA).get_json()
    assert [s["id"] for s in both] == [first["id"], second["id"]]
    # The last SIM of the batch has no neighbour in the MVNE's inventory at all.
    add_fault(client, data_fault("createShipment", "MAPPING_WRONG_ICCID"))
    last = ship(client, iccid=batch["lastIccid"])
    settle(runtime, 6 * HOUR)
    assert get_shipment(client, last["id"])["mapping"]["code"] == "ICCID_NOT_IN_INVENTORY"


def test_a_mapping_sent_twice_is_a_repeat_the_mvne_answers_200(client, runtime, network):
    loaded(client, runtime)
    add_fault(client, data_fault("createShipment", "MAPPING_SENT_TWICE"))
    created = ship(client)
    settle(runtime, 6 * HOUR)
    twice = get_shipment(client, created["id"])
    assert twice["mappingStatus"] == "sent"
    assert [c["httpStatus"] for c in twice["mapping"]["calls"]] == [201, 200]
    records = client.get(f"/__admin/audit?entityId={created['iccid']}").get_json()
    assert [r["action"] for r in records if r["role"] == "fulfillment"].count("mapping.sent") == 2


def test_a_late_mapping_arrives_after_the_delivery(client, runtime, network):
    loaded(client, runtime)
    add_fault(client, data_fault("createShipment", "MAPPING_LATE", delaySeconds=2 * HOUR))
    created = ship(client)
    settle(runtime, 52 * HOUR)
    delivered = get_shipment(client, created["id"])
    assert delivered["status"] == "Delivered" and delivered["mappingStatus"] == "pending"
    assert delivered["mapping"]["dueDate"] == "2026-03-04T18:00:00.000Z"
    assert mapping_at_mvne(client, created["iccid"]) is None
    settle(runtime, 2 * HOUR)
    assert get_shipment(client, created["id"])["mappingStatus"] == "sent"
    assert mapping_at_mvne(client, created["iccid"])["accountId"] == "acct-1001"


def test_the_mapping_is_retried_while_the_mvne_is_down(client, runtime, network, outages):
    loaded(client, runtime)
    outages.outage("PUT", MAPPINGS, 503)
    created = ship(client)
    settle(runtime, 6 * HOUR + 10)
    retrying = get_shipment(client, created["id"])
    assert retrying["mappingStatus"] == "pending"
    assert {c["httpStatus"] for c in retrying["mapping"]["calls"]} == {503}
    outages.restore()
    settle(runtime, HOUR)
    sent = get_shipment(client, created["id"])
    assert sent["mappingStatus"] == "sent" and sent["mapping"]["calls"][-1]["httpStatus"] == 201


def test_a_mapping_the_mvne_never_answers_fails(client, runtime, network, outages):
    loaded(client, runtime)
    outages.outage("PUT", MAPPINGS, 502)
    created = ship(client)
    settle(runtime, 2 * DAY)
    failed = get_shipment(client, created["id"])
    assert failed["mappingStatus"] == "failed" and failed["mapping"]["code"] == "MVNE_UNREACHABLE"
    assert len(failed["mapping"]["calls"]) == 8


def test_an_iccid_unmapped_activation_is_traced_to_its_shipment(client, runtime, network):
    """Start from the subscriber's refused activation and find the shipment that caused it,
    with nothing but the journal, the audit trail and fulfillment's own API."""
    loaded(client, runtime)
    client.post("/__admin/scenarios/iccid-never-mapped")
    shipped = ship(client, accountId="acct-pat")
    settle(runtime, 3 * DAY)

    activation = client.post(ORDERS, json=order_body(shipped["iccid"], "pat-activation"),
                             headers={**ALPHA, "X-Correlation-ID": "pat-activation"})  # fmt: skip
    assert activation.status_code == 422 and activation.get_json()["code"] == "ICCID_UNMAPPED"

    # 1. The journal: the refused activation, and the ICCID the subscriber tried.
    journal = client.get("/__admin/journal?correlationId=pat-activation").get_json()
    refused = next(e for e in journal if e["role"] == "mvne" and e["status"] == 422)
    characteristics = json.loads(refused["requestBody"])["productOrderItem"][0]["product"]
    iccid = next(c["value"] for c in characteristics["productCharacteristic"]
                 if c["name"] == "ICCID")  # fmt: skip
    assert json.loads(refused["responseBody"])["code"] == "ICCID_UNMAPPED"

    # 2. The audit trail by ICCID: fulfillment allocated, dispatched and delivered it, and
    #    never sent its mapping.
    records = client.get(f"/__admin/audit?entityId={iccid}").get_json()
    ours = [r for r in records if r["role"] == "fulfillment"]
    assert [r["action"] for r in ours] == [
        "sim.allocated", "sim.dispatched", "mapping.notSent", "sim.delivered"]  # fmt: skip
    shipment_ids = {r["details"]["shipmentId"] for r in ours}
    assert len(shipment_ids) == 1

    # 3. The shipment, found by the ICCID: it says the mapping never left, and under its
    #    correlation ID no mapping call went to the MVNE.
    found = conforms(client.get(f"{SHIPMENTS}?iccid={iccid}", headers=ALPHA), "fulfillment",
                     "listShipments")  # fmt: skip
    assert [s["id"] for s in found] == list(shipment_ids) == [shipped["id"]]
    shipment = found[0]
    assert (shipment["accountId"], shipment["mappingStatus"]) == ("acct-pat", "notSent")
    cid = shipment["mapping"]["correlationId"]
    calls = client.get(f"/__admin/journal?correlationId={cid}&direction=outbound").get_json()
    assert not [e for e in calls if "/iccidMappings/" in e["url"]]


# --- the subscriber activates at the MVNE --------------------------------------------------------


def activate(client, runtime, iccid, external_id):
    created = client.post(ORDERS, json=order_body(iccid, external_id), headers=ALPHA)
    settle(runtime)
    settle(runtime, 5)
    return created


def test_a_shipped_and_mapped_sim_activates_at_the_mvne(client, runtime, network):
    loaded(client, runtime)
    created = ship(client)
    settle(runtime, 3 * DAY)
    assert get_shipment(client, created["id"])["mappingStatus"] == "sent"
    activation = activate(client, runtime, created["iccid"], "mapped-1")
    assert activation.status_code == 201, activation.get_json()
    order = client.get(f"{ORDERS}/{activation.get_json()['id']}", headers=ALPHA).get_json()
    assert order["state"] == "completed"


def test_the_mvne_refusal_names_the_batch_of_an_unmapped_sim(client, runtime, network):
    batch = loaded(client, runtime)
    add_fault(client, data_fault("createShipment", "MAPPING_NOT_SENT"))
    created = ship(client)
    settle(runtime, 3 * DAY)
    refused = activate(client, runtime, created["iccid"], "unmapped-1")
    assert refused.get_json()["code"] == "ICCID_UNMAPPED"
    assert batch["batchNumber"] in refused.get_json()["detail"]


def test_an_activation_before_a_late_mapping_fails_and_after_it_passes(client, runtime, network):
    loaded(client, runtime)
    add_fault(client, data_fault("createShipment", "MAPPING_LATE", delaySeconds=DAY))
    created = ship(client)
    settle(runtime, 3 * DAY)
    early = activate(client, runtime, created["iccid"], "late-1")
    assert early.get_json()["code"] == "ICCID_UNMAPPED"
    settle(runtime, DAY)
    assert activate(client, runtime, created["iccid"], "late-2").status_code == 201


def test_a_returned_sim_already_active_is_quarantined(client, runtime, network):
    loaded(client, runtime)
    created = ship(client)
    settle(runtime, 3 * DAY)
    assert activate(client, runtime, created["iccid"], "active-1").status_code == 201
    client.post(f"{SHIPMENTS}/{created['id']}/return", json={"condition": "intact"},
                headers=ALPHA)  # fmt: skip
    settle(runtime)
    after = get_shipment(client, created["id"])
    assert after["return"]["stockOutcome"] == "quarantined"
    assert after["mapping"]["code"] == "SIM_NOT_AVAILABLE"
