"""The MVNE's rules: SIM pools, activation orders, subscriptions, rating and real-time balance.

No Flask here: every function takes an open transaction (`Connection`), the
calling partner and the simulated time, so the rules are testable alone.
The network side of each change goes to the MNO through its contract, in
lifecycle steps (`steps.py`), never inside a partner's request.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace
from typing import Any

from faker import Faker
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    case,
    func,
    or_,
    select,
    union_all,
)

from simulators.core import audit
from simulators.core.identifiers import (
    FICTITIOUS_UK_CAPACITY,
    iccid_for,
    imsi_for,
    is_valid_iccid,
    uk_fictitious_msisdn,
)
from simulators.core.store import role_table, select_equal, update_equal
from simulators.core.tenancy import Partner, require_capability

from . import errors

ROLE = "mvne"

offering_table = role_table(
    ROLE,
    "mvne_offering",
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("market", String(2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("initial_credit_minor", Integer, nullable=False),
    # Rates in minor units per MB, per minute, per message.
    Column("data_rate_minor", Integer, nullable=False),
    Column("voice_rate_minor", Integer, nullable=False),
    Column("sms_rate_minor", Integer, nullable=False),
)

sim_table = role_table(
    ROLE,
    "mvne_sim",
    Column("iccid", String(20), primary_key=True),
    Column("partner_id", String(64), ForeignKey("partner.id"), nullable=False, index=True),
    Column("imsi", String(15), nullable=False, unique=True),
    Column("status", String(12), nullable=False),
    Column("profile_type", String(10), nullable=False),
    Column("product_id", String(40), nullable=True),
    Column("updated_at", Float, nullable=False),
    # The vendor batch a SIM was loaded from; None for the pools the agreement seeds.
    Column("batch_number", String(32), nullable=True),
    # The subscriber account fulfillment mapped the SIM to (the ICCID mapping handoff).
    Column("mapped_account_id", String(64), nullable=True),
    Column("mapped_shipment_id", String(64), nullable=True),
    Column("mapped_subscriber_name", String(200), nullable=True),
    Column("mapped_at", Float, nullable=True),
    # eSIM profiles loaded from a vendor file: SGP.22 matching ID and profile state.
    Column("matching_id", String(64), nullable=True),
    Column("esim_state", String(12), nullable=True),
    Index("ix_sim_partner_batch", "partner_id", "batch_number"),
    # One SM-DP+ serves every profile: a matching ID names one profile (NULLs do not clash).
    Index("ux_sim_matching_id", "matching_id", unique=True),
)

sim_batch_table = role_table(
    ROLE,
    "mvne_sim_batch",
    Column("partner_id", String(64), ForeignKey("partner.id"), primary_key=True),
    Column("batch_number", String(32), primary_key=True),
    Column("profile_type", String(8), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("first_iccid", String(20), nullable=False),
    Column("last_iccid", String(20), nullable=False),
    Column("first_imsi", String(15), nullable=False),
    Column("last_imsi", String(15), nullable=False),
    # SHA-256 of the file as delivered: the same file again is a repeat, not a new batch.
    Column("sha256", String(64), nullable=False),
    Column("correlation_id", String(256), nullable=True),
    Column("loaded_at", Float, nullable=False),
    Index("ix_sim_batch_partner_loaded", "partner_id", "loaded_at"),
)

order_table = role_table(
    ROLE,
    "mvne_product_order",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), ForeignKey("partner.id"), nullable=False),
    Column("external_id", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("description", String(500), nullable=True),
    Column("state", String(16), nullable=False),
    Column("state_reason", JSON, nullable=True),
    Column("items", JSON, nullable=False),
    Column("network_order_id", String(64), nullable=True),
    Column("correlation_id", String(256), nullable=True),
    # The subscriber's account the order names (TMF622 billingAccount), if any.
    Column("billing_account_id", String(64), nullable=True),
    Column("order_date", Float, nullable=False),
    Column("completion_date", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("partner_id", "external_id", name="uq_order_external_id"),
    Index("ix_order_partner_date", "partner_id", "order_date"),
)

product_table = role_table(
    ROLE,
    "mvne_product",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), ForeignKey("partner.id"), nullable=False, index=True),
    Column("order_id", String(40), nullable=False),
    Column("iccid", String(20), nullable=False),
    Column("imsi", String(15), nullable=False),
    Column("msisdn", String(16), nullable=False, index=True),
    Column("offering_id", String(64), nullable=False),
    Column("market", String(2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("balance_minor", Integer, nullable=False),
    Column("balance_barred", Boolean, nullable=False, default=False),
    Column("network_service_id", String(64), nullable=True),
    Column("network_barring", String(10), nullable=False),
    Column("start_date", Float, nullable=False),
    Column("termination_date", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
)

# Append-only: the balance on a product is a projection of these rows.
balance_entry_table = role_table(
    ROLE,
    "mvne_balance_entry",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", String(40), nullable=False, index=True),
    Column("partner_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount_minor", Integer, nullable=False),
    Column("balance_after_minor", Integer, nullable=False),
    Column("reference", String(64), nullable=False),
    Column("correlation_id", String(256), nullable=True),
    Column("at", Float, nullable=False),
)

topup_table = role_table(
    ROLE,
    "mvne_topup",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("product_id", String(40), nullable=False),
    Column("external_id", String(64), nullable=True),
    Column("amount_minor", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance_after_minor", Integer, nullable=False),
    Column("requested_at", Float, nullable=False),
)

usage_table = role_table(
    ROLE,
    "mvne_usage",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("product_id", String(40), nullable=False),
    Column("external_id", String(64), nullable=False, unique=True),
    Column("msisdn", String(16), nullable=False),
    Column("usage_type", String(8), nullable=False),
    Column("usage_date", Float, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("granted_quantity", Integer, nullable=False),
    Column("unit_price_minor", Integer, nullable=False),
    Column("charge_minor", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance_after_minor", Integer, nullable=False),
    Column("status", String(10), nullable=False),
    Column("reason", String(40), nullable=True),
    Column("barred", Boolean, nullable=False),
    Column("rated_at", Float, nullable=False),
)

msisdn_counter_table = role_table(
    ROLE,
    "mvne_msisdn_counter",
    Column("market", String(2), primary_key=True),
    Column("assigned", Integer, nullable=False),
)

# A number given to an order still in flight: no subscription carries it yet, so without
# this row a second order could be given it while the first is being provisioned (the
# network then refuses one of the two). Deleted when the order leaves flight; by then a
# subscription holds the number, or nobody does.
msisdn_hold_table = role_table(
    ROLE,
    "mvne_msisdn_hold",
    Column("market", String(2), primary_key=True),
    Column("msisdn", String(16), primary_key=True),
    Column("order_id", String(40), nullable=False, index=True),
)

LIVE = ("active", "suspended")
IN_FLIGHT_ORDER_STATES = ("acknowledged", "inProgress", "held", "pending")

# Statements on the request path, built once: constructing an expression per call cost
# more than executing it (see simulators/core/store.py).
_ORDER_BY_EXTERNAL_ID = select(order_table).where(
    order_table.c.partner_id == bindparam("partner_id"),
    order_table.c.external_id == bindparam("external_id"),
)
_ORDER_BY_ID = select(order_table).where(order_table.c.id == bindparam("order_id"))
_ALL_OFFERINGS = select(offering_table)
_PARTNER_SIM = select(sim_table).where(
    sim_table.c.iccid == bindparam("iccid"), sim_table.c.partner_id == bindparam("partner_id")
)
_RESERVABLE = (
    sim_table.c.iccid == bindparam("sim_iccid"),
    sim_table.c.partner_id == bindparam("sim_partner"),
    sim_table.c.status == "available",
    # A SIM from a vendor batch reaches a subscriber only once fulfillment mapped it.
    or_(sim_table.c.batch_number.is_(None), sim_table.c.mapped_account_id.is_not(None)),
)
_RESERVE_SIM = (
    sim_table.update().where(*_RESERVABLE).values(status="reserved", updated_at=bindparam("now"))
)
# The same, for an order that names the subscriber's account: a SIM mapped to another
# account is not this subscriber's.
_RESERVE_SIM_FOR_ACCOUNT = (
    sim_table.update()
    .where(
        *_RESERVABLE,
        or_(
            sim_table.c.mapped_account_id.is_(None),
            sim_table.c.mapped_account_id == bindparam("account_id"),
        ),
    )
    .values(status="reserved", updated_at=bindparam("now"))
)
_INSERT_ORDER = order_table.insert()
_PRODUCT_BY_ID = select(product_table).where(product_table.c.id == bindparam("product_id"))
_PARTNER_PRODUCT = select(product_table).where(
    product_table.c.id == bindparam("product_id"),
    product_table.c.partner_id == bindparam("partner_id"),
)
_PARTNER_ORDER = select(order_table).where(
    order_table.c.id == bindparam("order_id"), order_table.c.partner_id == bindparam("partner_id")
)
_OFFERING_IDS = select(offering_table.c.id)
_OFFERINGS_AMONG = (
    select(offering_table)
    .where(offering_table.c.id.in_(bindparam("offering_ids", expanding=True)))
    .order_by(offering_table.c.id)
)
_POOL_SUMMARY = select(
    func.count(),
    func.count().filter(sim_table.c.status == "available"),
    func.min(sim_table.c.iccid),
    func.max(sim_table.c.iccid),
).where(sim_table.c.partner_id == bindparam("partner_id"))
_ASSIGNED_IN_MARKET = select(msisdn_counter_table.c.assigned).where(
    msisdn_counter_table.c.market == bindparam("market")
)
_INSERT_MSISDN_COUNTER = msisdn_counter_table.insert()
_LIVE_MSISDNS_OF_MARKET = union_all(
    select(product_table.c.msisdn).where(
        product_table.c.market == bindparam("market"), product_table.c.status != "terminated"
    ),
    select(msisdn_hold_table.c.msisdn).where(msisdn_hold_table.c.market == bindparam("market")),
)
_MSISDN_IN_USE = select(
    or_(
        select(product_table.c.id)
        .where(
            product_table.c.msisdn == bindparam("msisdn"),
            product_table.c.market == bindparam("market"),
            product_table.c.status != "terminated",
        )
        .exists(),
        select(msisdn_hold_table.c.order_id)
        .where(
            msisdn_hold_table.c.market == bindparam("market"),
            msisdn_hold_table.c.msisdn == bindparam("msisdn"),
        )
        .exists(),
    )
)
_HOLD_MSISDN = msisdn_hold_table.insert()
_RELEASE_ORDER_MSISDNS = msisdn_hold_table.delete().where(
    msisdn_hold_table.c.order_id == bindparam("order_id")
)
# Numbers the walk asks about one by one before it reads every live number of the market
# at once: the next number is almost always free, and reading them all on every activation
# made each one cost as much as the subscriptions already made.
MSISDN_PROBES = 32
_RELEASE_SIMS = sim_table.update().where(
    sim_table.c.iccid.in_(bindparam("match_iccids", expanding=True))
)
_ACTIVATE_SIM = (
    sim_table.update()
    .where(sim_table.c.iccid == bindparam("match_iccid"))
    .values(
        status="active",
        product_id=bindparam("new_product_id"),
        updated_at=bindparam("now"),
        # SGP.22: an activated line's profile is released for download to the device.
        esim_state=case(
            (sim_table.c.matching_id.is_not(None), "released"), else_=sim_table.c.esim_state
        ),
    )
)
_LIVE_PRODUCT_BY_MSISDN = select(product_table).where(
    product_table.c.msisdn == bindparam("msisdn"), product_table.c.status.in_(LIVE)
)
_INSERT_PRODUCT = product_table.insert()
_INSERT_BALANCE_ENTRY = balance_entry_table.insert()
_INSERT_USAGE = usage_table.insert()


# --- reference data ---------------------------------------------------------------

REFERENCE_OFFERINGS = [
    # id, name, market, currency, initial credit, data/MB, voice/min, sms
    ("po-gb-payg", "UK Pay As You Go", "GB", "GBP", 500, 1, 8, 6),
    ("po-gb-smart", "UK Smart 10", "GB", "GBP", 1000, 1, 5, 4),
    ("po-us-talk", "US Talk & Text", "US", "USD", 1000, 2, 5, 2),
    ("po-us-data", "US Data Plus", "US", "USD", 2000, 1, 10, 5),
]

# The monthly plan fee a postpaid bill charges, in minor units (pay-as-you-go has none).
MONTHLY_FEES_MINOR = {"po-gb-payg": 0, "po-gb-smart": 1000, "po-us-talk": 2500, "po-us-data": 4000}

ALL_CAPABILITIES = [
    "SUBMIT_ORDER",
    "ACTIVATE_SIM",
    "MANAGE_SUBSCRIPTION",
    "TOP_UP",
    "QUERY_BALANCE",
    "QUERY_USAGE",
    "QUERY_INVENTORY",
    "VIEW_CATALOG",
    "MANAGE_EVENTS",
    # Load vendor SIM batches and map ICCIDs to accounts (what fulfillment does for the MVNO).
    "LOAD_INVENTORY",
]

REFERENCE_PARTNERS: list[dict[str, Any]] = [
    {
        "id": "mvno-alpha",
        "name": "Alpha Mobile",
        "agreement": {
            "offerings": ["po-gb-payg", "po-gb-smart"],
            "markets": ["GB"],
            "capabilities": ALL_CAPABILITIES,
        },
    },
    {
        "id": "mvno-bravo",
        "name": "Bravo Connect",
        "agreement": {
            # po-gb-payg is in the agreement but the GB market is not: ordering it is refused.
            "offerings": ["po-us-talk", "po-us-data", "po-gb-payg"],
            "markets": ["US"],
            "capabilities": [c for c in ALL_CAPABILITIES if c != "QUERY_USAGE"],
        },
    },
]

# North American fictitious numbers: NXX-555-0100..0199 (NANPA reserves them for fiction).
US_AREA_CODES = ("201", "212", "305", "312", "415", "512", "617", "702", "713", "818")


def new_id() -> str:
    return uuid.uuid4().hex


def _audit(
    conn: Connection,
    *,
    now: float,
    actor: str,
    partner_id: str | None,
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


# --- catalog ------------------------------------------------------------------------


def seed_offerings(conn: Connection) -> None:
    existing = set(conn.execute(_OFFERING_IDS).scalars())
    rows = [
        dict(
            id=oid,
            name=name,
            market=market,
            currency=currency,
            initial_credit_minor=credit,
            data_rate_minor=data,
            voice_rate_minor=voice,
            sms_rate_minor=sms,
        )
        for oid, name, market, currency, credit, data, voice, sms in REFERENCE_OFFERINGS
        if oid not in existing
    ]
    if rows:
        conn.execute(offering_table.insert(), rows)


_offerings: tuple[float, dict[str, Any]] = (0.0, {})
OFFERINGS_TTL_S = 5.0


def reference_offerings(conn: Connection) -> dict[str, Any]:
    """The catalog by id; reference data, so each process rereads it only every few seconds."""
    global _offerings
    expires, cached = _offerings
    if time.monotonic() < expires and cached:
        return cached
    cached = {row.id: row for row in conn.execute(_ALL_OFFERINGS).all()}
    _offerings = (time.monotonic() + OFFERINGS_TTL_S, cached)
    return cached


def known_offerings(conn: Connection) -> set[str]:
    return set(conn.execute(_OFFERING_IDS).scalars())


def allowed_actions(partner: Partner) -> list[str]:
    actions = []
    if partner.has("SUBMIT_ORDER") and partner.has("ACTIVATE_SIM"):
        actions.append("add")
    if partner.has("MANAGE_SUBSCRIPTION"):
        actions += ["suspend", "resume", "terminate"]
    if partner.has("TOP_UP"):
        actions.append("topUp")
    return actions


def partner_offerings(conn: Connection, partner: Partner) -> list[tuple[Any, list[str]]]:
    """The agreement's projection: offerings it grants in markets it grants."""
    granted = partner.agreement.get("offerings", [])
    markets = set(partner.agreement.get("markets", []))
    rows = conn.execute(_OFFERINGS_AMONG, {"offering_ids": list(granted)}).all()
    return [(row, [row.market]) for row in rows if row.market in markets]


def get_partner_offering(
    conn: Connection, partner: Partner, offering_id: str
) -> tuple[Any, list[str]]:
    for row, markets in partner_offerings(conn, partner):
        if row.id == offering_id:
            return row, markets
    raise errors.OfferingNotFound(f"Offering {offering_id} is not in this partner's catalog")


# --- SIM pools -------------------------------------------------------------------------


# Each partner owns a block of serials; its SIMs are 1..size of it, so a pool holds at most
# one fewer than the block (the contract's simPoolSize maximum).
POOL_BLOCK = 100_000
MAX_POOL_SIZE = POOL_BLOCK - 1


def pool_serial(seed: int, block: int, n: int) -> int:
    """Each partner owns a block; the seed shifts all blocks so seeds give distinct pools."""
    return (seed % 10_000) * 100_000_000 + block * POOL_BLOCK + n


def generate_pool(
    conn: Connection, partner_id: str, block: int, size: int, seed: int, now: float
) -> None:
    if not 1 <= size <= MAX_POOL_SIZE:
        # Past the block, the last SIMs would carry the next partner's IMSI prefix.
        raise ValueError(f"a SIM pool holds 1 to {MAX_POOL_SIZE} SIMs, not {size}")
    rows = []
    for n in range(1, size + 1):
        rows.append(
            dict(
                # E.118: 89 + country code 44 + issuer 01 + serial + Luhn check digit.
                iccid=iccid_for("44", "01", pool_serial(seed, block, n)),
                partner_id=partner_id,
                imsi=imsi_for((seed % 100) * 100_000_000 + block * POOL_BLOCK + n),
                status="available",
                profile_type="esim" if n % 5 == 0 else "physical",
                product_id=None,
                updated_at=now,
            )
        )
    for start in range(0, len(rows), 5000):
        conn.execute(sim_table.insert(), rows[start : start + 5000])


def pool_summary(conn: Connection, partner_id: str) -> dict[str, Any]:
    total, available, first, last = conn.execute(_POOL_SUMMARY, {"partner_id": partner_id}).one()
    return {"size": total, "available": available, "firstIccid": first, "lastIccid": last}


def list_sims(
    conn: Connection,
    partner: Partner,
    status: str | None,
    offset: int,
    limit: int,
    batch_number: str | None = None,
) -> tuple[int, Sequence[Any]]:
    count, page = _sim_listing(bool(status), bool(batch_number))
    params = {"partner_id": partner.id, "status": status, "batch_number": batch_number}
    total = conn.execute(count, params).scalar_one()
    rows = conn.execute(page, {**params, "offset": offset, "limit": limit}).all()
    return total, rows


@functools.cache
def _sim_listing(by_status: bool, by_batch: bool) -> tuple[Any, Any]:
    """The count and the page statements of a SIM listing, built once per set of filters
    (listing SIMs is how clients find a free one, so it is on the activation path)."""
    conditions = [sim_table.c.partner_id == bindparam("partner_id")]
    if by_status:
        conditions.append(sim_table.c.status == bindparam("status"))
    if by_batch:
        conditions.append(sim_table.c.batch_number == bindparam("batch_number"))
    # Labelled: a column named `count` (a tuple's method) keeps a read off the direct path.
    count = select(func.count().label("total")).select_from(sim_table).where(*conditions)
    page = (
        select(sim_table)
        .where(*conditions)
        .order_by(sim_table.c.iccid)
        .offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
    )
    return count, page


def get_sim(conn: Connection, partner: Partner, iccid: str) -> Any:
    row = conn.execute(_PARTNER_SIM, {"iccid": iccid, "partner_id": partner.id}).first()
    if row is None:
        raise errors.SimNotFound(f"No SIM {iccid} in this partner's pool")
    return row


# --- MSISDN allocation -----------------------------------------------------------------


def _range(market: str) -> tuple[int, Any]:
    if market == "US":
        return len(US_AREA_CODES) * 100, lambda i: f"+1{US_AREA_CODES[i // 100]}55501{i % 100:02d}"
    return FICTITIOUS_UK_CAPACITY, uk_fictitious_msisdn


@functools.cache
def _range_start(seed: int, capacity: int) -> int:
    """Where the seeded walk through a number range begins (a Faker is costly to build)."""
    faker = Faker()
    faker.seed_instance(seed)
    return int(faker.random_int(0, capacity - 1))


def allocate_msisdn(conn: Connection, market: str, seed: int, *, order_id: str) -> str:
    """Next free fictitious number, held for `order_id` until that order leaves flight.

    Free: no live subscription and no order in flight has it. The seed fixes the
    (permuted) order of assignment.
    """
    capacity, number_at = _range(market)
    start = _range_start(seed, capacity)
    step = next(s for s in (7, 11, 13, 17, 19, 23, 29, 31) if capacity % s != 0)
    assigned = conn.execute(_ASSIGNED_IN_MARKET, {"market": market}).scalar()
    if assigned is None:
        assigned = 0
        conn.execute(_INSERT_MSISDN_COUNTER, {"market": market, "assigned": 0})
    in_use: set[str] | None = None
    for k in range(assigned, assigned + capacity):
        candidate = str(number_at((start + k * step) % capacity))
        if in_use is None and k - assigned >= MSISDN_PROBES:
            in_use = set(conn.execute(_LIVE_MSISDNS_OF_MARKET, {"market": market}).scalars())
        if in_use is not None:
            taken = candidate in in_use
        else:
            probe = {"msisdn": candidate, "market": market}
            taken = bool(conn.execute(_MSISDN_IN_USE, probe).scalar())
        if not taken:
            update_equal(conn, msisdn_counter_table, {"market": market}, assigned=k + 1)
            conn.execute(
                _HOLD_MSISDN, {"market": market, "msisdn": candidate, "order_id": order_id}
            )
            return candidate
    raise errors.MsisdnRangeExhausted(f"All {capacity} fictitious numbers of {market} are in use")


# --- orders --------------------------------------------------------------------------------


def _iccid_of(item: dict[str, Any], index: int) -> str:
    for characteristic in item["product"]["productCharacteristic"]:
        if characteristic["name"] == "ICCID":
            value = str(characteristic["value"])
            if not is_valid_iccid(value):
                raise errors.InvalidIccid(
                    f"{value} fails the E.118 check digit",
                    field=f"productOrderItem[{index}].product.productCharacteristic",
                )
            return value
    raise errors.InvalidIccid(
        "An activation needs the ICCID characteristic",
        field=f"productOrderItem[{index}].product.productCharacteristic",
    )


def _refuse_sim(
    conn: Connection, partner: Partner, iccid: str, index: int, account_id: str | None
) -> None:
    field = f"productOrderItem[{index}].product.productCharacteristic"
    sim = conn.execute(_PARTNER_SIM, {"iccid": iccid, "partner_id": partner.id}).first()
    if sim is None:
        raise errors.IccidUnmapped(f"ICCID {iccid} is not mapped to this partner", field=field)
    if sim.status == "active":
        raise errors.SimAlreadyActive(f"SIM {iccid} is already active")
    if sim.status != "available":
        raise errors.SimNotAvailable(f"SIM {iccid} is {sim.status}")
    if sim.batch_number is not None and sim.mapped_account_id is None:
        raise errors.IccidUnmapped(
            f"SIM {iccid} is in batch {sim.batch_number} but no account mapping reached the "
            "MVNE (PUT /v1/iccidMappings/{iccid})",
            field=field,
            batchNumber=sim.batch_number,
        )
    if account_id is not None and sim.mapped_account_id not in (None, account_id):
        raise errors.IccidBelongsToOtherAccount(
            f"SIM {iccid} is mapped to account {sim.mapped_account_id}, not {account_id}",
            field="billingAccount.id",
        )
    raise errors.SimNotAvailable(f"SIM {iccid} changed while this order was being accepted")


def create_order(
    conn: Connection,
    *,
    partner: Partner,
    body: dict[str, Any],
    fingerprint: str,
    correlation_id: str,
    now: float,
    unmapped: tuple[str, ...] | None = None,
) -> tuple[Any, bool]:
    """Accept an activation order all-or-nothing; return (order row, created).

    `unmapped` (the ICCID_UNMAPPED fault) names ICCIDs to treat as never mapped to the
    partner, as when fulfillment shipped them but the mapping never reached the MVNE;
    an empty tuple means every ICCID of the order."""
    existing = conn.execute(
        _ORDER_BY_EXTERNAL_ID, {"partner_id": partner.id, "external_id": body["externalId"]}
    ).first()
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise errors.ExternalIdReused(
                f"externalId {body['externalId']} already names order {existing.id}"
            )
        return existing, False
    require_capability(partner, "ACTIVATE_SIM")
    account_id = (body.get("billingAccount") or {}).get("id")
    granted_offerings = set(partner.agreement.get("offerings", []))
    granted_markets = set(partner.agreement.get("markets", []))
    offerings = reference_offerings(conn)
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(body["productOrderItem"]):
        offering_id = item["productOffering"]["id"]
        offering = offerings.get(offering_id)
        # An offering the partner cannot sell and one that does not exist look the same to it.
        if offering is None or offering_id not in granted_offerings:
            raise errors.OfferingNotInAgreement(
                f"Offering {offering_id} is not in the agreement",
                field=f"productOrderItem[{index}].productOffering.id",
            )
        places = item["product"].get("place") or []
        market = places[0]["id"] if places else offering.market
        if market not in granted_markets or market != offering.market:
            raise errors.MarketNotInAgreement(
                f"Offering {offering_id} in market {market} is outside the agreement",
                field=f"productOrderItem[{index}].product.place",
            )
        iccid = _iccid_of(item, index)
        if unmapped is not None and (not unmapped or iccid in unmapped):
            raise errors.IccidUnmapped(
                f"ICCID {iccid} is not mapped to this partner",
                field=f"productOrderItem[{index}].product.productCharacteristic",
            )
        if iccid in seen:
            raise errors.DuplicateIccid(
                f"ICCID {iccid} appears twice", field=f"productOrderItem[{index}]"
            )
        seen.add(iccid)
        items.append(
            {
                "id": item["id"],
                "action": "add",
                "offering_id": offering_id,
                "market": market,
                "iccid": iccid,
            }
        )
    if len({item["id"] for item in items}) != len(items):
        raise errors.DuplicateOrderItemId("Order item ids must be unique", field="productOrderItem")
    reserve = _RESERVE_SIM if account_id is None else _RESERVE_SIM_FOR_ACCOUNT
    for index, item in enumerate(items):
        # Reserve first, ask why only when it fails: one statement on the usual path. A
        # refusal raises, and the transaction takes back the items already reserved.
        params = {"sim_iccid": item["iccid"], "sim_partner": partner.id, "now": now}
        if account_id is not None:
            params["account_id"] = account_id
        if conn.execute(reserve, params).rowcount != 1:
            _refuse_sim(conn, partner, item["iccid"], index, account_id)
        item["state"] = "acknowledged"
    order_id = new_id()
    order = dict(
        id=order_id,
        partner_id=partner.id,
        external_id=body["externalId"],
        fingerprint=fingerprint,
        description=body.get("description"),
        state="acknowledged",
        items=items,
        correlation_id=correlation_id,
        order_date=now,
        updated_at=now,
        state_reason=None,
        network_order_id=None,
        completion_date=None,
        billing_account_id=account_id,
    )
    conn.execute(_INSERT_ORDER, order)
    _audit(
        conn,
        now=now,
        actor=f"partner:{partner.id}",
        partner_id=partner.id,
        action="order.acknowledged",
        entity_type="productOrder",
        entity_id=order_id,
        correlation_id=correlation_id,
        details={"externalId": body["externalId"], "iccids": [item["iccid"] for item in items]},
    )
    return SimpleNamespace(**order), True


def load_order(conn: Connection, order_id: str) -> Any:
    return conn.execute(_ORDER_BY_ID, {"order_id": order_id}).one()


def get_order(conn: Connection, partner: Partner, order_id: str) -> Any:
    row = conn.execute(_PARTNER_ORDER, {"order_id": order_id, "partner_id": partner.id}).first()
    if row is None:
        raise errors.OrderNotFound(f"No order {order_id}")
    return row


def list_orders(
    conn: Connection,
    partner: Partner,
    *,
    state: str | None,
    external_id: str | None,
    offset: int,
    limit: int,
) -> tuple[int, Sequence[Any]]:
    conditions = [order_table.c.partner_id == partner.id]
    if state:
        conditions.append(order_table.c.state == state)
    if external_id:
        conditions.append(order_table.c.external_id == external_id)
    total = conn.execute(
        select(func.count()).select_from(order_table).where(*conditions)
    ).scalar_one()
    rows = conn.execute(
        select(order_table)
        .where(*conditions)
        .order_by(order_table.c.order_date.desc(), order_table.c.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return total, rows


def set_order_state(
    conn: Connection,
    order_id: str,
    *,
    state: str,
    items: list[dict[str, Any]],
    now: float,
    actor: str,
    correlation_id: str | None,
    reason: dict[str, Any] | None = None,
    **values: Any,
) -> Any:
    if state in ("completed", "failed", "partial", "cancelled"):
        values["completion_date"] = now
    if state not in IN_FLIGHT_ORDER_STATES:
        conn.execute(_RELEASE_ORDER_MSISDNS, {"order_id": order_id})
    update_equal(
        conn,
        order_table,
        {"id": order_id},
        state=state,
        items=items,
        state_reason=reason,
        updated_at=now,
        **values,
    )
    row = load_order(conn, order_id)
    _audit(
        conn,
        now=now,
        actor=actor,
        partner_id=row.partner_id,
        action=f"order.{state}",
        entity_type="productOrder",
        entity_id=order_id,
        correlation_id=correlation_id,
        details={"reason": reason} if reason else None,
    )
    return row


def release_sims(
    conn: Connection, iccids: list[str], now: float, status: str = "available"
) -> None:
    if iccids:
        conn.execute(
            _RELEASE_SIMS,
            {"match_iccids": list(iccids), "status": status, "product_id": None, "updated_at": now},
        )


def create_product(
    conn: Connection,
    *,
    order: Any,
    item: dict[str, Any],
    network_service_id: str | None,
    now: float,
    correlation_id: str | None,
) -> Any:
    offering = select_equal(conn, offering_table, id=item["offering_id"]).one()
    product_id = new_id()
    conn.execute(
        _INSERT_PRODUCT,
        {
            "id": product_id,
            "partner_id": order.partner_id,
            "order_id": order.id,
            "iccid": item["iccid"],
            "imsi": item["imsi"],
            "msisdn": item["msisdn"],
            "offering_id": offering.id,
            "market": item["market"],
            "currency": offering.currency,
            "status": "active",
            "balance_minor": offering.initial_credit_minor,
            "balance_barred": False,
            "network_service_id": network_service_id,
            "network_barring": "none",
            "start_date": now,
            "updated_at": now,
        },
    )
    _ledger(
        conn,
        product_id=product_id,
        partner_id=order.partner_id,
        kind="initialCredit",
        amount=offering.initial_credit_minor,
        balance_after=offering.initial_credit_minor,
        reference=order.id,
        correlation_id=correlation_id,
        now=now,
    )
    conn.execute(
        _ACTIVATE_SIM, {"match_iccid": item["iccid"], "new_product_id": product_id, "now": now}
    )
    _audit(
        conn,
        now=now,
        actor="system",
        partner_id=order.partner_id,
        action="product.activated",
        entity_type="product",
        entity_id=product_id,
        correlation_id=correlation_id,
        details={
            "msisdn": item["msisdn"],
            "iccid": item["iccid"],
            "networkServiceId": network_service_id,
        },
    )
    return load_product(conn, product_id)


# --- subscriptions ----------------------------------------------------------------------------


def load_product(conn: Connection, product_id: str) -> Any:
    return conn.execute(_PRODUCT_BY_ID, {"product_id": product_id}).one()


def get_product(conn: Connection, partner: Partner, product_id: str) -> Any:
    row = conn.execute(
        _PARTNER_PRODUCT, {"product_id": product_id, "partner_id": partner.id}
    ).first()
    if row is None:
        raise errors.ProductNotFound(f"No subscription {product_id}")
    return row


def list_products(
    conn: Connection,
    partner: Partner,
    *,
    status: str | None,
    msisdn: str | None,
    iccid: str | None,
    offset: int,
    limit: int,
) -> tuple[int, Sequence[Any]]:
    conditions = [product_table.c.partner_id == partner.id]
    if status:
        conditions.append(product_table.c.status == status)
    if msisdn:
        conditions.append(product_table.c.msisdn == msisdn)
    if iccid:
        conditions.append(product_table.c.iccid == iccid)
    total = conn.execute(
        select(func.count()).select_from(product_table).where(*conditions)
    ).scalar_one()
    rows = conn.execute(
        select(product_table)
        .where(*conditions)
        .order_by(product_table.c.start_date.desc(), product_table.c.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return total, rows


TRANSITIONS = {
    ("active", "suspended"): "product.suspended",
    ("suspended", "active"): "product.resumed",
    ("active", "terminated"): "product.terminated",
    ("suspended", "terminated"): "product.terminated",
}


def change_status(
    conn: Connection,
    *,
    product: Any,
    status: str,
    actor: str,
    correlation_id: str | None,
    now: float,
) -> tuple[Any, bool]:
    """Suspend, resume or terminate; return (row, changed). Same status is a no-op."""
    if product.status == status:
        return product, False
    if product.status == "terminated":
        raise errors.ProductTerminated(f"Subscription {product.id} is terminated")
    action = TRANSITIONS.get((product.status, status))
    if action is None:
        raise errors.InvalidTransition(f"Cannot go from {product.status} to {status}")
    values: dict[str, Any] = {"status": status, "updated_at": now}
    sim_status = {"active": "active", "suspended": "suspended", "terminated": "terminated"}[status]
    if status == "terminated":
        values["termination_date"] = now
    update_equal(conn, product_table, {"id": product.id}, **values)
    update_equal(conn, sim_table, {"iccid": product.iccid}, status=sim_status, updated_at=now)
    _audit(
        conn,
        now=now,
        actor=actor,
        partner_id=product.partner_id,
        action=action,
        entity_type="product",
        entity_id=product.id,
        correlation_id=correlation_id,
        details={"from": product.status, "to": status},
    )
    return load_product(conn, product.id), True


# --- balance, top-up, rating ------------------------------------------------------------------


def _ledger(
    conn: Connection,
    *,
    product_id: str,
    partner_id: str,
    kind: str,
    amount: int,
    balance_after: int,
    reference: str,
    correlation_id: str | None,
    now: float,
) -> None:
    conn.execute(
        _INSERT_BALANCE_ENTRY,
        {
            "product_id": product_id,
            "partner_id": partner_id,
            "kind": kind,
            "amount_minor": amount,
            "balance_after_minor": balance_after,
            "reference": reference,
            "correlation_id": correlation_id,
            "at": now,
        },
    )


def to_minor(amount: Any) -> int:
    """Exact conversion; more than two decimals is refused, never rounded."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise errors.InvalidAmount("amount is not a number", field="amount.amount") from None
    minor = value * 100
    if value <= 0 or minor != minor.to_integral_value():
        raise errors.InvalidAmount(
            "amount must be positive with at most two decimals", field="amount.amount"
        )
    return int(minor)


def cheapest_rate(conn: Connection, offering_id: str) -> int:
    row = select_equal(conn, offering_table, id=offering_id).one()
    return int(min(row.data_rate_minor, row.voice_rate_minor, row.sms_rate_minor))


def top_up(
    conn: Connection,
    *,
    partner: Partner,
    body: dict[str, Any],
    correlation_id: str,
    now: float,
) -> tuple[Any, Any, bool]:
    """Credit a balance; return (top-up row, product row, whether it unbarred the line)."""
    product = get_product(conn, partner, body["product"]["id"])
    if product.status == "terminated":
        raise errors.ProductTerminated(f"Subscription {product.id} is terminated")
    amount = to_minor(body["amount"]["amount"])
    if body["amount"]["units"] != product.currency:
        raise errors.CurrencyMismatch(
            f"The balance is in {product.currency}, not {body['amount']['units']}",
            field="amount.units",
        )
    balance = product.balance_minor + amount
    unbar = bool(product.balance_barred) and balance >= cheapest_rate(conn, product.offering_id)
    update_equal(
        conn,
        product_table,
        {"id": product.id},
        balance_minor=balance,
        balance_barred=product.balance_barred and not unbar,
        updated_at=now,
    )
    topup_id = new_id()
    conn.execute(
        topup_table.insert(),
        {
            "id": topup_id,
            "partner_id": partner.id,
            "product_id": product.id,
            "external_id": body.get("externalId"),
            "amount_minor": amount,
            "currency": product.currency,
            "balance_after_minor": balance,
            "requested_at": now,
        },
    )
    _ledger(
        conn,
        product_id=product.id,
        partner_id=partner.id,
        kind="topUp",
        amount=amount,
        balance_after=balance,
        reference=topup_id,
        correlation_id=correlation_id,
        now=now,
    )
    _audit(
        conn,
        now=now,
        actor=f"partner:{partner.id}",
        partner_id=partner.id,
        action="balance.toppedUp",
        entity_type="product",
        entity_id=product.id,
        correlation_id=correlation_id,
        details={"amountMinor": amount, "balanceAfterMinor": balance, "unbarred": unbar},
    )
    topup = select_equal(conn, topup_table, id=topup_id).one()
    return topup, load_product(conn, product.id), unbar


def get_topup(conn: Connection, partner: Partner, topup_id: str) -> Any:
    row = select_equal(conn, topup_table, id=topup_id, partner_id=partner.id).first()
    if row is None:
        raise errors.TopupNotFound(f"No top-up {topup_id}")
    return row


def list_topups(
    conn: Connection, partner: Partner, product_id: str | None, offset: int, limit: int
) -> tuple[int, Sequence[Any]]:
    conditions = [topup_table.c.partner_id == partner.id]
    if product_id:
        conditions.append(topup_table.c.product_id == product_id)
    total = conn.execute(
        select(func.count()).select_from(topup_table).where(*conditions)
    ).scalar_one()
    rows = conn.execute(
        select(topup_table)
        .where(*conditions)
        .order_by(topup_table.c.requested_at.desc(), topup_table.c.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return total, rows


def rate_of(offering: Any, usage_type: str) -> int:
    rates = {
        "data": offering.data_rate_minor,
        "voice": offering.voice_rate_minor,
        "sms": offering.sms_rate_minor,
    }
    return int(rates[usage_type])


def charge_usage(
    conn: Connection,
    *,
    body: dict[str, Any],
    correlation_id: str | None,
    now: float,
    usage_date: float,
) -> tuple[Any, Any, bool]:
    """Online charging of one network event: (usage row, product row, newly barred).

    Grants what the balance covers at the plan's rate; the line is barred
    (outgoing) once the balance cannot pay one unit of anything.
    """
    existing = select_equal(conn, usage_table, external_id=body["externalId"]).first()
    if existing is not None:
        return existing, load_product(conn, existing.product_id), False
    product = conn.execute(_LIVE_PRODUCT_BY_MSISDN, {"msisdn": body["msisdn"]}).first()
    if product is None:
        raise errors.SubscriberNotFound(f"No live subscription has MSISDN {body['msisdn']}")
    offering = select_equal(conn, offering_table, id=product.offering_id).one()
    rate = rate_of(offering, body["usageType"])
    quantity = int(body["quantity"])
    balance = product.balance_minor
    reason: str | None = None
    if product.status == "suspended":
        granted, reason = 0, "SUSPENDED"
    elif product.balance_barred:
        granted, reason = 0, "INSUFFICIENT_BALANCE"
    else:
        granted = min(quantity, balance // rate) if rate > 0 else quantity
        if granted == 0:
            reason = "INSUFFICIENT_BALANCE"
        elif granted < quantity:
            reason = "BALANCE_EXHAUSTED"
    charge = granted * rate
    balance -= charge
    newly_barred = (
        product.status == "active"
        and not product.balance_barred
        and balance
        < min(offering.data_rate_minor, offering.voice_rate_minor, offering.sms_rate_minor)
    )
    usage_id = new_id()
    conn.execute(
        _INSERT_USAGE,
        {
            "id": usage_id,
            "partner_id": product.partner_id,
            "product_id": product.id,
            "external_id": body["externalId"],
            "msisdn": product.msisdn,
            "usage_type": body["usageType"],
            "usage_date": usage_date,
            "quantity": quantity,
            "granted_quantity": granted,
            "unit_price_minor": rate,
            "charge_minor": charge,
            "currency": product.currency,
            "balance_after_minor": balance,
            "status": "rated" if granted > 0 else "rejected",
            "reason": reason,
            "barred": bool(product.balance_barred) or newly_barred,
            "rated_at": now,
        },
    )
    if charge:
        _ledger(
            conn,
            product_id=product.id,
            partner_id=product.partner_id,
            kind="usageCharge",
            amount=-charge,
            balance_after=balance,
            reference=usage_id,
            correlation_id=correlation_id,
            now=now,
        )
    update_equal(
        conn,
        product_table,
        {"id": product.id},
        balance_minor=balance,
        balance_barred=bool(product.balance_barred) or newly_barred,
        updated_at=now,
    )
    if newly_barred:
        _audit(
            conn,
            now=now,
            actor="peer:mno",
            partner_id=product.partner_id,
            action="product.balanceBarred",
            entity_type="product",
            entity_id=product.id,
            correlation_id=correlation_id,
            details={"balanceMinor": balance},
        )
    usage = select_equal(conn, usage_table, id=usage_id).one()
    return usage, load_product(conn, product.id), newly_barred


def get_usage(conn: Connection, partner: Partner, usage_id: str) -> Any:
    row = select_equal(conn, usage_table, id=usage_id, partner_id=partner.id).first()
    if row is None:
        raise errors.UsageNotFound(f"No usage record {usage_id}")
    return row


def list_usage(
    conn: Connection,
    partner: Partner,
    *,
    product_id: str | None,
    usage_type: str | None,
    offset: int,
    limit: int,
) -> tuple[int, Sequence[Any]]:
    conditions = [usage_table.c.partner_id == partner.id]
    if product_id:
        conditions.append(usage_table.c.product_id == product_id)
    if usage_type:
        conditions.append(usage_table.c.usage_type == usage_type)
    total = conn.execute(
        select(func.count()).select_from(usage_table).where(*conditions)
    ).scalar_one()
    rows = conn.execute(
        select(usage_table)
        .where(*conditions)
        .order_by(usage_table.c.rated_at.desc(), usage_table.c.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return total, rows


def list_buckets(
    conn: Connection, partner: Partner, product_id: str | None, offset: int, limit: int
) -> tuple[int, Sequence[Any]]:
    """One monetary bucket per subscription; the bucket id is the subscription id."""
    if not product_id:
        return list_products(
            conn, partner, status=None, msisdn=None, iccid=None, offset=offset, limit=limit
        )
    row = conn.execute(
        _PARTNER_PRODUCT, {"product_id": product_id, "partner_id": partner.id}
    ).first()
    return (0, []) if row is None else (1, [row])


def get_bucket(conn: Connection, partner: Partner, bucket_id: str) -> Any:
    try:
        return get_product(conn, partner, bucket_id)
    except errors.ProductNotFound:
        raise errors.BucketNotFound(f"No balance {bucket_id}") from None
