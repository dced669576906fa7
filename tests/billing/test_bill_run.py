"""Bill cycles on the simulated clock: the golden bill, late usage, re-runs and restarts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from conftest import T0, conforms, settle
from flask.testing import FlaskClient

from simulators.billing import model, steps
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
