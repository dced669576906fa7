"""The MNO's wholesale API (the MVNOs, `/mno/v1/wholesale/...`) and its settlement
operations API (the MNO's own staff, `/mno/v1/settlement/...`): HTTP in, model calls,
JSON out. Handlers are registered on the MNO's RoleApi, next to the network's."""

from __future__ import annotations

from typing import Any

from simulators.core.clock import isoformat, parse_iso
from simulators.core.http import Reply, RequestContext, created, list_reply, paging
from simulators.core.hubs import Hub
from simulators.core.problems import BadRequest

from . import (
    agreements,
    disputes,
    errors,
    events,
    ledger,
    partners,
    rating,
    reconciliation,
    settlement,
    summaries,
    suspension,
)
from .api import api

WHOLESALE = "/v1/wholesale"
HUB = f"{WHOLESALE}/hub"


def _partner(ctx: RequestContext) -> str:
    """The wholesale partner the calling credential speaks for (never a body field)."""
    assert ctx.partner is not None
    return partners.of_credential(ctx.partner)


def _instant(value: str, field: str) -> float:
    """An RFC 3339 date-time of the request as epoch seconds; 400 naming the field if
    Python cannot read it (the contract's format check lets some forms through)."""
    try:
        return parse_iso(value.upper())
    except ValueError:
        raise BadRequest(f"{field}: {value!r} is not an RFC 3339 date-time", field=field) from None


def _money(micros: int | None, currency: str | None) -> dict[str, str] | None:
    if micros is None or currency is None:
        return None
    return events.money(int(micros), currency)


# --- representations ---------------------------------------------------------------------------


def usage_json(ctx: RequestContext, row: Any, closed: set[str]) -> dict[str, Any]:
    """TMF635-shaped wholesale usage: the rated record the partner is charged for."""
    body: dict[str, Any] = {
        "id": row.idempotency_key,
        "href": ctx.href(f"{WHOLESALE}/usage/{row.idempotency_key}"),
        "@type": "Usage",
        "usageDate": isoformat(row.event_time),
        "usageType": row.usage_type,
        "status": "billed" if row.period_id in closed else "rated",
        "msisdn": row.msisdn,
        "serviceId": row.service_id,
        "networkEventId": row.network_event_id,
        "quantity": int(row.quantity),
        "unit": row.unit,
        "ratedProductUsage": [
            {
                "ratingDate": isoformat(row.processing_time),
                "taxExcludedRatingAmount": _money(row.amount_micros, row.currency),
                "agreement": {
                    "id": agreements.version_id(row.agreement_id, int(row.agreement_version)),
                    "version": int(row.agreement_version),
                },
                "volumeWindowOffset": int(row.tier_offset),
            }
        ],
        "periodId": row.period_id,
        "ledgerEntryId": str(row.id),
        "late": bool(row.late),
    }
    if row.visited_mcc:
        body["visitedMcc"] = row.visited_mcc
    return body


def entry_json(row: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(row.id),
        "@type": "SettlementLedgerEntry",
        "partner": {"id": row.partner_id},
        "accountId": row.account_id,
        "kind": row.kind,
        "entryType": row.entry_type,
        "source": row.source,
        "eventTime": isoformat(row.event_time),
        "processingTime": isoformat(row.processing_time),
        "periodId": row.period_id,
        "servicePeriod": row.service_period,
        "amount": events.money(int(row.amount_micros), row.currency),
        "evidenceRef": row.evidence_ref,
        "idempotencyKey": row.idempotency_key,
    }
    if row.agreement_version is not None:
        body["agreement"] = {
            "id": agreements.version_id(row.agreement_id, int(row.agreement_version)),
            "version": int(row.agreement_version),
        }
    for name, value in (
        ("usageType", row.usage_type),
        ("quantity", None if row.quantity is None else int(row.quantity)),
        ("unit", row.unit),
        ("correctsEntryId", None if row.corrects_id is None else str(row.corrects_id)),
        ("memo", row.memo),
        ("serviceId", row.service_id),
        ("correlationId", row.correlation_id),
    ):
        if value is not None:
            body[name] = value
    return body


def period_json(ctx: RequestContext, row: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.period_id,
        "@type": "SettlementPeriod",
        "partner": {"id": row.partner_id},
        "validFor": {"startDateTime": isoformat(row.start), "endDateTime": isoformat(row.end)},
        "status": row.status,
    }
    if row.closed_at is not None:
        body["closedDate"] = isoformat(row.closed_at)
        statement_id = f"st-{row.partner_id}-{row.period_id}"
        body["statement"] = {
            "id": statement_id,
            "href": ctx.href(f"{WHOLESALE}/statement/{statement_id}"),
        }
    return body


def adjustment_json(row: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "@type": "ManualAdjustment",
        "partner": {"id": row.partner_id},
        "amount": events.money(int(row.amount_micros), row.currency),
        "reason": row.reason,
        "evidenceRef": row.evidence_ref,
        "status": row.status,
        "maker": row.maker,
        "creationDate": isoformat(row.created_at),
    }
    if row.checker:
        body["checker"] = row.checker
    if row.decided_at is not None:
        body["decisionDate"] = isoformat(row.decided_at)
    if row.entry_id is not None:
        body["ledgerEntryId"] = str(row.entry_id)
    return body


def outage_json(row: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "@type": "NetworkOutage",
        "start": isoformat(row.start),
        "end": isoformat(row.end),
        "category": row.category,
        "excludedMaintenance": bool(row.excluded_maintenance),
        "description": row.description,
        "recordedDate": isoformat(row.recorded_at),
    }
    if row.partner_id:
        body["partner"] = {"id": row.partner_id}
    return body


def _dispute_json(ctx: RequestContext, row: Any) -> dict[str, Any]:
    items = disputes.items_of(ctx.conn, [row.id])[row.id]
    return disputes.dispute_json(row, items, ctx.base_url)


# --- agreements ---------------------------------------------------------------------------------


@api.operation("listWholesaleAgreements")
def list_wholesale_agreements(ctx: RequestContext) -> Reply:
    versions = agreements.versions_of(ctx.conn, _partner(ctx))
    body = agreements.versions_json(versions, ctx.base_url)
    offset, limit = paging(ctx)
    return list_reply(len(body), body[offset : offset + limit])


@api.operation("getWholesaleAgreement")
def get_wholesale_agreement(ctx: RequestContext) -> Reply:
    partner_id = _partner(ctx)
    versions = agreements.versions_of(ctx.conn, partner_id)
    for body in agreements.versions_json(versions, ctx.base_url):
        if body["id"] == ctx.params["id"]:
            return Reply(body)
    raise errors.AgreementNotFound(f"No agreement version {ctx.params['id']}")


# --- usage and summaries ---------------------------------------------------------------------


@api.operation("listWholesaleUsage")
def list_wholesale_usage(ctx: RequestContext) -> Reply:
    partner_id = _partner(ctx)
    offset, limit = paging(ctx)
    since = ctx.params.get("usageDate.gte")
    until = ctx.params.get("usageDate.lt")
    total, rows = rating.list_usage(
        ctx.conn,
        partner_id,
        usage_type=ctx.params.get("usageType"),
        period_id=ctx.params.get("periodId"),
        since=_instant(since, "usageDate.gte") if since else None,
        until=_instant(until, "usageDate.lt") if until else None,
        msisdn=ctx.params.get("msisdn"),
        offset=offset,
        limit=limit,
    )
    closed = ledger.closed_periods(ctx.conn, partner_id)
    return list_reply(total, [usage_json(ctx, row, closed) for row in rows])


@api.operation("getWholesaleUsage")
def get_wholesale_usage(ctx: RequestContext) -> Reply:
    partner_id = _partner(ctx)
    row = rating.get_usage(ctx.conn, partner_id, ctx.params["id"])
    return Reply(usage_json(ctx, row, ledger.closed_periods(ctx.conn, partner_id)))


@api.operation("listUsageSummaries")
def list_usage_summaries(ctx: RequestContext) -> Reply:
    partner_id = _partner(ctx)
    offset, limit = paging(ctx)
    total, rows = summaries.list_summaries(
        ctx.conn, partner_id, day=ctx.params.get("usageDate"), offset=offset, limit=limit
    )
    latest = summaries.latest_revisions(ctx.conn, partner_id)
    return list_reply(
        total,
        [
            summaries.summary_json(row, ctx.base_url, latest=latest.get(row.day) == row.revision)
            for row in rows
        ],
    )


@api.operation("getUsageSummary")
def get_usage_summary(ctx: RequestContext) -> Reply:
    partner_id = _partner(ctx)
    row = summaries.get_summary(ctx.conn, partner_id, ctx.params["id"])
    latest = summaries.latest_revisions(ctx.conn, partner_id).get(row.day) == row.revision
    return Reply(summaries.summary_json(row, ctx.base_url, latest=latest))


# --- ledger, periods, statements, invoices --------------------------------------------------------


@api.operation("listLedgerEntries")
def list_ledger_entries(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = ledger.list_entries(
        ctx.conn,
        _partner(ctx),
        period_id=ctx.params.get("periodId"),
        kind=ctx.params.get("kind"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [entry_json(row) for row in rows])


@api.operation("listSettlementPeriods")
def list_settlement_periods(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = ledger.list_periods(
        ctx.conn, _partner(ctx), status=ctx.params.get("status"), offset=offset, limit=limit
    )
    return list_reply(total, [period_json(ctx, row) for row in rows])


@api.operation("getStatement")
def get_statement(ctx: RequestContext) -> Reply:
    row = settlement.get_statement(ctx.conn, _partner(ctx), ctx.params["id"])
    return Reply(settlement.statement_json(row, ctx.base_url))


@api.operation("listWholesaleInvoices")
def list_wholesale_invoices(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = settlement.list_invoices(
        ctx.conn, _partner(ctx), status=ctx.params.get("state"), offset=offset, limit=limit
    )
    return list_reply(total, [settlement.invoice_json(row, ctx.base_url) for row in rows])


@api.operation("getWholesaleInvoice")
def get_wholesale_invoice(ctx: RequestContext) -> Reply:
    row = settlement.get_invoice(ctx.conn, _partner(ctx), ctx.params["id"])
    return Reply(settlement.invoice_json(row, ctx.base_url))


# --- disputes and revenue --------------------------------------------------------------------


@api.operation("createUsageDispute", write=True)
def create_usage_dispute(ctx: RequestContext) -> Reply:
    row = disputes.create_dispute(
        ctx.conn,
        partner_id=_partner(ctx),
        reason=ctx.body["reason"],
        items=ctx.body["usage"],
        now=ctx.now(),
    )
    return created(_dispute_json(ctx, row))


@api.operation("listUsageDisputes")
def list_usage_disputes(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = disputes.list_disputes(
        ctx.conn,
        partner_id=_partner(ctx),
        status=ctx.params.get("status"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [_dispute_json(ctx, row) for row in rows])


@api.operation("getUsageDispute")
def get_usage_dispute(ctx: RequestContext) -> Reply:
    row = disputes.get_dispute(ctx.conn, ctx.params["id"], _partner(ctx))
    return Reply(_dispute_json(ctx, row))


@api.operation("declareRevenue", write=True)
def declare_revenue(ctx: RequestContext) -> Reply:
    partner_id = _partner(ctx)
    row = settlement.declare_revenue(
        ctx.conn,
        partner_id=partner_id,
        period_id=ctx.body["periodId"],
        net_revenue=str(ctx.body["netRevenue"]["amount"]),
        currency=ctx.body["netRevenue"]["units"],
        now=ctx.now(),
        correlation_id=ctx.correlation_id,
    )
    entry = ledger.get_entry(ctx.conn, partner_id, int(row.entry_id))
    body = {
        "id": row.id,
        "@type": "RevenueDeclaration",
        "periodId": row.period_id,
        "sequence": int(row.sequence),
        "netRevenue": events.money(int(row.net_revenue_micros), row.currency),
        "declarationDate": isoformat(row.declared_at),
        "revenueShare": entry_json(entry),
    }
    return Reply(body, 201)


# --- activation suspension ----------------------------------------------------------------


@api.operation("getActivationSuspension")
def get_activation_suspension(ctx: RequestContext) -> Reply:
    partner_id = _partner(ctx)
    history = suspension.history(ctx.conn, partner_id)
    current = next((s for s in history if s.in_force), None)
    body: dict[str, Any] = {
        "partner": {"id": partner_id},
        "capability": suspension.ACTIVATE_SIM,
        "state": "suspended" if current else "granted",
        "suspension": [],
    }
    for found in reversed(history):
        view = settlement.suspension_json(found)
        view["decision"] = [
            {
                "serviceOrderId": row.service_order_id,
                "itemId": row.item_id,
                "receivedDate": isoformat(row.received_at),
                "decision": row.decision,
                "rule": row.rule,
            }
            for row in suspension.decisions_of(ctx.conn, found.id)
        ]
        body["suspension"].append(view)
    return Reply(body)


# --- reconciliation ---------------------------------------------------------------------------


def _reconcile(ctx: RequestContext, partner_id: str) -> Reply:
    # A read handler: the partner's side is read from its MVNE with no transaction held,
    # then the report is computed and kept in a write transaction of its own.
    report_type = ctx.body["type"]
    period_id = ctx.body.get("periodId")
    partner = partners.get(ctx.conn, partner_id)
    view = (
        reconciliation.partner_view(ctx.runtime, partner, report_type)
        if report_type in reconciliation.PARTNER_SIDE
        else {}
    )
    with ctx.runtime.store.write() as conn:
        row = reconciliation.run(
            conn,
            partner_id=partner_id,
            report_type=report_type,
            period_id=period_id,
            view=view,
            now=ctx.runtime.clock.now(conn),
            requested_by=ctx.partner_id,
        )
    return created(reconciliation.run_json(row, ctx.base_url))


@api.operation("createReconciliation")
def create_reconciliation(ctx: RequestContext) -> Reply:
    return _reconcile(ctx, _partner(ctx))


@api.operation("getReconciliation")
def get_reconciliation(ctx: RequestContext) -> Reply:
    row = reconciliation.get_run(ctx.conn, _partner(ctx), ctx.params["id"])
    return Reply(reconciliation.run_json(row, ctx.base_url))


# --- events --------------------------------------------------------------------------------------


WHOLESALE_HUB = Hub(events.ROLE, events.WHOLESALE_API, HUB)


@api.operation("registerWholesaleListener", write=True)
def register_wholesale_listener(ctx: RequestContext) -> Reply:
    return WHOLESALE_HUB.register(ctx, _partner(ctx))


@api.operation("getWholesaleListener")
def get_wholesale_listener(ctx: RequestContext) -> Reply:
    return WHOLESALE_HUB.get(ctx, _partner(ctx))


@api.operation("unregisterWholesaleListener", write=True)
def unregister_wholesale_listener(ctx: RequestContext) -> Reply:
    return WHOLESALE_HUB.unregister(ctx, _partner(ctx))


# --- settlement operations (the MNO's own staff) -----------------------------------------------


@api.operation("createAgreementVersion", write=True)
def create_agreement_version(ctx: RequestContext) -> Reply:
    body = ctx.body
    partner_id = body["partnerId"]
    now = ctx.now()
    existing = partners.find(ctx.conn, partner_id)
    key = None
    if existing is None:
        if not body.get("partnerName") or not body.get("imsiPrefixes"):
            raise errors.WholesalePartnerNotFound(
                f"No wholesale partner {partner_id}: a first agreement names the partner "
                "(partnerName) and its IMSI blocks (imsiPrefixes)",
                field="partnerId",
            )
        existing, key = partners.register(
            ctx.conn,
            secret_key=ctx.runtime.settings.secret_key,
            partner_id=partner_id,
            name=body["partnerName"],
            imsi_prefixes=list(body["imsiPrefixes"]),
            mvne_partner_id=body.get("mvnePartnerId"),
            now=now,
        )
    version = agreements.add_version(
        ctx.conn,
        partner_id=partner_id,
        agreement_id=existing.agreement_id,
        effective_from=_instant(body["effectiveFrom"], "effectiveFrom"),
        terms=body["terms"],
        now=now,
        actor=ctx.partner_id,
        correlation_id=ctx.correlation_id,
    )
    view = agreements.version_json(version, None, ctx.base_url)
    if key is not None:
        view["wholesaleApiKey"] = key
    return created(view)


@api.operation("closeSettlementPeriod", write=True)
def close_settlement_period(ctx: RequestContext) -> Reply:
    period, statement, invoice = settlement.close_period(
        ctx.runtime,
        ctx.conn,
        partner_id=ctx.params["partnerId"],
        period_id=ctx.params["periodId"],
        now=ctx.now(),
        actor=ctx.partner_id,
        correlation_id=ctx.correlation_id,
    )
    return Reply(
        {
            "period": period_json(ctx, period),
            "statement": settlement.statement_json(statement, ctx.base_url),
            "invoice": settlement.invoice_json(invoice, ctx.base_url),
        }
    )


@api.operation("proposeAdjustment", write=True)
def propose_adjustment(ctx: RequestContext) -> Reply:
    row = settlement.create_adjustment(
        ctx.conn,
        partner_id=ctx.body["partnerId"],
        amount=str(ctx.body["amount"]["amount"]),
        currency=ctx.body["amount"]["units"],
        reason=ctx.body["reason"],
        evidence_ref=ctx.body["evidenceRef"],
        now=ctx.now(),
        maker=ctx.partner_id,
    )
    return Reply(adjustment_json(row), 201)


@api.operation("listAdjustments")
def list_adjustments(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = settlement.list_adjustments(
        ctx.conn,
        partner_id=ctx.params.get("partnerId"),
        status=ctx.params.get("status"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [adjustment_json(row) for row in rows])


@api.operation("decideAdjustment", write=True)
def decide_adjustment(ctx: RequestContext) -> Reply:
    row = settlement.decide_adjustment(
        ctx.conn,
        adjustment_id=ctx.params["id"],
        approve=ctx.body["decision"] == "approve",
        checker=ctx.partner_id,
        now=ctx.now(),
        correlation_id=ctx.correlation_id,
    )
    return Reply(adjustment_json(row))


@api.operation("recordWholesalePayment", write=True)
def record_wholesale_payment(ctx: RequestContext) -> Reply:
    payment, invoice = settlement.record_payment(
        ctx.runtime,
        ctx.conn,
        invoice_id=ctx.body["invoiceId"],
        amount=str(ctx.body["amount"]["amount"]),
        currency=ctx.body["amount"]["units"],
        reference=ctx.body["reference"],
        now=ctx.now(),
        actor=ctx.partner_id,
        correlation_id=ctx.correlation_id,
    )
    current = suspension.current(ctx.conn, invoice.partner_id)
    return Reply(
        {
            "id": payment.id,
            "@type": "WholesalePayment",
            "reference": payment.reference,
            "amount": {
                "amount": agreements.cents_text(int(payment.amount_cents)),
                "units": payment.currency,
            },
            "receivedDate": isoformat(payment.received_at),
            "invoice": settlement.invoice_json(invoice, ctx.base_url),
            "activationsSuspended": current is not None,
        },
        201,
    )


@api.operation("recordOutage", write=True)
def record_outage(ctx: RequestContext) -> Reply:
    row = settlement.record_outage(
        ctx.conn,
        body=ctx.body,
        start=_instant(ctx.body["start"], "start"),
        end=_instant(ctx.body["end"], "end"),
        now=ctx.now(),
        actor=ctx.partner_id,
    )
    return Reply(outage_json(row), 201)


@api.operation("listAllDisputes")
def list_all_disputes(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = disputes.list_disputes(
        ctx.conn,
        partner_id=ctx.params.get("partnerId"),
        status=ctx.params.get("status"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [_dispute_json(ctx, row) for row in rows])


@api.operation("resolveDispute", write=True)
def resolve_dispute(ctx: RequestContext) -> Reply:
    row = disputes.resolve_dispute(
        ctx.runtime,
        ctx.conn,
        dispute_id=ctx.params["id"],
        accept=ctx.body["decision"] == "accept",
        note=ctx.body.get("note"),
        now=ctx.now(),
        actor=ctx.partner_id,
        correlation_id=ctx.correlation_id,
    )
    return Reply(_dispute_json(ctx, row))


@api.operation("runReconciliation")
def run_reconciliation(ctx: RequestContext) -> Reply:
    return _reconcile(ctx, ctx.body["partnerId"])
