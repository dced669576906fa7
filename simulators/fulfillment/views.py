"""Fulfillment's representations, shared by API answers and event payloads."""

from __future__ import annotations

from typing import Any

from simulators.core.clock import isoformat

from . import vendor
from .model import SERVICE_LEVELS, mapping_correlation_id

ORDERS_PATH = "/v1/productionOrders"
STOCK_PATH = "/v1/sims"
SHIPMENTS_PATH = "/v1/shipments"
HUB_PATH = "/v1/hub"


def _iso(value: float | None) -> str | None:
    return None if value is None else isoformat(value)


def _without_none(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


def production_order_view(row: Any, base_url: str) -> dict[str, Any]:
    href = f"{base_url}{ORDERS_PATH}/{row.id}"
    body: dict[str, Any] = {
        "id": row.id,
        "href": href,
        "@type": "ProductionOrder",
        "externalId": row.external_id,
        "batchNumber": row.batch_number,
        "customer": row.partner_id,
        "profileType": row.profile_type,
        "quantity": row.quantity,
        "firstIccid": row.first_iccid,
        "lastIccid": vendor.iccid_at(row.first_iccid, row.quantity - 1),
        "firstImsi": row.first_imsi,
        "lastImsi": vendor.imsi_at(row.first_imsi, row.quantity - 1),
        "state": row.state,
        "stateChange": [
            {**entry, "changeDate": isoformat(entry["changeDate"])} for entry in row.state_change
        ],
        "creationDate": isoformat(row.created_at),
        "lastUpdate": isoformat(row.updated_at),
        "loadAttempts": row.load_attempts,
    }
    if row.vendor_delivered_at is not None:
        body["vendorFile"] = {
            "href": f"{href}/vendorFile",
            "sha256": row.vendor_sha256,
            "rows": row.vendor_rows,
            "batchNumber": row.vendor_batch,
            "deliveryDate": isoformat(row.vendor_delivered_at),
        }
    if row.sim_batch is not None:
        body["simBatch"] = dict(row.sim_batch)
    if row.load_error is not None:
        body["loadError"] = _without_none(dict(row.load_error))
    return _without_none(body)


def esim_profile_view(row: Any) -> dict[str, Any]:
    return _without_none(
        {
            "state": row.profile_state,
            "matchingId": row.matching_id,
            "activationCode": vendor.activation_code(row.matching_id),
            "eid": row.eid,
        }
    )


def stock_view(row: Any, base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "iccid": row.iccid,
        "href": f"{base_url}{STOCK_PATH}/{row.iccid}",
        "@type": "SimStockItem",
        "imsi": row.imsi,
        "profileType": row.profile_type,
        "batchNumber": row.batch_number,
        "productionOrderId": row.production_order_id,
        "state": row.state,
        "stateReason": row.state_reason,
        "shipmentId": row.shipment_id,
    }
    if row.profile_type == "eSIM":
        body["esimProfile"] = esim_profile_view(row)
    return _without_none(body)


def _mapping_view(row: Any) -> dict[str, Any]:
    calls = [
        _without_none({**call, "date": isoformat(call["date"])})
        | {"httpStatus": call["httpStatus"]}
        for call in row.mapping_calls
    ]
    return _without_none(
        {
            "iccid": row.mapped_iccid,
            "correlationId": mapping_correlation_id(row),
            "dueDate": _iso(row.mapping_due),
            "sentDate": _iso(row.mapping_sent_at),
            "code": row.mapping_code,
            "calls": calls,
        }
    )


def _return_view(returned: dict[str, Any]) -> dict[str, Any]:
    return _without_none(
        {
            **returned,
            "initiatedDate": _iso(returned.get("initiatedDate")),
            "receivedDate": _iso(returned.get("receivedDate")),
        }
    )


def shipment_view(row: Any, base_url: str, sim: Any = None) -> dict[str, Any]:
    """`sim` is the shipment's stock row; an eSIM shipment shows its profile from it."""
    body: dict[str, Any] = {
        "id": row.id,
        "href": f"{base_url}{SHIPMENTS_PATH}/{row.id}",
        "@type": "Shipment",
        "externalId": row.external_id,
        "accountId": row.account_id,
        "subscriberName": row.subscriber_name,
        "profileType": row.profile_type,
        "serviceLevel": row.service_level,
        "iccid": row.iccid,
        "batchNumber": row.batch_number,
        "addressTo": row.address_to,
        "email": row.email,
        "carrier": row.carrier,
        "trackingCode": row.tracking_code,
        "status": row.status,
        "statusChangeDate": isoformat(row.status_changed_at),
        "statusReason": row.status_reason,
        "checkpoint": [
            {**checkpoint, "date": isoformat(checkpoint["date"])} for checkpoint in row.checkpoints
        ],
        "deliveryAttempts": row.delivery_attempts,
        "creationDate": isoformat(row.created_at),
        "dispatchDate": _iso(row.dispatched_at),
        "deliveryDate": _iso(row.delivered_at),
        "estimatedDeliveryDate": isoformat(row.estimated_delivery),
        "sla": _without_none(
            {
                "deliverWithinSeconds": SERVICE_LEVELS[row.service_level]["sla"],
                "dueDate": isoformat(row.sla_due),
                "breached": row.sla_breached_at is not None,
                "breachDate": _iso(row.sla_breached_at),
            }
        ),
        "slaBreached": row.sla_breached_at is not None,
        "mappingStatus": row.mapping_status,
        "mapping": _mapping_view(row),
    }
    if row.profile_type == "eSIM" and sim is not None:
        body["esimProfile"] = esim_profile_view(sim)
    if row.return_info is not None:
        body["return"] = _return_view(dict(row.return_info))
    return _without_none(body)
