"""PCI DSS: card numbers and verification values are refused, and no trace of them is kept:
not in any table of the store (the journal included), not in the server's log."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote_plus

import pytest
from conftest import conforms, json_of
from payments.conftest import METHODS, PAN, PAYMENTS, REFUNDS, add_card, card_body
from sqlalchemy import select

from simulators.core.runtime import Runtime
from simulators.payments.model import holds_card_number

SPACED = "4111 1111 1111 1111"
DASHED = "4111-1111-1111-1111"
DOUBLE_SPACED = "4111  1111  1111  1111"
SPACED_DASHES = "4111 - 1111 - 1111 - 1111"
FORMS = (PAN, SPACED, DASHED, DOUBLE_SPACED, SPACED_DASHES)


def traces_of_pan(runtime: Runtime) -> list[str]:
    """Every text of every row of every table that holds the PAN, in any of its spellings."""
    runtime.journal.flush()
    found = []
    with runtime.store.read() as conn:
        for table in runtime.store.tables():
            for row in conn.execute(select(table)).all():
                for column, value in row._mapping.items():
                    if value is None:
                        continue
                    text = value if isinstance(value, str) else json.dumps(value, default=str)
                    if any(form in text.replace("\\u0020", " ") for form in FORMS):
                        found.append(f"{table.name}.{column}: {text[:200]}")
    return found


def assert_refused(response: Any, operation: str, field: str) -> None:
    body = conforms(response, "payments", operation)
    assert (response.status_code, body["code"], body["field"]) == (
        422, "CARD_DATA_NOT_ACCEPTED", field,
    )  # fmt: skip
    text = response.get_data(as_text=True)
    assert all(form not in text for form in FORMS), text


CASES = [
    # (what was sent, where the problem says it was)
    (card_body(cardNumber=PAN), "cardNumber"),
    (card_body(notes=f"card {SPACED} exp 12/29"), "notes"),
    (card_body(account={"id": "ba-1001", "name": DASHED}), "account.name"),
    (card_body(pan=int(PAN)), "pan"),
    (card_body(token=f"tok_{PAN}"), "token"),
    (card_body(cvv="123"), "cvv"),
    (card_body(card={"securityCode": "1234"}), "card.securityCode"),
    (card_body(CVC2=None), "CVC2"),
    (card_body(account={"id": "ba-1001", "name": DOUBLE_SPACED}), "account.name"),
    (card_body(notes=f"card {SPACED_DASHES} exp 12/29"), "notes"),
]


@pytest.mark.parametrize(("body", "field"), CASES)
def test_card_data_in_a_body_is_refused_and_kept_nowhere(client, runtime, billing, body, field):
    response = client.post(METHODS, json=body, headers=billing)
    assert_refused(response, "createPaymentMethod", field)
    assert client.get(METHODS, headers=billing).get_json() == []
    assert traces_of_pan(runtime) == []


def test_a_pan_written_with_json_escapes_is_found(client, runtime, billing):
    escaped = "".join(f"\\u{ord(c):04x}" for c in PAN)
    raw = json.dumps(card_body(x="HERE")).replace("HERE", escaped)
    response = client.post(
        METHODS, data=raw, headers={**billing, "Content-Type": "application/json"}
    )
    assert_refused(response, "createPaymentMethod", "x")
    assert traces_of_pan(runtime) == []


def test_a_pan_in_a_body_that_is_not_json_is_refused_and_not_journaled(client, runtime, billing):
    response = client.post(
        METHODS, data=f"card={PAN}&cvv=123", headers={**billing, "Content-Type": "text/plain"}
    )
    assert_refused(response, "createPaymentMethod", "(body)")
    assert traces_of_pan(runtime) == []


def test_a_pan_in_the_path_or_query_is_refused_and_masked_in_the_journal(client, runtime, billing):
    in_path = client.get(f"{PAYMENTS}/{PAN}", headers=billing)
    assert_refused(in_path, "getPayment", "(path)")
    in_query = client.get(f"{PAYMENTS}?account.id={SPACED}", headers=billing)
    assert_refused(in_query, "listPayments", "query.account.id")
    assert traces_of_pan(runtime) == []
    entries = client.get("/__admin/journal?role=payments").get_json()
    urls = [entry["url"] for entry in entries]
    assert f"{PAYMENTS}/[withheld]" in urls
    assert all(entry["requestBody"] is None for entry in entries)


@pytest.mark.parametrize(
    "query",
    [
        "account.id=4111+1111+1111+1111",
        "account.id=4111%201111%201111%201111",
        "account.id=4111%2D1111%2D1111%2D1111",
        "account.id=%34111%31111%31111%31111",
        "account.id=4111%20%201111%20%201111%20%201111",
        "status=captured&account.id=4111+-+1111+-+1111+-+1111",
    ],
)
def test_a_pan_in_the_query_is_withheld_from_the_journal_however_it_is_encoded(
    client, runtime, billing, query
):
    response = client.get(f"{PAYMENTS}?{query}", headers=billing)
    assert_refused(response, "listPayments", "query.account.id")
    assert traces_of_pan(runtime) == []
    [entry] = client.get("/__admin/journal?role=payments").get_json()
    assert entry["url"].endswith("account.id=[withheld]"), entry["url"]
    assert not holds_card_number(unquote_plus(unquote_plus(entry["url"])))


def test_a_cvv_in_the_query_is_withheld_from_the_journal(client, runtime, billing):
    response = client.get(f"{PAYMENTS}?status=captured&cvv=737", headers=billing)
    assert_refused(response, "listPayments", "query.cvv")
    runtime.journal.flush()
    [entry] = client.get("/__admin/journal?role=payments").get_json()
    assert entry["url"] == f"{PAYMENTS}?status=captured&cvv=[withheld]"


def test_a_pan_after_an_encoded_hash_in_the_path_is_refused_and_not_journaled(
    client, runtime, billing
):
    # The path arrives decoded: %23 is a "#" in it, which must not hide the rest as a fragment.
    response = client.get(f"{PAYMENTS}/x%23{SPACED.replace(' ', '%20')}", headers=billing)
    assert_refused(response, "getPayment", "(path)")
    assert traces_of_pan(runtime) == []
    [entry] = client.get("/__admin/journal?role=payments").get_json()
    assert entry["url"] == f"{PAYMENTS}/[withheld]"


def test_card_data_is_refused_on_every_operation(client, runtime, billing):
    card = add_card(client, billing)
    paid = {"paymentMethod": {"id": card["id"]}, "amount": {"amount": "1.00", "units": "EUR"}}
    refused = client.post(PAYMENTS, json={**paid, "cvc": "999"}, headers=billing)
    assert_refused(refused, "createPayment", "cvc")
    refused = client.post(REFUNDS, json={"payment": {"id": PAN}}, headers=billing)
    assert_refused(refused, "createRefund", "payment.id")
    assert client.get(PAYMENTS, headers=billing).get_json() == []
    assert traces_of_pan(runtime) == []


def test_without_a_key_the_answer_is_401_and_the_body_still_is_not_kept(client, runtime):
    response = client.post(METHODS, json=card_body(cardNumber=PAN))
    assert conforms(response, "payments", "createPaymentMethod")["code"] == "UNAUTHENTICATED"
    assert traces_of_pan(runtime) == []
    [entry] = client.get("/__admin/journal?role=payments").get_json()
    assert entry["status"] == 401 and entry["requestBody"] is None


def test_nothing_of_the_card_reaches_the_log(client, runtime, billing, caplog):
    caplog.set_level(logging.DEBUG)
    client.post(METHODS, json=card_body(cardNumber=PAN, cvv="123"), headers=billing)
    client.get(f"{PAYMENTS}/{PAN}", headers=billing)
    client.post(
        METHODS, data=f"{{{SPACED}", headers={**billing, "Content-Type": "application/json"}
    )
    runtime.journal.flush()
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert all(form not in logged for form in FORMS)
    assert traces_of_pan(runtime) == []


def test_ordinary_digits_pass(client, billing):
    # 16 digits that fail Luhn, a 20-digit run, a short one, and a hexadecimal id whose digits
    # pass Luhn (as a billing account id can) are no card number.
    hex_id = f"9f{PAN}ab{'0' * 12}"
    for account in ("4111111111111112", "89001012012341234566", "123456789012", hex_id):
        card = client.post(METHODS, json=card_body(account={"id": account}), headers=billing)
        assert card.status_code == 201, card.get_data(as_text=True)


def test_a_correlation_id_is_not_taken_for_a_card_number(client, billing):
    # A UUID whose first three groups are digits reads as 16 digits passing Luhn.
    correlation_id = f"{PAN[:8]}-{PAN[8:12]}-{PAN[12:]}-a0b1-c2d3e4f5a6b7"
    card = client.post(
        METHODS, json=card_body(), headers={**billing, "X-Correlation-ID": correlation_id}
    )
    assert card.status_code == 201, card.get_data(as_text=True)
    assert card.headers["X-Correlation-ID"] == correlation_id


@pytest.mark.parametrize("header", ["X-Correlation-ID", "Idempotency-Key"])
def test_a_pan_in_a_header_the_stack_keeps_is_refused_and_not_kept(
    client, runtime, billing, header
):
    response = client.post(METHODS, json=card_body(), headers={**billing, header: PAN})
    assert_refused(response, "createPaymentMethod", f"header.{header}")
    assert PAN not in response.headers.get("X-Correlation-ID", "")
    assert client.get(METHODS, headers=billing).get_json() == []
    assert traces_of_pan(runtime) == []


def test_a_refusal_keeps_the_callers_correlation_id_when_it_is_not_the_culprit(client, billing):
    headers = {**billing, "X-Correlation-ID": "bill-run-7"}
    response = client.post(METHODS, json=card_body(cvv="123"), headers=headers)
    assert response.headers["X-Correlation-ID"] == "bill-run-7"
    assert json_of(response)["correlationId"] == "bill-run-7"
