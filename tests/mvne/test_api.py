"""The MVNE as a partner sees it: over HTTP, every answer checked against the contract."""

from __future__ import annotations

import json

from conftest import (
    ORDERS,
    PRODUCTS,
    SIMS,
    T0,
    activate,
    api_key,
    conforms,
    first_sims,
    network_order_polls,
    order_body,
    settle,
)
from standardwebhooks import Webhook

from simulators.core.clock import parse_iso
from simulators.core.identifiers import (
    is_fictitious_msisdn,
    is_valid_iccid,
    is_valid_imsi,
    uk_fictitious_msisdn,
)
from simulators.mvne import model
from simulators.mvne.steps import expected_completion, poll_delay

CATALOG = "/mvne/tmf-api/productCatalogManagement/v4/productOffering"
ORDER_HUB = "/mvne/tmf-api/productOrderingManagement/v4/hub"
PRODUCT_HUB = "/mvne/tmf-api/productInventoryManagement/v4/hub"
BUCKETS = "/mvne/tmf-api/prepayBalanceManagement/v4/bucket"
TOPUPS = "/mvne/tmf-api/prepayBalanceManagement/v4/topupBalance"
USAGE = "/mvne/tmf-api/usageManagement/v4/usage"
MNO_SERVICES = "/mno/tmf-api/serviceInventory/v4/service"


def characteristic(service: dict, name: str) -> str:
    return next(c["value"] for c in service["serviceCharacteristic"] if c["name"] == name)


# --- SIMs and catalog --------------------------------------------------------------------


def test_partner_lists_only_its_own_sims(client, alpha, bravo):
    alpha_sims = conforms(client.get(f"{SIMS}?limit=1000", headers=alpha), "mvne", "listSims")
    bravo_sims = conforms(client.get(f"{SIMS}?limit=1000", headers=bravo), "mvne", "listSims")
    assert len(alpha_sims) == 50 and len(bravo_sims) == 50
    assert not {s["iccid"] for s in alpha_sims} & {s["iccid"] for s in bravo_sims}
    for sim in alpha_sims:
        assert is_valid_iccid(sim["iccid"]) and is_valid_imsi(sim["imsi"])
        assert sim["imsi"].startswith("00101")
        assert sim["resourceStatus"] == "available"


def test_sim_of_another_partner_is_not_found(client, alpha, bravo):
    iccid = first_sims(client, bravo)[0]
    response = client.get(f"{SIMS}/{iccid}", headers=alpha)
    assert conforms(response, "mvne", "getSim")["code"] == "SIM_NOT_FOUND"
    assert (
        conforms(client.get(f"{SIMS}/{iccid}", headers=bravo), "mvne", "getSim")["iccid"] == iccid
    )


def test_sim_list_pages_with_total_count(client, alpha):
    response = client.get(f"{SIMS}?offset=10&limit=5", headers=alpha)
    page = conforms(response, "mvne", "listSims")
    assert len(page) == 5
    assert response.headers["X-Total-Count"] == "50"
    everything = client.get(f"{SIMS}?limit=50", headers=alpha).get_json()
    assert [s["iccid"] for s in page] == [s["iccid"] for s in everything[10:15]]


def test_catalog_is_the_agreements_projection(client, alpha, bravo):
    alpha_catalog = conforms(client.get(CATALOG, headers=alpha), "mvne", "listProductOfferings")
    assert {o["id"] for o in alpha_catalog} == {"po-gb-payg", "po-gb-smart"}
    assert all(o["market"] == [{"id": "GB"}] for o in alpha_catalog)
    assert set(alpha_catalog[0]["allowedAction"]) == {
        "add",
        "suspend",
        "resume",
        "terminate",
        "topUp",
    }
    # Bravo's agreement names po-gb-payg but not the GB market: it cannot sell it.
    bravo_catalog = conforms(client.get(CATALOG, headers=bravo), "mvne", "listProductOfferings")
    assert {o["id"] for o in bravo_catalog} == {"po-us-talk", "po-us-data"}
    missing = client.get(f"{CATALOG}/po-gb-payg", headers=bravo)
    assert conforms(missing, "mvne", "getProductOffering")["code"] == "OFFERING_NOT_FOUND"


def test_suspending_a_capability_changes_allowed_actions(client, alpha):
    client.put("/__admin/partners/mvno-alpha/capabilities/TOP_UP", json={"status": "suspended"})
    offering = conforms(
        client.get(f"{CATALOG}/po-gb-smart", headers=alpha), "mvne", "getProductOffering"
    )
    assert "topUp" not in offering["allowedAction"]
    assert "add" in offering["allowedAction"]


# --- activation, end to end --------------------------------------------------------------


def test_activation_acknowledged_at_once_then_completed_by_the_network(
    client, runtime, alpha, hooks
):
    hub = conforms(
        client.post(ORDER_HUB, json={"callback": "http://hooks.partner.test/mvno"}, headers=alpha),
        "mvne",
        "registerOrderListener",
    )
    iccid = first_sims(client, alpha)[0]
    headers = {**alpha, "X-Correlation-ID": "corr-activation-1"}
    created = client.post(ORDERS, json=order_body(iccid, "shop-1001"), headers=headers)
    order = conforms(created, "mvne", "createProductOrder")
    assert order["state"] == "acknowledged"
    assert created.headers["Location"] == order["href"]
    assert created.headers["X-Correlation-ID"] == "corr-activation-1"
    assert client.get(f"{SIMS}/{iccid}", headers=alpha).get_json()["resourceStatus"] == "reserved"

    settle(runtime)
    polled = conforms(
        client.get(f"{ORDERS}/{order['id']}", headers=alpha), "mvne", "getProductOrder"
    )
    assert polled["state"] == "inProgress"
    settle(runtime, 5)
    polled = conforms(
        client.get(f"{ORDERS}/{order['id']}", headers=alpha), "mvne", "getProductOrder"
    )
    assert polled["state"] == "completed" and "completionDate" in polled

    product_id = polled["productOrderItem"][0]["product"]["id"]
    product = conforms(client.get(f"{PRODUCTS}/{product_id}", headers=alpha), "mvne", "getProduct")
    assert product["status"] == "active" and product["iccid"] == iccid
    assert is_fictitious_msisdn(product["msisdn"]) and product["msisdn"].startswith("+447700900")
    assert client.get(f"{SIMS}/{iccid}", headers=alpha).get_json()["resourceStatus"] == "active"

    # The MNO holds the HLR/HSS record the MVNE asked for.
    services = client.get(
        f"{MNO_SERVICES}?msisdn={product['msisdn'].replace('+', '%2B')}",
        headers={"X-API-Key": api_key("mvne-platform")},
    ).get_json()
    assert len(services) == 1
    assert characteristic(services[0], "IMSI") == product["imsi"]
    assert characteristic(services[0], "ICCID") == iccid
    assert characteristic(services[0], "barring") == "none"
    assert characteristic(services[0], "attachState") == "attached"

    # Signed callbacks for every partner-visible state change, in order.
    states = [e["event"]["productOrder"]["state"] for e in hooks.events()]
    assert states == ["acknowledged", "inProgress", "completed"]
    for delivery in hooks.received:
        verified = Webhook(hub["secret"]).verify(delivery.body, delivery.headers)
        assert verified["correlationId"] == "corr-activation-1"
        assert delivery.url.startswith("http://hooks.partner.test/mvno/listener/productOrder")


def test_journal_shows_the_handoff_under_one_correlation_id(client, runtime, alpha):
    activate(client, runtime, {**alpha, "X-Correlation-ID": "corr-journal-7"})
    entries = client.get("/__admin/journal?correlationId=corr-journal-7&limit=1000").get_json()
    seen = {(e["role"], e["direction"], e["method"], e["url"].split("?")[0]) for e in entries}
    assert ("mvne", "inbound", "POST", ORDERS) in seen
    assert (
        "mvne",
        "outbound",
        "POST",
        "http://127.0.0.1:8700/mno/tmf-api/serviceOrdering/v4/serviceOrder",
    ) in seen
    assert ("mno", "inbound", "POST", "/mno/tmf-api/serviceOrdering/v4/serviceOrder") in seen
    assert all(e["correlationId"] == "corr-journal-7" for e in entries)


def test_the_mvne_looks_at_the_network_order_once_when_the_network_says_when(
    client, runtime, alpha
):
    activate(client, runtime, {**alpha, "X-Correlation-ID": "corr-poll-1"})
    polls = network_order_polls(client, "corr-poll-1")
    # The network's expectedCompletionDate is when it finishes: one look, and it is done.
    assert len(polls) == 1
    assert '"state":"completed"' in polls[0]["responseBody"].replace(" ", "")


def test_a_barring_change_is_looked_at_once_when_the_network_says_when(client, runtime, alpha):
    product = activate(client, runtime, alpha)
    suspended = client.patch(
        f"{PRODUCTS}/{product['id']}",
        json={"status": "suspended"},
        headers={**alpha, "X-Correlation-ID": "corr-bar-1"},
    )
    assert suspended.status_code == 200
    settle(runtime, 5)
    assert (
        client.get(f"{PRODUCTS}/{product['id']}", headers=alpha).get_json()["networkBarring"]
        == "all"
    )
    polls = network_order_polls(client, "corr-bar-1")
    assert len(polls) == 1
    assert '"state":"completed"' in polls[0]["responseBody"].replace(" ", "")


def test_a_late_network_order_is_polled_again_with_backoff():
    now = T0 + 60
    assert poll_delay(T0, now, expected=now + 30) == 30  # the network's estimate lies ahead
    assert poll_delay(T0, now, expected=now + 7200) == 300  # but never waits past the cap
    assert poll_delay(T0, now, expected=now - 10) == 15  # late: a quarter of its age
    assert poll_delay(T0, T0 + 1, expected=None) == 1
    assert expected_completion({"expectedCompletionDate": "2026-03-02T09:00:02.000Z"}) == (
        parse_iso("2026-03-02T09:00:02.000Z")
    )
    assert expected_completion({"expectedCompletionDate": "soon"}) is None
    assert expected_completion({}) is None


def test_audit_trail_records_who_did_what(client, runtime, alpha):
    activate(client, runtime, {**alpha, "X-Correlation-ID": "corr-audit-1"})
    records = client.get("/__admin/audit?correlationId=corr-audit-1").get_json()
    actions = [(r["actor"], r["action"]) for r in records]
    assert ("partner:mvno-alpha", "order.acknowledged") in actions
    assert ("system", "order.inProgress") in actions
    assert ("system", "product.activated") in actions
    assert ("system", "order.completed") in actions
    assert all(r["partnerId"] in ("mvno-alpha", "mvne-platform") for r in records)


def test_failed_network_provisioning_is_partner_safe(client, runtime, alpha, bravo):
    # Bravo's line takes the MSISDN-independent path; make the network refuse Alpha's IMSI by
    # activating it on the MNO directly first (an HLR record already holding that IMSI).
    iccid = first_sims(client, alpha)[0]
    imsi = client.get(f"{SIMS}/{iccid}", headers=alpha).get_json()["imsi"]
    clash = {
        "externalId": "clash-1",
        "serviceOrderItem": [
            {
                "id": "1",
                "action": "add",
                "service": {
                    "serviceCharacteristic": [
                        {"name": "IMSI", "value": imsi},
                        {"name": "MSISDN", "value": "+447700900999"},
                        {"name": "ICCID", "value": iccid},
                    ]
                },
            }
        ],
    }
    mno = {"X-API-Key": api_key("mvne-platform")}
    assert (
        client.post(
            "/mno/tmf-api/serviceOrdering/v4/serviceOrder", json=clash, headers=mno
        ).status_code
        == 201
    )
    settle(runtime, 5)
    order = client.post(ORDERS, json=order_body(iccid, "doomed"), headers=alpha).get_json()
    settle(runtime)
    settle(runtime, 5)
    failed = conforms(
        client.get(f"{ORDERS}/{order['id']}", headers=alpha), "mvne", "getProductOrder"
    )
    assert failed["state"] == "failed"
    assert failed["stateReason"]["code"] == "NETWORK_PROVISIONING_FAILED"
    assert "HLR" not in json.dumps(failed) and "IMSI" not in failed["stateReason"]["reason"]
    # The SIM goes back to the pool for another try.
    assert client.get(f"{SIMS}/{iccid}", headers=alpha).get_json()["resourceStatus"] == "available"


def test_a_number_given_to_an_order_in_flight_is_not_given_again(
    client, runtime, alpha, monkeypatch
):
    # A market of three numbers and four orders accepted together: all four are given
    # their numbers before the network has completed any of them.
    monkeypatch.setattr(model, "_range", lambda market: (3, uk_fictitious_msisdn))
    iccids = first_sims(client, alpha, 5)
    created = [
        client.post(ORDERS, json=order_body(iccid, f"tight-{n}"), headers=alpha).get_json()
        for n, iccid in enumerate(iccids[:4])
    ]
    settle(runtime)
    settle(runtime, 5)
    orders = [
        conforms(client.get(f"{ORDERS}/{order['id']}", headers=alpha), "mvne", "getProductOrder")
        for order in created
    ]
    completed = [order for order in orders if order["state"] == "completed"]
    failed = [order for order in orders if order["state"] == "failed"]
    assert (len(completed), len(failed)) == (3, 1)
    # The MVNE says its numbers ran out; the network was not asked to provision a clash.
    assert failed[0]["stateReason"]["code"] == "NUMBER_RANGE_EXHAUSTED"
    assert failed[0]["stateReason"]["retryable"] is False
    products = [
        client.get(
            f"{PRODUCTS}/{order['productOrderItem'][0]['product']['id']}", headers=alpha
        ).get_json()
        for order in completed
    ]
    assert len({product["msisdn"] for product in products}) == 3
    # A terminated line's number is free for the next order.
    url = f"{PRODUCTS}/{products[0]['id']}"
    assert client.patch(url, json={"status": "terminated"}, headers=alpha).status_code == 200
    settle(runtime, 5)
    again = client.post(ORDERS, json=order_body(iccids[4], "tight-again"), headers=alpha)
    settle(runtime)
    settle(runtime, 5)
    order = client.get(f"{ORDERS}/{again.get_json()['id']}", headers=alpha).get_json()
    assert order["state"] == "completed", order
    product_id = order["productOrderItem"][0]["product"]["id"]
    reused = client.get(f"{PRODUCTS}/{product_id}", headers=alpha).get_json()["msisdn"]
    assert reused == products[0]["msisdn"]


def test_network_down_fails_order_with_pending_verification(client, runtime, alpha, outages):
    outages.outage("POST", "/mno/tmf-api/serviceOrdering/v4/serviceOrder", 503)
    iccid = first_sims(client, alpha)[0]
    order = client.post(ORDERS, json=order_body(iccid, "mno-down"), headers=alpha).get_json()
    settle(runtime, 24 * 3600)
    failed = client.get(f"{ORDERS}/{order['id']}", headers=alpha).get_json()
    assert failed["state"] == "failed"
    assert failed["stateReason"] == {
        "code": "ACTIVATION_PENDING_VERIFICATION",
        "reason": "The network has not confirmed the activation; retry the order later",
        "retryable": True,
    }
    attempts = client.get("/__admin/journal?direction=outbound&limit=1000").get_json()
    assert len(attempts) == 8  # bounded retries, not a storm


# --- idempotency -------------------------------------------------------------------------


def test_same_external_id_returns_the_first_order(client, alpha):
    iccid = first_sims(client, alpha)[0]
    first = client.post(ORDERS, json=order_body(iccid, "dup-1"), headers=alpha)
    again = client.post(ORDERS, json=order_body(iccid, "dup-1"), headers=alpha)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    listed = client.get(f"{ORDERS}?externalId=dup-1", headers=alpha)
    assert listed.headers["X-Total-Count"] == "1"


def test_idempotency_key_reused_with_another_body_is_422(client, alpha):
    one, two = first_sims(client, alpha, 2)
    headers = {**alpha, "Idempotency-Key": "key-1"}
    assert client.post(ORDERS, json=order_body(one, "a"), headers=headers).status_code == 201
    clash = client.post(ORDERS, json=order_body(two, "b"), headers=headers)
    assert conforms(clash, "mvne", "createProductOrder")["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert client.get(f"{SIMS}/{two}", headers=alpha).get_json()["resourceStatus"] == "available"


def test_twenty_concurrent_retries_create_one_order(app, client, alpha, network):
    from concurrent.futures import ThreadPoolExecutor

    iccid = first_sims(client, alpha)[0]
    body = order_body(iccid, "storm-1")

    def submit(_: int):
        response = app.test_client().post(ORDERS, json=body, headers=alpha)
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(submit, range(20)))
    assert {status for status, _ in answers} == {201}
    assert len({answer["id"] for _, answer in answers}) == 1
    assert client.get(f"{ORDERS}?limit=100", headers=alpha).headers["X-Total-Count"] == "1"


def test_concurrent_top_ups_and_charges_all_reach_the_balance(app, client, runtime, alpha):
    # Each one reads the balance, adds or takes and writes it back: run side by side they
    # must not overwrite one another (on PostgreSQL they did, under READ COMMITTED).
    from concurrent.futures import ThreadPoolExecutor

    product = activate(client, runtime, alpha)

    def top_up(n: int) -> int:
        body = {"product": {"id": product["id"]}, "amount": {"amount": 0.25, "units": "GBP"}}
        return app.test_client().post(TOPUPS, json=body, headers=alpha).status_code

    def sms(n: int) -> int:
        usage = {"msisdn": product["msisdn"], "usageType": "sms", "quantity": 1}
        return app.test_client().post("/__admin/traffic", json=usage).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda n: (top_up if n % 2 else sms)(n), range(32)))
    assert answers == [201] * 32
    bucket = client.get(f"{BUCKETS}/{product['id']}", headers=alpha).get_json()
    # 5.00 + 16 x 0.25 - 16 x 0.06
    assert bucket["remainingValue"] == {"amount": 8.04, "units": "GBP"}


def test_of_concurrent_sim_changes_of_one_line_one_is_accepted(app, client, runtime, alpha):
    from concurrent.futures import ThreadPoolExecutor

    product = activate(client, runtime, alpha)
    spares = first_sims(client, alpha, 8)

    def change(iccid: str) -> tuple[int, str | None]:
        response = app.test_client().post(
            "/mvne/v1/simChanges", json={"productId": product["id"], "iccid": iccid}, headers=alpha
        )
        return response.status_code, response.get_json().get("code")

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(change, spares))
    assert sorted(answers, key=str) == [(201, None)] + [(409, "SIM_CHANGE_IN_PROGRESS")] * 7
    reserved = [
        iccid
        for iccid in spares
        if client.get(f"{SIMS}/{iccid}", headers=alpha).get_json()["resourceStatus"] != "available"
    ]
    assert len(reserved) == 1


# --- bad input and security ----------------------------------------------------------------


def test_unknown_iccid_is_422_unmapped_and_creates_nothing(client, alpha):
    from simulators.core.identifiers import iccid_with_check_digit

    unknown = iccid_with_check_digit("894401999999999999")
    response = client.post(ORDERS, json=order_body(unknown), headers=alpha)
    problem = conforms(response, "mvne", "createProductOrder")
    assert response.status_code == 422 and problem["code"] == "ICCID_UNMAPPED"
    assert client.get(ORDERS, headers=alpha).headers["X-Total-Count"] == "0"


def test_iccid_of_another_partner_is_422_unmapped(client, alpha, bravo):
    iccid = first_sims(client, bravo)[0]
    response = client.post(ORDERS, json=order_body(iccid), headers=alpha)
    assert conforms(response, "mvne", "createProductOrder")["code"] == "ICCID_UNMAPPED"
    assert client.get(f"{SIMS}/{iccid}", headers=bravo).get_json()["resourceStatus"] == "available"


def test_bad_iccid_check_digit_is_400_naming_the_field(client, alpha):
    iccid = first_sims(client, alpha)[0]
    broken = iccid[:-1] + str((int(iccid[-1]) + 1) % 10)
    response = client.post(ORDERS, json=order_body(broken), headers=alpha)
    problem = conforms(response, "mvne", "createProductOrder")
    assert response.status_code == 400
    assert problem["field"] == "productOrderItem[0].product.productCharacteristic[0].value"
    assert "iccid" in problem["detail"]


def test_missing_or_wrong_key_is_401(client):
    for headers in ({}, {"X-API-Key": "hk_nobody_0000"}):
        response = client.get(ORDERS, headers=headers)
        assert conforms(response, "mvne", "listProductOrders")["code"] == "UNAUTHENTICATED"
        assert response.status_code == 401 and "WWW-Authenticate" in response.headers


def test_capability_not_granted_is_403(client, bravo):
    response = client.get(USAGE, headers=bravo)
    problem = conforms(response, "mvne", "listUsage")
    assert response.status_code == 403 and problem["code"] == "CAPABILITY_NOT_GRANTED"


def test_suspended_capability_is_403_and_others_still_work(client, alpha):
    client.put(
        "/__admin/partners/mvno-alpha/capabilities/SUBMIT_ORDER", json={"status": "suspended"}
    )
    iccid = first_sims(client, alpha)[0]
    refused = client.post(ORDERS, json=order_body(iccid), headers=alpha)
    assert conforms(refused, "mvne", "createProductOrder")["code"] == "CAPABILITY_SUSPENDED"
    assert client.get(SIMS, headers=alpha).status_code == 200
    client.put("/__admin/partners/mvno-alpha/capabilities/SUBMIT_ORDER", json={"status": "granted"})
    assert client.post(ORDERS, json=order_body(iccid), headers=alpha).status_code == 201


def test_offering_outside_agreement_is_403(client, alpha):
    iccid = first_sims(client, alpha)[0]
    for offering in ("po-us-talk", "po-does-not-exist"):
        response = client.post(ORDERS, json=order_body(iccid, offering=offering), headers=alpha)
        assert response.status_code == 403
        assert (
            conforms(response, "mvne", "createProductOrder")["code"] == "OFFERING_NOT_IN_AGREEMENT"
        )


def test_market_outside_agreement_is_403(client, alpha, bravo):
    iccid = first_sims(client, bravo)[0]
    response = client.post(ORDERS, json=order_body(iccid, offering="po-gb-payg"), headers=bravo)
    assert conforms(response, "mvne", "createProductOrder")["code"] == "MARKET_NOT_IN_AGREEMENT"
    iccid = first_sims(client, alpha)[0]
    place = {"place": [{"id": "US", "role": "market"}]}
    response = client.post(ORDERS, json=order_body(iccid, **place), headers=alpha)
    assert conforms(response, "mvne", "createProductOrder")["code"] == "MARKET_NOT_IN_AGREEMENT"


def test_another_partners_order_and_subscription_are_404(client, runtime, alpha, bravo):
    product = activate(client, runtime, alpha)
    order_id = product["productOrder"]["id"]
    assert conforms(client.get(f"{ORDERS}/{order_id}", headers=bravo), "mvne", "getProductOrder")[
        "code"
    ] == ("ORDER_NOT_FOUND")
    response = client.get(f"{PRODUCTS}/{product['id']}", headers=bravo)
    assert conforms(response, "mvne", "getProduct")["code"] == "PRODUCT_NOT_FOUND"
    response = client.patch(
        f"{PRODUCTS}/{product['id']}", json={"status": "suspended"}, headers=bravo
    )
    assert response.status_code == 404
    assert client.get(f"{PRODUCTS}/{product['id']}", headers=alpha).get_json()["status"] == "active"
    assert client.get(f"{BUCKETS}/{product['id']}", headers=bravo).status_code == 404
    assert client.get(PRODUCTS, headers=bravo).get_json() == []


def test_activating_an_active_sim_is_409(client, runtime, alpha):
    product = activate(client, runtime, alpha)
    response = client.post(ORDERS, json=order_body(product["iccid"], "again"), headers=alpha)
    assert conforms(response, "mvne", "createProductOrder")["code"] == "SIM_ALREADY_ACTIVE"
    assert response.status_code == 409


def test_malformed_json_wrong_type_and_oversize(client, alpha):
    broken = client.post(
        ORDERS, data=b'{"externalId": ', headers={**alpha, "Content-Type": "application/json"}
    )
    assert conforms(broken, "mvne", "createProductOrder")["code"] == "MALFORMED_JSON"
    text = client.post(ORDERS, data="externalId=1", headers={**alpha, "Content-Type": "text/plain"})
    assert text.status_code == 415 and text.mimetype == "application/problem+json"
    huge = client.post(
        ORDERS,
        data=b"{" + b" " * (1024 * 1024 + 10) + b"}",
        headers={**alpha, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    assert client.get(ORDERS, headers=alpha).headers["X-Total-Count"] == "0"


# --- subscription lifecycle, balance, usage --------------------------------------------------


def mno_service(client, msisdn: str) -> dict:
    found = client.get(
        f"{MNO_SERVICES}?msisdn={msisdn.replace('+', '%2B')}",
        headers={"X-API-Key": api_key("mvne-platform")},
    ).get_json()
    return (
        next(s for s in found if s["state"] != "terminated")
        if any(s["state"] != "terminated" for s in found)
        else found[0]
    )


def test_suspend_resume_terminate_follow_through_to_the_network(client, runtime, alpha, hooks):
    client.post(PRODUCT_HUB, json={"callback": "http://hooks.partner.test/p"}, headers=alpha)
    product = activate(client, runtime, alpha)
    url = f"{PRODUCTS}/{product['id']}"

    suspended = client.patch(url, json={"status": "suspended"}, headers=alpha)
    assert conforms(suspended, "mvne", "updateProductStatus")["status"] == "suspended"
    assert suspended.get_json()["barring"] == "all"
    settle(runtime, 5)
    assert client.get(url, headers=alpha).get_json()["networkBarring"] == "all"
    assert characteristic(mno_service(client, product["msisdn"]), "barring") == "all"

    resumed = client.patch(
        url,
        data=json.dumps({"status": "active"}),
        headers={**alpha, "Content-Type": "application/merge-patch+json"},
    )
    assert conforms(resumed, "mvne", "updateProductStatus")["status"] == "active"
    settle(runtime, 5)
    assert characteristic(mno_service(client, product["msisdn"]), "barring") == "none"

    terminated = client.patch(url, json={"status": "terminated"}, headers=alpha)
    assert conforms(terminated, "mvne", "updateProductStatus")["status"] == "terminated"
    settle(runtime, 5)
    assert mno_service(client, product["msisdn"])["state"] == "terminated"
    assert (
        client.get(f"{SIMS}/{product['iccid']}", headers=alpha).get_json()["resourceStatus"]
        == "terminated"
    )
    again = client.patch(url, json={"status": "active"}, headers=alpha)
    assert conforms(again, "mvne", "updateProductStatus")["code"] == "PRODUCT_TERMINATED"
    statuses = [e["event"]["product"]["status"] for e in hooks.events("ProductStateChangeEvent")]
    assert statuses == ["suspended", "active", "terminated"]


def test_usage_depletes_balance_and_zero_bars_the_line(client, runtime, alpha):
    product = activate(client, runtime, alpha)  # po-gb-payg: 5.00 GBP, 1p/MB, 8p/min, 6p/SMS
    bucket = conforms(client.get(f"{BUCKETS}/{product['id']}", headers=alpha), "mvne", "getBucket")
    assert (
        bucket["remainingValue"] == {"amount": 5.0, "units": "GBP"} and bucket["status"] == "active"
    )

    voice = client.post(
        "/__admin/traffic", json={"msisdn": product["msisdn"], "usageType": "voice", "quantity": 10}
    )
    assert voice.status_code == 201 and voice.get_json()["charge"] == {
        "amount": 0.8,
        "units": "GBP",
    }
    sms = client.post(
        "/__admin/traffic", json={"msisdn": product["msisdn"], "usageType": "sms", "quantity": 3}
    )
    assert sms.get_json()["remainingBalance"] == {"amount": 4.02, "units": "GBP"}
    data = client.post(
        "/__admin/traffic",
        json={"msisdn": product["msisdn"], "usageType": "data", "quantity": 1000},
    )
    outcome = data.get_json()
    assert outcome["grantedQuantity"] == 402 and outcome["barred"] is True
    assert outcome["remainingBalance"] == {"amount": 0.0, "units": "GBP"}

    settle(runtime, 5)
    line = conforms(client.get(f"{PRODUCTS}/{product['id']}", headers=alpha), "mvne", "getProduct")
    assert (
        line["balanceBarred"] is True
        and line["barring"] == "outgoing"
        and line["networkBarring"] == "outgoing"
    )
    refused = client.post(
        "/__admin/traffic", json={"msisdn": product["msisdn"], "usageType": "sms", "quantity": 1}
    )
    assert refused.get_json()["status"] == "rejected" and refused.get_json()["grantedQuantity"] == 0

    usage = conforms(
        client.get(f"{USAGE}?product.id={product['id']}", headers=alpha), "mvne", "listUsage"
    )
    # The network itself refused the last SMS (outgoing barred): it never reached charging.
    assert sorted(u["usageType"] for u in usage) == ["data", "sms", "voice"]
    charged = [u["ratedProductUsage"][0]["taxExcludedRatingAmount"]["amount"] for u in usage]
    assert round(sum(charged), 2) == 5.0


def test_top_up_credits_exactly_and_unbars(client, runtime, alpha):
    product = activate(client, runtime, alpha)
    client.post(
        "/__admin/traffic", json={"msisdn": product["msisdn"], "usageType": "data", "quantity": 600}
    )
    settle(runtime, 5)
    assert (
        client.get(f"{PRODUCTS}/{product['id']}", headers=alpha).get_json()["networkBarring"]
        == "outgoing"
    )

    body = {"product": {"id": product["id"]}, "amount": {"amount": 10.07, "units": "GBP"}}
    topup = conforms(client.post(TOPUPS, json=body, headers=alpha), "mvne", "createTopup")
    assert topup["remainingValue"] == {"amount": 10.07, "units": "GBP"}
    settle(runtime, 5)
    line = client.get(f"{PRODUCTS}/{product['id']}", headers=alpha).get_json()
    assert line["balanceBarred"] is False and line["networkBarring"] == "none"
    assert (
        conforms(client.get(f"{TOPUPS}/{topup['id']}", headers=alpha), "mvne", "getTopup") == topup
    )


def test_top_up_refusals(client, runtime, alpha):
    product = activate(client, runtime, alpha)
    cases = [
        ({"amount": 10.001, "units": "GBP"}, 422, "INVALID_AMOUNT"),
        ({"amount": 10, "units": "USD"}, 422, "CURRENCY_MISMATCH"),
        ({"amount": 0, "units": "GBP"}, 400, "INVALID_REQUEST"),
    ]
    for amount, status, code in cases:
        response = client.post(
            TOPUPS, json={"product": {"id": product["id"]}, "amount": amount}, headers=alpha
        )
        assert (
            response.status_code == status
            and conforms(response, "mvne", "createTopup")["code"] == code
        )
    assert (
        client.get(f"{BUCKETS}/{product['id']}", headers=alpha).get_json()["remainingValue"][
            "amount"
        ]
        == 5.0
    )


def test_duplicate_network_usage_is_charged_once(client, runtime, alpha):
    product = activate(client, runtime, alpha)
    network = {"X-API-Key": api_key("mno-network")}
    event = {
        "externalId": "net-evt-1",
        "usageType": "voice",
        "usageDate": "2026-03-02T09:00:10Z",
        "msisdn": product["msisdn"],
        "quantity": 5,
    }
    first = conforms(client.post(USAGE, json=event, headers=network), "mvne", "chargeUsage")
    second = conforms(client.post(USAGE, json=event, headers=network), "mvne", "chargeUsage")
    assert first["id"] == second["id"]
    assert (
        client.get(f"{BUCKETS}/{product['id']}", headers=alpha).get_json()["remainingValue"][
            "amount"
        ]
        == 4.6
    )
    # A partner key cannot charge usage, and the network key cannot read a partner's data.
    assert (
        client.post(USAGE, json=dict(event, externalId="net-evt-2"), headers=alpha).status_code
        == 401
    )
    assert client.get(PRODUCTS, headers=network).status_code == 401


# --- hubs ---------------------------------------------------------------------------------------


def test_hub_refuses_targets_outside_loopback_and_allow_list(client, alpha):
    for callback in (
        "http://169.254.169.254/latest",
        "http://example.com/hooks",
        "ftp://127.0.0.1/x",
    ):
        response = client.post(ORDER_HUB, json={"callback": callback}, headers=alpha)
        assert response.status_code in (400, 422)
        assert conforms(response, "mvne", "registerOrderListener")["code"] in (
            "CALLBACK_NOT_ALLOWED",
            "INVALID_REQUEST",
        )
    ok = client.post(ORDER_HUB, json={"callback": "http://127.0.0.1:9999/hooks"}, headers=alpha)
    assert ok.status_code == 201


def test_hub_is_scoped_to_its_partner_and_can_be_removed(client, alpha, bravo):
    hub = client.post(
        ORDER_HUB, json={"callback": "http://hooks.partner.test/a"}, headers=alpha
    ).get_json()
    assert client.get(f"{ORDER_HUB}/{hub['id']}", headers=bravo).status_code == 404
    assert client.delete(f"{ORDER_HUB}/{hub['id']}", headers=bravo).status_code == 404
    shown = conforms(
        client.get(f"{ORDER_HUB}/{hub['id']}", headers=alpha), "mvne", "getOrderListener"
    )
    assert "secret" not in shown
    assert client.delete(f"{ORDER_HUB}/{hub['id']}", headers=alpha).status_code == 204
    assert client.get(f"{ORDER_HUB}/{hub['id']}", headers=alpha).status_code == 404


def test_event_filter_on_hub_query(client, runtime, alpha, hooks):
    client.post(
        ORDER_HUB,
        json={
            "callback": "http://hooks.partner.test/f",
            "query": "eventType=ProductOrderStateChangeEvent",
        },
        headers=alpha,
    )
    activate(client, runtime, alpha)
    assert {e["eventType"] for e in hooks.events()} == {"ProductOrderStateChangeEvent"}


def test_nul_characters_are_refused_in_bodies_and_match_nothing_in_ids(client, alpha):
    iccid = first_sims(client, alpha)[0]
    response = client.post(ORDERS, json=order_body(iccid, "bad\u0000id"), headers=alpha)
    assert response.status_code == 422
    assert conforms(response, "mvne", "createProductOrder")["code"] == "UNSUPPORTED_CHARACTER"
    assert client.get(ORDERS, headers=alpha).headers["X-Total-Count"] == "0"
    missing = client.get(f"{ORDERS}/abc%00def", headers=alpha)
    assert conforms(missing, "mvne", "getProductOrder")["code"] == "ORDER_NOT_FOUND"
    assert client.get(f"{ORDERS}?externalId=x%00y", headers=alpha).get_json() == []


def test_care_diagnostics_show_the_barring_the_product_shows(client, runtime, alpha):
    product = activate(client, runtime, alpha)
    care = {"X-API-Key": api_key("care-agent-mvno-alpha")}
    path = f"/mvne/diagnostics/v1/subscription/{product['id']}"

    def seen() -> tuple[str, str]:
        diagnosis = conforms(client.get(path, headers=care), "mvne", "getSubscriptionDiagnostics")
        line = client.get(f"{PRODUCTS}/{product['id']}", headers=alpha).get_json()
        assert (diagnosis["barring"], diagnosis["networkBarring"]) == (
            line["barring"],
            line["networkBarring"],
        )
        return diagnosis["barring"], diagnosis["networkBarring"]

    assert seen() == ("none", "none")
    suspended = client.patch(
        f"{PRODUCTS}/{product['id']}", json={"status": "suspended"}, headers=alpha
    )
    assert suspended.status_code == 200
    assert seen() == ("all", "none")  # asked for; the network has not applied it yet
    settle(runtime, 5)
    assert seen() == ("all", "all")
