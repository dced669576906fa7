"""The host network's rules: TMF641 service orders, the TMF638 services (HLR/HSS records)
they provision (and the SIM changes they carry), and the TMF635 usage the network records
and sends to real-time charging.

No web layer here: every rule takes a `Connection` and plain values, so tests call it directly.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    Row,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    select,
    text,
)

from simulators.core import audit
from simulators.core.identifiers import is_valid_iccid, is_valid_imsi, is_valid_msisdn
from simulators.core.store import (
    count_and_page,
    equal_to,
    role_table,
    select_equal,
    update_equal,
)
from simulators.core.tasks import Reschedule, Task, Tasks
from simulators.core.tenancy import MVNE_PLATFORM, create_partner, partners, peer_api_key

from . import errors, fees, suspension
from . import partners as wholesale

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime

ROLE = "mno"
# The MNO's only client is the MVNE platform; its calls are audited as that peer.
PEER_ACTOR = "peer:mvne"
SYSTEM_ACTOR = "system"
ADMIN_ACTOR = "admin"
PROGRESS_SERVICE_ORDER = "mno.progress_service_order"
CLIENT_CAPABILITIES = ("PROVISION_SERVICES", "QUERY_SERVICES", "QUERY_USAGE", "NETWORK_TICKETS")

# TMF641 order and item states the fake enters (held, pending, cancelled and rejected are in
# the standard and the contract, but nothing here leads to them yet).
ACKNOWLEDGED = "acknowledged"
IN_PROGRESS = "inProgress"
COMPLETED = "completed"
FAILED = "failed"
PARTIAL = "partial"
# The states in which an order still has a completion ahead of it.
OPEN_ORDER_STATES = (ACKNOWLEDGED, IN_PROGRESS)

ORDER_TRANSITIONS: dict[str, tuple[str, ...]] = {
    ACKNOWLEDGED: (IN_PROGRESS,),
    IN_PROGRESS: (COMPLETED, PARTIAL, FAILED),
    COMPLETED: (),
    PARTIAL: (),
    FAILED: (),
}
ITEM_TRANSITIONS: dict[str, tuple[str, ...]] = {
    ACKNOWLEDGED: (IN_PROGRESS,),
    IN_PROGRESS: (COMPLETED, FAILED),
    COMPLETED: (),
    FAILED: (),
}

ADD = "add"
MODIFY = "modify"
DELETE = "delete"

# TMF638 service states.
SERVICE_INACTIVE = "inactive"
SERVICE_ACTIVE = "active"
SERVICE_TERMINATED = "terminated"

ATTACHED = "attached"
DETACHED = "detached"

BARRING_NONE = "none"
BARRING_VALUES = (BARRING_NONE, "outgoing", "all")
# Outgoing barring (3GPP TS 22.088 BAOC, which covers SMS as a teleservice) stops
# mobile-originated calls and SMS; packet data is stopped only by barring everything.
BARRED_USAGE: dict[str, frozenset[str]] = {
    BARRING_NONE: frozenset(),
    "outgoing": frozenset({"voice", "sms"}),
    "all": frozenset({"data", "voice", "sms"}),
}
BARRED_REASON = "BARRED"

# What kind of line the HLR record is: a subscriber's phone line, or a data-only machine
# (IoT/M2M) line provisioned on its own profile. Fraud and identity services built on a
# person's number (SIM Swap, Number Verification) do not apply to the latter.
SERVICE_TYPE_MOBILE = "mobile"
SERVICE_TYPE_IOT = "iot"
SERVICE_TYPES = (SERVICE_TYPE_MOBILE, SERVICE_TYPE_IOT)
# TMF relatedParty role of the MVNO a service is provisioned for.
MVNO_ROLE = "mvno"

# TMF635 usage states as the network sees them.
USAGE_RECEIVED = "received"
USAGE_RATED = "rated"
USAGE_REJECTED = "rejected"
USAGE_UNITS = {"data": "MB", "voice": "min", "sms": "msg"}

# Characteristics each action needs, and the ones it may carry besides. A modify changes the
# barring, the SIM (a new ICCID with its IMSI: a SIM change, what SIM Swap reports), or both.
_REQUIRED = {ADD: ("IMSI", "MSISDN", "ICCID"), MODIFY: (), DELETE: ()}
_OPTIONAL = {ADD: ("barring", "serviceType"), MODIFY: ("barring", "ICCID", "IMSI"), DELETE: ()}
_SIM = ("ICCID", "IMSI")

# A completion time this close to the clock counts as reached: a clock moved by 0.1 s
# steps never lands exactly on a float sum.
_CLOCK_TOLERANCE_S = 1e-6

_LIVE = text("state != 'terminated'")

service_orders = role_table(
    ROLE,
    "mno_service_order",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("client_id", String(64), nullable=False),
    Column("external_id", String(64), nullable=False),
    Column("description", Text, nullable=True),
    Column("state", String(16), nullable=False),
    # Hash of what was ordered, to tell a retry of this order from a different one.
    Column("request_hash", String(64), nullable=False),
    Column("order_date", Float, nullable=False),
    Column("start_date", Float, nullable=True),
    Column("complete_due", Float, nullable=True),
    Column("completion_date", Float, nullable=True),
    Column("correlation_id", String(256), nullable=True),
    # The MVNO the order's new services are for (TMF relatedParty, role mvno), if named.
    Column("mvno_id", String(64), nullable=True),
    # externalId is unique per client: whatever the idempotency layer does, a second order
    # for the same external reference cannot exist.
    UniqueConstraint("client_id", "external_id", name="uq_mno_service_order_external_id"),
)

service_order_items = role_table(
    ROLE,
    "mno_service_order_item",
    Column("order_id", String(40), ForeignKey("mno_service_order.id"), primary_key=True),
    Column("item_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("action", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("service_id", String(40), nullable=True),
    Column("characteristics", JSON, nullable=False),
    Column("error_code", String(40), nullable=True),
)

services = role_table(
    ROLE,
    "mno_service",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("name", String(80), nullable=False),
    Column("state", String(16), nullable=False),
    Column("imsi", String(15), nullable=False, index=True),
    Column("msisdn", String(16), nullable=False, index=True),
    Column("iccid", String(20), nullable=False, index=True),
    Column("barring", String(10), nullable=False),
    Column("attach_state", String(10), nullable=False),
    Column("last_attach_time", Float, nullable=True),
    Column("start_date", Float, nullable=False),
    Column("end_date", Float, nullable=True),
    Column("order_id", String(40), nullable=False),
    # The MVNO the line was provisioned for (the order's relatedParty, else the wholesale
    # partner whose IMSI block holds the IMSI); its CAMARA clients see this line and no
    # other partner's, and its wholesale settlement charges for it.
    Column("mvno_id", String(64), nullable=True, index=True),
    Column("service_type", String(8), nullable=False, server_default=SERVICE_TYPE_MOBILE),
    # The HLR holds one live record per IMSI, MSISDN and ICCID; terminated ones are history.
    Index(
        "uq_mno_service_live_imsi", "imsi", unique=True, sqlite_where=_LIVE, postgresql_where=_LIVE
    ),
    Index(
        "uq_mno_service_live_msisdn",
        "msisdn",
        unique=True,
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    ),
    Index(
        "uq_mno_service_live_iccid",
        "iccid",
        unique=True,
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    ),
)
# Built once: a statement built per call never reaches the store's direct SQLite path.
_INSERT_SERVICE_ORDER = service_orders.insert()
_INSERT_SERVICE_ORDER_ITEMS = service_order_items.insert()
_INSERT_SERVICE = services.insert()

usages = role_table(
    ROLE,
    "mno_usage",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("service_id", String(40), ForeignKey("mno_service.id"), nullable=False, index=True),
    Column("msisdn", String(16), nullable=False, index=True),
    Column("usage_type", String(8), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit", String(8), nullable=False),
    Column("status", String(10), nullable=False),
    Column("granted_quantity", Integer, nullable=True),
    Column("usage_date", Float, nullable=False),
    Column("reason", String(40), nullable=True),
    Column("correlation_id", String(256), nullable=True),
    # The visited network's MCC when the usage happened abroad (roaming); null at home.
    Column("visited_mcc", String(3), nullable=True),
    # The quantity the charging feed carried, when it differed from what was used.
    Column("fed_quantity", Integer, nullable=True),
)

# Every SIM change of a live service (a modify order that gave it a new ICCID and IMSI):
# the MSISDN's pairing history that SIM Swap answers from.
sim_changes = role_table(
    ROLE,
    "mno_sim_change",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(40), ForeignKey("mno_service.id"), nullable=False, index=True),
    Column("msisdn", String(16), nullable=False, index=True),
    Column("iccid_before", String(20), nullable=False),
    Column("imsi_before", String(15), nullable=False),
    Column("iccid", String(20), nullable=False),
    Column("imsi", String(15), nullable=False),
    Column("changed_at", Float, nullable=False),
    Column("order_id", String(40), nullable=False),
)

# Built once and run with bound values: see simulators/core/store.py.
_ITEMS_OF_ORDERS = (
    select(service_order_items)
    .where(service_order_items.c.order_id.in_(bindparam("order_ids", expanding=True)))
    .order_by(service_order_items.c.order_id, service_order_items.c.position)
)
_ITEMS_OF_ORDER = (
    select(service_order_items)
    .where(service_order_items.c.order_id == bindparam("order_id"))
    .order_by(service_order_items.c.position)
)
# The live line holding an identifier (imsi, msisdn or iccid), by column.
_LIVE_HOLDER = {
    column: select(services.c.id).where(
        services.c[column] == bindparam("value"), services.c.state != SERVICE_TERMINATED
    )
    for column in ("imsi", "msisdn", "iccid")
}
# The same, leaving out the line itself.
_OTHER_LIVE_HOLDER = {
    column: select(services.c.id).where(
        services.c[column] == bindparam("value"),
        services.c.state != SERVICE_TERMINATED,
        services.c.id != bindparam("service_id"),
    )
    for column in ("imsi", "iccid")
}
_LATEST_SIM_CHANGE = (
    select(sim_changes.c.changed_at)
    .where(sim_changes.c.service_id == bindparam("service_id"))
    .order_by(sim_changes.c.changed_at.desc(), sim_changes.c.pk.desc())
    .limit(1)
)
_LIVE_LINE_OF_MSISDN = (
    select(services)
    .where(services.c.msisdn == bindparam("msisdn"), services.c.state != SERVICE_TERMINATED)
    .order_by(services.c.pk.desc())
)


# --- what the rules hand back ----------------------------------------------------------------


@dataclass(frozen=True)
class ServiceOrderItem:
    item_id: str
    action: str
    state: str
    service_id: str | None
    characteristics: list[dict[str, str]]
    error_code: str | None


@dataclass(frozen=True)
class ServiceOrder:
    id: str
    client_id: str
    external_id: str
    description: str | None
    state: str
    order_date: float
    start_date: float | None
    completion_date: float | None
    items: list[ServiceOrderItem]
    mvno_id: str | None = None

    @property
    def failed_items(self) -> list[ServiceOrderItem]:
        return [item for item in self.items if item.state == FAILED]


@dataclass(frozen=True)
class Service:
    id: str
    client_id: str
    name: str
    state: str
    imsi: str
    msisdn: str
    iccid: str
    barring: str
    attach_state: str
    last_attach_time: float | None
    start_date: float
    end_date: float | None
    mvno_id: str | None = None
    service_type: str = SERVICE_TYPE_MOBILE


@dataclass(frozen=True)
class Usage:
    id: str
    client_id: str
    service_id: str
    msisdn: str
    usage_type: str
    quantity: int
    unit: str
    status: str
    granted_quantity: int | None
    usage_date: float
    reason: str | None
    visited_mcc: str | None = None
    fed_quantity: int | None = None


@dataclass(frozen=True)
class Money:
    amount: Decimal
    units: str


@dataclass(frozen=True)
class ChargingOutcome:
    """What real-time charging (the MVNE) decided about one usage record."""

    status: str
    granted_quantity: int
    charge: Money | None = None
    balance_after: Money | None = None
    barred: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class TrafficResult:
    usage: Usage
    # None when the network refused the usage itself and charging was never asked.
    charging: ChargingOutcome | None

    @property
    def barred(self) -> bool:
        if self.charging is None:
            return self.usage.reason == BARRED_REASON
        return self.charging.barred

    @property
    def reason(self) -> str | None:
        return self.usage.reason if self.charging is None else self.charging.reason


Charger = Callable[[Usage], ChargingOutcome]


@dataclass(frozen=True)
class _ItemRequest:
    item_id: str
    action: str
    service_id: str | None
    characteristics: list[dict[str, str]]

    def value(self, name: str) -> str | None:
        return next((c["value"] for c in self.characteristics if c["name"] == name), None)


# --- helpers -------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _check_transition(table: Mapping[str, tuple[str, ...]], current: str, target: str) -> None:
    if target not in table.get(current, ()):
        raise ValueError(f"no transition {current} -> {target}")


def _item_from_row(row: Row[Any]) -> ServiceOrderItem:
    return ServiceOrderItem(
        item_id=row.item_id,
        action=row.action,
        state=row.state,
        service_id=row.service_id,
        characteristics=[dict(c) for c in row.characteristics],
        error_code=row.error_code,
    )


def _order_from_row(row: Row[Any], items: list[ServiceOrderItem]) -> ServiceOrder:
    return ServiceOrder(
        id=row.id,
        client_id=row.client_id,
        external_id=row.external_id,
        description=row.description,
        state=row.state,
        order_date=row.order_date,
        start_date=row.start_date,
        completion_date=row.completion_date,
        items=items,
        mvno_id=row.mvno_id,
    )


def _service_from_row(row: Row[Any]) -> Service:
    return Service(
        id=row.id,
        client_id=row.client_id,
        name=row.name,
        state=row.state,
        imsi=row.imsi,
        msisdn=row.msisdn,
        iccid=row.iccid,
        barring=row.barring,
        attach_state=row.attach_state,
        last_attach_time=row.last_attach_time,
        start_date=row.start_date,
        end_date=row.end_date,
        mvno_id=row.mvno_id,
        service_type=row.service_type,
    )


def _usage_from_row(row: Row[Any]) -> Usage:
    return Usage(
        id=row.id,
        client_id=row.client_id,
        service_id=row.service_id,
        msisdn=row.msisdn,
        usage_type=row.usage_type,
        quantity=row.quantity,
        unit=row.unit,
        status=row.status,
        granted_quantity=row.granted_quantity,
        usage_date=row.usage_date,
        reason=row.reason,
        visited_mcc=row.visited_mcc,
        fed_quantity=row.fed_quantity,
    )


def _load_orders(conn: Connection, rows: Sequence[Row[Any]]) -> list[ServiceOrder]:
    if not rows:
        return []
    if len(rows) == 1:
        item_rows = conn.execute(_ITEMS_OF_ORDER, {"order_id": rows[0].id}).all()
    else:
        item_rows = conn.execute(_ITEMS_OF_ORDERS, {"order_ids": [row.id for row in rows]}).all()
    by_order: dict[str, list[ServiceOrderItem]] = {row.id: [] for row in rows}
    for item_row in item_rows:
        by_order[item_row.order_id].append(_item_from_row(item_row))
    return [_order_from_row(row, by_order[row.id]) for row in rows]


def _request_hash(
    external_id: str, description: str | None, items: Sequence[Any], mvno_id: str | None = None
) -> str:
    ordered: dict[str, Any] = {
        "externalId": external_id,
        "description": description,
        "serviceOrderItem": items,
    }
    if mvno_id is not None:
        ordered["mvno"] = mvno_id
    canonical = json.dumps(
        ordered,
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- service orders (TMF641) -------------------------------------------------------------------


def _characteristic_problem(name: str, value: str) -> str | None:
    """Why a characteristic value is unacceptable, or None."""
    if name == "IMSI" and not is_valid_imsi(value):
        return f"IMSI {value!r} is not an E.212 IMSI (MCC + MNC + MSIN, 6 to 15 digits)"
    if name == "MSISDN" and not is_valid_msisdn(value):
        return f"MSISDN {value!r} is not an E.164 number in the +<digits> form"
    if name == "ICCID" and not is_valid_iccid(value):
        shaped = value.isascii() and value.isdigit() and len(value) in (19, 20)
        if shaped and value.startswith("89"):
            return f"ICCID {value!r} has a wrong Luhn check digit (E.118)"
        return f"ICCID {value!r} is not an E.118 ICCID (19 or 20 digits starting 89)"
    if name == "barring" and value not in BARRING_VALUES:
        return f"barring {value!r} must be one of {', '.join(BARRING_VALUES)}"
    if name == "serviceType" and value not in SERVICE_TYPES:
        return f"serviceType {value!r} must be one of {', '.join(SERVICE_TYPES)}"
    return None


def parse_order_items(items: Sequence[Mapping[str, Any]]) -> list[_ItemRequest]:
    """Check each item against the rules of its action; 400 naming the field otherwise."""
    parsed: list[_ItemRequest] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"serviceOrderItem[{index}]"
        item_id = str(item["id"])
        if item_id in seen:
            raise errors.DuplicateOrderItemId(
                f"{where}.id: item id {item_id!r} is used twice in this order", field=f"{where}.id"
            )
        seen.add(item_id)
        action = str(item["action"])
        service = item.get("service") or {}
        service_id = service.get("id")
        if action == ADD and service_id is not None:
            raise errors.UnexpectedServiceId(
                f"{where}.service.id: an add item must not name a service; "
                "the network assigns its id",
                field=f"{where}.service.id",
            )
        if action in (MODIFY, DELETE) and not service_id:
            raise errors.MissingServiceId(
                f"{where}.service.id: a {action} item must name the service",
                field=f"{where}.service.id",
            )
        characteristics: list[dict[str, str]] = []
        names: set[str] = set()
        allowed = _REQUIRED[action] + _OPTIONAL[action]
        for position, characteristic in enumerate(service.get("serviceCharacteristic") or []):
            name, value = str(characteristic["name"]), str(characteristic["value"])
            field = f"{where}.service.serviceCharacteristic[{position}]"
            if name in names:
                raise errors.InvalidServiceCharacteristic(
                    f"{field}.name: characteristic {name} is given twice",
                    field=f"{field}.name",
                    characteristic=name,
                )
            names.add(name)
            if name not in allowed:
                raise errors.InvalidServiceCharacteristic(
                    f"{field}.name: a {action} item does not take the characteristic {name}",
                    field=f"{field}.name",
                    characteristic=name,
                )
            problem = _characteristic_problem(name, value)
            if problem is not None:
                raise errors.InvalidServiceCharacteristic(
                    f"{field}.value: {problem}", field=f"{field}.value", characteristic=name
                )
            characteristics.append({"name": name, "value": value})
        missing = [name for name in _REQUIRED[action] if name not in names]
        if action == MODIFY and not names:
            missing = ["barring, or ICCID and IMSI"]
        elif action == MODIFY and len(names & set(_SIM)) == 1:
            # A SIM change brings a new card: its ICCID and the IMSI on it, never one alone.
            missing = [name for name in _SIM if name not in names]
        if missing:
            raise errors.MissingServiceCharacteristic(
                f"{where}.service.serviceCharacteristic: a {action} item needs "
                f"{', '.join(missing)}",
                field=f"{where}.service.serviceCharacteristic",
                characteristic=missing[0],
            )
        parsed.append(_ItemRequest(item_id, action, service_id, characteristics))
    return parsed


def create_service_order(
    conn: Connection,
    tasks: Tasks,
    *,
    client_id: str,
    external_id: str,
    items: Sequence[Mapping[str, Any]],
    now: float,
    correlation_id: str | None,
    description: str | None = None,
    actor: str = PEER_ACTOR,
    stuck_in: str | None = None,
    failing_iccids: tuple[str, ...] | None = None,
    failing_line: int | None = None,
    mvno_id: str | None = None,
) -> tuple[ServiceOrder, bool]:
    """Accept an order (acknowledged) and schedule its progress; True if it is new.

    The same externalId with the same content answers the existing order; with other
    content it is a 409, so a client can never hold two orders under one reference.
    `mvno_id` names the MVNO the order's new services are for (its TMF relatedParty).
    Faults: `stuck_in` leaves the order in that state for good (ORDER_STUCK);
    `failing_iccids` has the HLR reject those items, all when empty (ORDER_ITEM_FAILED),
    only the one at `failing_line` (1-based) when that is set.
    """
    request_hash = _request_hash(external_id, description, list(items), mvno_id)
    existing = select_equal(
        conn, service_orders, client_id=client_id, external_id=external_id
    ).first()
    if existing is not None:
        if existing.request_hash != request_hash:
            raise errors.ExternalIdInUse(
                f"externalId {external_id!r} already names order {existing.id}, "
                "which asked for something else",
                field="externalId",
                serviceOrderId=existing.id,
            )
        return _load_orders(conn, [existing])[0], False

    parsed = parse_order_items(items)
    for index, item in enumerate(parsed):
        if item.action == ADD:
            continue
        assert item.service_id is not None
        row = _client_service_row(conn, client_id, item.service_id)
        field = f"serviceOrderItem[{index}].service.id"
        if row is None:
            raise errors.UnknownService(
                f"{field}: no service {item.service_id} for this client", field=field
            )
        if row.state == SERVICE_TERMINATED:
            raise errors.ServiceTerminated(
                f"{field}: service {item.service_id} is terminated", field=field
            )

    order_id = new_id("so")
    conn.execute(
        _INSERT_SERVICE_ORDER,
        {
            "id": order_id,
            "client_id": client_id,
            "external_id": external_id,
            "description": description,
            "state": ACKNOWLEDGED,
            "request_hash": request_hash,
            "order_date": now,
            "correlation_id": correlation_id,
            "mvno_id": mvno_id,
        },
    )
    conn.execute(
        _INSERT_SERVICE_ORDER_ITEMS,
        [
            {
                "order_id": order_id,
                "item_id": item.item_id,
                "position": position,
                "action": item.action,
                "state": ACKNOWLEDGED,
                "service_id": item.service_id,
                "characteristics": item.characteristics,
                # Decided now, shown only if the item ends failed (see _complete_order).
                "error_code": _item_failure(
                    conn,
                    order_id,
                    mvno_id,
                    item,
                    failing_iccids if failing_line in (None, position + 1) else None,
                    now,
                ),
            }
            for position, item in enumerate(parsed)
        ],
    )
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=actor,
        partner_id=client_id,
        action="serviceOrder.acknowledged",
        entity_type="serviceOrder",
        entity_id=order_id,
        correlation_id=correlation_id,
        details={"externalId": external_id, "actions": [item.action for item in parsed]},
    )
    if stuck_in != ACKNOWLEDGED:
        payload: dict[str, Any] = {"serviceOrderId": order_id}
        if stuck_in:
            payload["stuckIn"] = stuck_in
        tasks.schedule(
            conn,
            role=ROLE,
            kind=PROGRESS_SERVICE_ORDER,
            payload=payload,
            due_at=now,
            correlation_id=correlation_id,
        )
    return get_service_order(conn, client_id, order_id), True


def _item_failure(
    conn: Connection,
    order_id: str,
    mvno_id: str | None,
    item: _ItemRequest,
    failing_iccids: tuple[str, ...] | None,
    now: float,
) -> str | None:
    """Why the network will fail this item, decided when it receives the order: the
    ORDER_ITEM_FAILED fault, or a new line for a partner whose activations are suspended
    (the cut-off rule in `suspension`)."""
    if _rejected(item, failing_iccids):
        return "HLR_REJECTED"
    imsi = item.value("IMSI") if item.action == ADD else None
    if imsi is None:
        return None
    partner_id = wholesale.partner_of_line(conn, mvno_id, imsi)
    if partner_id is None:
        return None
    return suspension.gate_activation(
        conn,
        partner_id=partner_id,
        service_order_id=order_id,
        item_id=item.item_id,
        received_at=now,
    )


def _rejected(item: _ItemRequest, failing_iccids: tuple[str, ...] | None) -> bool:
    if failing_iccids is None:
        return False
    iccid = next(
        (str(c["value"]) for c in item.characteristics if str(c["name"]).lower() == "iccid"), None
    )
    return not failing_iccids or iccid in failing_iccids


def get_service_order(conn: Connection, client_id: str, order_id: str) -> ServiceOrder:
    row = select_equal(conn, service_orders, id=order_id, client_id=client_id).first()
    if row is None:
        raise errors.ServiceOrderNotFound(f"No service order {order_id}")
    return _load_orders(conn, [row])[0]


def list_service_orders(
    conn: Connection,
    client_id: str,
    *,
    state: str | None = None,
    external_id: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[ServiceOrder]]:
    conditions = [
        service_orders.c.client_id == client_id,
        *equal_to(service_orders, state=state, external_id=external_id),
    ]
    total, rows = count_and_page(
        conn, service_orders, conditions, [service_orders.c.pk], offset, limit
    )
    return total, _load_orders(conn, rows)


def advance_service_order(
    conn: Connection,
    order_id: str,
    *,
    now: float,
    provisioning_s: float,
    correlation_id: str | None,
) -> float | None:
    """One lifecycle step; return the seconds until the next one, None when the order is done.

    acknowledged -> inProgress at once; inProgress -> completed | partial | failed once
    `provisioning_s` have passed since the order date. Safe to run twice.
    """
    row = select_equal(conn, service_orders, id=order_id).first()
    if row is None:
        return None  # reset away under the step
    if row.state == ACKNOWLEDGED:
        due = row.order_date + provisioning_s
        _move_order(conn, row, IN_PROGRESS, now, correlation_id, start_date=now, complete_due=due)
        update_equal(conn, service_order_items, {"order_id": order_id}, state=IN_PROGRESS)
        return max(0.0, float(due - now))
    if row.state == IN_PROGRESS:
        if now + _CLOCK_TOLERANCE_S < row.complete_due:
            return float(row.complete_due - now)
        _complete_order(conn, row, now, correlation_id)
    return None


def _move_order(
    conn: Connection,
    row: Row[Any],
    target: str,
    now: float,
    correlation_id: str | None,
    details: dict[str, Any] | None = None,
    **values: Any,
) -> None:
    _check_transition(ORDER_TRANSITIONS, row.state, target)
    update_equal(conn, service_orders, {"id": row.id}, state=target, **values)
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=SYSTEM_ACTOR,
        partner_id=row.client_id,
        action=f"serviceOrder.{target}",
        entity_type="serviceOrder",
        entity_id=row.id,
        correlation_id=correlation_id,
        details={"from": row.state, "to": target, **(details or {})},
    )


def _complete_order(
    conn: Connection, order: Row[Any], now: float, correlation_id: str | None
) -> None:
    item_rows = conn.execute(_ITEMS_OF_ORDER, {"order_id": order.id}).all()
    failures: dict[str, str] = {}
    for item_row in item_rows:
        _check_transition(ITEM_TRANSITIONS, item_row.state, COMPLETED)
        if item_row.error_code:
            service_id, failure = None, item_row.error_code
        else:
            service_id, failure = _apply_item(conn, order, item_row, now, correlation_id)
        if failure is not None:
            failures[item_row.item_id] = failure
        update_equal(
            conn,
            service_order_items,
            {"order_id": order.id, "item_id": item_row.item_id},
            state=FAILED if failure else COMPLETED,
            service_id=service_id,
            error_code=failure,
        )
    if not failures:
        final = COMPLETED
    elif len(failures) == len(item_rows):
        final = FAILED
    else:
        final = PARTIAL
    _move_order(
        conn,
        order,
        final,
        now,
        correlation_id,
        details={"failedItems": failures} if failures else None,
        completion_date=now,
    )


def _apply_item(
    conn: Connection, order: Row[Any], item: Row[Any], now: float, correlation_id: str | None
) -> tuple[str | None, str | None]:
    """Carry one item out on the HLR; return (service id, failure code or None)."""
    values = {c["name"]: c["value"] for c in item.characteristics}
    if item.action == ADD:
        for name, column in (("IMSI", "imsi"), ("MSISDN", "msisdn"), ("ICCID", "iccid")):
            held = conn.execute(_LIVE_HOLDER[column], {"value": values[name]}).first()
            if held is not None:
                return None, f"{name}_IN_USE"
        service_id = new_id("svc")
        barring = values.get("barring", BARRING_NONE)
        service_type = values.get("serviceType", SERVICE_TYPE_MOBILE)
        kind = "IoT line" if service_type == SERVICE_TYPE_IOT else "Mobile line"
        partner_id = wholesale.partner_of_line(conn, order.mvno_id, values["IMSI"])
        mvno_id = order.mvno_id or wholesale.mvno_of(conn, partner_id)
        conn.execute(
            _INSERT_SERVICE,
            {
                "id": service_id,
                "client_id": order.client_id,
                "name": f"{kind} {values['MSISDN']}",
                "state": SERVICE_ACTIVE,
                "imsi": values["IMSI"],
                "msisdn": values["MSISDN"],
                "iccid": values["ICCID"],
                "barring": barring,
                "attach_state": ATTACHED,
                "last_attach_time": now,
                "start_date": now,
                "order_id": order.id,
                "mvno_id": mvno_id,
                "service_type": service_type,
            },
        )
        _audit_service(
            conn,
            order,
            service_id,
            "service.activated",
            now,
            correlation_id,
            {"msisdn": values["MSISDN"], "barring": barring, "serviceOrderId": order.id},
        )
        if partner_id is not None:
            fees.post_activation_fee(
                conn,
                partner_id=partner_id,
                service_id=service_id,
                service_order_id=order.id,
                item_id=item.item_id,
                now=now,
                correlation_id=correlation_id,
            )
        return service_id, None

    service = _client_service_row(conn, order.client_id, item.service_id)
    if service is None:
        return item.service_id, "SERVICE_NOT_FOUND"
    if service.state == SERVICE_TERMINATED:
        return service.id, "SERVICE_TERMINATED"
    if item.action == MODIFY:
        if "ICCID" in values:
            failure = _change_sim(conn, order, service, values, now, correlation_id)
            if failure is not None:
                return service.id, failure
        if "barring" in values:
            update_equal(conn, services, {"id": service.id}, barring=values["barring"])
            _audit_service(
                conn,
                order,
                service.id,
                "service.barringChanged",
                now,
                correlation_id,
                {"from": service.barring, "to": values["barring"], "serviceOrderId": order.id},
            )
        return service.id, None
    update_equal(
        conn,
        services,
        {"id": service.id},
        state=SERVICE_TERMINATED,
        attach_state=DETACHED,
        end_date=now,
    )
    _audit_service(
        conn,
        order,
        service.id,
        "service.terminated",
        now,
        correlation_id,
        {"from": service.state, "serviceOrderId": order.id},
    )
    return service.id, None


def _change_sim(
    conn: Connection,
    order: Row[Any],
    service: Row[Any],
    values: Mapping[str, str],
    now: float,
    correlation_id: str | None,
) -> str | None:
    """Move the line to a new SIM (ICCID and IMSI) and record when; a failure code if the
    HLR cannot (the new identifiers are another live line's)."""
    iccid, imsi = values["ICCID"], values["IMSI"]
    if (iccid, imsi) == (service.iccid, service.imsi):
        return None  # the line is already on this SIM: nothing changes, nothing to report
    for name, column, value in (("IMSI", "imsi", imsi), ("ICCID", "iccid", iccid)):
        held = conn.execute(
            _OTHER_LIVE_HOLDER[column], {"value": value, "service_id": service.id}
        ).first()
        if held is not None:
            return f"{name}_IN_USE"
    update_equal(conn, services, {"id": service.id}, iccid=iccid, imsi=imsi)
    conn.execute(
        sim_changes.insert(),
        {
            "service_id": service.id,
            "msisdn": service.msisdn,
            "iccid_before": service.iccid,
            "imsi_before": service.imsi,
            "iccid": iccid,
            "imsi": imsi,
            "changed_at": now,
            "order_id": order.id,
        },
    )
    _audit_service(
        conn,
        order,
        service.id,
        "service.simChanged",
        now,
        correlation_id,
        {
            "fromIccid": service.iccid,
            "toIccid": iccid,
            "fromImsi": service.imsi,
            "toImsi": imsi,
            "serviceOrderId": order.id,
        },
    )
    return None


def latest_sim_change(conn: Connection, service: Service) -> float:
    """When the line's MSISDN was last paired with a new SIM: its latest SIM change, else
    its activation (CAMARA counts a new subscription as a SIM swap)."""
    changed = conn.execute(_LATEST_SIM_CHANGE, {"service_id": service.id}).scalar()
    return service.start_date if changed is None else max(float(changed), service.start_date)


def _audit_service(
    conn: Connection,
    order: Row[Any],
    service_id: str,
    action: str,
    now: float,
    correlation_id: str | None,
    details: dict[str, Any],
) -> None:
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=SYSTEM_ACTOR,
        partner_id=order.client_id,
        action=action,
        entity_type="service",
        entity_id=service_id,
        correlation_id=correlation_id,
        details=details,
    )


_NEVER_S = 100 * 365 * 24 * 3600.0


def run_progress_step(runtime: Runtime, task: Task) -> None:
    """Task handler: move one order along, then come back when the network is done."""
    order_id = str(task.payload["serviceOrderId"])
    if task.payload.get("stuckIn") == IN_PROGRESS:
        provisioning_s = _NEVER_S  # the ORDER_STUCK fault: the network never finishes
    else:
        provisioning_s = runtime.settings.mno_provisioning_s
    with runtime.store.write() as conn:
        delay = advance_service_order(
            conn,
            order_id,
            now=runtime.clock.now(conn),
            provisioning_s=provisioning_s,
            correlation_id=task.correlation_id,
        )
    # Raised after the commit: the step's progress must survive the reschedule.
    if delay is not None:
        raise Reschedule(delay, f"service order {order_id} in progress")


# --- services (TMF638) -----------------------------------------------------------------------


def _client_service_row(
    conn: Connection, client_id: str, service_id: str | None
) -> Row[Any] | None:
    return select_equal(conn, services, id=service_id, client_id=client_id).first()


def service_by_id(conn: Connection, service_id: str) -> Service | None:
    """Any client's service: for the network's own services (CAMARA, the authorization
    server) that scope lines by MVNO, not by the client that ordered them."""
    row = select_equal(conn, services, id=service_id).first()
    return None if row is None else _service_from_row(row)


def get_service(conn: Connection, client_id: str, service_id: str) -> Service:
    row = _client_service_row(conn, client_id, service_id)
    if row is None:
        raise errors.ServiceNotFound(f"No service {service_id}")
    return _service_from_row(row)


def list_services(
    conn: Connection,
    client_id: str,
    *,
    msisdn: str | None = None,
    imsi: str | None = None,
    iccid: str | None = None,
    state: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Service]]:
    conditions: list[Any] = [services.c.client_id == client_id]
    for column, value in (("msisdn", msisdn), ("imsi", imsi), ("iccid", iccid), ("state", state)):
        if value:
            conditions.append(services.c[column] == value)
    total, rows = count_and_page(conn, services, conditions, [services.c.pk], offset, limit)
    return total, [_service_from_row(row) for row in rows]


# --- usage (TMF635) and real-time charging ---------------------------------------------------


def get_usage(conn: Connection, client_id: str, usage_id: str) -> Usage:
    row = select_equal(conn, usages, id=usage_id, client_id=client_id).first()
    if row is None:
        raise errors.UsageNotFound(f"No usage record {usage_id}")
    return _usage_from_row(row)


def list_usage(
    conn: Connection,
    client_id: str,
    *,
    msisdn: str | None = None,
    service_id: str | None = None,
    status: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Usage]]:
    conditions: list[Any] = [usages.c.client_id == client_id]
    for column, value in (("msisdn", msisdn), ("service_id", service_id), ("status", status)):
        if value:
            conditions.append(usages.c[column] == value)
    total, rows = count_and_page(conn, usages, conditions, [usages.c.pk], offset, limit)
    return total, [_usage_from_row(row) for row in rows]


def record_traffic(
    conn: Connection,
    *,
    msisdn: str,
    usage_type: str,
    quantity: int,
    now: float,
    correlation_id: str | None,
    visited_mcc: str | None = None,
) -> Usage:
    """The network sees a subscriber's usage: refuse it when barred, else record it received.
    `visited_mcc` is the network a roaming subscriber used (None at home)."""
    row = conn.execute(_LIVE_LINE_OF_MSISDN, {"msisdn": msisdn}).first()
    if row is None:
        ended = select_equal(conn, services, msisdn=msisdn, state=SERVICE_TERMINATED).first()
        if ended is not None:
            raise errors.ServiceNotActive(
                f"The service holding {msisdn} is terminated", msisdn=msisdn
            )
        raise errors.ServiceNotFound(f"No service on the network holds {msisdn}", msisdn=msisdn)
    if row.state != SERVICE_ACTIVE:
        raise errors.ServiceNotActive(f"The service holding {msisdn} is {row.state}", msisdn=msisdn)
    barred = usage_type in BARRED_USAGE.get(row.barring, frozenset())
    usage_id = new_id("usg")
    conn.execute(
        usages.insert(),
        {
            "id": usage_id,
            "client_id": row.client_id,
            "service_id": row.id,
            "msisdn": msisdn,
            "usage_type": usage_type,
            "quantity": quantity,
            "unit": USAGE_UNITS[usage_type],
            "status": USAGE_REJECTED if barred else USAGE_RECEIVED,
            "granted_quantity": 0 if barred else None,
            "usage_date": now,
            "reason": BARRED_REASON if barred else None,
            "correlation_id": correlation_id,
            "visited_mcc": visited_mcc,
        },
    )
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=ADMIN_ACTOR,
        partner_id=row.client_id,
        action="usage.rejected" if barred else "usage.received",
        entity_type="usage",
        entity_id=usage_id,
        correlation_id=correlation_id,
        details={
            "serviceId": row.id,
            "usageType": usage_type,
            "quantity": quantity,
            "barring": row.barring,
            "visitedMcc": visited_mcc,
        },
    )
    return _usage_by_id(conn, usage_id)


def _usage_by_id(conn: Connection, usage_id: str) -> Usage:
    return _usage_from_row(select_equal(conn, usages, id=usage_id).one())


def apply_charging_outcome(
    conn: Connection,
    usage_id: str,
    outcome: ChargingOutcome,
    *,
    now: float,
    correlation_id: str | None,
) -> Usage:
    """Record what charging decided about a received usage (rated or rejected)."""
    usage = _usage_by_id(conn, usage_id)
    if usage.status != USAGE_RECEIVED:
        return usage  # already decided: a replayed charging answer changes nothing
    if outcome.status not in (USAGE_RATED, USAGE_REJECTED):
        raise ValueError(f"charging outcome {outcome.status!r} is neither rated nor rejected")
    granted = min(max(outcome.granted_quantity, 0), usage.quantity)
    update_equal(
        conn,
        usages,
        {"id": usage_id},
        status=outcome.status,
        granted_quantity=granted,
        reason=outcome.reason,
    )
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=PEER_ACTOR,
        partner_id=usage.client_id,
        action=f"usage.{outcome.status}",
        entity_type="usage",
        entity_id=usage_id,
        correlation_id=correlation_id,
        details={
            "grantedQuantity": granted,
            "charge": None if outcome.charge is None else str(outcome.charge.amount),
            "units": None if outcome.charge is None else outcome.charge.units,
            "barred": outcome.barred,
        },
    )
    return _usage_by_id(conn, usage_id)


# Called in the transaction that records the charging outcome: (connection, the usage as
# charged, how many copies of the record the network delivered).
ChargedHook = Callable[[Connection, Usage, int], None]


def simulate_traffic(
    runtime: Runtime,
    *,
    msisdn: str,
    usage_type: str,
    quantity: int,
    correlation_id: str | None,
    charge: Charger,
    late_by_s: float = 0.0,
    duplicate: bool = False,
    at: float | None = None,
    visited_mcc: str | None = None,
    feed_factor: int = 1,
    on_charged: ChargedHook | None = None,
) -> TrafficResult:
    """Record a usage, then have it charged in real time.

    The faults: `late_by_s` (LATE_USAGE: the record arrives that long after it happened),
    `duplicate` (DUPLICATE_USAGE: the network resends it) and `feed_factor` (WRONG_UNIT:
    the charging feed carries the quantity in a unit that many times smaller, KB for MB or
    seconds for minutes, under the contract's unit). `at` dates the usage (default: now).

    The usage is committed `received` before charging is asked, and no transaction is
    held while waiting for the answer; if charging fails (the charger raises), the
    usage stays `received` for a later rating. `on_charged` runs in the transaction that
    records the outcome (wholesale settlement hangs there).
    """
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        usage = record_traffic(
            conn,
            msisdn=msisdn,
            usage_type=usage_type,
            quantity=quantity,
            now=(now if at is None else at) - late_by_s,
            correlation_id=correlation_id,
            visited_mcc=visited_mcc,
        )
        if feed_factor != 1 and usage.status == USAGE_RECEIVED:
            fed = quantity * feed_factor
            update_equal(conn, usages, {"id": usage.id}, fed_quantity=fed)
            usage = replace(usage, fed_quantity=fed)
    if usage.status != USAGE_RECEIVED:
        return TrafficResult(usage, None)
    as_fed = usage if usage.fed_quantity is None else replace(usage, quantity=usage.fed_quantity)
    outcome = charge(as_fed)
    if duplicate:
        # The DUPLICATE_USAGE fault: the network resends the record (same externalId);
        # a correct charging system answers it without charging twice.
        charge(as_fed)
    with runtime.store.write() as conn:
        usage = apply_charging_outcome(
            conn, usage.id, outcome, now=runtime.clock.now(conn), correlation_id=correlation_id
        )
        if on_charged is not None:
            on_charged(conn, usage, 2 if duplicate else 1)
    return TrafficResult(usage, outcome)


# --- reference data ----------------------------------------------------------------------------


def seed_reference_data(runtime: Runtime, conn: Connection, seed: int) -> None:
    """The MVNE platform as the network's client; only added when missing."""
    known = select_equal(conn, partners, id=MVNE_PLATFORM).first()
    if known is not None:
        return
    create_partner(
        conn,
        secret_key=runtime.settings.secret_key,
        partner_id=MVNE_PLATFORM,
        role=ROLE,
        name="MVNE platform",
        agreement={"capabilities": list(CLIENT_CAPABILITIES)},
        granted=list(CLIENT_CAPABILITIES),
        now=runtime.clock.now(conn),
        api_key=peer_api_key(runtime.settings, MVNE_PLATFORM),
    )
