"""Dunning on the clock: the ladder's steps, suspension and restore reaching the (real,
in-process) MVNE, and the two faults that only the reconciliation catches."""

from __future__ import annotations

from typing import Any

from conftest import conforms, settle
from flask.testing import FlaskClient

from simulators.core.runtime import Runtime

from .conftest import ACCOUNTS, BILLING, DAY, bills_of, open_account, to_bill_run, us_line

PRODUCTS = "/mvne/tmf-api/productInventoryManagement/v4/product"
SHORT_LADDER = {
    "retry": 1,
    "reminder": 2,
    "formalNotice": 3,
    "restriction": 4,
    "suspension": 5,
    "disconnection": 30,
    "collections": 40,
}


def overdue_line(client: FlaskClient, runtime: Runtime, headers: dict[str, str]) -> Any:
    """A line whose first bill is issued at the end of March and due at once."""
    settings = client.get(f"{BILLING}/settings", headers=headers).get_json()
    settings.update(paymentTermDays=0, dunningLadder=SHORT_LADDER)
    assert client.put(f"{BILLING}/settings", json=settings, headers=headers).status_code == 200
    line = us_line(client, runtime, headers)
    account = open_account(client, runtime, headers, line["id"])
    to_bill_run(runtime)
    [bill] = bills_of(client, headers, account["id"])
    return line, account, bill


def steps_taken(client: FlaskClient, headers: dict[str, str]) -> list[tuple[str, str]]:
    answer = client.get(f"{BILLING}/dunningAction", headers=headers)
    return [(a["step"], a["mvneOrder"]) for a in conforms(answer, "billing", "listDunningActions")]


def mvne_status(client: FlaskClient, headers: dict[str, str], product_id: str) -> str:
    status: str = client.get(f"{PRODUCTS}/{product_id}", headers=headers).get_json()["status"]
    return status


def pay(client: FlaskClient, headers: dict[str, str], bill: Any, amount: float, ref: str) -> Any:
    return client.post(
        f"{BILLING}/payment",
        json={
            "customerBill": {"id": bill["id"]},
            "amount": {"amount": amount, "units": "USD"},
            "reference": ref,
        },
        headers=headers,
    )


def reconciliation(client: FlaskClient, headers: dict[str, str]) -> Any:
    answer = client.get(f"{BILLING}/reconciliation", headers=headers)
    return conforms(answer, "billing", "getReconciliation")


def add_fault(client: FlaskClient, rule: dict[str, Any]) -> None:
    answer = client.post("/__admin/faults", json=rule)
    assert answer.status_code == 201, answer.get_data(as_text=True)


def test_the_ladder_suspends_at_the_mvne_and_a_payment_restores(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    line, account, bill = overdue_line(client, runtime, charlie)
    settle(runtime, 3 * DAY + 60)
    assert steps_taken(client, charlie) == [
        ("retry", "none"),
        ("reminder", "none"),
        ("formalNotice", "none"),
    ]
    assert mvne_status(client, charlie, line["id"]) == "active"

    settle(runtime, DAY)
    assert steps_taken(client, charlie)[-1] == ("restriction", "suspendSent")
    assert mvne_status(client, charlie, line["id"]) == "suspended"
    settle(runtime, DAY)
    assert steps_taken(client, charlie)[-1] == ("suspension", "none")  # already suspended
    state = client.get(f"{ACCOUNTS}/{account['id']}", headers=charlie).get_json()
    assert (state["dunningStage"], state["serviceStatus"]) == ("suspension", "suspended")
    assert reconciliation(client, charlie)["breaks"] == 0

    paid = pay(client, charlie, bill, bill["amountDue"]["amount"], "card-0001")
    assert conforms(paid, "billing", "createPayment")["amount"]["amount"] == 27.25
    settle(runtime)
    assert steps_taken(client, charlie)[-1] == ("restore", "restoreSent")
    assert mvne_status(client, charlie, line["id"]) == "active"
    state = client.get(f"{ACCOUNTS}/{account['id']}", headers=charlie).get_json()
    assert (state["dunningStage"], state["serviceStatus"]) == ("none", "active")
    assert state["accountBalance"][0]["amount"]["amount"] == 0
    settled = client.get(
        f"/billing/tmf-api/customerBillManagement/v4/customerBill/{bill['id']}", headers=charlie
    ).get_json()
    assert (settled["state"], settled["remainingAmount"]["amount"]) == ("settled", 0)
    # A settled bill is dunned no further.
    settle(runtime, 40 * DAY)
    assert [step for step, _ in steps_taken(client, charlie)].count("disconnection") == 0


def test_a_suspension_that_never_reaches_the_network_shows_in_the_reconciliation(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    add_fault(
        client,
        {"match": {"role": "billing"}, "effect": {"type": "data", "fault": "SUSPENSION_NOT_SENT"}},
    )
    line, account, _bill = overdue_line(client, runtime, charlie)
    settle(runtime, 4 * DAY + 60)
    assert steps_taken(client, charlie)[-1] == ("restriction", "suspendSent")
    assert mvne_status(client, charlie, line["id"]) == "active"
    report = reconciliation(client, charlie)
    assert report["breaks"] == 1
    [item] = report["items"]
    assert (item["billingAccount"]["id"], item["expectedStatus"], item["mvneStatus"]) == (
        account["id"],
        "suspended",
        "active",
    )
    assert (item["dunningStage"], item["break"]) == ("restriction", "SUSPENSION_NOT_APPLIED")


def test_a_paid_line_whose_restore_order_is_lost_stays_barred_and_is_caught(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    line, account, bill = overdue_line(client, runtime, charlie)
    settle(runtime, 4 * DAY + 60)
    assert mvne_status(client, charlie, line["id"]) == "suspended"
    add_fault(
        client,
        {
            "match": {"role": "billing", "operation": "createPayment"},
            "effect": {"type": "data", "fault": "RESTORE_ORDER_LOST"},
        },
    )
    assert pay(client, charlie, bill, 27.25, "card-0002").status_code == 201
    settle(runtime, 60)
    assert steps_taken(client, charlie)[-1] == ("restore", "restoreSent")  # so billing believes
    assert mvne_status(client, charlie, line["id"]) == "suspended"
    report = client.get(f"{BILLING}/reconciliation?breaksOnly=true", headers=charlie).get_json()
    assert [(i["billingAccount"]["id"], i["break"]) for i in report["items"]] == [
        (account["id"], "RESTORE_NOT_APPLIED")
    ]


def test_payments_are_exact_and_counted_once(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    _line, _account, bill = overdue_line(client, runtime, charlie)
    too_much = pay(client, charlie, bill, 27.26, "card-1")
    assert conforms(too_much, "billing", "createPayment")["code"] == "OVERPAYMENT"
    fraction = pay(client, charlie, bill, 0.001, "card-1")
    assert fraction.status_code == 422 and fraction.get_json()["code"] == "INVALID_AMOUNT"

    part = pay(client, charlie, bill, 10.25, "card-1")
    assert part.status_code == 201
    again = pay(client, charlie, bill, 10.25, "card-1")
    assert again.get_json()["id"] == part.get_json()["id"]
    other = pay(client, charlie, bill, 5, "card-1")
    assert conforms(other, "billing", "createPayment")["code"] == "PAYMENT_REFERENCE_REUSED"
    listed = client.get(f"{BILLING}/payment?customerBill.id={bill['id']}", headers=charlie)
    assert len(conforms(listed, "billing", "listPayments")) == 1
    partly = client.get(
        f"/billing/tmf-api/customerBillManagement/v4/customerBill/{bill['id']}", headers=charlie
    ).get_json()
    assert (partly["state"], partly["remainingAmount"]["amount"]) == ("partiallyPaid", 17.0)
    # Still owing: the ladder goes on.
    settle(runtime, 4 * DAY + 60)
    assert steps_taken(client, charlie)[-1] == ("restriction", "suspendSent")


def test_disconnection_terminates_the_line_and_a_late_payment_does_not_revive_it(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    line, account, bill = overdue_line(client, runtime, charlie)
    settle(runtime, 30 * DAY + 60)
    assert steps_taken(client, charlie)[-1] == ("disconnection", "terminateSent")
    assert mvne_status(client, charlie, line["id"]) == "terminated"
    settle(runtime, 10 * DAY)
    assert steps_taken(client, charlie)[-1] == ("collections", "none")
    state = client.get(f"{ACCOUNTS}/{account['id']}", headers=charlie).get_json()
    assert (state["dunningStage"], state["serviceStatus"]) == ("collections", "terminated")

    assert pay(client, charlie, bill, 27.25, "collector-1").status_code == 201
    settle(runtime)
    assert [step for step, _ in steps_taken(client, charlie)].count("restore") == 0
    assert mvne_status(client, charlie, line["id"]) == "terminated"
    assert reconciliation(client, charlie)["breaks"] == 0
