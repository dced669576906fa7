"""Settlement periods, statements and wholesale invoices; payments, the suspension an
unpaid invoice causes, network outages and the SLA credits they earn, revenue
declarations and manual adjustments (maker and a different checker).

Closing a period (explicitly, by the MNO's settlement staff, once the month has ended and
every earlier month is closed) posts the month's per-SIM fees and its SLA credit, freezes
the statement (the period's ledger entries in lines, each line rounded half-up to the cent
once) and issues the invoice for the statement's total. From then on nothing lands in that
period: a late record, a dispute credit or a correction lands in the next open one.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    select,
)

from simulators.core import audit
from simulators.core.clock import isoformat
from simulators.core.store import (
    count_and_page,
    equal_to,
    insert_ignoring_conflicts,
    partner_row,
    role_table,
    select_equal,
    update_equal,
)

from . import agreements, errors, events, fees, ledger, model, partners, suspension
from .agreements import (
    MICROS,
    AgreementVersion,
    cents_text,
    month_bounds,
    round_to_cents,
    to_micros,
)

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime
    from simulators.core.tasks import Task

ROLE = "mno"
INVOICE_DUE = "mno.settlement.invoice_due"
DAY_S = 86400.0

ISSUED = "issued"
PARTIALLY_PAID = "partiallyPaid"
PAID = "paid"
# A statement whose total is nothing or a credit: the invoice is issued with nothing due.
SETTLED = "settled"
UNPAID = (ISSUED, PARTIALLY_PAID)

PENDING_APPROVAL = "pendingApproval"
APPROVED = "approved"
REJECTED = "rejected"

statements = role_table(
    ROLE,
    "mno_settlement_statement",
    Column("id", String(100), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("period_id", String(7), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("lines", JSON, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("partner_id", "period_id", name="uq_mno_statement_period"),
)

invoices = role_table(
    ROLE,
    "mno_wholesale_invoice",
    Column("id", String(40), primary_key=True),
    Column("number", String(20), nullable=False, unique=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("period_id", String(7), nullable=False),
    Column("statement_id", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("paid_cents", BigInteger, nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("status", String(16), nullable=False),
    UniqueConstraint("partner_id", "period_id", name="uq_mno_invoice_period"),
)

payments = role_table(
    ROLE,
    "mno_wholesale_payment",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False),
    Column("invoice_id", String(40), nullable=False, index=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("recorded_by", String(80), nullable=False),
    UniqueConstraint("partner_id", "reference", name="uq_mno_payment_reference"),
)

outages = role_table(
    ROLE,
    "mno_network_outage",
    Column("id", String(40), primary_key=True),
    # None: every partner of the network was affected.
    Column("partner_id", String(64), nullable=True, index=True),
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=False),
    Column("category", String(32), nullable=False),
    Column("excluded_maintenance", Boolean, nullable=False),
    Column("description", Text, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Column("recorded_by", String(80), nullable=False),
)

adjustments = role_table(
    ROLE,
    "mno_manual_adjustment",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("amount_micros", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence_ref", String(120), nullable=False),
    Column("status", String(16), nullable=False),
    Column("maker", String(80), nullable=False),
    Column("checker", String(80), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("decided_at", Float, nullable=True),
    Column("entry_id", BigInteger, nullable=True),
)

revenue_declarations = role_table(
    ROLE,
    "mno_revenue_declaration",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("period_id", String(7), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("net_revenue_micros", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("declared_at", Float, nullable=False),
    Column("entry_id", BigInteger, nullable=False),
    UniqueConstraint("partner_id", "period_id", "sequence", name="uq_mno_revenue_sequence"),
)

# Built once and run with bound values: see simulators/core/store.py.
_ledger = ledger.ledger
_STATEMENT_LINES = (
    select(
        _ledger.c.kind,
        _ledger.c.usage_type,
        _ledger.c.service_period,
        _ledger.c.entry_type,
        _ledger.c.unit,
        func.count(),
        func.sum(_ledger.c.quantity),
        func.sum(_ledger.c.amount_micros),
    )
    .where(
        _ledger.c.partner_id == bindparam("partner_id"),
        _ledger.c.period_id == bindparam("period_id"),
    )
    .group_by(
        _ledger.c.kind,
        _ledger.c.usage_type,
        _ledger.c.service_period,
        _ledger.c.entry_type,
        _ledger.c.unit,
    )
)
_MONTHLY_FEES = select(func.coalesce(func.sum(_ledger.c.amount_micros), 0)).where(
    _ledger.c.partner_id == bindparam("partner_id"),
    _ledger.c.service_period == bindparam("period_id"),
    _ledger.c.kind == ledger.MONTHLY_FEE,
)
_SLA_CREDITS = select(func.coalesce(func.sum(_ledger.c.amount_micros), 0)).where(
    _ledger.c.partner_id == bindparam("partner_id"),
    _ledger.c.kind != ledger.USAGE,
    _ledger.c.evidence_ref == bindparam("evidence_ref"),
)
_OUTAGES_OVERLAPPING = (
    select(outages)
    .where(
        (outages.c.partner_id == bindparam("partner_id")) | outages.c.partner_id.is_(None),
        outages.c.start < bindparam("until"),
        outages.c.end > bindparam("since"),
        outages.c.excluded_maintenance.is_(False),
    )
    .order_by(outages.c.start, outages.c.id)
)
_PERIOD = select(ledger.periods).where(
    ledger.periods.c.partner_id == bindparam("partner_id"),
    ledger.periods.c.period_id == bindparam("period_id"),
)
_EARLIER_OPEN_PERIOD = (
    select(ledger.periods.c.period_id)
    .where(
        ledger.periods.c.partner_id == bindparam("partner_id"),
        ledger.periods.c.status == ledger.PERIOD_OPEN,
        ledger.periods.c.period_id < bindparam("period_id"),
    )
    .order_by(ledger.periods.c.period_id)
)
_LINES_LIVE_IN = (
    select(model.services.c.id, model.services.c.start_date)
    .where(
        model.services.c.mvno_id == bindparam("mvno_id"),
        model.services.c.start_date < bindparam("until"),
        model.services.c.end_date.is_(None) | (model.services.c.end_date >= bindparam("since")),
    )
    .order_by(model.services.c.pk)
)
_INVOICES_NUMBERED = (
    select(func.count()).select_from(invoices).where(invoices.c.number.like(bindparam("pattern")))
)
_OVERDUE_INVOICES = (
    select(invoices.c.id, invoices.c.amount_cents, invoices.c.paid_cents)
    .where(
        invoices.c.partner_id == bindparam("partner_id"),
        invoices.c.status.in_(UNPAID),
        invoices.c.due_at <= bindparam("now"),
    )
    .order_by(invoices.c.due_at)
)
_LATEST_DECLARATION = (
    select(revenue_declarations)
    .where(
        revenue_declarations.c.partner_id == bindparam("partner_id"),
        revenue_declarations.c.period_id == bindparam("period_id"),
    )
    .order_by(revenue_declarations.c.sequence.desc())
    .limit(1)
)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _latest_version(conn: Connection, partner_id: str, at: float) -> AgreementVersion:
    version = agreements.in_force(conn, partner_id, at)
    if version is None:
        raise errors.NoAgreementInForce(
            f"No agreement of {partner_id} is in force at {isoformat(at)}"
        )
    return version


# --- statements -------------------------------------------------------------------------------

_KIND_ORDER = {kind: index for index, kind in enumerate(ledger.KINDS)}
_TYPE_ORDER = {entry_type: index for index, entry_type in enumerate(ledger.ENTRY_TYPES)}


def statement_lines(
    conn: Connection, partner_id: str, period_id: str
) -> tuple[list[dict[str, Any]], int, int]:
    """The period's entries in statement lines (kind, usage type, service period, entry
    type), each rounded half-up to the cent; (lines, total in cents, entry count)."""
    rows = conn.execute(_STATEMENT_LINES, {"partner_id": partner_id, "period_id": period_id}).all()
    lines = []
    for kind, usage_type, service_period, entry_type, unit, count, quantity, micros in rows:
        line: dict[str, Any] = {
            "kind": kind,
            "servicePeriod": service_period,
            "entryType": entry_type,
            "entries": int(count),
            "amountMicros": int(micros or 0),
            "amountCents": round_to_cents(int(micros or 0)),
        }
        if usage_type is not None:
            line["usageType"] = usage_type
        if quantity is not None:
            line["quantity"] = int(quantity)
            line["unit"] = unit
        lines.append(line)
    lines.sort(
        key=lambda line: (
            _KIND_ORDER[line["kind"]],
            line.get("usageType") or "",
            line["servicePeriod"],
            _TYPE_ORDER[line["entryType"]],
        )
    )
    total = sum(line["amountCents"] for line in lines)
    return lines, total, sum(line["entries"] for line in lines)


def get_statement(conn: Connection, partner_id: str, statement_id: str) -> Any:
    row = partner_row(conn, statements, statement_id, partner_id)
    if row is None:
        raise errors.StatementNotFound(f"No statement {statement_id}")
    return row


# --- SLA --------------------------------------------------------------------------------------


def availability(
    conn: Connection, partner_id: str, period_id: str
) -> tuple[Decimal, list[str], float]:
    """The partner's measured availability in a period: (percent, outage ids, seconds down).
    Outages affecting every partner count; maintenance windows excluded from the SLA do
    not; overlapping outages count once."""
    start, end = month_bounds(period_id)
    rows = conn.execute(
        _OUTAGES_OVERLAPPING, {"partner_id": partner_id, "since": start, "until": end}
    ).all()
    spans = sorted((max(row.start, start), min(row.end, end)) for row in rows)
    down = 0.0
    cursor = start
    for span_start, span_end in spans:
        span_start = max(span_start, cursor)
        if span_end > span_start:
            down += span_end - span_start
            cursor = span_end
    length = end - start
    percent = (Decimal(1) - Decimal(str(down)) / Decimal(str(length))) * 100
    return percent.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP), [r.id for r in rows], down


def sla_evidence(partner_id: str, period_id: str) -> str:
    return f"sla:{partner_id}:{period_id}"


def monthly_fees_of(conn: Connection, partner_id: str, period_id: str) -> int:
    """The per-SIM fees the period's service earned, net of any reversal (micro-units)."""
    found = conn.execute(_MONTHLY_FEES, {"partner_id": partner_id, "period_id": period_id})
    return int(found.scalar_one())


def expected_sla_credit(
    conn: Connection, partner_id: str, period_id: str, version: AgreementVersion
) -> tuple[int, Decimal, Decimal, list[str]]:
    """(credit in micro-units, negative; availability; credit rate; outage ids)."""
    percent, outage_ids, _down = availability(conn, partner_id, period_id)
    rate = version.sla_credit_rate(percent)
    eligible = monthly_fees_of(conn, partner_id, period_id)
    credit = -int((Decimal(eligible) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return credit, percent, rate, outage_ids


def sla_credits_posted(conn: Connection, partner_id: str, period_id: str) -> int:
    found = conn.execute(
        _SLA_CREDITS,
        {"partner_id": partner_id, "evidence_ref": sla_evidence(partner_id, period_id)},
    )
    return int(found.scalar_one())


def record_outage(
    conn: Connection, *, body: dict[str, Any], start: float, end: float, now: float, actor: str
) -> Any:
    partner_id = body.get("partnerId")
    if partner_id is not None:
        partners.get(conn, partner_id)
    if end <= start:
        raise errors.InvalidOutage("end must be after start", field="end")
    if end > now:
        raise errors.InvalidOutage(
            "An outage is recorded once it has ended: end is in the future", field="end"
        )
    outage_id = _new_id("out")
    conn.execute(
        outages.insert(),
        {
            "id": outage_id,
            "partner_id": partner_id,
            "start": start,
            "end": end,
            "category": body["category"],
            "excluded_maintenance": bool(body.get("excludedMaintenance", False)),
            "description": body["description"],
            "recorded_at": now,
            "recorded_by": actor,
        },
    )
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=actor,
        partner_id=partner_id,
        action="outage.recorded",
        entity_type="outage",
        entity_id=outage_id,
        correlation_id=None,
        details={"start": isoformat(start), "end": isoformat(end)},
    )
    return select_equal(conn, outages, id=outage_id).one()


# --- closing a period ---------------------------------------------------------------------


def _lock_period(conn: Connection, partner_id: str, period_id: str) -> Any:
    start, end = month_bounds(period_id)
    insert_ignoring_conflicts(
        conn,
        ledger.periods,
        [
            {
                "partner_id": partner_id,
                "period_id": period_id,
                "start": start,
                "end": end,
                "status": ledger.PERIOD_OPEN,
            }
        ],
        ["partner_id", "period_id"],
    )
    query = ledger.locking(conn, _PERIOD, shared=False)
    return conn.execute(query, {"partner_id": partner_id, "period_id": period_id}).one()


def _monthly_fee_entries(
    conn: Connection,
    partner: partners.WholesalePartner,
    period_id: str,
    book: agreements.VersionBook,
) -> list[ledger.Entry]:
    """One per-SIM fee for every partner line live at any moment of the period."""
    start, end = month_bounds(period_id)
    rows = conn.execute(
        _LINES_LIVE_IN, {"mvno_id": partner.mvne_partner_id, "since": start, "until": end}
    ).all()
    entries = []
    for row in rows:
        event_time = max(start, float(row.start_date))
        version = book.in_force(partner.id, event_time)
        if version is None:
            continue
        entries.append(
            fees.monthly_fee_entry(
                partner=partner,
                version=version,
                period_id=period_id,
                service_id=row.id,
                event_time=event_time,
            )
        )
    return entries


def close_period(
    runtime: Runtime,
    conn: Connection,
    *,
    partner_id: str,
    period_id: str,
    now: float,
    actor: str,
    correlation_id: str | None,
) -> tuple[Any, Any, Any]:
    """Close one month of one partner: fees, SLA credit, statement, invoice."""
    partner = partners.get(conn, partner_id)
    start, end = month_bounds(period_id)
    if now < end:
        raise errors.PeriodNotEnded(
            f"Period {period_id} ends at {isoformat(end)}; it cannot close before",
            periodId=period_id,
        )
    earlier = conn.execute(
        _EARLIER_OPEN_PERIOD, {"partner_id": partner_id, "period_id": period_id}
    ).scalar()
    if earlier is not None:
        raise errors.EarlierPeriodOpen(
            f"Period {earlier} is still open; periods close in order", periodId=earlier
        )
    period = _lock_period(conn, partner_id, period_id)
    if period.status == ledger.PERIOD_CLOSED:
        raise errors.PeriodClosed(f"Period {period_id} is already closed", periodId=period_id)
    book = agreements.load_book(conn, [partner_id])
    ledger.post(conn, _monthly_fee_entries(conn, partner, period_id, book), now=now)
    sla_version = book.in_force(partner_id, end - 0.001)
    if sla_version is not None:
        credit, percent, rate, outage_ids = expected_sla_credit(
            conn, partner_id, period_id, sla_version
        )
        if credit:
            ledger.post(
                conn,
                [
                    ledger.Entry(
                        partner_id=partner_id,
                        account_id=partner.account_id,
                        kind=ledger.SLA_CREDIT,
                        entry_type=ledger.CREDIT,
                        source=ledger.SOURCE_SETTLEMENT,
                        event_time=end - 0.001,
                        amount_micros=credit,
                        currency=sla_version.currency,
                        idempotency_key=sla_evidence(partner_id, period_id),
                        evidence_ref=sla_evidence(partner_id, period_id),
                        agreement_id=sla_version.agreement_id,
                        agreement_version=sla_version.version,
                        memo=(
                            f"availability {percent}% below {sla_version.availability_target}%:"
                            f" {rate} of the per-SIM fees; outages {', '.join(outage_ids)}"
                        )[:300],
                        correlation_id=correlation_id,
                    )
                ],
                now=now,
            )
    update_equal(
        conn,
        ledger.periods,
        {"pk": period.pk},
        status=ledger.PERIOD_CLOSED,
        closed_at=now,
        closed_by=actor,
    )
    terms = _latest_version(conn, partner_id, now)
    lines, total, count = statement_lines(conn, partner_id, period_id)
    statement_id = f"st-{partner_id}-{period_id}"
    conn.execute(
        statements.insert(),
        {
            "id": statement_id,
            "partner_id": partner_id,
            "period_id": period_id,
            "currency": terms.currency,
            "lines": lines,
            "total_cents": total,
            "entries": count,
            "created_at": now,
        },
    )
    invoice_id = _new_id("inv")
    due = now + terms.payment_terms_days * DAY_S
    conn.execute(
        invoices.insert(),
        {
            "id": invoice_id,
            "number": _next_invoice_number(conn, now),
            "partner_id": partner_id,
            "period_id": period_id,
            "statement_id": statement_id,
            "currency": terms.currency,
            "amount_cents": total,
            "paid_cents": 0,
            "issued_at": now,
            "due_at": due,
            "status": ISSUED if total > 0 else SETTLED,
        },
    )
    if total > 0:
        runtime.tasks.schedule(
            conn,
            role=ROLE,
            kind=INVOICE_DUE,
            payload={"partnerId": partner_id, "invoiceId": invoice_id},
            due_at=due,
            correlation_id=correlation_id,
        )
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=actor,
        partner_id=partner_id,
        action="settlementPeriod.closed",
        entity_type="settlementPeriod",
        entity_id=f"{partner_id}:{period_id}",
        correlation_id=correlation_id,
        details={"statement": statement_id, "invoice": invoice_id, "totalCents": total},
    )
    invoice = get_invoice(conn, partner_id, invoice_id)
    events.publish(
        runtime,
        conn,
        partner_id=partner_id,
        event_type=events.INVOICE_CREATE,
        resource_name="wholesaleInvoice",
        resource=invoice_json(invoice, events.public_base(runtime)),
        correlation_id=correlation_id,
        now=now,
    )
    period = ledger.period_row(conn, partner_id, period_id)
    return period, get_statement(conn, partner_id, statement_id), invoice


def _next_invoice_number(conn: Connection, now: float) -> str:
    year = isoformat(now)[:4]
    prefix = f"WI-{year}-"
    issued = conn.execute(_INVOICES_NUMBERED, {"pattern": f"{prefix}%"}).scalar_one()
    return f"{prefix}{int(issued) + 1:06d}"


# --- invoices, payments and suspension ------------------------------------------------------


def get_invoice(conn: Connection, partner_id: str, invoice_id: str) -> Any:
    row = select_equal(conn, invoices, id=invoice_id, partner_id=partner_id).first()
    if row is None:
        raise errors.InvoiceNotFound(f"No wholesale invoice {invoice_id}")
    return row


def find_invoice(conn: Connection, invoice_id: str) -> Any:
    row = select_equal(conn, invoices, id=invoice_id).first()
    if row is None:
        raise errors.InvoiceNotFound(f"No wholesale invoice {invoice_id}")
    return row


def list_invoices(
    conn: Connection, partner_id: str, *, status: str | None, offset: int, limit: int
) -> tuple[int, list[Any]]:
    conditions = [invoices.c.partner_id == partner_id, *equal_to(invoices, status=status)]
    return count_and_page(conn, invoices, conditions, [invoices.c.period_id], offset, limit)


def overdue(conn: Connection, partner_id: str, now: float) -> tuple[int, list[str]]:
    """What the partner owes past due dates, in cents, and on which invoices."""
    rows = conn.execute(_OVERDUE_INVOICES, {"partner_id": partner_id, "now": now}).all()
    return sum(int(r.amount_cents) - int(r.paid_cents) for r in rows), [r.id for r in rows]


def evaluate_suspension(
    runtime: Runtime, conn: Connection, partner_id: str, now: float, correlation_id: str | None
) -> suspension.Suspension | None:
    """Suspend new activations when the overdue amount exceeds the agreement's threshold;
    lift the suspension once it no longer does. Returns the suspension in force."""
    partner = partners.get(conn, partner_id)
    version = _latest_version(conn, partner_id, now)
    owed_cents, invoice_ids = overdue(conn, partner_id, now)
    owed = owed_cents * (MICROS // 100)
    current = suspension.current(conn, partner_id)
    if owed > version.unpaid_threshold_micros and current is None:
        current = suspension.suspend(
            conn,
            partner_id=partner_id,
            mvne_partner_id=partner.mvne_partner_id,
            overdue_micros=owed,
            threshold_micros=version.unpaid_threshold_micros,
            currency=version.currency,
            invoice_ids=invoice_ids,
            grace_s=version.in_flight_grace_s,
            now=now,
            correlation_id=correlation_id,
        )
        _suspension_event(runtime, conn, current, now, correlation_id)
    elif owed <= version.unpaid_threshold_micros and current is not None:
        suspension.lift(
            conn,
            current,
            mvne_partner_id=partner.mvne_partner_id,
            reason="paid",
            now=now,
            correlation_id=correlation_id,
        )
        lifted = next(s for s in suspension.history(conn, partner_id) if s.id == current.id)
        _suspension_event(runtime, conn, lifted, now, correlation_id)
        current = None
    return current


def _suspension_event(
    runtime: Runtime,
    conn: Connection,
    found: suspension.Suspension,
    now: float,
    correlation_id: str | None,
) -> None:
    events.publish(
        runtime,
        conn,
        partner_id=found.partner_id,
        event_type=events.SUSPENSION_STATE_CHANGE,
        resource_name="activationSuspension",
        resource=suspension_json(found),
        correlation_id=correlation_id,
        now=now,
    )


def run_invoice_due(runtime: Runtime, task: Task) -> None:
    with runtime.store.write() as conn:
        evaluate_suspension(
            runtime,
            conn,
            str(task.payload["partnerId"]),
            runtime.clock.now(conn),
            task.correlation_id,
        )


def record_payment(
    runtime: Runtime,
    conn: Connection,
    *,
    invoice_id: str,
    amount: str,
    currency: str,
    reference: str,
    now: float,
    actor: str,
    correlation_id: str | None,
) -> tuple[Any, Any]:
    """Apply a payment the partner made to one invoice; lift a suspension it settles."""
    invoice = find_invoice(conn, invoice_id)
    if invoice.currency != currency:
        raise errors.CurrencyMismatch(
            f"Invoice {invoice.number} is in {invoice.currency}", field="amount.units"
        )
    cents = to_micros(amount) // (MICROS // 100)
    if to_micros(amount) % (MICROS // 100):
        raise errors.InvalidAmount("A payment is in whole cents", field="amount.amount")
    if cents <= 0:
        raise errors.InvalidAmount("A payment is a positive amount", field="amount.amount")
    used = select_equal(conn, payments, partner_id=invoice.partner_id, reference=reference).first()
    if used is not None:
        raise errors.PaymentReferenceUsed(
            f"Payment reference {reference} was already recorded", field="reference"
        )
    if invoice.status not in UNPAID:
        raise errors.InvoiceNotPayable(f"Invoice {invoice.number} is {invoice.status}")
    due = int(invoice.amount_cents) - int(invoice.paid_cents)
    if cents > due:
        raise errors.PaymentExceedsDue(
            f"Invoice {invoice.number} has {cents_text(due)} {currency} due",
            field="amount.amount",
        )
    payment_id = _new_id("pay")
    conn.execute(
        payments.insert(),
        {
            "id": payment_id,
            "partner_id": invoice.partner_id,
            "invoice_id": invoice.id,
            "amount_cents": cents,
            "currency": currency,
            "reference": reference,
            "received_at": now,
            "recorded_by": actor,
        },
    )
    paid = int(invoice.paid_cents) + cents
    status = PAID if paid == int(invoice.amount_cents) else PARTIALLY_PAID
    update_equal(conn, invoices, {"id": invoice.id}, paid_cents=paid, status=status)
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=actor,
        partner_id=invoice.partner_id,
        action="invoice.paymentRecorded",
        entity_type="wholesaleInvoice",
        entity_id=invoice.id,
        correlation_id=correlation_id,
        details={"payment": payment_id, "amountCents": cents, "status": status},
    )
    updated = find_invoice(conn, invoice.id)
    events.publish(
        runtime,
        conn,
        partner_id=invoice.partner_id,
        event_type=events.INVOICE_STATE_CHANGE,
        resource_name="wholesaleInvoice",
        resource=invoice_json(updated, events.public_base(runtime)),
        correlation_id=correlation_id,
        now=now,
    )
    evaluate_suspension(runtime, conn, invoice.partner_id, now, correlation_id)
    return select_equal(conn, payments, id=payment_id).one(), updated


# --- revenue share ----------------------------------------------------------------------------


def declare_revenue(
    conn: Connection,
    *,
    partner_id: str,
    period_id: str,
    net_revenue: str,
    currency: str,
    now: float,
    correlation_id: str | None,
) -> Any:
    """The partner declares its net retail revenue of a month; the agreement's share of it
    is owed. A new declaration for the same month reverses the earlier share and posts the
    corrected one."""
    partner = partners.get(conn, partner_id)
    start, end = month_bounds(period_id)
    if now < end:
        raise errors.PeriodNotEnded(
            f"Revenue of {period_id} can be declared once it has ended ({isoformat(end)})",
            field="periodId",
        )
    version = _latest_version(conn, partner_id, start)
    if currency != version.currency:
        raise errors.CurrencyMismatch(
            f"The agreement is settled in {version.currency}", field="netRevenue.units"
        )
    micros = to_micros(net_revenue)
    if micros < 0:
        raise errors.InvalidAmount("Net revenue cannot be negative", field="netRevenue.amount")
    share = int(
        (Decimal(micros) * version.revenue_share_rate).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    )
    previous = conn.execute(
        _LATEST_DECLARATION, {"partner_id": partner_id, "period_id": period_id}
    ).first()
    sequence = 1 if previous is None else int(previous.sequence) + 1
    declaration_id = _new_id("rev")
    if previous is not None:
        ledger.reverse(
            conn,
            ledger.get_entry(conn, partner_id, int(previous.entry_id)),
            idempotency_key=f"revenue:{partner_id}:{period_id}:{sequence}:reversal",
            source=ledger.SOURCE_PARTNER,
            evidence_ref=declaration_id,
            now=now,
            memo=f"superseded by declaration {declaration_id}",
            correlation_id=correlation_id,
        )
    entry = ledger.post_one(
        conn,
        ledger.Entry(
            partner_id=partner_id,
            account_id=partner.account_id,
            kind=ledger.REVENUE_SHARE,
            entry_type=ledger.ORIGINAL if previous is None else ledger.CORRECTION,
            source=ledger.SOURCE_PARTNER,
            event_time=start,
            amount_micros=share,
            currency=version.currency,
            idempotency_key=f"revenue:{partner_id}:{period_id}:{sequence}",
            evidence_ref=declaration_id,
            agreement_id=version.agreement_id,
            agreement_version=version.version,
            corrects_id=None if previous is None else int(previous.entry_id),
            memo=f"{version.revenue_share_rate} of declared net revenue {net_revenue} {currency}",
            correlation_id=correlation_id,
        ),
        now=now,
    )
    conn.execute(
        revenue_declarations.insert(),
        {
            "id": declaration_id,
            "partner_id": partner_id,
            "period_id": period_id,
            "sequence": sequence,
            "net_revenue_micros": micros,
            "currency": currency,
            "declared_at": now,
            "entry_id": entry.id,
        },
    )
    return select_equal(conn, revenue_declarations, id=declaration_id).one()


# --- manual adjustments (maker-checker) ----------------------------------------------------


def create_adjustment(
    conn: Connection,
    *,
    partner_id: str,
    amount: str,
    currency: str,
    reason: str,
    evidence_ref: str,
    now: float,
    maker: str,
) -> Any:
    partners.get(conn, partner_id)
    version = _latest_version(conn, partner_id, now)
    if currency != version.currency:
        raise errors.CurrencyMismatch(
            f"The agreement is settled in {version.currency}", field="amount.units"
        )
    micros = to_micros(amount)
    if micros == 0:
        raise errors.InvalidAmount("An adjustment of nothing adjusts nothing", field="amount")
    adjustment_id = _new_id("adj")
    conn.execute(
        adjustments.insert(),
        {
            "id": adjustment_id,
            "partner_id": partner_id,
            "amount_micros": micros,
            "currency": currency,
            "reason": reason,
            "evidence_ref": evidence_ref,
            "status": PENDING_APPROVAL,
            "maker": maker,
            "created_at": now,
        },
    )
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=maker,
        partner_id=partner_id,
        action="adjustment.proposed",
        entity_type="adjustment",
        entity_id=adjustment_id,
        correlation_id=None,
        details={"amountMicros": micros, "evidence": evidence_ref},
    )
    return get_adjustment(conn, adjustment_id)


def get_adjustment(conn: Connection, adjustment_id: str) -> Any:
    row = select_equal(conn, adjustments, id=adjustment_id).first()
    if row is None:
        raise errors.AdjustmentNotFound(f"No adjustment {adjustment_id}")
    return row


def list_adjustments(
    conn: Connection,
    *,
    partner_id: str | None,
    status: str | None,
    offset: int,
    limit: int,
) -> tuple[int, list[Any]]:
    conditions = equal_to(adjustments, partner_id=partner_id, status=status)
    order = [adjustments.c.created_at, adjustments.c.id]
    return count_and_page(conn, adjustments, conditions, order, offset, limit)


def decide_adjustment(
    conn: Connection,
    *,
    adjustment_id: str,
    approve: bool,
    checker: str,
    now: float,
    correlation_id: str | None,
) -> Any:
    """A second person approves (posting the entry) or rejects a proposed adjustment."""
    adjustment = get_adjustment(conn, adjustment_id)
    if adjustment.status != PENDING_APPROVAL:
        raise errors.AdjustmentDecided(f"Adjustment {adjustment_id} is {adjustment.status}")
    if adjustment.maker == checker:
        raise errors.MakerCannotCheck(
            f"{checker} proposed adjustment {adjustment_id}; another person must check it"
        )
    entry_id = None
    if approve:
        partner = partners.get(conn, adjustment.partner_id)
        version = _latest_version(conn, adjustment.partner_id, now)
        entry = ledger.post_one(
            conn,
            ledger.Entry(
                partner_id=adjustment.partner_id,
                account_id=partner.account_id,
                kind=ledger.ADJUSTMENT,
                entry_type=ledger.MANUAL_ADJUSTMENT,
                source=ledger.SOURCE_OPERATIONS,
                event_time=now,
                amount_micros=int(adjustment.amount_micros),
                currency=adjustment.currency,
                idempotency_key=f"adjustment:{adjustment.id}",
                evidence_ref=adjustment.evidence_ref,
                agreement_id=version.agreement_id,
                agreement_version=version.version,
                memo=f"{adjustment.reason} (maker {adjustment.maker}, checker {checker})"[:300],
                correlation_id=correlation_id,
            ),
            now=now,
        )
        entry_id = entry.id
    update_equal(
        conn,
        adjustments,
        {"id": adjustment_id},
        status=APPROVED if approve else REJECTED,
        checker=checker,
        decided_at=now,
        entry_id=entry_id,
    )
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=checker,
        partner_id=adjustment.partner_id,
        action="adjustment.approved" if approve else "adjustment.rejected",
        entity_type="adjustment",
        entity_id=adjustment_id,
        correlation_id=correlation_id,
        details={"maker": adjustment.maker, "entry": entry_id},
    )
    return get_adjustment(conn, adjustment_id)


# --- representations ---------------------------------------------------------------------


def statement_json(row: Any, base_url: str) -> dict[str, Any]:
    currency = row.currency
    lines = []
    for line in row.lines:
        entry: dict[str, Any] = {
            "kind": line["kind"],
            "servicePeriod": line["servicePeriod"],
            "entryType": line["entryType"],
            "entries": line["entries"],
            "ledgerAmount": events.money(line["amountMicros"], currency),
            "amount": {"amount": cents_text(line["amountCents"]), "units": currency},
        }
        for name in ("usageType", "quantity", "unit"):
            if name in line:
                entry[name] = line[name]
        lines.append(entry)
    start, end = month_bounds(row.period_id)
    return {
        "id": row.id,
        "href": f"{base_url}/v1/wholesale/statement/{row.id}",
        "@type": "SettlementStatement",
        "partner": {"id": row.partner_id},
        "periodId": row.period_id,
        "settlementPeriod": {"startDateTime": isoformat(start), "endDateTime": isoformat(end)},
        "createdDate": isoformat(row.created_at),
        "ledgerEntryCount": int(row.entries),
        "line": lines,
        "total": {"amount": cents_text(int(row.total_cents)), "units": currency},
    }


def invoice_json(row: Any, base_url: str) -> dict[str, Any]:
    due = int(row.amount_cents) - int(row.paid_cents)
    return {
        "id": row.id,
        "href": f"{base_url}/v1/wholesale/invoice/{row.id}",
        "@type": "WholesaleInvoice",
        "invoiceNumber": row.number,
        "partner": {"id": row.partner_id},
        "periodId": row.period_id,
        "statement": {
            "id": row.statement_id,
            "href": f"{base_url}/v1/wholesale/statement/{row.statement_id}",
        },
        "state": row.status,
        "issueDate": isoformat(row.issued_at),
        "paymentDueDate": isoformat(row.due_at),
        "amount": {"amount": cents_text(int(row.amount_cents)), "units": row.currency},
        "amountPaid": {"amount": cents_text(int(row.paid_cents)), "units": row.currency},
        "amountDue": {"amount": cents_text(max(due, 0)), "units": row.currency},
    }


def suspension_json(found: suspension.Suspension) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": found.id,
        "partner": {"id": found.partner_id},
        "capability": suspension.ACTIVATE_SIM,
        "state": "suspended" if found.in_force else "lifted",
        "cutOff": isoformat(found.cut_off),
        "inFlightGraceSeconds": found.grace_s,
        "inFlightDeadline": isoformat(found.cut_off + found.grace_s),
        "overdue": events.money(found.overdue_micros, found.currency),
        "threshold": events.money(found.threshold_micros, found.currency),
        "invoice": [{"id": invoice_id} for invoice_id in found.invoice_ids],
    }
    if found.lifted_at is not None:
        body["liftedDate"] = isoformat(found.lifted_at)
        body["liftedBy"] = found.lifted_by
    return body
