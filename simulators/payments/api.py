"""The payment gateway's HTTP surface: TMF670 and TMF676 requests in, TMF JSON out."""

from __future__ import annotations

from simulators.core.contract import HeaderLookup
from simulators.core.http import (
    Reply,
    RequestContext,
    RoleApi,
    Withheld,
    created,
    list_reply,
    paging,
)
from simulators.core.hubs import Hub

from . import errors, events, model
from .views import HUB, payment_method_view, payment_view, refund_view


def screen_card_data(raw: bytes, url: str, headers: HeaderLookup) -> Withheld | None:
    """Refuse, and keep out of the journal, any request that holds card data.

    Why a screen the role sets, rather than scrubbing PAN-shaped digits in every journaled
    body: an ICCID is a 19- or 20-digit Luhn number too, so a global scrub would blank the
    identifiers the MVNE's and MNO's journal entries exist to show; and scrubbing after the
    fact would still let a contract validation message echo the value back. Here the request
    is refused before its body is parsed, the journal keeps no byte of its body, and its URL
    only with the parts holding card data withheld.
    """
    # The two headers the stack keeps (the journal, the audit trail, the outbox, the
    # idempotency store), so a card number there would be kept too.
    kept_headers = {name: headers.get(name) for name in ("X-Correlation-ID", "Idempotency-Key")}
    in_header = next(
        (name for name, value in kept_headers.items() if value and model.holds_card_number(value)),
        None,
    )
    field = f"header.{in_header}" if in_header else model.find_card_data(raw, url)
    if field is None:
        return None
    refusal = errors.CardDataNotAccepted(
        f"{field}: the request holds a card number or card verification value; "
        "register a tokenised card and send its token",
        field=field,
    )
    return Withheld(
        refusal=refusal,
        journal_url=model.url_without_card_data(url),
        keep_correlation_id=in_header != "X-Correlation-ID",
    )


api = RoleApi(model.ROLE, screen=screen_card_data)


# --- payment methods (TMF670) ----------------------------------------------------------------


@api.operation("createPaymentMethod", write=True)
def create_payment_method(ctx: RequestContext) -> Reply:
    method = model.create_payment_method(
        ctx.conn,
        client_id=ctx.partner_id,
        body=ctx.body,
        now=ctx.now(),
        correlation_id=ctx.correlation_id,
    )
    return created(payment_method_view(method, ctx.base_url))


@api.operation("listPaymentMethods")
def list_payment_methods(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, found = model.list_payment_methods(
        ctx.conn,
        ctx.partner_id,
        now=ctx.now(),
        account_id=ctx.params.get("account.id"),
        status=ctx.params.get("status"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [payment_method_view(method, ctx.base_url) for method in found])


@api.operation("getPaymentMethod")
def get_payment_method(ctx: RequestContext) -> Reply:
    method = model.get_payment_method(ctx.conn, ctx.partner_id, ctx.params["id"], ctx.now())
    return Reply(payment_method_view(method, ctx.base_url))


@api.operation("deletePaymentMethod", write=True)
def delete_payment_method(ctx: RequestContext) -> Reply:
    model.delete_payment_method(
        ctx.conn, ctx.partner_id, ctx.params["id"], ctx.now(), ctx.correlation_id
    )
    return Reply(None, 204)


# --- payments (TMF676) -----------------------------------------------------------------------


@api.operation("createPayment", write=True)
def create_payment(ctx: RequestContext) -> Reply:
    now = ctx.now()
    payment = model.create_payment(
        ctx.conn,
        client_id=ctx.partner_id,
        method_id=ctx.body["paymentMethod"]["id"],
        amount=model.parse_money(ctx.body["amount"], "amount"),
        capture=bool(ctx.body.get("capture", False)),
        description=ctx.body.get("description"),
        now=now,
        correlation_id=ctx.correlation_id,
    )
    runtime, conn, correlation_id = ctx.runtime, ctx.conn, ctx.correlation_id
    events.payment_event(
        runtime, conn, payment.as_pending(), events.PAYMENT_CREATE, correlation_id, now
    )
    events.payment_event(runtime, conn, payment, events.PAYMENT_STATE_CHANGE, correlation_id, now)
    return created(payment_view(payment, ctx.base_url))


@api.operation("listPayments")
def list_payments(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, found = model.list_payments(
        ctx.conn,
        ctx.partner_id,
        status=ctx.params.get("status"),
        account_id=ctx.params.get("account.id"),
        method_id=ctx.params.get("paymentMethod.id"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [payment_view(payment, ctx.base_url) for payment in found])


@api.operation("getPayment")
def get_payment(ctx: RequestContext) -> Reply:
    payment = model.get_payment(ctx.conn, ctx.partner_id, ctx.params["id"])
    return Reply(payment_view(payment, ctx.base_url))


@api.operation("capturePayment", write=True)
def capture_payment(ctx: RequestContext) -> Reply:
    now = ctx.now()
    amount = ctx.body.get("amount") if isinstance(ctx.body, dict) else None
    payment = model.capture_payment(
        ctx.conn,
        client_id=ctx.partner_id,
        payment_id=ctx.params["id"],
        amount=model.parse_money(amount, "amount") if amount is not None else None,
        now=now,
        correlation_id=ctx.correlation_id,
    )
    events.payment_event(
        ctx.runtime, ctx.conn, payment, events.PAYMENT_STATE_CHANGE, ctx.correlation_id, now
    )
    return Reply(payment_view(payment, ctx.base_url))


@api.operation("voidPayment", write=True)
def void_payment(ctx: RequestContext) -> Reply:
    now = ctx.now()
    payment = model.void_payment(
        ctx.conn,
        client_id=ctx.partner_id,
        payment_id=ctx.params["id"],
        now=now,
        correlation_id=ctx.correlation_id,
    )
    events.payment_event(
        ctx.runtime, ctx.conn, payment, events.PAYMENT_STATE_CHANGE, ctx.correlation_id, now
    )
    return Reply(payment_view(payment, ctx.base_url))


# --- refunds (TMF676) ------------------------------------------------------------------------


@api.operation("createRefund", write=True)
def create_refund(ctx: RequestContext) -> Reply:
    now = ctx.now()
    amount = ctx.body.get("amount")
    refund, _payment = model.create_refund(
        ctx.conn,
        client_id=ctx.partner_id,
        payment_id=ctx.body["payment"]["id"],
        amount=model.parse_money(amount, "amount") if amount is not None else None,
        reason=ctx.body.get("reason"),
        now=now,
        correlation_id=ctx.correlation_id,
    )
    events.refund_event(ctx.runtime, ctx.conn, refund, ctx.correlation_id, now)
    return created(refund_view(refund, ctx.base_url))


@api.operation("listRefunds")
def list_refunds(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, found = model.list_refunds(
        ctx.conn,
        ctx.partner_id,
        payment_id=ctx.params.get("payment.id"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [refund_view(refund, ctx.base_url) for refund in found])


@api.operation("getRefund")
def get_refund(ctx: RequestContext) -> Reply:
    refund = model.get_refund(ctx.conn, ctx.partner_id, ctx.params["id"])
    return Reply(refund_view(refund, ctx.base_url))


# --- event hub -------------------------------------------------------------------------------


PAYMENT_HUB = Hub(model.ROLE, events.PAYMENT_API, HUB)


@api.operation("registerPaymentListener", write=True)
def register_payment_listener(ctx: RequestContext) -> Reply:
    return PAYMENT_HUB.register(ctx)


@api.operation("getPaymentListener")
def get_payment_listener(ctx: RequestContext) -> Reply:
    return PAYMENT_HUB.get(ctx)


@api.operation("unregisterPaymentListener", write=True)
def unregister_payment_listener(ctx: RequestContext) -> Reply:
    return PAYMENT_HUB.unregister(ctx)
