"""The gateway's events (TMF hub pattern), queued in the outbox with the state change."""

from __future__ import annotations

from sqlalchemy import Connection

from simulators.core.runtime import Runtime

from . import model
from .views import payment_view, refund_view

PAYMENT_API = "paymentManagement"
PAYMENT_CREATE = "PaymentCreateEvent"
PAYMENT_STATE_CHANGE = "PaymentStateChangeEvent"
REFUND_CREATE = "RefundCreateEvent"


def public_base(runtime: Runtime) -> str:
    return f"{runtime.settings.public_base_url}/{model.ROLE}"


def payment_event(
    runtime: Runtime,
    conn: Connection,
    payment: model.Payment,
    event_type: str,
    correlation_id: str | None,
    now: float,
) -> None:
    runtime.outbox.publish(
        conn,
        role=model.ROLE,
        api=PAYMENT_API,
        partner_id=payment.client_id,
        event_type=event_type,
        resource_name="payment",
        resource=payment_view(payment, public_base(runtime)),
        correlation_id=correlation_id,
        now=now,
    )


def refund_event(
    runtime: Runtime,
    conn: Connection,
    refund: model.Refund,
    correlation_id: str | None,
    now: float,
) -> None:
    runtime.outbox.publish(
        conn,
        role=model.ROLE,
        api=PAYMENT_API,
        partner_id=refund.client_id,
        event_type=REFUND_CREATE,
        resource_name="refund",
        resource=refund_view(refund, public_base(runtime)),
        correlation_id=correlation_id,
        now=now,
    )
