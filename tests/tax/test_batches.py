"""Batch quotes over HTTP: several invoices in one call, each answered on its own, each
idempotent on its own key; every answer checked against contracts/tax.yaml."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import api_key, conforms
from flask.testing import FlaskClient

from simulators.core.runtime import Runtime
from simulators.core.tenancy import BILLING_PLATFORM, create_partner

from .test_api import FAULTS, QUOTES, body, levels, post_quote

BATCHES = "/tax/v1/quoteBatches"
ORIGIN = "http://localhost"


@pytest.fixture
def billing() -> dict[str, str]:
    return {"X-API-Key": api_key(BILLING_PLATFORM)}


def post_batch(client: FlaskClient, headers: dict[str, str], *items: dict[str, Any]) -> Any:
    answer = client.post(BATCHES, json={"quotes": list(items)}, headers=headers)
    return conforms(answer, "tax", "createTaxQuoteBatch")


def stored(client: FlaskClient, headers: dict[str, str], document_id: str | None = None) -> Any:
    query = f"?documentId={document_id}" if document_id else ""
    return conforms(client.get(f"{QUOTES}{query}", headers=headers), "tax", "listTaxQuotes")


def without_identity(quote: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in quote.items() if k not in ("id", "href", "createdAt")}


BERLIN = {"line1": "Hauptstr. 1", "postalCode": "10115", "country": "DE"}
PO_BOX = {"line1": "PO Box 77", "postalCode": "62701", "country": "US"}
FRACTION_OF_A_CENT = [
    {"lineId": "1", "amount": "1.005", "transactionType": "wireless", "serviceType": "usage"}
]


def test_each_item_gets_its_quote_or_the_problem_a_single_quote_would_get(client, billing):
    items = [
        {"request": body(documentId="US-1")},
        {"request": body(documentId="DE-1", currency="EUR", placeOfPrimaryUse=BERLIN)},
        {"request": body(documentId="BOX-1", placeOfPrimaryUse=PO_BOX)},
        {"request": body(documentId="CENT-1", lines=FRACTION_OF_A_CENT)},
        {"request": body(documentId="FAX-1", lines=[{**body()["lines"][0], "serviceType": "fax"}])},
    ]
    batch = post_batch(client, billing, *items)
    assert [r["status"] for r in batch["results"]] == [201, 201, 422, 400, 422]
    assert [r["index"] for r in batch["results"]] == [0, 1, 2, 3, 4]
    assert (batch["quoted"], batch["refused"]) == (2, 3)
    us, de, box, cent, fax = batch["results"]

    # A quote in a batch is the quote the single call gives for the same request.
    single = post_quote(client, billing, body(documentId="US-1")).get_json()
    assert without_identity(us["quote"]) == without_identity(single)
    assert levels(de["quote"]) == {"vat": ("DE", "4.63")}
    # Stored, and read back unchanged.
    again = client.get(us["quote"]["href"].removeprefix(ORIGIN), headers=billing)
    assert conforms(again, "tax", "getTaxQuote") == us["quote"]

    # Refusals name the field inside the item's request, as a single quote's would.
    refusals = {
        "BOX-1": post_quote(client, billing, items[2]["request"]).get_json(),
        "FAX-1": post_quote(client, billing, items[4]["request"]).get_json(),
    }
    assert (box["problem"]["code"], box["problem"]["field"]) == (
        "PO_BOX_NOT_PRIMARY_USE",
        "placeOfPrimaryUse.line1",
    )
    assert box["problem"]["code"] == refusals["BOX-1"]["code"]
    assert (cent["problem"]["code"], cent["problem"]["field"]) == (
        "INVALID_REQUEST",
        "lines[0].amount",
    )
    assert (fax["problem"]["code"], fax["problem"]["lineId"]) == (
        refusals["FAX-1"]["code"],
        refusals["FAX-1"]["lineId"],
    )
    assert box["problem"]["instance"] == f"{BATCHES}#/quotes/2"
    # Nothing was stored for the refused items.
    assert {q["documentId"] for q in stored(client, billing)} == {"US-1", "DE-1"}


def test_a_retried_batch_answers_the_same_quotes_and_stores_none_again(client, billing):
    items = [
        {"request": body(documentId="BILL-1")},
        {"idempotencyKey": "bill-2/v1", "request": body(documentId="BILL-2")},
        {"request": body(documentId=None)},  # neither key nor document: quoted anew each time
        {"request": body(documentId="BILL-3", placeOfPrimaryUse=PO_BOX)},
    ]
    items[2]["request"].pop("documentId")
    first = post_batch(client, billing, *items)
    again = post_batch(client, billing, *items)
    assert [r["status"] for r in again["results"]] == [201, 201, 201, 422]
    assert [r.get("replayed", False) for r in again["results"]] == [True, True, False, False]
    for before, after in zip(first["results"][:2], again["results"][:2], strict=True):
        assert after["quote"] == before["quote"]
    assert again["results"][2]["quote"]["id"] != first["results"][2]["quote"]["id"]
    assert len(stored(client, billing)) == 4
    assert len(stored(client, billing, "BILL-1")) == 1


def test_a_document_quoted_again_with_another_request_needs_a_key_of_its_own(client, billing):
    post_batch(client, billing, {"request": body(documentId="BILL-9")})
    revised = body(documentId="BILL-9", lines=[{**body()["lines"][0], "amount": "30.00"}])
    [refused] = post_batch(client, billing, {"request": revised})["results"]
    assert refused["status"] == 422
    assert (refused["problem"]["code"], refused["problem"]["field"]) == (
        "IDEMPOTENCY_KEY_REUSED",
        "documentId",
    )
    [quoted] = post_batch(client, billing, {"idempotencyKey": "BILL-9/r2", "request": revised})[
        "results"
    ]
    assert quoted["status"] == 201 and quoted["quote"]["lines"][0]["amount"] == "30.00"
    assert len(stored(client, billing, "BILL-9")) == 2
    # An explicit key reused with another request is refused by that name.
    [reused] = post_batch(client, billing, {"idempotencyKey": "BILL-9/r2", "request": body()})[
        "results"
    ]
    assert (reused["problem"]["code"], reused["problem"]["field"]) == (
        "IDEMPOTENCY_KEY_REUSED",
        "idempotencyKey",
    )


def test_two_items_with_one_key_are_one_quote(client, billing):
    same = {"request": body(documentId="BILL-5")}
    other = {"request": body(documentId="BILL-5", placeOfPrimaryUse=BERLIN, currency="EUR")}
    results = post_batch(client, billing, same, same, other)["results"]
    assert [r["status"] for r in results] == [201, 201, 422]
    assert results[1]["replayed"] and results[1]["quote"] == results[0]["quote"]
    assert results[2]["problem"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(stored(client, billing, "BILL-5")) == 1


def test_keys_belong_to_one_client(client, billing, runtime: Runtime):
    [mine] = post_batch(client, billing, {"request": body(documentId="BILL-7")})["results"]
    with runtime.store.write() as conn:
        key = create_partner(
            conn,
            secret_key=runtime.settings.secret_key,
            partner_id="tax-other",
            role="tax",
            name="Other",
            agreement={},
            granted=["CALCULATE_TAX", "QUERY_TAX"],
            now=runtime.clock.now(conn),
        )
    other = {"X-API-Key": key}
    [theirs] = post_batch(client, other, {"request": body(documentId="BILL-7")})["results"]
    assert theirs["status"] == 201 and "replayed" not in theirs
    assert theirs["quote"]["id"] != mine["quote"]["id"]
    assert [q["id"] for q in stored(client, other)] == [theirs["quote"]["id"]]


def test_a_data_fault_rule_is_decided_item_by_item(client, billing):
    # The rule of the tax-jurisdiction-gap pack: quotes for Springfield, IL lose the city.
    rule = {
        "id": "springfield-gap",
        "match": {"role": "tax", "operation": "createTaxQuote", "fields": {"city": "Springfield"}},
        "effect": {"type": "data", "fault": "TAX_JURISDICTION_NOT_FOUND", "level": "city"},
    }
    conforms(client.post(FAULTS, json=rule), "admin", "addFault")
    chicago = {
        "line1": "1 State St",
        "city": "Chicago",
        "region": "IL",
        "postalCode": "60601",
        "country": "US",
    }
    springfield, elsewhere = post_batch(
        client,
        billing,
        {"request": body(documentId="SPI")},
        {"request": body(documentId="CHI", placeOfPrimaryUse=chicago)},
    )["results"]
    assert "city" not in levels(springfield["quote"])
    assert levels(elsewhere["quote"])["city"][0] == "US-IL-CHICAGO"
    fired = conforms(client.get(f"{FAULTS}/springfield-gap"), "admin", "getFault")
    assert (fired["matched"], fired["fired"]) == (1, 1)
    journal = client.get("/__admin/journal?role=tax&direction=inbound").get_json()
    [entry] = [e for e in journal if e["operationId"] == "createTaxQuoteBatch"]
    assert entry["extra"]["faults"] == ["springfield-gap"]


def test_a_data_rule_naming_the_batch_concerns_every_item(client, billing):
    rule = {
        "match": {"role": "tax", "operation": "createTaxQuoteBatch"},
        "effect": {"type": "data", "fault": "TAX_JURISDICTION_NOT_FOUND", "level": "county"},
    }
    conforms(client.post(FAULTS, json=rule), "admin", "addFault")
    results = post_batch(
        client, billing, {"request": body(documentId="A")}, {"request": body("62704")}
    )["results"]
    assert all("county" not in levels(r["quote"]) for r in results)
    # A single quote is not a batch.
    assert "county" in levels(post_quote(client, billing, body()).get_json())


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"quotes": []}, "quotes"),
        ({"quotes": [{"request": body()}] * 101}, "quotes"),
        ({"quotes": [{"idempotencyKey": "k"}]}, "quotes[0].request"),
        ({"quotes": [{"request": body(), "extra": 1}]}, "quotes[0]"),
    ],
)
def test_a_malformed_batch_is_refused_whole_and_stores_nothing(client, billing, payload, field):
    refused = client.post(BATCHES, json=payload, headers=billing)
    problem = conforms(refused, "tax", "createTaxQuoteBatch")
    assert refused.status_code == 400 and problem["field"] == field
    assert stored(client, billing) == []


def test_callers_without_a_key_or_the_capability_are_refused(client, runtime: Runtime):
    payload = {"quotes": [{"request": body()}]}
    unknown = client.post(BATCHES, json=payload)
    assert conforms(unknown, "tax", "createTaxQuoteBatch")["status"] == 401
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
    refused = client.post(BATCHES, json=payload, headers={"X-API-Key": key})
    assert conforms(refused, "tax", "createTaxQuoteBatch")["code"] == "CAPABILITY_NOT_GRANTED"


def test_an_idempotency_key_header_replays_the_whole_answer(client, billing):
    headers = {**billing, "Idempotency-Key": "bill-run-7-batch-1"}
    payload = {"quotes": [{"request": body(documentId="A")}, {"request": body(documentId="B")}]}
    first = client.post(BATCHES, json=payload, headers=headers)
    again = client.post(BATCHES, json=payload, headers=headers)
    assert conforms(again, "tax", "createTaxQuoteBatch") == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stored(client, billing)) == 2
