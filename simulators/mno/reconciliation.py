"""The six wholesale reconciliations, each a report that lists its breaks with evidence.

- order: the partner's activation orders (at its MVNE) against the network's service
  orders (matched by externalId, which is the MVNE's order id), and the activation fees
  charged for the lines the network created;
- service: the partner's subscriptions against the network's services (by ICCID):
  lifecycle state and barring;
- resource: the partner's SIMs and numbers against what the network holds (ICCID, IMSI,
  MSISDN);
- usage: the network's usage records against what the partner was fed (real-time
  charging, daily summaries) and charged (the ledger), open data sessions whose STOP
  never came;
- settlement: ledger against statement against invoice, per closed period;
- sla: the outages measured in a closed period against the credits posted for it.

The partner side of the first three is read from the partner's MVNE over the MVNE's
contract, with the partner's own key (a delegated credential, as its billing vendor
holds). A clean run lists no break.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import requests
from flask import current_app, has_app_context
from sqlalchemy import JSON, Column, Connection, Float, String, bindparam, func, select

from simulators.core.clock import isoformat, parse_iso
from simulators.core.runtime import PeerCallFailed
from simulators.core.store import partner_row, role_table, select_equal
from simulators.core.tenancy import derive_api_key

from . import agreements, errors, fees, ledger, model, partners, rating, settlement
from . import summaries as daily
from . import usage as network_usage

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime

ROLE = "mno"
TYPES = ("order", "service", "resource", "usage", "settlement", "sla")
PARTNER_SIDE = ("order", "service", "resource")
# An activation neither side finished after this long is overdue (time in state).
ORDER_OVERDUE_S = 3600.0
MVNE_ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder"
MVNE_PRODUCTS = "/tmf-api/productInventoryManagement/v4/product"
MVNE_SIMS = "/tmf-api/resourceInventoryManagement/v4/resource"
PAGE = 1000
FINAL_ORDER_STATES = ("completed", "failed", "partial", "cancelled", "rejected")
LIVE_PRODUCT_STATES = ("active", "suspended")

reconciliation_runs = role_table(
    ROLE,
    "mno_reconciliation_run",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("type", String(12), nullable=False),
    Column("period_id", String(7), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("requested_by", String(80), nullable=False),
    Column("compared", JSON, nullable=False),
    Column("breaks", JSON, nullable=False),
)


class Report:
    def __init__(self) -> None:
        self.compared: dict[str, int] = {}
        self.breaks: list[dict[str, Any]] = []

    def add(self, code: str, description: str, **evidence: Any) -> None:
        self.breaks.append(
            {
                "code": code,
                "description": description,
                "evidence": {k: v for k, v in evidence.items() if v is not None},
            }
        )


# --- the partner's side, from its MVNE ---------------------------------------------------------


def _mvne_pages(runtime: Runtime, partner: partners.WholesalePartner, path: str) -> Iterator[Any]:
    key = derive_api_key(runtime.settings.secret_key, partner.mvne_partner_id)
    offset = 0
    while True:
        try:
            if has_app_context():
                with current_app.app_context():
                    response = _get(runtime, path, key, offset)
            else:
                response = _get(runtime, path, key, offset)
        except PeerCallFailed as exc:
            raise errors.PartnerViewUnavailable(
                f"The partner's MVNE did not answer ({exc})", peer="mvne"
            ) from exc
        if response.status_code != 200:
            raise errors.PartnerViewUnavailable(
                f"The partner's MVNE answered {response.status_code} to {path}",
                peer="mvne",
                peerStatus=response.status_code,
            )
        page = response.json()
        yield from page
        offset += len(page)
        if not page or offset >= int(response.headers.get("X-Total-Count", offset)):
            return


def _get(runtime: Runtime, path: str, key: str, offset: int) -> requests.Response:
    return runtime.call_peer(
        caller="mno",
        peer="mvne",
        method="GET",
        path=path,
        api_key=key,
        correlation_id=None,
        params={"offset": offset, "limit": PAGE},
    )


def partner_view(
    runtime: Runtime, partner: partners.WholesalePartner, report_type: str
) -> dict[str, list[Any]]:
    """What the partner's own platform says, for the reports that need it."""
    if report_type == "order":
        return {"orders": list(_mvne_pages(runtime, partner, MVNE_ORDERS))}
    if report_type == "service":
        return {"products": list(_mvne_pages(runtime, partner, MVNE_PRODUCTS))}
    if report_type == "resource":
        return {
            "sims": list(_mvne_pages(runtime, partner, MVNE_SIMS)),
            "products": list(_mvne_pages(runtime, partner, MVNE_PRODUCTS)),
        }
    return {}


# --- network side helpers -------------------------------------------------------------------


def _partner_orders(conn: Connection, partner: partners.WholesalePartner) -> list[Any]:
    """The network's service orders with an activation for the partner: the MVNO the order
    names, else an IMSI of the partner's blocks."""
    items = model.service_order_items
    orders = model.service_orders
    found: dict[str, Any] = {}
    for row in conn.execute(
        select(
            orders.c.id,
            orders.c.external_id,
            orders.c.state,
            orders.c.order_date,
            orders.c.mvno_id,
            items.c.item_id,
            items.c.state.label("item_state"),
            items.c.service_id,
            items.c.characteristics,
        )
        .join(items, items.c.order_id == orders.c.id)
        .where(items.c.action == model.ADD)
        .order_by(orders.c.pk, items.c.position)
    ):
        imsi = next((c["value"] for c in row.characteristics if c["name"] == "IMSI"), "")
        if row.mvno_id is not None:
            if row.mvno_id != partner.mvne_partner_id:
                continue
        elif not any(imsi.startswith(prefix) for prefix in partner.imsi_prefixes):
            continue
        order = found.setdefault(
            row.id,
            {
                "id": row.id,
                "external_id": row.external_id,
                "state": row.state,
                "order_date": row.order_date,
                "items": [],
            },
        )
        order["items"].append(
            {"item_id": row.item_id, "state": row.item_state, "service_id": row.service_id}
        )
    return list(found.values())


def _network_services(conn: Connection, partner: partners.WholesalePartner) -> list[Any]:
    return list(
        conn.execute(
            select(model.services)
            .where(model.services.c.mvno_id == partner.mvne_partner_id)
            .order_by(model.services.c.pk)
        ).all()
    )


def _activation_fees(conn: Connection, partner_id: str) -> dict[str, int]:
    """Net activation fee per idempotency key of the original charge."""
    table = ledger.ledger
    fees_by_key: dict[str, int] = {}
    originals = {
        row.id: row.idempotency_key
        for row in conn.execute(
            select(table.c.id, table.c.idempotency_key).where(
                table.c.partner_id == partner_id,
                table.c.kind == ledger.ACTIVATION_FEE,
                table.c.entry_type == ledger.ORIGINAL,
            )
        )
    }
    for row in conn.execute(
        select(table.c.id, table.c.corrects_id, table.c.amount_micros).where(
            table.c.partner_id == partner_id, table.c.kind == ledger.ACTIVATION_FEE
        )
    ):
        key = originals.get(row.corrects_id if row.corrects_id is not None else row.id)
        if key is not None:
            fees_by_key[key] = fees_by_key.get(key, 0) + int(row.amount_micros)
    return fees_by_key


# --- the reports ----------------------------------------------------------------------------


def order_report(
    conn: Connection, partner: partners.WholesalePartner, view: dict[str, list[Any]], now: float
) -> Report:
    report = Report()
    partner_orders = [
        o for o in view["orders"] if any(i.get("action") == "add" for i in o["productOrderItem"])
    ]
    network = _partner_orders(conn, partner)
    by_external = {order["external_id"]: order for order in network}
    report.compared = {"partnerOrders": len(partner_orders), "networkOrders": len(network)}
    known = set()
    for order in partner_orders:
        state = order["state"]
        known.add(order["id"])
        found = by_external.get(order["id"])
        age = now - parse_iso(order["orderDate"])
        if found is None:
            if state in ("completed", "partial") or age > ORDER_OVERDUE_S:
                report.add(
                    "ORDER_NOT_AT_NETWORK",
                    "The partner's activation never reached the network",
                    partnerOrderId=order["id"],
                    externalId=order["externalId"],
                    partnerState=state,
                    orderDate=order["orderDate"],
                )
            continue
        if state in FINAL_ORDER_STATES and found["state"] in FINAL_ORDER_STATES:
            partner_ok = state in ("completed", "partial")
            network_ok = found["state"] in ("completed", "partial")
            if partner_ok != network_ok:
                report.add(
                    "ORDER_STATE_MISMATCH",
                    "The partner and the network disagree on how the activation ended",
                    partnerOrderId=order["id"],
                    partnerState=state,
                    serviceOrderId=found["id"],
                    networkState=found["state"],
                )
        elif age > ORDER_OVERDUE_S and (
            state not in FINAL_ORDER_STATES or found["state"] not in FINAL_ORDER_STATES
        ):
            report.add(
                "ORDER_OVERDUE",
                f"The activation has not finished after {int(ORDER_OVERDUE_S)} s",
                partnerOrderId=order["id"],
                partnerState=state,
                serviceOrderId=found["id"],
                networkState=found["state"],
                orderDate=order["orderDate"],
            )
    for order in network:
        if order["external_id"] not in known:
            report.add(
                "NETWORK_ORDER_WITHOUT_PARTNER_ORDER",
                "The network received an activation in the partner's IMSI block that the "
                "partner never ordered",
                serviceOrderId=order["id"],
                externalId=order["external_id"],
                networkState=order["state"],
            )
    charged = _activation_fees(conn, partner.id)
    created = {
        fees.activation_key(order["id"], item["item_id"]): (order, item)
        for order in network
        for item in order["items"]
        if item["state"] == model.COMPLETED
    }
    report.compared["activationFees"] = len(charged)
    for key, (order, item) in created.items():
        net = charged.get(key, 0)
        if net == 0:
            report.add(
                "ACTIVATION_NOT_CHARGED",
                "The network created the line and no activation fee is charged for it",
                serviceOrderId=order["id"],
                itemId=item["item_id"],
                serviceId=item["service_id"],
            )
    for key, net in charged.items():
        if key not in created and net != 0:
            report.add(
                "ACTIVATION_CHARGED_WITHOUT_LINE",
                "An activation fee is charged for a line the network did not create",
                ledgerKey=key,
                amountMicros=net,
            )
    return report


def service_report(
    conn: Connection, partner: partners.WholesalePartner, view: dict[str, list[Any]]
) -> Report:
    report = Report()
    products = view["products"]
    network = _network_services(conn, partner)
    live = {s.iccid: s for s in network if s.state != model.SERVICE_TERMINATED}
    report.compared = {"partnerServices": len(products), "networkServices": len(live)}
    seen = set()
    for product in products:
        iccid = product["iccid"]
        seen.add(iccid)
        service = live.get(iccid)
        status = product["status"]
        if status in LIVE_PRODUCT_STATES and service is None:
            report.add(
                "SERVICE_MISSING_AT_NETWORK",
                "The partner's subscription has no live service on the network",
                productId=product["id"],
                partnerStatus=status,
                iccid=iccid,
            )
        elif status == "terminated" and service is not None:
            report.add(
                "SERVICE_TERMINATED_STILL_ACTIVE",
                "The partner terminated the subscription; the network still serves it "
                "(and charges the per-SIM fee)",
                productId=product["id"],
                serviceId=service.id,
                iccid=iccid,
                networkState=service.state,
            )
        elif service is not None and product.get("barring") != service.barring:
            report.add(
                "BARRING_MISMATCH",
                "The network's barring is not what the partner's subscription calls for",
                productId=product["id"],
                partnerStatus=status,
                partnerBarring=product.get("barring"),
                serviceId=service.id,
                networkBarring=service.barring,
            )
    for iccid, service in live.items():
        if iccid not in seen:
            report.add(
                "SERVICE_UNKNOWN_TO_PARTNER",
                "The network serves a line in the partner's IMSI block the partner does not know",
                serviceId=service.id,
                iccid=iccid,
                msisdn=service.msisdn,
            )
    return report


def resource_report(
    conn: Connection, partner: partners.WholesalePartner, view: dict[str, list[Any]]
) -> Report:
    report = Report()
    sims = {sim["iccid"]: sim for sim in view["sims"]}
    numbers = {
        product["iccid"]: product["msisdn"]
        for product in view["products"]
        if product["status"] in LIVE_PRODUCT_STATES
    }
    network = [s for s in _network_services(conn, partner) if s.state != model.SERVICE_TERMINATED]
    report.compared = {"partnerSims": len(sims), "networkResources": len(network)}
    held = set()
    for service in network:
        held.add(service.iccid)
        sim = sims.get(service.iccid)
        if sim is None:
            report.add(
                "RESOURCE_UNKNOWN_TO_PARTNER",
                "The network holds a SIM the partner's inventory does not list",
                iccid=service.iccid,
                imsi=service.imsi,
                serviceId=service.id,
            )
            continue
        if sim["resourceStatus"] in ("available", "terminated"):
            report.add(
                "RESOURCE_LEAK",
                "The network holds a SIM the partner reports free or retired",
                iccid=service.iccid,
                partnerStatus=sim["resourceStatus"],
                serviceId=service.id,
            )
        if sim["imsi"] != service.imsi:
            report.add(
                "IMSI_MISMATCH",
                "The SIM's IMSI differs between the partner and the network",
                iccid=service.iccid,
                partnerImsi=sim["imsi"],
                networkImsi=service.imsi,
            )
        number = numbers.get(service.iccid)
        if number is not None and number != service.msisdn:
            report.add(
                "MSISDN_MISMATCH",
                "The line's number differs between the partner and the network",
                iccid=service.iccid,
                partnerMsisdn=number,
                networkMsisdn=service.msisdn,
            )
    for iccid, sim in sims.items():
        if sim["resourceStatus"] in ("active", "suspended") and iccid not in held:
            report.add(
                "RESOURCE_NOT_PROVISIONED",
                "The partner's SIM is in service; the network holds no line for it",
                iccid=iccid,
                partnerStatus=sim["resourceStatus"],
            )
    return report


def usage_report(
    conn: Connection, partner: partners.WholesalePartner, period_id: str | None, now: float
) -> Report:
    report = Report()
    usages, services = model.usages, model.services
    query = (
        select(usages)
        .join(services, services.c.id == usages.c.service_id)
        .where(services.c.mvno_id == partner.mvne_partner_id)
        .order_by(usages.c.pk)
    )
    if period_id:
        start, end = agreements.month_bounds(period_id)
        query = query.where(usages.c.usage_date >= start, usages.c.usage_date < end)
    records = conn.execute(query).all()
    keyed = {}
    for record in records:
        if record.status == model.USAGE_RECEIVED:
            report.add(
                "USAGE_NOT_CHARGED",
                "The network recorded usage the partner's real-time charging never rated",
                usageId=record.id,
                usageDate=isoformat(record.usage_date),
                usageType=record.usage_type,
                quantity=record.quantity,
            )
        if record.fed_quantity is not None and record.fed_quantity != record.quantity:
            report.add(
                "UNIT_MISMATCH",
                "The charging feed carried another quantity than the network recorded: a unit "
                "of measure slipped",
                usageId=record.id,
                networkQuantity=record.quantity,
                networkUnit=record.unit,
                fedQuantity=record.fed_quantity,
                fedUnit=record.unit,
            )
        if not record.granted_quantity:
            continue
        key = rating.identity_key(
            rating.NetworkUsage(
                network_event_id=record.id,
                partner_id=partner.id,
                service_id=record.service_id,
                msisdn=record.msisdn,
                usage_type=record.usage_type,
                event_time=record.usage_date,
                quantity=record.granted_quantity,
                unit=record.unit,
            ),
            partner.agreement_id,
        )
        keyed[key] = record
    settled = _settled(conn, list(keyed))
    unrated = set(
        conn.execute(
            select(rating.unrated_usage.c.id).where(rating.unrated_usage.c.partner_id == partner.id)
        ).scalars()
    )
    for key, record in keyed.items():
        entry = settled.get(key)
        if entry is None:
            report.add(
                "USAGE_NOT_RATED" if key in unrated else "USAGE_NOT_SETTLED",
                "No agreement was in force at the usage's time: it was never charged"
                if key in unrated
                else "The network carried usage the partner was never charged for",
                usageId=record.id,
                usageDate=isoformat(record.usage_date),
                usageType=record.usage_type,
                quantity=record.granted_quantity,
            )
        elif int(entry.quantity) != int(record.granted_quantity):
            report.add(
                "QUANTITY_MISMATCH",
                "The partner was charged another quantity than the network carried",
                usageId=record.id,
                networkQuantity=record.granted_quantity,
                chargedQuantity=int(entry.quantity),
            )
    version = agreements.in_force(conn, partner.id, now)
    timeout = version.session_timeout_s if version is not None else 86400.0
    stale = network_usage.open_sessions(conn, partner.id, now - timeout)
    for session in stale:
        report.add(
            "MISSING_STOP",
            "A data session started and its STOP record never came: the usage was never charged",
            sessionId=session.id,
            serviceId=session.service_id,
            msisdn=session.msisdn,
            startedAt=isoformat(session.started_at),
            visitedMcc=session.visited_mcc,
        )
    latest = daily.latest_revisions(conn, partner.id)
    days = sorted(day for day in latest if period_id is None or day.startswith(period_id))
    for day in days:
        published = daily.get_summary(
            conn, partner.id, daily.summary_id(partner.id, day, latest[day])
        )
        actual = daily.aggregate(conn, partner.id, day)["records"]
        if int(published.records) != actual:
            report.add(
                "SUMMARY_OUT_OF_DATE",
                "The day's latest published summary does not count every usage rated for it",
                usageDate=day,
                summaryId=published.id,
                publishedRecords=int(published.records),
                ratedRecords=actual,
            )
    duplicates = conn.execute(
        select(func.coalesce(func.sum(rating.usage_days.c.duplicates), 0)).where(
            rating.usage_days.c.partner_id == partner.id
        )
    ).scalar_one()
    report.compared = {
        "networkRecords": len(records),
        "settledRecords": len(settled),
        "openSessions": len(stale),
        "summaries": len(days),
        "duplicatesDropped": int(duplicates),
    }
    return report


# Built once and run with bound values: see simulators/core/store.py.
_QUANTITIES_OF_KEYS = select(ledger.ledger.c.idempotency_key, ledger.ledger.c.quantity).where(
    ledger.ledger.c.idempotency_key.in_(bindparam("keys", expanding=True))
)


def _settled(conn: Connection, keys: Sequence[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        for row in conn.execute(_QUANTITIES_OF_KEYS, {"keys": chunk}):
            found[row.idempotency_key] = row
    return found


def _closed(conn: Connection, partner_id: str, period_id: str | None) -> list[Any]:
    query = select(ledger.periods).where(
        ledger.periods.c.partner_id == partner_id,
        ledger.periods.c.status == ledger.PERIOD_CLOSED,
    )
    if period_id:
        query = query.where(ledger.periods.c.period_id == period_id)
    return list(conn.execute(query.order_by(ledger.periods.c.period_id)).all())


def _line_key(line: dict[str, Any]) -> tuple[str, str, str, str]:
    return (line["kind"], line.get("usageType") or "", line["servicePeriod"], line["entryType"])


def settlement_report(
    conn: Connection, partner: partners.WholesalePartner, period_id: str | None
) -> Report:
    report = Report()
    periods = _closed(conn, partner.id, period_id)
    compared = {"periods": len(periods), "ledgerEntries": 0, "statementLines": 0, "invoices": 0}
    for period in periods:
        lines, total, count = settlement.statement_lines(conn, partner.id, period.period_id)
        compared["ledgerEntries"] += count
        statement = select_equal(
            conn, settlement.statements, partner_id=partner.id, period_id=period.period_id
        ).first()
        if statement is None:
            report.add(
                "STATEMENT_MISSING",
                "The period is closed and has no statement",
                periodId=period.period_id,
            )
            continue
        compared["statementLines"] += len(statement.lines)
        stored = {_line_key(line): line for line in statement.lines}
        derived = {_line_key(line): line for line in lines}
        for key in sorted(set(stored) | set(derived)):
            ours, theirs = derived.get(key), stored.get(key)
            if ours is None or theirs is None or ours["amountCents"] != theirs["amountCents"]:
                report.add(
                    "STATEMENT_LINE_MISMATCH",
                    "A statement line is not what the ledger entries of the period add up to",
                    periodId=period.period_id,
                    statementId=statement.id,
                    kind=key[0],
                    usageType=key[1] or None,
                    servicePeriod=key[2],
                    entryType=key[3],
                    ledgerCents=None if ours is None else ours["amountCents"],
                    statementCents=None if theirs is None else theirs["amountCents"],
                )
        late = conn.execute(
            select(ledger.ledger.c.id, ledger.ledger.c.processing_time)
            .where(
                ledger.ledger.c.partner_id == partner.id,
                ledger.ledger.c.period_id == period.period_id,
                ledger.ledger.c.processing_time > statement.created_at,
            )
            .order_by(ledger.ledger.c.id)
            .limit(20)
        ).all()
        for entry in late:
            report.add(
                "ENTRY_AFTER_CLOSE",
                "A ledger entry landed in the period after its statement was made",
                periodId=period.period_id,
                entryId=str(entry.id),
                postedAt=isoformat(entry.processing_time),
            )
        line_total = sum(int(line["amountCents"]) for line in statement.lines)
        if line_total != int(statement.total_cents):
            report.add(
                "STATEMENT_TOTAL_MISMATCH",
                "The statement's total is not the sum of its lines",
                periodId=period.period_id,
                statementId=statement.id,
                linesCents=line_total,
                totalCents=int(statement.total_cents),
            )
        invoice = select_equal(
            conn, settlement.invoices, partner_id=partner.id, period_id=period.period_id
        ).first()
        if invoice is None:
            report.add(
                "INVOICE_MISSING",
                "The period's statement was never invoiced",
                periodId=period.period_id,
                statementId=statement.id,
            )
            continue
        compared["invoices"] += 1
        if int(invoice.amount_cents) != int(statement.total_cents):
            report.add(
                "INVOICE_AMOUNT_MISMATCH",
                "The invoice does not bill the statement's total",
                periodId=period.period_id,
                invoiceNumber=invoice.number,
                invoiceCents=int(invoice.amount_cents),
                statementCents=int(statement.total_cents),
            )
        if total != int(statement.total_cents):
            report.add(
                "LEDGER_TOTAL_MISMATCH",
                "The period's ledger entries no longer add up to the statement's total",
                periodId=period.period_id,
                ledgerCents=total,
                statementCents=int(statement.total_cents),
            )
    report.compared = compared
    return report


def sla_report(
    conn: Connection, partner: partners.WholesalePartner, period_id: str | None
) -> Report:
    report = Report()
    periods = _closed(conn, partner.id, period_id)
    outage_count = 0
    for period in periods:
        start, end = agreements.month_bounds(period.period_id)
        version = agreements.in_force(conn, partner.id, end - 0.001)
        if version is None:
            continue
        expected, percent, rate, outage_ids = settlement.expected_sla_credit(
            conn, partner.id, period.period_id, version
        )
        outage_count += len(outage_ids)
        posted = settlement.sla_credits_posted(conn, partner.id, period.period_id)
        if posted != expected:
            report.add(
                "SLA_CREDIT_MISSING" if posted > expected else "SLA_CREDIT_EXCESS",
                f"Measured availability {percent}% (target {version.availability_target}%) "
                f"earns a credit of {rate} of the per-SIM fees; the credits posted for the "
                "period differ",
                periodId=period.period_id,
                availabilityPercent=str(percent),
                outageIds=outage_ids,
                expectedCredit=agreements.micros_text(expected),
                postedCredit=agreements.micros_text(posted),
                evidenceRef=settlement.sla_evidence(partner.id, period.period_id),
            )
    report.compared = {"periods": len(periods), "outages": outage_count}
    return report


def run(
    conn: Connection,
    *,
    partner_id: str,
    report_type: str,
    period_id: str | None,
    view: dict[str, list[Any]],
    now: float,
    requested_by: str,
) -> Any:
    """Compute one report and keep it."""
    partner = partners.get(conn, partner_id)
    if report_type == "order":
        report = order_report(conn, partner, view, now)
    elif report_type == "service":
        report = service_report(conn, partner, view)
    elif report_type == "resource":
        report = resource_report(conn, partner, view)
    elif report_type == "usage":
        report = usage_report(conn, partner, period_id, now)
    elif report_type == "settlement":
        report = settlement_report(conn, partner, period_id)
    else:
        report = sla_report(conn, partner, period_id)
    run_id = f"rec-{uuid.uuid4().hex[:24]}"
    conn.execute(
        reconciliation_runs.insert(),
        {
            "id": run_id,
            "partner_id": partner_id,
            "type": report_type,
            "period_id": period_id,
            "created_at": now,
            "requested_by": requested_by,
            "compared": report.compared,
            "breaks": report.breaks,
        },
    )
    return get_run(conn, partner_id, run_id)


def get_run(conn: Connection, partner_id: str, run_id: str) -> Any:
    row = partner_row(conn, reconciliation_runs, run_id, partner_id)
    if row is None:
        raise errors.ReconciliationNotFound(f"No reconciliation run {run_id}")
    return row


def run_json(row: Any, base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "href": f"{base_url}/v1/wholesale/reconciliation/{row.id}",
        "@type": "ReconciliationReport",
        "reconciliationType": row.type,
        "partner": {"id": row.partner_id},
        "runDate": isoformat(row.created_at),
        "status": "breaks" if row.breaks else "clean",
        "compared": dict(row.compared),
        "breaks": list(row.breaks),
    }
    if row.period_id:
        body["periodId"] = row.period_id
    return body
