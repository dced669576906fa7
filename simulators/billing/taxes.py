"""Billing's client of the tax engine: the one module that speaks the tax quote contract.

`POST /tax/v1/quoteBatches` with up to 100 bills at a time, each with its taxable
lines and the place of primary use; each bill's answer has one tax per
jurisdiction level on each line, or the problem that holds that bill. Amounts and
rates travel as decimal strings; an amount with more than two decimals is
rounded half-up to the minor unit here, per line and level, before any sum.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from simulators.core.runtime import PeerCallFailed, Runtime
from simulators.core.tenancy import BILLING_PLATFORM, peer_api_key

BATCHES = "/v1/quoteBatches"
# The most quotes the tax contract takes in one batch.
MAX_BATCH = 100
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


def quote_key(request: dict[str, Any]) -> str:
    """A bill's idempotency key at the tax engine: its document and a digest of what it
    asks. A run that retries a batch gets the quotes of unchanged bills back instead of
    storing them twice; a bill composed again with other charges gets a quote of its own."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return f"{request['documentId']}/{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


# Well inside the tax engine's 1 MiB body bound, whatever the bills hold.
MAX_BATCH_BYTES = 512 * 1024


def in_batches(requests: list[dict[str, Any]]) -> list[list[int]]:
    """The requests' positions grouped into batches the tax contract takes: at most
    MAX_BATCH quotes and MAX_BATCH_BYTES of JSON each, in order."""
    groups: list[list[int]] = []
    size = 0
    for index, request in enumerate(requests):
        length = len(json.dumps(request, separators=(",", ":")))
        if not groups or len(groups[-1]) >= MAX_BATCH or size + length > MAX_BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(index)
        size += length
    return groups


def request_quotes(
    runtime: Runtime, requests: list[dict[str, Any]], correlation_id: str | None
) -> list[Quote | TaxRefused]:
    """Ask the tax engine for up to MAX_BATCH quotes in one call: each request's quote, or
    the refusal that holds its bill, in order. TaxUnavailable (the whole call): retry later."""
    body = {"quotes": [{"idempotencyKey": quote_key(item), "request": item} for item in requests]}
    try:
        response = runtime.call_peer(
            caller=CALLER,
            peer=PEER,
            method="POST",
            path=BATCHES,
            api_key=peer_api_key(runtime.settings, BILLING_PLATFORM),
            correlation_id=correlation_id,
            json_body=body,
        )
    except PeerCallFailed as exc:
        raise TaxUnavailable(str(exc)) from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TaxUnavailable(f"tax engine answered {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        raise TaxUnavailable("tax engine answered something that is not JSON") from None
    if response.status_code != 200:
        # The call itself was refused (key, capability, envelope): so is every bill in it.
        return [_refusal(answer, response.status_code)] * len(requests)
    results = answer.get("results") if isinstance(answer, dict) else None
    found: dict[int, Quote | TaxRefused] = {}
    for result in results if isinstance(results, list) else []:
        if isinstance(result, dict) and isinstance(result.get("index"), int):
            found[result["index"]] = _outcome(result)
    missing = TaxRefused("MALFORMED_TAX_ANSWER", "the batch answer left this quote out")
    return [found.get(index, missing) for index in range(len(requests))]


def _outcome(result: dict[str, Any]) -> Quote | TaxRefused:
    if result.get("status") != 201:
        return _refusal(result.get("problem"), result.get("status"))
    try:
        return parse_quote(result.get("quote"))
    except TaxRefused as refused:
        return refused


def _refusal(problem: Any, status: Any) -> TaxRefused:
    code = problem.get("code") if isinstance(problem, dict) else None
    detail = problem.get("detail") if isinstance(problem, dict) else None
    return TaxRefused(str(code or f"HTTP_{status}"), str(detail or ""))
