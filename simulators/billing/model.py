"""Billing's rules: accounts, the charges ledger, bills, payments, disputes and dunning.

No web layer and no peer calls here: every function takes an open transaction
and plain values (what the MVNE and the tax engine answered arrives as data),
so tests call the rules directly. Money is kept in integer minor units; the
only rounding is the tax engine's amounts to the minor unit (`taxes.to_minor`).

The charges ledger is append-only: a correction is a new entry (an adjustment,
a credit carried forward), an issued bill is never edited, and each bill names
the entries it covers, so recomposing them gives the same bill.
"""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    select,
    text,
)

from simulators.core import audit
from simulators.core.store import (
    count_and_page,
    insert_ignoring_conflicts,
    partner_row,
    role_table,
    select_equal,
    update_equal,
)

from . import errors
from .taxes import LineTax, TaxableLine

ROLE = "billing"
DAY_S = 86400.0

PENDING, ACTIVE, REJECTED = "pending", "active", "rejected"
# Bill states (TMF678).
NEW, ON_HOLD, VALIDATED, SENT, SETTLED, PARTIALLY_PAID = (
    "new",
    "onHold",
    "validated",
    "sent",
    "settled",
    "partiallyPaid",
)
PAYABLE = (SENT, PARTIALLY_PAID)
DISPUTABLE = (SENT, PARTIALLY_PAID, SETTLED)

RECURRING, USAGE, ONE_OFF, ADJUSTMENT, CREDIT_CARRIED = (
    "recurring",
    "usage",
    "oneOff",
    "adjustment",
    "creditCarriedForward",
)
DISPUTABLE_LINES = (RECURRING, USAGE, ONE_OFF)
USAGE_ORDER = ("data", "voice", "sms")
USAGE_UNITS = {"data": "MB", "voice": "min", "sms": "msg"}

LADDER = (
    "retry",
    "reminder",
    "formalNotice",
    "restriction",
    "suspension",
    "disconnection",
    "collections",
)
STAGES = ("none", *LADDER)
# What each step orders at the MVNE (restriction and suspension both suspend: the MVNE's
# product API has one barring lever, `suspended`).
STEP_ORDERS = {"restriction": "suspended", "suspension": "suspended", "disconnection": "terminated"}

DISPUTE_CATEGORIES = ("usage", "recurring", "oneOff", "tax", "roaming")
OPEN_DISPUTE_STATES = ("open", "investigating")
DISPUTE_TRANSITIONS = {
    "open": ("investigating", "resolved", "rejected"),
    "investigating": ("resolved", "rejected"),
    "resolved": (),
    "rejected": (),
}

# Tax levels a taxable line must carry, by country of primary use; a missing one puts the
# bill on hold: the jurisdiction both billing and the tax engine assumed the other handled.
EXPECTED_LEVELS: dict[str, tuple[str, ...]] = {"US": ("state",)}
EXPECTED_LEVELS_ACCESS: dict[str, tuple[str, ...]] = {"US": ("state", "e911")}
EU_VAT_LEVELS = ("vat",)

DEFAULT_SETTINGS: dict[str, Any] = {
    # Usage is rated by the MVNE; plan fees, one-off charges are the billing vendor's. Tax
    # and roaming are nobody's by default: the two gaps the reference agreement leaves open.
    "disputeResponsibility": {
        "usage": "mvne",
        "recurring": "billingVendor",
        "oneOff": "billingVendor",
        "tax": None,
        "roaming": None,
    },
    "disputeSlaDays": 10,
    "paymentTermDays": 14,
    # Days after the payment due date (the retry 2-3 days, the reminder 5-7, ...).
    "dunningLadder": {
        "retry": 2,
        "reminder": 6,
        "formalNotice": 10,
        "restriction": 14,
        "suspension": 21,
        "disconnection": 45,
        "collections": 60,
    },
}

_OPEN = text("state IN ('pending', 'active')")

account_table = role_table(
    ROLE,
    "billing_account",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("product_id", String(64), nullable=False),
    Column("rating_type", String(10), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("credit_limit_minor", Integer, nullable=True),
    Column("customer_type", String(3), nullable=False),
    Column("tax_exemption", JSON, nullable=False),
    Column("place", JSON, nullable=False),
    Column("bill_cycle_day", Integer, nullable=False),
    Column("state", String(10), nullable=False),
    Column("state_reason", String(200), nullable=True),
    Column("dunning_stage", String(16), nullable=False),
    Column("service_status", String(12), nullable=False),
    Column("created_at", Float, nullable=False),
    Index(
        "uq_billing_account_open_product",
        "partner_id",
        "product_id",
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    ),
    Index("ix_billing_account_cycle", "partner_id", "bill_cycle_day", "state"),
)

# Append-only: bills, balances and disputes are projections of these rows.
ledger_table = role_table(
    ROLE,
    "billing_ledger",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(40), nullable=False),
    Column("partner_id", String(64), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("charge_type", String(12), nullable=True),
    Column("amount_minor", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    # The start date (YYYY-MM-DD) of the billing period whose bill carries the entry.
    Column("period", String(10), nullable=False),
    # What the entry stands for (an MVNE usage id, "recurring:<period>", ...): never twice.
    Column("source_ref", String(120), nullable=False),
    Column("description", String(200), nullable=False),
    Column("usage_type", String(8), nullable=True),
    Column("quantity", Integer, nullable=True),
    Column("posted_at", Float, nullable=False),
    Column("correlation_id", String(256), nullable=True),
    UniqueConstraint("account_id", "source_ref", name="uq_billing_ledger_source"),
    Index("ix_billing_ledger_period", "account_id", "period"),
)

bill_table = role_table(
    ROLE,
    "billing_bill",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("account_id", String(40), nullable=False, index=True),
    Column("run_id", String(40), nullable=True),
    Column("bill_no", String(20), nullable=False),
    Column("period", String(10), nullable=False),
    Column("period_start", Float, nullable=False),
    Column("period_end", Float, nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_reason", String(300), nullable=True),
    Column("bill_date", Float, nullable=False),
    Column("due_date", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("lines", JSON, nullable=False),
    Column("tax_items", JSON, nullable=False),
    Column("tax_excluded_minor", Integer, nullable=False),
    Column("tax_minor", Integer, nullable=False),
    Column("tax_included_minor", Integer, nullable=False),
    Column("amount_due_minor", Integer, nullable=False),
    Column("paid_minor", Integer, nullable=False),
    Column("tax_quote_id", String(64), nullable=True),
    Column("ledger_ids", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    # One bill per account and period, whatever happens to the run that issues it.
    UniqueConstraint("account_id", "period", name="uq_billing_bill_period"),
    UniqueConstraint("partner_id", "bill_no", name="uq_billing_bill_no"),
)

bill_counter_table = role_table(
    ROLE,
    "billing_bill_counter",
    Column("partner_id", String(64), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("last", Integer, nullable=False),
)

run_table = role_table(
    ROLE,
    "billing_run",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("bill_cycle_day", Integer, nullable=False),
    Column("period", String(10), nullable=False),
    Column("period_start", Float, nullable=False),
    Column("period_end", Float, nullable=False),
    Column("state", String(10), nullable=False),
    Column("bills_issued", Integer, nullable=False),
    Column("failures", JSON, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("completed_at", Float, nullable=True),
    UniqueConstraint("partner_id", "bill_cycle_day", "period", name="uq_billing_run_cycle"),
)

payment_table = role_table(
    ROLE,
    "billing_payment",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("partner_id", String(64), nullable=False),
    Column("bill_id", String(40), nullable=False, index=True),
    Column("account_id", String(40), nullable=False),
    Column("amount_minor", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("paid_at", Float, nullable=False),
    UniqueConstraint("partner_id", "reference", name="uq_billing_payment_reference"),
)

dispute_table = role_table(
    ROLE,
    "billing_dispute",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("bill_id", String(40), nullable=False),
    Column("account_id", String(40), nullable=False),
    Column("line_id", String(20), nullable=False),
    Column("category", String(12), nullable=False),
    Column("reason", Text, nullable=False),
    Column("raised_by", String(10), nullable=False),
    Column("state", String(16), nullable=False),
    Column("owner", String(16), nullable=True),
    Column("disputed_minor", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("adjustment_entry_id", Integer, nullable=True),
    Column("adjustment_minor", Integer, nullable=True),
    Column("resolution", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("sla_due_at", Float, nullable=False),
    Column("resolved_at", Float, nullable=True),
)

settings_table = role_table(
    ROLE,
    "billing_settings",
    Column("partner_id", String(64), primary_key=True),
    Column("settings", JSON, nullable=False),
)

dunning_table = role_table(
    ROLE,
    "billing_dunning_action",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("account_id", String(40), nullable=False, index=True),
    Column("bill_id", String(40), nullable=False),
    Column("step", String(16), nullable=False),
    Column("taken_at", Float, nullable=False),
    Column("mvne_order", String(20), nullable=False),
    # A step retried after a crash is taken once; a restore is per payment.
    Column("dedupe", String(80), nullable=False),
    UniqueConstraint("bill_id", "dedupe", name="uq_billing_dunning_step"),
)

# Built once and run with bound values: building a statement costs several times what
# SQLite takes to run it (see simulators/core/store.py). Every value bound here is never
# None (an `= NULL` would match nothing where `IS NULL` matches).
_SETTINGS_OF = select(settings_table.c.settings).where(
    settings_table.c.partner_id == bindparam("partner_id")
)
_OPEN_ACCOUNT_OF_PRODUCT = select(account_table.c.id).where(
    account_table.c.partner_id == bindparam("partner_id"),
    account_table.c.product_id == bindparam("product_id"),
    account_table.c.state.in_((PENDING, ACTIVE)),
)
_ACCOUNTS_TO_BILL = (
    select(account_table)
    .where(
        account_table.c.partner_id == bindparam("partner_id"),
        account_table.c.bill_cycle_day == bindparam("bill_cycle_day"),
        account_table.c.state == ACTIVE,
        account_table.c.created_at < bindparam("period_end"),
        account_table.c.id.not_in(
            select(bill_table.c.account_id).where(bill_table.c.period == bindparam("period"))
        ),
    )
    .order_by(account_table.c.pk)
)
_ANY_ACTIVE_ACCOUNT = (
    select(account_table.c.id)
    .where(
        account_table.c.partner_id == bindparam("partner_id"),
        account_table.c.bill_cycle_day == bindparam("bill_cycle_day"),
        account_table.c.state == ACTIVE,
    )
    .limit(1)
)
# A bill on hold is issued and owed all the same: it counts towards the credit limit.
OWED = (*PAYABLE, ON_HOLD)
_RECEIVABLE = select(
    func.coalesce(func.sum(bill_table.c.amount_due_minor - bill_table.c.paid_minor), 0)
).where(bill_table.c.account_id == bindparam("account_id"), bill_table.c.state.in_(OWED))
_OVERDUE_BILLS = select(bill_table).where(
    bill_table.c.account_id == bindparam("account_id"),
    bill_table.c.state.in_(PAYABLE),
    bill_table.c.due_date < bindparam("now"),
)
_LATEST_BILLED_PERIOD = select(func.max(bill_table.c.period)).where(
    bill_table.c.account_id == bindparam("account_id")
)
_LATEST_BILLED_PERIODS = (
    select(bill_table.c.account_id, func.max(bill_table.c.period).label("period"))
    .where(bill_table.c.account_id.in_(bindparam("account_ids", expanding=True)))
    .group_by(bill_table.c.account_id)
)
_BILLED_LEDGER_IDS = select(bill_table.c.ledger_ids).where(
    bill_table.c.account_id.in_(bindparam("account_ids", expanding=True))
)
_BILLED_IN_PERIOD = select(bill_table.c.account_id).where(
    bill_table.c.account_id.in_(bindparam("account_ids", expanding=True)),
    bill_table.c.period == bindparam("period"),
)
_BILLS_OF_RUN = (
    select(func.count()).select_from(bill_table).where(bill_table.c.run_id == bindparam("run_id"))
)
_ENTRIES_UP_TO = (
    select(ledger_table)
    .where(
        ledger_table.c.account_id.in_(bindparam("account_ids", expanding=True)),
        ledger_table.c.period <= bindparam("period"),
    )
    .order_by(ledger_table.c.id)
)
_ENTRIES_BY_ID = (
    select(ledger_table)
    .where(ledger_table.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(ledger_table.c.id)
)
_ADVANCE_BILL_COUNTER = (
    bill_counter_table.update()
    .where(
        bill_counter_table.c.partner_id == bindparam("match_partner_id"),
        bill_counter_table.c.year == bindparam("match_year"),
    )
    .values(last=bill_counter_table.c.last + bindparam("count"))
)
_LAST_BILL_NO = select(bill_counter_table.c.last).where(
    bill_counter_table.c.partner_id == bindparam("match_partner_id"),
    bill_counter_table.c.year == bindparam("match_year"),
)
_ACTION_ID = select(dunning_table.c.id).where(
    dunning_table.c.bill_id == bindparam("bill_id"),
    dunning_table.c.dedupe == bindparam("dedupe"),
)
_OPEN_DISPUTE_OF_LINE = select(dispute_table.c.id).where(
    dispute_table.c.bill_id == bindparam("bill_id"),
    dispute_table.c.line_id == bindparam("line_id"),
    dispute_table.c.state.in_(OPEN_DISPUTE_STATES),
)
_CREDITED_OF_LINE = select(func.coalesce(func.sum(dispute_table.c.adjustment_minor), 0)).where(
    dispute_table.c.bill_id == bindparam("bill_id"),
    dispute_table.c.line_id == bindparam("line_id"),
    dispute_table.c.state == "resolved",
)


def new_id() -> str:
    return uuid.uuid4().hex


def _audit(
    conn: Connection,
    *,
    now: float,
    actor: str,
    partner_id: str,
    action: str,
    entity_type: str,
    entity_id: str,
    correlation_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=actor,
        partner_id=partner_id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        correlation_id=correlation_id,
        details=details,
    )


# --- money and periods -----------------------------------------------------------------------


def to_minor(amount: Any, where: str = "amount.amount") -> int:
    """Exact: more than two decimals, zero or less is refused, never rounded."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise errors.InvalidAmount("amount is not a number", field=where) from None
    minor = value * 100
    if not value.is_finite() or value <= 0 or minor != minor.to_integral_value():
        raise errors.InvalidAmount("amount must be positive with at most two decimals", field=where)
    return int(minor)


def _start_of(day: date, cycle_day: int) -> datetime:
    return datetime(day.year, day.month, cycle_day, tzinfo=UTC)


def _add_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


@dataclass(frozen=True)
class Period:
    """A billing period: from the cycle day of one month to that of the next (UTC)."""

    key: str  # YYYY-MM-DD of its start
    start: float
    end: float

    @property
    def next(self) -> Period:
        return period_at(self.end, int(self.key[8:10]))


def period_at(moment: float, cycle_day: int) -> Period:
    """The period of an account with this bill cycle day that contains `moment`."""
    when = datetime.fromtimestamp(moment, UTC)
    start = _start_of(when.date(), cycle_day)
    if start > when:
        previous = (when.replace(day=1) - timedelta(days=1)).date()
        start = _start_of(previous, cycle_day)
    end = _add_month(start)
    return Period(start.date().isoformat(), start.timestamp(), end.timestamp())


def period_of_key(key: str) -> Period:
    start = datetime.fromisoformat(key).replace(tzinfo=UTC)
    return Period(key, start.timestamp(), _add_month(start).timestamp())


# --- settings ---------------------------------------------------------------------------------


def get_settings(conn: Connection, partner_id: str) -> dict[str, Any]:
    row = conn.execute(_SETTINGS_OF, {"partner_id": partner_id}).first()
    return dict(row.settings) if row is not None else _copy(DEFAULT_SETTINGS)


def _copy(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        key: dict(value) if isinstance(value, dict) else value for key, value in settings.items()
    }


def put_settings(conn: Connection, partner_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    days = [settings["dunningLadder"][step] for step in LADDER]
    for step, before, after in zip(LADDER[1:], days, days[1:], strict=False):
        if after < before:
            raise errors.InvalidLadder(
                f"{step} ({after} days) comes before the step ahead of it ({before} days)",
                field=f"dunningLadder.{step}",
            )
    stored = _copy(settings)
    updated = update_equal(conn, settings_table, {"partner_id": partner_id}, settings=stored)
    if updated.rowcount == 0:
        conn.execute(settings_table.insert(), {"partner_id": partner_id, "settings": stored})
    return stored


# --- billing accounts -------------------------------------------------------------------------


def create_account(
    conn: Connection,
    *,
    partner_id: str,
    body: dict[str, Any],
    now: float,
    correlation_id: str | None,
) -> Any:
    """Open an account as `pending`; the MVNE's answer activates or rejects it (steps)."""
    product_id = body["product"]["id"]
    taken = conn.execute(
        _OPEN_ACCOUNT_OF_PRODUCT, {"partner_id": partner_id, "product_id": product_id}
    ).first()
    if taken is not None:
        raise errors.AccountExists(
            f"Subscription {product_id} is billed by account {taken.id}", field="product.id"
        )
    credit = body.get("creditLimit")
    if credit is not None and credit["units"] != body["currency"]:
        raise errors.CurrencyMismatch(
            f"creditLimit is in {credit['units']}, the account in {body['currency']}",
            field="creditLimit.units",
        )
    account_id = new_id()
    conn.execute(
        account_table.insert(),
        {
            "id": account_id,
            "partner_id": partner_id,
            "name": body["name"],
            "product_id": product_id,
            "rating_type": body["ratingType"],
            "currency": body["currency"],
            "credit_limit_minor": None
            if credit is None
            else to_minor(credit["amount"], "creditLimit.amount"),
            "customer_type": body.get("customerType", "B2C"),
            "tax_exemption": list(body.get("taxExemption") or []),
            "place": dict(body["placeOfPrimaryUse"]),
            "bill_cycle_day": int(body.get("billCycleDay", 1)),
            "state": PENDING,
            "dunning_stage": "none",
            "service_status": "active",
            "created_at": now,
        },
    )
    _audit(
        conn,
        now=now,
        actor=f"partner:{partner_id}",
        partner_id=partner_id,
        action="billingAccount.created",
        entity_type="billingAccount",
        entity_id=account_id,
        correlation_id=correlation_id,
        details={"product": product_id},
    )
    return load_account(conn, account_id)


def load_account(conn: Connection, account_id: str) -> Any:
    return select_equal(conn, account_table, id=account_id).one()


def get_account(conn: Connection, partner_id: str, account_id: str) -> Any:
    row = partner_row(conn, account_table, account_id, partner_id)
    if row is None:
        raise errors.AccountNotFound(f"No billing account {account_id}")
    return row


def list_accounts(
    conn: Connection,
    partner_id: str,
    *,
    state: str | None,
    product_id: str | None,
    offset: int,
    limit: int,
) -> tuple[int, Sequence[Any]]:
    conditions = [account_table.c.partner_id == partner_id]
    if state:
        conditions.append(account_table.c.state == state)
    if product_id:
        conditions.append(account_table.c.product_id == product_id)
    total, rows = count_and_page(
        conn,
        account_table,
        conditions,
        [account_table.c.created_at, account_table.c.pk],
        offset,
        limit,
    )
    return total, rows


def link_account(
    conn: Connection,
    account_id: str,
    *,
    product: dict[str, Any] | None,
    refusal: str | None,
    now: float,
    correlation_id: str | None,
) -> Any:
    """Settle a pending account on what the MVNE said about its subscription."""
    account = load_account(conn, account_id)
    if account.state != PENDING:
        return account
    reason: str | None = refusal
    if reason is None and product is None:
        reason = "PRODUCT_NOT_FOUND"
    if reason is None and product is not None and product.get("status") == "terminated":
        reason = "PRODUCT_TERMINATED"
    state = REJECTED if reason else ACTIVE
    update_equal(conn, account_table, {"id": account_id}, state=state, state_reason=reason)
    _audit(
        conn,
        now=now,
        actor="system",
        partner_id=account.partner_id,
        action=f"billingAccount.{state}",
        entity_type="billingAccount",
        entity_id=account_id,
        correlation_id=correlation_id,
        details={"reason": reason} if reason else None,
    )
    return load_account(conn, account_id)


def receivable_minor(conn: Connection, account_id: str) -> int:
    """What the account owes on its issued bills now, those on hold included."""
    value = conn.execute(_RECEIVABLE, {"account_id": account_id}).scalar_one()
    return int(value)


# --- the charges ledger -----------------------------------------------------------------------


def latest_billed_period(conn: Connection, account_id: str) -> str | None:
    value = conn.execute(_LATEST_BILLED_PERIOD, {"account_id": account_id}).scalar()
    return None if value is None else str(value)


def open_period(conn: Connection, account: Any, moment: float) -> Period:
    """The period whose bill will carry a charge posted now for `moment`: the one containing
    it, unless that one is billed already (late usage, adjustments): then the next unbilled."""
    period = period_at(moment, account.bill_cycle_day)
    billed = latest_billed_period(conn, account.id)
    while billed is not None and period.key <= billed:
        period = period.next
    return period


def post_entry(
    conn: Connection,
    account: Any,
    *,
    kind: str,
    amount_minor: int,
    period: str,
    source_ref: str,
    description: str,
    now: float,
    correlation_id: str | None,
    charge_type: str | None = None,
    usage_type: str | None = None,
    quantity: int | None = None,
) -> Any:
    conn.execute(
        ledger_table.insert(),
        {
            "account_id": account.id,
            "partner_id": account.partner_id,
            "kind": kind,
            "charge_type": charge_type,
            "amount_minor": amount_minor,
            "currency": account.currency,
            "period": period,
            "source_ref": source_ref,
            "description": description,
            "usage_type": usage_type,
            "quantity": quantity,
            "posted_at": now,
            "correlation_id": correlation_id,
        },
    )
    return select_equal(conn, ledger_table, account_id=account.id, source_ref=source_ref).one()


def post_one_off(
    conn: Connection,
    partner_id: str,
    body: dict[str, Any],
    *,
    now: float,
    correlation_id: str | None,
) -> Any:
    account = get_account(conn, partner_id, body["billingAccount"]["id"])
    if account.state != ACTIVE:
        raise errors.AccountNotActive(f"Account {account.id} is {account.state}")
    if body["amount"]["units"] != account.currency:
        raise errors.CurrencyMismatch(
            f"The account bills in {account.currency}", field="amount.units"
        )
    charge_type = body["chargeType"]
    amount = to_minor(body["amount"]["amount"])
    if account.credit_limit_minor is not None:
        # Owed on issued bills plus what the ledger holds for the next one.
        unbilled = sum(
            row.amount_minor for row in entries_for(conn, [account.id], "9999")[account.id]
        )
        exposure = receivable_minor(conn, account.id) + unbilled + amount
        if exposure > account.credit_limit_minor:
            raise errors.CreditLimitExceeded(
                f"The charge would take the account to {Decimal(exposure) / 100:.2f} "
                f"{account.currency}, over its limit of "
                f"{Decimal(account.credit_limit_minor) / 100:.2f}",
                field="amount.amount",
            )
    return post_entry(
        conn,
        account,
        kind=ONE_OFF,
        charge_type=charge_type,
        amount_minor=amount,
        period=open_period(conn, account, now).key,
        source_ref=f"oneOff:{new_id()}",
        description=body.get("description") or f"{charge_type.capitalize()} charge",
        now=now,
        correlation_id=correlation_id,
    )


@dataclass(frozen=True)
class SubscriptionFacts:
    """What the MVNE said about one subscription at bill time."""

    status: str
    monthly_fee_minor: int
    offering_name: str
    terminated_at: float | None = None


@dataclass(frozen=True)
class RatedUsage:
    """One rated usage record of the MVNE."""

    usage_id: str
    product_id: str
    usage_type: str
    usage_date: float
    quantity: int
    charge_minor: int


def cycle_charges(
    conn: Connection,
    run: Any,
    accounts: Sequence[Any],
    subscriptions: dict[str, SubscriptionFacts],
    usage: Iterable[RatedUsage],
    *,
    now: float,
    correlation_id: str | None,
) -> None:
    """Post the period's plan fees and the rated usage into the ledger, each at most once
    (a re-run finds its rows there already). Prepaid usage was paid from the MVNE's real-time
    balance, so only postpaid accounts are charged for it."""
    period = period_of_key(run.period)
    by_product = {account.product_id: account for account in accounts}
    billed = latest_billed_periods(conn, [account.id for account in accounts])
    missed = missed_periods(conn, run, [account.id for account in accounts])
    rows: list[dict[str, Any]] = []
    for account in accounts:
        facts = subscriptions.get(account.product_id)
        if facts is None or facts.monthly_fee_minor <= 0:
            continue
        for key in [*missed.get(account.id, ()), run.period]:
            owed = period_of_key(key)
            if facts.terminated_at is not None and facts.terminated_at < owed.start:
                continue
            rows.append(
                _entry_row(
                    account,
                    RECURRING,
                    facts.monthly_fee_minor,
                    key,
                    f"recurring:{key}",
                    f"{facts.offering_name}, monthly plan"
                    + ("" if key == run.period else f" (period from {key})"),
                    now,
                    correlation_id,
                )
            )
    for record in usage:
        account = by_product.get(record.product_id)
        if account is None or account.rating_type != "postpaid" or record.charge_minor <= 0:
            continue
        if record.usage_date >= period.end:
            continue  # the next period's
        target = period_at(record.usage_date, account.bill_cycle_day).key
        latest = billed.get(account.id)
        if latest is not None and target <= latest:
            target = run.period  # late usage: it rides on this bill
        row = _entry_row(
            account,
            USAGE,
            record.charge_minor,
            target,
            f"usage:{record.usage_id}",
            f"{record.usage_type} usage",
            now,
            correlation_id,
        )
        row["usage_type"] = record.usage_type
        row["quantity"] = record.quantity
        rows.append(row)
    insert_ignoring_conflicts(conn, ledger_table, rows)


def missed_periods(conn: Connection, run: Any, account_ids: Sequence[str]) -> dict[str, list[str]]:
    """The earlier periods each account's bill run failed for (its usage or subscription
    could not be read) and that no bill has covered since: their plan fees ride on this
    bill, as their one-off charges and usage do, rather than being lost."""
    wanted = set(account_ids)
    failed: dict[str, list[str]] = {}
    for earlier in conn.execute(
        select(run_table.c.period, run_table.c.failures)
        .where(
            run_table.c.partner_id == run.partner_id,
            run_table.c.bill_cycle_day == run.bill_cycle_day,
            run_table.c.period < run.period,
        )
        .order_by(run_table.c.period)
    ).all():
        for failure in earlier.failures:
            if failure["accountId"] in wanted:
                failed.setdefault(failure["accountId"], []).append(str(earlier.period))
    if not failed:
        return {}
    billed = {
        (row.account_id, str(row.period))
        for row in conn.execute(
            select(bill_table.c.account_id, bill_table.c.period).where(
                bill_table.c.account_id.in_(list(failed))
            )
        ).all()
    }
    return {
        account_id: [key for key in keys if (account_id, key) not in billed]
        for account_id, keys in failed.items()
    }


def latest_billed_periods(conn: Connection, account_ids: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk_start in range(0, len(account_ids), 500):
        chunk = list(account_ids[chunk_start : chunk_start + 500])
        for row in conn.execute(_LATEST_BILLED_PERIODS, {"account_ids": chunk}).all():
            found[row.account_id] = str(row.period)
    return found


def _entry_row(
    account: Any,
    kind: str,
    amount_minor: int,
    period: str,
    source_ref: str,
    description: str,
    now: float,
    correlation_id: str | None,
) -> dict[str, Any]:
    return {
        "account_id": account.id,
        "partner_id": account.partner_id,
        "kind": kind,
        "charge_type": None,
        "amount_minor": amount_minor,
        "currency": account.currency,
        "period": period,
        "source_ref": source_ref,
        "description": description,
        "usage_type": None,
        "quantity": None,
        "posted_at": now,
        "correlation_id": correlation_id,
    }


def entries_for(conn: Connection, account_ids: Sequence[str], period: str) -> dict[str, list[Any]]:
    """The ledger entries each account's bill for `period` covers, in posting order. Entries
    of earlier periods that no bill covered (posted while the account was not billed) too."""
    found: dict[str, list[Any]] = {account_id: [] for account_id in account_ids}
    covered = _covered_ids(conn, account_ids)
    for chunk_start in range(0, len(account_ids), 500):
        chunk = list(account_ids[chunk_start : chunk_start + 500])
        rows = conn.execute(_ENTRIES_UP_TO, {"account_ids": chunk, "period": period}).all()
        for row in rows:
            if row.id not in covered:
                found[row.account_id].append(row)
    return found


def _covered_ids(conn: Connection, account_ids: Sequence[str]) -> set[int]:
    covered: set[int] = set()
    for chunk_start in range(0, len(account_ids), 500):
        chunk = list(account_ids[chunk_start : chunk_start + 500])
        for (ids,) in conn.execute(_BILLED_LEDGER_IDS, {"account_ids": chunk}).all():
            covered.update(int(i) for i in ids)
    return covered


# --- composing a bill (pure) --------------------------------------------------------------------


@dataclass(frozen=True)
class Charge:
    """A ledger entry as a bill sees it."""

    entry_id: int
    kind: str
    amount_minor: int
    description: str
    charge_type: str | None = None
    usage_type: str | None = None
    quantity: int | None = None


@dataclass
class BillLine:
    line_id: str
    line_type: str
    description: str
    amount_minor: int
    entry_ids: list[int]
    usage_type: str | None = None
    quantity: int | None = None
    taxes: list[LineTax] = field(default_factory=list)

    @property
    def tax_minor(self) -> int:
        return sum(tax.amount_minor for tax in self.taxes)

    @property
    def taxable_as(self) -> str | None:
        """The tax engine's service for this line, or None when it is outside tax scope.
        Credits (adjustments, carried credit) are goodwill, outside tax scope."""
        if self.amount_minor <= 0:
            return None
        if self.line_type in (RECURRING, USAGE):
            return self.line_type
        return self.charge_type

    charge_type: str | None = None


def charge_of(row: Any) -> Charge:
    return Charge(
        entry_id=int(row.id),
        kind=row.kind,
        amount_minor=int(row.amount_minor),
        description=row.description,
        charge_type=row.charge_type,
        usage_type=row.usage_type,
        quantity=row.quantity,
    )


def bill_lines(charges: Sequence[Charge]) -> list[BillLine]:
    """Lines in a fixed order: plan fees, usage by type (data, voice, SMS), one-off charges,
    then credits; so the same entries always give the same bill."""
    lines: list[BillLine] = []
    for charge in charges:
        if charge.kind == RECURRING:
            lines.append(_line(charge))
    for usage_type in USAGE_ORDER:
        of_type = [c for c in charges if c.kind == USAGE and c.usage_type == usage_type]
        if of_type:
            quantity = sum(c.quantity or 0 for c in of_type)
            lines.append(
                BillLine(
                    line_id="",
                    line_type=USAGE,
                    description=f"{usage_type.capitalize()} usage, {quantity} "
                    f"{USAGE_UNITS[usage_type]}",
                    amount_minor=sum(c.amount_minor for c in of_type),
                    entry_ids=[c.entry_id for c in of_type],
                    usage_type=usage_type,
                    quantity=quantity,
                )
            )
    for kind in (ONE_OFF, ADJUSTMENT, CREDIT_CARRIED):
        lines.extend(_line(charge) for charge in charges if charge.kind == kind)
    for number, line in enumerate(lines, start=1):
        line.line_id = str(number)
    return lines


def _line(charge: Charge) -> BillLine:
    return BillLine(
        line_id="",
        line_type=charge.kind,
        description=charge.description,
        amount_minor=charge.amount_minor,
        entry_ids=[charge.entry_id],
        charge_type=charge.charge_type,
    )


def taxable_lines(lines: Sequence[BillLine]) -> list[TaxableLine]:
    return [
        TaxableLine(
            line_id=line.line_id,
            amount_minor=line.amount_minor,
            charge=taxable,
            line_count=1 if taxable == RECURRING else 0,
        )
        for line in lines
        if (taxable := line.taxable_as) is not None
    ]


@dataclass(frozen=True)
class Totals:
    tax_items: list[dict[str, Any]]
    tax_excluded_minor: int
    tax_minor: int
    tax_included_minor: int


def totals(lines: Sequence[BillLine]) -> Totals:
    """Tax items per jurisdiction level, and the amounts; all sums of integers, so the
    lines plus the tax items are exactly the total."""
    groups: dict[tuple[str, str], list[LineTax]] = {}
    for line in lines:
        for tax in line.taxes:
            groups.setdefault((tax.level, tax.jurisdiction_code), []).append(tax)
    items: list[dict[str, Any]] = []
    tax_minor = 0
    for (level, code), group in groups.items():
        rates = {each.rate for each in group}
        amount = sum(each.amount_minor for each in group)
        tax_minor += amount
        items.append(
            {
                "taxCategory": level,
                "jurisdictionCode": code,
                # One rate when every line had the same, else none (the amounts are exact).
                "taxRate": next(iter(rates)) if len(rates) == 1 else None,
                "taxAmountMinor": amount,
            }
        )
    excluded = sum(line.amount_minor for line in lines)
    return Totals(items, excluded, tax_minor, excluded + tax_minor)


def missing_levels(account: Any, lines: Sequence[BillLine]) -> list[str]:
    """Taxable lines that lack a level the place of primary use calls for."""
    country = str(account.place.get("country", ""))
    exempt = {item["level"] for item in account.tax_exemption}
    problems: list[str] = []
    for line in lines:
        taxable = line.taxable_as
        if taxable is None:
            continue
        # The monthly E911 fee is owed on a postpaid plan line only.
        per_line = taxable == RECURRING and account.rating_type == "postpaid"
        table = EXPECTED_LEVELS_ACCESS if per_line else EXPECTED_LEVELS
        expected = table.get(country, EU_VAT_LEVELS if account.customer_type == "B2C" else ())
        have = {tax.level for tax in line.taxes}
        problems.extend(
            f"{level} on line {line.line_id}"
            for level in expected
            if level not in exempt and level not in have
        )
    return problems


# --- bill runs ----------------------------------------------------------------------------------


def ensure_run(
    conn: Connection, partner_id: str, cycle_day: int, period: Period
) -> tuple[Any, bool]:
    """The bill run of a partner's cycle day and period; (run, created now)."""
    existing = select_equal(
        conn, run_table, partner_id=partner_id, bill_cycle_day=cycle_day, period=period.key
    ).first()
    if existing is not None:
        return existing, False
    run_id = new_id()
    conn.execute(
        run_table.insert(),
        {
            "id": run_id,
            "partner_id": partner_id,
            "bill_cycle_day": cycle_day,
            "period": period.key,
            "period_start": period.start,
            "period_end": period.end,
            "state": "scheduled",
            "bills_issued": 0,
            "failures": [],
        },
    )
    return load_run(conn, run_id), True


def load_run(conn: Connection, run_id: str) -> Any:
    return select_equal(conn, run_table, id=run_id).one()


def get_run(conn: Connection, partner_id: str, run_id: str) -> Any:
    row = partner_row(conn, run_table, run_id, partner_id)
    if row is None:
        raise errors.BillRunNotFound(f"No bill run {run_id}")
    return row


def list_runs(
    conn: Connection, partner_id: str, offset: int, limit: int
) -> tuple[int, Sequence[Any]]:
    condition = run_table.c.partner_id == partner_id
    total, rows = count_and_page(
        conn,
        run_table,
        [condition],
        [run_table.c.period.desc(), run_table.c.pk.desc()],
        offset,
        limit,
    )
    return total, rows


def start_run(conn: Connection, run_id: str, now: float) -> tuple[Any, list[Any]]:
    """Mark the run running; return it and the accounts it still has to bill."""
    run = load_run(conn, run_id)
    if run.state == "scheduled":
        update_equal(conn, run_table, {"id": run_id}, state="running", started_at=now)
    accounts = conn.execute(
        _ACCOUNTS_TO_BILL,
        {
            "partner_id": run.partner_id,
            "bill_cycle_day": run.bill_cycle_day,
            "period_end": run.period_end,
            "period": run.period,
        },
    ).all()
    return load_run(conn, run_id), list(accounts)


def reserve_bill_nos(conn: Connection, partner_id: str, year: int, count: int) -> list[str]:
    """`count` consecutive bill numbers of the partner's year (BILL-2026-000001, ...)."""
    if count <= 0:
        return []
    key = {"match_partner_id": partner_id, "match_year": year}
    updated = conn.execute(_ADVANCE_BILL_COUNTER, {**key, "count": count})
    if updated.rowcount == 0:
        conn.execute(
            bill_counter_table.insert(), {"partner_id": partner_id, "year": year, "last": count}
        )
    last = int(conn.execute(_LAST_BILL_NO, key).scalar_one())
    return [f"BILL-{year}-{number:06d}" for number in range(last - count + 1, last + 1)]


@dataclass
class Draft:
    """One account's bill as composed and taxed, before it is issued."""

    account: Any
    lines: list[BillLine]
    quote_id: str | None = None
    hold_reason: str | None = None

    @property
    def entry_ids(self) -> list[int]:
        return sorted(entry for line in self.lines for entry in line.entry_ids)


@dataclass(frozen=True)
class Issued:
    bill_id: str
    account_id: str
    state: str
    due_date: float


def issue_bills(
    conn: Connection,
    *,
    run: Any,
    drafts: Sequence[Draft],
    payment_term_days: int,
    now: float,
    correlation_id: str | None,
) -> tuple[list[Issued], list[Any]]:
    """Issue the run's period bills of these drafts in one transaction; return the bills
    issued and the accounts whose ledger moved since their draft (compose those again).
    An account already billed for the period (a re-run) is skipped: one bill per period."""
    ids = [draft.account.id for draft in drafts]
    billed = {
        row.account_id
        for chunk_start in range(0, len(ids), 500)
        for row in conn.execute(
            _BILLED_IN_PERIOD,
            {"account_ids": ids[chunk_start : chunk_start + 500], "period": run.period},
        ).all()
    }
    current = entries_for(conn, ids, run.period)
    ready: list[Draft] = []
    moved: list[Any] = []
    for draft in drafts:
        if draft.account.id in billed:
            continue
        if sorted(row.id for row in current[draft.account.id]) != draft.entry_ids:
            moved.append(draft.account)
        else:
            ready.append(draft)
    bill_date = run.period_end
    numbers = reserve_bill_nos(conn, run.partner_id, _year(bill_date), len(ready))
    rows: list[dict[str, Any]] = []
    issued: list[Issued] = []
    for draft, bill_no in zip(ready, numbers, strict=True):
        lines = _carry_credit(conn, run, draft, now, correlation_id)
        result = totals(lines)
        state = ON_HOLD if draft.hold_reason else SENT
        if not draft.hold_reason and result.tax_included_minor == 0:
            state = SETTLED
        bill_id = new_id()
        due = bill_date + payment_term_days * DAY_S
        rows.append(
            {
                "id": bill_id,
                "partner_id": draft.account.partner_id,
                "account_id": draft.account.id,
                "run_id": run.id,
                "bill_no": bill_no,
                "period": run.period,
                "period_start": run.period_start,
                "period_end": run.period_end,
                "state": state,
                "state_reason": draft.hold_reason,
                "bill_date": bill_date,
                "due_date": due,
                "currency": draft.account.currency,
                "lines": [_line_json(line) for line in lines],
                "tax_items": result.tax_items,
                "tax_excluded_minor": result.tax_excluded_minor,
                "tax_minor": result.tax_minor,
                "tax_included_minor": result.tax_included_minor,
                "amount_due_minor": result.tax_included_minor,
                "paid_minor": 0,
                "tax_quote_id": draft.quote_id,
                "ledger_ids": sorted(e for line in lines for e in line.entry_ids),
                "created_at": now,
            }
        )
        issued.append(Issued(bill_id, draft.account.id, state, due))
    if rows:
        conn.execute(bill_table.insert(), rows)
        held = [row["account_id"] for row in rows if row["state"] == ON_HOLD]
        _audit(
            conn,
            now=now,
            actor="system",
            partner_id=run.partner_id,
            action="billRun.billsIssued",
            entity_type="billRun",
            entity_id=run.id,
            correlation_id=correlation_id,
            details={"period": run.period, "issued": len(rows), "onHold": held},
        )
    return issued, moved


def _carry_credit(
    conn: Connection, run: Any, draft: Draft, now: float, correlation_id: str | None
) -> list[BillLine]:
    """A credit larger than the bill: the bill comes to zero and the rest rides forward, as
    a pair of ledger entries (this bill's, and the next one's)."""
    lines = list(draft.lines)
    owed = totals(lines).tax_included_minor
    if owed >= 0:
        return lines
    credit = -owed
    pair = (
        (run.period, credit, "Credit carried to the next bill"),
        (period_of_key(run.period).next.key, -credit, "Credit carried from the last bill"),
    )
    for period, amount, description in pair:
        entry = post_entry(
            conn,
            draft.account,
            kind=CREDIT_CARRIED,
            amount_minor=amount,
            period=period,
            source_ref=f"carried:{run.period}:{period}",
            description=description,
            now=now,
            correlation_id=correlation_id,
        )
        if period == run.period:
            number = str(len(lines) + 1)
            lines.append(BillLine(number, CREDIT_CARRIED, description, amount, [int(entry.id)]))
    return lines


def _year(moment: float) -> int:
    return datetime.fromtimestamp(moment, UTC).year


def _line_json(line: BillLine) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": line.line_id,
        "lineType": line.line_type,
        "description": line.description,
        "amountMinor": line.amount_minor,
        "entryIds": list(line.entry_ids),
        "taxes": [
            {
                "level": tax.level,
                "name": tax.name,
                "jurisdictionCode": tax.jurisdiction_code,
                "rate": tax.rate,
                "amountMinor": tax.amount_minor,
            }
            for tax in line.taxes
        ],
    }
    if line.usage_type is not None:
        body["usageType"] = line.usage_type
        body["quantity"] = line.quantity
    return body


def record_run_failure(
    conn: Connection, run_id: str, account_id: str, code: str, detail: str
) -> None:
    run = load_run(conn, run_id)
    failures = [f for f in run.failures if f["accountId"] != account_id]
    failures.append({"accountId": account_id, "code": code, "detail": detail})
    update_equal(conn, run_table, {"id": run_id}, failures=failures)


def finish_run(conn: Connection, run_id: str, now: float) -> Any:
    issued = conn.execute(_BILLS_OF_RUN, {"run_id": run_id}).scalar_one()
    update_equal(
        conn,
        run_table,
        {"id": run_id},
        state="completed",
        completed_at=now,
        bills_issued=int(issued),
    )
    return load_run(conn, run_id)


def has_active_accounts(conn: Connection, partner_id: str, cycle_day: int) -> bool:
    found = conn.execute(
        _ANY_ACTIVE_ACCOUNT, {"partner_id": partner_id, "bill_cycle_day": cycle_day}
    ).first()
    return found is not None


# --- bills ---------------------------------------------------------------------------------------


def load_bill(conn: Connection, bill_id: str) -> Any:
    return select_equal(conn, bill_table, id=bill_id).one()


def get_bill(conn: Connection, partner_id: str, bill_id: str) -> Any:
    row = partner_row(conn, bill_table, bill_id, partner_id)
    if row is None:
        raise errors.BillNotFound(f"No bill {bill_id}")
    return row


def list_bills(
    conn: Connection,
    partner_id: str,
    *,
    account_id: str | None,
    state: str | None,
    offset: int,
    limit: int,
) -> tuple[int, Sequence[Any]]:
    conditions = [bill_table.c.partner_id == partner_id]
    if account_id:
        conditions.append(bill_table.c.account_id == account_id)
    if state:
        conditions.append(bill_table.c.state == state)
    total, rows = count_and_page(
        conn,
        bill_table,
        conditions,
        [bill_table.c.bill_date.desc(), bill_table.c.pk.desc()],
        offset,
        limit,
    )
    return total, rows


def recompose(conn: Connection, bill: Any) -> Totals:
    """The bill's totals again from the ledger entries it names and the taxes it stored."""
    rows = conn.execute(_ENTRIES_BY_ID, {"ids": list(bill.ledger_ids)}).all()
    lines = bill_lines([charge_of(row) for row in rows])
    stored = {line["id"]: line for line in bill.lines}
    for line in lines:
        line.taxes = [
            LineTax(t["level"], t["name"], t["jurisdictionCode"], t["rate"], t["amountMinor"])
            for t in stored[line.line_id]["taxes"]
        ]
    return totals(lines)


# --- payments and dunning ------------------------------------------------------------------------


@dataclass(frozen=True)
class Restore:
    """An order billing must send the MVNE once the payment has committed."""

    account_id: str
    product_id: str
    action_id: int
    lost: bool


def record_payment(
    conn: Connection,
    partner_id: str,
    body: dict[str, Any],
    *,
    now: float,
    correlation_id: str | None,
    restore_lost: bool = False,
) -> tuple[Any, Restore | None]:
    """Apply a payment to a bill; (payment, the restore to send, if service comes back)."""
    existing = select_equal(
        conn, payment_table, partner_id=partner_id, reference=body["reference"]
    ).first()
    amount = to_minor(body["amount"]["amount"])
    if existing is not None:
        if existing.bill_id != body["customerBill"]["id"] or existing.amount_minor != amount:
            raise errors.PaymentReferenceReused(
                f"Reference {body['reference']} paid another bill or amount", field="reference"
            )
        return existing, None
    bill = get_bill(conn, partner_id, body["customerBill"]["id"])
    if bill.state not in PAYABLE:
        raise errors.BillNotPayable(f"Bill {bill.bill_no} is {bill.state}")
    if body["amount"]["units"] != bill.currency:
        raise errors.CurrencyMismatch(f"The bill is in {bill.currency}", field="amount.units")
    remaining = bill.amount_due_minor - bill.paid_minor
    if amount > remaining:
        raise errors.Overpayment(
            f"Bill {bill.bill_no} owes {Decimal(remaining) / 100:.2f} {bill.currency}",
            field="amount.amount",
        )
    payment_id = new_id()
    conn.execute(
        payment_table.insert(),
        {
            "id": payment_id,
            "partner_id": partner_id,
            "bill_id": bill.id,
            "account_id": bill.account_id,
            "amount_minor": amount,
            "currency": bill.currency,
            "reference": body["reference"],
            "paid_at": now,
        },
    )
    paid = bill.paid_minor + amount
    state = SETTLED if paid == bill.amount_due_minor else PARTIALLY_PAID
    update_equal(conn, bill_table, {"id": bill.id}, paid_minor=paid, state=state)
    _audit(
        conn,
        now=now,
        actor=f"partner:{partner_id}",
        partner_id=partner_id,
        action="payment.recorded",
        entity_type="customerBill",
        entity_id=bill.id,
        correlation_id=correlation_id,
        details={"amountMinor": amount, "state": state},
    )
    restore = _after_payment(conn, bill.account_id, bill.id, payment_id, now, restore_lost)
    return select_equal(conn, payment_table, id=payment_id).one(), restore


def overdue_bills(conn: Connection, account_id: str, now: float) -> list[Any]:
    return list(conn.execute(_OVERDUE_BILLS, {"account_id": account_id, "now": now}).all())


def _after_payment(
    conn: Connection, account_id: str, bill_id: str, payment_id: str, now: float, lost: bool
) -> Restore | None:
    """Nothing overdue any more: the ladder stops, and a suspended service comes back."""
    if overdue_bills(conn, account_id, now):
        return None
    account = load_account(conn, account_id)
    if account.dunning_stage == "none":
        return None
    restore = account.service_status == "suspended"
    update_equal(
        conn,
        account_table,
        {"id": account_id},
        dunning_stage="none",
        service_status="active" if restore else account.service_status,
    )
    if not restore:
        return None
    # A lost restore looks sent from here: that is the fault.
    action_id = take_action(
        conn,
        account,
        bill_id,
        "restore",
        "restoreSent" if lost else "restorePending",
        now,
        dedupe=f"restore:{payment_id}",
    )
    return Restore(account_id, account.product_id, action_id, lost)


def take_action(
    conn: Connection,
    account: Any,
    bill_id: str,
    step: str,
    mvne_order: str,
    now: float,
    dedupe: str | None = None,
) -> int:
    insert_ignoring_conflicts(
        conn,
        dunning_table,
        [
            {
                "partner_id": account.partner_id,
                "account_id": account.id,
                "bill_id": bill_id,
                "step": step,
                "taken_at": now,
                "mvne_order": mvne_order,
                "dedupe": dedupe or step,
            }
        ],
    )
    return int(
        conn.execute(_ACTION_ID, {"bill_id": bill_id, "dedupe": dedupe or step}).scalar_one()
    )


def set_action_order(conn: Connection, action_id: int, mvne_order: str) -> None:
    update_equal(conn, dunning_table, {"id": action_id}, mvne_order=mvne_order)


@dataclass(frozen=True)
class StepOutcome:
    """What a dunning step decided: the order for the MVNE (if any) and the next step."""

    action_id: int | None
    order: str | None
    product_id: str
    next_step: str | None
    next_due: float | None


def dunning_step(
    conn: Connection, bill_id: str, step: str, now: float, *, order_lost: bool = False
) -> StepOutcome | None:
    """Take one step of the ladder on an unpaid bill; None when the bill no longer owes."""
    bill = load_bill(conn, bill_id)
    if bill.state not in PAYABLE or bill.paid_minor >= bill.amount_due_minor:
        return None
    account = load_account(conn, bill.account_id)
    order = STEP_ORDERS.get(step)
    if account.service_status == "terminated" or (
        order == "suspended" and account.service_status == "suspended"
    ):
        order = None  # already ordered
    if order is None:
        mvne_order = "none"
    else:
        verb = "suspend" if order == "suspended" else "terminate"
        # A suspension lost on the way is recorded as sent: billing believes it went out.
        mvne_order = f"{verb}Sent" if order_lost else f"{verb}Pending"
    action_id = take_action(conn, account, bill.id, step, mvne_order, now)
    values: dict[str, Any] = {}
    if STAGES.index(step) > STAGES.index(account.dunning_stage):
        values["dunning_stage"] = step
    if order is not None:
        values["service_status"] = order
    if values:
        update_equal(conn, account_table, {"id": account.id}, **values)
    _audit(
        conn,
        now=now,
        actor="system",
        partner_id=account.partner_id,
        action=f"dunning.{step}",
        entity_type="billingAccount",
        entity_id=account.id,
        correlation_id=None,
        details={"bill": bill.bill_no, "mvneOrder": mvne_order},
    )
    ladder = get_settings(conn, account.partner_id)["dunningLadder"]
    position = LADDER.index(step)
    next_step = LADDER[position + 1] if position + 1 < len(LADDER) else None
    next_due = bill.due_date + ladder[next_step] * DAY_S if next_step else None
    return StepOutcome(
        action_id=action_id if order is not None and not order_lost else None,
        order=order if not order_lost else None,
        product_id=account.product_id,
        next_step=next_step,
        next_due=next_due,
    )


def list_actions(
    conn: Connection, partner_id: str, account_id: str | None, offset: int, limit: int
) -> tuple[int, Sequence[Any]]:
    conditions = [dunning_table.c.partner_id == partner_id]
    if account_id:
        conditions.append(dunning_table.c.account_id == account_id)
    total, rows = count_and_page(
        conn, dunning_table, conditions, [dunning_table.c.id], offset, limit
    )
    return total, rows


def list_payments(
    conn: Connection, partner_id: str, bill_id: str | None, offset: int, limit: int
) -> tuple[int, Sequence[Any]]:
    conditions = [payment_table.c.partner_id == partner_id]
    if bill_id:
        conditions.append(payment_table.c.bill_id == bill_id)
    total, rows = count_and_page(
        conn,
        payment_table,
        conditions,
        [payment_table.c.paid_at.desc(), payment_table.c.pk.desc()],
        offset,
        limit,
    )
    return total, rows


# --- reconciliation ------------------------------------------------------------------------------


def reconcile(accounts: Sequence[Any], mvne_status: dict[str, str]) -> list[dict[str, Any]]:
    """Each account's ordered subscription status against the MVNE's."""
    items = []
    for account in accounts:
        actual = mvne_status.get(account.product_id)
        expected = account.service_status
        problem: str | None = None
        if actual is None:
            problem = "PRODUCT_MISSING"
        elif actual != expected:
            problem = "RESTORE_NOT_APPLIED" if expected == "active" else "SUSPENSION_NOT_APPLIED"
        items.append({"account": account, "expected": expected, "actual": actual, "break": problem})
    return items


# --- disputes ------------------------------------------------------------------------------------


def create_dispute(
    conn: Connection,
    partner_id: str,
    body: dict[str, Any],
    *,
    now: float,
    correlation_id: str | None,
) -> Any:
    bill = get_bill(conn, partner_id, body["customerBill"]["id"])
    if bill.state not in DISPUTABLE:
        raise errors.BillNotDisputable(f"Bill {bill.bill_no} is {bill.state}")
    line = next(
        (
            line
            for line in bill.lines
            if line["id"] == body["billLineId"] and line["lineType"] in DISPUTABLE_LINES
        ),
        None,
    )
    if line is None:
        raise errors.BillLineNotFound(
            f"Bill {bill.bill_no} has no disputable line {body['billLineId']}", field="billLineId"
        )
    open_one = conn.execute(
        _OPEN_DISPUTE_OF_LINE, {"bill_id": bill.id, "line_id": line["id"]}
    ).first()
    if open_one is not None:
        raise errors.DisputeExists(f"Line {line['id']} is already disputed ({open_one.id})")
    # A line may be disputed again once a dispute of it is closed, for what earlier
    # resolutions left of it: the credits of one line never add up to more than the line.
    credited = conn.execute(
        _CREDITED_OF_LINE, {"bill_id": bill.id, "line_id": line["id"]}
    ).scalar_one()
    left_minor = int(line["amountMinor"]) - int(credited)
    if left_minor <= 0:
        raise errors.LineAlreadyCredited(
            f"Line {line['id']} of bill {bill.bill_no} was credited in full by earlier disputes",
            field="billLineId",
        )
    settings = get_settings(conn, partner_id)
    owner = settings["disputeResponsibility"].get(body["category"])
    dispute_id = new_id()
    conn.execute(
        dispute_table.insert(),
        {
            "id": dispute_id,
            "partner_id": partner_id,
            "bill_id": bill.id,
            "account_id": bill.account_id,
            "line_id": line["id"],
            "category": body["category"],
            "reason": body["reason"],
            "raised_by": body["raisedBy"],
            "state": "open",
            "owner": owner,
            "disputed_minor": left_minor,
            "currency": bill.currency,
            "created_at": now,
            "sla_due_at": now + settings["disputeSlaDays"] * DAY_S,
        },
    )
    _audit(
        conn,
        now=now,
        actor=f"partner:{partner_id}",
        partner_id=partner_id,
        action="dispute.opened" if owner else "dispute.openedUnowned",
        entity_type="dispute",
        entity_id=dispute_id,
        correlation_id=correlation_id,
        details={"category": body["category"], "owner": owner},
    )
    return load_dispute(conn, dispute_id)


def load_dispute(conn: Connection, dispute_id: str) -> Any:
    return select_equal(conn, dispute_table, id=dispute_id).one()


def get_dispute(conn: Connection, partner_id: str, dispute_id: str) -> Any:
    row = partner_row(conn, dispute_table, dispute_id, partner_id)
    if row is None:
        raise errors.DisputeNotFound(f"No dispute {dispute_id}")
    return row


def sla_breached(dispute: Any, now: float) -> bool:
    return dispute.state in OPEN_DISPUTE_STATES and dispute.sla_due_at < now


def list_disputes(
    conn: Connection,
    partner_id: str,
    *,
    unowned: bool | None,
    state: str | None,
    breached: bool | None,
    bill_id: str | None,
    now: float,
    offset: int,
    limit: int,
) -> tuple[int, Sequence[Any]]:
    conditions = [dispute_table.c.partner_id == partner_id]
    if unowned is True:
        conditions.append(dispute_table.c.owner.is_(None))
    elif unowned is False:
        conditions.append(dispute_table.c.owner.is_not(None))
    if state:
        conditions.append(dispute_table.c.state == state)
    if bill_id:
        conditions.append(dispute_table.c.bill_id == bill_id)
    late = dispute_table.c.state.in_(OPEN_DISPUTE_STATES) & (dispute_table.c.sla_due_at < now)
    if breached is True:
        conditions.append(late)
    elif breached is False:
        conditions.append(~late)
    total, rows = count_and_page(
        conn,
        dispute_table,
        conditions,
        [dispute_table.c.created_at, dispute_table.c.pk],
        offset,
        limit,
    )
    return total, rows


def update_dispute(
    conn: Connection,
    partner_id: str,
    dispute_id: str,
    body: dict[str, Any],
    *,
    now: float,
    correlation_id: str | None,
) -> Any:
    """Assign, investigate, resolve (posting the credit to the next bill) or reject."""
    dispute = get_dispute(conn, partner_id, dispute_id)
    values: dict[str, Any] = {}
    owner = body.get("owner", dispute.owner)
    if "owner" in body:
        if dispute.state not in OPEN_DISPUTE_STATES:
            raise errors.InvalidTransition(f"Dispute {dispute.id} is {dispute.state}")
        values["owner"] = owner
    target = body.get("state")
    if target is None and ("adjustment" in body or "resolution" in body):
        raise errors.InvalidTransition(
            "An adjustment or resolution comes with state resolved or rejected", field="state"
        )
    if target is not None and target != dispute.state:
        if target not in DISPUTE_TRANSITIONS[dispute.state]:
            raise errors.InvalidTransition(f"Cannot go from {dispute.state} to {target}")
        if owner is None:
            raise errors.DisputeUnowned(f"Dispute {dispute.id} has no owner", field="owner")
        values["state"] = target
        if target in ("resolved", "rejected"):
            values["resolved_at"] = now
            values["resolution"] = body.get("resolution")
    elif target is not None and ("adjustment" in body or "resolution" in body):
        raise errors.InvalidTransition(f"Dispute {dispute.id} is already {dispute.state}")
    if target != "resolved" and "adjustment" in body:
        raise errors.InvalidTransition("Only a resolution posts an adjustment", field="adjustment")
    if values.get("state") == "resolved":
        credit = dispute.disputed_minor
        if "adjustment" in body:
            if body["adjustment"]["units"] != dispute.currency:
                raise errors.CurrencyMismatch(
                    f"The bill is in {dispute.currency}", field="adjustment.units"
                )
            credit = to_minor(body["adjustment"]["amount"], "adjustment.amount")
            if credit > dispute.disputed_minor:
                raise errors.AdjustmentTooLarge(
                    f"At most {Decimal(dispute.disputed_minor) / 100:.2f} of the line is "
                    "left to credit",
                    field="adjustment.amount",
                )
        account = load_account(conn, dispute.account_id)
        bill = load_bill(conn, dispute.bill_id)
        entry = post_entry(
            conn,
            account,
            kind=ADJUSTMENT,
            amount_minor=-credit,
            period=open_period(conn, account, now).key,
            source_ref=f"dispute:{dispute.id}",
            description=f"Adjustment: dispute of {bill.bill_no} line {dispute.line_id}",
            now=now,
            correlation_id=correlation_id,
        )
        values["adjustment_entry_id"] = entry.id
        values["adjustment_minor"] = credit
    if values:
        update_equal(conn, dispute_table, {"id": dispute.id}, **values)
        _audit(
            conn,
            now=now,
            actor=f"partner:{partner_id}",
            partner_id=partner_id,
            action=f"dispute.{values.get('state', 'assigned')}",
            entity_type="dispute",
            entity_id=dispute.id,
            correlation_id=correlation_id,
            details={k: v for k, v in values.items() if k in ("owner", "adjustment_minor")},
        )
    return load_dispute(conn, dispute.id)


def get_entry(conn: Connection, partner_id: str, entry_id: int) -> Any:
    row = partner_row(conn, ledger_table, entry_id, partner_id)
    if row is None:
        raise errors.LedgerEntryNotFound(f"No ledger entry {entry_id}")
    return row
