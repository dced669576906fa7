"""The card gateway as the billing platform uses it: tokenised cards, payments, captures,
refunds, and the card data it refuses to hold."""

from __future__ import annotations

from typing import Any

from ..catalogue import phrase
from ..world import StepFailed, World

PAYMENTS = "payments"
METHODS = "/tmf-api/paymentMethods/v4/paymentMethod"
PAYMENT = "/tmf-api/paymentManagement/v4/payment"
REFUNDS = "/tmf-api/paymentManagement/v4/refund"


def card_body(world: World, token: str) -> dict[str, Any]:
    account = world.remembered.get("account", {}).get("id", "ba-1001")
    return {
        "@type": "TokenizedCard",
        "account": {"id": account},
        "brand": "visa",
        "lastFourDigits": "4242",
        "token": token,
        "expirationDate": "2029-12",
    }


@phrase(
    "given",
    'the billing platform holds a card with the token "{token:Q}"',
    role=PAYMENTS,
    example='Given the billing platform holds a card with the token "tok_soft_insufficient_funds"',
    summary="a TokenizedCard for the billing account (if any); the token picks the "
    "issuer's answer; remembered as ${card}",
)
def holds_card(handoff: World, token: str) -> None:
    answer = handoff.send(
        PAYMENTS,
        "POST",
        METHODS,
        operation="createPaymentMethod",
        json_body=card_body(handoff, token),
    )
    handoff.remember("card", handoff.expect(answer, 201))


@phrase(
    "when",
    'the billing platform registers a card with the number "{number:Q}"',
    role=PAYMENTS,
    example='When the billing platform registers a card with the number "4111111111111111"',
    summary="a card number (PAN) in the body: what PCI DSS forbids the gateway to keep",
)
def registers_pan(handoff: World, number: str) -> None:
    body = card_body(handoff, "tok_visa")
    body["cardNumber"] = number
    handoff.send(PAYMENTS, "POST", METHODS, operation="createPaymentMethod", json_body=body)


def charge(world: World, amount: str, currency: str, capture: bool, key: str | None) -> None:
    card = world.recall("card")
    amount = world.expand(amount)
    body = {
        "paymentMethod": {"id": card["id"]},
        "amount": {"amount": amount, "units": currency},
        "capture": capture,
    }
    headers = {"Idempotency-Key": key} if key else None
    answer = world.send(
        PAYMENTS, "POST", PAYMENT, operation="createPayment", json_body=body, headers=headers
    )
    if answer.status == 201:
        world.remember("payment", answer.json())


@phrase(
    "given/when",
    'the billing platform charges "{amount:Q}" {currency:w} to the card',
    role=PAYMENTS,
    example='When the billing platform charges "25.00" EUR to the card',
    summary="authorise and capture at once (a sale); remembered as ${payment}",
)
def charges(handoff: World, amount: str, currency: str) -> None:
    charge(handoff, amount, currency, True, None)


@phrase(
    "when",
    'the billing platform charges "{amount:Q}" {currency:w} to the card with the '
    'idempotency key "{key:Q}"',
    role=PAYMENTS,
    example='When the billing platform charges "25.00" EUR to the card with the '
    'idempotency key "bill-0001-1"',
)
def charges_with_key(handoff: World, amount: str, currency: str, key: str) -> None:
    charge(handoff, amount, currency, True, handoff.expand(key))


@phrase(
    "given/when",
    'the billing platform authorises "{amount:Q}" {currency:w} on the card',
    role=PAYMENTS,
    example='When the billing platform authorises "30.00" EUR on the card',
)
def authorises(handoff: World, amount: str, currency: str) -> None:
    charge(handoff, amount, currency, False, None)


@phrase(
    "given/when",
    'the billing platform captures "{amount:Q}" {currency:w} of the payment',
    role=PAYMENTS,
    example='When the billing platform captures "20.00" EUR of the payment',
)
def captures(handoff: World, amount: str, currency: str) -> None:
    payment = handoff.recall("payment")
    handoff.send(
        PAYMENTS,
        "POST",
        f"{PAYMENT}/{payment['id']}/capture",
        operation="capturePayment",
        json_body={"amount": {"amount": amount, "units": currency}},
    )


@phrase(
    "when",
    'the billing platform refunds "{amount:Q}" {currency:w} of the payment',
    role=PAYMENTS,
    example='When the billing platform refunds "12.50" EUR of the payment',
)
def refunds(handoff: World, amount: str, currency: str) -> None:
    payment = handoff.recall("payment")
    body = {"payment": {"id": payment["id"]}, "amount": {"amount": amount, "units": currency}}
    handoff.send(PAYMENTS, "POST", REFUNDS, operation="createRefund", json_body=body)


@phrase(
    "then", 'the payment is "{status:Q}"', role=PAYMENTS, example='Then the payment is "captured"'
)
def payment_status(handoff: World, status: str) -> None:
    payment = handoff.recall("payment")
    answer = handoff.send(PAYMENTS, "GET", f"{PAYMENT}/{payment['id']}", operation="getPayment")
    found = handoff.remember("payment", handoff.expect(answer, 200))
    if found["status"] != status:
        raise StepFailed(f"the payment is {found['status']} ({found.get('statusReason')})")


@phrase(
    "then",
    'the payment is "{status:Q}" with reason "{code:Q}"',
    role=PAYMENTS,
    example='Then the payment is "denied" with reason "STOLEN_CARD"',
)
def payment_status_reason(handoff: World, status: str, code: str) -> None:
    payment = handoff.recall("payment")
    answer = handoff.send(PAYMENTS, "GET", f"{PAYMENT}/{payment['id']}", operation="getPayment")
    found = handoff.remember("payment", handoff.expect(answer, 200))
    reason = (found.get("statusReason") or {}).get("code")
    if (found["status"], reason) != (status, code):
        raise StepFailed(f"the payment is {found['status']} with reason {reason}")


@phrase(
    "when",
    "the captured payment is recorded at billing with its id as the reference",
    role=PAYMENTS,
    example="When the captured payment is recorded at billing with its id as the reference",
    summary="the handoff from the gateway to billing: the bill is paid by the payment's "
    "captured amount, counted once per reference",
)
def recorded_at_billing(handoff: World) -> None:
    payment = handoff.recall("payment")
    bill = handoff.recall("bill")
    captured = payment["capturedAmount"]
    body = {
        "customerBill": {"id": bill["id"]},
        "amount": {"amount": float(captured["amount"]), "units": captured["units"]},
        "reference": payment["id"],
    }
    handoff.send("billing", "POST", "/v1/payment", operation="createPayment", json_body=body)
