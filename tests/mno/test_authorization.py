"""The MNO's authorization server: client credentials and CIBA grants, OAuth 2.0 errors, and
tokens that are never kept."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import api_key, conforms, settle
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import OctKey
from mno_support import (
    ALL_SCOPES,
    ALPHA_CLIENT,
    BC_AUTHORIZE,
    BRAVO_CLIENT,
    CIBA,
    TOKEN,
    Network,
    basic,
    bearer,
)
from sqlalchemy import String, Text, select

from simulators.core.runtime import Runtime
from simulators.core.tenancy import PARTNER_SUSPENDED, set_partner_status

CONTRACT = "camara-authorization"
DISCOVERY = "/mno/oauth2/.well-known/openid-configuration"


def oauth_error(response: Any, operation: str, status: int, error: str) -> str:
    body = conforms(response, CONTRACT, operation)
    assert response.status_code == status, body
    assert body["error"] == error, body
    return str(body.get("error_description", ""))


def token_request(client: FlaskClient, data: dict[str, str], client_id: str = ALPHA_CLIENT) -> Any:
    return client.post(TOKEN, data=data, headers=basic(client_id))


def test_discovery_names_the_endpoints_grants_and_scopes(client: FlaskClient) -> None:
    metadata = conforms(client.get(DISCOVERY), CONTRACT, "getOpenIdConfiguration")

    assert metadata["issuer"].endswith("/mno/oauth2")
    assert metadata["token_endpoint"] == metadata["issuer"] + "/token"
    assert metadata["backchannel_authentication_endpoint"] == metadata["issuer"] + "/bc-authorize"
    assert set(metadata["grant_types_supported"]) == {"client_credentials", CIBA}
    assert {"sim-swap:check", "device-roaming-status:read"} <= set(metadata["scopes_supported"])


def test_a_client_credentials_token(client: FlaskClient) -> None:
    response = token_request(
        client,
        {
            "grant_type": "client_credentials",
            "scope": "sim-swap:check dpv:FraudPreventionAndDetection",
        },
    )

    body = conforms(response, CONTRACT, "requestToken")
    assert response.headers["Cache-Control"] == "no-store"
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    assert set(body["scope"].split()) == {"sim-swap:check", "dpv:FraudPreventionAndDetection"}
    assert "id_token" not in body


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        pytest.param({"scope": "sim-swap"}, 400, "invalid_request", id="no-grant-type"),
        pytest.param(
            {"grant_type": "password", "scope": "sim-swap"},
            400,
            "unsupported_grant_type",
            id="password-grant",
        ),  # fmt: skip
        pytest.param({"grant_type": "client_credentials"}, 400, "invalid_request", id="no-scope"),
        pytest.param(
            {"grant_type": "client_credentials", "scope": "sim-swap location"},
            400,
            "invalid_scope",
            id="unknown-scope",
        ),  # fmt: skip
        pytest.param(
            {"grant_type": "client_credentials", "scope": "openid sim-swap"},
            400,
            "invalid_scope",
            id="openid-without-a-subscriber",
        ),  # fmt: skip
        pytest.param(
            {"grant_type": "client_credentials", "scope": "dpv:A dpv:B sim-swap"},
            400,
            "invalid_scope",
            id="two-purposes",
        ),  # fmt: skip
    ],
)
def test_a_token_request_the_server_cannot_grant(
    client: FlaskClient, data: dict[str, str], status: int, error: str
) -> None:
    oauth_error(token_request(client, data), "requestToken", status, error)


def test_bravo_has_no_number_verification(client: FlaskClient) -> None:
    refused = token_request(
        client,
        {"grant_type": "client_credentials", "scope": "number-verification:verify"},
        BRAVO_CLIENT,
    )

    assert "number-verification:verify" in oauth_error(
        refused, "requestToken", 400, "invalid_scope"
    )


def test_client_authentication(client: FlaskClient, runtime: Runtime) -> None:
    data = {"grant_type": "client_credentials", "scope": "sim-swap"}

    wrong_secret = client.post(TOKEN, data=data, headers=basic(ALPHA_CLIENT, "guess"))
    someone_elses = client.post(
        TOKEN, data=data, headers=basic(ALPHA_CLIENT, api_key(BRAVO_CLIENT))
    )
    an_mvne_key = client.post(TOKEN, data=data, headers=basic("mvno-alpha"))
    none = client.post(TOKEN, data=data)

    for refused in (wrong_secret, someone_elses, an_mvne_key, none):
        oauth_error(refused, "requestToken", 401, "invalid_client")
        assert refused.headers["WWW-Authenticate"].startswith("Basic")


def test_a_suspended_client_gets_no_token_and_its_tokens_stop_working(
    client: FlaskClient, runtime: Runtime, carrier: Network
) -> None:
    line = carrier.line(1)
    token = carrier.token("sim-swap")
    with runtime.store.write() as conn:
        set_partner_status(conn, ALPHA_CLIENT, PARTNER_SUSPENDED, runtime.clock.now(conn))

    refused = token_request(client, {"grant_type": "client_credentials", "scope": "sim-swap"})
    used = client.post(
        "/mno/sim-swap/v2/check", json={"phoneNumber": line.msisdn}, headers=bearer(token)
    )

    oauth_error(refused, "requestToken", 401, "invalid_client")
    assert (used.status_code, used.get_json()["code"]) == (403, "PERMISSION_DENIED")


def test_the_token_endpoint_takes_a_form_once_per_parameter(client: FlaskClient) -> None:
    as_json = client.post(
        TOKEN,
        json={"grant_type": "client_credentials", "scope": "sim-swap"},
        headers=basic(ALPHA_CLIENT),
    )
    twice = client.post(
        TOKEN,
        data="grant_type=client_credentials&scope=sim-swap&scope=sim-swap:check",
        content_type="application/x-www-form-urlencoded",
        headers=basic(ALPHA_CLIENT),
    )

    oauth_error(as_json, "requestToken", 400, "invalid_request")
    assert "scope" in oauth_error(twice, "requestToken", 400, "invalid_request")


# --- CIBA -----------------------------------------------------------------------------------


def test_ciba_pending_slow_down_approved_once(
    client: FlaskClient, runtime: Runtime, carrier: Network
) -> None:
    line = carrier.line(1)
    started = client.post(
        BC_AUTHORIZE,
        data={"scope": "openid sim-swap", "login_hint": f"tel:{line.msisdn}"},
        headers=basic(ALPHA_CLIENT),
    )
    body = conforms(started, CONTRACT, "backchannelAuthenticate")
    assert (body["expires_in"], body["interval"]) == (120, 2)
    auth_req_id = body["auth_req_id"]

    oauth_error(carrier.poll(auth_req_id), "requestToken", 400, "authorization_pending")
    assert "7 s" in oauth_error(carrier.poll(auth_req_id), "requestToken", 400, "slow_down")
    settle(runtime, 3)
    granted = carrier.poll(auth_req_id)
    again = carrier.poll(auth_req_id)

    token = conforms(granted, CONTRACT, "requestToken")
    assert token["scope"] == "openid sim-swap"
    # The ID token is signed with the client's secret (OIDC Core 10.1); its subject is a
    # pairwise pseudonym, never the number.
    id_token = jwt.decode(
        token["id_token"], OctKey.import_key(api_key(ALPHA_CLIENT).encode()), algorithms=["HS256"]
    )
    assert id_token.claims["aud"] == ALPHA_CLIENT
    assert line.msisdn not in str(id_token.claims) and line.service_id not in str(id_token.claims)
    oauth_error(again, "requestToken", 400, "invalid_grant")


def test_an_unredeemed_request_expires(
    client: FlaskClient, runtime: Runtime, carrier: Network
) -> None:
    line = carrier.line(1)
    auth_req_id = carrier.authorize(line.msisdn, "sim-swap")
    settle(runtime, 121)

    oauth_error(carrier.poll(auth_req_id), "requestToken", 400, "expired_token")


def test_an_auth_req_id_is_its_clients_alone(carrier: Network) -> None:
    line = carrier.line(1)
    auth_req_id = carrier.authorize(line.msisdn, "sim-swap")

    stolen = carrier.poll(auth_req_id, BRAVO_CLIENT)
    made_up = carrier.poll("x" * 43)

    oauth_error(stolen, "requestToken", 400, "invalid_grant")
    oauth_error(made_up, "requestToken", 400, "invalid_grant")


@pytest.mark.parametrize(
    ("login_hint", "status", "error"),
    [
        pytest.param("tel:+447700900001", 400, "unknown_user_id", id="another-mvnos-subscriber"),
        pytest.param("tel:+447700900999", 400, "unknown_user_id", id="not-served"),
        pytest.param("tel:+447700900003", 403, "access_denied", id="iot-line"),
        pytest.param("tel:447700900002", 400, "invalid_request", id="not-e164"),
        pytest.param("ipport:84.125.93.10:59765", 400, "invalid_request", id="ip-hint"),
    ],
)
def test_a_backchannel_request_the_server_refuses(
    client: FlaskClient, carrier: Network, login_hint: str, status: int, error: str
) -> None:
    carrier.line(1, mvno="mvno-bravo")
    carrier.line(2)
    carrier.line(3, service_type="iot")

    refused = client.post(
        BC_AUTHORIZE,
        data={"scope": "sim-swap", "login_hint": login_hint},
        headers=basic(ALPHA_CLIENT),
    )

    oauth_error(refused, "backchannelAuthenticate", status, error)


# --- nothing keeps a token --------------------------------------------------------------------


def test_no_token_secret_or_auth_req_id_is_stored_or_logged(
    client: FlaskClient, runtime: Runtime, carrier: Network, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    line = carrier.line(1)
    two_legged = carrier.token()
    auth_req_id = carrier.authorize(line.msisdn, f"openid {ALL_SCOPES}")
    carrier.poll(auth_req_id)  # pending
    settle(runtime, 3)
    granted = carrier.poll(auth_req_id).get_json()
    three_legged, id_token = granted["access_token"], granted["id_token"]
    client.post(
        "/mno/sim-swap/v2/check", json={"phoneNumber": line.msisdn}, headers=bearer(two_legged)
    )
    client.post("/mno/number-verification/v2/verify", json={}, headers=bearer(three_legged))
    runtime.journal.flush()

    secrets = {
        "two-legged token": two_legged,
        "three-legged token": three_legged,
        "ID token": id_token,
        "auth_req_id": auth_req_id,
        "client secret": api_key(ALPHA_CLIENT),
    }
    # The distinctive part of each: a JWT's signature, the whole of the others.
    needles = {name: value.rsplit(".", 1)[-1] for name, value in secrets.items()}
    kept: list[str] = []
    with runtime.store.read() as conn:
        for table in runtime.store.tables():
            columns = [c for c in table.columns if isinstance(c.type, String | Text)]
            if not columns:
                continue
            for row in conn.execute(select(*columns)).all():
                text = " ".join(str(value) for value in row if value is not None)
                kept += [f"{name} in {table.name}" for name, n in needles.items() if n in text]
    logged = caplog.text
    kept += [f"{name} in the log" for name, needle in needles.items() if needle in logged]
    assert not kept
    journaled = client.get("/__admin/journal?role=mno&limit=200").get_json()
    token_answers = [e for e in journaled if e["url"].startswith("/mno/oauth2/token")]
    assert token_answers and all(
        '"access_token":"***"' in (e["responseBody"] or "") or e["status"] != 200
        for e in token_answers
    )
