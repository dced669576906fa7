"""TMF666/TMF678 representations of billing's resources."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from simulators.core.clock import isoformat

ACCOUNTS = "/tmf-api/accountManagement/v4/billingAccount"
BILLS = "/tmf-api/customerBillManagement/v4/customerBill"
RUNS = "/v1/billRun"
CHARGES = "/v1/charge"
PAYMENTS = "/v1/payment"
DISPUTES = "/v1/dispute"


def money(minor: int, currency: str) -> dict[str, Any]:
    """Minor units to Money; Decimal keeps 0.07 exact on the wire."""
    return {"amount": Decimal(minor) / 100, "units": currency}


def _rate(rate: str | None) -> Decimal | None:
    return None if rate is None else Decimal(rate)


def account_view(row: Any, base: str, receivable_minor: int) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "href": f"{base}{ACCOUNTS}/{row.id}",
        "@type": "BillingAccount",
        "name": row.name,
        "state": row.state,
        "product": {"id": row.product_id, "href": _product_href(base, row.product_id)},
        "ratingType": row.rating_type,
        "currency": row.currency,
        "customerType": row.customer_type,
        "taxExemption": list(row.tax_exemption),
        "placeOfPrimaryUse": dict(row.place),
        "billCycleDay": row.bill_cycle_day,
        "accountBalance": [
            {"balanceType": "receivable", "amount": money(receivable_minor, row.currency)}
        ],
        "dunningStage": row.dunning_stage,
        "serviceStatus": row.service_status,
        "createdDate": isoformat(row.created_at),
    }
    if row.state_reason:
        view["stateReason"] = row.state_reason
    if row.credit_limit_minor is not None:
        view["creditLimit"] = money(row.credit_limit_minor, row.currency)
    return view


def _product_href(base: str, product_id: str) -> str:
    # The subscription lives at the MVNE, beside billing under the same stack.
    root = base.rsplit("/billing", 1)[0]
    return f"{root}/mvne/tmf-api/productInventoryManagement/v4/product/{product_id}"


def bill_view(row: Any, base: str) -> dict[str, Any]:
    currency = row.currency
    lines = []
    for line in row.lines:
        item: dict[str, Any] = {
            "id": line["id"],
            "lineType": line["lineType"],
            "description": line["description"],
            "amount": money(line["amountMinor"], currency),
            "taxAmount": money(sum(t["amountMinor"] for t in line["taxes"]), currency),
        }
        if "usageType" in line:
            item["usageType"] = line["usageType"]
            item["quantity"] = line["quantity"]
        lines.append(item)
    view: dict[str, Any] = {
        "id": row.id,
        "href": f"{base}{BILLS}/{row.id}",
        "@type": "CustomerBill",
        "billNo": row.bill_no,
        "state": row.state,
        "billingAccount": {"id": row.account_id, "href": f"{base}{ACCOUNTS}/{row.account_id}"},
        "billingPeriod": {
            "startDateTime": isoformat(row.period_start),
            "endDateTime": isoformat(row.period_end),
        },
        "billDate": isoformat(row.bill_date),
        "paymentDueDate": isoformat(row.due_date),
        "billLine": lines,
        "taxItem": [
            {
                "taxCategory": item["taxCategory"],
                "taxRate": _rate(item["taxRate"]),
                "taxAmount": money(item["taxAmountMinor"], currency),
                "jurisdictionCode": item["jurisdictionCode"],
            }
            for item in row.tax_items
        ],
        "taxExcludedAmount": money(row.tax_excluded_minor, currency),
        "taxIncludedAmount": money(row.tax_included_minor, currency),
        "amountDue": money(row.amount_due_minor, currency),
        "remainingAmount": money(row.amount_due_minor - row.paid_minor, currency),
        "ledgerEntry": list(row.ledger_ids),
    }
    if row.state_reason:
        view["stateReason"] = row.state_reason
    if row.tax_quote_id:
        view["taxQuote"] = row.tax_quote_id
    return view


def run_view(row: Any, base: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "href": f"{base}{RUNS}/{row.id}",
        "@type": "BillRun",
        "state": row.state,
        "billCycleDay": row.bill_cycle_day,
        "billingPeriod": {
            "startDateTime": isoformat(row.period_start),
            "endDateTime": isoformat(row.period_end),
        },
        "billsIssued": row.bills_issued,
        "failures": [
            {
                "billingAccount": {
                    "id": failure["accountId"],
                    "href": f"{base}{ACCOUNTS}/{failure['accountId']}",
                },
                "code": failure["code"],
                "detail": failure["detail"],
            }
            for failure in row.failures
        ],
    }
    if row.started_at is not None:
        view["startedDate"] = isoformat(row.started_at)
    if row.completed_at is not None:
        view["completedDate"] = isoformat(row.completed_at)
    return view


def ledger_view(row: Any, base: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "href": f"{base}{CHARGES}/{row.id}",
        "@type": "LedgerEntry",
        "billingAccount": {"id": row.account_id, "href": f"{base}{ACCOUNTS}/{row.account_id}"},
        "kind": row.kind,
        "amount": money(row.amount_minor, row.currency),
        "description": row.description,
        "period": row.period,
        "postedDate": isoformat(row.posted_at),
    }


def payment_view(row: Any, base: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "href": f"{base}{PAYMENTS}/{row.id}",
        "@type": "Payment",
        "customerBill": {"id": row.bill_id, "href": f"{base}{BILLS}/{row.bill_id}"},
        "billingAccount": {"id": row.account_id, "href": f"{base}{ACCOUNTS}/{row.account_id}"},
        "amount": money(row.amount_minor, row.currency),
        "reference": row.reference,
        "paymentDate": isoformat(row.paid_at),
    }


def dispute_view(row: Any, base: str, breached: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "href": f"{base}{DISPUTES}/{row.id}",
        "@type": "Dispute",
        "customerBill": {"id": row.bill_id, "href": f"{base}{BILLS}/{row.bill_id}"},
        "billingAccount": {"id": row.account_id, "href": f"{base}{ACCOUNTS}/{row.account_id}"},
        "billLineId": row.line_id,
        "category": row.category,
        "reason": row.reason,
        "raisedBy": row.raised_by,
        "state": row.state,
        "owner": row.owner,
        "unowned": row.owner is None,
        "disputedAmount": money(row.disputed_minor, row.currency),
        "createdDate": isoformat(row.created_at),
        "slaDueDate": isoformat(row.sla_due_at),
        "slaBreached": breached,
    }
    if row.adjustment_entry_id is not None:
        view["adjustment"] = {
            "ledgerEntry": row.adjustment_entry_id,
            "amount": money(-int(row.adjustment_minor), row.currency),
        }
    if row.resolution:
        view["resolution"] = row.resolution
    if row.resolved_at is not None:
        view["resolvedDate"] = isoformat(row.resolved_at)
    return view


def action_view(row: Any, base: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "@type": "DunningAction",
        "billingAccount": {"id": row.account_id, "href": f"{base}{ACCOUNTS}/{row.account_id}"},
        "customerBill": {"id": row.bill_id, "href": f"{base}{BILLS}/{row.bill_id}"},
        "step": row.step,
        "takenDate": isoformat(row.taken_at),
        "mvneOrder": row.mvne_order,
    }
