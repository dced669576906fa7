"""Bill cycles on the simulated clock: the golden bill, late usage, re-runs and restarts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from conftest import T0, conforms, settle
from flask.testing import FlaskClient

from simulators.billing import model, steps, taxes
from simulators.core.runtime import Runtime

from .conftest import (
    ACCOUNTS,
    BILLING,
    BILLS,
    END_OF_MARCH,
    TaxEngine,
    bills_of,
    open_account,
    to_bill_run,
    us_line,
    use,
)


def money(amount: str) -> dict[str, Any]:
    return {"amount": float(Decimal(amount)), "units": "USD"}


def golden_account(client: FlaskClient, runtime: Runtime, charlie: dict[str, str]) -> Any:
    line = us_line(client, runtime, charlie)
    account = open_account(client, runtime, charlie, line["id"])
    use(client, line["msisdn"], "data", 100)  # 100 MB at 0.02 = 2.00
    use(client, line["msisdn"], "voice", 30)  # 30 min at 0.05 = 1.50
    use(client, line["msisdn"], "sms", 10)  # 10 SMS at 0.02 = 0.20
    return line, account


def test_golden_bill(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str], tax_engine: TaxEngine
) -> None:
    _line, account = golden_account(client, runtime, charlie)
    assert account["state"] == "active"
    to_bill_run(runtime)

    [listed] = bills_of(client, charlie, account["id"])
    answer = client.get(f"{BILLS}/{listed['id']}", headers=charlie)
    bill = conforms(answer, "billing", "getCustomerBill")
    assert bill["billNo"] == "BILL-2026-000001"
    assert bill["state"] == "sent"
    assert bill["billingPeriod"] == {
        "startDateTime": "2026-03-01T00:00:00.000Z",
        "endDateTime": "2026-04-01T00:00:00.000Z",
    }
    lines = [(b["lineType"], b.get("usageType"), b["amount"]["amount"]) for b in bill["billLine"]]
    assert lines == [
        ("recurring", None, 25.0),
        ("usage", "data", 2.0),
        ("usage", "voice", 1.5),
        ("usage", "sms", 0.2),
    ]
    # State 5 %: 1.25 + 0.10 + 0.075 -> 0.08 (half-up) + 0.01 = 1.44; E911 1.00 on the plan line.
    taxes = {item["taxCategory"]: (item["taxRate"], item["taxAmount"]) for item in bill["taxItem"]}
    assert taxes == {"state": (0.05, money("1.44")), "e911": (None, money("1.00"))}
    assert bill["taxExcludedAmount"] == money("28.70")
    assert bill["taxIncludedAmount"] == money("31.14")
    assert bill["amountDue"] == money("31.14")
    assert bill["remainingAmount"] == money("31.14")
    assert [line["taxAmount"]["amount"] for line in bill["billLine"]] == [2.25, 0.1, 0.08, 0.01]
    # What the tax engine was asked: the plan as access with one subscriber line, usage as usage.
    [request] = tax_engine.requests
    assert [(x["serviceType"], x["amount"], x["lineCount"]) for x in request["lines"]] == [
        ("access", "25.00", 1),
        ("usage", "2.00", 0),
        ("usage", "1.50", 0),
        ("usage", "0.20", 0),
    ]
    assert request["placeOfPrimaryUse"]["postalCode"] == "62701-1234"
    account_now = client.get(f"{ACCOUNTS}/{account['id']}", headers=charlie).get_json()
    assert account_now["accountBalance"][0]["amount"] == money("31.14")


def test_cycles_follow_the_clock_and_number_bills_in_sequence(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    line, account = golden_account(client, runtime, charlie)
    to_bill_run(runtime)
    use(client, line["msisdn"], "sms", 5)  # April's usage: 0.10
    settle(runtime, 31 * 86400)  # past the end of April

    bills = sorted(bills_of(client, charlie, account["id"]), key=lambda b: b["billNo"])
    assert [b["billNo"] for b in bills] == ["BILL-2026-000001", "BILL-2026-000002"]
    april = bills[1]
    assert april["billingPeriod"]["startDateTime"] == "2026-04-01T00:00:00.000Z"
    assert [(b["lineType"], b["amount"]["amount"]) for b in april["billLine"]] == [
        ("recurring", 25.0),
        ("usage", 0.1),
    ]
    # No entry is ever billed twice.
    assert not set(bills[0]["ledgerEntry"]) & set(april["ledgerEntry"])
    runs = client.get(f"{BILLING}/billRun", headers=charlie)
    listed = conforms(runs, "billing", "listBillRuns")
    assert [(r["state"], r["billsIssued"]) for r in listed][-2:] == [
        ("completed", 1),
        ("completed", 1),
    ]


def test_a_re_run_of_a_period_issues_nothing_new_and_the_ledger_recomposes_the_bill(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    _line, account = golden_account(client, runtime, charlie)
    to_bill_run(runtime)
    [before] = bills_of(client, charlie, account["id"])
    with runtime.store.read() as conn:
        run = conn.execute(model.run_table.select()).first()
    steps.run_bill_run(runtime, run.id)
    [after] = bills_of(client, charlie, account["id"])
    assert after == before
    with runtime.store.read() as conn:
        bill = model.load_bill(conn, before["id"])
        again = model.recompose(conn, bill)
    assert again.tax_included_minor == bill.tax_included_minor == 3114
    assert again.tax_excluded_minor == bill.tax_excluded_minor


def test_a_run_interrupted_between_accounts_issues_each_bill_exactly_once(
    client: FlaskClient,
    runtime: Runtime,
    charlie: dict[str, str],
    tax_engine: TaxEngine,
    monkeypatch: Any,
) -> None:
    accounts = []
    for number in range(3):
        line = us_line(client, runtime, charlie, f"ext-{number}")
        accounts.append(open_account(client, runtime, charlie, line["id"]))
    # One bill per tax call, so that the outage falls between two accounts.
    monkeypatch.setattr(taxes, "MAX_BATCH", 1)
    tax_engine.down_after = 1  # the tax engine fails after its first quote
    to_bill_run(runtime)
    issued = [bills_of(client, charlie, a["id"]) for a in accounts]
    # One account was billed before the outage (which one: calls go out several at once).
    assert sorted(len(b) for b in issued) == [0, 0, 1]
    runs = conforms(client.get(f"{BILLING}/billRun", headers=charlie), "billing", "listBillRuns")
    assert [r["state"] for r in runs] == ["running"]
    run = runs[0]

    tax_engine.down_after = None
    settle(runtime, 3600)  # the run's step is tried again
    issued = [bills_of(client, charlie, a["id"]) for a in accounts]
    assert [len(b) for b in issued] == [1, 1, 1]
    numbers = sorted(b[0]["billNo"] for b in issued)
    assert numbers == ["BILL-2026-000001", "BILL-2026-000002", "BILL-2026-000003"]
    run = client.get(f"{BILLING}/billRun/{run['id']}", headers=charlie).get_json()
    assert (run["state"], run["billsIssued"], run["failures"]) == ("completed", 3, [])


def test_a_missing_tax_level_holds_the_bill(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str], tax_engine: TaxEngine
) -> None:
    _line, account = golden_account(client, runtime, charlie)
    tax_engine.omit = {"state"}
    to_bill_run(runtime)
    [bill] = bills_of(client, charlie, account["id"])
    assert bill["state"] == "onHold"
    assert bill["stateReason"].startswith("TAX_LEVEL_MISSING: state on line 1")
    # A held bill is not sent, so it is not dunned.
    settle(runtime, 40 * 86400)
    actions = client.get(f"{BILLING}/dunningAction", headers=charlie).get_json()
    assert actions == []


def test_an_exempt_level_is_neither_taxed_nor_missing(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    line = us_line(client, runtime, charlie)
    account = open_account(client, runtime, charlie, line["id"], taxExemption=[{"level": "state"}])
    to_bill_run(runtime)
    [bill] = bills_of(client, charlie, account["id"])
    assert bill["state"] == "sent"
    assert [item["taxCategory"] for item in bill["taxItem"]] == ["e911"]
    assert bill["taxIncludedAmount"]["amount"] == 26.0


def test_a_refused_quote_holds_the_bill_with_the_engine_s_code(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    line = us_line(client, runtime, charlie)
    po_box = {"line1": "PO Box 12", "city": "Springfield", "postalCode": "62701", "country": "US"}
    account = open_account(client, runtime, charlie, line["id"], placeOfPrimaryUse=po_box)
    to_bill_run(runtime)
    [bill] = bills_of(client, charlie, account["id"])
    assert (bill["state"], bill["stateReason"]) == ("onHold", "TAX_REFUSED: PO_BOX_NOT_PRIMARY_USE")
    assert bill["taxItem"] == []


def test_prepaid_usage_is_not_billed_again(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    line = us_line(client, runtime, charlie)
    account = open_account(client, runtime, charlie, line["id"], ratingType="prepaid")
    use(client, line["msisdn"], "voice", 10)
    to_bill_run(runtime)
    [bill] = bills_of(client, charlie, account["id"])
    assert [b["lineType"] for b in bill["billLine"]] == ["recurring"]
    # Nor does a prepaid line owe the monthly E911 fee: state tax only, and not on hold.
    assert bill["state"] == "sent"
    assert [item["taxCategory"] for item in bill["taxItem"]] == ["state"]


def test_a_partner_without_usage_access_gets_a_run_failure_not_a_wrong_bill(
    client: FlaskClient, runtime: Runtime, bravo: dict[str, str]
) -> None:
    line = us_line(client, runtime, bravo)
    account = open_account(client, runtime, bravo, line["id"])
    to_bill_run(runtime)
    assert bills_of(client, bravo, account["id"]) == []
    (march,) = [
        r
        for r in client.get(f"{BILLING}/billRun", headers=bravo).get_json()
        if r["state"] == "completed"
    ]
    run = march
    assert [(f["billingAccount"]["id"], f["code"]) for f in run["failures"]] == [
        (account["id"], "USAGE_UNAVAILABLE")
    ]


def test_a_period_whose_run_failed_for_an_account_is_charged_on_its_next_bill(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    line = us_line(client, runtime, charlie)
    account = open_account(client, runtime, charlie, line["id"])
    usage_access = "/__admin/partners/mvno-charlie/capabilities/QUERY_USAGE"
    assert client.put(usage_access, json={"status": "suspended"}).status_code == 200
    to_bill_run(runtime)  # March's run cannot read the usage: a failure, no bill
    assert bills_of(client, charlie, account["id"]) == []
    assert client.put(usage_access, json={"status": "granted"}).status_code == 200
    settle(runtime, 31 * 86400)  # April's run

    [april] = bills_of(client, charlie, account["id"])
    fees = [
        (line["lineType"], line["amount"]["amount"], line["description"])
        for line in april["billLine"]
    ]
    assert fees == [
        ("recurring", 25.0, "US Talk & Text, monthly plan (period from 2026-03-01)"),
        ("recurring", 25.0, "US Talk & Text, monthly plan"),
    ]
    settle(runtime, 30 * 86400)  # May's run: March is billed now, and charged no more
    may = [b for b in bills_of(client, charlie, account["id"]) if b["id"] != april["id"]]
    assert [[line["lineType"] for line in bill["billLine"]] for bill in may] == [["recurring"]]


def test_a_one_off_charge_rides_on_the_next_bill_taxed_as_its_kind(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str], tax_engine: TaxEngine
) -> None:
    line = us_line(client, runtime, charlie)
    account = open_account(client, runtime, charlie, line["id"])
    answer = client.post(
        f"{BILLING}/charge",
        json={
            "billingAccount": {"id": account["id"]},
            "chargeType": "equipment",
            "amount": {"amount": 9.99, "units": "USD"},
            "description": "Replacement SIM",
        },
        headers=charlie,
    )
    entry = conforms(answer, "billing", "createOneOffCharge")
    assert entry["period"] == "2026-03-01"
    fetched = client.get(f"{BILLING}/charge/{entry['id']}", headers=charlie)
    assert conforms(fetched, "billing", "getLedgerEntry") == entry
    to_bill_run(runtime)
    [bill] = bills_of(client, charlie, account["id"])
    assert [(b["lineType"], b["amount"]["amount"]) for b in bill["billLine"]] == [
        ("recurring", 25.0),
        ("oneOff", 9.99),
    ]
    assert tax_engine.requests[0]["lines"][1]["serviceType"] == "equipment"
    assert entry["id"] in bill["ledgerEntry"]


def test_the_clock_starts_where_the_fixtures_say() -> None:
    assert END_OF_MARCH - T0 == 29 * 86400 + 15 * 3600


def test_a_one_off_charge_over_the_credit_limit_is_refused(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str]
) -> None:
    line = us_line(client, runtime, charlie)
    account = open_account(
        client, runtime, charlie, line["id"], creditLimit={"amount": 50, "units": "USD"}
    )
    to_bill_run(runtime)  # 25.00 + 2.25 tax owed, unpaid

    def charge(amount: float) -> Any:
        return client.post(
            f"{BILLING}/charge",
            json={
                "billingAccount": {"id": account["id"]},
                "chargeType": "equipment",
                "amount": {"amount": amount, "units": "USD"},
            },
            headers=charlie,
        )

    assert charge(20).status_code == 201  # 27.25 + 20.00 = 47.25
    refused = charge(2.76)  # 50.01
    assert conforms(refused, "billing", "createOneOffCharge")["code"] == "CREDIT_LIMIT_EXCEEDED"
    assert charge(2.75).status_code == 201  # exactly 50.00


def test_a_bill_on_hold_still_counts_towards_the_credit_limit(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str], tax_engine: TaxEngine
) -> None:
    line = us_line(client, runtime, charlie)
    account = open_account(
        client, runtime, charlie, line["id"], creditLimit={"amount": 50, "units": "USD"}
    )
    tax_engine.omit = {"state"}
    to_bill_run(runtime)
    [bill] = bills_of(client, charlie, account["id"])
    assert bill["state"] == "onHold"
    owed = bill["amountDue"]["amount"]
    seen = client.get(f"{ACCOUNTS}/{account['id']}", headers=charlie).get_json()
    assert seen["accountBalance"] == [
        {"balanceType": "receivable", "amount": {"amount": owed, "units": "USD"}}
    ]
    over = client.post(
        f"{BILLING}/charge",
        json={
            "billingAccount": {"id": account["id"]},
            "chargeType": "equipment",
            "amount": {"amount": 49.0, "units": "USD"},
        },
        headers=charlie,
    )
    assert conforms(over, "billing", "createOneOffCharge")["code"] == "CREDIT_LIMIT_EXCEEDED"


class Killed(BaseException):
    """The process dying: not an exception any step would catch."""


def test_a_run_killed_after_a_bill_and_run_again_issues_each_bill_once(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str], monkeypatch: Any
) -> None:
    accounts = []
    for number in range(3):
        line = us_line(client, runtime, charlie, f"ext-{number}")
        accounts.append(open_account(client, runtime, charlie, line["id"]))
    monkeypatch.setattr(steps, "CHUNK", 1)  # one bill per transaction
    issue = model.issue_bills
    calls = []

    def dies_on_the_second(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return issue(*args, **kwargs)

    monkeypatch.setattr(model, "issue_bills", dies_on_the_second)
    with runtime.store.read() as conn:
        run = conn.execute(model.run_table.select()).one()
    runtime.clock.set(run.period_end + 1)
    try:
        steps.run_bill_run(runtime, run.id)
    except Killed:
        pass
    assert sorted(len(bills_of(client, charlie, a["id"])) for a in accounts) == [0, 0, 1]

    monkeypatch.setattr(model, "issue_bills", issue)
    steps.run_bill_run(runtime, run.id)
    steps.run_bill_run(runtime, run.id)
    issued = [bills_of(client, charlie, a["id"]) for a in accounts]
    assert [len(b) for b in issued] == [1, 1, 1]
    assert sorted(b[0]["billNo"] for b in issued) == [
        "BILL-2026-000001",
        "BILL-2026-000002",
        "BILL-2026-000003",
    ]


def test_bills_are_taxed_in_batches_and_a_refusal_holds_its_bill_alone(
    client: FlaskClient,
    runtime: Runtime,
    charlie: dict[str, str],
    tax_engine: TaxEngine,
    monkeypatch: Any,
) -> None:
    po_box = {"line1": "PO Box 12", "city": "Springfield", "postalCode": "62701", "country": "US"}
    accounts = []
    for number in range(5):
        line = us_line(client, runtime, charlie, f"ext-{number}")
        place = {"placeOfPrimaryUse": po_box} if number == 2 else {}
        accounts.append(open_account(client, runtime, charlie, line["id"], **place))
    monkeypatch.setattr(taxes, "MAX_BATCH", 3)
    to_bill_run(runtime)
    # Five bills, two calls: the tax contract's batch, here 3 bills at most.
    assert (tax_engine.batches, len(tax_engine.requests)) == (2, 5)
    bills = [bills_of(client, charlie, a["id"]) for a in accounts]
    assert [len(b) for b in bills] == [1, 1, 1, 1, 1]
    states = [(b[0]["state"], b[0].get("stateReason")) for b in bills]
    assert states[2] == ("onHold", "TAX_REFUSED: PO_BOX_NOT_PRIMARY_USE")
    assert [state for n, (state, _) in enumerate(states) if n != 2] == ["sent"] * 4
    # Each bill is its own document, so its own idempotency key at the tax engine.
    keys = [taxes.quote_key(request) for request in tax_engine.requests]
    assert sorted(key.split("/")[0] for key in keys) == sorted(
        f"{a['id']}:2026-03-01" for a in accounts
    )
