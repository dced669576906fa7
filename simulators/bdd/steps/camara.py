"""The host network's CAMARA APIs as an MVNO's network-API client uses them: access tokens
from the MNO's authorization server (client credentials, or CIBA for a subscriber who
approves on the device), and the network events those APIs report.

`the header "Authorization" is set to a valid access token` gives a CAMARA resource a real
bearer token of the scenario's MVNO (`<partner>-camara`): two-legged, or three-legged for
Number Verification, which answers only for a subscriber the network authenticated.
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import urlencode

from simulators.core.camara import required_scopes
from simulators.core.contract import load_contract
from simulators.core.identifiers import iccid_for, imsi_for

from ..catalogue import phrase
from ..world import Exchange, StepFailed, World
from .http import ACCESS_TOKENS
from .mvne import available_sims, read_subscription
from .stack import settled_read

ROLE = "CAMARA"
MNO = "mno"
TOKEN = "/oauth2/token"
BC_AUTHORIZE = "/oauth2/bc-authorize"
CIBA = "urn:openid:params:grant-type:ciba"
SIM_CHANGES = "/v1/simChanges"
SERVICE_ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
# Each CAMARA API's base path within the MNO, and its contract.
APIS = {
    "/sim-swap/v2": "camara-sim-swap",
    "/number-verification/v2": "camara-number-verification",
    "/device-roaming-status/v1": "camara-device-roaming-status",
}
# APIs that answer only for a subscriber the network authenticated (a three-legged token).
SUBSCRIBER_APIS = ("/number-verification/v2",)
# The network provisions an order in a couple of simulated seconds; the MVNE then polls it.
PROVISIONING_S = 5
CIBA_POLLS = 10


def client_of(world: World) -> str:
    """The network-API client the scenario acts as: the caller named, else its MVNO's."""
    if world.identity is not None and world.identity.endswith("-camara"):
        return world.identity
    return f"{world.partner}-camara"


def _api_of(world: World) -> str | None:
    if world.draft.role != MNO or world.draft.path is None:
        return None
    return next((base for base in APIS if world.draft.path.startswith(base + "/")), None)


def api_scopes(base: str) -> str:
    """Every scope the API's operations accept (one token serves all of them)."""
    alternatives = required_scopes(load_contract(APIS[base])).values()
    scopes = {scope for options in alternatives for needed in options for scope in needed}
    return " ".join(sorted(scopes))


def _basic(world: World, client_id: str) -> str:
    credentials = f"{client_id}:{world.key_of(client_id)}".encode()
    return "Basic " + base64.b64encode(credentials).decode()


def _form(world: World, path: str, operation: str, fields: dict[str, str]) -> Exchange:
    client_id = client_of(world)
    return world.send(
        MNO,
        "POST",
        path,
        operation=operation,
        data=urlencode(fields),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": _basic(world, client_id),
        },
        authenticate=False,
    )


def request_token(world: World, scope: str) -> Exchange:
    return _form(world, TOKEN, "requestToken", {"grant_type": "client_credentials", "scope": scope})


def client_token(world: World, scope: str) -> str:
    answer = world.expect(request_token(world, scope), 200)
    return str(answer["access_token"])


def subscriber_token(world: World, scope: str, msisdn: str) -> str:
    """CIBA in poll mode: the subscriber behind `msisdn` approves on the device a few
    seconds later; the client polls the token endpoint at the interval it was given."""
    started = world.expect(
        _form(
            world,
            BC_AUTHORIZE,
            "backchannelAuthenticate",
            {"scope": f"openid {scope}", "login_hint": f"tel:{msisdn}"},
        ),
        200,
    )
    interval = float(started.get("interval", 2))
    for _ in range(CIBA_POLLS):
        if MNO in world.target.replaced:
            time.sleep(interval)  # a vendor's network runs on its own clock
        else:
            world.advance(interval)
        grant = {"grant_type": CIBA, "auth_req_id": started["auth_req_id"]}
        answer = _form(world, TOKEN, "requestToken", grant)
        if answer.status == 200:
            return str(answer.json()["access_token"])
        error = answer.json().get("error") if answer.response is not None else None
        if error not in ("authorization_pending", "slow_down"):
            raise StepFailed(f"the CIBA token request was refused: {answer.describe()}")
    raise StepFailed(f"the subscriber {msisdn} never approved the authentication request")


def _subscriber_msisdn(world: World) -> str:
    return str(world.recall("subscription")["msisdn"])


def valid_access_token(world: World) -> str | None:
    """The token `a valid access token` means for a CAMARA resource (None for others)."""
    base = _api_of(world)
    if base is None:
        return None
    if base in SUBSCRIBER_APIS and "subscription" in world.remembered:
        return subscriber_token(world, api_scopes(base), _subscriber_msisdn(world))
    return client_token(world, api_scopes(base))


ACCESS_TOKENS.append(valid_access_token)


def _require_api(world: World) -> str:
    base = _api_of(world)
    if base is None:
        raise StepFailed(
            f"set a CAMARA resource first (/mno{'/..., /mno'.join(APIS)}/...), not "
            f"{world.draft.path!r}"
        )
    return base


# --- tokens -----------------------------------------------------------------------------------


@phrase(
    "given",
    'the header "{name:Q}" is set to an access token for "{scope:Q}"',
    role=ROLE,
    example='Given the header "Authorization" is set to an access token for '
    '"device-roaming-status:read"',
    summary="a two-legged (client credentials) token with exactly these scopes",
)
def header_token_for(handoff: World, name: str, scope: str) -> None:
    handoff.draft.headers[name] = f"Bearer {client_token(handoff, handoff.expand(scope))}"


@phrase(
    "given",
    'the header "{name:Q}" is set to an access token the subscriber approved',
    role=ROLE,
    example='Given the header "Authorization" is set to an access token the subscriber approved',
    summary="three-legged (CIBA): it identifies the subscription's line, so the body names "
    "no number",
)
def header_subscriber_token(handoff: World, name: str) -> None:
    base = _require_api(handoff)
    token = subscriber_token(handoff, api_scopes(base), _subscriber_msisdn(handoff))
    handoff.draft.headers[name] = f"Bearer {token}"


@phrase(
    "when",
    'the network-API client asks for an access token for "{scope:Q}"',
    role=ROLE,
    example='When the network-API client asks for an access token for "number-verification:verify"',
    summary="the token request (client credentials) is the response",
)
def asks_token(handoff: World, scope: str) -> None:
    request_token(handoff, handoff.expand(scope))


# --- what the network APIs report -----------------------------------------------------------


@phrase(
    "given/when",
    "the partner moves the subscription to a new SIM",
    role=ROLE,
    example="When the partner moves the subscription to a new SIM",
    summary="POST /mvne/v1/simChanges with an available SIM of the pool, completed by the "
    "network; remembered as ${sim change}",
)
def moves_to_new_sim(handoff: World) -> None:
    product = handoff.recall("subscription")
    sim = available_sims(handoff, 1)[0]
    body = {"productId": product["id"], "iccid": sim["iccid"]}
    created = handoff.expect(
        handoff.send("mvne", "POST", SIM_CHANGES, operation="requestSimChange", json_body=body),
        201,
    )
    handoff.advance(PROVISIONING_S)

    def read() -> Any:
        path = f"{SIM_CHANGES}/{created['id']}"
        return handoff.expect(handoff.send("mvne", "GET", path, operation="getSimChange"), 200)

    change = settled_read(handoff, read, lambda found: found["state"] == "completed")
    if change["state"] != "completed":
        raise StepFailed(f"the SIM change is {change['state']}: {change.get('stateReason')}")
    handoff.remember("sim change", change)
    read_subscription(handoff)


@phrase(
    "given",
    'the MNO serves an IoT line "{msisdn:Q}" for the partner',
    role=ROLE,
    example='Given the MNO serves an IoT line "+447700900777" for the partner',
    summary="a data-only machine line the MVNE provisioned on its own profile; remembered "
    "as ${iot line}",
)
def iot_line(handoff: World, msisdn: str) -> None:
    msisdn = handoff.expand(msisdn)
    serial = int(msisdn[-3:])
    characteristics = {
        "IMSI": imsi_for(900_000 + serial),
        "MSISDN": msisdn,
        "ICCID": iccid_for("44", "30", serial),
        "serviceType": "iot",
    }
    body: dict[str, Any] = {
        "externalId": handoff.unique("iot-line"),
        "relatedParty": [{"id": handoff.partner, "role": "mvno"}],
        "serviceOrderItem": [
            {
                "id": "1",
                "action": "add",
                "service": {
                    "serviceCharacteristic": [
                        {"name": name, "value": value} for name, value in characteristics.items()
                    ]
                },
            }
        ],
    }
    created = handoff.expect(
        handoff.send(
            MNO,
            "POST",
            SERVICE_ORDERS,
            caller="mvne-platform",
            operation="createServiceOrder",
            json_body=body,
        ),
        201,
    )
    handoff.advance(PROVISIONING_S)

    def read() -> Any:
        path = f"{SERVICE_ORDERS}/{created['id']}"
        answer = handoff.send(MNO, "GET", path, caller="mvne-platform", operation="getServiceOrder")
        return handoff.expect(answer, 200)

    done = settled_read(handoff, read, lambda order: order["state"] == "completed")
    if done["state"] != "completed":
        raise StepFailed(f"the IoT line's service order is {done['state']}")
    handoff.remember("iot line", {"msisdn": msisdn})


@phrase(
    "given/when",
    'the subscriber uses {quantity:d} {kind:Usage} roaming on the network "{mcc:Q}"',
    role=ROLE,
    example='When the subscriber uses 50 MB of data roaming on the network "208"',
    summary="traffic abroad: the visited network's MCC is what Device Roaming Status reports",
)
def uses_roaming(handoff: World, quantity: int, kind: str, mcc: str) -> None:
    msisdn = handoff.recall("subscription")["msisdn"]
    body = {"msisdn": msisdn, "usageType": kind, "quantity": quantity, "visitedMcc": mcc}
    handoff.remember("traffic", handoff.admin("POST", "/traffic", body, roles=("mno", "mvne")))
