"""Usage disputes: an MVNO disputes rows it was charged for, within the agreement's window,
and the MNO's settlement staff accept or reject them.

The window (15 days in the reference agreement, from the version a row was rated under)
runs from the issue of the invoice that billed the row; a row not billed yet may be
disputed at any time. A later dispute is refused with DISPUTE_WINDOW_CLOSED, naming the
row and when its window closed.

An accepted dispute posts a credit per row: the reversal of the row's charge and, when the
partner claimed the right quantity, a correction charging that quantity at the row's own
place in its volume window under the row's own agreement version. Both land in the first
open period; a closed period is never touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    bindparam,
    select,
)

from simulators.core import audit
from simulators.core.clock import isoformat
from simulators.core.store import (
    count_and_page,
    equal_to,
    role_table,
    select_equal,
    update_equal,
)

from . import agreements, errors, events, ledger, rating
from .settlement import invoices

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime

ROLE = "mno"
SUBMITTED = "submitted"
ACCEPTED = "accepted"
REJECTED = "rejected"
DAY_S = 86400.0

disputes = role_table(
    ROLE,
    "mno_usage_dispute",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("status", String(12), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("resolved_at", Float, nullable=True),
    Column("resolved_by", String(80), nullable=True),
    Column("resolution_note", Text, nullable=True),
    Column("credit_micros", BigInteger, nullable=True),
    Column("currency", String(3), nullable=False),
)

dispute_items = role_table(
    ROLE,
    "mno_usage_dispute_item",
    Column("dispute_id", String(40), ForeignKey("mno_usage_dispute.id"), primary_key=True),
    Column("usage_id", String(40), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("entry_id", BigInteger, nullable=False, index=True),
    Column("claimed_quantity", BigInteger, nullable=True),
    Column("window_closes_at", Float, nullable=True),
)

# Built once and run with bound values: see simulators/core/store.py.
_INVOICE_ISSUED_AT = select(invoices.c.issued_at).where(
    invoices.c.partner_id == bindparam("partner_id"),
    invoices.c.period_id == bindparam("period_id"),
)
_HELD_ENTRIES = (
    select(dispute_items.c.entry_id)
    .join(disputes, disputes.c.id == dispute_items.c.dispute_id)
    .where(
        dispute_items.c.entry_id.in_(bindparam("entry_ids", expanding=True)),
        disputes.c.status == SUBMITTED,
    )
)
_ITEMS_OF_DISPUTES = (
    select(dispute_items)
    .where(dispute_items.c.dispute_id.in_(bindparam("dispute_ids", expanding=True)))
    .order_by(dispute_items.c.dispute_id, dispute_items.c.position)
)


def _window_closes(conn: Connection, usage: Any, book: agreements.VersionBook) -> float | None:
    """When the row's dispute window closes; None while it is not billed yet."""
    period = ledger.period_row(conn, usage.partner_id, usage.period_id)
    if period is None or period.status != ledger.PERIOD_CLOSED:
        return None
    issued = conn.execute(
        _INVOICE_ISSUED_AT, {"partner_id": usage.partner_id, "period_id": usage.period_id}
    ).scalar()
    version = next(v for v in book.of(usage.partner_id) if v.version == usage.agreement_version)
    billed = float(issued if issued is not None else period.closed_at)
    return billed + version.dispute_window_days * DAY_S


def _held(conn: Connection, entry_ids: Sequence[int]) -> set[int]:
    """Entries already in an open dispute."""
    return set(conn.execute(_HELD_ENTRIES, {"entry_ids": list(entry_ids)}).scalars())


def create_dispute(
    conn: Connection,
    *,
    partner_id: str,
    reason: str,
    items: Sequence[dict[str, Any]],
    now: float,
) -> Any:
    book = agreements.load_book(conn, [partner_id])
    rows = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        field = f"usage[{index}].id"
        usage_id = item["id"]
        if usage_id in seen:
            raise errors.UsageAlreadyDisputed(
                f"{field}: usage {usage_id} is named twice", field=field, usageId=usage_id
            )
        seen.add(usage_id)
        try:
            usage = rating.get_usage(conn, partner_id, usage_id)
        except errors.UsageNotFound:
            raise errors.UnknownUsage(
                f"{field}: no rated usage {usage_id} of this partner", field=field
            ) from None
        closes = _window_closes(conn, usage, book)
        if closes is not None and now > closes:
            raise errors.DisputeWindowClosed(
                f"{field}: usage {usage_id} was billed; its dispute window closed at "
                f"{isoformat(closes)}",
                field=field,
                usageId=usage_id,
                windowClosedAt=isoformat(closes),
            )
        claimed = item.get("claimedQuantity")
        if claimed is not None and not 0 <= int(claimed) < int(usage.quantity):
            raise errors.InvalidClaim(
                f"usage[{index}].claimedQuantity: {claimed} is not below the charged "
                f"{usage.quantity} {usage.unit}",
                field=f"usage[{index}].claimedQuantity",
            )
        if ledger.reversal_of(conn, usage.id) is not None:
            raise errors.UsageAlreadyDisputed(
                f"{field}: usage {usage_id} was already credited", field=field, usageId=usage_id
            )
        rows.append((usage, claimed, closes))
    held = _held(conn, [usage.id for usage, _, _ in rows])
    for index, (usage, _, _) in enumerate(rows):
        if usage.id in held:
            raise errors.UsageAlreadyDisputed(
                f"usage[{index}].id: usage {usage.idempotency_key} is in an open dispute",
                field=f"usage[{index}].id",
                usageId=usage.idempotency_key,
            )
    dispute_id = f"disp-{uuid.uuid4().hex[:24]}"
    conn.execute(
        disputes.insert(),
        {
            "id": dispute_id,
            "partner_id": partner_id,
            "status": SUBMITTED,
            "reason": reason,
            "created_at": now,
            "currency": rows[0][0].currency,
        },
    )
    conn.execute(
        dispute_items.insert(),
        [
            {
                "dispute_id": dispute_id,
                "usage_id": usage.idempotency_key,
                "position": position,
                "entry_id": usage.id,
                "claimed_quantity": None if claimed is None else int(claimed),
                "window_closes_at": closes,
            }
            for position, (usage, claimed, closes) in enumerate(rows)
        ],
    )
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=f"partner:{partner_id}",
        partner_id=partner_id,
        action="dispute.submitted",
        entity_type="usageDispute",
        entity_id=dispute_id,
        correlation_id=None,
        details={"usage": [usage.idempotency_key for usage, _, _ in rows]},
    )
    return get_dispute(conn, dispute_id)


def get_dispute(conn: Connection, dispute_id: str, partner_id: str | None = None) -> Any:
    if partner_id is None:
        row = select_equal(conn, disputes, id=dispute_id).first()
    else:
        row = select_equal(conn, disputes, id=dispute_id, partner_id=partner_id).first()
    if row is None:
        raise errors.DisputeNotFound(f"No dispute {dispute_id}")
    return row


def items_of(conn: Connection, dispute_ids: Sequence[str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {dispute_id: [] for dispute_id in dispute_ids}
    if not dispute_ids:
        return found
    for row in conn.execute(_ITEMS_OF_DISPUTES, {"dispute_ids": list(dispute_ids)}):
        found[row.dispute_id].append(row)
    return found


def list_disputes(
    conn: Connection,
    *,
    partner_id: str | None,
    status: str | None,
    offset: int,
    limit: int,
) -> tuple[int, list[Any]]:
    conditions = equal_to(disputes, partner_id=partner_id, status=status)
    order = [disputes.c.created_at, disputes.c.id]
    return count_and_page(conn, disputes, conditions, order, offset, limit)


def resolve_dispute(
    runtime: Runtime,
    conn: Connection,
    *,
    dispute_id: str,
    accept: bool,
    note: str | None,
    now: float,
    actor: str,
    correlation_id: str | None,
) -> Any:
    dispute = get_dispute(conn, dispute_id)
    if dispute.status != SUBMITTED:
        raise errors.DisputeResolved(f"Dispute {dispute_id} is {dispute.status}")
    credit = 0
    if accept:
        book = agreements.load_book(conn, [dispute.partner_id])
        for item in items_of(conn, [dispute_id])[dispute_id]:
            original = ledger.get_entry(conn, dispute.partner_id, int(item.entry_id))
            reversal = ledger.reverse(
                conn,
                original,
                idempotency_key=f"dispute:{dispute_id}:reversal:{item.usage_id}",
                source=ledger.SOURCE_DISPUTE,
                evidence_ref=dispute_id,
                now=now,
                memo=f"dispute {dispute_id} accepted",
                correlation_id=correlation_id,
            )
            credit += int(reversal.amount_micros)
            if item.claimed_quantity:
                credit += _post_correction(
                    conn,
                    original,
                    int(item.claimed_quantity),
                    book,
                    dispute_id,
                    now,
                    correlation_id,
                )
    update_equal(
        conn,
        disputes,
        {"id": dispute_id},
        status=ACCEPTED if accept else REJECTED,
        resolved_at=now,
        resolved_by=actor,
        resolution_note=note,
        credit_micros=credit if accept else None,
    )
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=actor,
        partner_id=dispute.partner_id,
        action="dispute.accepted" if accept else "dispute.rejected",
        entity_type="usageDispute",
        entity_id=dispute_id,
        correlation_id=correlation_id,
        details={"creditMicros": credit},
    )
    resolved = get_dispute(conn, dispute_id)
    events.publish(
        runtime,
        conn,
        partner_id=dispute.partner_id,
        event_type=events.DISPUTE_STATE_CHANGE,
        resource_name="usageDispute",
        resource=dispute_json(
            resolved, items_of(conn, [dispute_id])[dispute_id], events.public_base(runtime)
        ),
        correlation_id=correlation_id,
        now=now,
    )
    return resolved


def _post_correction(
    conn: Connection,
    original: Any,
    quantity: int,
    book: agreements.VersionBook,
    dispute_id: str,
    now: float,
    correlation_id: str | None,
) -> int:
    version = next(
        v for v in book.of(original.partner_id) if v.version == original.agreement_version
    )
    amount = rating.rate_at(version, original.usage_type, int(original.tier_offset), quantity)
    ledger.post_one(
        conn,
        ledger.Entry(
            partner_id=original.partner_id,
            account_id=original.account_id,
            kind=ledger.USAGE,
            entry_type=ledger.CORRECTION,
            source=ledger.SOURCE_DISPUTE,
            event_time=original.event_time,
            amount_micros=amount,
            currency=original.currency,
            idempotency_key=f"dispute:{dispute_id}:correction:{original.idempotency_key}",
            evidence_ref=dispute_id,
            agreement_id=original.agreement_id,
            agreement_version=original.agreement_version,
            usage_type=original.usage_type,
            quantity=quantity,
            unit=original.unit,
            corrects_id=original.id,
            memo=f"quantity corrected by dispute {dispute_id}",
            correlation_id=correlation_id,
            service_id=original.service_id,
            msisdn=original.msisdn,
            network_event_id=original.network_event_id,
            visited_mcc=original.visited_mcc,
            tier_offset=original.tier_offset,
        ),
        now=now,
    )
    return amount


def dispute_json(row: Any, items: Sequence[Any], base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "href": f"{base_url}/v1/wholesale/dispute/{row.id}",
        "@type": "UsageDispute",
        "partner": {"id": row.partner_id},
        "status": row.status,
        "reason": row.reason,
        "creationDate": isoformat(row.created_at),
        "usage": [
            {
                "id": item.usage_id,
                "href": f"{base_url}/v1/wholesale/usage/{item.usage_id}",
                **(
                    {"claimedQuantity": int(item.claimed_quantity)}
                    if item.claimed_quantity is not None
                    else {}
                ),
                **(
                    {"disputeWindowEnd": isoformat(item.window_closes_at)}
                    if item.window_closes_at is not None
                    else {}
                ),
            }
            for item in items
        ],
    }
    if row.resolved_at is not None:
        body["resolutionDate"] = isoformat(row.resolved_at)
        if row.resolution_note:
            body["resolutionNote"] = row.resolution_note
    if row.credit_micros is not None:
        body["credit"] = events.money(int(row.credit_micros), row.currency)
    return body
