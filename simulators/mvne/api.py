"""The MVNE's HTTP surface: contract operations translated to model calls."""

from __future__ import annotations

from typing import Any

from flask import current_app

from simulators.core.clock import isoformat, parse_iso
from simulators.core.http import Reply, RequestContext, RoleApi, created, list_reply, paging
from simulators.core.hubs import Hub

from . import diagnostics, errors, events, inventory, model, sim_change, steps
from .views import (
    batch_view,
    bucket_view,
    desired_barring,
    mapping_view,
    money,
    offering_view,
    order_view,
    product_view,
    sim_view,
    topup_view,
    usage_view,
)

api = RoleApi("mvne")


# --- catalog -----------------------------------------------------------------------------


@api.operation("listProductOfferings")
def list_product_offerings(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    partner = ctx.partner
    assert partner is not None
    actions = model.allowed_actions(partner)
    found = model.partner_offerings(ctx.conn, partner)
    views = [offering_view(row, ctx.base_url, markets, actions) for row, markets in found]
    return list_reply(len(views), views[offset : offset + limit])


@api.operation("getProductOffering")
def get_product_offering(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    row, markets = model.get_partner_offering(ctx.conn, ctx.partner, ctx.params["id"])
    return Reply(offering_view(row, ctx.base_url, markets, model.allowed_actions(ctx.partner)))


# --- SIM inventory -------------------------------------------------------------------------


@api.operation("listSims")
def list_sims(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    offset, limit = paging(ctx)
    total, rows = model.list_sims(
        ctx.conn,
        ctx.partner,
        ctx.params.get("resourceStatus"),
        offset,
        limit,
        batch_number=ctx.params.get("batchNumber"),
    )
    return list_reply(total, [sim_view(row, ctx.base_url) for row in rows])


@api.operation("getSim")
def get_sim(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    return Reply(sim_view(model.get_sim(ctx.conn, ctx.partner, ctx.params["iccid"]), ctx.base_url))


# --- SIM batches and ICCID mappings (fulfillment -> MVNE) ------------------------------------


@api.operation("loadSimBatch", write=True)
def load_sim_batch(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    batch, loaded = inventory.load_batch(
        ctx.conn,
        partner=ctx.partner,
        batch_number=ctx.params["batchNumber"],
        lines=ctx.body,
        correlation_id=ctx.correlation_id,
        now=ctx.now(),
    )
    view = batch_view(batch, ctx.base_url)
    return created(view) if loaded else Reply(view)


@api.operation("getSimBatch")
def get_sim_batch(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    batch = inventory.get_batch(ctx.conn, ctx.partner, ctx.params["batchNumber"])
    return Reply(batch_view(batch, ctx.base_url))


@api.operation("listSimBatches")
def list_sim_batches(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    offset, limit = paging(ctx)
    total, rows = inventory.list_batches(ctx.conn, ctx.partner, offset, limit)
    return list_reply(total, [batch_view(row, ctx.base_url) for row in rows])


@api.operation("mapIccid", write=True)
def map_iccid(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    sim, mapped = inventory.map_iccid(
        ctx.conn,
        partner=ctx.partner,
        iccid=ctx.params["iccid"],
        body=ctx.body,
        correlation_id=ctx.correlation_id,
        now=ctx.now(),
    )
    view = mapping_view(sim, ctx.base_url)
    return created(view) if mapped else Reply(view)


# --- SIM changes -----------------------------------------------------------------------


def sim_change_view(row: Any, base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "href": f"{base_url}/v1/simChanges/{row.id}",
        "@type": "SimChange",
        "productId": row.product_id,
        "fromIccid": row.iccid_from,
        "iccid": row.iccid,
        "state": row.state,
        "requestDate": isoformat(row.request_date),
    }
    if row.state_reason:
        body["stateReason"] = row.state_reason
    if row.completion_date is not None:
        body["completionDate"] = isoformat(row.completion_date)
    return body


@api.operation("requestSimChange", write=True)
def request_sim_change(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    now = ctx.now()
    change = sim_change.request_sim_change(
        ctx.conn,
        partner=ctx.partner,
        product_id=ctx.body["productId"],
        iccid=ctx.body["iccid"],
        now=now,
        correlation_id=ctx.correlation_id,
    )
    steps.schedule(
        ctx.runtime, ctx.conn, sim_change.SUBMIT, {"sim_change_id": change.id}, now,
        ctx.correlation_id,
    )  # fmt: skip
    return created(sim_change_view(change, ctx.base_url))


@api.operation("getSimChange")
def get_sim_change(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    change = sim_change.get(ctx.conn, ctx.partner, ctx.params["id"])
    return Reply(sim_change_view(change, ctx.base_url))


@api.operation("getIccidMapping")
def get_iccid_mapping(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    sim = inventory.get_mapping(ctx.conn, ctx.partner, ctx.params["iccid"])
    return Reply(mapping_view(sim, ctx.base_url))


@api.operation("unmapIccid", write=True)
def unmap_iccid(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    inventory.unmap_iccid(
        ctx.conn,
        partner=ctx.partner,
        iccid=ctx.params["iccid"],
        correlation_id=ctx.correlation_id,
        now=ctx.now(),
    )
    return Reply(None, 204)


# --- orders ---------------------------------------------------------------------------------


@api.operation("createProductOrder", idempotent_on="externalId")
def create_product_order(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    now = ctx.now()
    unmapped = ctx.data_fault("ICCID_UNMAPPED")
    order, is_new = model.create_order(
        ctx.conn,
        partner=ctx.partner,
        body=ctx.body,
        fingerprint=ctx.fingerprint,
        correlation_id=ctx.correlation_id,
        now=now,
        unmapped=unmapped.targets("iccid") if unmapped else None,
    )
    if is_new:
        events.order_event(
            ctx.runtime, ctx.conn, order, "ProductOrderCreateEvent", ctx.correlation_id, now
        )
        steps.schedule(
            ctx.runtime,
            ctx.conn,
            "mvne.activation.submit",
            {"order_id": order.id},
            now,
            ctx.correlation_id,
        )
    return created(order_view(order, ctx.base_url))


@api.operation("listProductOrders")
def list_product_orders(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    offset, limit = paging(ctx)
    total, rows = model.list_orders(
        ctx.conn,
        ctx.partner,
        state=ctx.params.get("state"),
        external_id=ctx.params.get("externalId"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [order_view(row, ctx.base_url) for row in rows])


@api.operation("getProductOrder")
def get_product_order(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    return Reply(order_view(model.get_order(ctx.conn, ctx.partner, ctx.params["id"]), ctx.base_url))


# --- event hubs -----------------------------------------------------------------------------


ORDER_HUB = Hub("mvne", events.ORDER_API, "/tmf-api/productOrderingManagement/v4/hub")
PRODUCT_HUB = Hub("mvne", events.PRODUCT_API, "/tmf-api/productInventoryManagement/v4/hub")


@api.operation("registerOrderListener", write=True)
def register_order_listener(ctx: RequestContext) -> Reply:
    return ORDER_HUB.register(ctx)


@api.operation("getOrderListener")
def get_order_listener(ctx: RequestContext) -> Reply:
    return ORDER_HUB.get(ctx)


@api.operation("unregisterOrderListener", write=True)
def unregister_order_listener(ctx: RequestContext) -> Reply:
    return ORDER_HUB.unregister(ctx)


@api.operation("registerProductListener", write=True)
def register_product_listener(ctx: RequestContext) -> Reply:
    return PRODUCT_HUB.register(ctx)


@api.operation("getProductListener")
def get_product_listener(ctx: RequestContext) -> Reply:
    return PRODUCT_HUB.get(ctx)


@api.operation("unregisterProductListener", write=True)
def unregister_product_listener(ctx: RequestContext) -> Reply:
    return PRODUCT_HUB.unregister(ctx)


# --- subscriptions ----------------------------------------------------------------------------


@api.operation("listProducts")
def list_products(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    offset, limit = paging(ctx)
    total, rows = model.list_products(
        ctx.conn,
        ctx.partner,
        status=ctx.params.get("status"),
        msisdn=ctx.params.get("msisdn"),
        iccid=ctx.params.get("iccid"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [product_view(row, ctx.base_url) for row in rows])


@api.operation("getProduct")
def get_product(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    return Reply(
        product_view(model.get_product(ctx.conn, ctx.partner, ctx.params["id"]), ctx.base_url)
    )


@api.operation("updateProductStatus", write=True)
def update_product_status(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    now = ctx.now()
    product = model.get_product(ctx.conn, ctx.partner, ctx.params["id"])
    row, changed = model.change_status(
        ctx.conn,
        product=product,
        status=ctx.body["status"],
        actor=f"partner:{ctx.partner.id}",
        correlation_id=ctx.correlation_id,
        now=now,
    )
    if changed:
        events.product_event(
            ctx.runtime, ctx.conn, row, "ProductStateChangeEvent", ctx.correlation_id, now
        )
        steps.schedule_network_sync(ctx.runtime, ctx.conn, row.id, ctx.correlation_id, now)
    return Reply(product_view(row, ctx.base_url))


# --- balance -----------------------------------------------------------------------------------


@api.operation("listBuckets")
def list_buckets(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    offset, limit = paging(ctx)
    total, rows = model.list_buckets(
        ctx.conn, ctx.partner, ctx.params.get("product.id"), offset, limit
    )
    return list_reply(total, [bucket_view(row, ctx.base_url) for row in rows])


@api.operation("getBucket")
def get_bucket(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    return Reply(
        bucket_view(model.get_bucket(ctx.conn, ctx.partner, ctx.params["id"]), ctx.base_url)
    )


@api.operation("createTopup", write=True)
def create_topup(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    now = ctx.now()
    topup, product, unbarred = model.top_up(
        ctx.conn, partner=ctx.partner, body=ctx.body, correlation_id=ctx.correlation_id, now=now
    )
    if unbarred:
        events.product_event(
            ctx.runtime,
            ctx.conn,
            product,
            "ProductAttributeValueChangeEvent",
            ctx.correlation_id,
            now,
        )
        steps.schedule_network_sync(ctx.runtime, ctx.conn, product.id, ctx.correlation_id, now)
    return created(topup_view(topup, ctx.base_url))


@api.operation("listTopups")
def list_topups(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    offset, limit = paging(ctx)
    total, rows = model.list_topups(
        ctx.conn, ctx.partner, ctx.params.get("product.id"), offset, limit
    )
    return list_reply(total, [topup_view(row, ctx.base_url) for row in rows])


@api.operation("getTopup")
def get_topup(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    return Reply(topup_view(model.get_topup(ctx.conn, ctx.partner, ctx.params["id"]), ctx.base_url))


# --- usage -------------------------------------------------------------------------------------


@api.operation("chargeUsage", idempotent_on="externalId")
def charge_usage(ctx: RequestContext) -> Reply:
    now = ctx.now()
    usage, product, newly_barred = model.charge_usage(
        ctx.conn,
        body=ctx.body,
        correlation_id=ctx.correlation_id,
        now=now,
        usage_date=parse_iso(ctx.body["usageDate"]),
    )
    if newly_barred:
        events.product_event(
            ctx.runtime,
            ctx.conn,
            product,
            "ProductAttributeValueChangeEvent",
            ctx.correlation_id,
            now,
        )
        steps.schedule_network_sync(ctx.runtime, ctx.conn, product.id, ctx.correlation_id, now)
    return created(usage_view(usage, ctx.base_url))


@api.operation("listUsage")
def list_usage(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    offset, limit = paging(ctx)
    total, rows = model.list_usage(
        ctx.conn,
        ctx.partner,
        product_id=ctx.params.get("product.id"),
        usage_type=ctx.params.get("usageType"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [usage_view(row, ctx.base_url) for row in rows])


@api.operation("getUsage")
def get_usage(ctx: RequestContext) -> Reply:
    assert ctx.partner is not None
    return Reply(usage_view(model.get_usage(ctx.conn, ctx.partner, ctx.params["id"]), ctx.base_url))


# --- care diagnostics and network tickets -----------------------------------------------------

MNO_SERVICE_PATH = "/tmf-api/serviceInventory/v4/service"
MNO_TICKET_PATH = "/tmf-api/troubleTicket/v4/troubleTicket"


def _mno(ctx: RequestContext, method: str, path: str, body: Any = None) -> Any:
    """Call the MNO with no write transaction held; in-process it is this app on this
    thread, so it gets an app context of its own."""
    with current_app.app_context():
        return steps._call_mno(ctx.runtime, method, path, ctx.correlation_id, body)


def _network_view(ctx: RequestContext, product: Any) -> dict[str, Any]:
    """Attach and roaming as the MNO's HLR/HSS record (TMF638) shows them right now."""
    if product.network_service_id is None:
        return {"source": "none", "attachState": "unknown", "roaming": "unknown"}
    try:
        response = _mno(ctx, "GET", f"{MNO_SERVICE_PATH}/{product.network_service_id}")
    except steps.NetworkUnavailable:
        return {"source": "unavailable", "attachState": "unknown", "roaming": "unknown"}
    if response.status_code != 200:
        return {"source": "unavailable", "attachState": "unknown", "roaming": "unknown"}
    values = {c["name"]: c["value"] for c in response.json().get("serviceCharacteristic", [])}
    view: dict[str, Any] = {
        "source": "mno",
        "attachState": str(values.get("attachState", "unknown")),
        # The host network has no visited networks: an attached line is on its home PLMN.
        "roaming": "home" if values.get("attachState") == "attached" else "notAttached",
    }
    if values.get("lastAttachTime"):
        view["lastAttachTime"] = values["lastAttachTime"]
    return view


@api.operation("getSubscriptionDiagnostics")
def get_subscription_diagnostics(ctx: RequestContext) -> Reply:
    credential = ctx.partner
    assert credential is not None
    diagnostics.require_scope(credential, ctx.data_fault("DIAGNOSTIC_SCOPE_MISSING") is not None)
    product = diagnostics.subscription(ctx.conn, credential, ctx.params["id"])
    return Reply(
        {
            "subscriptionId": product.id,
            "status": product.status,
            "msisdn": product.msisdn,
            "barring": desired_barring(product.status, product.balance_barred),
            "networkBarring": product.network_barring,
            "productOffering": product.offering_id,
            "sim": {
                "iccid": product.iccid,
                "imsi": product.imsi,
                "resourceStatus": diagnostics.sim_status(ctx.conn, product),
            },
            "network": _network_view(ctx, product),
            "balance": money(product.balance_minor, product.currency),
            "provisioningHistory": diagnostics.history(ctx.conn, product),
        }
    )


def _network_ticket_view(ctx: RequestContext, row: Any, mno: dict[str, Any] | None) -> Any:
    body: dict[str, Any] = {
        "id": row.id,
        "href": ctx.href(f"/diagnostics/v1/networkTicket/{row.id}"),
        "externalId": row.external_id,
        "category": row.category,
        "mnoTicketId": row.mno_ticket_id,
        "createdDate": isoformat(row.created_at),
    }
    if row.subscription_id is not None:
        body["subscriptionId"] = row.subscription_id
    if mno is None:
        body["status"] = "unknown"
    else:
        body["status"] = mno["status"]
        body["slaCovered"] = mno["slaCovered"]
        body["stalled"] = mno["stalled"]
    return body


@api.operation("createNetworkTicket")
def create_network_ticket(ctx: RequestContext) -> Reply:
    # A read handler: the MNO is asked first, then the MVNE's record is written.
    credential = ctx.partner
    assert credential is not None
    if ctx.body.get("subscriptionId"):
        diagnostics.subscription(ctx.conn, credential, ctx.body["subscriptionId"])
    mno_body = {
        "externalId": diagnostics.mno_ticket_reference(
            ctx.conn, credential, ctx.body["externalId"]
        ),
        "category": ctx.body["category"],
        "severity": ctx.body["severity"],
        "description": ctx.body["description"],
    }
    try:
        response = _mno(ctx, "POST", MNO_TICKET_PATH, mno_body)
    except steps.NetworkUnavailable as exc:
        raise errors.NetworkTicketUnavailable(f"The MNO did not take the ticket ({exc})") from exc
    if 400 <= response.status_code < 500:
        raise errors.NetworkTicketRefused(
            f"The MNO refused the ticket ({response.status_code})",
            peerStatus=response.status_code,
        )
    if response.status_code not in (200, 201):
        raise errors.NetworkTicketUnavailable(
            f"The MNO answered {response.status_code}", peerStatus=response.status_code
        )
    mno = response.json()
    with ctx.runtime.store.write() as conn:
        row = diagnostics.record_network_ticket(
            conn,
            credential=credential,
            body=ctx.body,
            mno_ticket_id=str(mno["id"]),
            now=ctx.runtime.clock.now(conn),
        )
    return created(_network_ticket_view(ctx, row, mno))


@api.operation("getNetworkTicket")
def get_network_ticket(ctx: RequestContext) -> Reply:
    credential = ctx.partner
    assert credential is not None
    row = diagnostics.get_network_ticket(ctx.conn, credential, ctx.params["id"])
    mno: dict[str, Any] | None = None
    try:
        response = _mno(ctx, "GET", f"{MNO_TICKET_PATH}/{row.mno_ticket_id}")
        if response.status_code == 200:
            mno = response.json()
    except steps.NetworkUnavailable:
        mno = None  # the MVNE's own record still answers; the MNO's status is unknown
    return Reply(_network_ticket_view(ctx, row, mno))
