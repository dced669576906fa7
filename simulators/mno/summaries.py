"""Daily usage summaries per wholesale partner, published on the simulated clock.

A day (UTC) is summarised two hours after it ends (`rating.SUMMARY_DELAY_S`): records,
quantity and rated amount per usage type, roaming by visited network, and the duplicates
mediation dropped. A record that arrives later is late: it is rated as usual, and the day
is published again at once as a new revision that counts it. Each publication is a
`UsageSummaryCreateEvent` to the partner's wholesale hub.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    case,
    func,
    select,
)

from simulators.core.store import (
    count_and_page,
    equal_to,
    partner_row,
    role_table,
    update_equal,
)

from . import agreements, errors, events, ledger, rating
from .agreements import day_bounds

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime
    from simulators.core.tasks import Task

ROLE = "mno"

usage_summaries = role_table(
    ROLE,
    "mno_usage_summary",
    Column("id", String(100), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("day", String(10), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("published_at", Float, nullable=False),
    Column("by_type", JSON, nullable=False),
    Column("roaming", JSON, nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("late_records", BigInteger, nullable=False),
    Column("duplicates", BigInteger, nullable=False),
    Column("unrated", BigInteger, nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    Column("currency", String(3), nullable=True),
    UniqueConstraint("partner_id", "day", "revision", name="uq_mno_usage_summary_revision"),
)


def summary_id(partner_id: str, day: str, revision: int) -> str:
    return f"us-{partner_id}-{day}-r{revision}"


# Built once and run with bound values: see simulators/core/store.py.
_ledger = ledger.ledger
# A day's rated usage: a usage entry's idempotency key starts with its event time in
# milliseconds, so a range of keys is a range of time the unique index answers.
_USAGE_OF_DAY = (
    _ledger.c.idempotency_key >= bindparam("first_key"),
    _ledger.c.idempotency_key < bindparam("end_key"),
    _ledger.c.partner_id == bindparam("partner_id"),
    _ledger.c.kind == ledger.USAGE,
    _ledger.c.entry_type == ledger.ORIGINAL,
)
_USAGE_BY_TYPE = (
    select(
        _ledger.c.usage_type,
        func.count(),
        func.sum(_ledger.c.quantity),
        func.sum(_ledger.c.amount_micros),
        func.sum(case((_ledger.c.late.is_(True), 1), else_=0)),
        func.min(_ledger.c.currency),
    )
    .where(*_USAGE_OF_DAY)
    .group_by(_ledger.c.usage_type)
    .order_by(_ledger.c.usage_type)
)
_ROAMING_BY_NETWORK = (
    select(_ledger.c.visited_mcc, _ledger.c.usage_type, func.count(), func.sum(_ledger.c.quantity))
    .where(*_USAGE_OF_DAY, _ledger.c.visited_mcc.is_not(None))
    .group_by(_ledger.c.visited_mcc, _ledger.c.usage_type)
    .order_by(_ledger.c.visited_mcc, _ledger.c.usage_type)
)
_UNRATED_OF_DAY = (
    select(func.count())
    .select_from(rating.unrated_usage)
    .where(
        rating.unrated_usage.c.partner_id == bindparam("partner_id"),
        rating.unrated_usage.c.usage_date >= bindparam("since"),
        rating.unrated_usage.c.usage_date < bindparam("until"),
    )
)
_DAY = select(rating.usage_days).where(
    rating.usage_days.c.partner_id == bindparam("partner_id"),
    rating.usage_days.c.day == bindparam("day"),
)
_LATEST_REVISIONS = (
    select(usage_summaries.c.day, func.max(usage_summaries.c.revision))
    .where(usage_summaries.c.partner_id == bindparam("partner_id"))
    .group_by(usage_summaries.c.day)
)


def aggregate(conn: Connection, partner_id: str, day: str) -> dict[str, Any]:
    """What the partner's rated usage of one day adds up to, read from the ledger."""
    start, end = day_bounds(day)
    of_day = {
        "first_key": f"u{round(start * 1000):013d}",
        "end_key": f"u{round(end * 1000):013d}",
        "partner_id": partner_id,
    }
    by_type = []
    currency = None
    records = late = amount = 0
    for row in conn.execute(_USAGE_BY_TYPE, of_day):
        usage_type, count, quantity, micros, late_count, currency = row
        by_type.append(
            {
                "usageType": usage_type,
                "usageCount": int(count),
                "quantity": int(quantity or 0),
                "unit": agreements.RATED_UNITS[usage_type],
                "amountMicros": int(micros or 0),
            }
        )
        records += int(count)
        late += int(late_count or 0)
        amount += int(micros or 0)
    roaming = [
        {
            "visitedMcc": mcc,
            "usageType": usage_type,
            "usageCount": int(count),
            "quantity": int(quantity or 0),
            "unit": agreements.RATED_UNITS[usage_type],
        }
        for mcc, usage_type, count, quantity in conn.execute(_ROAMING_BY_NETWORK, of_day)
    ]
    unrated = conn.execute(
        _UNRATED_OF_DAY, {"partner_id": partner_id, "since": start, "until": end}
    ).scalar_one()
    return {
        "by_type": by_type,
        "roaming": roaming,
        "records": records,
        "late_records": late,
        "unrated": int(unrated),
        "amount_micros": amount,
        "currency": currency,
    }


def publish(
    runtime: Runtime, conn: Connection, partner_id: str, day: str, now: float
) -> Any | None:
    """Publish the day's summary (or its next revision); None when nothing changed since."""
    query = ledger.locking(conn, _DAY, shared=False)
    state = conn.execute(query, {"partner_id": partner_id, "day": day}).first()
    if state is None or state.state == rating.DAY_PUBLISHED:
        return None
    totals = aggregate(conn, partner_id, day)
    revision = int(state.revision) + 1
    summary = {
        "id": summary_id(partner_id, day, revision),
        "partner_id": partner_id,
        "day": day,
        "revision": revision,
        "published_at": now,
        "duplicates": int(state.duplicates),
        **totals,
    }
    conn.execute(usage_summaries.insert(), summary)
    update_equal(
        conn,
        rating.usage_days,
        {"partner_id": partner_id, "day": day},
        state=rating.DAY_PUBLISHED,
        revision=revision,
    )
    row = get_summary(conn, partner_id, summary["id"])
    events.publish(
        runtime,
        conn,
        partner_id=partner_id,
        event_type=events.USAGE_SUMMARY_CREATE,
        resource_name="usageSummary",
        resource=summary_json(row, events.public_base(runtime), latest=True),
        correlation_id=None,
        now=now,
    )
    return row


def run_publish(runtime: Runtime, task: Task) -> None:
    with runtime.store.write() as conn:
        publish(
            runtime,
            conn,
            str(task.payload["partnerId"]),
            str(task.payload["day"]),
            runtime.clock.now(conn),
        )


def get_summary(conn: Connection, partner_id: str, summary_ref: str) -> Any:
    row = partner_row(conn, usage_summaries, summary_ref, partner_id)
    if row is None:
        raise errors.UsageSummaryNotFound(f"No usage summary {summary_ref}")
    return row


def latest_revisions(conn: Connection, partner_id: str) -> dict[str, int]:
    return {
        day: int(revision)
        for day, revision in conn.execute(_LATEST_REVISIONS, {"partner_id": partner_id})
    }


def list_summaries(
    conn: Connection,
    partner_id: str,
    *,
    day: str | None,
    offset: int,
    limit: int,
) -> tuple[int, list[Any]]:
    conditions = [usage_summaries.c.partner_id == partner_id, *equal_to(usage_summaries, day=day)]
    order = [usage_summaries.c.day, usage_summaries.c.revision]
    return count_and_page(conn, usage_summaries, conditions, order, offset, limit)


def summary_json(row: Any, base_url: str, *, latest: bool) -> dict[str, Any]:
    """TMF635-aligned: one day's usage of one partner, as published."""
    start, end = day_bounds(row.day)
    currency = row.currency
    body: dict[str, Any] = {
        "id": row.id,
        "href": f"{base_url}/v1/wholesale/usageSummary/{row.id}",
        "@type": "UsageSummary",
        "partner": {"id": row.partner_id},
        "usageDate": row.day,
        "validFor": {
            "startDateTime": events.iso(start),
            "endDateTime": events.iso(end),
        },
        "revision": int(row.revision),
        "status": "published" if latest else "superseded",
        "publishedDate": events.iso(row.published_at),
        "usageCount": int(row.records),
        "lateUsageCount": int(row.late_records),
        "duplicatesDropped": int(row.duplicates),
        "unratedUsageCount": int(row.unrated),
        "usageTypeSummary": [
            {
                "usageType": item["usageType"],
                "usageCount": item["usageCount"],
                "quantity": item["quantity"],
                "unit": item["unit"],
                **(
                    {"ratedAmount": events.money(item["amountMicros"], currency)}
                    if currency
                    else {}
                ),
            }
            for item in row.by_type
        ],
        "roaming": list(row.roaming),
    }
    if currency:
        body["totalRatedAmount"] = events.money(int(row.amount_micros), currency)
    return body
