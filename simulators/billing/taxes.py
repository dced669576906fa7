"""Billing's client of the tax engine: the one module that speaks the tax quote contract.

`POST /tax/v1/quotes` with the bill's taxable lines and the place of primary
use; the answer has one tax per jurisdiction level on each line. Amounts and
rates travel as decimal strings; an amount with more than two decimals is
rounded half-up to the minor unit here, per line and level, before any sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from simulators.core.runtime import PeerCallFailed, Runtime
from simulators.core.tenancy import BILLING_PLATFORM, peer_api_key

QUOTES = "/v1/quotes"
CALLER = "billing"
PEER = "tax"

# The (transactionType, serviceType) pair of each kind of bill charge.
SERVICE_OF = {
    "recurring": ("wireless", "access"),
    "usage": ("wireless", "usage"),
    "activation": ("wireless", "activation"),
    "equipment": ("wireless", "equipment"),
}
CENT = Decimal("0.01")


@dataclass(frozen=True)
class TaxableLine:
    line_id: str
    amount_minor: int
    charge: str  # a key of SERVICE_OF
    line_count: int = 0


@dataclass(frozen=True)
class LineTax:
    level: str
    name: str
    jurisdiction_code: str
    rate: str | None
    amount_minor: int


@dataclass(frozen=True)
class Quote:
    quote_id: str
    taxes: dict[str, list[LineTax]]  # by lineId; a line the engine left out has none


class TaxUnavailable(Exception):
    """No answer, or 5xx/429: the bill run tries again later."""


class TaxRefused(Exception):
    """The engine refused the quote (4xx): the bill goes on hold with this code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def to_minor(amount: str | int | float | Decimal) -> int:
    """A decimal amount to minor units, half-up (the documented rounding of tax)."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise TaxRefused("MALFORMED_TAX_ANSWER", f"amount {amount!r} is not a number") from None
    return int((value.quantize(CENT, rounding=ROUND_HALF_UP) * 100).to_integral_value())


def money_text(minor: int) -> str:
    return f"{Decimal(minor) / 100:.2f}"


def quote_request(
    *,
    document_id: str,
    date: str,
    currency: str,
    customer_type: str,
    rating_type: str,
    exemptions: list[str],
    address: dict[str, Any],
    lines: list[TaxableLine],
) -> dict[str, Any]:
    return {
        "documentId": document_id,
        "date": date,
        "currency": currency,
        "customer": {
            "type": customer_type,
            "vatId": None,
            "exemptions": exemptions,
            # Postpaid lines owe the monthly E911 fee; prepaid collect it at the point of sale.
            "ratingType": rating_type,
        },
        "placeOfPrimaryUse": address,
        "lines": [
            {
                "lineId": line.line_id,
                "amount": money_text(line.amount_minor),
                "transactionType": SERVICE_OF[line.charge][0],
                "serviceType": SERVICE_OF[line.charge][1],
                "lineCount": line.line_count,
            }
            for line in lines
        ],
    }


def parse_quote(body: Any) -> Quote:
    """The tax answer as billing keeps it; a shape it cannot read is a refusal."""
    try:
        taxes: dict[str, list[LineTax]] = {}
        for line in body["lines"]:
            taxes[str(line["lineId"])] = [
                LineTax(
                    level=str(tax["level"]),
                    name=str(tax.get("name") or tax["level"]),
                    jurisdiction_code=str(tax.get("jurisdictionCode") or ""),
                    rate=None if tax.get("rate") is None else str(tax["rate"]),
                    amount_minor=to_minor(tax["amount"]),
                )
                for tax in line.get("taxes") or []
            ]
        return Quote(quote_id=str(body["id"]), taxes=taxes)
    except (KeyError, TypeError) as exc:
        raise TaxRefused("MALFORMED_TAX_ANSWER", f"the quote lacks {exc}") from None


def request_quote(runtime: Runtime, request: dict[str, Any], correlation_id: str | None) -> Quote:
    """Ask the tax engine; TaxUnavailable to retry later, TaxRefused to hold the bill."""
    try:
        response = runtime.call_peer(
            caller=CALLER,
            peer=PEER,
            method="POST",
            path=QUOTES,
            api_key=peer_api_key(runtime.settings, BILLING_PLATFORM),
            correlation_id=correlation_id,
            json_body=request,
        )
    except PeerCallFailed as exc:
        raise TaxUnavailable(str(exc)) from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TaxUnavailable(f"tax engine answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise TaxUnavailable("tax engine answered something that is not JSON") from None
    if response.status_code != 201:
        code = body.get("code") if isinstance(body, dict) else None
        detail = body.get("detail") if isinstance(body, dict) else None
        raise TaxRefused(str(code or f"HTTP_{response.status_code}"), str(detail or ""))
    return parse_quote(body)
