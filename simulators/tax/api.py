"""The tax engine's HTTP surface: quote requests in, stored quotes and reconciliation
reports out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import g, request

from simulators.core.clock import isoformat
from simulators.core.faults import Firing, Sample, fields_of
from simulators.core.http import Reply, RequestContext, RoleApi, created, list_reply, paging
from simulators.core.problems import BadRequest, DomainError

from . import model

api = RoleApi("tax")

QUOTES_PATH = "/v1/quotes"
SINGLE_QUOTE = "createTaxQuote"
BATCH = "createTaxQuoteBatch"


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
    return table_faults_of(ctx.faults.data)


def table_faults_of(fired: Sequence[Firing]) -> model.TableFaults:
    """The tax data faults among the rules that fired, as plain values."""
    if not fired:
        return model.NO_FAULTS

    def firing(name: str) -> Firing | None:
        return next((f for f in fired if f.effect.get("fault") == name), None)

    missing = firing("TAX_JURISDICTION_NOT_FOUND")
    return model.TableFaults(
        missing_level=str(missing.effect.get("level", model.CITY)) if missing else None,
        zip_default=firing("TAX_JURISDICTION_DEFAULTED") is not None,
        annexation_ignored=firing("TAX_ANNEXATION_NOT_LOADED") is not None,
        e911_wrong_district=firing("TAX_E911_WRONG_DISTRICT") is not None,
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


@api.operation(BATCH, write=True)
def create_tax_quote_batch(ctx: RequestContext) -> Reply:
    """Each item checked against the single quote's own schema and answered on its own;
    the valid ones quoted and stored together in this transaction."""
    single = api.contract().operations[SINGLE_QUOTE]
    items = ctx.body["quotes"]
    results: list[dict[str, Any] | None] = [None] * len(items)
    batch: list[model.BatchItem] = []
    positions: list[int] = []
    rules_for_items = bool(ctx.runtime.faults.rule_set().candidates(api.role))
    # A data rule that names the batch operation concerns every item of it; any other that
    # fired on the call as a whole (one without an operation, matched on the fields of all
    # items together) is decided again item by item below.
    batch_wide = [firing for firing in ctx.faults.data if names_batch(firing)]
    for index, item in enumerate(items):
        body = item["request"]
        invalid = single.validate_body(body)
        if invalid:
            refusal = BadRequest(
                f"{invalid[0].field}: {invalid[0].message}",
                field=invalid[0].field,
                errors=[error.as_dict() for error in invalid],
            )
            results[index] = problem_result(ctx, index, refusal)
            continue
        faults = model.NO_FAULTS
        if rules_for_items:
            faults = table_faults_of([*batch_wide, *item_faults(ctx, body)])
        key = model.item_key(item.get("idempotencyKey"), body)
        batch.append(model.BatchItem(body=body, key=key, faults=faults))
        positions.append(index)
    outcomes = model.quote_batch(
        ctx.conn, model.load_table(), client_id=ctx.partner_id, items=batch, now=ctx.now()
    )
    for index, outcome in zip(positions, outcomes, strict=True):
        if outcome.quote is None:
            assert outcome.refusal is not None
            results[index] = problem_result(ctx, index, outcome.refusal)
            continue
        result: dict[str, Any] = {"index": index, "status": 201}
        if outcome.replayed:
            result["replayed"] = True
        result["quote"] = quote_json(ctx, outcome.quote)
        results[index] = result
    quoted = sum(1 for result in results if result and result["status"] == 201)
    return Reply({"quoted": quoted, "refused": len(items) - quoted, "results": results})


def names_batch(firing: Firing) -> bool:
    operations = firing.rule.match.get("operation")
    return BATCH in (operations if isinstance(operations, list) else [operations])


def item_faults(ctx: RequestContext, body: dict[str, Any]) -> list[Firing]:
    """The data fault rules that fire on one batch item, matched as the single quote it
    stands for (its own fields): a rule or pack written for quotes concerns batches too."""
    sample = Sample(
        role=api.role,
        operation=SINGLE_QUOTE,
        method="POST",
        path=request.path.removesuffix("quoteBatches") + "quotes",
        partner=ctx.partner_id,
        headers=request.headers,
        fields=lambda: fields_of({}, {}, body),
    )
    decision = ctx.runtime.faults.decide(sample, ctx.now, kinds=("data",), conn=ctx.conn)
    if decision.fired:
        # The journal lists the rules that fired on the request, the items' included.
        fired = list(g.get("fault_ids") or ())
        g.fault_ids = fired + [rule for rule in decision.fired if rule not in fired]
    return decision.data


def problem_result(ctx: RequestContext, index: int, refusal: DomainError) -> dict[str, Any]:
    problem = refusal.to_problem(
        correlation_id=ctx.correlation_id, instance=f"{request.path}#/quotes/{index}"
    )
    return {"index": index, "status": refusal.status, "problem": problem}


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
