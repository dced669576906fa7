"""The tax engine as the billing platform calls it: quotes per place of primary use, and
reconciliation of stored quotes against a fault-free re-quote."""

from __future__ import annotations

from typing import Any

from ..catalogue import phrase
from ..world import StepFailed, World

TAX = "tax"
QUOTES = "/v1/quotes"
RECONCILIATIONS = "/v1/reconciliations"

# Places a scenario names, from the engine's fictitious jurisdiction table.
PLACES: dict[str, dict[str, Any]] = {
    "Springfield, IL": {
        "line1": "1 Main St",
        "city": "Springfield",
        "region": "IL",
        "postalCode": "62701-1234",
        "country": "US",
    },
    "Leland Grove, IL": {
        "line1": "9 Elm St",
        "city": "Leland Grove",
        "region": "IL",
        "postalCode": "62704-5123",
        "country": "US",
    },
    "the annexed area of Springfield, IL": {
        "line1": "3100 Prairie Rd",
        "city": "Springfield",
        "region": "IL",
        "postalCode": "62712-3100",
        "country": "US",
    },
    "a P.O. Box in Springfield, IL": {
        "line1": "P.O. Box 42",
        "city": "Springfield",
        "region": "IL",
        "postalCode": "62701-1234",
        "country": "US",
    },
    "Springfield, IL without a country": {
        "line1": "1 Main St",
        "city": "Springfield",
        "region": "IL",
        "postalCode": "62701-1234",
    },
    "Berlin, DE": {"line1": "Hauptstr. 1", "postalCode": "10115", "country": "DE"},
    "Madrid, ES": {"line1": "Calle Mayor 1", "postalCode": "28013", "country": "ES"},
}
SERVICES = {
    "wireless access": ("wireless", "access"),
    "wireless usage": ("wireless", "usage"),
    "wireless roaming": ("wireless", "roaming"),
}


def place(name: str) -> dict[str, Any]:
    if name not in PLACES:
        raise StepFailed(f"no place {name!r}; the places are: {', '.join(PLACES)}")
    return dict(PLACES[name])


def quote_body(world: World, amount: str, service: str, where: str) -> dict[str, Any]:
    transaction_type, service_type = SERVICES.get(service, ("wireless", service))
    address = place(where)
    currency = "USD" if address.get("country", "US") == "US" else "EUR"
    return {
        "documentId": world.remembered.get("document id", "BILL-2026-000123"),
        "date": "2026-03-31",
        "currency": currency,
        "customer": {"type": "B2C"},
        "placeOfPrimaryUse": address,
        "lines": [
            {
                "lineId": "1",
                "amount": amount,
                "transactionType": transaction_type,
                "serviceType": service_type,
                "lineCount": 1,
            }
        ],
    }


def send_quote(world: World, body: dict[str, Any]) -> None:
    world.remember("quote request", body)
    answer = world.send(TAX, "POST", QUOTES, operation="createTaxQuote", json_body=body)
    if answer.status == 201:
        world.remember("quote", answer.json())


@phrase(
    "when",
    'the billing platform asks for tax on "{amount:Q}" of "{service:Q}" in "{where:Q}"',
    role=TAX,
    example='When the billing platform asks for tax on "25.00" of "wireless access" in '
    '"Springfield, IL"',
    summary="one quote line; places: Springfield, IL / Leland Grove, IL / the annexed area "
    "of Springfield, IL / a P.O. Box in Springfield, IL / Berlin, DE / Madrid, ES",
)
def ask_for_tax(handoff: World, amount: str, service: str, where: str) -> None:
    send_quote(handoff, quote_body(handoff, amount, service, where))


@phrase(
    "when",
    'the billing platform asks for tax on "{amount:Q}" of "{service:Q}" in '
    '"{where:Q}" for the VAT ID "{vat_id:Q}"',
    role=TAX,
    example='When the billing platform asks for tax on "25.00" of "wireless access" in '
    '"Madrid, ES" for the VAT ID "ESX1234567X"',
)
def ask_for_b2b_tax(handoff: World, amount: str, service: str, where: str, vat_id: str) -> None:
    body = quote_body(handoff, amount, service, where)
    body["customer"] = {"type": "B2B", "vatId": vat_id}
    send_quote(handoff, body)


@phrase(
    "when",
    "the billing platform asks for the same quote again",
    role=TAX,
    example="When the billing platform asks for the same quote again",
)
def ask_again(handoff: World) -> None:
    send_quote(handoff, handoff.recall("quote request"))


@phrase(
    "then",
    'the quote taxes the levels "{levels:Q}"',
    role=TAX,
    example='Then the quote taxes the levels "federal, state, county, city, district, e911"',
    summary="exactly these jurisdiction levels, in any order",
)
def quote_levels(handoff: World, levels: str) -> None:
    quote = handoff.recall("quote")
    found = {tax["level"] for line in quote["lines"] for tax in line["taxes"]}
    expected = {level.strip() for level in levels.split(",") if level.strip()}
    if found != expected:
        raise StepFailed(f"the quote taxes {sorted(found)}, not {sorted(expected)}")


@phrase(
    "then",
    'the quote\'s "{level:Q}" tax goes to "{code:Q}"',
    role=TAX,
    example='Then the quote\'s "city" tax goes to "US-IL-SPRINGFIELD"',
)
def quote_jurisdiction(handoff: World, level: str, code: str) -> None:
    quote = handoff.recall("quote")
    found = [
        tax["jurisdictionCode"]
        for line in quote["lines"]
        for tax in line["taxes"]
        if tax["level"] == level
    ]
    if found != [code]:
        raise StepFailed(f"the {level} tax goes to {found}, not {code}")


@phrase(
    "when",
    "the billing platform reconciles the quote",
    role=TAX,
    example="When the billing platform reconciles the quote",
    summary="the stored quote, quoted again without faults",
)
def reconcile(handoff: World) -> None:
    quote = handoff.recall("quote")
    answer = handoff.send(
        TAX,
        "POST",
        RECONCILIATIONS,
        operation="reconcileTaxQuotes",
        json_body={"quoteIds": [quote["id"]]},
    )
    handoff.remember("tax reconciliation", handoff.expect(answer, 200))


@phrase(
    "when",
    "the billing platform reconciles the bill's tax quote",
    role=TAX,
    example="When the billing platform reconciles the bill's tax quote",
    summary="the quote the bill names (taxQuote), quoted again without faults",
)
def reconcile_bill(handoff: World) -> None:
    quote_id = handoff.recall("bill")["taxQuote"]
    answer = handoff.send(
        TAX,
        "POST",
        RECONCILIATIONS,
        operation="reconcileTaxQuotes",
        json_body={"quoteIds": [quote_id]},
    )
    handoff.remember("tax reconciliation", handoff.expect(answer, 200))


@phrase(
    "when",
    'the billing platform reconciles the quotes of the document "{document:Q}"',
    role=TAX,
    example='When the billing platform reconciles the quotes of the document "BILL-2026-000001"',
)
def reconcile_document(handoff: World, document: str) -> None:
    answer = handoff.send(
        TAX,
        "POST",
        RECONCILIATIONS,
        operation="reconcileTaxQuotes",
        json_body={"documentId": handoff.expand(document)},
    )
    handoff.remember("tax reconciliation", handoff.expect(answer, 200))


@phrase(
    "then",
    'the reconciliation finds "{kind:Q}" at the "{level:Q}" level',
    role=TAX,
    example='Then the reconciliation finds "missingLevel" at the "city" level',
)
def reconciliation_finds(handoff: World, kind: str, level: str) -> None:
    report = handoff.recall("tax reconciliation")
    findings = [(f["kind"], f["level"]) for r in report["results"] for f in r["findings"]]
    if (kind, level) not in findings:
        raise StepFailed(f"the reconciliation found {findings}, not {kind} at {level}")


@phrase(
    "then",
    "the reconciliation finds nothing",
    role=TAX,
    example="Then the reconciliation finds nothing",
)
def reconciliation_clean(handoff: World) -> None:
    report = handoff.recall("tax reconciliation")
    if report["discrepant"]:
        raise StepFailed(f"the reconciliation found discrepancies: {report['results']}")
