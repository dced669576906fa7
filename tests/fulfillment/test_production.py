"""SIM production over HTTP: the vendor's answer on the clock, the vendor file, the load into
the MVNE and its refusals naming the row, retries, exactly-once loads, tenancy, events."""

from __future__ import annotations

import pytest
from conftest import PARTNER_HOOKS, conforms, settle
from standardwebhooks import Webhook

from simulators.core.outbox import webhook_secret
from simulators.fulfillment import mvne, vendor

from .conftest import (
    ALPHA,
    BRAVO,
    HOUR,
    HUB,
    ORDERS,
    STOCK,
    add_fault,
    data_fault,
    get_order,
    order,
    produce,
)


def vendor_file(client, order_id, headers=ALPHA):
    return client.get(f"{ORDERS}/{order_id}/vendorFile", headers=headers)


def test_a_batch_is_produced_and_loaded_on_the_clock(client, runtime, network):
    created = order(client, quantity=3, externalId="po-7")
    assert created["state"] == "acknowledged" and created["customer"] == "mvno-alpha"
    assert created["batchNumber"] == "B20260302-0001" and created["loadAttempts"] == 0
    not_yet = conforms(vendor_file(client, created["id"]), "fulfillment", "getVendorFile")
    assert not_yet["code"] == "VENDOR_FILE_NOT_READY"
    settle(runtime, 5 * 60)
    assert get_order(client, created["id"])["state"] == "inProduction"
    settle(runtime, 2 * HOUR)
    loaded = get_order(client, created["id"])
    assert [c["state"] for c in loaded["stateChange"]] == [
        "acknowledged", "inProduction", "produced", "loading", "loaded"]  # fmt: skip
    assert loaded["loadAttempts"] == 1 and loaded["simBatch"]["batchNumber"] == "B20260302-0001"
    assert loaded["simBatch"]["sha256"] == loaded["vendorFile"]["sha256"]
    assert loaded["vendorFile"]["rows"] == 3 and "loadError" not in loaded

    downloaded = vendor_file(client, created["id"])
    assert downloaded.status_code == 200 and downloaded.mimetype == "text/plain"
    text = downloaded.get_data(as_text=True)
    assert vendor.sha256(text) == loaded["vendorFile"]["sha256"]
    assert vendor.header(text)["Ser_Nb"] == loaded["firstIccid"]
    rows = list(vendor.read_rows(text))
    assert [row.iccid for row in rows][-1] == loaded["lastIccid"]

    stock = conforms(client.get(STOCK, headers=ALPHA), "fulfillment", "listStock")
    assert [sim["iccid"] for sim in stock] == [row.iccid for row in rows]
    assert {sim["state"] for sim in stock} == {"available"}
    one = conforms(client.get(f"{STOCK}/{rows[0].iccid}", headers=ALPHA), "fulfillment",
                   "getStockItem")  # fmt: skip
    assert one["productionOrderId"] == created["id"] and one["imsi"] == rows[0].imsi


def test_esim_profiles_come_with_activation_codes(client, runtime, network):
    loaded = produce(client, runtime, profileType="eSIM", quantity=2)
    assert loaded["state"] == "loaded"
    stock = client.get(f"{STOCK}?profileType=eSIM", headers=ALPHA).get_json()
    profiles = [sim["esimProfile"] for sim in stock]
    assert [p["state"] for p in profiles] == ["available", "available"]
    assert all(p["activationCode"] == f"LPA:1$smdp.handoff.example${p['matchingId']}"
               for p in profiles)  # fmt: skip
    assert client.get(f"{STOCK}?profileType=UICC", headers=ALPHA).get_json() == []


def test_bad_orders_are_refused_and_change_nothing(client):
    for body, field_name in (
        ({"profileType": "UICC", "quantity": 0}, "quantity"),
        ({"profileType": "UICC", "quantity": 100_001}, "quantity"),
        ({"profileType": "SIM", "quantity": 1}, "profileType"),
        ({"profileType": "UICC", "quantity": 1, "firstIccid": "8944770000000000018"},
         "firstIccid"),
        ({"profileType": "UICC", "quantity": 1, "firstImsi": "0010100001000000"}, "firstImsi"),
        ({"profileType": "UICC", "quantity": 1, "batchNumber": "b-lower"}, "batchNumber"),
    ):  # fmt: skip
        refused = client.post(ORDERS, json=body, headers=ALPHA)
        assert conforms(refused, "fulfillment", "createProductionOrder")["field"] == field_name
        assert refused.status_code == 400
    order(client, batchNumber="B-ONE")
    again = client.post(ORDERS, json={"profileType": "UICC", "quantity": 1,
                                      "batchNumber": "B-ONE"}, headers=ALPHA)  # fmt: skip
    assert conforms(again, "fulfillment", "createProductionOrder")["code"] == "BATCH_NUMBER_EXISTS"
    listed = conforms(client.get(ORDERS, headers=ALPHA), "fulfillment", "listProductionOrders")
    assert [o["batchNumber"] for o in listed] == ["B-ONE"]


def test_an_external_id_is_an_idempotency_key(client):
    first = order(client, externalId="po-1")
    replay = client.post(ORDERS, json={"profileType": "UICC", "quantity": 5,
                                       "externalId": "po-1"}, headers=ALPHA)  # fmt: skip
    assert replay.status_code == 201 and replay.get_json()["id"] == first["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = client.post(ORDERS, json={"profileType": "UICC", "quantity": 6,
                                      "externalId": "po-1"}, headers=ALPHA)  # fmt: skip
    assert other.status_code == 422 and other.get_json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    keyed = client.post(ORDERS, json={"profileType": "UICC", "quantity": 6, "externalId": "po-1"},
                        headers={**ALPHA, "Idempotency-Key": "k-2"})  # fmt: skip
    assert conforms(keyed, "fulfillment", "createProductionOrder")["code"] == "EXTERNAL_ID_EXISTS"


def test_a_partner_sees_only_its_own_batches(client, runtime, network):
    mine = produce(client, runtime, quantity=2)
    for path in (f"{ORDERS}/{mine['id']}", f"{ORDERS}/{mine['id']}/vendorFile",
                 f"{STOCK}/{mine['firstIccid']}"):  # fmt: skip
        answer = client.get(path, headers=BRAVO)
        assert answer.status_code == 404, path
    assert client.get(ORDERS, headers=BRAVO).get_json() == []
    assert client.get(STOCK, headers=BRAVO).get_json() == []
    assert client.get(ORDERS).status_code == 401


@pytest.mark.parametrize(
    "fault,effect,code,row",
    [
        ("VENDOR_FILE_OFF_BY_ONE", {}, "RANGE_BROKEN", 1),
        ("VENDOR_FILE_OFF_BY_ONE", {"row": 3}, "RANGE_BROKEN", 3),
        ("VENDOR_FILE_NO_CHECK_DIGIT", {"row": 2}, "ICCID_CHECK_DIGIT", 2),
        ("VENDOR_FILE_LONG_IMSI", {}, "IMSI_INVALID", 1),
        ("VENDOR_FILE_ROW_COUNT", {}, "QUANTITY_MISMATCH", 5),
    ],
)
def test_a_defective_vendor_file_is_rejected_naming_the_row(
    client, runtime, network, fault, effect, code, row
):
    add_fault(client, data_fault("createProductionOrder", fault, **effect))
    rejected = produce(client, runtime, quantity=4)
    assert rejected["state"] == "rejected", rejected
    error = rejected["loadError"]
    assert (error["code"], error["status"], error["row"]) == (code, 422, row)
    assert rejected["stateChange"][-1]["changeReason"] == (
        f"The MVNE refused the file: {code} (row {row})"
    )
    assert client.get(STOCK, headers=ALPHA).get_json() == []


def test_a_reused_batch_number_is_refused_by_the_mvne(client, runtime, network):
    first = produce(client, runtime, quantity=2)
    add_fault(client, data_fault("createProductionOrder", "VENDOR_FILE_DUPLICATE_BATCH"))
    second = produce(client, runtime, quantity=2)
    assert second["vendorFile"]["batchNumber"] == first["batchNumber"]
    assert (second["state"], second["loadError"]["code"]) == ("rejected", "BATCH_NUMBER_REUSED")
    stock = client.get(STOCK, headers=ALPHA).get_json()
    assert {sim["batchNumber"] for sim in stock} == {first["batchNumber"]}


def test_a_rejected_range_is_free_again(client, runtime, network):
    add_fault(client, data_fault("createProductionOrder", "VENDOR_FILE_LONG_IMSI"))
    rejected = produce(client, runtime, quantity=2)
    client.delete("/__admin/faults")
    again = produce(client, runtime, quantity=2, firstIccid=rejected["firstIccid"],
                    firstImsi=rejected["firstImsi"])  # fmt: skip
    assert again["state"] == "loaded"


def test_the_load_is_retried_while_the_mvne_is_down(client, runtime, network, outages):
    outages.outage("PUT", "/mvne/v1/simBatches", 503)
    created = order(client, quantity=2)
    settle(runtime, 2 * HOUR + 5 * 60)
    loading = get_order(client, created["id"])
    assert loading["state"] == "loading" and loading["loadAttempts"] >= 1
    outages.restore()
    settle(runtime, HOUR)
    loaded = get_order(client, created["id"])
    assert loaded["state"] == "loaded" and loaded["loadAttempts"] >= 2
    assert len(client.get(STOCK, headers=ALPHA).get_json()) == 2


def test_a_load_that_never_gets_an_answer_fails(client, runtime, network, outages):
    outages.outage("PUT", "/mvne/v1/simBatches", 502)
    created = order(client, quantity=2)
    settle(runtime, 3 * 24 * HOUR)
    failed = get_order(client, created["id"])
    assert failed["state"] == "failed" and failed["loadAttempts"] == 8
    assert failed["loadError"]["code"] == "MVNE_UNREACHABLE"


def test_a_file_loaded_but_not_recorded_is_loaded_once(client, runtime, network, outages):
    """The MVNE took the file but fulfillment never learnt it (the answer was lost, or the
    process restarted mid-load): the retry sends the same file, the MVNE recognises it by
    its SHA-256, and the stock holds each SIM once."""
    outages.outage("PUT", "/mvne/v1/simBatches", 503)
    created = order(client, quantity=3)
    settle(runtime, 2 * HOUR + 5 * 60)
    assert get_order(client, created["id"])["state"] == "loading"
    outages.restore()
    text = vendor_file(client, created["id"]).get_data(as_text=True)
    lost = mvne.load_batch(runtime, "mvno-alpha", created["batchNumber"], text, "lost-answer")
    assert lost.status == 201
    settle(runtime, HOUR)
    loaded = get_order(client, created["id"])
    assert loaded["state"] == "loaded"
    assert len(client.get(STOCK, headers=ALPHA).get_json()) == 3
    journal = client.get("/__admin/journal?role=fulfillment&direction=outbound").get_json()
    answers = [e["status"] for e in journal if "/simBatches/" in e["url"] and e["status"] != 503]
    assert answers == [201, 200]  # the lost answer, then the MVNE's "already loaded"
    batch = client.get(f"/mvne/v1/simBatches/{created['batchNumber']}", headers=ALPHA)
    assert batch.get_json()["sha256"] == loaded["vendorFile"]["sha256"]


def test_production_events_are_signed_callbacks(client, runtime, network, hooks):
    hub = client.post(HUB, json={"callback": f"{PARTNER_HOOKS}/fulfillment",
                                 "query": "eventType=ProductionOrderCreateEvent,"
                                          "ProductionOrderStateChangeEvent"},
                      headers=ALPHA)  # fmt: skip
    registered = conforms(hub, "fulfillment", "registerFulfillmentListener")
    assert registered["secret"] == webhook_secret(runtime.settings.secret_key, registered["id"])
    produce(client, runtime, quantity=1)
    order(client, BRAVO, quantity=1)  # another partner's: not delivered to Alpha's hub
    settle(runtime)
    received = [event for event in hooks.events() if event["domain"] == "fulfillment"]
    states = [e["event"]["productionOrder"]["state"] for e in received]
    assert states == ["acknowledged", "inProduction", "produced", "loading", "loaded"]
    assert received[0]["eventType"] == "ProductionOrderCreateEvent"
    assert all(e["event"]["productionOrder"]["customer"] == "mvno-alpha" for e in received)
    delivery = hooks.received[0]
    assert delivery.url.endswith("/fulfillment/listener/productionOrderCreateEvent")
    Webhook(registered["secret"]).verify(delivery.body, delivery.headers)
    listener = client.get(f"{HUB}/{registered['id']}", headers=ALPHA)
    assert conforms(listener, "fulfillment", "getFulfillmentListener")["id"] == registered["id"]
    assert client.get(f"{HUB}/{registered['id']}", headers=BRAVO).status_code == 404
    assert client.delete(f"{HUB}/{registered['id']}", headers=ALPHA).status_code == 204
    assert client.get(f"{HUB}/{registered['id']}", headers=ALPHA).status_code == 404
