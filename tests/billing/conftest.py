"""Billing fixtures, and a stand-in for the tax engine that a test can steer.

`tax_engine` answers `POST /tax/v1/quotes` and `POST /tax/v1/quoteBatches` in the
contract's shape with a small, deterministic table: in the US a state tax of 5 % on
every line and an E911 fee of 1.00 per subscriber line on postpaid plan fees; elsewhere
20 % VAT. It can be told to leave out a level, refuse, or be down, and it records every
quote request billing made (a batch's one by one), so the bill arithmetic can be
checked by hand. `test_with_the_tax_engine.py` runs the bill
run against the stack's own tax engine instead.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import responses
from conftest import BASE_URL, T0, activate, api_key, settle
from flask import Flask
from flask.testing import FlaskClient
from requests import PreparedRequest

from simulators.core.inprocess import mount
from simulators.core.runtime import Runtime
from simulators.core.tenancy import BILLING_PLATFORM

QUOTES_URL = f"{BASE_URL}/tax/v1/quotes"
BATCHES_URL = f"{BASE_URL}/tax/v1/quoteBatches"
STATE_RATE = Decimal("0.05")
VAT_RATE = Decimal("0.20")
E911_FEE = Decimal("1.00")
CENT = Decimal("0.01")
SERVICES = {
    ("wireless", "access"),
    ("wireless", "usage"),
    ("wireless", "activation"),
    ("wireless", "equipment"),
}

ACCOUNTS = "/billing/tmf-api/accountManagement/v4/billingAccount"
BILLS = "/billing/tmf-api/customerBillManagement/v4/customerBill"
BILLING = "/billing/v1"
US_PARTNER = "mvno-charlie"
ILLINOIS = {
    "line1": "1 Main St",
    "city": "Springfield",
    "region": "IL",
    "postalCode": "62701-1234",
    "country": "US",
}
ALL_CAPABILITIES = [
    "SUBMIT_ORDER",
    "ACTIVATE_SIM",
    "MANAGE_SUBSCRIPTION",
    "TOP_UP",
    "QUERY_BALANCE",
    "QUERY_USAGE",
    "QUERY_INVENTORY",
    "VIEW_CATALOG",
    "MANAGE_EVENTS",
]
DAY = 86400.0


def quote_answer(body: dict[str, Any], omit: set[str], quote_id: str) -> dict[str, Any]:
    """A tax quote for the request, as the tax contract shapes it."""
    address = body["placeOfPrimaryUse"]
    exempt = set(body["customer"].get("exemptions") or [])
    lines = []
    total_tax = Decimal(0)
    total_amount = Decimal(0)
    for line in body["lines"]:
        amount = Decimal(line["amount"])
        taxes = []
        if address["country"] == "US":
            region = address.get("region", "")
            state = (amount * STATE_RATE).quantize(CENT, rounding=ROUND_HALF_UP)
            taxes.append(
                {
                    "level": "state",
                    "name": f"{region} sales tax",
                    "jurisdictionCode": f"US-{region}",
                    "rate": str(STATE_RATE),
                    "basis": line["amount"],
                    "amount": str(state),
                }
            )
            postpaid = body["customer"].get("ratingType", "postpaid") == "postpaid"
            if line["serviceType"] == "access" and line.get("lineCount", 1) and postpaid:
                fee = E911_FEE * int(line["lineCount"])
                taxes.append(
                    {
                        "level": "e911",
                        "name": f"{region} 911 surcharge",
                        "jurisdictionCode": f"US-{region}-911",
                        "rate": None,
                        "basis": str(line["lineCount"]),
                        "amount": str(fee),
                    }
                )
        else:
            vat = (amount * VAT_RATE).quantize(CENT, rounding=ROUND_HALF_UP)
            taxes.append(
                {
                    "level": "vat",
                    "name": "VAT",
                    "jurisdictionCode": address["country"],
                    "rate": str(VAT_RATE),
                    "basis": line["amount"],
                    "amount": str(vat),
                }
            )
        taxes = [t for t in taxes if t["level"] not in omit and t["level"] not in exempt]
        line_tax = sum((Decimal(t["amount"]) for t in taxes), Decimal(0))
        total_tax += line_tax
        total_amount += amount + line_tax
        lines.append(
            {
                "lineId": line["lineId"],
                "amount": line["amount"],
                "taxes": taxes,
                "totalTax": str(line_tax),
            }
        )
    return {
        "id": quote_id,
        "href": f"{QUOTES_URL}/{quote_id}",
        "date": body["date"],
        "currency": body["currency"],
        "documentId": body.get("documentId"),
        "lines": lines,
        "totalTax": str(total_tax),
        "totalAmount": str(total_amount),
    }


def _document(status: int, code: str, detail: str) -> dict[str, Any]:
    return {"type": "about:blank", "title": code, "status": status, "detail": detail, "code": code}


def _problem(status: int, code: str, detail: str) -> tuple[int, dict[str, str], str]:
    body = _document(status, code, detail)
    return status, {"Content-Type": "application/problem+json"}, json.dumps(body)


@dataclass
class TaxEngine:
    """The contract-shaped stand-in; its knobs are what a tax fault would do."""

    omit: set[str] = field(default_factory=set)
    refuse_with: str | None = None
    down: bool = False
    # Answer 503 to the calls that arrive once this many quotes were asked (a mid-run outage).
    down_after: int | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    batches: int = 0
    # A batch item's idempotency key -> its request and quote, as the engine keeps them.
    keys: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    # Billing has several calls in flight at once.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        from conftest import SECRET

        from simulators.core.tenancy import derive_api_key

        if request.headers.get("X-API-Key") != derive_api_key(SECRET, BILLING_PLATFORM):
            return _problem(401, "UNAUTHENTICATED", "unknown key")
        raw = request.body
        body = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
        batch = (request.url or "").split("?")[0] == BATCHES_URL
        with self._lock:
            if self.down or (self.down_after is not None and len(self.requests) >= self.down_after):
                return _problem(503, "UNAVAILABLE", "the tax engine is down")
            if not batch:
                status, answer = self._quote(body)
                if status != 201:
                    return _problem(status, answer["code"], answer["detail"])
                headers = {"Content-Type": "application/json", "Location": answer["href"]}
                return 201, headers, json.dumps(answer)
            self.batches += 1
            results = [self._item(index, item) for index, item in enumerate(body["quotes"])]
        quoted = sum(1 for result in results if result["status"] == 201)
        answer = {"quoted": quoted, "refused": len(results) - quoted, "results": results}
        return 200, {"Content-Type": "application/json"}, json.dumps(answer)

    def _item(self, index: int, item: dict[str, Any]) -> dict[str, Any]:
        body = item["request"]
        key = item.get("idempotencyKey") or body.get("documentId")
        if key in self.keys:
            self.requests.append(body)
            first, quote = self.keys[key]
            if first != body:
                problem = {"code": "IDEMPOTENCY_KEY_REUSED", "detail": "another request"}
                return {"index": index, "status": 422, "problem": _document(422, **problem)}
            return {"index": index, "status": 201, "replayed": True, "quote": quote}
        status, answer = self._quote(body)
        if status != 201:
            return {"index": index, "status": status, "problem": _document(status, **answer)}
        if key:
            self.keys[key] = (body, answer)
        return {"index": index, "status": 201, "quote": answer}

    def _quote(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One quote request (the lock held): its quote, or the refusal's code and detail."""
        self.requests.append(body)
        quote_id = f"txq_{next(self._ids)}"
        address = body["placeOfPrimaryUse"]
        if not address.get("country"):
            return 422, {"code": "COUNTRY_REQUIRED", "detail": "the address has no country"}
        if "PO BOX" in address["line1"].upper().replace(".", ""):
            return 422, {"code": "PO_BOX_NOT_PRIMARY_USE", "detail": "a P.O. Box is no place"}
        for line in body["lines"]:
            if (line["transactionType"], line["serviceType"]) not in SERVICES:
                return 422, {"code": "UNKNOWN_TRANSACTION_SERVICE", "detail": line["lineId"]}
        if self.refuse_with:
            return 422, {"code": self.refuse_with, "detail": "refused"}
        return 201, quote_answer(body, self.omit, quote_id)


@pytest.fixture
def tax_engine() -> TaxEngine:
    return TaxEngine()


Callback = Callable[[PreparedRequest], Any]


@dataclass
class _Routes:
    """Collects the stack's in-process routes, so the quotes path can be put in front."""

    callbacks: dict[str, tuple[Any, Callback]] = field(default_factory=dict)

    def add_callback(self, method: str, pattern: Any, callback: Callback) -> None:
        self.callbacks[method] = (pattern, callback)


@pytest.fixture
def network(app: Flask, tax_engine: TaxEngine) -> Iterator[responses.RequestsMock]:
    """The in-process stack, with the tax engine's quotes and batches answered by the stand-in.
    One route per method (`responses` pops a route when two match a request)."""
    routes = _Routes()
    stack = mount(routes, app, BASE_URL)  # type: ignore[arg-type]

    def route(forward: Callback) -> Callback:
        def answer(request: PreparedRequest) -> Any:
            url = (request.url or "").split("?")[0]
            if request.method == "POST" and url in (QUOTES_URL, BATCHES_URL):
                return tax_engine(request)
            return forward(request)

        return answer

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method, (pattern, forward) in routes.callbacks.items():
            mock.add_callback(method, pattern, callback=route(forward))
        mock.stack = stack  # type: ignore[attr-defined]
        yield mock


@pytest.fixture
def charlie(client: FlaskClient) -> dict[str, str]:
    """Headers of a US MVNO with every capability (the reference US partner lacks usage)."""
    answer = client.post(
        "/__admin/partners",
        json={
            "id": US_PARTNER,
            "name": "Charlie Wireless",
            "agreement": {
                "offerings": ["po-us-talk", "po-us-data"],
                "markets": ["US"],
                "capabilities": ALL_CAPABILITIES,
            },
        },
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return {"X-API-Key": api_key(US_PARTNER)}


def open_account(
    client: FlaskClient,
    runtime: Runtime,
    headers: dict[str, str],
    product_id: str,
    **fields: Any,
) -> dict[str, Any]:
    """Open a billing account for a subscription and let the MVNE confirm it."""
    body = {
        "name": "Pat Doe",
        "product": {"id": product_id},
        "ratingType": "postpaid",
        "currency": "USD",
        "placeOfPrimaryUse": ILLINOIS,
        "billCycleDay": 1,
        **fields,
    }
    created = client.post(ACCOUNTS, json=body, headers=headers)
    assert created.status_code == 201, created.get_data(as_text=True)
    settle(runtime)
    account: dict[str, Any] = client.get(
        f"{ACCOUNTS}/{created.get_json()['id']}", headers=headers
    ).get_json()
    return account


def us_line(
    client: FlaskClient, runtime: Runtime, headers: dict[str, str], external_id: str = "ext-1"
) -> dict[str, Any]:
    return activate(client, runtime, headers, external_id, offering="po-us-talk")


def use(client: FlaskClient, msisdn: str, usage_type: str, quantity: int) -> None:
    answer = client.post(
        "/__admin/traffic", json={"msisdn": msisdn, "usageType": usage_type, "quantity": quantity}
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)


# The first period of an account with bill cycle day 1 opened at T0 (2026-03-02) ends here.
END_OF_MARCH = 1775001600.0  # 2026-04-01T00:00:00Z


def to_bill_run(runtime: Runtime) -> None:
    """Let the clock reach the end of March: the bill run of cycle day 1 runs."""
    settle(runtime, END_OF_MARCH - T0 + 1)


def bills_of(client: FlaskClient, headers: dict[str, str], account_id: str) -> list[Any]:
    answer = client.get(f"{BILLS}?billingAccount.id={account_id}", headers=headers)
    assert answer.status_code == 200
    return list(answer.get_json())
