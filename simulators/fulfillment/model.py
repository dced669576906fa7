"""Fulfillment's domain: SIM production orders and their vendor files, the stock they yield
once loaded at the MVNE, shipments moved by the carrier on the simulated clock, the ICCID
mapping handoff, returns and eSIM profiles.

No Flask here; every function takes a Connection and the simulated time. A function that
changes state answers an `Outcome`: the changed resource, the events to publish about it
and the steps to queue (the model knows neither the outbox nor the task runner).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    or_,
    select,
)

from simulators.core import audit
from simulators.core.clock import to_datetime
from simulators.core.identifiers import iccid_for, imsi_for, is_valid_eid
from simulators.core.store import (
    count_and_page,
    equal_to,
    partner_row,
    role_table,
    select_equal,
    update_equal,
)

from . import errors, vendor

ROLE = "fulfillment"
HOUR = 3600.0
DAY = 24 * HOUR

# --- production ------------------------------------------------------------------------------

ACKNOWLEDGED = "acknowledged"
IN_PRODUCTION = "inProduction"
PRODUCED = "produced"
LOADING = "loading"
LOADED = "loaded"
REJECTED = "rejected"
FAILED = "failed"

# The vendor confirms an order after 5 min; personalising cards takes longer than
# generating eSIM profiles.
VENDOR_ACCEPT_S = 5 * 60.0
PRODUCTION_S = {"UICC": 2 * HOUR, "eSIM": 15 * 60.0}
# Calls to the MVNE before a load (or a mapping) is given up as MVNE_UNREACHABLE.
MVNE_ATTEMPTS = 8

# Each partner's own range: E.118 ICCIDs 89 44 77 <block><9 digits>, and IMSIs on the test
# network 001/01 whose MSIN is <block> 5 <7 digits>. The MVNE's seeded pools use issuer 01
# and the lower half of each hundred million MSINs, so the two never collide.
ICCID_COUNTRY = "44"
ICCID_ISSUER = "77"
RANGE_SIZE = 50_000_000
MAX_BLOCK = 99
_ICCID_BASE = int("89" + ICCID_COUNTRY + ICCID_ISSUER) * 10**12
_IMSI_BASE = 101 * 10**10  # "00101" followed by the 10-digit MSIN

# --- stock -------------------------------------------------------------------------------------

AVAILABLE = "available"
ALLOCATED = "allocated"
SHIPPED = "shipped"
DELIVERED_STOCK = "delivered"
RETURNED = "returned"
QUARANTINED = "quarantined"
LOST = "lost"

# eSIM profile states (SGP.22 as an SM-DP+ reports them).
PROFILE_AVAILABLE = "available"
PROFILE_ALLOCATED = "allocated"
RELEASED = "released"
DOWNLOADED = "downloaded"
INSTALLED = "installed"
ENABLED = "enabled"
PROFILE_STEP_S = 30.0

# --- shipments -------------------------------------------------------------------------------

INFO_RECEIVED = "InfoReceived"
IN_TRANSIT = "InTransit"
OUT_FOR_DELIVERY = "OutForDelivery"
ATTEMPT_FAIL = "AttemptFail"
DELIVERED = "Delivered"
EXCEPTION = "Exception"
EXPIRED = "Expired"

# Seconds from the label to each carrier scan, and the delivery promise (the SLA).
SERVICE_LEVELS: dict[str, dict[str, float]] = {
    "express": {"pickup": 2 * HOUR, "outForDelivery": 18 * HOUR, "deliver": 22 * HOUR,
                "sla": 1 * DAY},
    "standard": {"pickup": 6 * HOUR, "outForDelivery": 48 * HOUR, "deliver": 52 * HOUR,
                 "sla": 3 * DAY},
    "economy": {"pickup": 12 * HOUR, "outForDelivery": 96 * HOUR, "deliver": 100 * HOUR,
                "sla": 5 * DAY},
    # An eSIM: the profile is released and its activation code e-mailed.
    "digital": {"pickup": 60.0, "deliver": 120.0, "sla": 1 * HOUR},
}  # fmt: skip
PHYSICAL_LEVELS = ("express", "standard", "economy")
CARRIER = "Handoff Post"
DIGITAL_CARRIER = "SM-DP+ e-mail"
MAX_DELIVERY_ATTEMPTS = 3
# AfterShip's rule, which carriers' tracking feeds follow: no scan for 30 days is Expired.
EXPIRY_S = 30 * DAY
RETURN_TRANSIT_S = 2 * DAY
MAPPING_LATE_DEFAULT_S = DAY

# Mapping statuses.
PENDING = "pending"
SENT = "sent"
MAPPING_FAILED = "failed"
NOT_SENT = "notSent"
WITHDRAWN = "withdrawn"
CANCELLED = "cancelled"

# Steps on the clock (the role registers a handler for each).
VENDOR_ACCEPT = "fulfillment.vendor.accept"
VENDOR_DELIVER = "fulfillment.vendor.deliver"
BATCH_LOAD = "fulfillment.batch.load"
CARRIER_SCAN = "fulfillment.carrier.scan"
SLA_CHECK = "fulfillment.sla.check"
MAPPING_SEND = "fulfillment.mapping.send"
MAPPING_WITHDRAW = "fulfillment.mapping.withdraw"
RETURN_RECEIVE = "fulfillment.return.receive"
PROFILE_PROGRESS = "fulfillment.profile.progress"

# Events (TMF hub pattern).
ORDER_CREATED = "ProductionOrderCreateEvent"
ORDER_STATE_CHANGED = "ProductionOrderStateChangeEvent"
SHIPMENT_CREATED = "ShipmentCreateEvent"
SHIPMENT_STATE_CHANGED = "ShipmentStateChangeEvent"
SHIPMENT_CHANGED = "ShipmentAttributeValueChangeEvent"

range_table = role_table(
    ROLE,
    "fulfillment_range",
    Column("partner_id", String(64), ForeignKey("partner.id"), primary_key=True),
    Column("block", Integer, nullable=False, unique=True),
    Column("next_offset", Integer, nullable=False),
)

order_table = role_table(
    ROLE,
    "fulfillment_production_order",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), ForeignKey("partner.id"), nullable=False, index=True),
    Column("external_id", String(64), nullable=True),
    Column("batch_number", String(32), nullable=False),
    Column("profile_type", String(5), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("first_iccid", String(20), nullable=False),
    Column("first_imsi", String(15), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("state_change", JSON, nullable=False),
    # The vendor-file fault the vendor will make ({kind, row}); never shown to the partner.
    Column("defect", JSON, nullable=True),
    Column("vendor_sha256", String(64), nullable=True),
    Column("vendor_rows", Integer, nullable=True),
    Column("vendor_batch", String(32), nullable=True),
    Column("vendor_delivered_at", Float, nullable=True),
    Column("load_attempts", Integer, nullable=False),
    Column("sim_batch", JSON, nullable=True),
    Column("load_error", JSON, nullable=True),
    Column("correlation_id", String(256), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("partner_id", "batch_number", name="uq_fulfillment_batch"),
    UniqueConstraint("partner_id", "external_id", name="uq_fulfillment_order_external"),
)

vendor_file_table = role_table(
    ROLE,
    "fulfillment_vendor_file",
    Column(
        "production_order_id",
        String(40),
        ForeignKey("fulfillment_production_order.id"),
        primary_key=True,
    ),
    Column("text", Text, nullable=False),
)

stock_table = role_table(
    ROLE,
    "fulfillment_sim",
    Column("iccid", String(20), primary_key=True),
    Column("partner_id", String(64), ForeignKey("partner.id"), nullable=False, index=True),
    Column("production_order_id", String(40), nullable=False),
    Column("batch_number", String(32), nullable=False, index=True),
    Column("imsi", String(15), nullable=False),
    Column("profile_type", String(5), nullable=False),
    Column("state", String(12), nullable=False, index=True),
    Column("state_reason", String(200), nullable=True),
    Column("shipment_id", String(40), nullable=True),
    Column("matching_id", String(64), nullable=True),
    Column("profile_state", String(12), nullable=True),
    Column("eid", String(32), nullable=True),
    Column("updated_at", Float, nullable=False),
)

shipment_table = role_table(
    ROLE,
    "fulfillment_shipment",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), ForeignKey("partner.id"), nullable=False, index=True),
    Column("external_id", String(64), nullable=True),
    Column("sequence", Integer, nullable=False),
    Column("account_id", String(64), nullable=False, index=True),
    Column("subscriber_name", String(200), nullable=True),
    Column("profile_type", String(5), nullable=False),
    Column("service_level", String(10), nullable=False),
    Column("iccid", String(20), nullable=False, index=True),
    Column("batch_number", String(32), nullable=False),
    Column("address_to", JSON, nullable=True),
    Column("email", String(254), nullable=True),
    Column("carrier", String(40), nullable=False),
    Column("tracking_code", String(13), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("status_reason", String(200), nullable=True),
    Column("status_changed_at", Float, nullable=False),
    Column("checkpoints", JSON, nullable=False),
    # The carrier's whole route, planned at the label; `position` is the last scan made.
    Column("route", JSON, nullable=False),
    Column("position", Integer, nullable=False),
    Column("delivery_attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("dispatched_at", Float, nullable=True),
    Column("delivered_at", Float, nullable=True),
    Column("estimated_delivery", Float, nullable=False),
    Column("sla_due", Float, nullable=False),
    Column("sla_breached_at", Float, nullable=True),
    # The data faults decided when the shipment was created (see ShipmentFaults).
    Column("faults", JSON, nullable=False),
    Column("mapping_status", String(10), nullable=False, index=True),
    Column("mapped_iccid", String(20), nullable=True, index=True),
    Column("mapping_due", Float, nullable=True),
    Column("mapping_sent_at", Float, nullable=True),
    Column("mapping_code", String(64), nullable=True),
    Column("mapping_calls", JSON, nullable=False),
    Column("return_info", JSON, nullable=True),
    Column("correlation_id", String(256), nullable=True),
    UniqueConstraint("partner_id", "external_id", name="uq_fulfillment_shipment_external"),
    # Two shipments created at once both count the same sequence: the second one's
    # transaction fails and the pipeline runs it again.
    UniqueConstraint("partner_id", "sequence", name="uq_fulfillment_shipment_sequence"),
)

# Built once and run with bound values: building a statement costs several times what
# SQLite takes to run it (see simulators/core/store.py). Every value bound here is never
# None (an `= NULL` would match nothing where `IS NULL` matches).
_HIGHEST_BLOCK = select(func.max(range_table.c.block))
_LOCK_RANGES = select(range_table.c.partner_id).with_for_update()
_RANGES_IN_USE = select(
    order_table.c.partner_id,
    order_table.c.batch_number,
    order_table.c.first_iccid,
    order_table.c.first_imsi,
    order_table.c.quantity,
).where(order_table.c.state != REJECTED)
_BATCH_NUMBERS_LIKE = select(order_table.c.batch_number).where(
    order_table.c.partner_id == bindparam("partner_id"),
    order_table.c.batch_number.like(bindparam("pattern")),
)
_ORDER_BY_EXTERNAL_ID = select(order_table.c.id).where(
    order_table.c.partner_id == bindparam("partner_id"),
    order_table.c.external_id == bindparam("external_id"),
)
_ORDER_BY_BATCH = select(order_table.c.id).where(
    order_table.c.partner_id == bindparam("partner_id"),
    order_table.c.batch_number == bindparam("batch_number"),
)
_LATEST_LOADED_BATCH = (
    select(order_table.c.batch_number)
    .where(
        order_table.c.partner_id == bindparam("partner_id"),
        order_table.c.state == LOADED,
        order_table.c.id != bindparam("order_id"),
    )
    .order_by(order_table.c.created_at.desc(), order_table.c.id.desc())
    .limit(1)
)
_COUNT_LOAD_ATTEMPT = (
    order_table.update()
    .where(order_table.c.id == bindparam("match_id"))
    .values(load_attempts=order_table.c.load_attempts + 1)
)
_VENDOR_FILE_TEXT = select(vendor_file_table.c.text).where(
    vendor_file_table.c.production_order_id == bindparam("order_id")
)
_STOCK_OF_ORDER = (
    select(func.count())
    .select_from(stock_table)
    .where(stock_table.c.production_order_id == bindparam("order_id"))
)
_STOCK_BY_ICCIDS = select(stock_table).where(
    stock_table.c.iccid.in_(bindparam("iccids", expanding=True))
)
_FIRST_AVAILABLE_SIM = (
    select(stock_table)
    .where(
        stock_table.c.partner_id == bindparam("partner_id"),
        stock_table.c.profile_type == bindparam("profile_type"),
        stock_table.c.state == AVAILABLE,
    )
    .order_by(stock_table.c.iccid)
    .limit(1)
)
_SHIPMENT_BY_EXTERNAL_ID = select(shipment_table.c.id).where(
    shipment_table.c.partner_id == bindparam("partner_id"),
    shipment_table.c.external_id == bindparam("external_id"),
)
_SHIPMENT_COUNT = (
    select(func.count())
    .select_from(shipment_table)
    .where(shipment_table.c.partner_id == bindparam("partner_id"))
)


@dataclass(frozen=True)
class Schedule:
    """A step the caller must queue."""

    kind: str
    due_at: float
    payload: dict[str, Any]
    max_attempts: int = 6


@dataclass
class Outcome:
    """A change: the resource after it, the events about it, the steps it sets off."""

    row: Any
    events: list[str] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)


def new_id() -> str:
    return uuid.uuid4().hex


def _audit(
    conn: Connection,
    *,
    now: float,
    partner_id: str,
    action: str,
    entity_type: str,
    entity_id: str,
    correlation_id: str | None,
    details: dict[str, Any] | None = None,
    actor: str = "system",
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


# --- ranges ------------------------------------------------------------------------------------


def ensure_range(conn: Connection, partner_id: str) -> Any:
    """The partner's own ICCID/IMSI range, given the next free block on first use."""
    row = select_equal(conn, range_table, partner_id=partner_id).first()
    if row is not None:
        return row
    taken = conn.execute(_HIGHEST_BLOCK).scalar()
    block = int(taken or 0) + 1
    if block > MAX_BLOCK:
        raise errors.RangeExhausted("Every partner range is taken", field="firstIccid")
    conn.execute(range_table.insert(), {"partner_id": partner_id, "block": block, "next_offset": 0})
    return select_equal(conn, range_table, partner_id=partner_id).one()


def default_iccid(block: int, offset: int) -> str:
    return iccid_for(ICCID_COUNTRY, ICCID_ISSUER, block * 10**9 + offset)


def default_imsi(block: int, offset: int) -> str:
    return imsi_for(block * 100_000_000 + RANGE_SIZE + offset)


def _span(first: str, quantity: int, *, iccid: bool) -> tuple[int, int, int]:
    """(length, first, end) of a consecutive range: ICCIDs by their account part (the
    digits before the Luhn digit), IMSIs by value."""
    digits = first[:-1] if iccid else first
    start = int(digits)
    return len(digits), start, start + quantity


def _overlaps(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def _ranges_in_use(conn: Connection) -> list[Any]:
    # A rejected batch never reached the MVNE, so its range is free again. A failed one may
    # have been loaded with the answer lost: it keeps its range.
    return list(conn.execute(_RANGES_IN_USE))


def _clash(orders: list[Any], first: str, quantity: int, *, iccid: bool) -> Any:
    wanted = _span(first, quantity, iccid=iccid)
    for order in orders:
        span = _span(order.first_iccid if iccid else order.first_imsi, order.quantity, iccid=iccid)
        if _overlaps(wanted, span):
            return order
    return None


def _refuse_overlap(order: Any, partner_id: str, what: str, field_name: str) -> None:
    if order.partner_id == partner_id:
        raise errors.RangeOverlap(
            f"The {what} range overlaps batch {order.batch_number}", field=field_name
        )
    # Another partner's batch: say that it overlaps, never whose.
    raise errors.RangeOverlap(
        f"The {what} range overlaps a batch already ordered", field=field_name
    )


def _check_fits(first: str, quantity: int, *, iccid: bool, field_name: str) -> None:
    """The last of the range must still be an ICCID (same length, E.118's 89 prefix) or an
    IMSI of the test network."""
    length, _start, end = _span(first, quantity, iccid=iccid)
    last = str(end - 1)
    fits = (len(last) == length and last.startswith("89")) if iccid else end <= _IMSI_BASE + 10**10
    if not fits:
        what = "ICCID" if iccid else "IMSI"
        raise errors.RangeExhausted(
            f"{quantity} consecutive {what}s from {first} do not fit in {length} digits"
            if iccid
            else f"{quantity} consecutive IMSIs from {first} leave MCC 001 / MNC 01",
            field=field_name,
        )


def _allocate(
    conn: Connection,
    partner_id: str,
    quantity: int,
    first_iccid: str | None,
    first_imsi: str | None,
) -> tuple[str, str]:
    """The batch's first ICCID and IMSI: the ones asked for, checked, or the next free ones
    of the partner's range, stepping over any batch that took part of it."""
    # One allocation at a time across workers (PostgreSQL; SQLite writers already queue).
    conn.execute(_LOCK_RANGES).all()
    orders = _ranges_in_use(conn)
    for given, is_iccid, name, what in (
        (first_iccid, True, "firstIccid", "ICCID"),
        (first_imsi, False, "firstImsi", "IMSI"),
    ):
        if given is not None:
            _check_fits(given, quantity, iccid=is_iccid, field_name=name)
            clash = _clash(orders, given, quantity, iccid=is_iccid)
            if clash is not None:
                _refuse_overlap(clash, partner_id, what, name)
    if first_iccid is not None and first_imsi is not None:
        return first_iccid, first_imsi
    own = ensure_range(conn, partner_id)
    offset = own.next_offset
    for _ in range(2 * len(orders) + 1):
        if offset + quantity > RANGE_SIZE:
            raise errors.RangeExhausted(
                f"The partner's range has {max(0, RANGE_SIZE - offset)} SIMs left",
                field="quantity",
            )
        iccid = first_iccid or default_iccid(own.block, offset)
        imsi = first_imsi or default_imsi(own.block, offset)
        ends = []
        if first_iccid is None and (taken := _clash(orders, iccid, quantity, iccid=True)):
            ends.append(
                _span(taken.first_iccid, taken.quantity, iccid=True)[2]
                - _ICCID_BASE
                - own.block * 10**9
            )
        if first_imsi is None and (taken := _clash(orders, imsi, quantity, iccid=False)):
            ends.append(
                _span(taken.first_imsi, taken.quantity, iccid=False)[2]
                - _IMSI_BASE
                - own.block * 100_000_000
                - RANGE_SIZE
            )
        if not ends:
            update_equal(
                conn, range_table, {"partner_id": partner_id}, next_offset=offset + quantity
            )
            return iccid, imsi
        offset = max(offset + 1, *ends)
    raise errors.RangeExhausted("No free range found for this batch", field="quantity")


# --- production orders -------------------------------------------------------------------------


def _order_row(conn: Connection, order_id: str) -> Any:
    return select_equal(conn, order_table, id=order_id).one()


def get_order(conn: Connection, partner_id: str, order_id: str) -> Any:
    row = partner_row(conn, order_table, order_id, partner_id)
    if row is None:
        raise errors.ProductionOrderNotFound(f"No production order {order_id}")
    return row


def list_orders(
    conn: Connection,
    partner_id: str,
    *,
    state: str | None = None,
    batch_number: str | None = None,
    profile_type: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Any]]:
    conditions = [
        order_table.c.partner_id == partner_id,
        *equal_to(order_table, state=state, batch_number=batch_number, profile_type=profile_type),
    ]
    return count_and_page(
        conn,
        order_table,
        conditions,
        [order_table.c.created_at, order_table.c.id],
        offset,
        limit,
    )


def _mint_batch_number(conn: Connection, partner_id: str, now: float) -> str:
    prefix = f"B{to_datetime(now).strftime('%Y%m%d')}-"
    taken = set(
        conn.execute(
            _BATCH_NUMBERS_LIKE, {"partner_id": partner_id, "pattern": f"{prefix}%"}
        ).scalars()
    )
    sequence = len(taken) + 1
    while f"{prefix}{sequence:04d}" in taken:
        sequence += 1
    return f"{prefix}{sequence:04d}"


def create_production_order(
    conn: Connection,
    *,
    partner_id: str,
    body: dict[str, Any],
    defect: vendor.Defect | None,
    now: float,
    correlation_id: str | None,
) -> Outcome:
    """A batch ordered from the SIM vendor: acknowledged, the vendor's answer scheduled.
    `defect` is a vendor-file fault decided for this order (the vendor will make it)."""
    external_id = body.get("externalId")
    if (
        external_id is not None
        and conn.execute(
            _ORDER_BY_EXTERNAL_ID, {"partner_id": partner_id, "external_id": external_id}
        ).first()
    ):
        raise errors.ExternalIdExists(
            f"externalId {external_id} names another production order", field="externalId"
        )
    batch_number = body.get("batchNumber") or _mint_batch_number(conn, partner_id, now)
    if conn.execute(
        _ORDER_BY_BATCH, {"partner_id": partner_id, "batch_number": batch_number}
    ).first():
        raise errors.BatchNumberExists(
            f"Batch {batch_number} was already ordered", field="batchNumber"
        )
    quantity = int(body["quantity"])
    first_iccid, first_imsi = _allocate(
        conn, partner_id, quantity, body.get("firstIccid"), body.get("firstImsi")
    )
    order_id = new_id()
    conn.execute(
        order_table.insert(),
        {
            "id": order_id,
            "partner_id": partner_id,
            "external_id": external_id,
            "batch_number": batch_number,
            "profile_type": body["profileType"],
            "quantity": quantity,
            "first_iccid": first_iccid,
            "first_imsi": first_imsi,
            "state": ACKNOWLEDGED,
            "state_change": [_state_entry(ACKNOWLEDGED, now, "Order sent to the SIM vendor")],
            "defect": {"kind": defect.kind, "row": defect.row} if defect else None,
            "load_attempts": 0,
            "correlation_id": correlation_id,
            "created_at": now,
            "updated_at": now,
        },
    )
    _audit(
        conn,
        now=now,
        partner_id=partner_id,
        action="productionOrder.created",
        entity_type="productionOrder",
        entity_id=order_id,
        correlation_id=correlation_id,
        details={"batchNumber": batch_number, "quantity": quantity, "firstIccid": first_iccid},
        actor=f"partner:{partner_id}",
    )
    row = _order_row(conn, order_id)
    accept = Schedule(VENDOR_ACCEPT, now + VENDOR_ACCEPT_S, {"orderId": order_id})
    return Outcome(row, [ORDER_CREATED], [accept])


def _state_entry(state: str, now: float, reason: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"state": state, "changeDate": now}
    if reason:
        entry["changeReason"] = reason
    return entry


def _move_order(
    conn: Connection,
    row: Any,
    state: str,
    now: float,
    reason: str,
    correlation_id: str | None,
    **values: Any,
) -> Any:
    update_equal(
        conn,
        order_table,
        {"id": row.id},
        state=state,
        state_change=[*row.state_change, _state_entry(state, now, reason)],
        updated_at=now,
        **values,
    )
    _audit(
        conn,
        now=now,
        partner_id=row.partner_id,
        action=f"productionOrder.{state}",
        entity_type="productionOrder",
        entity_id=row.id,
        correlation_id=correlation_id,
        details={"batchNumber": row.batch_number, "reason": reason},
    )
    return _order_row(conn, row.id)


def vendor_accept(
    conn: Connection, order_id: str, now: float, correlation_id: str | None
) -> Outcome | None:
    """The SIM vendor confirmed the input file and started personalising."""
    row = _order_row(conn, order_id)
    if row.state != ACKNOWLEDGED:
        return None
    row = _move_order(
        conn, row, IN_PRODUCTION, now, "The SIM vendor is producing the batch", correlation_id
    )
    deliver = Schedule(VENDOR_DELIVER, now + PRODUCTION_S[row.profile_type], {"orderId": order_id})
    return Outcome(row, [ORDER_STATE_CHANGED], [deliver])


def _file_batch(conn: Connection, row: Any, defect: vendor.Defect | None) -> str:
    """The batch number the vendor writes: its own, or with a DUPLICATE_BATCH defect the
    number of the partner's latest batch already loaded (none: nothing to duplicate)."""
    if defect is None or defect.kind != vendor.DUPLICATE_BATCH:
        return str(row.batch_number)
    earlier = conn.execute(
        _LATEST_LOADED_BATCH, {"partner_id": row.partner_id, "order_id": row.id}
    ).scalar()
    return str(earlier or row.batch_number)


def defect_of(row: Any) -> vendor.Defect | None:
    return vendor.Defect(row.defect["kind"], int(row.defect["row"])) if row.defect else None


def spec_of(row: Any) -> vendor.BatchSpec:
    return vendor.BatchSpec(
        customer=row.partner_id,
        profile_type=row.profile_type,
        batch_number=row.batch_number,
        quantity=row.quantity,
        first_iccid=row.first_iccid,
        first_imsi=row.first_imsi,
    )


def vendor_deliver(
    conn: Connection, order_id: str, now: float, seed: int, correlation_id: str | None
) -> Outcome | None:
    """The vendor's output file arrived; it is kept as delivered and its load scheduled.
    A second delivery of the same order changes nothing."""
    row = _order_row(conn, order_id)
    if row.state != IN_PRODUCTION:
        return None
    defect = defect_of(row)
    file_batch = _file_batch(conn, row, defect)
    text = vendor.write(
        spec_of(row),
        seed_text=f"{seed}:{row.partner_id}:{row.batch_number}",
        defect=defect,
        file_batch=file_batch,
    )
    conn.execute(vendor_file_table.insert(), {"production_order_id": row.id, "text": text})
    rows = row.quantity + 1 if defect and defect.kind == vendor.ROW_COUNT else row.quantity
    row = _move_order(
        conn,
        row,
        PRODUCED,
        now,
        "The SIM vendor delivered the output file",
        correlation_id,
        vendor_sha256=vendor.sha256(text),
        vendor_rows=rows,
        vendor_batch=file_batch,
        vendor_delivered_at=now,
    )
    load = Schedule(BATCH_LOAD, now, {"orderId": order_id}, MVNE_ATTEMPTS)
    return Outcome(row, [ORDER_STATE_CHANGED], [load])


def vendor_file(conn: Connection, partner_id: str, order_id: str) -> str:
    row = get_order(conn, partner_id, order_id)
    text = conn.execute(_VENDOR_FILE_TEXT, {"order_id": row.id}).scalar()
    if text is None:
        raise errors.VendorFileNotReady(
            f"Production order {order_id} is {row.state}; the vendor has not delivered yet",
            state=row.state,
        )
    return str(text)


@dataclass(frozen=True)
class LoadJob:
    partner_id: str
    batch_number: str
    text: str


def begin_load(
    conn: Connection, order_id: str, now: float, correlation_id: str | None
) -> tuple[Outcome | None, LoadJob | None]:
    """Count one more load attempt (the first moves the order to loading); the file to send
    under the batch number it carries. Nothing when the order is past loading."""
    row = _order_row(conn, order_id)
    if row.state not in (PRODUCED, LOADING):
        return None, None
    outcome = None
    if row.state == PRODUCED:
        row = _move_order(
            conn, row, LOADING, now, "Loading the batch into the MVNE inventory", correlation_id
        )
        outcome = Outcome(row, [ORDER_STATE_CHANGED])
    conn.execute(_COUNT_LOAD_ATTEMPT, {"match_id": row.id})
    text = conn.execute(_VENDOR_FILE_TEXT, {"order_id": row.id}).scalar_one()
    return outcome, LoadJob(row.partner_id, str(row.vendor_batch), str(text))


STOCK_CHUNK = 5000


def record_loaded(
    conn: Connection, order_id: str, sim_batch: dict[str, Any], now: float, cid: str | None
) -> Outcome | None:
    """The MVNE took the file: its SIMs join the partner's stock (once, however often the
    MVNE confirms it)."""
    row = _order_row(conn, order_id)
    if row.state != LOADING:
        return None
    already = conn.execute(_STOCK_OF_ORDER, {"order_id": row.id}).scalar_one()
    if not already:
        text = conn.execute(_VENDOR_FILE_TEXT, {"order_id": row.id}).scalar_one()
        esim = row.profile_type == "eSIM"
        # Only the columns that hold something: SQLAlchemy prepares every parameter of
        # every row, and a 100,000-SIM batch is that many rows.
        common: dict[str, Any] = {
            "partner_id": row.partner_id,
            "production_order_id": row.id,
            "batch_number": row.batch_number,
            "profile_type": row.profile_type,
            "state": AVAILABLE,
            "updated_at": now,
        }
        if esim:
            common["profile_state"] = PROFILE_AVAILABLE
        chunk: list[dict[str, Any]] = []
        for sim in vendor.read_rows(text):
            item = {**common, "iccid": sim.iccid, "imsi": sim.imsi}
            if esim:
                item["matching_id"] = sim.matching_id
            chunk.append(item)
            if len(chunk) == STOCK_CHUNK:
                conn.execute(stock_table.insert(), chunk)
                chunk = []
        if chunk:
            conn.execute(stock_table.insert(), chunk)
    row = _move_order(
        conn,
        row,
        LOADED,
        now,
        "The MVNE loaded the batch",
        cid,
        sim_batch=sim_batch,
        load_error=None,
    )
    _audit(
        conn,
        now=now,
        partner_id=row.partner_id,
        action="simBatch.loaded",
        entity_type="simBatch",
        entity_id=row.batch_number,
        correlation_id=cid,
        details={
            "productionOrderId": row.id,
            "quantity": row.quantity,
            "firstIccid": row.first_iccid,
            "sha256": row.vendor_sha256,
        },
    )
    return Outcome(row, [ORDER_STATE_CHANGED])


def record_load_refused(
    conn: Connection, order_id: str, error: dict[str, Any], now: float, cid: str | None
) -> Outcome | None:
    """The MVNE refused the file: the batch is rejected with the MVNE's own reason."""
    row = _order_row(conn, order_id)
    if row.state != LOADING:
        return None
    where = f" (row {error['row']})" if error.get("row") is not None else ""
    row = _move_order(
        conn,
        row,
        REJECTED,
        now,
        f"The MVNE refused the file: {error['code']}{where}",
        cid,
        load_error=error,
    )
    return Outcome(row, [ORDER_STATE_CHANGED])


def record_load_unreachable(
    conn: Connection, order_id: str, status: int | None, detail: str, now: float, cid: str | None
) -> Outcome | None:
    row = _order_row(conn, order_id)
    if row.state != LOADING:
        return None
    error = {
        "code": "MVNE_UNREACHABLE",
        "status": status,
        "detail": f"The MVNE did not take the file after {row.load_attempts} attempts: {detail}",
    }
    row = _move_order(
        conn, row, FAILED, now, "The MVNE never answered the load", cid, load_error=error
    )
    return Outcome(row, [ORDER_STATE_CHANGED])


# --- stock ---------------------------------------------------------------------------------------


def _stock_row(conn: Connection, iccid: str) -> Any:
    return select_equal(conn, stock_table, iccid=iccid).first()


def get_stock(conn: Connection, partner_id: str, iccid: str) -> Any:
    row = _stock_row(conn, iccid)
    if row is None or row.partner_id != partner_id:
        raise errors.SimNotFound(f"No SIM {iccid} in this partner's stock")
    return row


def list_stock(
    conn: Connection,
    partner_id: str,
    *,
    state: str | None = None,
    profile_type: str | None = None,
    batch_number: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Any]]:
    conditions = [
        stock_table.c.partner_id == partner_id,
        *equal_to(stock_table, state=state, profile_type=profile_type, batch_number=batch_number),
    ]
    return count_and_page(conn, stock_table, conditions, [stock_table.c.iccid], offset, limit)


def profiles_of(conn: Connection, iccids: list[str]) -> dict[str, Any]:
    """The stock rows of these ICCIDs (what an eSIM shipment shows of its profile)."""
    if not iccids:
        return {}
    rows = conn.execute(_STOCK_BY_ICCIDS, {"iccids": iccids})
    return {row.iccid: row for row in rows}


def _set_stock(conn: Connection, iccid: str, now: float, **values: Any) -> None:
    update_equal(conn, stock_table, {"iccid": iccid}, updated_at=now, **values)


# --- shipments -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShipmentFaults:
    """Data faults decided when the shipment was created, kept with it."""

    mapping_not_sent: bool = False
    mapping_wrong_iccid: bool = False
    mapping_twice: bool = False
    mapping_late_s: float | None = None
    failed_attempts: int = 0
    damaged: bool = False
    lost: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "mappingNotSent": self.mapping_not_sent,
            "mappingWrongIccid": self.mapping_wrong_iccid,
            "mappingTwice": self.mapping_twice,
            "mappingLateSeconds": self.mapping_late_s,
            "failedAttempts": self.failed_attempts,
            "damaged": self.damaged,
            "lost": self.lost,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShipmentFaults:
        late = data.get("mappingLateSeconds")
        return cls(
            mapping_not_sent=bool(data.get("mappingNotSent")),
            mapping_wrong_iccid=bool(data.get("mappingWrongIccid")),
            mapping_twice=bool(data.get("mappingTwice")),
            mapping_late_s=None if late is None else float(late),
            failed_attempts=int(data.get("failedAttempts") or 0),
            damaged=bool(data.get("damaged")),
            lost=bool(data.get("lost")),
        )


# Route events: what a scan means to fulfillment besides the tracking status.
LABEL = "label"
PICKUP = "pickup"
HUB = "hub"
OUT = "outForDelivery"
FAILED_ATTEMPT = "attemptFail"
DELIVERY = "delivered"
RETURN_TO_SENDER = "returnToSender"
EXPIRY = "expired"


def _scan(at: float, event: str, status: str, message: str, location: str) -> dict[str, Any]:
    return {"at": at, "event": event, "status": status, "message": message, "location": location}


def plan_route(
    service_level: str, start: float, faults: ShipmentFaults, destination: str
) -> list[dict[str, Any]]:
    """Every scan the carrier will make, decided at the label: the service level's timings,
    bent by the carrier faults (failed attempts, damage, loss)."""
    times = SERVICE_LEVELS[service_level]
    if service_level == "digital":
        return [
            _scan(start, LABEL, INFO_RECEIVED, "Activation order received", "SM-DP+"),
            _scan(
                start + times["pickup"],
                PICKUP,
                IN_TRANSIT,
                "Profile released; activation code sent by e-mail",
                "SM-DP+",
            ),
            _scan(
                start + times["deliver"],
                DELIVERY,
                DELIVERED,
                "Activation code delivered to the subscriber",
                "e-mail",
            ),
        ]
    pickup = start + times["pickup"]
    out = start + times["outForDelivery"]
    deliver = start + times["deliver"]
    route = [
        _scan(start, LABEL, INFO_RECEIVED, "Shipment information received", "Warehouse"),
        _scan(pickup, PICKUP, IN_TRANSIT, "Picked up by the carrier", "Origin depot"),
    ]
    hub_at = (pickup + out) / 2
    if faults.lost:
        route.append(
            _scan(pickup + EXPIRY_S, EXPIRY, EXPIRED, "No carrier scan for 30 days", "Unknown")
        )
        return route
    if faults.damaged:
        route.append(
            _scan(
                hub_at,
                RETURN_TO_SENDER,
                EXCEPTION,
                "Damaged in transit; returning to sender",
                "Sorting hub",
            )
        )
        return route
    route.append(_scan(hub_at, HUB, IN_TRANSIT, "Arrived at the delivery depot", destination))
    failures = min(faults.failed_attempts, MAX_DELIVERY_ATTEMPTS)
    for attempt in range(failures):
        shift = attempt * DAY
        route.append(_scan(out + shift, OUT, OUT_FOR_DELIVERY, "Out for delivery", destination))
        route.append(
            _scan(
                deliver + shift,
                FAILED_ATTEMPT,
                ATTEMPT_FAIL,
                "Addressee not available; next attempt tomorrow"
                if attempt + 1 < MAX_DELIVERY_ATTEMPTS
                else "Addressee not available; last attempt made",
                destination,
            )
        )
    if failures >= MAX_DELIVERY_ATTEMPTS:
        route.append(
            _scan(
                deliver + (failures - 1) * DAY + HOUR,
                RETURN_TO_SENDER,
                EXCEPTION,
                f"Undeliverable after {failures} attempts; returning to sender",
                destination,
            )
        )
        return route
    shift = failures * DAY
    route.append(_scan(out + shift, OUT, OUT_FOR_DELIVERY, "Out for delivery", destination))
    route.append(_scan(deliver + shift, DELIVERY, DELIVERED, "Delivered", destination))
    return route


def s10_tracking_code(prefix: str, serial: int, country: str = "GB") -> str:
    """A UPU S10 item identifier: two letters, eight digits, a check digit, the country."""
    digits = f"{serial % 10**8:08d}"
    total = sum(int(d) * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    check = 0 if check == 10 else 5 if check == 11 else check
    return f"{prefix}{digits}{check}{country}"


def _tracking_serial(seed: int, partner_id: str, sequence: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{partner_id}:{sequence}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _shipment_row(conn: Connection, shipment_id: str) -> Any:
    return select_equal(conn, shipment_table, id=shipment_id).one()


def get_shipment(conn: Connection, partner_id: str, shipment_id: str) -> Any:
    row = partner_row(conn, shipment_table, shipment_id, partner_id)
    if row is None:
        raise errors.ShipmentNotFound(f"No shipment {shipment_id}")
    return row


def list_shipments(
    conn: Connection,
    partner_id: str,
    *,
    status: str | None = None,
    account_id: str | None = None,
    iccid: str | None = None,
    external_id: str | None = None,
    mapping_status: str | None = None,
    sla_breached: bool | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Any]]:
    table = shipment_table
    conditions = [
        table.c.partner_id == partner_id,
        *equal_to(
            table,
            status=status,
            account_id=account_id,
            external_id=external_id,
            mapping_status=mapping_status,
        ),
    ]
    if iccid:
        conditions.append(or_(table.c.iccid == iccid, table.c.mapped_iccid == iccid))
    if sla_breached is not None:
        conditions.append(
            table.c.sla_breached_at.isnot(None)
            if sla_breached
            else table.c.sla_breached_at.is_(None)
        )
    return count_and_page(
        conn, table, conditions, [table.c.created_at, table.c.sequence], offset, limit
    )


def _pick_sim(conn: Connection, partner_id: str, profile_type: str, iccid: str | None) -> Any:
    if iccid is not None:
        row = _stock_row(conn, iccid)
        if row is None or row.partner_id != partner_id:
            raise errors.IccidNotInStock(
                f"ICCID {iccid} is not in this partner's stock", field="iccid"
            )
        if row.profile_type != profile_type:
            raise errors.ProfileTypeMismatch(
                f"ICCID {iccid} is a {row.profile_type}, not a {profile_type}", field="iccid"
            )
        if row.state != AVAILABLE:
            raise errors.SimNotAvailable(f"SIM {iccid} is {row.state}", state=row.state)
        return row
    row = conn.execute(
        _FIRST_AVAILABLE_SIM, {"partner_id": partner_id, "profile_type": profile_type}
    ).first()
    if row is None:
        raise errors.OutOfStock(f"No {profile_type} in stock: order a batch first")
    return row


def _allocate_sim(
    conn: Connection,
    partner_id: str,
    profile_type: str,
    body: dict[str, Any],
    shipment_id: str,
    now: float,
) -> Any:
    """Take a SIM out of the available stock for this shipment. A concurrent shipment may
    take the one picked first (PostgreSQL): the next available one is picked instead."""
    named = body.get("iccid")
    esim = profile_type == "eSIM"
    for _ in range(5):
        sim = _pick_sim(conn, partner_id, profile_type, named)
        allocated = update_equal(
            conn,
            stock_table,
            {"iccid": sim.iccid, "state": AVAILABLE},
            state=ALLOCATED,
            shipment_id=shipment_id,
            profile_state=PROFILE_ALLOCATED if esim else None,
            eid=body.get("eid") if esim else None,
            updated_at=now,
        )
        if allocated.rowcount == 1:
            return sim
        if named is not None:
            break
    raise errors.SimNotAvailable("The SIM was taken by another shipment; try again")


def _check_shipment_request(body: dict[str, Any]) -> tuple[str, str]:
    profile_type = body.get("profileType", "UICC")
    if profile_type == "UICC":
        level = body.get("serviceLevel", "standard")
        if level not in PHYSICAL_LEVELS:
            raise errors.ServiceLevelNotAvailable(
                f"A UICC ships {', '.join(PHYSICAL_LEVELS)}, not {level}", field="serviceLevel"
            )
        if "addressTo" not in body:
            raise errors.AddressRequired("A physical SIM needs addressTo", field="addressTo")
        if "eid" in body:
            raise errors.EidNotApplicable("A UICC is not bound to an EID", field="eid")
        return profile_type, level
    level = body.get("serviceLevel", "digital")
    if level != "digital":
        raise errors.ServiceLevelNotAvailable(
            f"An eSIM profile is delivered digitally, not {level}", field="serviceLevel"
        )
    if "eid" in body and not is_valid_eid(body["eid"]):
        raise errors.EidInvalid(f"EID {body['eid']} fails its check digits", field="eid")
    return profile_type, level


def create_shipment(
    conn: Connection,
    *,
    partner_id: str,
    body: dict[str, Any],
    faults: ShipmentFaults,
    seed: int,
    now: float,
    correlation_id: str | None,
) -> Outcome:
    """One subscriber order's SIM allocated from stock and handed to the carrier (label)."""
    external_id = body.get("externalId")
    if (
        external_id is not None
        and conn.execute(
            _SHIPMENT_BY_EXTERNAL_ID, {"partner_id": partner_id, "external_id": external_id}
        ).first()
    ):
        raise errors.ExternalIdExists(
            f"externalId {external_id} names another shipment", field="externalId"
        )
    profile_type, level = _check_shipment_request(body)
    esim = profile_type == "eSIM"
    shipment_id = new_id()
    sim = _allocate_sim(conn, partner_id, profile_type, body, shipment_id, now)
    sequence = 1 + conn.execute(_SHIPMENT_COUNT, {"partner_id": partner_id}).scalar_one()
    address = body.get("addressTo")
    destination = f"{address['city']}, {address['country']}" if address else "e-mail"
    effective = (
        faults
        if not esim
        else ShipmentFaults(
            mapping_not_sent=faults.mapping_not_sent,
            mapping_wrong_iccid=faults.mapping_wrong_iccid,
            mapping_twice=faults.mapping_twice,
            mapping_late_s=faults.mapping_late_s,
        )
    )
    route = plan_route(level, now, effective, destination)
    label = route[0]
    times = SERVICE_LEVELS[level]
    conn.execute(
        shipment_table.insert(),
        {
            "id": shipment_id,
            "partner_id": partner_id,
            "external_id": external_id,
            "sequence": sequence,
            "account_id": body["accountId"],
            "subscriber_name": body.get("subscriberName"),
            "profile_type": profile_type,
            "service_level": level,
            "iccid": sim.iccid,
            "batch_number": sim.batch_number,
            "address_to": address,
            "email": body.get("email"),
            "carrier": DIGITAL_CARRIER if esim else CARRIER,
            "tracking_code": s10_tracking_code(
                "EM" if esim else "HP", _tracking_serial(seed, partner_id, sequence)
            ),
            "status": label["status"],
            "status_reason": label["message"],
            "status_changed_at": now,
            "checkpoints": [_checkpoint(label)],
            "route": route,
            "position": 0,
            "delivery_attempts": 0,
            "created_at": now,
            "estimated_delivery": now + times["deliver"],
            "sla_due": now + times["sla"],
            "faults": effective.as_json(),
            "mapping_status": PENDING,
            "mapping_calls": [],
            "correlation_id": correlation_id,
        },
    )
    _audit(
        conn,
        now=now,
        partner_id=partner_id,
        action="sim.allocated",
        entity_type="sim",
        entity_id=sim.iccid,
        correlation_id=correlation_id,
        details={
            "shipmentId": shipment_id,
            "accountId": body["accountId"],
            "batchNumber": sim.batch_number,
        },
        actor=f"partner:{partner_id}",
    )
    schedules = [
        Schedule(CARRIER_SCAN, scan["at"], {"shipmentId": shipment_id, "position": index})
        for index, scan in enumerate(route)
        if index > 0
    ]
    schedules.append(Schedule(SLA_CHECK, now + times["sla"], {"shipmentId": shipment_id}))
    return Outcome(_shipment_row(conn, shipment_id), [SHIPMENT_CREATED], schedules)


def _checkpoint(scan: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": scan["status"],
        "date": scan["at"],
        "message": scan["message"],
        "location": scan["location"],
    }


def _faults_of(row: Any) -> ShipmentFaults:
    return ShipmentFaults.from_json(dict(row.faults))


def carrier_scan(
    conn: Connection, shipment_id: str, position: int, now: float, cid: str | None
) -> Outcome | None:
    """The carrier's next scan: the tracking status moves, and what it means for the SIM,
    the mapping and the SLA follows."""
    row = _shipment_row(conn, shipment_id)
    if position != row.position + 1 or row.return_info is not None:
        return None
    scan = row.route[position]
    values: dict[str, Any] = {
        "position": position,
        "status": scan["status"],
        "status_reason": scan["message"],
        "status_changed_at": now,
        "checkpoints": [*row.checkpoints, _checkpoint(scan)],
    }
    schedules: list[Schedule] = []
    events = [SHIPMENT_STATE_CHANGED] if scan["status"] != row.status else [SHIPMENT_CHANGED]
    faults = _faults_of(row)
    event = scan["event"]
    if event == PICKUP:
        values["dispatched_at"] = now
        schedules += _dispatch(conn, row, faults, now, cid, values)
    elif event == FAILED_ATTEMPT:
        values["delivery_attempts"] = row.delivery_attempts + 1
        # Carriers re-plan the next attempt for the same time tomorrow.
        values["estimated_delivery"] = now + DAY
    elif event == DELIVERY:
        physical = row.profile_type == "UICC"
        values["delivery_attempts"] = row.delivery_attempts + (1 if physical else 0)
        values["delivered_at"] = now
        values["estimated_delivery"] = now
        _set_stock(conn, row.iccid, now, state=DELIVERED_STOCK)
        if row.mapping_status == PENDING and faults.mapping_late_s is not None:
            due = now + faults.mapping_late_s
            values["mapping_due"] = due
            schedules.append(Schedule(MAPPING_SEND, due, {"shipmentId": row.id}, MVNE_ATTEMPTS))
        _audit(
            conn,
            now=now,
            partner_id=row.partner_id,
            action="sim.delivered",
            entity_type="sim",
            entity_id=row.iccid,
            correlation_id=cid,
            details={"shipmentId": row.id, "accountId": row.account_id},
        )
    elif event == RETURN_TO_SENDER:
        values["return_info"] = {
            "state": "inTransit",
            "reason": scan["message"],
            "condition": None,
            "stockOutcome": None,
            "initiatedDate": now,
            "receivedDate": None,
        }
        schedules.append(Schedule(RETURN_RECEIVE, now + RETURN_TRANSIT_S, {"shipmentId": row.id}))
    elif event == EXPIRY:
        _set_stock(conn, row.iccid, now, state=LOST, state_reason=scan["message"])
        _audit(
            conn,
            now=now,
            partner_id=row.partner_id,
            action="sim.lost",
            entity_type="sim",
            entity_id=row.iccid,
            correlation_id=cid,
            details={"shipmentId": row.id, "trackingCode": row.tracking_code},
        )
        schedules += _withdraw_or_cancel(row, values, now)
    update_equal(conn, shipment_table, {"id": row.id}, **values)
    return Outcome(_shipment_row(conn, row.id), events, schedules)


def _dispatch(
    conn: Connection,
    row: Any,
    faults: ShipmentFaults,
    now: float,
    cid: str | None,
    values: dict[str, Any],
) -> list[Schedule]:
    """The SIM left the warehouse in the carrier's hands (an eSIM profile: released): the
    moment the MVNE must learn whose account it belongs to."""
    stock: dict[str, Any] = {"state": SHIPPED}
    if row.profile_type == "eSIM":
        stock["profile_state"] = RELEASED
    _set_stock(conn, row.iccid, now, **stock)
    _audit(
        conn,
        now=now,
        partner_id=row.partner_id,
        action="sim.dispatched",
        entity_type="sim",
        entity_id=row.iccid,
        correlation_id=cid,
        details={
            "shipmentId": row.id,
            "accountId": row.account_id,
            "trackingCode": row.tracking_code,
        },
    )
    if faults.mapping_not_sent:
        values["mapping_status"] = NOT_SENT
        _audit(
            conn,
            now=now,
            partner_id=row.partner_id,
            action="mapping.notSent",
            entity_type="sim",
            entity_id=row.iccid,
            correlation_id=cid,
            details={"shipmentId": row.id, "accountId": row.account_id},
        )
        return []
    if faults.mapping_late_s is not None:
        return []  # sent only once the subscriber has the SIM (see carrier_scan)
    values["mapping_due"] = now
    return [Schedule(MAPPING_SEND, now, {"shipmentId": row.id}, MVNE_ATTEMPTS)]


def sla_check(conn: Connection, shipment_id: str, now: float, cid: str | None) -> Outcome | None:
    """The delivery promise came due: a shipment not delivered by then is a breach."""
    row = _shipment_row(conn, shipment_id)
    if row.sla_breached_at is not None:
        return None
    if row.delivered_at is not None and row.delivered_at <= row.sla_due:
        return None
    update_equal(conn, shipment_table, {"id": row.id}, sla_breached_at=now)
    _audit(
        conn,
        now=now,
        partner_id=row.partner_id,
        action="shipment.slaBreached",
        entity_type="shipment",
        entity_id=row.id,
        correlation_id=cid,
        details={"serviceLevel": row.service_level, "status": row.status},
    )
    return Outcome(_shipment_row(conn, row.id), [SHIPMENT_CHANGED])


# --- the ICCID mapping handoff -------------------------------------------------------------------


@dataclass(frozen=True)
class MappingJob:
    partner_id: str
    shipment_id: str
    iccid: str
    account_id: str
    subscriber_name: str | None
    twice: bool
    correlation_id: str


def neighbour_iccid(iccid: str) -> str:
    """The next ICCID of the range (account part + 1, its own Luhn digit): what a loader
    that is off by one sends."""
    return vendor.iccid_at(iccid, 1)


def mapping_correlation_id(row: Any) -> str:
    return str(row.correlation_id or f"shipment-{row.id}")


def mapping_job(conn: Connection, shipment_id: str) -> MappingJob | None:
    row = _shipment_row(conn, shipment_id)
    if row.mapping_status != PENDING or row.return_info is not None:
        return None
    faults = _faults_of(row)
    return MappingJob(
        partner_id=row.partner_id,
        shipment_id=row.id,
        iccid=neighbour_iccid(row.iccid) if faults.mapping_wrong_iccid else row.iccid,
        account_id=row.account_id,
        subscriber_name=row.subscriber_name,
        twice=faults.mapping_twice,
        correlation_id=mapping_correlation_id(row),
    )


def mapping_call(
    now: float, method: str, iccid: str, status: int | None, code: str | None, cid: str
) -> dict[str, Any]:
    call: dict[str, Any] = {
        "date": now,
        "method": method,
        "iccid": iccid,
        "httpStatus": status,
        "correlationId": cid,
    }
    if code:
        call["code"] = code
    return call


def record_mapping(
    conn: Connection,
    shipment_id: str,
    calls: list[dict[str, Any]],
    *,
    result: str | None,
    code: str | None,
    now: float,
) -> Outcome | None:
    """Record the mapping calls made; `result` is sent, failed, or None (still trying)."""
    row = _shipment_row(conn, shipment_id)
    values: dict[str, Any] = {"mapping_calls": [*row.mapping_calls, *calls]}
    if result is not None and row.mapping_status == PENDING:
        values["mapping_status"] = result
        values["mapping_code"] = code[:64] if code else None
        if result == SENT:
            values["mapped_iccid"] = calls[-1]["iccid"]
            values["mapping_sent_at"] = now
    update_equal(conn, shipment_table, {"id": row.id}, **values)
    cid = mapping_correlation_id(row)
    for call in calls:
        _audit(
            conn,
            now=now,
            partner_id=row.partner_id,
            action="mapping.sent" if call["httpStatus"] in (200, 201) else "mapping.attempt",
            entity_type="sim",
            entity_id=call["iccid"],
            correlation_id=cid,
            details={
                "shipmentId": row.id,
                "accountId": row.account_id,
                "shippedIccid": row.iccid,
                "httpStatus": call["httpStatus"],
                "code": call.get("code"),
            },
        )
    if result == MAPPING_FAILED:
        _audit(
            conn,
            now=now,
            partner_id=row.partner_id,
            action="mapping.failed",
            entity_type="sim",
            entity_id=row.iccid,
            correlation_id=cid,
            details={"shipmentId": row.id, "code": code},
        )
    if result is None:
        return None
    return Outcome(_shipment_row(conn, row.id), [SHIPMENT_CHANGED])


def _withdraw_or_cancel(row: Any, values: dict[str, Any], now: float) -> list[Schedule]:
    """The SIM will not be used by this subscriber: a mapping made is withdrawn at the MVNE,
    one not made yet is never made."""
    if row.mapping_status == SENT:
        return [Schedule(MAPPING_WITHDRAW, now, {"shipmentId": row.id}, MVNE_ATTEMPTS)]
    if row.mapping_status == PENDING:
        values["mapping_status"] = CANCELLED
        values["mapping_due"] = None
    return []


@dataclass(frozen=True)
class WithdrawJob:
    partner_id: str
    shipment_id: str
    iccid: str
    correlation_id: str


def withdraw_job(conn: Connection, shipment_id: str) -> WithdrawJob | None:
    row = _shipment_row(conn, shipment_id)
    if row.mapping_status != SENT or row.mapped_iccid is None:
        return None
    return WithdrawJob(row.partner_id, row.id, row.mapped_iccid, mapping_correlation_id(row))


def record_withdrawal(
    conn: Connection,
    shipment_id: str,
    call: dict[str, Any],
    *,
    result: str | None,
    code: str | None,
    now: float,
) -> Outcome | None:
    """The MVNE's answer to the unmapping: withdrawn (the SIM may go back to stock), refused
    (it is in use: it never goes back), or None while still trying / given up."""
    row = _shipment_row(conn, shipment_id)
    values: dict[str, Any] = {"mapping_calls": [*row.mapping_calls, call]}
    if result is None and code is None:  # no answer yet; the step tries again
        update_equal(conn, shipment_table, {"id": row.id}, **values)
        return None
    cid = mapping_correlation_id(row)
    returned = dict(row.return_info) if row.return_info else None
    stock = _stock_row(conn, row.iccid)
    if result == WITHDRAWN:
        values["mapping_status"] = WITHDRAWN
        values["mapping_code"] = None
        _audit(
            conn,
            now=now,
            partner_id=row.partner_id,
            action="mapping.withdrawn",
            entity_type="sim",
            entity_id=str(row.mapped_iccid),
            correlation_id=cid,
            details={"shipmentId": row.id, "accountId": row.account_id},
        )
        if stock is not None and stock.state == RETURNED:
            _restock(conn, row, now, cid)
            if returned is not None:
                returned["stockOutcome"] = "restocked"
    elif code is not None:
        values["mapping_code"] = code[:64]
        if result == MAPPING_FAILED and stock is not None and stock.state == RETURNED:
            reason = f"The MVNE would not unmap it ({code})"
            _set_stock(
                conn, row.iccid, now, state=QUARANTINED, state_reason=reason, shipment_id=row.id
            )
            _audit(
                conn,
                now=now,
                partner_id=row.partner_id,
                action="sim.quarantined",
                entity_type="sim",
                entity_id=row.iccid,
                correlation_id=cid,
                details={"shipmentId": row.id, "reason": reason},
            )
            if returned is not None:
                returned["stockOutcome"] = "quarantined"
    if returned is not None:
        values["return_info"] = returned
    update_equal(conn, shipment_table, {"id": row.id}, **values)
    return Outcome(_shipment_row(conn, row.id), [SHIPMENT_CHANGED])


# --- returns -------------------------------------------------------------------------------------


def _restock(conn: Connection, row: Any, now: float, cid: str | None) -> None:
    _set_stock(conn, row.iccid, now, state=AVAILABLE, state_reason=None, shipment_id=None)
    _audit(
        conn,
        now=now,
        partner_id=row.partner_id,
        action="sim.restocked",
        entity_type="sim",
        entity_id=row.iccid,
        correlation_id=cid,
        details={"shipmentId": row.id},
    )


def _receive(
    conn: Connection,
    row: Any,
    returned: dict[str, Any],
    condition: str,
    now: float,
    cid: str | None,
) -> Outcome:
    """The warehouse has the SIM back. Damaged: quarantine, for good. Intact: back to stock,
    but only once the MVNE no longer maps it to the old account."""
    values: dict[str, Any] = {}
    schedules = _withdraw_or_cancel(row, values, now)
    returned = {**returned, "state": "received", "condition": condition, "receivedDate": now}
    if condition == "damaged":
        reason = f"Returned damaged: {returned['reason']}"
        _set_stock(conn, row.iccid, now, state=QUARANTINED, state_reason=reason[:200])
        returned["stockOutcome"] = "quarantined"
        action = "sim.quarantined"
    elif schedules:
        _set_stock(
            conn, row.iccid, now, state=RETURNED, state_reason="Waiting for the MVNE to unmap it"
        )
        returned["stockOutcome"] = "awaitingUnmap"
        action = "sim.returned"
    else:
        _restock(conn, row, now, cid)
        returned["stockOutcome"] = "restocked"
        action = "sim.returned"
    _audit(
        conn,
        now=now,
        partner_id=row.partner_id,
        action=action,
        entity_type="sim",
        entity_id=row.iccid,
        correlation_id=cid,
        details={"shipmentId": row.id, "condition": condition, "reason": returned["reason"]},
    )
    values["return_info"] = returned
    update_equal(conn, shipment_table, {"id": row.id}, **values)
    return Outcome(_shipment_row(conn, row.id), [SHIPMENT_CHANGED], schedules)


def customer_return(
    conn: Connection,
    *,
    partner_id: str,
    shipment_id: str,
    condition: str,
    reason: str | None,
    now: float,
    correlation_id: str | None,
) -> Outcome:
    row = get_shipment(conn, partner_id, shipment_id)
    if row.profile_type != "UICC":
        raise errors.ReturnNotPhysical("An eSIM profile is not sent back")
    if row.return_info is not None:
        raise errors.ReturnExists(f"Shipment {shipment_id} already came back")
    if row.status != DELIVERED:
        raise errors.ShipmentNotDelivered(
            f"Shipment {shipment_id} is {row.status}", trackingStatus=row.status
        )
    returned = {
        "state": "inTransit",
        "reason": reason or "Returned by the subscriber",
        "initiatedDate": now,
    }
    return _receive(conn, row, returned, condition, now, correlation_id)


def return_received(
    conn: Connection, shipment_id: str, now: float, cid: str | None
) -> Outcome | None:
    """A parcel returned to sender by the carrier reached the warehouse."""
    row = _shipment_row(conn, shipment_id)
    returned = row.return_info
    if returned is None or returned["state"] != "inTransit":
        return None
    condition = "damaged" if _faults_of(row).damaged else "intact"
    return _receive(conn, row, dict(returned), condition, now, cid)


# --- eSIM profiles -------------------------------------------------------------------------------

NEXT_PROFILE_STATE = {DOWNLOADED: INSTALLED, INSTALLED: ENABLED}


def download_profile(
    conn: Connection,
    *,
    partner_id: str,
    iccid: str,
    eid: str,
    matching: str,
    now: float,
    correlation_id: str | None,
) -> tuple[Any, Outcome]:
    """The device downloads the released profile (SGP.22 ES9+): the stock item, and the
    change to its shipment."""
    sim = get_stock(conn, partner_id, iccid)
    if sim.profile_type != "eSIM":
        raise errors.NotAnEsim(f"{iccid} is a physical SIM")
    if sim.profile_state != RELEASED:
        raise errors.ProfileNotReleased(
            f"The profile is {sim.profile_state}; only a released profile downloads",
            profileState=sim.profile_state,
        )
    if matching != sim.matching_id:
        raise errors.MatchingIdMismatch("The matching ID is not this profile's", field="matchingId")
    if not is_valid_eid(eid):
        raise errors.EidInvalid(f"EID {eid} fails its check digits", field="eid")
    if sim.eid is not None and sim.eid != eid:
        raise errors.EidMismatch("The profile is bound to another device's EID", field="eid")
    _set_stock(conn, iccid, now, profile_state=DOWNLOADED, eid=eid)
    _audit(
        conn,
        now=now,
        partner_id=partner_id,
        action="profile.downloaded",
        entity_type="sim",
        entity_id=iccid,
        correlation_id=correlation_id,
        details={"eid": eid},
        actor=f"partner:{partner_id}",
    )
    shipment = _shipment_row(conn, sim.shipment_id)
    step = Schedule(PROFILE_PROGRESS, now + PROFILE_STEP_S, {"iccid": iccid, "state": INSTALLED})
    return _stock_row(conn, iccid), Outcome(shipment, [SHIPMENT_CHANGED], [step])


def profile_progress(
    conn: Connection, iccid: str, state: str, now: float, cid: str | None
) -> Outcome | None:
    """The device reports the profile installed, then enabled."""
    sim = _stock_row(conn, iccid)
    if sim is None or NEXT_PROFILE_STATE.get(sim.profile_state) != state:
        return None
    _set_stock(conn, iccid, now, profile_state=state)
    _audit(
        conn,
        now=now,
        partner_id=sim.partner_id,
        action=f"profile.{state}",
        entity_type="sim",
        entity_id=iccid,
        correlation_id=cid,
    )
    schedules = []
    if state in NEXT_PROFILE_STATE:
        following = {"iccid": iccid, "state": NEXT_PROFILE_STATE[state]}
        schedules.append(Schedule(PROFILE_PROGRESS, now + PROFILE_STEP_S, following))
    return Outcome(_shipment_row(conn, sim.shipment_id), [SHIPMENT_CHANGED], schedules)
