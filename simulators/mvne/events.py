"""The MVNE's partner events (TMF hub pattern), queued in the outbox with the state change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from simulators.core.runtime import Runtime

from .views import order_view, product_view

ORDER_API = "productOrderingManagement"
PRODUCT_API = "productInventoryManagement"


def public_base(runtime: Runtime) -> str:
    return f"{runtime.settings.public_base_url}/mvne"


def order_event(
    runtime: Runtime,
    conn: Connection,
    order: Any,
    event_type: str,
    correlation_id: str | None,
    now: float,
) -> None:
    runtime.outbox.publish(
        conn,
        role="mvne",
        api=ORDER_API,
        partner_id=order.partner_id,
        event_type=event_type,
        resource_name="productOrder",
        resource=order_view(order, public_base(runtime)),
        correlation_id=correlation_id,
        now=now,
    )


def product_event(
    runtime: Runtime,
    conn: Connection,
    product: Any,
    event_type: str,
    correlation_id: str | None,
    now: float,
) -> None:
    runtime.outbox.publish(
        conn,
        role="mvne",
        api=PRODUCT_API,
        partner_id=product.partner_id,
        event_type=event_type,
        resource_name="product",
        resource=product_view(product, public_base(runtime)),
        correlation_id=correlation_id,
        now=now,
    )
