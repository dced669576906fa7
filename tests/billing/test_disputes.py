"""Disputes of bill lines: owners from the responsibility matrix, unowned ones flagged,
SLAs on the clock, and resolutions that credit the next bill."""

from __future__ import annotations

from typing import Any

from conftest import conforms, settle
from flask.testing import FlaskClient

from simulators.core.clock import parse_iso
from simulators.core.runtime import Runtime

from .conftest import BILLING, BILLS, bills_of, open_account, to_bill_run, us_line, use

DISPUTES = f"{BILLING}/dispute"


def issued_bill(client: FlaskClient, runtime: Runtime, headers: dict[str, str]) -> Any:
    line = us_line(client, runtime, headers)
    account = open_account(client, runtime, headers, line["id"])
    use(client, line["msisdn"], "voice", 30)  # 1.50
    to_bill_run(runtime)
    [bill] = bills_of(client, headers, account["id"])
    return bill


def dispute(
    client: FlaskClient, headers: dict[str, str], bill: Any, line: str, category: str
) -> Any:
    return client.post(
        DISPUTES,
        json={
            "customerBill": {"id": bill["id"]},
            "billLineId": line,
            "category": category,
            "reason": "I never made these calls",
            "raisedBy": "customer",
        },
        headers=headers,
    )


def test_the_owner_comes_from_the_responsibility_matrix(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    bill = issued_bill(client, runtime, charlie)
    opened = conforms(dispute(client, charlie, bill, "2", "usage"), "billing", "createDispute")
    assert (opened["owner"], opened["unowned"], opened["state"]) == ("mvne", False, "open")
    assert opened["disputedAmount"] == {"amount": 1.5, "units": "USD"}
    sla = parse_iso(opened["slaDueDate"]) - parse_iso(opened["createdDate"])
    assert sla == 10 * 86400


def test_a_dispute_nobody_owns_is_flagged_and_cannot_be_resolved_until_someone_does(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    bill = issued_bill(client, runtime, charlie)
    opened = dispute(client, charlie, bill, "1", "tax").get_json()
    assert (opened["owner"], opened["unowned"]) == (None, True)
    flagged = conforms(
        client.get(f"{DISPUTES}?unowned=true", headers=charlie), "billing", "listDisputes"
    )
    assert [d["id"] for d in flagged] == [opened["id"]]

    refused = client.patch(
        f"{DISPUTES}/{opened['id']}", json={"state": "resolved"}, headers=charlie
    )
    assert conforms(refused, "billing", "updateDispute")["code"] == "DISPUTE_UNOWNED"

    settle(runtime, 11 * 86400)  # past its ten-day SLA, still nobody's
    late = client.get(f"{DISPUTES}?slaBreached=true", headers=charlie).get_json()
    assert [(d["id"], d["slaBreached"]) for d in late] == [(opened["id"], True)]

    owned = client.patch(
        f"{DISPUTES}/{opened['id']}", json={"owner": "billingVendor"}, headers=charlie
    )
    assert conforms(owned, "billing", "updateDispute")["unowned"] is False
    assert client.get(f"{DISPUTES}?unowned=true", headers=charlie).get_json() == []


def test_a_resolution_credits_the_next_bill_and_never_edits_the_issued_one(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    bill = issued_bill(client, runtime, charlie)
    opened = dispute(client, charlie, bill, "2", "usage").get_json()
    investigating = client.patch(
        f"{DISPUTES}/{opened['id']}", json={"state": "investigating"}, headers=charlie
    )
    assert investigating.status_code == 200
    resolved = client.patch(
        f"{DISPUTES}/{opened['id']}",
        json={
            "state": "resolved",
            "adjustment": {"amount": 1.0, "units": "USD"},
            "resolution": "Calls to a premium number blocked after the fact",
        },
        headers=charlie,
    )
    body = conforms(resolved, "billing", "updateDispute")
    assert body["state"] == "resolved"
    assert body["adjustment"]["amount"] == {"amount": -1.0, "units": "USD"}

    unchanged = client.get(f"{BILLS}/{bill['id']}", headers=charlie).get_json()
    assert unchanged == bill
    again = client.patch(f"{DISPUTES}/{opened['id']}", json={"state": "rejected"}, headers=charlie)
    assert again.status_code == 409 and again.get_json()["code"] == "INVALID_TRANSITION"

    settle(runtime, 31 * 86400)  # April's bill run
    april = [
        b for b in bills_of(client, charlie, bill["billingAccount"]["id"]) if b["id"] != bill["id"]
    ]
    [next_bill] = april
    assert [
        (b["lineType"], b["amount"]["amount"], b["taxAmount"]["amount"])
        for b in next_bill["billLine"]
    ] == [("recurring", 25.0, 2.25), ("adjustment", -1.0, 0.0)]
    assert next_bill["taxExcludedAmount"]["amount"] == 24.0
    assert next_bill["taxIncludedAmount"]["amount"] == 26.25
    assert body["adjustment"]["ledgerEntry"] in next_bill["ledgerEntry"]


def test_a_credit_above_the_line_or_a_second_dispute_of_a_line_is_refused(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    bill = issued_bill(client, runtime, charlie)
    opened = dispute(client, charlie, bill, "2", "usage").get_json()
    twice = dispute(client, charlie, bill, "2", "usage")
    assert conforms(twice, "billing", "createDispute")["code"] == "DISPUTE_EXISTS"
    missing = dispute(client, charlie, bill, "9", "usage")
    assert conforms(missing, "billing", "createDispute")["code"] == "BILL_LINE_NOT_FOUND"
    too_much = client.patch(
        f"{DISPUTES}/{opened['id']}",
        json={"state": "resolved", "adjustment": {"amount": 1.51, "units": "USD"}},
        headers=charlie,
    )
    assert conforms(too_much, "billing", "updateDispute")["code"] == "ADJUSTMENT_TOO_LARGE"
    still = client.get(f"{DISPUTES}/{opened['id']}", headers=charlie)
    assert conforms(still, "billing", "getDispute")["state"] == "open"


def resolve(
    client: FlaskClient, headers: dict[str, str], dispute_id: str, amount: float | None
) -> Any:
    body: dict[str, Any] = {"state": "resolved"}
    if amount is not None:
        body["adjustment"] = {"amount": amount, "units": "USD"}
    return client.patch(f"{DISPUTES}/{dispute_id}", json=body, headers=headers)


def test_a_line_disputed_again_is_credited_only_what_earlier_resolutions_left(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    bill = issued_bill(client, runtime, charlie)
    first = dispute(client, charlie, bill, "2", "usage").get_json()
    assert resolve(client, charlie, first["id"], 1.0).status_code == 200

    second = conforms(dispute(client, charlie, bill, "2", "usage"), "billing", "createDispute")
    assert second["disputedAmount"] == {"amount": 0.5, "units": "USD"}
    too_much = resolve(client, charlie, second["id"], 0.51)
    assert conforms(too_much, "billing", "updateDispute")["code"] == "ADJUSTMENT_TOO_LARGE"
    rest = conforms(resolve(client, charlie, second["id"], None), "billing", "updateDispute")
    assert rest["adjustment"]["amount"] == {"amount": -0.5, "units": "USD"}

    third = dispute(client, charlie, bill, "2", "usage")
    assert third.status_code == 409
    assert conforms(third, "billing", "createDispute")["code"] == "LINE_ALREADY_CREDITED"
    listed = client.get(f"{DISPUTES}?customerBill.id={bill['id']}", headers=charlie).get_json()
    assert sorted(d["adjustment"]["amount"]["amount"] for d in listed) == [-1.0, -0.5]


def test_a_line_whose_dispute_was_rejected_can_be_disputed_again_in_full(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    bill = issued_bill(client, runtime, charlie)
    first = dispute(client, charlie, bill, "2", "usage").get_json()
    rejected = client.patch(
        f"{DISPUTES}/{first['id']}", json={"state": "rejected"}, headers=charlie
    )
    assert rejected.status_code == 200
    again = conforms(dispute(client, charlie, bill, "2", "usage"), "billing", "createDispute")
    assert again["disputedAmount"] == {"amount": 1.5, "units": "USD"}


def test_responsibility_is_the_partner_s_to_configure(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    settings = conforms(
        client.get(f"{BILLING}/settings", headers=charlie), "billing", "getBillingSettings"
    )
    settings["disputeResponsibility"]["tax"] = "billingVendor"
    put = client.put(f"{BILLING}/settings", json=settings, headers=charlie)
    assert conforms(put, "billing", "updateBillingSettings") == settings
    bill = issued_bill(client, runtime, charlie)
    opened = dispute(client, charlie, bill, "1", "tax").get_json()
    assert opened["owner"] == "billingVendor"

    settings["dunningLadder"]["reminder"] = 1  # before the retry (2 days)
    bad = client.put(f"{BILLING}/settings", json=settings, headers=charlie)
    assert conforms(bad, "billing", "updateBillingSettings")["code"] == "INVALID_LADDER"
    kept = client.get(f"{BILLING}/settings", headers=charlie).get_json()
    assert kept["dunningLadder"]["reminder"] == 6
