"""Fulfillment fixtures and helpers: production orders, shipments, fault rules."""

from __future__ import annotations

from typing import Any

from conftest import api_key, conforms, settle
from flask.testing import FlaskClient

from simulators.core.runtime import Runtime

FULFILLMENT = "/fulfillment/v1"
ORDERS = f"{FULFILLMENT}/productionOrders"
SHIPMENTS = f"{FULFILLMENT}/shipments"
STOCK = f"{FULFILLMENT}/sims"
HUB = f"{FULFILLMENT}/hub"
MAPPINGS = "/mvne/v1/iccidMappings"
ALPHA = {"X-API-Key": api_key("mvno-alpha")}
BRAVO = {"X-API-Key": api_key("mvno-bravo")}
HOUR = 3600.0
DAY = 24 * HOUR
ADDRESS = {"line1": "1 High Street", "city": "Leeds", "postalCode": "LS1 1AA", "country": "GB"}


# --- helpers -----------------------------------------------------------------------------------


def order(client: FlaskClient, headers: dict[str, str] = ALPHA, **body: Any) -> dict[str, Any]:
    answer = client.post(ORDERS, json={"profileType": "UICC", "quantity": 5, **body},
                         headers=headers)  # fmt: skip
    created: dict[str, Any] = conforms(answer, "fulfillment", "createProductionOrder")
    assert answer.status_code == 201, created
    return created


def get_order(client: FlaskClient, order_id: str, headers: dict[str, str] = ALPHA) -> Any:
    return conforms(
        client.get(f"{ORDERS}/{order_id}", headers=headers), "fulfillment", "getProductionOrder"
    )


def produce(client: FlaskClient, runtime: Runtime, **body: Any) -> dict[str, Any]:
    """Order a batch and let the vendor and the MVNE load take their time."""
    created = order(client, **body)
    settle(runtime, 3 * HOUR)
    return dict(get_order(client, created["id"]))


def ship(client: FlaskClient, headers: dict[str, str] = ALPHA, **body: Any) -> dict[str, Any]:
    payload = {"accountId": "acct-1001", "addressTo": ADDRESS, **body}
    if payload.get("profileType") == "eSIM":
        payload.pop("addressTo", None)
    answer = client.post(SHIPMENTS, json=payload, headers=headers)
    created: dict[str, Any] = conforms(answer, "fulfillment", "createShipment")
    assert answer.status_code == 201, created
    return created


def get_shipment(client: FlaskClient, shipment_id: str, headers: dict[str, str] = ALPHA) -> Any:
    return conforms(
        client.get(f"{SHIPMENTS}/{shipment_id}", headers=headers), "fulfillment", "getShipment"
    )


def add_fault(client: FlaskClient, rule: dict[str, Any]) -> None:
    answer = client.post("/__admin/faults", json=rule)
    assert answer.status_code == 201, answer.get_data(as_text=True)


def data_fault(operation: str, fault: str, **effect: Any) -> dict[str, Any]:
    return {
        "match": {"role": "fulfillment", "operation": operation},
        "effect": {"type": "data", "fault": fault, **effect},
    }


def mapping_at_mvne(client: FlaskClient, iccid: str) -> Any:
    """The MVNE's mapping of an ICCID of Alpha's inventory, or None when it maps nothing."""
    answer = client.get(f"{MAPPINGS}/{iccid}", headers=ALPHA)
    assert answer.status_code in (200, 404), answer.get_data(as_text=True)
    return answer.get_json() if answer.status_code == 200 else None
