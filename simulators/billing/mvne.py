"""Billing's client of the MVNE: subscriptions, the monthly fee, rated usage, suspensions.

The billing vendor acts at the MVNE with the key of the MVNO it bills (a
delegated credential, as an MVNO hands its billing vendor): the MVNE then
scopes every answer to that partner, and a capability the agreement lacks
(e.g. QUERY_USAGE) is refused to billing as it would be to the MVNO.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import requests

from simulators.core.clock import parse_iso
from simulators.core.runtime import PeerCallFailed, Runtime
from simulators.core.tenancy import derive_api_key

from .model import RatedUsage, SubscriptionFacts

PRODUCTS = "/tmf-api/productInventoryManagement/v4/product"
OFFERINGS = "/tmf-api/productCatalogManagement/v4/productOffering"
USAGE = "/tmf-api/usageManagement/v4/usage"
PAGE = 1000


class MvneUnavailable(Exception):
    """No answer, or 5xx/429: worth trying again later."""


class MvneRefused(Exception):
    """A 4xx: the MVNE will not give billing this (the code says why)."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"MVNE answered {status} {code}")
        self.status = status
        self.code = code


def partner_key(runtime: Runtime, partner_id: str) -> str:
    return derive_api_key(runtime.settings.secret_key, partner_id)


def call(
    runtime: Runtime,
    partner_id: str,
    method: str,
    path: str,
    correlation_id: str | None,
    body: Any = None,
    params: dict[str, Any] | None = None,
) -> requests.Response:
    try:
        response = runtime.call_peer(
            caller="billing",
            peer="mvne",
            method=method,
            path=path,
            api_key=partner_key(runtime, partner_id),
            correlation_id=correlation_id,
            json_body=body,
            params=params,
        )
    except PeerCallFailed as exc:
        raise MvneUnavailable(str(exc)) from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise MvneUnavailable(f"MVNE answered {response.status_code}")
    if response.status_code >= 400:
        code = _code(response)
        raise MvneRefused(response.status_code, code)
    return response


def _code(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}"
    return (
        str(body.get("code"))
        if isinstance(body, dict) and body.get("code")
        else (f"HTTP_{response.status_code}")
    )


def _pages(
    runtime: Runtime, partner_id: str, path: str, correlation_id: str | None
) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        response = call(
            runtime,
            partner_id,
            "GET",
            path,
            correlation_id,
            params={"offset": offset, "limit": PAGE},
        )
        items = response.json(parse_float=Decimal)
        yield from items
        total = int(response.headers.get("X-Total-Count", len(items)))
        offset += len(items)
        if not items or offset >= total:
            return


def get_product(
    runtime: Runtime, partner_id: str, product_id: str, correlation_id: str | None
) -> dict[str, Any] | None:
    """The subscription, or None when the MVNE has none of that id for the partner."""
    try:
        response = call(runtime, partner_id, "GET", f"{PRODUCTS}/{product_id}", correlation_id)
    except MvneRefused as refused:
        if refused.status == 404:
            return None
        raise
    body: dict[str, Any] = response.json()
    return body


def product_statuses(
    runtime: Runtime, partner_id: str, correlation_id: str | None
) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in _pages(runtime, partner_id, PRODUCTS, correlation_id)}


def monthly_fees(
    runtime: Runtime, partner_id: str, correlation_id: str | None
) -> dict[str, tuple[str, int, str]]:
    """Each offering's (name, monthly fee in minor units, currency)."""
    fees: dict[str, tuple[str, int, str]] = {}
    for offering in _pages(runtime, partner_id, OFFERINGS, correlation_id):
        for price in offering.get("productOfferingPrice", []):
            if price.get("priceType") == "recurring":
                money = price["price"]
                fees[offering["id"]] = (
                    offering["name"],
                    int(Decimal(str(money["amount"])) * 100),
                    money["units"],
                )
    return fees


def subscriptions(
    runtime: Runtime, partner_id: str, correlation_id: str | None
) -> tuple[dict[str, SubscriptionFacts], dict[str, str]]:
    """Every subscription of the partner with its monthly fee, and the fee's currency."""
    fees = monthly_fees(runtime, partner_id, correlation_id)
    found: dict[str, SubscriptionFacts] = {}
    currencies: dict[str, str] = {}
    for product_id, product in product_statuses(runtime, partner_id, correlation_id).items():
        offering = product["productOffering"]["id"]
        name, fee, currency = fees.get(offering, (offering, 0, ""))
        ended = product.get("terminationDate")
        found[product_id] = SubscriptionFacts(
            status=product["status"],
            monthly_fee_minor=fee,
            offering_name=name,
            terminated_at=parse_iso(ended) if ended else None,
        )
        currencies[product_id] = currency
    return found, currencies


def rated_usage(runtime: Runtime, partner_id: str, correlation_id: str | None) -> list[RatedUsage]:
    """The partner's rated usage records (rejected ones charge nothing and are left out)."""
    found = []
    for item in _pages(runtime, partner_id, USAGE, correlation_id):
        if item.get("status") != "rated":
            continue
        rated = item["ratedProductUsage"][0]["taxExcludedRatingAmount"]
        found.append(
            RatedUsage(
                usage_id=item["id"],
                product_id=item["product"]["id"],
                usage_type=item["usageType"],
                usage_date=parse_iso(item["usageDate"]),
                quantity=int(item.get("grantedQuantity", item["quantity"])),
                charge_minor=int(Decimal(str(rated["amount"])) * 100),
            )
        )
    return found


def set_status(
    runtime: Runtime, partner_id: str, product_id: str, status: str, correlation_id: str | None
) -> dict[str, Any]:
    """Order a subscription status change (TMF637 PATCH); the answer is the product."""
    response = call(
        runtime,
        partner_id,
        "PATCH",
        f"{PRODUCTS}/{product_id}",
        correlation_id,
        body={"status": status},
    )
    body: dict[str, Any] = response.json()
    return body
