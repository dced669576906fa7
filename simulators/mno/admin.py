"""The MNO's control-plane operations: simulated traffic (`POST /__admin/traffic`) and the
usage generator (`/__admin/mno/usage-generator`). The MNO records usage and has the MVNE
charge it in real time over the MVNE's public charging API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select

from simulators.core.admin import admin_api
from simulators.core.http import Reply, RequestContext

from . import model, partners, usage

# Built once and run with bound values: see simulators/core/store.py.
_MVNO_OF_ACTIVE_MSISDN = select(model.services.c.mvno_id).where(
    model.services.c.msisdn == bindparam("msisdn"),
    model.services.c.state == model.SERVICE_ACTIVE,
)


@admin_api.operation("simulateTraffic")
def simulate_traffic(ctx: RequestContext) -> Reply:
    # A read handler on purpose: the steps open their own write transactions, so none is
    # held while the MVNE is asked to charge.
    msisdn, usage_type = ctx.body["msisdn"], ctx.body["usageType"]
    visited_mcc = ctx.body.get("visitedMcc")
    mvno_id = ctx.conn.execute(_MVNO_OF_ACTIVE_MSISDN, {"msisdn": msisdn}).scalar()
    partner_id = partners.by_mvno(ctx.conn, mvno_id) if mvno_id is not None else None
    faults = usage.usage_faults(
        ctx.runtime,
        msisdn=msisdn,
        usage_type=usage_type,
        visited_mcc=visited_mcc,
        partner_id=partner_id,
    )
    result = usage.deliver(
        ctx.runtime,
        msisdn=msisdn,
        usage_type=usage_type,
        quantity=int(ctx.body["quantity"]),
        correlation_id=ctx.correlation_id,
        faults=faults,
        visited_mcc=visited_mcc,
    )
    return Reply(traffic_outcome_json(result), 201)


def traffic_outcome_json(result: model.TrafficResult) -> dict[str, Any]:
    record = result.usage
    body: dict[str, Any] = {
        "usageId": record.id,
        "msisdn": record.msisdn,
        "usageType": record.usage_type,
        "quantity": record.quantity,
        "grantedQuantity": record.granted_quantity or 0,
        "status": record.status,
    }
    charging = result.charging
    if charging is not None and charging.charge is not None:
        body["charge"] = _money_json(charging.charge)
    if charging is not None and charging.balance_after is not None:
        body["remainingBalance"] = _money_json(charging.balance_after)
    body["barred"] = result.barred
    if result.reason:
        body["reason"] = result.reason
    if record.visited_mcc:
        body["visitedMcc"] = record.visited_mcc
    return body


def _money_json(money: model.Money) -> dict[str, Any]:
    return {"amount": money.amount, "units": money.units}


@admin_api.operation("getUsageGenerator")
def get_usage_generator(ctx: RequestContext) -> Reply:
    return Reply(usage.state_json(usage.generator_state(ctx.conn)))


@admin_api.operation("configureUsageGenerator", write=True)
def configure_usage_generator(ctx: RequestContext) -> Reply:
    state = usage.configure(
        ctx.runtime,
        ctx.conn,
        enabled=bool(ctx.body["enabled"]),
        profile=dict(ctx.body.get("profile") or {}),
        now=ctx.now(),
    )
    return Reply(usage.state_json(state))
