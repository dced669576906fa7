"""TMF representations of the MVNE's resources, shared by the API and the event payloads."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from simulators.core.clock import isoformat
from simulators.core.simfile import activation_code

from .model import MONTHLY_FEES_MINOR

ORDERING = "/tmf-api/productOrderingManagement/v4"
INVENTORY = "/tmf-api/productInventoryManagement/v4"
RESOURCES = "/tmf-api/resourceInventoryManagement/v4"
CATALOG = "/tmf-api/productCatalogManagement/v4"
BALANCE = "/tmf-api/prepayBalanceManagement/v4"
USAGE = "/tmf-api/usageManagement/v4"
SIM_BATCHES = "/v1/simBatches"
ICCID_MAPPINGS = "/v1/iccidMappings"

UNITS = {"data": "MB", "voice": "min", "sms": "msg"}


def money(minor: int, currency: str) -> dict[str, Any]:
    """Minor units to a TMF Money; Decimal keeps 0.07 exact on the wire."""
    return {"amount": Decimal(minor) / 100, "units": currency}


def offering_view(row: Any, base: str, markets: list[str], actions: list[str]) -> dict[str, Any]:
    prices = [
        ("Activation credit", "oneTime", None, row.initial_credit_minor),
        ("Monthly plan", "recurring", None, MONTHLY_FEES_MINOR.get(row.id, 0)),
        ("Data", "usage", "MB", row.data_rate_minor),
        ("Voice", "usage", "min", row.voice_rate_minor),
        ("SMS", "usage", "msg", row.sms_rate_minor),
    ]
    return {
        "id": row.id,
        "href": f"{base}{CATALOG}/productOffering/{row.id}",
        "@type": "ProductOffering",
        "name": row.name,
        "lifecycleStatus": "Launched",
        "market": [{"id": market} for market in markets],
        "allowedAction": actions,
        "productOfferingPrice": [
            {
                "name": name,
                "priceType": kind,
                **({"unitOfMeasure": unit} if unit else {}),
                **({"recurringChargePeriod": "month"} if kind == "recurring" else {}),
                "price": money(amount, row.currency),
            }
            for name, kind, unit, amount in prices
        ],
    }


def sim_view(row: Any, base: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.iccid,
        "href": f"{base}{RESOURCES}/resource/{row.iccid}",
        "@type": "SimCard",
        "iccid": row.iccid,
        "imsi": row.imsi,
        "resourceStatus": row.status,
        "profileType": row.profile_type,
    }
    if row.product_id:
        view["product"] = {
            "id": row.product_id,
            "href": f"{base}{INVENTORY}/product/{row.product_id}",
        }
    view["batchNumber"] = row.batch_number
    view["mapping"] = (
        None
        if row.mapped_account_id is None
        else {
            "accountId": row.mapped_account_id,
            "shipmentId": row.mapped_shipment_id,
            "mappedAt": isoformat(row.mapped_at),
        }
    )
    if row.matching_id is not None:
        view["matchingId"] = row.matching_id
        view["activationCode"] = activation_code(row.matching_id)
        view["esimProfileState"] = row.esim_state
    return view


def batch_view(row: Any, base: str) -> dict[str, Any]:
    return {
        "id": row.batch_number,
        "href": f"{base}{SIM_BATCHES}/{row.batch_number}",
        "@type": "SimBatch",
        "batchNumber": row.batch_number,
        "customer": row.partner_id,
        "profileType": row.profile_type,
        "quantity": row.quantity,
        "firstIccid": row.first_iccid,
        "lastIccid": row.last_iccid,
        "firstImsi": row.first_imsi,
        "lastImsi": row.last_imsi,
        "sha256": row.sha256,
        "loadedAt": isoformat(row.loaded_at),
    }


def mapping_view(row: Any, base: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "iccid": row.iccid,
        "href": f"{base}{ICCID_MAPPINGS}/{row.iccid}",
        "@type": "IccidMapping",
        "accountId": row.mapped_account_id,
        "shipmentId": row.mapped_shipment_id,
        "mappedAt": isoformat(row.mapped_at),
        "batchNumber": row.batch_number,
        "resourceStatus": row.status,
    }
    if row.mapped_subscriber_name is not None:
        view["subscriberName"] = row.mapped_subscriber_name
    return view


def order_view(row: Any, base: str) -> dict[str, Any]:
    items = []
    for item in row.items:
        entry: dict[str, Any] = {
            "id": item["id"],
            "action": item["action"],
            "state": item["state"],
            "productOffering": {
                "id": item["offering_id"],
                "href": f"{base}{CATALOG}/productOffering/{item['offering_id']}",
            },
            "iccid": item["iccid"],
            "market": item["market"],
        }
        if item.get("product_id"):
            entry["product"] = {
                "id": item["product_id"],
                "href": f"{base}{INVENTORY}/product/{item['product_id']}",
            }
        if item.get("reason"):
            entry["stateReason"] = {
                "code": item["reason"]["code"],
                "reason": item["reason"]["reason"],
            }
        items.append(entry)
    view: dict[str, Any] = {
        "id": row.id,
        "href": f"{base}{ORDERING}/productOrder/{row.id}",
        "@type": "ProductOrder",
        "externalId": row.external_id,
        "state": row.state,
        "orderDate": isoformat(row.order_date),
        "productOrderItem": items,
    }
    if row.description:
        view["description"] = row.description
    if row.billing_account_id:
        view["billingAccount"] = {"id": row.billing_account_id}
    if row.completion_date is not None:
        view["completionDate"] = isoformat(row.completion_date)
    if row.state_reason:
        view["stateReason"] = row.state_reason
    return view


def product_view(row: Any, base: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "href": f"{base}{INVENTORY}/product/{row.id}",
        "@type": "Product",
        "name": f"{row.offering_id} {row.msisdn}",
        "status": row.status,
        "msisdn": row.msisdn,
        "imsi": row.imsi,
        "iccid": row.iccid,
        "productOffering": {
            "id": row.offering_id,
            "href": f"{base}{CATALOG}/productOffering/{row.offering_id}",
        },
        "market": row.market,
        "barring": desired_barring(row.status, row.balance_barred),
        "networkBarring": row.network_barring,
        "balanceBarred": bool(row.balance_barred),
        "productOrder": {
            "id": row.order_id,
            "href": f"{base}{ORDERING}/productOrder/{row.order_id}",
        },
        "startDate": isoformat(row.start_date),
    }
    if row.termination_date is not None:
        view["terminationDate"] = isoformat(row.termination_date)
    return view


def desired_barring(status: str, balance_barred: bool) -> str:
    """What the network should apply: suspension bars all, an empty balance bars outgoing."""
    if status in ("suspended", "terminated"):
        return "all"
    if balance_barred:
        return "outgoing"
    return "none"


def bucket_view(row: Any, base: str) -> dict[str, Any]:
    if row.status == "terminated":
        status = "closed"
    elif row.balance_barred:
        status = "barred"
    else:
        status = "active"
    return {
        "id": row.id,
        "href": f"{base}{BALANCE}/bucket/{row.id}",
        "@type": "Bucket",
        "name": "Main balance",
        "product": {"id": row.id, "href": f"{base}{INVENTORY}/product/{row.id}"},
        "remainingValue": money(row.balance_minor, row.currency),
        "status": status,
        "updatedDate": isoformat(row.updated_at),
    }


def topup_view(row: Any, base: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "href": f"{base}{BALANCE}/topupBalance/{row.id}",
        "@type": "TopupBalance",
        "status": "completed",
        "amount": money(row.amount_minor, row.currency),
        "product": {"id": row.product_id, "href": f"{base}{INVENTORY}/product/{row.product_id}"},
        "bucket": {"id": row.product_id, "href": f"{base}{BALANCE}/bucket/{row.product_id}"},
        "requestedDate": isoformat(row.requested_at),
        "remainingValue": money(row.balance_after_minor, row.currency),
    }
    if row.external_id:
        view["externalId"] = row.external_id
    return view


def usage_view(row: Any, base: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "href": f"{base}{USAGE}/usage/{row.id}",
        "@type": "Usage",
        "externalId": row.external_id,
        "usageType": row.usage_type,
        "usageDate": isoformat(row.usage_date),
        "status": row.status,
        "msisdn": row.msisdn,
        "quantity": row.quantity,
        "grantedQuantity": row.granted_quantity,
        "unit": UNITS[row.usage_type],
        "product": {"id": row.product_id, "href": f"{base}{INVENTORY}/product/{row.product_id}"},
        "ratedProductUsage": [
            {
                "taxExcludedRatingAmount": money(row.charge_minor, row.currency),
                "unitPrice": money(row.unit_price_minor, row.currency),
            }
        ],
        "balanceAfter": money(row.balance_after_minor, row.currency),
        "barred": bool(row.barred),
    }
    if row.reason:
        view["reason"] = row.reason
    return view
