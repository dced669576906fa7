"""The host network's CAMARA APIs over HTTP: SIM Swap, Number Verification and Device
Roaming Status, each under its own CAMARA base path."""

from __future__ import annotations

from typing import Any

from simulators.core.camara import (
    CamaraApi,
    TokenHolder,
    UnsupportedIdentifier,
    explicit_identifier,
)
from simulators.core.clock import isoformat
from simulators.core.http import Reply, RequestContext

from . import authorization, camara, model

sim_swap = CamaraApi(model.ROLE, "camara-sim-swap", authorization.verify_access_token)
number_verification = CamaraApi(
    model.ROLE, "camara-number-verification", authorization.verify_access_token
)
device_roaming_status = CamaraApi(
    model.ROLE, "camara-device-roaming-status", authorization.verify_access_token
)

DEFAULT_MAX_AGE_H = 240


def _holder(ctx: RequestContext) -> TokenHolder:
    assert isinstance(ctx.partner, TokenHolder)
    return ctx.partner


def _body(ctx: RequestContext) -> dict[str, Any]:
    # The contracts make every body a JSON object; `null` is refused before the handler.
    return ctx.body if isinstance(ctx.body, dict) else {}


# --- SIM Swap -------------------------------------------------------------------------------


@sim_swap.operation("retrieveSimSwapDate")
def retrieve_sim_swap_date(ctx: RequestContext) -> Reply:
    line = camara.subject_line(ctx.conn, _holder(ctx), _body(ctx).get("phoneNumber"))
    answer = camara.sim_swap_date(ctx.conn, line, ctx.now())
    body: dict[str, Any] = {
        "latestSimChange": None
        if answer.latest_sim_change is None
        else isoformat(answer.latest_sim_change)
    }
    if answer.monitored_days is not None:
        body["monitoredPeriod"] = answer.monitored_days
    return Reply(body)


@sim_swap.operation("checkSimSwap")
def check_sim_swap(ctx: RequestContext) -> Reply:
    body = _body(ctx)
    line = camara.subject_line(ctx.conn, _holder(ctx), body.get("phoneNumber"))
    max_age_h = int(body.get("maxAge", DEFAULT_MAX_AGE_H))
    return Reply({"swapped": camara.sim_swapped(ctx.conn, line, ctx.now(), max_age_h)})


# --- Number Verification --------------------------------------------------------------------


@number_verification.operation("phoneNumberVerify")
def phone_number_verify(ctx: RequestContext) -> Reply:
    body = _body(ctx)
    line = camara.authenticated_line(ctx.conn, _holder(ctx))
    verified = camara.number_matches(line, body.get("phoneNumber"), body.get("hashedPhoneNumber"))
    return Reply({"devicePhoneNumberVerified": verified})


@number_verification.operation("phoneNumberShare")
def phone_number_share(ctx: RequestContext) -> Reply:
    line = camara.authenticated_line(ctx.conn, _holder(ctx))
    return Reply({"devicePhoneNumber": line.msisdn})


# --- Device Roaming Status ------------------------------------------------------------------


@device_roaming_status.operation("getRoamingStatus")
def get_roaming_status(ctx: RequestContext) -> Reply:
    device = _body(ctx).get("device")
    # Whether the body may name a device at all comes first: a three-legged token's caller
    # must not, whatever identifier it used.
    explicit_identifier(_holder(ctx), device)
    phone_number = None
    if device is not None:
        phone_number = device.get("phoneNumber")
        if phone_number is None:
            # The network resolves devices by number, not by IP address or GPSI.
            raise UnsupportedIdentifier(
                "This network identifies a device by its phoneNumber only",
            )
    line = camara.subject_line(ctx.conn, _holder(ctx), phone_number)
    status = camara.roaming_status(ctx.conn, line)
    body: dict[str, Any] = {}
    if device is not None:
        # CAMARA: repeat the one identifier the answer is about, when the caller named one.
        body["device"] = {"phoneNumber": phone_number}
    body["lastStatusTime"] = isoformat(status.last_status_time)
    body["roaming"] = status.roaming
    if status.roaming and status.visited_mcc is not None:
        if status.visited_mcc.isdigit():
            body["countryCode"] = int(status.visited_mcc)
        body["countryName"] = status.countries
    return Reply(body)


# Each API's base path, as CAMARA publishes it (`/<role>/<camara-api>/v<major>`).
NETWORK_APIS = {
    "/mno/sim-swap/v2": sim_swap,
    "/mno/number-verification/v2": number_verification,
    "/mno/device-roaming-status/v1": device_roaming_status,
}
