"""The tax engine's HTTP surface: quote requests in, stored quotes and reconciliation
reports out."""

from __future__ import annotations

from typing import Any

from simulators.core.clock import isoformat
from simulators.core.http import Reply, RequestContext, RoleApi, created, list_reply, paging

from . import model

api = RoleApi("tax")

QUOTES_PATH = "/v1/quotes"


def quote_json(ctx: RequestContext, quote: model.StoredQuote) -> dict[str, Any]:
    record = quote.record
    body: dict[str, Any] = {"id": quote.id, "href": ctx.href(f"{QUOTES_PATH}/{quote.id}")}
    body["date"] = record["date"]
    body["currency"] = record["currency"]
    if quote.document_id is not None:
        body["documentId"] = quote.document_id
    body["createdAt"] = isoformat(quote.created_at)
    body.update((k, v) for k, v in record.items() if k not in body)
    return body


def table_faults(ctx: RequestContext) -> model.TableFaults:
    """The data faults switched on for this request, as plain values for the model."""
    if not ctx.faults.data:
        return model.NO_FAULTS
    missing = ctx.data_fault("TAX_JURISDICTION_NOT_FOUND")
    return model.TableFaults(
        missing_level=str(missing.effect.get("level", model.CITY)) if missing else None,
        zip_default=ctx.data_fault("TAX_JURISDICTION_DEFAULTED") is not None,
        annexation_ignored=ctx.data_fault("TAX_ANNEXATION_NOT_LOADED") is not None,
        e911_wrong_district=ctx.data_fault("TAX_E911_WRONG_DISTRICT") is not None,
    )


@api.operation("createTaxQuote", write=True)
def create_tax_quote(ctx: RequestContext) -> Reply:
    quote = model.create_quote(
        ctx.conn,
        model.load_table(),
        client_id=ctx.partner_id,
        body=ctx.body,
        now=ctx.now(),
        faults=table_faults(ctx),
    )
    return created(quote_json(ctx, quote))


@api.operation("getTaxQuote")
def get_tax_quote(ctx: RequestContext) -> Reply:
    return Reply(quote_json(ctx, model.get_quote(ctx.conn, ctx.partner_id, ctx.params["quoteId"])))


@api.operation("listTaxQuotes")
def list_tax_quotes(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, found = model.list_quotes(
        ctx.conn,
        ctx.partner_id,
        document_id=ctx.params.get("documentId"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [quote_json(ctx, quote) for quote in found])


# A write transaction although it changes nothing: an Idempotency-Key stores its answer.
@api.operation("reconcileTaxQuotes", write=True)
def reconcile_tax_quotes(ctx: RequestContext) -> Reply:
    checks = model.reconcile(
        ctx.conn,
        model.load_table(),
        ctx.partner_id,
        quote_ids=ctx.body.get("quoteIds") or (),
        document_id=ctx.body.get("documentId"),
    )
    results = [check_json(check) for check in checks]
    matched = sum(1 for check in checks if check.matched)
    return Reply(
        {
            "checkedAt": isoformat(ctx.now()),
            "quotes": len(checks),
            "matched": matched,
            "discrepant": len(checks) - matched,
            "results": results,
        }
    )


def check_json(check: model.QuoteCheck) -> dict[str, Any]:
    quote = check.quote
    body: dict[str, Any] = {"quoteId": quote.id}
    if quote.document_id is not None:
        body["documentId"] = quote.document_id
    body["status"] = "matched" if check.matched else "discrepant"
    body["currency"] = quote.record["currency"]
    body["quotedTax"] = quote.record["totalTax"]
    body["expectedTax"] = check.expected_tax
    body["findings"] = [finding_json(finding) for finding in check.findings]
    return body


def finding_json(finding: model.Finding) -> dict[str, Any]:
    body: dict[str, Any] = {"lineId": finding.line_id, "level": finding.level, "kind": finding.kind}
    if finding.quoted_code is not None:
        body["quotedJurisdictionCode"] = finding.quoted_code
    if finding.expected_code is not None:
        body["expectedJurisdictionCode"] = finding.expected_code
    body["quotedAmount"] = finding.quoted_amount
    body["expectedAmount"] = finding.expected_amount
    body["difference"] = finding.difference
    return body
