"""SIM changes: a partner moves a live subscription to another SIM of its pool (a lost,
damaged or upgraded card). The MVNE orders the change from the network as a TMF641 `modify`
with the new ICCID and IMSI; the network records it, and that is what SIM Swap reports.

Lifecycle on the simulated clock: acknowledged (the new SIM reserved) -> inProgress (the
network order sent) -> completed (the product on the new SIM, the old SIM retired) or
failed (the new SIM released, the product untouched).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Connection, Float, ForeignKey, Index, String, bindparam, select

from simulators.core.problems import Conflict, NotFound
from simulators.core.store import role_table, select_equal, update_equal
from simulators.core.tenancy import Partner, require_capability

from . import errors
from .model import (
    _RESERVE_SIM,
    ROLE,
    _audit,
    load_product,
    new_id,
    product_table,
    sim_table,
)

SUBMIT = "mvne.simchange.submit"
POLL = "mvne.simchange.poll"
IN_FLIGHT = ("acknowledged", "inProgress")

sim_change_table = role_table(
    ROLE,
    "mvne_sim_change",
    Column("id", String(40), primary_key=True),
    Column("partner_id", String(64), ForeignKey("partner.id"), nullable=False),
    Column("product_id", String(40), nullable=False),
    Column("iccid_from", String(20), nullable=False),
    Column("iccid", String(20), nullable=False),
    Column("imsi", String(15), nullable=False),
    Column("state", String(12), nullable=False),
    Column("state_reason", JSON, nullable=True),
    Column("network_order_id", String(64), nullable=True),
    Column("correlation_id", String(256), nullable=True),
    Column("request_date", Float, nullable=False),
    Column("completion_date", Float, nullable=True),
    Index("ix_sim_change_product", "product_id"),
)


# Built once: see simulators/core/store.py.
_IN_FLIGHT_CHANGE_OF_PRODUCT = select(sim_change_table.c.id).where(
    sim_change_table.c.product_id == bindparam("product_id"),
    sim_change_table.c.state.in_(IN_FLIGHT),
)


class SimChangeInProgress(Conflict):
    code = "SIM_CHANGE_IN_PROGRESS"
    title = "A SIM change of this subscription is still in progress"


class NotOnNetwork(Conflict):
    code = "PRODUCT_NOT_ON_NETWORK"
    title = "The subscription is not provisioned on the network yet"


class SimChangeNotFound(NotFound):
    code = "SIM_CHANGE_NOT_FOUND"
    title = "No such SIM change"


def request_sim_change(
    conn: Connection,
    *,
    partner: Partner,
    product_id: str,
    iccid: str,
    now: float,
    correlation_id: str | None,
) -> Any:
    """Accept a SIM change: the subscription is live and on the network, no other change is
    in flight, and the new SIM is an available one of the partner's pool (reserved here)."""
    require_capability(partner, "MANAGE_SUBSCRIPTION")
    product = select_equal(conn, product_table, id=product_id, partner_id=partner.id).first()
    if product is None:
        raise errors.ProductNotFound(f"No subscription {product_id}", field="productId")
    if product.status == "terminated":
        raise errors.ProductTerminated(f"Subscription {product_id} is terminated")
    if not product.network_service_id:
        raise NotOnNetwork(f"Subscription {product_id} has no network service yet")
    pending = conn.execute(_IN_FLIGHT_CHANGE_OF_PRODUCT, {"product_id": product_id}).first()
    if pending is not None:
        raise SimChangeInProgress(
            f"SIM change {pending.id} of {product_id} is still in progress", simChangeId=pending.id
        )
    reserved = conn.execute(
        _RESERVE_SIM, {"sim_iccid": iccid, "sim_partner": partner.id, "now": now}
    ).rowcount
    if reserved != 1:
        _refuse(conn, partner, iccid)
    new_sim = select_equal(conn, sim_table, iccid=iccid).one()
    change_id = new_id()
    conn.execute(
        sim_change_table.insert(),
        {
            "id": change_id,
            "partner_id": partner.id,
            "product_id": product_id,
            "iccid_from": product.iccid,
            "iccid": iccid,
            "imsi": new_sim.imsi,
            "state": "acknowledged",
            "correlation_id": correlation_id,
            "request_date": now,
        },
    )
    _audit(
        conn,
        now=now,
        actor=f"partner:{partner.id}",
        partner_id=partner.id,
        action="simChange.acknowledged",
        entity_type="product",
        entity_id=product_id,
        correlation_id=correlation_id,
        details={"simChangeId": change_id, "fromIccid": product.iccid, "toIccid": iccid},
    )
    return load(conn, change_id)


def _refuse(conn: Connection, partner: Partner, iccid: str) -> None:
    sim = select_equal(conn, sim_table, iccid=iccid, partner_id=partner.id).first()
    if sim is None:
        raise errors.IccidUnmapped(f"ICCID {iccid} is not in this partner's pool", field="iccid")
    if sim.status == "active":
        raise errors.SimAlreadyActive(f"SIM {iccid} is already active")
    if sim.status != "available":
        raise errors.SimNotAvailable(f"SIM {iccid} is {sim.status}")
    raise errors.IccidUnmapped(
        f"SIM {iccid} is in batch {sim.batch_number} but no account mapping reached the MVNE",
        field="iccid",
        batchNumber=sim.batch_number,
    )


def load(conn: Connection, change_id: str) -> Any:
    return select_equal(conn, sim_change_table, id=change_id).one()


def get(conn: Connection, partner: Partner, change_id: str) -> Any:
    row = select_equal(conn, sim_change_table, id=change_id, partner_id=partner.id).first()
    if row is None:
        raise SimChangeNotFound(f"No SIM change {change_id}")
    return row


def network_item(change: Any, network_service_id: str) -> dict[str, Any]:
    """The TMF641 modify item that moves the network service to the new SIM."""
    return {
        "id": "1",
        "action": "modify",
        "service": {
            "id": network_service_id,
            "serviceCharacteristic": [
                {"name": "ICCID", "value": change.iccid},
                {"name": "IMSI", "value": change.imsi},
            ],
        },
    }


def mark_in_progress(conn: Connection, change_id: str, network_order_id: str) -> None:
    update_equal(
        conn,
        sim_change_table,
        {"id": change_id},
        state="inProgress",
        network_order_id=network_order_id,
    )


# A line terminated while its SIM change was on the way: the change fails and the new SIM
# goes back to the pool, rather than a terminated line holding an active SIM nobody can use.
LINE_TERMINATED = {
    "code": "PRODUCT_TERMINATED",
    "reason": "The subscription was terminated before the SIM change completed",
    "retryable": False,
}
# The SIM a line takes is in the line's state: a suspended line's new SIM is suspended too.
SIM_STATUS_OF_PRODUCT = {"active": "active", "suspended": "suspended"}


def complete(conn: Connection, change_id: str, now: float) -> Any:
    """The network moved the line: the product takes the new SIM, the old one is retired."""
    change = load(conn, change_id)
    if change.state not in IN_FLIGHT:
        return change
    product = load_product(conn, change.product_id)
    if product.status not in SIM_STATUS_OF_PRODUCT:
        return fail(conn, change_id, LINE_TERMINATED, now)
    update_equal(conn, sim_table, {"iccid": product.iccid}, status="terminated", updated_at=now)
    update_equal(
        conn,
        sim_table,
        {"iccid": change.iccid},
        status=SIM_STATUS_OF_PRODUCT[product.status],
        product_id=product.id,
        updated_at=now,
    )
    update_equal(
        conn,
        product_table,
        {"id": product.id},
        iccid=change.iccid,
        imsi=change.imsi,
        updated_at=now,
    )
    update_equal(conn, sim_change_table, {"id": change_id}, state="completed", completion_date=now)
    _audit(
        conn,
        now=now,
        actor="system",
        partner_id=change.partner_id,
        action="simChange.completed",
        entity_type="product",
        entity_id=product.id,
        correlation_id=change.correlation_id,
        details={"simChangeId": change_id, "fromIccid": product.iccid, "toIccid": change.iccid},
    )
    return load(conn, change_id)


def fail(conn: Connection, change_id: str, reason: dict[str, Any], now: float) -> Any:
    """The network did not move the line: the new SIM goes back to the pool."""
    change = load(conn, change_id)
    if change.state not in IN_FLIGHT:
        return change
    update_equal(
        conn,
        sim_table,
        {"iccid": change.iccid, "status": "reserved"},
        status="available",
        updated_at=now,
    )
    update_equal(
        conn,
        sim_change_table,
        {"id": change_id},
        state="failed",
        state_reason=reason,
        completion_date=now,
    )
    _audit(
        conn,
        now=now,
        actor="system",
        partner_id=change.partner_id,
        action="simChange.failed",
        entity_type="product",
        entity_id=change.product_id,
        correlation_id=change.correlation_id,
        details={"simChangeId": change_id, "reason": reason["code"]},
    )
    return load(conn, change_id)
