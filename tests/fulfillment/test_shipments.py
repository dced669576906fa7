"""Shipments over HTTP: allocation from loaded stock, the carrier on the clock, the shipping
SLA, failed attempts, returns to stock or quarantine, lost parcels, eSIM profiles."""

from __future__ import annotations

import re

import pytest
from conftest import PARTNER_HOOKS, T0, conforms, settle

from simulators.core.identifiers import eid_check_digits

from .conftest import (
    ADDRESS,
    ALPHA,
    BRAVO,
    DAY,
    HOUR,
    HUB,
    SHIPMENTS,
    STOCK,
    add_fault,
    data_fault,
    get_shipment,
    mapping_at_mvne,
    produce,
    ship,
)

EID = "89049032" + "0" * 21 + "1"
EID = EID[:30] + eid_check_digits(EID[:30])
OTHER_EID = "89049032" + "0" * 20 + "22"
OTHER_EID = OTHER_EID[:30] + eid_check_digits(OTHER_EID[:30])


@pytest.fixture
def stock(client, runtime, network):
    """Three UICCs loaded into the MVNE and in Alpha's stock."""
    loaded = produce(client, runtime, quantity=3)
    assert loaded["state"] == "loaded", loaded
    return loaded


def sim(client, iccid, headers=ALPHA):
    return conforms(client.get(f"{STOCK}/{iccid}", headers=headers), "fulfillment",
                    "getStockItem")  # fmt: skip


def listed(client, query, headers=ALPHA):
    answer = client.get(f"{SHIPMENTS}?{query}", headers=headers)
    return [s["id"] for s in conforms(answer, "fulfillment", "listShipments")]


def s10_valid(code):
    match = re.fullmatch(r"[A-Z]{2}([0-9]{8})([0-9])[A-Z]{2}", code)
    assert match, code
    total = sum(int(d) * w for d, w in zip(match[1], (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    return int(match[2]) == (0 if check == 10 else 5 if check == 11 else check)


def test_a_standard_shipment_is_tracked_to_the_door(client, runtime, stock):
    created = ship(client, externalId="order-1", subscriberName="Pat Doe")
    assert created["status"] == "InfoReceived" and created["iccid"] == stock["firstIccid"]
    assert created["serviceLevel"] == "standard" and s10_valid(created["trackingCode"])
    assert created["mappingStatus"] == "pending" and created["mapping"]["calls"] == []
    assert sim(client, created["iccid"])["state"] == "allocated"
    settle(runtime, 6 * HOUR)
    picked = get_shipment(client, created["id"])
    assert picked["status"] == "InTransit" and "dispatchDate" in picked
    assert sim(client, created["iccid"])["state"] == "shipped"
    settle(runtime, 46 * HOUR)
    done = get_shipment(client, created["id"])
    assert [c["status"] for c in done["checkpoint"]] == [
        "InfoReceived", "InTransit", "InTransit", "OutForDelivery", "Delivered"]  # fmt: skip
    # Created at 12:00 (the batch took three hours), delivered 52 hours later.
    assert done["deliveryDate"] == "2026-03-04T16:00:00.000Z" == done["estimatedDeliveryDate"]
    assert done["deliveryAttempts"] == 1 and not done["slaBreached"]
    assert sim(client, created["iccid"])["state"] == "delivered"
    settle(runtime, DAY)
    assert not get_shipment(client, created["id"])["sla"]["breached"]


def test_each_status_change_is_a_signed_event(client, runtime, stock, hooks):
    client.post(HUB, json={"callback": f"{PARTNER_HOOKS}/f",
                           "query": "eventType=ShipmentCreateEvent,ShipmentStateChangeEvent"},
                headers=ALPHA)  # fmt: skip
    created = ship(client)
    settle(runtime, 3 * DAY)
    events = [e for e in hooks.events() if e["domain"] == "fulfillment"]
    assert [(e["eventType"], e["event"]["shipment"]["status"]) for e in events] == [
        ("ShipmentCreateEvent", "InfoReceived"), ("ShipmentStateChangeEvent", "InTransit"),
        ("ShipmentStateChangeEvent", "OutForDelivery"), ("ShipmentStateChangeEvent", "Delivered"),
    ]  # fmt: skip
    assert {e["event"]["shipment"]["id"] for e in events} == {created["id"]}
    assert {e["correlationId"] for e in events} == {events[0]["correlationId"]}


def test_the_carrier_is_reproducible_for_a_seed(client, runtime, network):
    def first_tracking_code():
        produce(client, runtime, quantity=1)
        return ship(client)["trackingCode"]

    code = first_tracking_code()
    for reset, same in (("/__admin/reset", True), ("/__admin/seed", False)):
        assert client.post(reset, json={"seed": 7} if not same else {}).status_code == 200
        runtime.clock.set(T0, frozen=True)
        assert (first_tracking_code() == code) is same


def test_a_failed_attempt_breaches_an_express_promise(client, runtime, stock):
    add_fault(client, {**data_fault("createShipment", "CARRIER_ATTEMPT_FAIL"),
                       "dosage": {"firstN": 1}})  # fmt: skip
    late = ship(client, serviceLevel="express", accountId="acct-late")
    on_time = ship(client, serviceLevel="express", accountId="acct-on-time")
    settle(runtime, 22 * HOUR)
    failed = get_shipment(client, late["id"])
    assert failed["status"] == "AttemptFail" and failed["deliveryAttempts"] == 1
    assert failed["estimatedDeliveryDate"] == "2026-03-04T10:00:00.000Z"  # same time tomorrow
    settle(runtime, 3 * HOUR)
    breached = get_shipment(client, late["id"])
    assert breached["slaBreached"] and breached["sla"]["breachDate"] == "2026-03-03T12:00:00.000Z"
    assert listed(client, "slaBreached=true") == [late["id"]]
    assert listed(client, "slaBreached=false") == [on_time["id"]]
    settle(runtime, DAY)
    delivered = get_shipment(client, late["id"])
    assert delivered["status"] == "Delivered" and delivered["deliveryAttempts"] == 2
    assert [c["status"] for c in delivered["checkpoint"]][-4:] == [
        "OutForDelivery", "AttemptFail", "OutForDelivery", "Delivered"]  # fmt: skip
    assert delivered["slaBreached"]


def test_three_failed_attempts_send_the_sim_back_to_stock(client, runtime, stock):
    add_fault(client, data_fault("createShipment", "CARRIER_ATTEMPT_FAIL", count=3))
    created = ship(client)
    settle(runtime, 5 * DAY)
    back = get_shipment(client, created["id"])
    assert back["status"] == "Exception" and back["deliveryAttempts"] == 3
    assert back["return"]["state"] == "inTransit" and back["slaBreached"]
    settle(runtime, 2 * DAY)
    received = get_shipment(client, created["id"])
    assert received["return"]["condition"] == "intact"
    assert received["return"]["stockOutcome"] == "restocked"
    # The SIM goes back to stock only once the MVNE no longer maps it to that account.
    assert received["mappingStatus"] == "withdrawn"
    assert [call["method"] for call in received["mapping"]["calls"]] == ["PUT", "DELETE"]
    assert sim(client, created["iccid"])["state"] == "available"
    assert mapping_at_mvne(client, created["iccid"]) is None
    again = ship(client, iccid=created["iccid"], accountId="acct-2")
    assert again["iccid"] == created["iccid"]


def test_a_damaged_parcel_puts_its_sim_in_quarantine_for_good(client, runtime, stock):
    add_fault(client, data_fault("createShipment", "CARRIER_EXCEPTION"))
    created = ship(client)
    settle(runtime, 4 * DAY)
    back = get_shipment(client, created["id"])
    assert back["status"] == "Exception" and "Damaged" in back["statusReason"]
    assert back["return"]["condition"] == "damaged"
    assert back["return"]["stockOutcome"] == "quarantined"
    assert back["mappingStatus"] == "withdrawn"  # nobody can activate the damaged card
    quarantined = sim(client, created["iccid"])
    assert quarantined["state"] == "quarantined" and "damaged" in quarantined["stateReason"]
    refused = client.post(SHIPMENTS, json={"accountId": "a", "addressTo": ADDRESS,
                                           "iccid": created["iccid"]}, headers=ALPHA)  # fmt: skip
    assert conforms(refused, "fulfillment", "createShipment")["code"] == "SIM_NOT_AVAILABLE"


def test_a_parcel_the_carrier_stops_scanning_expires_and_its_sim_is_lost(client, runtime, stock):
    add_fault(client, data_fault("createShipment", "CARRIER_EXPIRED"))
    created = ship(client, serviceLevel="economy")
    settle(runtime, 20 * DAY)
    assert get_shipment(client, created["id"])["status"] == "InTransit"
    settle(runtime, 11 * DAY)
    expired = get_shipment(client, created["id"])
    assert expired["status"] == "Expired" and expired["slaBreached"]
    assert expired["mappingStatus"] == "withdrawn"
    assert sim(client, created["iccid"])["state"] == "lost"


@pytest.mark.parametrize(
    "condition,outcome,state",
    [("intact", "restocked", "available"), ("damaged", "quarantined", "quarantined")],
)
def test_a_subscriber_return(client, runtime, stock, condition, outcome, state):  # fmt: skip
    created = ship(client)
    early = client.post(f"{SHIPMENTS}/{created['id']}/return", json={"condition": condition},
                        headers=ALPHA)  # fmt: skip
    assert conforms(early, "fulfillment", "returnShipment")["code"] == "SHIPMENT_NOT_DELIVERED"
    settle(runtime, 3 * DAY)
    answer = client.post(f"{SHIPMENTS}/{created['id']}/return",
                         json={"condition": condition, "reason": "Wrong plan"},
                         headers=ALPHA)  # fmt: skip
    returned = conforms(answer, "fulfillment", "returnShipment")
    assert (returned["return"]["state"], returned["return"]["reason"]) == ("received", "Wrong plan")
    settle(runtime)
    after = get_shipment(client, created["id"])
    assert after["return"]["stockOutcome"] == outcome and after["mappingStatus"] == "withdrawn"
    assert sim(client, created["iccid"])["state"] == state
    twice = client.post(f"{SHIPMENTS}/{created['id']}/return", json={"condition": "intact"},
                        headers=ALPHA)  # fmt: skip
    assert twice.status_code == 409 and twice.get_json()["code"] == "RETURN_EXISTS"


def test_shipments_that_cannot_be_made_are_refused(client, runtime, network):
    for body, code in (
        ({"accountId": "a", "addressTo": ADDRESS}, "OUT_OF_STOCK"),
        ({"accountId": "a"}, "ADDRESS_REQUIRED"),
        ({"accountId": "a", "addressTo": ADDRESS, "serviceLevel": "digital"},
         "SERVICE_LEVEL_NOT_AVAILABLE"),
        ({"accountId": "a", "profileType": "eSIM", "serviceLevel": "express"},
         "SERVICE_LEVEL_NOT_AVAILABLE"),
        ({"accountId": "a", "addressTo": ADDRESS, "eid": EID}, "EID_NOT_APPLICABLE"),
        ({"accountId": "a", "profileType": "eSIM", "eid": EID[:-1] + "0"}, "EID_INVALID"),
        ({"accountId": "a", "addressTo": ADDRESS, "iccid": "8944770010000000008"},
         "ICCID_NOT_IN_STOCK"),
    ):  # fmt: skip
        refused = client.post(SHIPMENTS, json=body, headers=ALPHA)
        assert conforms(refused, "fulfillment", "createShipment")["code"] == code, body
    produce(client, runtime, quantity=1)
    esim = client.post(SHIPMENTS, json={"accountId": "a", "profileType": "eSIM"}, headers=ALPHA)
    assert esim.get_json()["code"] == "OUT_OF_STOCK"
    iccid = client.get(STOCK, headers=ALPHA).get_json()[0]["iccid"]
    mismatch = client.post(SHIPMENTS, json={"accountId": "a", "profileType": "eSIM",
                                            "iccid": iccid}, headers=ALPHA)  # fmt: skip
    assert mismatch.get_json()["code"] == "PROFILE_TYPE_MISMATCH"
    theirs = client.post(SHIPMENTS, json={"accountId": "a", "addressTo": ADDRESS,
                                          "iccid": iccid}, headers=BRAVO)  # fmt: skip
    assert theirs.get_json()["code"] == "ICCID_NOT_IN_STOCK"
    assert client.get(SHIPMENTS, headers=ALPHA).get_json() == []


def test_a_partner_sees_only_its_own_shipments(client, runtime, stock):
    created = ship(client, externalId="order-9")
    assert client.get(f"{SHIPMENTS}/{created['id']}", headers=BRAVO).status_code == 404
    assert client.get(f"{SHIPMENTS}?iccid={created['iccid']}", headers=BRAVO).get_json() == []
    assert listed(client, "externalId=order-9") == [created["id"]]
    assert listed(client, "accountId=acct-1001&status=InfoReceived") == [created["id"]]
    refused = client.post(f"{SHIPMENTS}/{created['id']}/return", json={"condition": "intact"},
                          headers=BRAVO)  # fmt: skip
    assert refused.status_code == 404


def test_an_esim_profile_is_released_downloaded_installed_and_enabled(client, runtime, network):
    produce(client, runtime, profileType="eSIM", quantity=2)
    created = ship(client, profileType="eSIM", eid=EID, email="pat@example.com")
    assert created["serviceLevel"] == "digital" and created["carrier"] == "SM-DP+ e-mail"
    profile = created["esimProfile"]
    assert (profile["state"], profile["eid"]) == ("allocated", EID)
    download = f"{STOCK}/{created['iccid']}/download"
    body = {"eid": EID, "matchingId": profile["matchingId"]}
    early = client.post(download, json=body, headers=ALPHA)
    assert conforms(early, "fulfillment", "downloadEsimProfile")["code"] == "PROFILE_NOT_RELEASED"
    settle(runtime, 2 * 60)
    delivered = get_shipment(client, created["id"])
    assert delivered["status"] == "Delivered" and delivered["esimProfile"]["state"] == "released"
    assert delivered["mappingStatus"] == "sent"
    for wrong, code in (
        ({**body, "matchingId": "WRONG-1"}, "MATCHING_ID_MISMATCH"),
        ({**body, "eid": EID[:-1] + ("0" if EID[-1] != "0" else "1")}, "EID_INVALID"),
        ({**body, "eid": OTHER_EID}, "EID_MISMATCH"),
    ):  # fmt: skip
        refused = client.post(download, json=wrong, headers=ALPHA)
        assert conforms(refused, "fulfillment", "downloadEsimProfile")["code"] == code
    assert client.post(download, json=body, headers=BRAVO).status_code == 404
    downloaded = conforms(client.post(download, json=body, headers=ALPHA), "fulfillment",
                          "downloadEsimProfile")  # fmt: skip
    assert downloaded["esimProfile"]["state"] == "downloaded"
    settle(runtime, 30)
    assert get_shipment(client, created["id"])["esimProfile"]["state"] == "installed"
    settle(runtime, 30)
    assert get_shipment(client, created["id"])["esimProfile"]["state"] == "enabled"
    again = client.post(download, json=body, headers=ALPHA)
    assert again.status_code == 409


def test_a_uicc_is_no_esim_to_download(client, runtime, stock):
    answer = client.post(f"{STOCK}/{stock['firstIccid']}/download",
                         json={"eid": EID, "matchingId": "ABC"}, headers=ALPHA)  # fmt: skip
    assert conforms(answer, "fulfillment", "downloadEsimProfile")["code"] == "NOT_AN_ESIM"
