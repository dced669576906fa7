"""The settlement ledger: every economic fact between the MNO and a wholesale partner is one
append-only entry, and settlement periods decide which statement an entry lands on.

An amount is never updated. A correction is a reversal (the same fact, negated) and a new
entry; a credit is an entry of its own. Each entry carries its partner, account, agreement
version, source, event time, processing time, amount, currency, the evidence it rests on
and an idempotency key that makes posting the same fact twice a no-op.

Periods are calendar months (UTC) per partner, closed explicitly. An entry lands in the
period of its event time while that period is open; once it is closed, in the first later
period still open, never in the closed one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    select,
    text,
)

from simulators.core.store import (
    count_and_page,
    equal_to,
    insert_ignoring_conflicts,
    role_table,
    select_equal,
)

from . import errors
from .agreements import month_bounds, month_of, next_month

ROLE = "mno"

# What the fact is.
ACTIVATION_FEE = "activationFee"
MONTHLY_FEE = "monthlyFee"
USAGE = "usage"
REVENUE_SHARE = "revenueShare"
SLA_CREDIT = "slaCredit"
ADJUSTMENT = "adjustment"
KINDS = (ACTIVATION_FEE, MONTHLY_FEE, USAGE, REVENUE_SHARE, SLA_CREDIT, ADJUSTMENT)

# How it enters the ledger.
ORIGINAL = "original"
REVERSAL = "reversal"
CORRECTION = "correction"
CREDIT = "credit"
MANUAL_ADJUSTMENT = "manualAdjustment"
ENTRY_TYPES = (ORIGINAL, REVERSAL, CORRECTION, CREDIT, MANUAL_ADJUSTMENT)

# Who or what produced it.
SOURCE_NETWORK = "network"
SOURCE_SETTLEMENT = "settlement"
SOURCE_PARTNER = "partner"
SOURCE_DISPUTE = "dispute"
SOURCE_OPERATIONS = "operations"

PERIOD_OPEN = "open"
PERIOD_CLOSED = "closed"

_PK = BigInteger().with_variant(Integer, "sqlite")
_CORRECTING = text("corrects_id IS NOT NULL")
_NOT_USAGE = text("kind <> 'usage'")

ledger = role_table(
    ROLE,
    "mno_settlement_ledger",
    # The entry's number is its id: a ledger is read in the order it was written.
    Column("id", _PK, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(120), nullable=False, unique=True),
    Column("partner_id", String(64), nullable=False),
    Column("account_id", String(80), nullable=False),
    Column("agreement_id", String(80), nullable=True),
    Column("agreement_version", Integer, nullable=True),
    Column("kind", String(16), nullable=False),
    Column("entry_type", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("event_time", Float, nullable=False),
    Column("processing_time", Float, nullable=False),
    # The period whose statement carries the entry, and the one its event time falls in.
    Column("period_id", String(7), nullable=False),
    Column("service_period", String(7), nullable=False),
    Column("usage_type", String(8), nullable=True),
    Column("quantity", BigInteger, nullable=True),
    Column("unit", String(8), nullable=True),
    Column("amount_micros", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("evidence_ref", String(120), nullable=False),
    # A reversal names the entry it cancels; a correction, the entry it replaces.
    Column("corrects_id", BigInteger, nullable=True),
    Column("memo", String(300), nullable=True),
    Column("correlation_id", String(256), nullable=True),
    # A usage charge is the rated usage record itself: the partner's usage rows are these
    # entries, so a million records cost a million rows, not two million.
    Column("service_id", String(40), nullable=True),
    Column("msisdn", String(16), nullable=True),
    Column("network_event_id", String(64), nullable=True),
    Column("visited_mcc", String(3), nullable=True),
    # The window's volume before this usage: where its tiers were read.
    Column("tier_offset", BigInteger, nullable=True),
    # Arrived after its day's usage summary was published.
    Column("late", Boolean, nullable=True),
    Index("ix_mno_ledger_partner_period", "partner_id", "period_id"),
    # Fees, credits and adjustments by what they rest on; usage (nearly every row) is
    # found by its identity instead, and costs this index nothing.
    Index(
        "ix_mno_ledger_evidence",
        "partner_id",
        "evidence_ref",
        sqlite_where=_NOT_USAGE,
        postgresql_where=_NOT_USAGE,
    ),
    Index(
        "ix_mno_ledger_corrects",
        "corrects_id",
        sqlite_where=_CORRECTING,
        postgresql_where=_CORRECTING,
    ),
)

periods = role_table(
    ROLE,
    "mno_settlement_period",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("partner_id", String(64), nullable=False),
    Column("period_id", String(7), nullable=False),
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=False),
    Column("status", String(8), nullable=False),
    Column("closed_at", Float, nullable=True),
    Column("closed_by", String(80), nullable=True),
    UniqueConstraint("partner_id", "period_id", name="uq_mno_settlement_period"),
)

# Built once and run with bound values: see simulators/core/store.py.
_KEYS_PRESENT = select(ledger.c.idempotency_key).where(
    ledger.c.idempotency_key.in_(bindparam("keys", expanding=True))
)
_PERIOD_STATUS = select(periods.c.status).where(
    periods.c.partner_id == bindparam("partner_id"), periods.c.period_id == bindparam("period_id")
)
_CLOSED_PERIODS = select(periods.c.period_id).where(
    periods.c.partner_id == bindparam("partner_id"), periods.c.status == PERIOD_CLOSED
)


@dataclass(frozen=True)
class Entry:
    """One economic fact to post."""

    partner_id: str
    account_id: str
    kind: str
    entry_type: str
    source: str
    event_time: float
    amount_micros: int
    currency: str
    idempotency_key: str
    evidence_ref: str
    agreement_id: str | None = None
    agreement_version: int | None = None
    usage_type: str | None = None
    quantity: int | None = None
    unit: str | None = None
    corrects_id: int | None = None
    memo: str | None = None
    correlation_id: str | None = None
    service_id: str | None = None
    msisdn: str | None = None
    network_event_id: str | None = None
    visited_mcc: str | None = None
    tier_offset: int | None = None
    late: bool | None = None


# Every column but the entry number, in table order: what a bulk insert sends.
COLUMNS = tuple(column.name for column in ledger.columns if column.name != "id")


def bulk_insert(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """One executemany of plain tuples, past SQLAlchemy's per-row parameter processing
    (which cost more than SQLite's own insert on the usage path)."""
    if not rows:
        return
    quote = conn.dialect.identifier_preparer.quote
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    conn.exec_driver_sql(sql, list(rows))


def locking(conn: Connection, query: Any, *, shared: bool) -> Any:
    """The query with a row lock where the store has them (SQLite writers are serial)."""
    if conn.dialect.name == "sqlite":
        return query
    return query.with_for_update(read=shared)


class PeriodBook:
    """Where entries land, for the length of one write transaction.

    Each period consulted is locked for share (PostgreSQL): a close takes the lock for
    update, so an entry can never land in a period that closes under it.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._status: dict[tuple[str, str], str] = {}
        self._posting: dict[tuple[str, str], str] = {}

    def status(self, partner_id: str, period_id: str) -> str:
        key = (partner_id, period_id)
        found = self._status.get(key)
        if found is None:
            found = self._locked_status(partner_id, period_id)
            self._status[key] = found
        return found

    def _locked_status(self, partner_id: str, period_id: str) -> str:
        query = locking(self.conn, _PERIOD_STATUS, shared=True)
        keys = {"partner_id": partner_id, "period_id": period_id}
        found = self.conn.execute(query, keys).scalar()
        if found is None:
            start, end = month_bounds(period_id)
            insert_ignoring_conflicts(
                self.conn,
                periods,
                [
                    {
                        "partner_id": partner_id,
                        "period_id": period_id,
                        "start": start,
                        "end": end,
                        "status": PERIOD_OPEN,
                    }
                ],
                ["partner_id", "period_id"],
            )
            found = self.conn.execute(query, keys).scalar()
        return str(found)

    def posting_period(self, partner_id: str, service_period: str) -> str:
        """The period an entry dated in `service_period` lands in."""
        key = (partner_id, service_period)
        found = self._posting.get(key)
        if found is None:
            found = service_period
            while self.status(partner_id, found) == PERIOD_CLOSED:
                found = next_month(found)
            self._posting[key] = found
        return found


def row_values(entry: Entry, period_id: str, service_period: str, now: float) -> tuple[Any, ...]:
    """The entry as a row of COLUMNS."""
    values = {
        "idempotency_key": entry.idempotency_key,
        "partner_id": entry.partner_id,
        "account_id": entry.account_id,
        "agreement_id": entry.agreement_id,
        "agreement_version": entry.agreement_version,
        "kind": entry.kind,
        "entry_type": entry.entry_type,
        "source": entry.source,
        "event_time": entry.event_time,
        "processing_time": now,
        "period_id": period_id,
        "service_period": service_period,
        "usage_type": entry.usage_type,
        "quantity": entry.quantity,
        "unit": entry.unit,
        "amount_micros": entry.amount_micros,
        "currency": entry.currency,
        "evidence_ref": entry.evidence_ref,
        "corrects_id": entry.corrects_id,
        "memo": entry.memo,
        "correlation_id": entry.correlation_id,
        "service_id": entry.service_id,
        "msisdn": entry.msisdn,
        "network_event_id": entry.network_event_id,
        "visited_mcc": entry.visited_mcc,
        "tier_offset": entry.tier_offset,
        "late": entry.late,
    }
    return tuple(values[column] for column in COLUMNS)


def existing_keys(conn: Connection, keys: Iterable[str]) -> set[str]:
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(conn.execute(_KEYS_PRESENT, {"keys": chunk}).scalars())
    return found


def post(
    conn: Connection,
    entries: Sequence[Entry],
    *,
    now: float,
    book: PeriodBook | None = None,
) -> int:
    """Append entries; an entry whose idempotency key is already in the ledger is skipped.
    Returns how many were written."""
    if not entries:
        return 0
    book = book or PeriodBook(conn)
    seen = existing_keys(conn, (e.idempotency_key for e in entries))
    rows = []
    for entry in entries:
        if entry.idempotency_key in seen:
            continue
        seen.add(entry.idempotency_key)
        service_period = month_of(entry.event_time)
        period_id = book.posting_period(entry.partner_id, service_period)
        rows.append(row_values(entry, period_id, service_period, now))
    bulk_insert(conn, ledger, COLUMNS, rows)
    return len(rows)


def post_one(conn: Connection, entry: Entry, *, now: float) -> Any:
    """Post one entry (or find it, if its key was posted before); the stored row."""
    post(conn, [entry], now=now)
    return by_key(conn, entry.idempotency_key)


def by_key(conn: Connection, key: str) -> Any:
    return select_equal(conn, ledger, idempotency_key=key).one()


def get_entry(conn: Connection, partner_id: str, entry_id: int) -> Any:
    row = select_equal(conn, ledger, id=entry_id, partner_id=partner_id).first()
    if row is None:
        raise errors.LedgerEntryNotFound(f"No ledger entry {entry_id}")
    return row


def reversal_of(conn: Connection, entry_id: int) -> Any | None:
    return select_equal(conn, ledger, corrects_id=entry_id, entry_type=REVERSAL).first()


def reverse(
    conn: Connection,
    original: Any,
    *,
    idempotency_key: str,
    source: str,
    evidence_ref: str,
    now: float,
    memo: str | None = None,
    correlation_id: str | None = None,
) -> Any:
    """Cancel an entry with its exact negative, dated as the original (so its service period
    stays the original's) and landing in the first open period."""
    if original.entry_type == REVERSAL:
        raise errors.EntryNotReversible(f"Entry {original.id} is itself a reversal")
    done = reversal_of(conn, original.id)
    if done is not None and done.idempotency_key != idempotency_key:
        raise errors.EntryNotReversible(
            f"Entry {original.id} was already reversed by entry {done.id}"
        )
    return post_one(
        conn,
        Entry(
            partner_id=original.partner_id,
            account_id=original.account_id,
            kind=original.kind,
            entry_type=REVERSAL,
            source=source,
            event_time=original.event_time,
            amount_micros=-int(original.amount_micros),
            currency=original.currency,
            idempotency_key=idempotency_key,
            evidence_ref=evidence_ref,
            agreement_id=original.agreement_id,
            agreement_version=original.agreement_version,
            usage_type=original.usage_type,
            quantity=None if original.quantity is None else -int(original.quantity),
            unit=original.unit,
            corrects_id=original.id,
            memo=memo,
            correlation_id=correlation_id,
            service_id=original.service_id,
            msisdn=original.msisdn,
            network_event_id=original.network_event_id,
            visited_mcc=original.visited_mcc,
            tier_offset=original.tier_offset,
        ),
        now=now,
    )


def list_entries(
    conn: Connection,
    partner_id: str,
    *,
    period_id: str | None = None,
    kind: str | None = None,
    evidence_ref: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Any]]:
    conditions = [
        ledger.c.partner_id == partner_id,
        *equal_to(ledger, period_id=period_id, kind=kind, evidence_ref=evidence_ref),
    ]
    return count_and_page(conn, ledger, conditions, [ledger.c.id], offset, limit)


# --- periods ------------------------------------------------------------------------------


def period_row(conn: Connection, partner_id: str, period_id: str) -> Any | None:
    return select_equal(conn, periods, partner_id=partner_id, period_id=period_id).first()


def closed_periods(conn: Connection, partner_id: str) -> set[str]:
    return set(conn.execute(_CLOSED_PERIODS, {"partner_id": partner_id}).scalars())


def list_periods(
    conn: Connection, partner_id: str, *, status: str | None, offset: int, limit: int
) -> tuple[int, list[Any]]:
    conditions = [periods.c.partner_id == partner_id, *equal_to(periods, status=status)]
    return count_and_page(conn, periods, conditions, [periods.c.period_id], offset, limit)
