"""Wholesale mediation: usage records from the network, deduplicated, rated under the
agreement in force at their event time, and posted to the settlement ledger.

A record's identity is partner + agreement + service + usage type + event time + network
event id. The same record delivered twice is one usage row and one charge; the second copy
is counted as a duplicate and dropped. Records arrive late, out of order, after their day's
summary was published or after their period closed: each is still rated under the version
of its event time, and lands in the first open period.

Volume tiers are counted per partner, usage type and volume window (day or month of the
event), in the order the MNO rated the events: each row keeps its place in the window
(`tier_offset`), so a correction is rated at the same place.

Built for batches (the benchmark feeds a million records through it): one query per
thousand identities, one insert for the rows and one for the ledger entries of a batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    String,
    bindparam,
    select,
)

from simulators.core.store import (
    count_and_page,
    equal_to,
    insert_ignoring_conflicts,
    role_table,
    update_equal,
)

from . import agreements, errors, ledger
from .agreements import RATED_UNITS, AgreementVersion, VersionBook, day_of
from .partners import wholesale_partners

if TYPE_CHECKING:
    from simulators.core.tasks import Tasks

ROLE = "mno"
PUBLISH_SUMMARY = "mno.usage.publish_summary"
# A day's usage summary is published this long after the day ends (UTC): records that
# arrive later are late, and the day's summary is published again with them.
SUMMARY_DELAY_S = 2 * 3600.0

DAY_OPEN = "open"
DAY_PUBLISHED = "published"
DAY_REVISING = "revising"

# Why a usage row is not rated.
NO_AGREEMENT = "NO_AGREEMENT_IN_FORCE"

unrated_usage = role_table(
    ROLE,
    "mno_unrated_usage",
    # Usage no agreement was in force for: kept with its identity, never charged.
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("service_id", String(40), nullable=False),
    Column("msisdn", String(16), nullable=False),
    Column("network_event_id", String(64), nullable=False),
    Column("usage_type", String(8), nullable=False),
    Column("usage_date", Float, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("unit", String(8), nullable=False),
    Column("visited_mcc", String(3), nullable=True),
    Column("received_at", Float, nullable=False),
    Column("reason", String(40), nullable=False),
)

tier_volumes = role_table(
    ROLE,
    "mno_tier_volume",
    Column("partner_id", String(64), primary_key=True),
    Column("usage_type", String(8), primary_key=True),
    Column("window_id", String(10), primary_key=True),
    Column("volume", BigInteger, nullable=False),
)

usage_days = role_table(
    ROLE,
    "mno_usage_day",
    Column("partner_id", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("state", String(10), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("duplicates", BigInteger, nullable=False),
)

# Built once and run with bound values: see simulators/core/store.py.
_TIER_VOLUME = select(tier_volumes.c.volume).where(
    tier_volumes.c.partner_id == bindparam("partner_id"),
    tier_volumes.c.usage_type == bindparam("usage_type"),
    tier_volumes.c.window_id == bindparam("window_id"),
)
_DAY_STATE = select(usage_days.c.state).where(
    usage_days.c.partner_id == bindparam("partner_id"), usage_days.c.day == bindparam("day")
)
_ADD_DUPLICATES = (
    usage_days.update()
    .where(
        usage_days.c.partner_id == bindparam("of_partner"), usage_days.c.day == bindparam("of_day")
    )
    .values(duplicates=usage_days.c.duplicates + bindparam("count"))
)
_REGISTRY = select(
    wholesale_partners.c.id, wholesale_partners.c.account_id, wholesale_partners.c.agreement_id
).where(wholesale_partners.c.id.in_(bindparam("partner_ids", expanding=True)))

# The ledger row of a rated usage, built as a tuple in the ledger's column order.
_USAGE_COLUMNS = (
    "idempotency_key",
    "partner_id",
    "account_id",
    "agreement_id",
    "agreement_version",
    "kind",
    "entry_type",
    "source",
    "event_time",
    "processing_time",
    "period_id",
    "service_period",
    "usage_type",
    "quantity",
    "unit",
    "amount_micros",
    "currency",
    "evidence_ref",
    "correlation_id",
    "service_id",
    "msisdn",
    "network_event_id",
    "visited_mcc",
    "tier_offset",
    "late",
)


class NetworkUsage(NamedTuple):
    """One usage record as the network hands it to mediation (a tuple: a feed makes
    millions of them)."""

    network_event_id: str
    partner_id: str
    service_id: str
    msisdn: str
    usage_type: str
    event_time: float
    quantity: int
    unit: str
    visited_mcc: str | None = None


@dataclass
class IngestOutcome:
    received: int = 0
    rated: int = 0
    unrated: int = 0
    duplicates: int = 0
    late: int = 0
    usage_ids: list[str] = field(default_factory=list)


def identity_key(record: NetworkUsage, agreement_id: str) -> str:
    """partnerId + agreementId + serviceId + usageType + eventTime + networkEventId."""
    stamp = round(record.event_time * 1000)
    digest = hashlib.blake2b(
        (
            f"{record.partner_id}|{agreement_id}|{record.service_id}|{record.usage_type}|"
            f"{stamp}|{record.network_event_id}"
        ).encode(),
        digest_size=8,
    ).hexdigest()
    return f"u{stamp:013d}{digest}"


_CHUNK = 500


def _existing_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of these usage identities the MNO already holds, rated or not.

    Plain SQL: compiling an IN of hundreds of bound parameters cost more than the lookup.
    PostgreSQL gets one array parameter instead (`= ANY`): its driver prepares a statement
    run often, and a generic plan made while the ledger was still small kept scanning it
    whole as it grew; an array keeps the unique index in every plan."""
    found: set[str] = set()
    quote = conn.dialect.identifier_preparer.quote
    ledger_table, unrated_table = quote(ledger.ledger.name), quote(unrated_usage.name)
    if conn.dialect.name == "postgresql":
        for sql in (
            f"SELECT idempotency_key FROM {ledger_table} WHERE idempotency_key = ANY(%s)",
            f"SELECT id FROM {unrated_table} WHERE id = ANY(%s)",
        ):
            found.update(row[0] for row in conn.exec_driver_sql(sql, (list(ids),)))
        return found
    queries: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = tuple(ids[start : start + _CHUNK])
        if len(chunk) not in queries:
            held = ", ".join(["?"] * len(chunk))
            queries[len(chunk)] = (
                f"SELECT idempotency_key FROM {ledger_table} WHERE idempotency_key IN ({held})",
                f"SELECT id FROM {unrated_table} WHERE id IN ({held})",
            )
        for sql in queries[len(chunk)]:
            found.update(row[0] for row in conn.exec_driver_sql(sql, chunk))
    return found


class _Volumes:
    """The volume windows a batch touches, read (and locked) once, written back once."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.volumes: dict[tuple[str, str, str], int] = {}
        self.loaded: set[tuple[str, str, str]] = set()

    def take(self, key: tuple[str, str, str], quantity: int) -> int:
        if key not in self.volumes:
            self._load(key)
        offset = self.volumes[key]
        self.volumes[key] = offset + quantity
        return offset

    def _load(self, key: tuple[str, str, str]) -> None:
        partner_id, usage_type, window_id = key
        insert_ignoring_conflicts(
            self.conn,
            tier_volumes,
            [
                {
                    "partner_id": partner_id,
                    "usage_type": usage_type,
                    "window_id": window_id,
                    "volume": 0,
                }
            ],
            ["partner_id", "usage_type", "window_id"],
        )
        query = ledger.locking(self.conn, _TIER_VOLUME, shared=False)
        found = self.conn.execute(
            query, {"partner_id": partner_id, "usage_type": usage_type, "window_id": window_id}
        )
        self.volumes[key] = int(found.scalar_one())
        self.loaded.add(key)

    def save(self) -> None:
        for (partner_id, usage_type, window_id), volume in self.volumes.items():
            update_equal(
                self.conn,
                tier_volumes,
                {"partner_id": partner_id, "usage_type": usage_type, "window_id": window_id},
                volume=volume,
            )


class _Days:
    """The summary days a batch touches: whether a record is late (its day closed, that is
    its summary was due, before it arrived), and which publications to schedule."""

    def __init__(self, conn: Connection, tasks: Tasks | None, now: float) -> None:
        self.conn = conn
        self.tasks = tasks
        self.now = now
        self.late: dict[tuple[str, str], bool] = {}
        self.duplicates: dict[tuple[str, str], int] = {}

    def is_late(self, partner_id: str, day: str) -> bool:
        key = (partner_id, day)
        late = self.late.get(key)
        if late is None:
            late = self._touch(partner_id, day)
            self.late[key] = late
        return late

    def _touch(self, partner_id: str, day: str) -> bool:
        query = ledger.locking(self.conn, _DAY_STATE, shared=False)
        keys = {"partner_id": partner_id, "day": day}
        _, end = agreements.day_bounds(day)
        due = end + SUMMARY_DELAY_S
        late = self.now >= due
        state = self.conn.execute(query, keys).scalar()
        if state is None:
            insert_ignoring_conflicts(
                self.conn,
                usage_days,
                [
                    {
                        "partner_id": partner_id,
                        "day": day,
                        "state": DAY_OPEN,
                        "revision": 0,
                        "duplicates": 0,
                    }
                ],
                ["partner_id", "day"],
            )
            state = self.conn.execute(query, keys).scalar_one()
            if state == DAY_OPEN:
                # A day first seen after it closed is published at once.
                self._schedule(partner_id, day, self.now if late else due)
        elif state == DAY_PUBLISHED and late:
            # A record for a day already published: publish that day again, now.
            update_equal(self.conn, usage_days, keys, state=DAY_REVISING)
            self._schedule(partner_id, day, self.now)
        return late

    def count_duplicate(self, partner_id: str, day: str) -> None:
        self.is_late(partner_id, day)
        key = (partner_id, day)
        self.duplicates[key] = self.duplicates.get(key, 0) + 1

    def save(self) -> None:
        for (partner_id, day), count in self.duplicates.items():
            self.conn.execute(
                _ADD_DUPLICATES, {"of_partner": partner_id, "of_day": day, "count": count}
            )

    def _schedule(self, partner_id: str, day: str, due: float) -> None:
        if self.tasks is None:
            return
        self.tasks.schedule(
            self.conn,
            role=ROLE,
            kind=PUBLISH_SUMMARY,
            payload={"partnerId": partner_id, "day": day},
            due_at=due,
            correlation_id=None,
        )


class _Calendar:
    """Day and month of an event time, worked out once per day of the batch."""

    def __init__(self) -> None:
        self._days: dict[int, tuple[str, str]] = {}

    def of(self, epoch: float) -> tuple[str, str]:
        number = int(epoch // 86400)
        found = self._days.get(number)
        if found is None:
            found = (day_of(epoch), agreements.month_of(epoch))
            self._days[number] = found
        return found


def ingest(
    conn: Connection,
    records: Sequence[NetworkUsage],
    *,
    now: float,
    tasks: Tasks | None,
    book: VersionBook | None = None,
    correlation_id: str | None = None,
) -> IngestOutcome:
    """Deduplicate, rate and post one batch of network usage records, all or nothing."""
    outcome = IngestOutcome(received=len(records))
    if not records:
        return outcome
    partner_ids = sorted({record.partner_id for record in records})
    registry = {
        row.id: (row.account_id, row.agreement_id)
        for row in conn.execute(_REGISTRY, {"partner_ids": partner_ids})
    }
    unknown = [partner for partner in partner_ids if partner not in registry]
    if unknown:
        raise errors.WholesalePartnerNotFound(f"No wholesale partner {unknown[0]}")
    book = book or agreements.load_book(conn, partner_ids)
    calendar = _Calendar()
    agreement_of = {partner: found[1] for partner, found in registry.items()}
    blake2b = hashlib.blake2b

    # The loops below run once per record of a feed of millions: plain locals and tuple
    # unpacking, the identity and the caches inlined.
    keyed: dict[str, NetworkUsage] = {}
    days = _Days(conn, tasks, now)
    for record in records:
        event_id, partner_id, service_id, _msisdn, usage_type, at, _quantity, unit, _mcc = record
        if unit != RATED_UNITS.get(usage_type):
            raise errors.UnitNotRated(
                f"{usage_type} usage is mediated in {RATED_UNITS.get(usage_type)}, not {unit}"
            )
        stamp = round(at * 1000)
        key = (
            f"u{stamp:013d}"
            + blake2b(
                f"{partner_id}|{agreement_of[partner_id]}|{service_id}|{usage_type}|{stamp}|"
                f"{event_id}".encode(),
                digest_size=8,
            ).hexdigest()
        )
        if key in keyed:
            outcome.duplicates += 1
            days.count_duplicate(partner_id, calendar.of(at)[0])
        else:
            keyed[key] = record
    for key in _existing_ids(conn, list(keyed)):
        record = keyed.pop(key)
        outcome.duplicates += 1
        days.count_duplicate(record.partner_id, calendar.of(record.event_time)[0])

    volumes = _Volumes(conn)
    periods = ledger.PeriodBook(conn)
    rated: list[tuple[Any, ...]] = []
    unrated: list[dict[str, Any]] = []
    late_count = 0
    late_of: dict[tuple[str, str], bool] = {}
    posting_of: dict[tuple[str, str], str] = {}
    offsets = volumes.volumes
    usage, original, source = ledger.USAGE, ledger.ORIGINAL, ledger.SOURCE_NETWORK
    for key, record in keyed.items():
        event_id, partner_id, service_id, msisdn, usage_type, at, quantity, unit, mcc = record
        version: AgreementVersion | None = book.in_force(partner_id, at)
        day, month = calendar.of(at)
        late = late_of.get((partner_id, day))
        if late is None:
            late = late_of[(partner_id, day)] = days.is_late(partner_id, day)
        if late:
            late_count += 1
        if version is None:
            unrated.append(
                {
                    "id": key,
                    "partner_id": partner_id,
                    "service_id": service_id,
                    "msisdn": msisdn,
                    "network_event_id": event_id,
                    "usage_type": usage_type,
                    "usage_date": at,
                    "quantity": quantity,
                    "unit": unit,
                    "visited_mcc": mcc,
                    "received_at": now,
                    "reason": NO_AGREEMENT,
                }
            )
            continue
        rate = version.rates[usage_type]
        window = (partner_id, usage_type, day if rate.window == "day" else month)
        offset = offsets.get(window)
        if offset is None:
            offset = volumes.take(window, 0)
        offsets[window] = offset + quantity
        amount = rate.charge(offset, quantity)
        period_id = posting_of.get((partner_id, month))
        if period_id is None:
            period_id = posting_of[(partner_id, month)] = periods.posting_period(partner_id, month)
        rated.append(
            (
                key,
                partner_id,
                registry[partner_id][0],
                agreement_of[partner_id],
                version.version,
                usage,
                original,
                source,
                at,
                now,
                period_id,
                month,
                usage_type,
                quantity,
                unit,
                amount,
                version.currency,
                key,
                correlation_id,
                service_id,
                msisdn,
                event_id,
                mcc,
                offset,
                late,
            )
        )
    outcome.late = late_count
    outcome.usage_ids = list(keyed)
    outcome.rated = len(rated)
    outcome.unrated = len(unrated)
    ledger.bulk_insert(conn, ledger.ledger, _USAGE_COLUMNS, rated)
    if unrated:
        conn.execute(unrated_usage.insert(), unrated)
    volumes.save()
    days.save()
    return outcome


def rate_at(version: AgreementVersion, usage_type: str, offset: int, quantity: int) -> int:
    """What `quantity` costs at `offset` in its volume window under `version`."""
    return version.rates[usage_type].charge(offset, quantity)


# --- reading ----------------------------------------------------------------------------------

_USAGE_ROWS = select(ledger.ledger).where(
    ledger.ledger.c.kind == ledger.USAGE, ledger.ledger.c.entry_type == ledger.ORIGINAL
)
_USAGE_ROW = _USAGE_ROWS.where(
    ledger.ledger.c.idempotency_key == bindparam("usage_id"),
    ledger.ledger.c.partner_id == bindparam("partner_id"),
)


def get_usage(conn: Connection, partner_id: str, usage_id: str) -> Any:
    """One rated usage row of the partner: the ledger's original charge for it."""
    row = conn.execute(_USAGE_ROW, {"usage_id": usage_id, "partner_id": partner_id}).first()
    if row is None:
        raise errors.UsageNotFound(f"No usage record {usage_id}")
    return row


def list_usage(
    conn: Connection,
    partner_id: str,
    *,
    usage_type: str | None = None,
    period_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
    msisdn: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Any]]:
    table = ledger.ledger
    conditions = [
        table.c.partner_id == partner_id,
        table.c.kind == ledger.USAGE,
        table.c.entry_type == ledger.ORIGINAL,
        *equal_to(table, usage_type=usage_type, period_id=period_id, msisdn=msisdn),
    ]
    if since is not None:
        conditions.append(table.c.event_time >= since)
    if until is not None:
        conditions.append(table.c.event_time < until)
    order = [table.c.event_time, table.c.id]
    return count_and_page(conn, table, conditions, order, offset, limit)
