"""The six wholesale reconciliations: clean on a consistent stack, and each break found with
its evidence when one side of a handoff goes wrong."""

from __future__ import annotations

from typing import Any

from conftest import (
    ORDERS,
    PRODUCTS,
    T0,
    activate,
    api_key,
    conforms,
    first_sims,
    order_body,
    settle,
)
from sqlalchemy import update

from simulators.core.runtime import Runtime
from simulators.mno import settlement

W = "/mno/v1/wholesale"
S = "/mno/v1/settlement"
APRIL = 1775001600.0  # 2026-04-01T00:00:00Z
ALPHA = {"X-API-Key": api_key("mvno-alpha-wholesale")}
ANALYST = {"X-API-Key": api_key("mno-settlement-analyst")}
APPROVER = {"X-API-Key": api_key("mno-settlement-approver")}
NETWORK_ORDERS = "/mno/tmf-api/serviceOrdering/v4/serviceOrder"


def reconcile(client: Any, kind: str, **extra: Any) -> dict[str, Any]:
    ran = client.post(f"{W}/reconciliation", json={"type": kind, **extra}, headers=ALPHA)
    report: dict[str, Any] = conforms(ran, "mno", "createReconciliation")
    kept = client.get(f"{W}/reconciliation/{report['id']}", headers=ALPHA).get_json()
    assert kept == report
    return report


def codes(report: dict[str, Any]) -> list[str]:
    return [item["code"] for item in report["breaks"]]


def fault(client: Any, rule: dict[str, Any]) -> str:
    added = client.post("/__admin/faults", json=rule)
    assert added.status_code == 201, added.get_data(as_text=True)
    return str(added.get_json()["id"])


def test_every_report_is_clean_on_a_consistent_stack(network, client, runtime, alpha):
    product = activate(client, runtime, alpha)
    client.post("/__admin/traffic", json={"msisdn": product["msisdn"], "usageType": "sms",
                                          "quantity": 2})  # fmt: skip
    settle(runtime, APRIL - T0)
    client.post(f"{S}/period/mvno-alpha/2026-03/close", headers=ANALYST)

    for kind in ("order", "service", "resource", "usage", "settlement", "sla"):
        report = reconcile(client, kind)
        assert (report["status"], report["breaks"]) == ("clean", []), kind
    assert reconcile(client, "order")["compared"] == {
        "partnerOrders": 1,
        "networkOrders": 1,
        "activationFees": 1,
    }


def test_a_line_the_partner_never_ordered_breaks_order_service_and_resource(
    network, client, runtime, alpha, mno_headers
):
    iccid = first_sims(client, alpha)[0]
    sim = client.get(f"/mvne/tmf-api/resourceInventoryManagement/v4/resource/{iccid}",
                     headers=alpha).get_json()  # fmt: skip
    ghost = client.post(
        NETWORK_ORDERS,
        json={"externalId": "not-from-the-mvne", "serviceOrderItem": [{"id": "1", "action": "add",
              "service": {"serviceCharacteristic": [{"name": "IMSI", "value": sim["imsi"]},
                          {"name": "MSISDN", "value": "+447700900997"},
                          {"name": "ICCID", "value": iccid}]}}]},
        headers=mno_headers,
    ).get_json()  # fmt: skip
    settle(runtime, 5)

    order = reconcile(client, "order")
    assert codes(order) == ["NETWORK_ORDER_WITHOUT_PARTNER_ORDER"]
    assert order["breaks"][0]["evidence"]["serviceOrderId"] == ghost["id"]
    service = reconcile(client, "service")
    assert codes(service) == ["SERVICE_UNKNOWN_TO_PARTNER"]
    assert service["breaks"][0]["evidence"]["iccid"] == iccid
    resource = reconcile(client, "resource")
    assert codes(resource) == ["RESOURCE_LEAK"]
    assert resource["breaks"][0]["evidence"] == {
        "iccid": iccid,
        "partnerStatus": "available",
        "serviceId": service["breaks"][0]["evidence"]["serviceId"],
    }


def test_an_order_the_network_never_creates_is_overdue_after_an_hour(
    network, client, runtime, alpha
):
    stuck = {"type": "data", "fault": "ORDER_STUCK", "state": "acknowledged"}
    fault(client, {"match": {"role": "mno", "operation": "createServiceOrder"}, "effect": stuck})
    iccid = first_sims(client, alpha)[0]
    created = client.post(ORDERS, json=order_body(iccid, "stuck"), headers=alpha).get_json()
    settle(runtime, 60)
    assert reconcile(client, "order")["breaks"] == []  # in flight, not overdue yet
    settle(runtime, 3600)
    report = reconcile(client, "order")
    assert codes(report) == ["ORDER_OVERDUE"]
    assert report["breaks"][0]["evidence"]["partnerOrderId"] == created["id"]
    assert report["breaks"][0]["evidence"]["networkState"] == "acknowledged"


def test_a_suspension_the_network_never_applies_is_a_barring_mismatch(
    network, client, runtime, alpha
):
    product = activate(client, runtime, alpha)
    fault(client, {"match": {"role": "mno", "operation": "createServiceOrder"},
                   "effect": {"type": "status", "status": 503}})  # fmt: skip
    suspended = client.patch(
        f"{PRODUCTS}/{product['id']}", json={"status": "suspended"}, headers=alpha
    )
    assert suspended.status_code == 200
    settle(runtime, 30)

    report = reconcile(client, "service")
    assert codes(report) == ["BARRING_MISMATCH"]
    assert report["breaks"][0]["evidence"] == {
        "productId": product["id"],
        "partnerStatus": "suspended",
        "partnerBarring": "all",
        "serviceId": report["breaks"][0]["evidence"]["serviceId"],
        "networkBarring": "none",
    }


def test_usage_the_charging_feed_got_wrong_or_never_got_is_a_usage_break(
    network, client, runtime, alpha, outages
):
    product = activate(client, runtime, alpha)
    fault(client, {"match": {"role": "mno", "fields": {"usageType": "data"}},
                   "effect": {"type": "data", "fault": "WRONG_UNIT"}})  # fmt: skip
    wrong = client.post("/__admin/traffic", json={"msisdn": product["msisdn"],
                                                  "usageType": "data", "quantity": 2})  # fmt: skip
    assert wrong.get_json()["grantedQuantity"] == 2  # the network carried 2 MB ...
    bucket = client.get(
        f"/mvne/tmf-api/prepayBalanceManagement/v4/bucket/{product['id']}", headers=alpha
    ).get_json()
    assert bucket["remainingValue"]["amount"] == 0  # ... the subscriber paid for 2048 "MB"
    outages.outage("POST", "/mvne/tmf-api/usageManagement/v4/usage")
    lost = client.post("/__admin/traffic", json={"msisdn": product["msisdn"],
                                                 "usageType": "sms", "quantity": 1})  # fmt: skip
    assert lost.status_code == 502

    report = reconcile(client, "usage", periodId="2026-03")
    assert codes(report) == ["UNIT_MISMATCH", "USAGE_NOT_CHARGED"]
    unit, uncharged = report["breaks"]
    assert (unit["evidence"]["networkQuantity"], unit["evidence"]["fedQuantity"]) == (2, 2048)
    assert uncharged["evidence"]["usageId"] == lost.get_json()["usageId"]
    # Wholesale settlement charged what the network carried, not what the feed said.
    assert [u["quantity"] for u in client.get(f"{W}/usage", headers=ALPHA).get_json()] == [2]


def _tamper(runtime: Runtime, table: Any, **values: Any) -> None:
    with runtime.store.write() as conn:
        conn.execute(update(table).values(**values))


def test_ledger_statement_and_invoice_that_disagree_are_settlement_breaks(
    network, client, runtime, alpha
):
    activate(client, runtime, alpha)
    settle(runtime, APRIL - T0)
    client.post(f"{S}/period/mvno-alpha/2026-03/close", headers=ANALYST)
    assert reconcile(client, "settlement", periodId="2026-03")["breaks"] == []

    # What a bug (or a hand in the database) would do: bill another amount than stated.
    _tamper(runtime, settlement.invoices, amount_cents=351)
    report = reconcile(client, "settlement", periodId="2026-03")
    assert codes(report) == ["INVOICE_AMOUNT_MISMATCH"]
    assert report["breaks"][0]["evidence"]["invoiceCents"] == 351
    assert report["breaks"][0]["evidence"]["statementCents"] == 350


def test_an_outage_recorded_after_its_period_closed_is_an_unpaid_credit(
    network, client, runtime, alpha
):
    activate(client, runtime, alpha)
    outage = {"partnerId": "mvno-alpha", "category": "core", "description": "core network down",
              "start": "2026-03-10T00:00:00Z", "end": "2026-03-10T03:00:00Z"}  # fmt: skip
    too_early = client.post(f"{S}/outage", json=outage, headers=ANALYST)
    assert (too_early.get_json()["code"], too_early.get_json()["field"]) == (
        "INVALID_OUTAGE",
        "end",
    )
    settle(runtime, APRIL - T0)
    before = client.post(f"{S}/outage", json=outage, headers=ANALYST)
    assert conforms(before, "mno", "recordOutage")["excludedMaintenance"] is False
    closed = client.post(f"{S}/period/mvno-alpha/2026-03/close", headers=ANALYST).get_json()
    # 3 h down in a 31-day month: 99.5968 % < 99.9 %: 10 % of the 1.50 per-SIM fee.
    credit = [line for line in closed["statement"]["line"] if line["kind"] == "slaCredit"]
    assert [line["amount"]["amount"] for line in credit] == ["-0.15"]
    assert reconcile(client, "sla")["breaks"] == []

    # Reported late, for every partner: 12 h more, 97.9839 % < 99.0 %: 25 % is owed.
    late = {"category": "roaming", "description": "signalling storm",
            "start": "2026-03-20T00:00:00Z", "end": "2026-03-20T12:00:00Z"}  # fmt: skip
    client.post(f"{S}/outage", json=late, headers=ANALYST)
    report = reconcile(client, "sla")
    assert codes(report) == ["SLA_CREDIT_MISSING"]
    evidence = report["breaks"][0]["evidence"]
    assert (evidence["expectedCredit"], evidence["postedCredit"]) == ("-0.375", "-0.15")
    assert (evidence["availabilityPercent"], len(evidence["outageIds"])) == ("97.9839", 2)

    # The remedy: a credit for the difference, resting on the period's SLA evidence.
    adjustment = client.post(
        f"{S}/adjustment",
        json={"partnerId": "mvno-alpha", "reason": "SLA credit for a late outage report",
              "amount": {"amount": "-0.225", "units": "GBP"},
              "evidenceRef": evidence["evidenceRef"]},
        headers=ANALYST,
    ).get_json()  # fmt: skip
    client.post(f"{S}/adjustment/{adjustment['id']}/decision", json={"decision": "approve"},
                headers=APPROVER)  # fmt: skip
    assert reconcile(client, "sla")["breaks"] == []


def test_the_mno_reconciles_any_partner_and_the_partner_only_itself(network, client, runtime):
    ran = client.post(
        f"{S}/reconciliation", json={"partnerId": "mvno-bravo", "type": "usage"}, headers=ANALYST
    )
    assert conforms(ran, "mno", "runReconciliation")["partner"] == {"id": "mvno-bravo"}
    hidden = client.get(f"{W}/reconciliation/{ran.get_json()['id']}", headers=ALPHA)
    assert hidden.status_code == 404
