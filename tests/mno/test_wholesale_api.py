"""The MNO's wholesale API as an MVNO uses it, and its settlement operations as the MNO's
staff use them: tenancy, usage, periods, disputes, maker-checker, suspension, events."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import (
    ORDERS,
    PARTNER_HOOKS,
    T0,
    activate,
    api_key,
    conforms,
    first_sims,
    order_body,
    settle,
)
from sqlalchemy import select

from simulators.core.clock import isoformat, parse_iso
from simulators.core.tenancy import partners
from simulators.mno import agreements

W = "/mno/v1/wholesale"
S = "/mno/v1/settlement"
APRIL = 1775001600.0  # 2026-04-01T00:00:00Z
ALPHA = {"X-API-Key": api_key("mvno-alpha-wholesale")}
BRAVO = {"X-API-Key": api_key("mvno-bravo-wholesale")}
ANALYST = {"X-API-Key": api_key("mno-settlement-analyst")}
APPROVER = {"X-API-Key": api_key("mno-settlement-approver")}


def traffic(
    client: Any, msisdn: str, usage_type: str = "data", quantity: int = 10, **extra: Any
) -> Any:
    used = client.post(
        "/__admin/traffic",
        json={"msisdn": msisdn, "usageType": usage_type, "quantity": quantity, **extra},
    )
    assert used.status_code == 201, used.get_data(as_text=True)
    return used.get_json()


def close(client: Any, period: str, partner: str = "mvno-alpha") -> Any:
    closed = client.post(f"{S}/period/{partner}/{period}/close", headers=ANALYST)
    return closed


def new_version(client: Any, partner: str = "mvno-alpha", **terms: Any) -> Any:
    currency = "GBP" if partner == "mvno-alpha" else "USD"
    body = {
        "partnerId": partner,
        "effectiveFrom": isoformat(T0),
        "terms": {**agreements.reference_terms(currency), **terms},
    }
    created = client.post(f"{S}/agreement", json=body, headers=ANALYST)
    assert created.status_code == 201, created.get_data(as_text=True)
    return conforms(created, "mno", "createAgreementVersion")


# --- tenancy -------------------------------------------------------------------------------------


def test_each_mvno_sees_only_its_own_wholesale_account(network, client, runtime, alpha, bravo):
    product = activate(client, runtime, alpha)
    traffic(client, product["msisdn"])

    mine = client.get(f"{W}/usage", headers=ALPHA)
    theirs = client.get(f"{W}/usage", headers=BRAVO)
    assert [u["msisdn"] for u in conforms(mine, "mno", "listWholesaleUsage")] == [product["msisdn"]]
    assert theirs.get_json() == []
    usage_id = mine.get_json()[0]["id"]
    assert client.get(f"{W}/usage/{usage_id}", headers=BRAVO).status_code == 404
    assert [e["kind"] for e in client.get(f"{W}/ledger", headers=BRAVO).get_json()] == []
    # An MVNO's MVNE key, and the MNO's staff key, do not open the wholesale API.
    assert client.get(f"{W}/usage", headers=alpha).status_code == 401
    assert client.get(f"{W}/usage", headers=ANALYST).status_code == 401
    # ... nor does a wholesale key open the MNO's settlement operations.
    assert close(client, "2026-02").status_code != 401
    refused = client.post(f"{S}/period/mvno-alpha/2026-02/close", headers=ALPHA)
    assert refused.status_code == 401


def test_the_agreement_versions_and_new_versions_never_take_effect_in_the_past(client):
    listed = conforms(client.get(f"{W}/agreement", headers=ALPHA), "mno", "listWholesaleAgreements")
    assert [(v["id"], v["terms"]["currency"]) for v in listed] == [("wa-mvno-alpha-v1", "GBP")]

    backdated = client.post(
        f"{S}/agreement",
        json={
            "partnerId": "mvno-alpha",
            "effectiveFrom": isoformat(T0 - 1),
            "terms": agreements.reference_terms("GBP"),
        },
        headers=ANALYST,
    )
    assert backdated.status_code == 422
    assert backdated.get_json()["code"] == "AGREEMENT_VERSION_BACKDATED"
    other_currency = client.post(
        f"{S}/agreement",
        json={
            "partnerId": "mvno-alpha",
            "effectiveFrom": isoformat(T0 + 60),
            "terms": agreements.reference_terms("USD"),
        },
        headers=ANALYST,
    )
    assert other_currency.get_json()["field"] == "terms.currency"

    version = new_version(client, activationFee="3.00")
    assert version["id"] == "wa-mvno-alpha-v2"
    first = client.get(f"{W}/agreement/wa-mvno-alpha-v1", headers=ALPHA).get_json()
    assert first["agreementPeriod"]["endDateTime"] == isoformat(T0)


def test_a_new_partner_gets_its_imsi_block_and_a_key_of_its_own(client):
    terms = agreements.reference_terms("EUR")
    refused = client.post(
        f"{S}/agreement",
        json={"partnerId": "mvno-gamma", "effectiveFrom": isoformat(T0), "terms": terms},
        headers=ANALYST,
    )
    assert refused.status_code == 404 and refused.get_json()["field"] == "partnerId"

    body = {
        "partnerId": "mvno-gamma",
        "partnerName": "Gamma",
        "imsiPrefixes": ["0010126"],  # covers every reference partner's block
        "effectiveFrom": isoformat(T0),
        "terms": terms,
    }
    overlapping = client.post(f"{S}/agreement", json=body, headers=ANALYST)
    assert overlapping.status_code == 409 and overlapping.get_json()["code"] == "IMSI_RANGE_TAKEN"

    created = client.post(
        f"{S}/agreement", json={**body, "imsiPrefixes": ["0010126777"]}, headers=ANALYST
    )
    version = conforms(created, "mno", "createAgreementVersion")
    assert version["wholesaleApiKey"] == api_key("mvno-gamma-wholesale")
    gamma = {"X-API-Key": version["wholesaleApiKey"]}
    assert client.get(f"{W}/agreement", headers=gamma).get_json()[0]["partner"] == {
        "id": "mvno-gamma"
    }


# --- usage, summaries, events --------------------------------------------------------------------


def test_a_duplicate_record_is_charged_once_and_the_summary_counts_it_dropped(
    network, client, runtime, alpha, hooks
):
    product = activate(client, runtime, alpha)
    hub = client.post(
        f"{W}/hub",
        json={
            "callback": f"{PARTNER_HOOKS}/wholesale",
            "query": "eventType=UsageSummaryCreateEvent",
        },
        headers=ALPHA,
    )
    conforms(hub, "mno", "registerWholesaleListener")
    client.post(
        "/__admin/faults",
        json={
            "match": {"role": "mno", "fields": {"usageType": "data"}},
            "effect": {"type": "data", "fault": "DUPLICATE_USAGE"},
        },
    )
    traffic(client, product["msisdn"], "data", 100, visitedMcc="208")
    traffic(client, product["msisdn"], "voice", 3)

    usage = client.get(f"{W}/usage", headers=ALPHA).get_json()
    assert [(u["usageType"], u["quantity"], u.get("visitedMcc")) for u in usage] == [
        ("data", 100, "208"),
        ("voice", 3, None),
    ]
    charges = client.get(f"{W}/ledger?kind=usage", headers=ALPHA).get_json()
    assert [c["amount"]["amount"] for c in charges] == ["0.20", "0.03"]

    settle(runtime, 86400)  # the day closes; its summary is published at 02:00
    summary = conforms(client.get(f"{W}/usageSummary", headers=ALPHA), "mno", "listUsageSummaries")
    assert [(s["usageDate"], s["usageCount"], s["duplicatesDropped"]) for s in summary] == [
        ("2026-03-02", 2, 1)
    ]
    assert summary[0]["roaming"] == [
        {"visitedMcc": "208", "usageType": "data", "usageCount": 1, "quantity": 100, "unit": "MB"}
    ]
    assert summary[0]["totalRatedAmount"] == {"amount": "0.23", "units": "GBP"}
    events = hooks.events("UsageSummaryCreateEvent")
    assert [event["event"]["usageSummary"]["id"] for event in events] == [summary[0]["id"]]


def test_a_late_record_republishes_its_day_and_lands_after_a_closed_period(
    network, client, runtime, alpha
):
    product = activate(client, runtime, alpha)
    settle(runtime, APRIL - T0 + 3 * 3600)
    conforms(close(client, "2026-03"), "mno", "closeSettlementPeriod")
    client.post(
        "/__admin/faults",
        json={
            "match": {"role": "mno", "fields": {"msisdn": product["msisdn"]}},
            "effect": {"type": "data", "fault": "LATE_USAGE", "delaySeconds": 6 * 3600},
        },
    )
    traffic(client, product["msisdn"], "sms", 2)  # happened 31 March 21:00, after March closed
    settle(runtime)

    late = client.get(f"{W}/usage", headers=ALPHA).get_json()[0]
    assert late["usageDate"].startswith("2026-03-31T21:00")
    assert (late["periodId"], late["late"]) == ("2026-04", True)
    entry = client.get(f"{W}/ledger?kind=usage", headers=ALPHA).get_json()[0]
    assert (entry["periodId"], entry["servicePeriod"]) == ("2026-04", "2026-03")
    summaries = client.get(f"{W}/usageSummary?usageDate=2026-03-31", headers=ALPHA).get_json()
    assert [(s["revision"], s["usageCount"], s["lateUsageCount"]) for s in summaries] == [(1, 1, 1)]
    march = client.get(f"{W}/statement/st-mvno-alpha-2026-03", headers=ALPHA).get_json()
    assert [line["kind"] for line in march["line"]] == ["activationFee", "monthlyFee"]


# --- periods ------------------------------------------------------------------------------------


def test_periods_close_once_in_order_and_only_after_they_end(network, client, runtime, alpha):
    activate(client, runtime, alpha)
    early = close(client, "2026-03")
    assert (early.status_code, early.get_json()["code"]) == (409, "PERIOD_NOT_ENDED")

    settle(runtime, APRIL - T0 + 31 * 86400)
    out_of_order = close(client, "2026-04")
    assert out_of_order.get_json()["code"] == "EARLIER_PERIOD_OPEN"
    closed = conforms(close(client, "2026-03"), "mno", "closeSettlementPeriod")
    assert closed["invoice"]["amount"] == {"amount": "3.50", "units": "GBP"}  # 2.00 + 1.50
    again = close(client, "2026-03")
    assert (again.status_code, again.get_json()["code"]) == (409, "PERIOD_CLOSED")
    periods = client.get(f"{W}/settlementPeriod", headers=ALPHA).get_json()
    assert [(p["id"], p["status"]) for p in periods] == [("2026-03", "closed")]
    invoice = client.get(f"{W}/invoice/{closed['invoice']['id']}", headers=ALPHA)
    assert conforms(invoice, "mno", "getWholesaleInvoice")["state"] == "issued"


# --- disputes and revenue -----------------------------------------------------------------------


def test_disputes_inside_the_window_credit_and_later_ones_are_refused(
    network, client, runtime, alpha, hooks
):
    product = activate(client, runtime, alpha)
    client.post(f"{W}/hub", json={"callback": f"{PARTNER_HOOKS}/w"}, headers=ALPHA)
    traffic(client, product["msisdn"], "data", 100)
    traffic(client, product["msisdn"], "voice", 10)
    data, voice = (u["id"] for u in client.get(f"{W}/usage", headers=ALPHA).get_json())
    settle(runtime, APRIL - T0)
    invoice = close(client, "2026-03").get_json()["invoice"]

    dispute = client.post(
        f"{W}/dispute",
        json={"reason": "session counted twice", "usage": [{"id": data, "claimedQuantity": 60}]},
        headers=ALPHA,
    )
    created = conforms(dispute, "mno", "createUsageDispute")
    window_end = parse_iso(created["usage"][0]["disputeWindowEnd"])
    assert window_end == parse_iso(invoice["issueDate"]) + 15 * 86400
    twice = client.post(
        f"{W}/dispute", json={"reason": "x", "usage": [{"id": data}]}, headers=ALPHA
    )
    assert twice.get_json()["code"] == "USAGE_ALREADY_DISPUTED"
    foreign = client.post(
        f"{W}/dispute", json={"reason": "x", "usage": [{"id": data}]}, headers=BRAVO
    )
    assert (foreign.status_code, foreign.get_json()["field"]) == (422, "usage[0].id")

    resolved = client.post(
        f"{S}/dispute/{created['id']}/resolution", json={"decision": "accept"}, headers=ANALYST
    )
    # 100 MB at 0.0020 reversed, 60 MB at the same place charged again: -0.20 + 0.12.
    assert conforms(resolved, "mno", "resolveDispute")["credit"] == {
        "amount": "-0.08",
        "units": "GBP",
    }
    entries = client.get(f"{W}/ledger?periodId=2026-04", headers=ALPHA).get_json()
    assert [(e["entryType"], e["amount"]["amount"], e["servicePeriod"]) for e in entries] == [
        ("reversal", "-0.20", "2026-03"),
        ("correction", "0.12", "2026-03"),
    ]
    settle(runtime)
    changes = hooks.events("UsageDisputeStateChangeEvent")
    assert [e["event"]["usageDispute"]["status"] for e in changes] == ["accepted"]

    settle(runtime, 16 * 86400)
    late = client.post(
        f"{W}/dispute", json={"reason": "x", "usage": [{"id": voice}]}, headers=ALPHA
    )
    assert late.status_code == 422
    assert (late.get_json()["code"], late.get_json()["usageId"]) == ("DISPUTE_WINDOW_CLOSED", voice)


def test_a_revenue_declaration_owes_the_share_and_a_new_one_corrects_it(client, runtime):
    early = client.post(
        f"{W}/revenueDeclaration",
        json={"periodId": "2026-03", "netRevenue": {"amount": "1000.00", "units": "GBP"}},
        headers=ALPHA,
    )
    assert early.get_json()["code"] == "PERIOD_NOT_ENDED"
    declared = client.post(
        f"{W}/revenueDeclaration",
        json={"periodId": "2026-02", "netRevenue": {"amount": "1000.00", "units": "GBP"}},
        headers=ALPHA,
    )
    assert (
        conforms(declared, "mno", "declareRevenue")["revenueShare"]["amount"]["amount"] == "50.00"
    )
    again = client.post(
        f"{W}/revenueDeclaration",
        json={"periodId": "2026-02", "netRevenue": {"amount": "800.00", "units": "GBP"}},
        headers=ALPHA,
    ).get_json()
    assert again["sequence"] == 2
    shares = client.get(f"{W}/ledger?kind=revenueShare", headers=ALPHA).get_json()
    assert [(e["entryType"], e["amount"]["amount"]) for e in shares] == [
        ("original", "50.00"),
        ("reversal", "-50.00"),
        ("correction", "40.00"),
    ]


# --- maker-checker ----------------------------------------------------------------------------


def test_a_manual_adjustment_needs_a_maker_and_a_different_checker(client):
    proposed = client.post(
        f"{S}/adjustment",
        json={
            "partnerId": "mvno-alpha",
            "amount": {"amount": "-5.00", "units": "GBP"},
            "reason": "goodwill credit for ticket 42",
            "evidenceRef": "ticket-42",
        },
        headers=ANALYST,
    )
    adjustment = conforms(proposed, "mno", "proposeAdjustment")
    assert adjustment["status"] == "pendingApproval"
    assert client.get(f"{W}/ledger", headers=ALPHA).get_json() == []

    decision = f"{S}/adjustment/{adjustment['id']}/decision"
    by_maker = client.post(decision, json={"decision": "approve"}, headers=ANALYST)
    assert (by_maker.status_code, by_maker.get_json()["code"]) == (403, "CAPABILITY_NOT_GRANTED")
    own = client.post(
        f"{S}/adjustment",
        json={"partnerId": "mvno-alpha", "reason": "mine",
              "amount": {"amount": "1.00", "units": "GBP"}, "evidenceRef": "x"},
        headers=APPROVER,
    ).get_json()  # fmt: skip
    self_checked = client.post(
        f"{S}/adjustment/{own['id']}/decision", json={"decision": "approve"}, headers=APPROVER
    )
    assert (self_checked.status_code, self_checked.get_json()["code"]) == (
        403,
        "MAKER_CANNOT_CHECK",
    )

    approved = client.post(decision, json={"decision": "approve"}, headers=APPROVER)
    assert conforms(approved, "mno", "decideAdjustment")["checker"] == "mno-settlement-approver"
    entry = client.get(f"{W}/ledger", headers=ALPHA).get_json()
    assert [(e["entryType"], e["amount"]["amount"], e["evidenceRef"]) for e in entry] == [
        ("manualAdjustment", "-5.00", "ticket-42")
    ]
    twice = client.post(decision, json={"decision": "reject"}, headers=APPROVER)
    assert twice.get_json()["code"] == "ADJUSTMENT_ALREADY_DECIDED"


# --- suspension -------------------------------------------------------------------------------


def test_an_unpaid_invoice_suspends_new_activations_only_and_payment_lifts_it(
    network, client, runtime, alpha, hooks
):
    new_version(client, unpaidThreshold="1.00", paymentTermsDays=0)
    client.post(f"{W}/hub", json={"callback": f"{PARTNER_HOOKS}/w"}, headers=ALPHA)
    product = activate(client, runtime, alpha)
    settle(runtime, APRIL - T0)
    invoice = close(client, "2026-03").get_json()["invoice"]  # 3.50 due at once
    settle(runtime)

    status = client.get(f"{W}/activationSuspension", headers=ALPHA)
    suspended = conforms(status, "mno", "getActivationSuspension")
    assert suspended["state"] == "suspended"
    assert suspended["suspension"][0]["overdue"] == {"amount": "3.50", "units": "GBP"}
    iccid = first_sims(client, alpha)[0]
    refused = client.post(ORDERS, json=order_body(iccid, "after-cut-off"), headers=alpha)
    assert (refused.status_code, refused.get_json()["code"]) == (403, "CAPABILITY_SUSPENDED")
    # Nothing else stops: the line is used and charged, the partner still reads its account.
    assert traffic(client, product["msisdn"], "sms", 1)["status"] == "rated"
    assert client.get(f"{W}/invoice", headers=ALPHA).status_code == 200

    partial = client.post(
        f"{S}/payment",
        json={"invoiceId": invoice["id"], "amount": {"amount": "2.00", "units": "GBP"},
              "reference": "bank-1"},
        headers=ANALYST,
    )  # fmt: skip
    assert conforms(partial, "mno", "recordWholesalePayment")["activationsSuspended"] is True
    paid = client.post(
        f"{S}/payment",
        json={"invoiceId": invoice["id"], "amount": {"amount": "1.50", "units": "GBP"},
              "reference": "bank-2"},
        headers=ANALYST,
    ).get_json()  # fmt: skip
    assert paid["invoice"]["state"] == "paid" and paid["activationsSuspended"] is False
    again = client.post(ORDERS, json=order_body(iccid, "after-payment"), headers=alpha)
    assert again.status_code == 201
    settle(runtime)
    changes = hooks.events("ActivationSuspensionStateChangeEvent")
    assert [e["event"]["activationSuspension"]["state"] for e in changes] == ["suspended", "lifted"]
    overpaid = client.post(
        f"{S}/payment",
        json={"invoiceId": invoice["id"], "amount": {"amount": "0.01", "units": "GBP"},
              "reference": "bank-3"},
        headers=ANALYST,
    )  # fmt: skip
    assert overpaid.get_json()["code"] == "INVOICE_NOT_PAYABLE"


@pytest.mark.parametrize("delay, outcome", [(600, "completed"), (1200, "failed")])
def test_the_cut_off_rule_for_an_activation_in_flight(
    network, client, runtime, alpha, mno_headers, delay, outcome
):
    """The network receives an activation for a suspended partner some time after the
    cut-off (an order the MVNE accepted just before it, its submission delayed): provisioned
    within the 900 s in-flight grace, refused after; each decision is kept."""
    new_version(client, unpaidThreshold="1.00", paymentTermsDays=0)
    activate(client, runtime, alpha, external_id="first")
    settle(runtime, APRIL - T0)
    close(client, "2026-03")
    settle(runtime)  # the invoice is due at once: activations are suspended now
    cut_off = client.get(f"{W}/activationSuspension", headers=ALPHA).get_json()["suspension"][0]
    settle(runtime, delay)
    iccid = first_sims(client, alpha)[0]
    sim = client.get(f"/mvne/tmf-api/resourceInventoryManagement/v4/resource/{iccid}",
                     headers=alpha).get_json()  # fmt: skip
    characteristics = [
        {"name": "IMSI", "value": sim["imsi"]},
        {"name": "MSISDN", "value": "+447700900998"},
        {"name": "ICCID", "value": iccid},
    ]
    ordered = client.post(
        "/mno/tmf-api/serviceOrdering/v4/serviceOrder",
        json={"externalId": "in-flight", "serviceOrderItem": [
            {"id": "1", "action": "add", "service": {"serviceCharacteristic": characteristics}}]},
        headers=mno_headers,
    )  # fmt: skip
    assert ordered.status_code == 201
    settle(runtime, 5)

    order = client.get(ordered.get_json()["href"].replace("http://localhost", ""),
                       headers=mno_headers).get_json()  # fmt: skip
    assert order["state"] == outcome
    if outcome == "failed":
        assert order["errorMessage"][0]["code"] == "ACTIVATIONS_SUSPENDED"
    status = client.get(f"{W}/activationSuspension", headers=ALPHA).get_json()["suspension"][0]
    assert status["cutOff"] == cut_off["cutOff"]
    assert [(d["serviceOrderId"], d["decision"]) for d in status["decision"]] == [
        (order["id"], "admitted" if outcome == "completed" else "refused")
    ]
    fees = client.get(f"{W}/ledger?kind=activationFee", headers=ALPHA).get_json()
    assert len(fees) == (2 if outcome == "completed" else 1)


def test_a_partner_name_as_long_as_the_contract_allows_fits_its_credential(client, runtime):
    body = {
        "partnerId": "mvno-delta",
        "partnerName": "D" * 200,
        "imsiPrefixes": ["0010126888"],
        "effectiveFrom": isoformat(T0),
        "terms": agreements.reference_terms("EUR"),
    }
    created = client.post(f"{S}/agreement", json=body, headers=ANALYST)
    conforms(created, "mno", "createAgreementVersion")
    assert created.status_code == 201
    with runtime.store.read() as conn:
        names = [row.name for row in conn.execute(select(partners.c.name))]
    # PostgreSQL refuses a label longer than its column: the credential's label is cut to fit.
    assert max(len(name) for name in names) <= partners.c.name.type.length
    assert "D" * 188 + " (wholesale)" in names


def test_a_partner_id_as_long_as_its_credential_allows_and_no_longer(client):
    body = {
        "partnerName": "Epsilon",
        "imsiPrefixes": ["0010126889"],
        "effectiveFrom": isoformat(T0),
        "terms": agreements.reference_terms("EUR"),
    }
    # The credential is `<partnerId>-wholesale`, and a tenancy id holds 64 characters.
    too_long = client.post(f"{S}/agreement", json={**body, "partnerId": "e" * 55}, headers=ANALYST)
    assert (too_long.status_code, too_long.get_json()["field"]) == (400, "partnerId")
    created = client.post(f"{S}/agreement", json={**body, "partnerId": "e" * 54}, headers=ANALYST)
    assert conforms(created, "mno", "createAgreementVersion")["wholesaleApiKey"] == api_key(
        "e" * 54 + "-wholesale"
    )
