"""Partner lifecycle through the control plane: onboarding, capabilities, termination."""

from __future__ import annotations

from conftest import (
    ORDERS,
    PRODUCTS,
    SIMS,
    activate,
    api_key,
    conforms,
    first_sims,
    order_body,
    settle,
)

AGREEMENT = {
    "offerings": ["po-gb-smart"],
    "markets": ["GB"],
    "capabilities": ["SUBMIT_ORDER", "ACTIVATE_SIM", "QUERY_INVENTORY", "VIEW_CATALOG"],
    "simPoolSize": 7,
}


def test_onboarded_partner_gets_a_key_a_pool_and_only_its_rights(client, runtime, alpha):
    created = client.post(
        "/__admin/partners", json={"id": "mvno-charlie", "name": "Charlie", "agreement": AGREEMENT}
    )
    partner = conforms(created, "admin", "onboardPartner")
    assert created.headers["Location"].endswith("/__admin/partners/mvno-charlie")
    assert partner["simPool"]["size"] == 7 and partner["capabilities"]["SUBMIT_ORDER"] == "granted"
    charlie = {"X-API-Key": partner["apiKey"]}
    assert partner["apiKey"] == api_key("mvno-charlie")

    sims = client.get(SIMS, headers=charlie).get_json()
    assert len(sims) == 7
    assert not {s["iccid"] for s in sims} & set(first_sims(client, alpha, 50))
    assert (
        client.get("/mvne/tmf-api/prepayBalanceManagement/v4/bucket", headers=charlie).status_code
        == 403
    )
    product = activate(client, runtime, charlie, offering="po-gb-smart")
    assert product["productOffering"]["id"] == "po-gb-smart"
    # The key is shown once: the partner listing never carries it.
    listed = conforms(client.get("/__admin/partners"), "admin", "listPartners")
    assert "apiKey" not in next(p for p in listed if p["id"] == "mvno-charlie")


def test_onboarding_refusals(client):
    body = {"id": "mvno-alpha", "name": "Again", "agreement": AGREEMENT}
    assert (
        conforms(client.post("/__admin/partners", json=body), "admin", "onboardPartner")["code"]
        == "PARTNER_EXISTS"
    )
    unknown = dict(AGREEMENT, offerings=["po-gb-gold"])
    body = {"id": "mvno-delta", "name": "Delta", "agreement": unknown}
    response = client.post("/__admin/partners", json=body)
    assert (
        response.status_code == 422
        and conforms(response, "admin", "onboardPartner")["field"] == "agreement.offerings"
    )
    assert client.get("/__admin/partners/mvno-delta").status_code == 404
    # A pool fills at most its block of serials: one more SIM would carry the next
    # partner's IMSI prefix.
    too_big = dict(AGREEMENT, simPoolSize=100_000)
    body = {"id": "mvno-delta", "name": "Delta", "agreement": too_big}
    response = client.post("/__admin/partners", json=body)
    assert response.status_code == 400
    assert conforms(response, "admin", "onboardPartner")["code"] == "INVALID_REQUEST"
    assert client.get("/__admin/partners/mvno-delta").status_code == 404


def test_capability_suspension_touches_only_that_capability(client, alpha):
    response = client.put(
        "/__admin/partners/mvno-alpha/capabilities/VIEW_CATALOG", json={"status": "suspended"}
    )
    partner = conforms(response, "admin", "setPartnerCapability")
    assert partner["capabilities"]["VIEW_CATALOG"] == "suspended"
    assert all(
        status == "granted"
        for cap, status in partner["capabilities"].items()
        if cap != "VIEW_CATALOG"
    )
    assert (
        client.get(
            "/mvne/tmf-api/productCatalogManagement/v4/productOffering", headers=alpha
        ).status_code
        == 403
    )
    assert client.get(SIMS, headers=alpha).status_code == 200
    audit = client.get("/__admin/audit?partnerId=mvno-alpha").get_json()
    assert any(r["action"] == "capability.suspended" and r["actor"] == "admin" for r in audit)


def test_termination_cancels_in_flight_orders_and_terminates_subscriptions(
    client, runtime, alpha, hooks
):
    client.post(
        "/mvne/tmf-api/productOrderingManagement/v4/hub",
        json={"callback": "http://hooks.partner.test/t"},
        headers=alpha,
    )
    live = activate(client, runtime, alpha, external_id="live")
    waiting, sent = first_sims(client, alpha, 2)
    # This one reaches the network before the partner is terminated...
    at_network = client.post(ORDERS, json=order_body(sent, "at-network"), headers=alpha).get_json()
    settle(runtime)
    state = client.get(f"{ORDERS}/{at_network['id']}", headers=alpha).get_json()["state"]
    assert state == "inProgress"
    # ...this one is still waiting for its first step.
    queued = client.post(ORDERS, json=order_body(waiting, "queued"), headers=alpha).get_json()

    response = client.post("/__admin/partners/mvno-alpha/terminate")
    outcome = conforms(response, "admin", "terminatePartner")
    assert set(outcome["cancelledOrders"]) == {queued["id"], at_network["id"]}
    assert outcome["terminatedSubscriptions"] == [live["id"]]
    assert outcome["partner"]["status"] == "terminated"

    refused = client.get(PRODUCTS, headers=alpha)
    assert refused.status_code == 403 and refused.get_json()["code"] == "PARTNER_INACTIVE"
    settle(runtime, 10)
    mno = {"X-API-Key": api_key("mvne-platform")}
    services = client.get(
        "/mno/tmf-api/serviceInventory/v4/service?limit=100", headers=mno
    ).get_json()
    # The live line and the one the network built for the cancelled order are both gone.
    assert len(services) == 2 and {s["state"] for s in services} == {"terminated"}
    cancelled = [
        e["event"]["productOrder"]["id"]
        for e in hooks.events("ProductOrderStateChangeEvent")
        if e["event"]["productOrder"]["state"] == "cancelled"
    ]
    assert set(cancelled) == {queued["id"], at_network["id"]}
    again = client.post("/__admin/partners/mvno-alpha/terminate")
    assert conforms(again, "admin", "terminatePartner")["code"] == "PARTNER_TERMINATED"
