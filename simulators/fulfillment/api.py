"""Fulfillment's HTTP surface: production orders, vendor files, stock, shipments, hub."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, request
from sqlalchemy import Connection

from simulators.core.admin import current_seed
from simulators.core.contract import Operation
from simulators.core.http import (
    Authenticator,
    RawJson,
    Reply,
    RequestContext,
    RoleApi,
    created,
    list_reply,
    paging,
)
from simulators.core.hubs import Hub
from simulators.core.tenancy import Partner, authenticate

from . import events, model, vendor
from .model import MAPPING_LATE_DEFAULT_S
from .steps import commit
from .views import HUB_PATH, production_order_view, shipment_view, stock_view

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime

# The MVNO partners are the MVNE's: fulfillment accepts the keys they use there, and acts at
# the MVNE with the same partner's key.
PARTNERS_OF = "mvne"


def mvno_partner(runtime: Runtime, conn: Connection, operation: Operation) -> Partner | None:
    if not operation.secured:
        return None
    return authenticate(conn, PARTNERS_OF, request.headers.get("X-API-Key"))


class FulfillmentApi(RoleApi):
    def blueprint(
        self,
        runtime: Runtime,
        authenticator: Authenticator | None = None,
        prefix: str | None = None,
    ) -> Blueprint:
        return super().blueprint(runtime, authenticator or mvno_partner, prefix)


api = FulfillmentApi(model.ROLE)


# --- production orders ---------------------------------------------------------------------------


def _vendor_defect(ctx: RequestContext) -> vendor.Defect | None:
    """The vendor-file fault that fired on this order, if any (the vendor will make it)."""
    for kind in vendor.DEFECTS:
        firing = ctx.data_fault(f"VENDOR_FILE_{kind}")
        if firing is not None:
            return vendor.Defect(kind, int(firing.effect.get("row", 1)))
    return None


@api.operation("createProductionOrder", idempotent_on="externalId")
def create_production_order(ctx: RequestContext) -> Reply:
    now = ctx.now()
    outcome = model.create_production_order(
        ctx.conn,
        partner_id=ctx.partner_id,
        body=ctx.body,
        defect=_vendor_defect(ctx),
        now=now,
        correlation_id=ctx.correlation_id,
    )
    commit(ctx.runtime, ctx.conn, outcome, ctx.correlation_id, now)
    return created(production_order_view(outcome.row, ctx.base_url))


@api.operation("listProductionOrders")
def list_production_orders(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = model.list_orders(
        ctx.conn,
        ctx.partner_id,
        state=ctx.params.get("state"),
        batch_number=ctx.params.get("batchNumber"),
        profile_type=ctx.params.get("profileType"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [production_order_view(row, ctx.base_url) for row in rows])


@api.operation("getProductionOrder")
def get_production_order(ctx: RequestContext) -> Reply:
    row = model.get_order(ctx.conn, ctx.partner_id, ctx.params["id"])
    return Reply(production_order_view(row, ctx.base_url))


@api.operation("getVendorFile")
def get_vendor_file(ctx: RequestContext) -> Reply:
    text = model.vendor_file(ctx.conn, ctx.partner_id, ctx.params["id"])
    # The file as the vendor wrote it; RawJson only means "send these characters as they are".
    return Reply(RawJson(text), 200, {"Content-Type": "text/plain; charset=utf-8"})


# --- stock ---------------------------------------------------------------------------------------


@api.operation("listStock")
def list_stock(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = model.list_stock(
        ctx.conn,
        ctx.partner_id,
        state=ctx.params.get("state"),
        profile_type=ctx.params.get("profileType"),
        batch_number=ctx.params.get("batchNumber"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [stock_view(row, ctx.base_url) for row in rows])


@api.operation("getStockItem")
def get_stock_item(ctx: RequestContext) -> Reply:
    row = model.get_stock(ctx.conn, ctx.partner_id, ctx.params["iccid"])
    return Reply(stock_view(row, ctx.base_url))


@api.operation("downloadEsimProfile", write=True)
def download_esim_profile(ctx: RequestContext) -> Reply:
    now = ctx.now()
    sim, outcome = model.download_profile(
        ctx.conn,
        partner_id=ctx.partner_id,
        iccid=ctx.params["iccid"],
        eid=ctx.body["eid"],
        matching=ctx.body["matchingId"],
        now=now,
        correlation_id=ctx.correlation_id,
    )
    commit(ctx.runtime, ctx.conn, outcome, ctx.correlation_id, now)
    return Reply(stock_view(sim, ctx.base_url))


# --- shipments -----------------------------------------------------------------------------------


def _shipment_faults(ctx: RequestContext) -> model.ShipmentFaults:
    """The mapping and carrier faults that fired on this shipment's creation."""
    late = ctx.data_fault("MAPPING_LATE")
    attempts = ctx.data_fault("CARRIER_ATTEMPT_FAIL")
    return model.ShipmentFaults(
        mapping_not_sent=ctx.data_fault("MAPPING_NOT_SENT") is not None,
        mapping_wrong_iccid=ctx.data_fault("MAPPING_WRONG_ICCID") is not None,
        mapping_twice=ctx.data_fault("MAPPING_SENT_TWICE") is not None,
        mapping_late_s=(
            float(late.effect.get("delaySeconds", MAPPING_LATE_DEFAULT_S)) if late else None
        ),
        failed_attempts=int(attempts.effect.get("count", 1)) if attempts else 0,
        damaged=ctx.data_fault("CARRIER_EXCEPTION") is not None,
        lost=ctx.data_fault("CARRIER_EXPIRED") is not None,
    )


def _shipment_json(ctx: RequestContext, row: Any) -> dict[str, Any]:
    sims = model.profiles_of(ctx.conn, [row.iccid] if row.profile_type == "eSIM" else [])
    return shipment_view(row, ctx.base_url, sims.get(row.iccid))


@api.operation("createShipment", idempotent_on="externalId")
def create_shipment(ctx: RequestContext) -> Reply:
    now = ctx.now()
    outcome = model.create_shipment(
        ctx.conn,
        partner_id=ctx.partner_id,
        body=ctx.body,
        faults=_shipment_faults(ctx),
        seed=current_seed(ctx.conn, ctx.runtime.settings.faker_seed),
        now=now,
        correlation_id=ctx.correlation_id,
    )
    commit(ctx.runtime, ctx.conn, outcome, ctx.correlation_id, now)
    return created(_shipment_json(ctx, outcome.row))


@api.operation("listShipments")
def list_shipments(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = model.list_shipments(
        ctx.conn,
        ctx.partner_id,
        status=ctx.params.get("status"),
        account_id=ctx.params.get("accountId"),
        iccid=ctx.params.get("iccid"),
        external_id=ctx.params.get("externalId"),
        mapping_status=ctx.params.get("mappingStatus"),
        sla_breached=ctx.params.get("slaBreached"),
        offset=offset,
        limit=limit,
    )
    sims = model.profiles_of(ctx.conn, [row.iccid for row in rows if row.profile_type == "eSIM"])
    return list_reply(
        total, [shipment_view(row, ctx.base_url, sims.get(row.iccid)) for row in rows]
    )


@api.operation("getShipment")
def get_shipment(ctx: RequestContext) -> Reply:
    row = model.get_shipment(ctx.conn, ctx.partner_id, ctx.params["id"])
    return Reply(_shipment_json(ctx, row))


@api.operation("returnShipment", write=True)
def return_shipment(ctx: RequestContext) -> Reply:
    now = ctx.now()
    outcome = model.customer_return(
        ctx.conn,
        partner_id=ctx.partner_id,
        shipment_id=ctx.params["id"],
        condition=ctx.body["condition"],
        reason=ctx.body.get("reason"),
        now=now,
        correlation_id=ctx.correlation_id,
    )
    commit(ctx.runtime, ctx.conn, outcome, ctx.correlation_id, now)
    return Reply(_shipment_json(ctx, outcome.row))


# --- event hub -----------------------------------------------------------------------------------


HUB = Hub(model.ROLE, events.HUB_API, HUB_PATH)


@api.operation("registerFulfillmentListener", write=True)
def register_listener(ctx: RequestContext) -> Reply:
    return HUB.register(ctx)


@api.operation("getFulfillmentListener")
def get_listener(ctx: RequestContext) -> Reply:
    return HUB.get(ctx)


@api.operation("unregisterFulfillmentListener", write=True)
def unregister_listener(ctx: RequestContext) -> Reply:
    return HUB.unregister(ctx)
