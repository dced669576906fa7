"""Helpers for the payment gateway's tests: the billing platform's key, cards and payments."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import api_key, conforms
from flask.testing import FlaskClient

from simulators.core.runtime import Runtime
from simulators.core.tenancy import create_partner
from simulators.payments.model import CLIENT_CAPABILITIES

GATEWAY = "/payments/tmf-api"
METHODS = f"{GATEWAY}/paymentMethods/v4/paymentMethod"
PAYMENTS = f"{GATEWAY}/paymentManagement/v4/payment"
REFUNDS = f"{GATEWAY}/paymentManagement/v4/refund"
HUB = f"{GATEWAY}/paymentManagement/v4/hub"
# A test card number (Visa's documented test PAN): passes Luhn, is no one's card.
PAN = "4111111111111111"


@pytest.fixture
def billing() -> dict[str, str]:
    """Headers of the billing platform, the gateway's seeded merchant client."""
    return {"X-API-Key": api_key("billing-merchant")}


@pytest.fixture
def other_merchant(runtime: Runtime) -> dict[str, str]:
    """Headers of a second merchant client of the gateway."""
    with runtime.store.write() as conn:
        key = create_partner(
            conn,
            secret_key=runtime.settings.secret_key,
            partner_id="mvno-merchant",
            role="payments",
            name="An MVNO taking its own payments",
            agreement={"capabilities": list(CLIENT_CAPABILITIES)},
            granted=list(CLIENT_CAPABILITIES),
            now=runtime.clock.now(conn),
        )
    return {"X-API-Key": key}


def card_body(token: str = "tok_visa", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@type": "TokenizedCard",
        "account": {"id": "ba-1001"},
        "brand": "visa",
        "lastFourDigits": "1111",
        "token": token,
        "expirationDate": "2029-12",
    }
    body.update(overrides)
    return body


def add_card(
    client: FlaskClient, headers: dict[str, str], token: str = "tok_visa", **kw: Any
) -> Any:
    response = client.post(METHODS, json=card_body(token, **kw), headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return conforms(response, "payments", "createPaymentMethod")


def pay(
    client: FlaskClient,
    headers: dict[str, str],
    method_id: str,
    amount: str = "25.00",
    units: str = "EUR",
    **kw: Any,
) -> Any:
    """POST a payment; returns the response (any status), checked against the contract."""
    body = {"paymentMethod": {"id": method_id}, "amount": {"amount": amount, "units": units}, **kw}
    response = client.post(PAYMENTS, json=body, headers=headers)
    conforms(response, "payments", "createPayment")
    return response


def authorized(
    client: FlaskClient, headers: dict[str, str], amount: str = "25.00", **kw: Any
) -> Any:
    card = add_card(client, headers)
    response = pay(client, headers, card["id"], amount, **kw)
    assert response.status_code == 201
    return response.get_json()
