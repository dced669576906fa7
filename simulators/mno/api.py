"""The host network's HTTP surface: TMF641, TMF638 and TMF635 requests in, TMF JSON out."""

from __future__ import annotations

from typing import Any

from simulators.core.clock import isoformat
from simulators.core.http import Reply, RequestContext, RoleApi
from simulators.core.problems import BadRequest

from . import errors, model, tickets

api = RoleApi("mno")

ORDER_PATH = "/tmf-api/serviceOrdering/v4/serviceOrder"
SERVICE_PATH = "/tmf-api/serviceInventory/v4/service"
USAGE_PATH = "/tmf-api/usageManagement/v4/usage"


# --- representations ---------------------------------------------------------------------------


def order_json(ctx: RequestContext, order: model.ServiceOrder) -> dict[str, Any]:
    href = ctx.href(f"{ORDER_PATH}/{order.id}")
    body: dict[str, Any] = {
        "id": order.id,
        "href": href,
        "@type": "ServiceOrder",
        "externalId": order.external_id,
    }
    if order.description is not None:
        body["description"] = order.description
    if order.mvno_id is not None:
        body["relatedParty"] = [
            {"id": order.mvno_id, "role": model.MVNO_ROLE, "@referredType": "Organization"}
        ]
    body["state"] = order.state
    body["orderDate"] = isoformat(order.order_date)
    if order.start_date is not None:
        body["startDate"] = isoformat(order.start_date)
    if order.completion_date is not None:
        body["completionDate"] = isoformat(order.completion_date)
    if order.state in model.OPEN_ORDER_STATES:
        # The network's own estimate, even for an order it will never finish (ORDER_STUCK).
        expected = order.order_date + ctx.runtime.settings.mno_provisioning_s
        body["expectedCompletionDate"] = isoformat(expected)
    body["serviceOrderItem"] = [_item_json(ctx, item) for item in order.items]
    failed = order.failed_items
    if failed:
        stamp = isoformat(
            order.completion_date if order.completion_date is not None else order.order_date
        )
        body["errorMessage"] = [
            {
                "code": item.error_code or errors.ITEM_FAILED,
                "reason": errors.item_failure_reason(item.error_code),
                "timestamp": stamp,
                "serviceOrderItem": [{"itemId": item.item_id, "serviceOrderId": order.id}],
                "@type": "ServiceOrderErrorMessage",
            }
            for item in failed
        ]
    return body


def _item_json(ctx: RequestContext, item: model.ServiceOrderItem) -> dict[str, Any]:
    service: dict[str, Any] = {}
    if item.service_id is not None:
        service["id"] = item.service_id
        service["href"] = ctx.href(f"{SERVICE_PATH}/{item.service_id}")
    service["@type"] = "Service"
    if item.characteristics:
        service["serviceCharacteristic"] = [dict(c) for c in item.characteristics]
    return {
        "id": item.item_id,
        "action": item.action,
        "state": item.state,
        "service": service,
        "@type": "ServiceOrderItem",
    }


def service_json(ctx: RequestContext, service: model.Service) -> dict[str, Any]:
    characteristics = [
        {"name": "IMSI", "value": service.imsi},
        {"name": "MSISDN", "value": service.msisdn},
        {"name": "ICCID", "value": service.iccid},
        {"name": "barring", "value": service.barring},
        {"name": "attachState", "value": service.attach_state},
        {"name": "serviceType", "value": service.service_type},
    ]
    if service.last_attach_time is not None:
        characteristics.append(
            {"name": "lastAttachTime", "value": isoformat(service.last_attach_time)}
        )
    body: dict[str, Any] = {
        "id": service.id,
        "href": ctx.href(f"{SERVICE_PATH}/{service.id}"),
        "@type": "Service",
        "name": service.name,
        "state": service.state,
        "serviceCharacteristic": characteristics,
        "startDate": isoformat(service.start_date),
    }
    if service.end_date is not None:
        body["endDate"] = isoformat(service.end_date)
    if service.mvno_id is not None:
        body["relatedParty"] = [
            {"id": service.mvno_id, "role": model.MVNO_ROLE, "@referredType": "Organization"}
        ]
    return body


def usage_json(ctx: RequestContext, usage: model.Usage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": usage.id,
        "href": ctx.href(f"{USAGE_PATH}/{usage.id}"),
        "@type": "Usage",
        "usageDate": isoformat(usage.usage_date),
        "usageType": usage.usage_type,
        "status": usage.status,
        "msisdn": usage.msisdn,
        "serviceId": usage.service_id,
        "quantity": usage.quantity,
        "unit": usage.unit,
    }
    if usage.granted_quantity is not None:
        body["grantedQuantity"] = usage.granted_quantity
    if usage.visited_mcc:
        body["visitedMcc"] = usage.visited_mcc
    return body


def _page(ctx: RequestContext) -> tuple[int, int]:
    return int(ctx.params.get("offset", 0)), int(ctx.params.get("limit", 100))


def _list_reply(items: list[dict[str, Any]], total: int) -> Reply:
    # TMF630 paging headers: matches across all pages, and items in this page.
    return Reply(items, 200, {"X-Total-Count": str(total), "X-Result-Count": str(len(items))})


# --- TMF641 service ordering -----------------------------------------------------------------


@api.operation("createServiceOrder", write=True, idempotent_on="externalId")
def create_service_order(ctx: RequestContext) -> Reply:
    if not isinstance(ctx.body, dict):
        # A JSON `null` body parses to None, which the core pipeline does not validate.
        raise BadRequest("The body must be a JSON object", field="(body)")
    order, _created = model.create_service_order(
        ctx.conn,
        ctx.runtime.tasks,
        client_id=ctx.partner_id,
        external_id=ctx.body["externalId"],
        description=ctx.body.get("description"),
        items=ctx.body["serviceOrderItem"],
        now=ctx.now(),
        correlation_id=ctx.correlation_id,
        # The contract admits one relatedParty, the MVNO (role mvno) the services are for.
        mvno_id=next((party["id"] for party in ctx.body.get("relatedParty") or ()), None),
        stuck_in=stuck.effect["state"] if (stuck := ctx.data_fault("ORDER_STUCK")) else None,
        failing_iccids=failing.targets("iccid")
        if (failing := ctx.data_fault("ORDER_ITEM_FAILED"))
        else None,
        failing_line=failing.effect.get("line") if failing else None,
    )
    body = order_json(ctx, order)
    return Reply(body, 201, {"Location": body["href"]})


@api.operation("listServiceOrders")
def list_service_orders(ctx: RequestContext) -> Reply:
    offset, limit = _page(ctx)
    total, orders = model.list_service_orders(
        ctx.conn,
        ctx.partner_id,
        state=ctx.params.get("state"),
        external_id=ctx.params.get("externalId"),
        offset=offset,
        limit=limit,
    )
    return _list_reply([order_json(ctx, order) for order in orders], total)


@api.operation("getServiceOrder")
def get_service_order(ctx: RequestContext) -> Reply:
    return Reply(
        order_json(ctx, model.get_service_order(ctx.conn, ctx.partner_id, ctx.params["id"]))
    )


# --- TMF638 service inventory ----------------------------------------------------------------


@api.operation("listServices")
def list_services(ctx: RequestContext) -> Reply:
    offset, limit = _page(ctx)
    total, found = model.list_services(
        ctx.conn,
        ctx.partner_id,
        msisdn=ctx.params.get("msisdn"),
        imsi=ctx.params.get("imsi"),
        iccid=ctx.params.get("iccid"),
        state=ctx.params.get("state"),
        offset=offset,
        limit=limit,
    )
    return _list_reply([service_json(ctx, service) for service in found], total)


@api.operation("getService")
def get_service(ctx: RequestContext) -> Reply:
    return Reply(service_json(ctx, model.get_service(ctx.conn, ctx.partner_id, ctx.params["id"])))


# --- TMF635 usage --------------------------------------------------------------------------


@api.operation("listUsage")
def list_usage(ctx: RequestContext) -> Reply:
    offset, limit = _page(ctx)
    total, found = model.list_usage(
        ctx.conn,
        ctx.partner_id,
        msisdn=ctx.params.get("msisdn"),
        service_id=ctx.params.get("serviceId"),
        status=ctx.params.get("status"),
        offset=offset,
        limit=limit,
    )
    return _list_reply([usage_json(ctx, usage) for usage in found], total)


@api.operation("getUsage")
def get_usage(ctx: RequestContext) -> Reply:
    return Reply(usage_json(ctx, model.get_usage(ctx.conn, ctx.partner_id, ctx.params["id"])))


# --- TMF621 network trouble tickets -------------------------------------------------------------

TICKET_PATH = "/tmf-api/troubleTicket/v4/troubleTicket"


def ticket_json(ctx: RequestContext, row: Any) -> dict[str, Any]:
    now = ctx.now()
    changes = tickets.status_changes(row, now)
    body: dict[str, Any] = {
        "id": row.id,
        "href": ctx.href(f"{TICKET_PATH}/{row.id}"),
        "@type": "TroubleTicket",
        "externalId": row.external_id,
        "ticketType": "network",
        "category": row.category,
        "severity": row.severity,
        "description": row.description,
        "status": changes[-1][0],
        "creationDate": isoformat(row.creation_date),
        "statusChange": [{"status": s, "changeDate": isoformat(t)} for s, t in changes],
        "slaCovered": row.covered,
        "stalled": tickets.stalled(row, now),
    }
    if changes[-1][0] == "resolved":
        body["resolutionDate"] = isoformat(changes[-1][1])
    return body


@api.operation("createTroubleTicket", write=True, idempotent_on="externalId")
def create_trouble_ticket(ctx: RequestContext) -> Reply:
    if not isinstance(ctx.body, dict):
        raise BadRequest("The body must be a JSON object", field="(body)")
    row, _created = tickets.create_ticket(
        ctx.conn,
        client_id=ctx.partner_id,
        body=ctx.body,
        now=ctx.now(),
        not_covered=ctx.data_fault("SLA_CATEGORY_NOT_COVERED") is not None,
    )
    body = ticket_json(ctx, row)
    return Reply(body, 201, {"Location": body["href"]})


@api.operation("listTroubleTickets")
def list_trouble_tickets(ctx: RequestContext) -> Reply:
    offset, limit = _page(ctx)
    total, rows = tickets.list_tickets(
        ctx.conn,
        ctx.partner_id,
        ctx.now(),
        status=ctx.params.get("status"),
        category=ctx.params.get("category"),
        stalled_only=ctx.params.get("stalled"),
        offset=offset,
        limit=limit,
    )
    return _list_reply([ticket_json(ctx, row) for row in rows], total)


@api.operation("getTroubleTicket")
def get_trouble_ticket(ctx: RequestContext) -> Reply:
    return Reply(ticket_json(ctx, tickets.get_ticket(ctx.conn, ctx.partner_id, ctx.params["id"])))
