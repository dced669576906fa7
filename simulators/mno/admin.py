"""Simulated network traffic (`POST /__admin/traffic`): the MNO records usage and has the
MVNE charge it in real time over the MVNE's public charging API."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from flask import current_app

from simulators.core.admin import admin_api
from simulators.core.clock import isoformat
from simulators.core.faults import DATA_EFFECT, Sample
from simulators.core.http import Reply, RequestContext
from simulators.core.runtime import PeerCallFailed, Runtime
from simulators.core.tenancy import MNO_NETWORK, peer_api_key

from . import model
from .errors import ChargingUnavailable

CHARGING_PATH = "/tmf-api/usageManagement/v4/usage"


@admin_api.operation("simulateTraffic")
def simulate_traffic(ctx: RequestContext) -> Reply:
    # A read handler on purpose: the steps open their own write transactions, so none is
    # held while the MVNE is asked to charge.
    runtime = ctx.runtime
    correlation_id = ctx.correlation_id

    def charge(usage: model.Usage) -> model.ChargingOutcome:
        return charge_over_http(runtime, usage, correlation_id)

    msisdn, usage_type = ctx.body["msisdn"], ctx.body["usageType"]
    # Usage faults concern the MNO's side of the usage handoff: matched on its fields.
    usage = Sample(
        role=model.ROLE, method="POST", fields={"msisdn": (msisdn,), "usagetype": (usage_type,)}
    )
    faults = runtime.faults.decide(usage, runtime.clock.now, kinds=(DATA_EFFECT,))
    late = faults.data_fault("LATE_USAGE")
    result = model.simulate_traffic(
        runtime,
        msisdn=msisdn,
        usage_type=usage_type,
        quantity=int(ctx.body["quantity"]),
        correlation_id=correlation_id,
        charge=charge,
        late_by_s=float(late.effect.get("delaySeconds", 3600)) if late else 0.0,
        duplicate=faults.data_fault("DUPLICATE_USAGE") is not None,
    )
    return Reply(traffic_outcome_json(result), 201)


def traffic_outcome_json(result: model.TrafficResult) -> dict[str, Any]:
    usage = result.usage
    body: dict[str, Any] = {
        "usageId": usage.id,
        "msisdn": usage.msisdn,
        "usageType": usage.usage_type,
        "quantity": usage.quantity,
        "grantedQuantity": usage.granted_quantity or 0,
        "status": usage.status,
    }
    charging = result.charging
    if charging is not None and charging.charge is not None:
        body["charge"] = _money_json(charging.charge)
    if charging is not None and charging.balance_after is not None:
        body["remainingBalance"] = _money_json(charging.balance_after)
    body["barred"] = result.barred
    if result.reason:
        body["reason"] = result.reason
    return body


def _money_json(money: model.Money) -> dict[str, Any]:
    return {"amount": money.amount, "units": money.units}


def charge_over_http(
    runtime: Runtime, usage: model.Usage, correlation_id: str | None
) -> model.ChargingOutcome:
    """Ask the MVNE to rate one usage; a silent, failing or off-contract answer is a 502."""
    payload = {
        "externalId": usage.id,
        "usageType": usage.usage_type,
        "usageDate": isoformat(usage.usage_date),
        "msisdn": usage.msisdn,
        "quantity": usage.quantity,
    }
    try:
        # In-process the peer is served by this same Flask app on this thread: a fresh app
        # context keeps its request from sharing (and overwriting) this request's `g`.
        with current_app.app_context():
            response = runtime.call_peer(
                caller="mno",
                peer="mvne",
                method="POST",
                path=CHARGING_PATH,
                api_key=peer_api_key(runtime.settings, MNO_NETWORK),
                correlation_id=correlation_id,
                json_body=payload,
            )
    except PeerCallFailed as exc:
        raise ChargingUnavailable(
            f"The MVNE charging API did not answer ({exc}); usage {usage.id} stays received",
            usageId=usage.id,
        ) from exc
    if not 200 <= response.status_code < 300:
        raise ChargingUnavailable(
            f"The MVNE charging API answered {response.status_code}; "
            f"usage {usage.id} stays received",
            usageId=usage.id,
            peerStatus=response.status_code,
        )
    try:
        return parse_charging_answer(response, usage)
    except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
        raise ChargingUnavailable(
            f"The MVNE charging API answered outside its contract ({exc}); "
            f"usage {usage.id} stays received",
            usageId=usage.id,
            peerStatus=response.status_code,
        ) from exc


def parse_charging_answer(response: requests.Response, usage: model.Usage) -> model.ChargingOutcome:
    answer = response.json(parse_float=Decimal)
    if not isinstance(answer, dict):
        raise ValueError("the answer is not a JSON object")
    status = answer["status"]
    if status not in (model.USAGE_RATED, model.USAGE_REJECTED):
        raise ValueError(f"status {status!r} is neither rated nor rejected")
    granted = answer.get("grantedQuantity", usage.quantity if status == model.USAGE_RATED else 0)
    if (
        isinstance(granted, bool)
        or not isinstance(granted, int)
        or not 0 <= granted <= usage.quantity
    ):
        raise ValueError(f"grantedQuantity {granted!r} is not between 0 and {usage.quantity}")
    rated = answer.get("ratedProductUsage") or []
    amounts = [_money(entry["taxExcludedRatingAmount"]) for entry in rated]
    charge = None
    if amounts:
        charge = model.Money(sum((m.amount for m in amounts), Decimal(0)), amounts[0].units)
    balance = answer.get("balanceAfter")
    reason = answer.get("reason")
    return model.ChargingOutcome(
        status=status,
        granted_quantity=granted,
        charge=charge,
        balance_after=_money(balance) if balance is not None else None,
        barred=bool(answer.get("barred", False)),
        reason=str(reason) if reason else None,
    )


def _money(value: Any) -> model.Money:
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a money object")
    amount = value["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        raise ValueError(f"amount {amount!r} is not a number")
    return model.Money(Decimal(str(amount)), str(value["units"]))
