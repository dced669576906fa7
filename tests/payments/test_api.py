"""The payment gateway over HTTP: every transition and refusal, as a merchant sees them."""

from __future__ import annotations

import pytest
from conftest import conforms, json_of
from payments.conftest import (
    METHODS,
    PAYMENTS,
    REFUNDS,
    add_card,
    authorized,
    card_body,
    pay,
)

from simulators.core.tenancy import MVNE_PLATFORM


def capture(client, headers, payment_id, amount=None, units="EUR"):
    body = None if amount is None else {"amount": {"amount": amount, "units": units}}
    kwargs = {"json": body} if body is not None else {}
    response = client.post(f"{PAYMENTS}/{payment_id}/capture", headers=headers, **kwargs)
    conforms(response, "payments", "capturePayment")
    return response


def void(client, headers, payment_id):
    response = client.post(f"{PAYMENTS}/{payment_id}/void", headers=headers)
    conforms(response, "payments", "voidPayment")
    return response


def refund(client, headers, payment_id, amount=None, units="EUR"):
    body = {"payment": {"id": payment_id}}
    if amount is not None:
        body["amount"] = {"amount": amount, "units": units}
    response = client.post(REFUNDS, json=body, headers=headers)
    conforms(response, "payments", "createRefund")
    return response


# --- payment methods ---------------------------------------------------------------------------


def test_a_tokenised_card_is_registered_read_listed_and_removed(client, billing):
    card = add_card(client, billing, name="Main card")
    assert (card["brand"], card["lastFourDigits"], card["token"], card["status"]) == (
        "visa", "1111", "tok_visa", "active",
    )  # fmt: skip
    assert card["account"] == {"id": "ba-1001"}
    read = client.get(f"{METHODS}/{card['id']}", headers=billing)
    assert conforms(read, "payments", "getPaymentMethod") == card
    listed = client.get(f"{METHODS}?account.id=ba-1001", headers=billing)
    assert [m["id"] for m in conforms(listed, "payments", "listPaymentMethods")] == [card["id"]]
    assert client.get(f"{METHODS}?account.id=ba-other", headers=billing).get_json() == []
    gone = client.delete(f"{METHODS}/{card['id']}", headers=billing)
    assert conforms(gone, "payments", "deletePaymentMethod") is None and gone.status_code == 204
    again = client.get(f"{METHODS}/{card['id']}", headers=billing)
    assert conforms(again, "payments", "getPaymentMethod")["code"] == "PAYMENT_METHOD_NOT_FOUND"
    refused = pay(client, billing, card["id"])
    assert (refused.status_code, json_of(refused)["code"]) == (422, "UNKNOWN_PAYMENT_METHOD")


def test_a_card_past_its_month_is_expired_and_denied(client, runtime, billing):
    card = add_card(client, billing, expirationDate="2026-03")
    runtime.clock.set(runtime.clock.now() + 31 * 86400, frozen=True)  # into April 2026
    read = client.get(f"{METHODS}/{card['id']}", headers=billing).get_json()
    assert read["status"] == "expired"
    denied = pay(client, billing, card["id"])
    assert json_of(denied)["status"] == "denied"
    assert json_of(denied)["statusReason"]["code"] == "EXPIRED_CARD"


def test_payments_need_the_merchant_key(client, mno_headers):
    # The MVNE platform's key belongs to the MNO's API, not to the gateway.
    assert MVNE_PLATFORM in mno_headers["X-API-Key"]
    response = client.get(PAYMENTS, headers=mno_headers)
    assert conforms(response, "payments", "listPayments")["code"] == "UNAUTHENTICATED"


# --- authorise, capture, void --------------------------------------------------------------


def test_authorise_then_capture_in_full(client, billing):
    payment = authorized(client, billing, "25.00")
    assert payment["status"] == "authorized"
    assert payment["authorizedAmount"] == {"amount": "25.00", "units": "EUR"}
    assert payment["capturedAmount"] == {"amount": "0.00", "units": "EUR"}
    assert len(payment["authorizationCode"]) == 6
    captured = capture(client, billing, payment["id"])
    assert captured.status_code == 200
    assert json_of(captured)["status"] == "captured"
    assert json_of(captured)["capturedAmount"] == {"amount": "25.00", "units": "EUR"}


def test_a_partial_capture_releases_the_rest(client, billing):
    payment = authorized(client, billing, "25.00")
    captured = json_of(capture(client, billing, payment["id"], "10.05"))
    assert captured["capturedAmount"]["amount"] == "10.05"
    again = capture(client, billing, payment["id"], "1.00")
    assert (again.status_code, json_of(again)["code"]) == (409, "PAYMENT_ALREADY_CAPTURED")


def test_a_sale_authorises_and_captures_at_once(client, billing):
    card = add_card(client, billing)
    sale = json_of(pay(client, billing, card["id"], "9.99", capture=True))
    assert sale["status"] == "captured" and sale["capturedAmount"]["amount"] == "9.99"


def test_capturing_more_than_authorised_is_refused_and_changes_nothing(client, billing):
    payment = authorized(client, billing, "25.00")
    refused = capture(client, billing, payment["id"], "25.01")
    body = json_of(refused)
    assert (refused.status_code, body["code"], body["paymentStatus"]) == (
        409, "CAPTURE_EXCEEDS_AUTHORIZED", "authorized",
    )  # fmt: skip
    assert client.get(f"{PAYMENTS}/{payment['id']}", headers=billing).get_json() == payment


def test_void_releases_an_authorisation_and_nothing_follows_it(client, billing):
    payment = authorized(client, billing)
    voided = void(client, billing, payment["id"])
    assert json_of(voided)["status"] == "voided"
    for response, code in [
        (capture(client, billing, payment["id"]), "PAYMENT_VOIDED"),
        (void(client, billing, payment["id"]), "PAYMENT_VOIDED"),
        (refund(client, billing, payment["id"]), "PAYMENT_NOT_CAPTURED"),
    ]:
        assert (response.status_code, json_of(response)["code"]) == (409, code)


def test_a_captured_payment_cannot_be_voided(client, billing):
    payment = authorized(client, billing)
    capture(client, billing, payment["id"])
    refused = void(client, billing, payment["id"])
    assert (refused.status_code, json_of(refused)["code"]) == (409, "PAYMENT_ALREADY_CAPTURED")


def test_an_authorised_payment_cannot_be_refunded_before_capture(client, billing):
    payment = authorized(client, billing)
    refused = refund(client, billing, payment["id"])
    assert (refused.status_code, json_of(refused)["code"]) == (409, "PAYMENT_NOT_CAPTURED")


@pytest.mark.parametrize("token", ["tok_hard_stolen_card", "tok_soft_insufficient_funds"])
def test_a_declined_payment_cannot_be_captured_voided_or_refunded(client, billing, token):
    card = add_card(client, billing, token)
    declined = json_of(pay(client, billing, card["id"]))
    assert declined["status"] in ("failed", "denied")
    assert "authorizedAmount" not in declined and "authorizationCode" not in declined
    for response, code in [
        (capture(client, billing, declined["id"]), "PAYMENT_NOT_AUTHORIZED"),
        (void(client, billing, declined["id"]), "PAYMENT_NOT_AUTHORIZED"),
        (refund(client, billing, declined["id"]), "PAYMENT_NOT_CAPTURED"),
    ]:
        assert (response.status_code, json_of(response)["code"]) == (409, code)


# --- refunds ------------------------------------------------------------------------------


def test_refunds_in_parts_never_beyond_what_was_captured(client, billing):
    payment = authorized(client, billing, "30.00")
    capture(client, billing, payment["id"], "20.00")
    first = refund(client, billing, payment["id"], "12.50")
    assert first.status_code == 201 and first.headers["Location"] == json_of(first)["href"]
    assert json_of(first)["amount"] == {"amount": "12.50", "units": "EUR"}
    too_much = refund(client, billing, payment["id"], "7.51")
    assert (too_much.status_code, json_of(too_much)["code"]) == (409, "REFUND_EXCEEDS_CAPTURED")
    rest = refund(client, billing, payment["id"])  # no amount: all that is left
    assert json_of(rest)["amount"]["amount"] == "7.50"
    after = client.get(f"{PAYMENTS}/{payment['id']}", headers=billing).get_json()
    assert after["status"] == "captured"
    assert after["refundedAmount"] == {"amount": "20.00", "units": "EUR"}
    nothing_left = refund(client, billing, payment["id"], "0.01")
    assert json_of(nothing_left)["code"] == "REFUND_EXCEEDS_CAPTURED"
    listed = client.get(f"{REFUNDS}?payment.id={payment['id']}", headers=billing)
    refunds = conforms(listed, "payments", "listRefunds")
    assert [r["amount"]["amount"] for r in refunds] == ["12.50", "7.50"]
    one = client.get(f"{REFUNDS}/{refunds[0]['id']}", headers=billing)
    assert conforms(one, "payments", "getRefund") == refunds[0]


def test_concurrent_refunds_never_go_beyond_what_was_captured(app, client, billing):
    from concurrent.futures import ThreadPoolExecutor

    payment = authorized(client, billing, "30.00")
    capture(client, billing, payment["id"], "20.00")

    def refund_eight(_: int) -> tuple[int, str | None]:
        response = app.test_client().post(
            REFUNDS,
            json={"payment": {"id": payment["id"]}, "amount": {"amount": "8.00", "units": "EUR"}},
            headers=billing,
        )
        return response.status_code, json_of(response).get("code")

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = sorted(pool.map(refund_eight, range(10)), key=str)
    assert answers == [(201, None)] * 2 + [(409, "REFUND_EXCEEDS_CAPTURED")] * 8
    after = client.get(f"{PAYMENTS}/{payment['id']}", headers=billing).get_json()
    assert after["refundedAmount"] == {"amount": "16.00", "units": "EUR"}


# --- money -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "units", "code"),
    [
        ("10.005", "EUR", "AMOUNT_NOT_EXACT"),
        ("10.5", "JPY", "AMOUNT_NOT_EXACT"),
        ("0", "EUR", "AMOUNT_NOT_POSITIVE"),
        ("0.00", "GBP", "AMOUNT_NOT_POSITIVE"),
    ],
)
def test_amounts_are_exact_in_their_currency_or_refused(client, billing, amount, units, code):
    card = add_card(client, billing)
    refused = pay(client, billing, card["id"], amount, units)
    assert (refused.status_code, json_of(refused)["code"]) == (422, code)
    assert client.get(PAYMENTS, headers=billing).get_json() == []


@pytest.mark.parametrize(("amount", "units", "shown"), [
    ("1200", "JPY", "1200"), ("1.250", "KWD", "1.250"), ("7.1", "USD", "7.10"),
])  # fmt: skip
def test_amounts_come_back_with_the_currency_minor_digits(client, billing, amount, units, shown):
    card = add_card(client, billing)
    payment = json_of(pay(client, billing, card["id"], amount, units))
    assert payment["amount"] == {"amount": shown, "units": units}


def test_a_capture_in_another_currency_is_refused(client, billing):
    payment = authorized(client, billing, "10.00")
    refused = capture(client, billing, payment["id"], "5.00", units="GBP")
    assert (refused.status_code, json_of(refused)["code"]) == (422, "CURRENCY_MISMATCH")


# --- soft and hard declines --------------------------------------------------------------


def test_insufficient_funds_is_soft_and_the_next_attempt_passes(client, billing):
    card = add_card(client, billing, "tok_soft_insufficient_funds")
    first = json_of(pay(client, billing, card["id"]))
    assert first["status"] == "failed"
    assert first["statusReason"] == {
        "code": "INSUFFICIENT_FUNDS",
        "reason": first["statusReason"]["reason"],
        "declineType": "soft",
        "retryable": True,
    }
    second = json_of(pay(client, billing, card["id"]))
    assert second["status"] == "authorized"


def test_issuer_unavailable_passes_once_its_window_is_over(client, runtime, billing):
    card = add_card(client, billing, "tok_soft_issuer_unavailable")
    first = json_of(pay(client, billing, card["id"]))
    assert (first["status"], first["statusReason"]["code"]) == ("failed", "ISSUER_UNAVAILABLE")
    assert first["statusReason"]["retryAfter"] == "2026-03-02T09:10:00.000Z"
    runtime.advance(599)
    assert json_of(pay(client, billing, card["id"]))["status"] == "failed"
    runtime.advance(1)
    assert json_of(pay(client, billing, card["id"]))["status"] == "authorized"


@pytest.mark.parametrize(("token", "code"), [
    ("tok_hard_stolen_card", "STOLEN_CARD"), ("tok_hard_do_not_honor", "DO_NOT_HONOR"),
])  # fmt: skip
def test_a_hard_decline_blocks_the_card_and_its_retry_is_refused(client, billing, token, code):
    card = add_card(client, billing, token)
    denied = json_of(pay(client, billing, card["id"]))
    assert (denied["status"], denied["statusReason"]["code"]) == ("denied", code)
    assert denied["statusReason"]["retryable"] is False
    retry = pay(client, billing, card["id"])
    assert (retry.status_code, json_of(retry)["code"]) == (422, "HARD_DECLINE_NOT_RETRYABLE")
    blocked = client.get(f"{METHODS}/{card['id']}", headers=billing).get_json()
    assert (blocked["status"], blocked["statusReason"]["code"]) == ("blocked", code)
    # The refused retry stored no payment.
    assert len(client.get(PAYMENTS, headers=billing).get_json()) == 1


# --- idempotency -------------------------------------------------------------------------


def test_a_retried_payment_is_the_same_payment(client, billing):
    card = add_card(client, billing)
    body = {"paymentMethod": {"id": card["id"]}, "amount": {"amount": "5.00", "units": "EUR"}}
    headers = {**billing, "Idempotency-Key": "charge-2026-03-ba-1001"}
    first = client.post(PAYMENTS, json=body, headers=headers)
    again = client.post(PAYMENTS, json=body, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert json_of(again) == json_of(first)
    assert len(client.get(PAYMENTS, headers=billing).get_json()) == 1
    other = client.post(
        PAYMENTS, json={**body, "amount": {"amount": "6.00", "units": "EUR"}}, headers=headers
    )
    assert (other.status_code, json_of(other)["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")


def test_a_retried_soft_decline_is_the_same_decline_a_new_key_is_a_new_attempt(client, billing):
    card = add_card(client, billing, "tok_soft_insufficient_funds")
    body = {"paymentMethod": {"id": card["id"]}, "amount": {"amount": "5.00", "units": "EUR"}}
    first = client.post(PAYMENTS, json=body, headers={**billing, "Idempotency-Key": "a"})
    replay = client.post(PAYMENTS, json=body, headers={**billing, "Idempotency-Key": "a"})
    assert json_of(replay) == json_of(first) and json_of(first)["status"] == "failed"
    fresh = client.post(PAYMENTS, json=body, headers={**billing, "Idempotency-Key": "b"})
    assert json_of(fresh)["status"] == "authorized"


def test_a_retried_capture_and_refund_happen_once(client, billing):
    payment = authorized(client, billing, "20.00")
    headers = {**billing, "Idempotency-Key": "capture-1"}
    path = f"{PAYMENTS}/{payment['id']}/capture"
    body = {"amount": {"amount": "15.00", "units": "EUR"}}
    assert client.post(path, json=body, headers=headers).status_code == 200
    assert client.post(path, json=body, headers=headers).status_code == 200
    refund_body = {"payment": {"id": payment["id"]}, "amount": {"amount": "10.00", "units": "EUR"}}
    headers = {**billing, "Idempotency-Key": "refund-1"}
    assert client.post(REFUNDS, json=refund_body, headers=headers).status_code == 201
    assert client.post(REFUNDS, json=refund_body, headers=headers).status_code == 201
    after = client.get(f"{PAYMENTS}/{payment['id']}", headers=billing).get_json()
    assert after["refundedAmount"]["amount"] == "10.00"


# --- tenancy -----------------------------------------------------------------------------


def test_one_merchant_never_sees_another(client, billing, other_merchant):
    payment = authorized(client, billing)
    capture(client, billing, payment["id"])
    refund_id = json_of(refund(client, billing, payment["id"], "1.00"))["id"]
    card_id = payment["paymentMethod"]["id"]
    for path, operation in [
        (f"{PAYMENTS}/{payment['id']}", "getPayment"),
        (f"{METHODS}/{card_id}", "getPaymentMethod"),
        (f"{REFUNDS}/{refund_id}", "getRefund"),
        (f"{PAYMENTS}/pay-doesnotexist", "getPayment"),
    ]:
        response = client.get(path, headers=other_merchant)
        assert response.status_code == 404
        body = conforms(response, "payments", operation)
        assert payment["id"] not in body["detail"] or path.endswith(payment["id"])
    foreign = capture(client, other_merchant, payment["id"])
    assert foreign.status_code == 404
    unknown = refund(client, other_merchant, payment["id"])
    assert (unknown.status_code, json_of(unknown)["code"]) == (422, "UNKNOWN_PAYMENT")
    stolen = pay(client, other_merchant, card_id)
    assert (stolen.status_code, json_of(stolen)["code"]) == (422, "UNKNOWN_PAYMENT_METHOD")
    for path in (PAYMENTS, METHODS, REFUNDS):
        assert client.get(path, headers=other_merchant).get_json() == []


def test_the_billing_platform_is_seeded_as_a_merchant(client, billing):
    listed = client.get(PAYMENTS, headers=billing)
    assert conforms(listed, "payments", "listPayments") == []
    assert listed.headers["X-Total-Count"] == "0"


def test_contract_refusals_name_the_field(client, billing):
    bad = client.post(METHODS, json=card_body(brand="diners"), headers=billing)
    assert conforms(bad, "payments", "createPaymentMethod")["field"] == "brand"
