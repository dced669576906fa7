"""A bill run against the stack's own tax engine over the tax contract, not the stand-in:
the bill carries every level the engine quotes, and the gap the engine leaves when a
jurisdiction is missing is what the tax reconciliation finds on that bill."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import responses
from conftest import BASE_URL, api_key, conforms, settle
from flask import Flask
from flask.testing import FlaskClient

from simulators.core.inprocess import mount
from simulators.core.runtime import Runtime
from simulators.core.tenancy import BILLING_PLATFORM

from .conftest import bills_of, open_account, to_bill_run, us_line, use

QUOTES = "/tax/v1/quotes"
RECONCILIATIONS = "/tax/v1/reconciliations"
US_LEVELS = {"federal", "state", "county", "city", "district", "e911"}


@pytest.fixture
def network(app: Flask) -> Iterator[responses.RequestsMock]:
    """The whole stack in-process, the tax engine included (no stand-in in front of it)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.stack = mount(mock, app, BASE_URL)  # type: ignore[attr-defined]
        yield mock


@pytest.fixture
def platform() -> dict[str, str]:
    """The billing platform's own key at the tax engine: what the bill run quotes with."""
    return {"X-API-Key": api_key(BILLING_PLATFORM)}


def issued_bill(client: FlaskClient, runtime: Runtime, charlie: dict[str, str]) -> Any:
    line = us_line(client, runtime, charlie)
    account = open_account(client, runtime, charlie, line["id"])
    use(client, line["msisdn"], "data", 100)
    use(client, line["msisdn"], "voice", 30)
    to_bill_run(runtime)
    [bill] = bills_of(client, charlie, account["id"])
    return bill


def quote_of(client: FlaskClient, platform: dict[str, str], bill: dict[str, Any]) -> Any:
    """The quote the bill names: what the tax engine answered for this bill."""
    return conforms(
        client.get(f"{QUOTES}/{bill['taxQuote']}", headers=platform), "tax", "getTaxQuote"
    )


def tax_by_level(bill: dict[str, Any]) -> dict[str, Decimal]:
    return {
        item["taxCategory"]: Decimal(str(item["taxAmount"]["amount"])) for item in bill["taxItem"]
    }


def test_the_bill_carries_every_level_the_tax_engine_quoted(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str], platform: dict[str, str]
) -> None:
    bill = issued_bill(client, runtime, charlie)
    quote = quote_of(client, platform, bill)
    quoted: dict[str, Decimal] = {}
    for line in quote["lines"]:
        for tax in line["taxes"]:
            quoted[tax["level"]] = quoted.get(tax["level"], Decimal(0)) + Decimal(tax["amount"])
    assert set(quoted) == US_LEVELS
    assert tax_by_level(bill) == quoted
    excluded = Decimal(str(bill["taxExcludedAmount"]["amount"]))
    included = Decimal(str(bill["taxIncludedAmount"]["amount"]))
    assert included - excluded == Decimal(quote["totalTax"]) == sum(quoted.values())
    assert Decimal(quote["totalAmount"]) == included


def test_a_missing_city_jurisdiction_leaves_the_bill_short_and_reconciliation_finds_it(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str], platform: dict[str, str]
) -> None:
    rule = {
        "match": {"role": "tax", "operation": "createTaxQuote"},
        "effect": {"type": "data", "fault": "TAX_JURISDICTION_NOT_FOUND", "level": "city"},
    }
    conforms(client.post("/__admin/faults", json=rule), "admin", "addFault")
    bill = issued_bill(client, runtime, charlie)
    # The bill is issued as if the city levied nothing: each side assumed the other had it.
    assert bill["state"] == "sent"
    assert set(tax_by_level(bill)) == US_LEVELS - {"city"}

    report = client.post(RECONCILIATIONS, json={"quoteIds": [bill["taxQuote"]]}, headers=platform)
    [check] = conforms(report, "tax", "reconcileTaxQuotes")["results"]
    assert check["status"] == "discrepant"
    findings = check["findings"]
    assert findings, "the untaxed city level went unnoticed"
    assert {finding["kind"] for finding in findings} == {"missingLevel"}
    assert {finding["level"] for finding in findings} == {"city"}


def test_a_batch_answer_lost_on_the_way_is_retried_without_a_second_quote(
    client: FlaskClient, runtime: Runtime, charlie: dict[str, str], platform: dict[str, str]
) -> None:
    # The tax engine quotes and stores the first batch, then the answer never arrives.
    rule = {
        "id": "batch-answer-lost",
        "match": {"role": "tax", "operation": "createTaxQuoteBatch"},
        "effect": {"type": "timeout", "stage": "after"},
        "dosage": {"firstN": 1},
    }
    conforms(client.post("/__admin/faults", json=rule), "admin", "addFault")
    accounts = []
    for number in range(2):
        line = us_line(client, runtime, charlie, f"ext-{number}")
        accounts.append(open_account(client, runtime, charlie, line["id"]))
    to_bill_run(runtime)
    settle(runtime, 3600)  # the run's step is tried again, and so is the batch
    fault = conforms(client.get("/__admin/faults/batch-answer-lost"), "admin", "getFault")
    assert (fault["matched"], fault["fired"]) == (2, 1)
    for account in accounts:
        [bill] = bills_of(client, charlie, account["id"])
        assert bill["state"] == "sent"
        stored = client.get(f"{QUOTES}?documentId={account['id']}:2026-03-01", headers=platform)
        # One quote per bill at the tax engine: the retry was answered the stored one.
        assert [quote["id"] for quote in conforms(stored, "tax", "listTaxQuotes")] == [
            bill["taxQuote"]
        ]
