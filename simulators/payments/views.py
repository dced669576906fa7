"""TMF670 and TMF676 representations, shared by the API answers and the event payloads."""

from __future__ import annotations

from typing import Any

from simulators.core.clock import isoformat

from . import model

METHODS = "/tmf-api/paymentMethods/v4/paymentMethod"
PAYMENTS = "/tmf-api/paymentManagement/v4/payment"
REFUNDS = "/tmf-api/paymentManagement/v4/refund"
HUB = "/tmf-api/paymentManagement/v4/hub"


def payment_method_view(method: model.PaymentMethod, base: str) -> dict[str, Any]:
    account: dict[str, Any] = {"id": method.account_id}
    if method.account_name is not None:
        account["name"] = method.account_name
    view: dict[str, Any] = {
        "id": method.id,
        "href": f"{base}{METHODS}/{method.id}",
        "@type": "TokenizedCard",
    }
    if method.name is not None:
        view["name"] = method.name
    view.update(
        account=account,
        brand=method.brand,
        lastFourDigits=method.last_four,
        token=method.token,
        expirationDate=method.expiration,
        status=method.status,
    )
    if method.hard_decline is not None:
        view["statusReason"] = _reason(method.hard_decline)
    view["createdDate"] = isoformat(method.created_at)
    return view


def _reason(code: str, retry_after: float | None = None) -> dict[str, Any]:
    decline_type, reason = model.DECLINES[code]
    body: dict[str, Any] = {
        "code": code,
        "reason": reason,
        "declineType": decline_type,
        "retryable": decline_type == model.SOFT,
    }
    if retry_after is not None:
        body["retryAfter"] = isoformat(retry_after)
    return body


def payment_view(payment: model.Payment, base: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": payment.id,
        "href": f"{base}{PAYMENTS}/{payment.id}",
        "@type": "Payment",
        "status": payment.status,
        "statusDate": isoformat(payment.status_date),
    }
    if payment.decline_code is not None:
        view["statusReason"] = _reason(payment.decline_code, payment.retry_after)
    view["paymentDate"] = isoformat(payment.payment_date)
    if payment.description is not None:
        view["description"] = payment.description
    view["amount"] = payment.money(payment.amount_minor).json()
    if payment.authorized_minor is not None:
        view["authorizedAmount"] = payment.money(payment.authorized_minor).json()
    if payment.authorization_code is not None:
        view["authorizationCode"] = payment.authorization_code
    view.update(
        capturedAmount=payment.money(payment.captured_minor).json(),
        refundedAmount=payment.money(payment.refunded_minor).json(),
        account={"id": payment.account_id},
        paymentMethod={
            "id": payment.method_id,
            "href": f"{base}{METHODS}/{payment.method_id}",
            "@type": "TokenizedCard",
            "brand": payment.brand,
            "lastFourDigits": payment.last_four,
        },
    )
    return view


def refund_view(refund: model.Refund, base: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": refund.id,
        "href": f"{base}{REFUNDS}/{refund.id}",
        "@type": "Refund",
        "status": model.REFUND_COMPLETED,
        "refundDate": isoformat(refund.refund_date),
        "amount": model.Money(refund.amount_minor, refund.currency).json(),
    }
    if refund.reason is not None:
        view["reason"] = refund.reason
    view.update(
        payment={"id": refund.payment_id, "href": f"{base}{PAYMENTS}/{refund.payment_id}"},
        account={"id": refund.account_id},
    )
    return view
