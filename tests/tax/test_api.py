"""The tax engine over HTTP, as the billing platform and the control plane see it: every
answer checked against contracts/tax.yaml."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import api_key, conforms
from flask.testing import FlaskClient

from simulators.core.runtime import Runtime
from simulators.core.tenancy import BILLING_PLATFORM, create_partner

QUOTES = "/tax/v1/quotes"
RECONCILIATIONS = "/tax/v1/reconciliations"
FAULTS = "/__admin/faults"


@pytest.fixture
def billing() -> dict[str, str]:
    return {"X-API-Key": api_key(BILLING_PLATFORM)}


def body(postal: str = "62701-1234", **overrides: Any) -> dict[str, Any]:
    quote: dict[str, Any] = {
        "documentId": "BILL-2026-000123",
        "date": "2026-03-31",
        "currency": "USD",
        "customer": {"type": "B2C", "vatId": None, "exemptions": []},
        "placeOfPrimaryUse": {
            "line1": "1 Main St",
            "city": "Springfield",
            "region": "IL",
            "postalCode": postal,
            "country": "US",
        },
        "lines": [
            {
                "lineId": "1",
                "amount": "25.00",
                "transactionType": "wireless",
                "serviceType": "access",
                "lineCount": 1,
            }
        ],
    }
    quote.update(overrides)
    return quote


def post_quote(client: FlaskClient, headers: dict[str, str], quote: dict[str, Any]) -> Any:
    return client.post(QUOTES, json=quote, headers=headers)


def levels(quote: dict[str, Any], line: int = 0) -> dict[str, tuple[str, str]]:
    return {
        tax["level"]: (tax["jurisdictionCode"], tax["amount"])
        for tax in quote["lines"][line]["taxes"]
    }


def add_fault(client: FlaskClient, fault: str, **effect: Any) -> None:
    rule = {
        "match": {"role": "tax", "operation": "createTaxQuote"},
        "effect": {"type": "data", "fault": fault, **effect},
    }
    conforms(client.post(FAULTS, json=rule), "admin", "addFault")


# --- golden quotes ---------------------------------------------------------------------------


def test_a_us_quote_has_every_level_and_is_stored(client, billing):
    response = post_quote(client, billing, body())
    quote = conforms(response, "tax", "createTaxQuote")
    assert response.status_code == 201
    assert response.headers["Location"] == quote["href"]
    assert quote["id"].startswith("txq_") and quote["documentId"] == "BILL-2026-000123"
    assert levels(quote) == {
        "federal": ("US", "3.15"),
        "state": ("US-IL", "1.75"),
        "county": ("US-IL-SANGAMON", "0.31"),
        "city": ("US-IL-SPRINGFIELD", "1.50"),
        "district": ("US-IL-SMTD", "0.19"),
        "e911": ("US-IL-911", "1.50"),
    }
    federal = quote["lines"][0]["taxes"][0]
    assert (federal["rate"], federal["basis"]) == ("0.34", "9.28")
    e911 = quote["lines"][0]["taxes"][-1]
    assert (e911["rate"], e911["basis"]) == (None, "1")
    assert (quote["totalTax"], quote["totalAmount"]) == ("8.40", "33.40")
    again = client.get(quote["href"].removeprefix("http://localhost"), headers=billing)
    assert conforms(again, "tax", "getTaxQuote") == quote


def test_an_eu_b2c_quote_pays_vat_and_records_its_evidence(client, billing):
    address = {"line1": "Hauptstr. 1", "postalCode": "10115", "country": "DE"}
    quote = conforms(
        post_quote(
            client,
            billing,
            body(currency="EUR", placeOfPrimaryUse=address, evidence={"imsi": "262011234567890"}),
        ),
        "tax",
        "createTaxQuote",
    )
    assert levels(quote) == {"vat": ("DE", "4.63")}
    assert quote["lines"][0]["taxes"][0]["rate"] == "0.185"
    assert quote["evidence"] == {
        "country": "DE",
        "sources": ["address", "imsi"],
        "imsiCountry": "DE",
    }
    assert (quote["totalTax"], quote["totalAmount"]) == ("4.63", "29.63")


def test_an_eu_b2b_quote_with_a_vat_id_is_a_reverse_charge(client, billing):
    address = {"line1": "Calle Mayor 1", "postalCode": "28013", "country": "ES"}
    customer = {"type": "B2B", "vatId": "ESX1234567X"}
    quote = conforms(
        post_quote(
            client, billing, body(currency="EUR", placeOfPrimaryUse=address, customer=customer)
        ),
        "tax",
        "createTaxQuote",
    )
    [vat] = quote["lines"][0]["taxes"]
    assert (vat["level"], vat["rate"], vat["amount"]) == ("vat", "0", "0.00")
    assert "reverse charge" in vat["name"]
    assert (quote["totalTax"], quote["totalAmount"]) == ("0.00", "25.00")


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        (
            {"placeOfPrimaryUse": {"line1": "PO Box 77", "postalCode": "62701", "country": "US"}},
            "PO_BOX_NOT_PRIMARY_USE",
            "placeOfPrimaryUse.line1",
        ),
        (
            {"placeOfPrimaryUse": {"line1": "PO Box123", "postalCode": "62701", "country": "US"}},
            "PO_BOX_NOT_PRIMARY_USE",
            "placeOfPrimaryUse.line1",
        ),
        (
            {"placeOfPrimaryUse": {"line1": "1 Main St", "postalCode": "62701\n", "country": "US"}},
            "JURISDICTION_NOT_FOUND",
            "placeOfPrimaryUse.postalCode",
        ),
        (
            {"placeOfPrimaryUse": {"line1": "1 Main St", "postalCode": "62701"}},
            "COUNTRY_REQUIRED",
            "placeOfPrimaryUse.country",
        ),
        (
            {
                "lines": [
                    {
                        "lineId": "9",
                        "amount": "1.00",
                        "transactionType": "wireline",
                        "serviceType": "access",
                    }
                ]
            },
            "UNKNOWN_TRANSACTION_SERVICE",
            "lines[0].serviceType",
        ),
        (
            {"placeOfPrimaryUse": {"line1": "1 Main St", "postalCode": "00501", "country": "US"}},
            "JURISDICTION_NOT_FOUND",
            "placeOfPrimaryUse.postalCode",
        ),
    ],
)
def test_refusals_are_problems_naming_the_field_and_store_nothing(
    client, billing, overrides, code, field
):
    refused = post_quote(client, billing, body(**overrides))
    problem = conforms(refused, "tax", "createTaxQuote")
    assert refused.status_code == 422
    assert (problem["code"], problem["field"]) == (code, field)
    listed = conforms(client.get(QUOTES, headers=billing), "tax", "listTaxQuotes")
    assert listed == []


def test_the_unknown_pair_names_its_line(client, billing):
    lines = [
        {"lineId": "ok", "amount": "1", "transactionType": "wireless", "serviceType": "usage"},
        {"lineId": "bad", "amount": "1", "transactionType": "wireless", "serviceType": "fax"},
    ]
    problem = post_quote(client, billing, body(lines=lines)).get_json()
    assert problem["lineId"] == "bad" and "wireless/fax" in problem["detail"]


def test_a_charge_with_fractions_of_a_cent_breaks_the_contract(client, billing):
    lines = [
        {"lineId": "1", "amount": "1.005", "transactionType": "wireless", "serviceType": "usage"}
    ]
    refused = post_quote(client, billing, body(lines=lines))
    assert conforms(refused, "tax", "createTaxQuote")["field"] == "lines[0].amount"
    assert refused.status_code == 400


def test_callers_without_a_key_or_the_capability_are_refused(client, runtime: Runtime):
    assert conforms(client.post(QUOTES, json=body()), "tax", "createTaxQuote")["status"] == 401
    with runtime.store.write() as conn:
        key = create_partner(
            conn,
            secret_key=runtime.settings.secret_key,
            partner_id="tax-reader",
            role="tax",
            name="Reader",
            agreement={},
            granted=["QUERY_TAX"],
            now=runtime.clock.now(conn),
        )
    refused = post_quote(client, {"X-API-Key": key}, body())
    assert conforms(refused, "tax", "createTaxQuote")["code"] == "CAPABILITY_NOT_GRANTED"


# --- stored quotes -------------------------------------------------------------------------


def test_quotes_are_listed_per_document_with_paging(client, billing):
    ids = [
        post_quote(client, billing, body(documentId=document)).get_json()["id"]
        for document in ("BILL-A", "BILL-B", "BILL-A", "BILL-A")
    ]
    page = client.get(f"{QUOTES}?documentId=BILL-A&limit=2", headers=billing)
    listed = conforms(page, "tax", "listTaxQuotes")
    assert [quote["id"] for quote in listed] == [ids[0], ids[2]]
    assert (page.headers["X-Total-Count"], page.headers["X-Result-Count"]) == ("3", "2")
    rest = client.get(f"{QUOTES}?documentId=BILL-A&offset=2", headers=billing).get_json()
    assert [quote["id"] for quote in rest] == [ids[3]]


def test_another_client_cannot_read_the_quote(client, billing, runtime: Runtime):
    quote = post_quote(client, billing, body()).get_json()
    with runtime.store.write() as conn:
        key = create_partner(
            conn,
            secret_key=runtime.settings.secret_key,
            partner_id="tax-other",
            role="tax",
            name="Other",
            agreement={},
            granted=["QUERY_TAX", "RECONCILE_TAX"],
            now=runtime.clock.now(conn),
        )
    other = {"X-API-Key": key}
    missing = client.get(f"{QUOTES}/{quote['id']}", headers=other)
    assert conforms(missing, "tax", "getTaxQuote")["code"] == "QUOTE_NOT_FOUND"
    assert client.get(QUOTES, headers=other).get_json() == []
    report = client.post(RECONCILIATIONS, json={"quoteIds": [quote["id"]]}, headers=other)
    assert conforms(report, "tax", "reconcileTaxQuotes")["status"] == 404


def test_a_retry_with_the_same_idempotency_key_answers_the_first_quote(client, billing):
    headers = {**billing, "Idempotency-Key": "bill-run-7-invoice-123"}
    first = post_quote(client, headers, body())
    again = post_quote(client, headers, body())
    assert conforms(again, "tax", "createTaxQuote") == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(client.get(QUOTES, headers=billing).get_json()) == 1
    reused = post_quote(client, headers, body(documentId="OTHER"))
    assert conforms(reused, "tax", "createTaxQuote")["code"] == "IDEMPOTENCY_KEY_REUSED"


# --- data faults through the control plane ----------------------------------------------------


def test_jurisdiction_not_found_quotes_no_tax_for_the_level(client, billing):
    add_fault(client, "TAX_JURISDICTION_NOT_FOUND")
    quote = conforms(post_quote(client, billing, body()), "tax", "createTaxQuote")
    assert "city" not in levels(quote) and quote["totalTax"] == "6.90"
    client.delete(FAULTS)
    add_fault(client, "TAX_JURISDICTION_NOT_FOUND", level="e911")
    quote = conforms(post_quote(client, billing, body()), "tax", "createTaxQuote")
    assert "e911" not in levels(quote) and "city" in levels(quote)


def test_a_defaulted_zip_is_taxed_by_its_default_city(client, billing):
    assert levels(post_quote(client, billing, body("62704-5123")).get_json())["city"][0] == (
        "US-IL-LELAND-GROVE"
    )
    add_fault(client, "TAX_JURISDICTION_DEFAULTED")
    quote = conforms(post_quote(client, billing, body("62704-5123")), "tax", "createTaxQuote")
    assert levels(quote)["city"] == ("US-IL-SPRINGFIELD", "1.50")
    assert quote["jurisdiction"]["resolvedBy"] == "zipDefault"


def test_an_annexation_not_loaded_leaves_the_area_untaxed_by_the_city(client, billing):
    add_fault(client, "TAX_ANNEXATION_NOT_LOADED")
    quote = conforms(post_quote(client, billing, body("62712-3100")), "tax", "createTaxQuote")
    assert "city" not in levels(quote) and "district" not in levels(quote)


def test_the_e911_fee_sourced_to_the_wrong_district(client, billing):
    add_fault(client, "TAX_E911_WRONG_DISTRICT")
    quote = conforms(post_quote(client, billing, body()), "tax", "createTaxQuote")
    assert levels(quote)["e911"] == ("US-IL-CHI-911", "5.00")


def test_a_fault_rule_matches_on_the_address_fields(client, billing):
    rule = {
        "match": {"role": "tax", "fields": {"postalCode": "62701-1234"}},
        "effect": {"type": "data", "fault": "TAX_JURISDICTION_NOT_FOUND", "level": "county"},
    }
    conforms(client.post(FAULTS, json=rule), "admin", "addFault")
    assert "county" not in levels(post_quote(client, billing, body()).get_json())
    assert "county" in levels(post_quote(client, billing, body("62701")).get_json())


# --- reconciliation -------------------------------------------------------------------------


def test_reconciliation_catches_the_injected_gap(client, billing):
    clean = post_quote(client, billing, body()).get_json()
    client.post("/__admin/scenarios/tax-jurisdiction-gap")
    gap = conforms(post_quote(client, billing, body()), "tax", "createTaxQuote")
    assert "city" not in levels(gap)
    report = conforms(
        client.post(RECONCILIATIONS, json={"documentId": "BILL-2026-000123"}, headers=billing),
        "tax",
        "reconcileTaxQuotes",
    )
    assert (report["quotes"], report["matched"], report["discrepant"]) == (2, 1, 1)
    first, second = report["results"]
    assert (first["quoteId"], first["status"], first["findings"]) == (clean["id"], "matched", [])
    assert (second["quoteId"], second["status"]) == (gap["id"], "discrepant")
    assert (second["quotedTax"], second["expectedTax"]) == ("6.90", "8.40")
    assert second["findings"] == [
        {
            "lineId": "1",
            "level": "city",
            "kind": "missingLevel",
            "expectedJurisdictionCode": "US-IL-SPRINGFIELD",
            "quotedAmount": "0.00",
            "expectedAmount": "1.50",
            "difference": "1.50",
        }
    ]


def test_reconciliation_by_quote_ids_names_moved_jurisdictions(client, billing):
    add_fault(client, "TAX_E911_WRONG_DISTRICT")
    quote = post_quote(client, billing, body()).get_json()
    report = conforms(
        client.post(RECONCILIATIONS, json={"quoteIds": [quote["id"]]}, headers=billing),
        "tax",
        "reconcileTaxQuotes",
    )
    [finding] = report["results"][0]["findings"]
    assert (
        finding["kind"],
        finding["quotedJurisdictionCode"],
        finding["expectedJurisdictionCode"],
        finding["difference"],
    ) == (
        "jurisdictionDiffers",
        "US-IL-CHI-911",
        "US-IL-911",
        "-3.50",
    )


def test_reconciling_an_unknown_quote_is_a_404_naming_it(client, billing):
    missing = client.post(RECONCILIATIONS, json={"quoteIds": ["txq_nope"]}, headers=billing)
    problem = conforms(missing, "tax", "reconcileTaxQuotes")
    assert (problem["code"], problem["field"]) == ("QUOTE_NOT_FOUND", "quoteId")
    both = client.post(
        RECONCILIATIONS, json={"quoteIds": ["a"], "documentId": "b"}, headers=billing
    )
    assert conforms(both, "tax", "reconcileTaxQuotes")["status"] == 400
