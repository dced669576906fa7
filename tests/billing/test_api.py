"""Billing accounts over HTTP: opening, linking to the MVNE, refusals, tenancy isolation."""

from __future__ import annotations

from conftest import conforms
from flask.testing import FlaskClient

from simulators.core.runtime import Runtime

from .conftest import (
    ACCOUNTS,
    BILLING,
    BILLS,
    ILLINOIS,
    bills_of,
    open_account,
    to_bill_run,
    us_line,
)


def test_an_account_is_pending_until_the_mvne_confirms_the_subscription(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    line = us_line(client, runtime, charlie)
    created = client.post(
        ACCOUNTS,
        json={
            "name": "Pat Doe",
            "product": {"id": line["id"]},
            "ratingType": "postpaid",
            "currency": "USD",
            "creditLimit": {"amount": 150, "units": "USD"},
            "placeOfPrimaryUse": ILLINOIS,
            "billCycleDay": 15,
        },
        headers=charlie,
    )
    body = conforms(created, "billing", "createBillingAccount")
    assert created.headers["Location"] == body["href"]
    assert (body["state"], body["dunningStage"], body["serviceStatus"]) == (
        "pending",
        "none",
        "active",
    )
    runtime.settle()
    account = conforms(
        client.get(f"{ACCOUNTS}/{body['id']}", headers=charlie), "billing", "getBillingAccount"
    )
    assert account["state"] == "active"
    assert account["creditLimit"] == {"amount": 150, "units": "USD"}
    assert account["product"]["href"].endswith(
        f"/mvne/tmf-api/productInventoryManagement/v4/product/{line['id']}"
    )
    # The bill run of its cycle day is on the clock, at the end of the period.
    runs = conforms(client.get(f"{BILLING}/billRun", headers=charlie), "billing", "listBillRuns")
    assert [(r["state"], r["billCycleDay"], r["billingPeriod"]["endDateTime"]) for r in runs] == [
        ("scheduled", 15, "2026-03-15T00:00:00.000Z")
    ]
    twice = client.post(
        ACCOUNTS,
        json={
            "name": "Pat Doe",
            "product": {"id": line["id"]},
            "ratingType": "postpaid",
            "currency": "USD",
            "placeOfPrimaryUse": ILLINOIS,
        },
        headers=charlie,
    )
    assert conforms(twice, "billing", "createBillingAccount")["code"] == "ACCOUNT_EXISTS"


def test_a_subscription_the_mvne_does_not_know_is_rejected(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    account = open_account(client, runtime, charlie, "no-such-product")
    assert (account["state"], account["stateReason"]) == ("rejected", "PRODUCT_NOT_FOUND")
    listed = client.get(f"{ACCOUNTS}?state=rejected", headers=charlie)
    assert [a["id"] for a in conforms(listed, "billing", "listBillingAccounts")] == [account["id"]]


def test_bad_input_is_refused_and_stores_nothing(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    base = {
        "name": "Pat Doe",
        "product": {"id": "p-1"},
        "ratingType": "postpaid",
        "currency": "USD",
        "placeOfPrimaryUse": ILLINOIS,
    }
    for body, status, code in [
        ({**base, "currency": "JPY"}, 400, "INVALID_REQUEST"),
        ({**base, "billCycleDay": 31}, 400, "INVALID_REQUEST"),
        ({**base, "creditLimit": {"amount": 10, "units": "EUR"}}, 422, "CURRENCY_MISMATCH"),
        ({**base, "creditLimit": {"amount": 10.005, "units": "USD"}}, 422, "INVALID_AMOUNT"),
    ]:
        answer = client.post(ACCOUNTS, json=body, headers=charlie)
        assert (answer.status_code, answer.get_json()["code"]) == (status, code), body
        conforms(answer, "billing", "createBillingAccount")
    unauthenticated = client.post(ACCOUNTS, json=base)
    assert conforms(unauthenticated, "billing", "createBillingAccount")["code"] == (
        "UNAUTHENTICATED"
    )
    assert client.get(ACCOUNTS, headers=charlie).get_json() == []


def test_one_partner_never_sees_another_s_billing(
    client: FlaskClient,
    runtime: Runtime,
    charlie: dict[str, str],
    alpha: dict[str, str],
) -> None:
    line = us_line(client, runtime, charlie)
    account = open_account(client, runtime, charlie, line["id"])
    to_bill_run(runtime)
    [bill] = bills_of(client, charlie, account["id"])

    for path, operation in [
        (f"{ACCOUNTS}/{account['id']}", "getBillingAccount"),
        (f"{BILLS}/{bill['id']}", "getCustomerBill"),
        (f"{BILLING}/billRun/{bill['id']}", "getBillRun"),
        (f"{BILLING}/charge/{bill['ledgerEntry'][0]}", "getLedgerEntry"),
    ]:
        answer = client.get(path, headers=alpha)
        assert answer.status_code == 404, path
        problem = conforms(answer, "billing", operation)
        # Exactly what an id that never existed gets: no existence leak.
        unknown = client.get(path.rsplit("/", 1)[0] + "/999999", headers=alpha).get_json()
        assert problem["code"] == unknown["code"]
        assert line["msisdn"] not in answer.get_data(as_text=True)
    assert client.get(ACCOUNTS, headers=alpha).get_json() == []
    assert client.get(f"{BILLS}?billingAccount.id={account['id']}", headers=alpha).get_json() == []
    assert client.get(f"{BILLING}/billRun", headers=alpha).get_json() == []
    # Nor pay, dispute or charge it.
    paid = client.post(
        f"{BILLING}/payment",
        json={
            "customerBill": {"id": bill["id"]},
            "amount": {"amount": 1, "units": "USD"},
            "reference": "x",
        },
        headers=alpha,
    )
    assert conforms(paid, "billing", "createPayment")["code"] == "CUSTOMER_BILL_NOT_FOUND"
    disputed = client.post(
        f"{BILLING}/dispute",
        json={
            "customerBill": {"id": bill["id"]},
            "billLineId": "1",
            "category": "usage",
            "reason": "x",
            "raisedBy": "mvno",
        },
        headers=alpha,
    )
    assert conforms(disputed, "billing", "createDispute")["code"] == "CUSTOMER_BILL_NOT_FOUND"
    charged = client.post(
        f"{BILLING}/charge",
        json={
            "billingAccount": {"id": account["id"]},
            "chargeType": "activation",
            "amount": {"amount": 1, "units": "USD"},
        },
        headers=alpha,
    )
    assert conforms(charged, "billing", "createOneOffCharge")["code"] == (
        "BILLING_ACCOUNT_NOT_FOUND"
    )
    # A partner's accounts for another partner's subscription: the MVNE says it has none.
    foreign = open_account(client, runtime, alpha, line["id"], currency="GBP")
    assert (foreign["state"], foreign["stateReason"]) == ("rejected", "PRODUCT_NOT_FOUND")


def test_the_reconciliation_answers_503_when_the_mvne_is_down(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str], network: object
) -> None:
    line = us_line(client, runtime, charlie)
    open_account(client, runtime, charlie, line["id"])
    network.stack.outage("GET", "/mvne/")  # type: ignore[attr-defined]
    answer = client.get(f"{BILLING}/reconciliation", headers=charlie)
    assert conforms(answer, "billing", "getReconciliation")["code"] == "MVNE_UNREACHABLE"
