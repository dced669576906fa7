"""The MNO's CAMARA APIs as an MVNO's network-API client sees them: SIM Swap, Number
Verification and Device Roaming Status, their tokens, identifiers and error shape."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from conftest import T0, conforms, settle
from flask.testing import FlaskClient
from mno_support import BRAVO_CLIENT, Network, bearer

from simulators.core.clock import isoformat
from simulators.core.oauth import AccessTokens
from simulators.core.runtime import Runtime
from simulators.mno.authorization import AUDIENCE

CHECK = "/mno/sim-swap/v2/check"
RETRIEVE_DATE = "/mno/sim-swap/v2/retrieve-date"
VERIFY = "/mno/number-verification/v2/verify"
DEVICE_PHONE_NUMBER = "/mno/number-verification/v2/device-phone-number"
ROAMING = "/mno/device-roaming-status/v1/retrieve"
HOUR = 3600
ACTIVATED = T0 + 2  # an order placed at T0 completes after the 2 s provisioning time


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def camara_error(response: Any, contract: str, operation: str, status: int, code: str) -> str:
    """Assert a CAMARA error answer; return its message."""
    body = conforms(response, contract, operation)
    assert response.status_code == status, body
    assert (body["status"], body["code"]) == (status, code)
    assert response.mimetype == "application/json"
    assert body["message"]
    return str(body["message"])


# --- SIM Swap -------------------------------------------------------------------------------


def test_a_new_line_counts_as_a_swap_and_its_activation_is_the_latest_change(
    client: FlaskClient, carrier: Network
) -> None:
    line = carrier.line(1)
    token = carrier.token("sim-swap")

    checked = client.post(CHECK, json={"phoneNumber": line.msisdn}, headers=bearer(token))
    dated = client.post(RETRIEVE_DATE, json={"phoneNumber": line.msisdn}, headers=bearer(token))

    assert conforms(checked, "camara-sim-swap", "checkSimSwap") == {"swapped": True}
    assert conforms(dated, "camara-sim-swap", "retrieveSimSwapDate") == {
        "latestSimChange": isoformat(ACTIVATED)
    }


def test_a_sim_change_ordered_at_the_network_is_what_sim_swap_reports(
    client: FlaskClient, runtime: Runtime, carrier: Network
) -> None:
    line = carrier.line(1)
    settle(runtime, 300 * HOUR)
    token = carrier.token("sim-swap:check sim-swap:retrieve-date")
    ask = {"phoneNumber": line.msisdn}
    assert client.post(CHECK, json=ask, headers=bearer(token)).get_json() == {"swapped": False}

    order = carrier.change_sim(line, 7)
    swapped_at = runtime.clock.now() - 1  # completed after the 2 s provisioning time

    assert order["state"] == "completed"
    assert client.post(CHECK, json=ask, headers=bearer(token)).get_json() == {"swapped": True}
    assert client.post(RETRIEVE_DATE, json=ask, headers=bearer(token)).get_json() == {
        "latestSimChange": isoformat(swapped_at)
    }
    settle(runtime, 2 * HOUR)
    token = carrier.token("sim-swap:check")  # the first one has expired meanwhile
    for max_age, swapped in ((1, False), (3, True), (2400, True)):
        answer = client.post(CHECK, json={**ask, "maxAge": max_age}, headers=bearer(token))
        assert answer.get_json() == {"swapped": swapped}, max_age


def test_a_change_older_than_the_monitored_period_is_not_disclosed(
    client: FlaskClient, runtime: Runtime, carrier: Network
) -> None:
    line = carrier.line(1)
    settle(runtime, 101 * 24 * HOUR)
    token = carrier.token("sim-swap")

    dated = client.post(RETRIEVE_DATE, json={"phoneNumber": line.msisdn}, headers=bearer(token))
    checked = client.post(
        CHECK, json={"phoneNumber": line.msisdn, "maxAge": 2400}, headers=bearer(token)
    )

    assert conforms(dated, "camara-sim-swap", "retrieveSimSwapDate") == {
        "latestSimChange": None,
        "monitoredPeriod": 100,
    }
    assert checked.get_json() == {"swapped": False}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({"maxAge": 2401}, "OUT_OF_RANGE", id="above-2400"),
        pytest.param({"maxAge": 0}, "OUT_OF_RANGE", id="below-1"),
        pytest.param({"maxAge": "24"}, "INVALID_ARGUMENT", id="not-an-integer"),
        pytest.param({"phoneNumber": "447700900001"}, "INVALID_ARGUMENT", id="no-plus"),
        pytest.param({"phonenumber": "+447700900001"}, "INVALID_ARGUMENT", id="unknown-property"),
    ],
)
def test_a_request_outside_the_contract_is_400_in_camara_shape(
    client: FlaskClient, carrier: Network, body: dict[str, Any], code: str
) -> None:
    line = carrier.line(1)
    token = carrier.token("sim-swap")

    response = client.post(CHECK, json={"phoneNumber": line.msisdn, **body}, headers=bearer(token))

    camara_error(response, "camara-sim-swap", "checkSimSwap", 400, code)


def test_the_token_decides_whether_the_body_names_the_number(
    client: FlaskClient, carrier: Network
) -> None:
    line = carrier.line(1)
    two_legged = carrier.token("sim-swap")
    three_legged = carrier.subscriber_token(line, "sim-swap")

    missing = client.post(CHECK, json={"maxAge": 24}, headers=bearer(two_legged))
    unnecessary = client.post(
        CHECK, json={"phoneNumber": line.msisdn}, headers=bearer(three_legged)
    )
    identified = client.post(CHECK, json={"maxAge": 24}, headers=bearer(three_legged))

    camara_error(missing, "camara-sim-swap", "checkSimSwap", 422, "MISSING_IDENTIFIER")
    camara_error(unnecessary, "camara-sim-swap", "checkSimSwap", 422, "UNNECESSARY_IDENTIFIER")
    assert conforms(identified, "camara-sim-swap", "checkSimSwap") == {"swapped": True}


def test_another_mvnos_number_is_not_found_exactly_like_an_unknown_one(
    client: FlaskClient, carrier: Network
) -> None:
    bravos = carrier.line(1, mvno="mvno-bravo")
    unattributed = carrier.line(2, mvno=None)
    token = carrier.token("sim-swap")

    answers = [
        client.post(RETRIEVE_DATE, json={"phoneNumber": number}, headers=bearer(token))
        for number in (bravos.msisdn, unattributed.msisdn, "+447700900999")
    ]

    messages = {
        camara_error(answer, "camara-sim-swap", "retrieveSimSwapDate", 404, "IDENTIFIER_NOT_FOUND")
        for answer in answers
    }
    assert len(messages) == 1, "the refusal must not tell another MVNO's number apart"
    # Bravo's own client does see its line.
    own = client.post(
        RETRIEVE_DATE,
        json={"phoneNumber": bravos.msisdn},
        headers=bearer(carrier.token("sim-swap", BRAVO_CLIENT)),
    )
    assert own.status_code == 200


def test_sim_swap_does_not_apply_to_an_iot_line_but_roaming_does(
    client: FlaskClient, carrier: Network
) -> None:
    meter = carrier.line(1, service_type="iot")
    token = carrier.token()

    swap = client.post(CHECK, json={"phoneNumber": meter.msisdn}, headers=bearer(token))
    roaming = client.post(
        ROAMING, json={"device": {"phoneNumber": meter.msisdn}}, headers=bearer(token)
    )

    camara_error(swap, "camara-sim-swap", "checkSimSwap", 422, "SERVICE_NOT_APPLICABLE")
    assert conforms(roaming, "camara-device-roaming-status", "getRoamingStatus")["roaming"] is False


def test_a_terminated_line_is_not_found_and_voids_its_subscribers_tokens(
    client: FlaskClient, carrier: Network
) -> None:
    line = carrier.line(1)
    two_legged = carrier.token("sim-swap")
    three_legged = carrier.subscriber_token(line, "sim-swap")
    carrier.terminate(line)

    asked = client.post(CHECK, json={"phoneNumber": line.msisdn}, headers=bearer(two_legged))
    void = client.post(CHECK, json={}, headers=bearer(three_legged))

    camara_error(asked, "camara-sim-swap", "checkSimSwap", 404, "IDENTIFIER_NOT_FOUND")
    camara_error(void, "camara-sim-swap", "checkSimSwap", 401, "UNAUTHENTICATED")


# --- access tokens -----------------------------------------------------------------------------


def test_a_missing_malformed_forged_or_expired_token_is_401(
    client: FlaskClient, runtime: Runtime, carrier: Network
) -> None:
    line = carrier.line(1)
    token = carrier.token("sim-swap:check")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    widened = {**claims, "scope": "sim-swap"}
    tampered = ".".join((header, _b64(json.dumps(widened).encode()), signature))
    forged, _claims = AccessTokens("another-stacks-key", AUDIENCE).issue(
        issuer=claims["iss"],
        client_id=claims["client_id"],
        subject=claims["sub"],
        scopes=frozenset({"sim-swap"}),
        now=runtime.clock.now(),
        lifetime_s=3600,
    )
    ask = {"phoneNumber": line.msisdn}

    refusals = [
        client.post(CHECK, json=ask),
        client.post(CHECK, json=ask, headers={"Authorization": f"Basic {token}"}),
        client.post(CHECK, json=ask, headers=bearer("not-a-token")),
        client.post(CHECK, json=ask, headers=bearer(tampered)),
        client.post(CHECK, json=ask, headers=bearer(forged)),
    ]
    settle(runtime, 3600 + 1)
    refusals.append(client.post(CHECK, json=ask, headers=bearer(token)))

    for refusal in refusals:
        camara_error(refusal, "camara-sim-swap", "checkSimSwap", 401, "UNAUTHENTICATED")
        assert refusal.headers["WWW-Authenticate"].startswith("Bearer")
    assert "expired" in refusals[-1].get_json()["message"]


def test_a_token_without_the_operations_scope_is_403(client: FlaskClient, carrier: Network) -> None:
    line = carrier.line(1)
    check_only = carrier.token("sim-swap:check")
    ask = {"phoneNumber": line.msisdn}

    allowed = client.post(CHECK, json=ask, headers=bearer(check_only))
    refused = client.post(RETRIEVE_DATE, json=ask, headers=bearer(check_only))
    roaming = client.post(ROAMING, json={"device": ask}, headers=bearer(check_only))

    assert allowed.status_code == 200
    camara_error(refused, "camara-sim-swap", "retrieveSimSwapDate", 403, "PERMISSION_DENIED")
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    camara_error(
        roaming, "camara-device-roaming-status", "getRoamingStatus", 403, "PERMISSION_DENIED"
    )


# --- x-correlator --------------------------------------------------------------------------


def test_x_correlator_is_echoed_journaled_and_a_bad_one_refused(
    client: FlaskClient, runtime: Runtime, carrier: Network
) -> None:
    line = carrier.line(1)
    token = carrier.token("sim-swap")
    ask = {"phoneNumber": line.msisdn}

    echoed = client.post(CHECK, json=ask, headers=bearer(token, **{"x-correlator": "ab-12:{x}"}))
    minted = client.post(CHECK, json=ask, headers=bearer(token))
    refused = client.post(CHECK, json=ask, headers=bearer(token, **{"x-correlator": "a b"}))
    failed = client.post(CHECK, json={}, headers=bearer(token, **{"x-correlator": "ab-13"}))

    assert echoed.headers["x-correlator"] == "ab-12:{x}"
    assert minted.headers["x-correlator"] == minted.headers["X-Correlation-ID"]
    camara_error(refused, "camara-sim-swap", "checkSimSwap", 400, "INVALID_ARGUMENT")
    assert refused.headers["x-correlator"] != "a b"
    assert failed.headers["x-correlator"] == "ab-13"
    runtime.journal.flush()
    entries = client.get("/__admin/journal?correlationId=ab-12:{x}").get_json()
    assert [(e["operationId"], e["status"], e["partnerId"]) for e in entries] == [
        ("checkSimSwap", 200, "mvno-alpha-camara")
    ]


def test_refusals_outside_any_operation_keep_the_camara_shape(
    client: FlaskClient, carrier: Network
) -> None:
    token = carrier.token("sim-swap")

    unknown = client.post("/mno/sim-swap/v2/swap-history", json={}, headers=bearer(token))
    wrong_method = client.get(CHECK, headers=bearer(token))
    not_json = client.post(
        CHECK,
        data="phoneNumber=+447700900001",
        headers=bearer(token),
        content_type="application/x-www-form-urlencoded",
    )

    assert (unknown.status_code, unknown.get_json()["code"]) == (404, "NOT_FOUND")
    assert (wrong_method.status_code, wrong_method.get_json()["code"]) == (
        405,
        "METHOD_NOT_ALLOWED",
    )
    camara_error(not_json, "camara-sim-swap", "checkSimSwap", 415, "UNSUPPORTED_MEDIA_TYPE")


def test_an_outage_rule_answers_in_camara_shape(client: FlaskClient, carrier: Network) -> None:
    line = carrier.line(1)
    token = carrier.token("device-roaming-status:read")
    added = client.post(
        "/__admin/faults",
        json={
            "id": "roaming-down",
            "match": {"role": "mno", "operation": "getRoamingStatus"},
            "effect": {"type": "status", "status": 503},
        },
    )
    assert added.status_code == 201, added.get_data(as_text=True)

    device = {"device": {"phoneNumber": line.msisdn}}
    down = client.post(ROAMING, json=device, headers=bearer(token))

    camara_error(down, "camara-device-roaming-status", "getRoamingStatus", 503, "UNAVAILABLE")


# --- Number Verification ------------------------------------------------------------------


def test_number_verification_compares_with_the_authenticated_line(
    client: FlaskClient, carrier: Network
) -> None:
    line = carrier.line(1)
    other = carrier.line(2)
    token = carrier.subscriber_token(line)

    def verify(body: dict[str, str]) -> bool:
        answer = client.post(VERIFY, json=body, headers=bearer(token))
        verified: bool = conforms(answer, "camara-number-verification", "phoneNumberVerify")[
            "devicePhoneNumberVerified"
        ]
        return verified

    digest = hashlib.sha256(line.msisdn.encode()).hexdigest()
    assert verify({"phoneNumber": line.msisdn}) is True
    assert verify({"phoneNumber": other.msisdn}) is False
    assert verify({"hashedPhoneNumber": digest.upper()}) is True
    assert verify({"hashedPhoneNumber": hashlib.sha256(b"+447700900002").hexdigest()}) is False
    shared = client.get(DEVICE_PHONE_NUMBER, headers=bearer(token))
    assert conforms(shared, "camara-number-verification", "phoneNumberShare") == {
        "devicePhoneNumber": line.msisdn
    }


def test_number_verification_needs_a_subscriber_the_network_authenticated(
    client: FlaskClient, carrier: Network
) -> None:
    line = carrier.line(1)
    two_legged = carrier.token()
    without_scope = carrier.subscriber_token(line, "sim-swap")
    three_legged = carrier.subscriber_token(line)

    anonymous = client.get(DEVICE_PHONE_NUMBER, headers=bearer(two_legged))
    unscoped = client.post(VERIFY, json={"phoneNumber": line.msisdn}, headers=bearer(without_scope))
    both = client.post(
        VERIFY,
        json={"phoneNumber": line.msisdn, "hashedPhoneNumber": "a" * 64},
        headers=bearer(three_legged),
    )

    camara_error(
        anonymous,
        "camara-number-verification",
        "phoneNumberShare",
        403,
        "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK",
    )
    camara_error(
        unscoped, "camara-number-verification", "phoneNumberVerify", 403, "PERMISSION_DENIED"
    )
    camara_error(both, "camara-number-verification", "phoneNumberVerify", 400, "INVALID_ARGUMENT")


# --- Device Roaming Status ------------------------------------------------------------------


def test_roaming_follows_the_visited_network_of_the_latest_usage(
    client: FlaskClient, runtime: Runtime, carrier: Network
) -> None:
    line = carrier.line(1)
    token = carrier.subscriber_token(line, "device-roaming-status:read")

    def status() -> dict[str, Any]:
        answer = client.post(ROAMING, json={}, headers=bearer(token))
        body: dict[str, Any] = conforms(answer, "camara-device-roaming-status", "getRoamingStatus")
        return body

    assert status() == {"lastStatusTime": isoformat(ACTIVATED), "roaming": False}
    settle(runtime, 600)
    home = carrier.used(line, None)
    assert status() == {"lastStatusTime": isoformat(home), "roaming": False}
    settle(runtime, 600)
    germany = carrier.used(line, "262")
    assert status() == {
        "lastStatusTime": isoformat(germany),
        "roaming": True,
        "countryCode": 262,
        "countryName": ["DE"],
    }
    settle(runtime, 600)
    carrier.used(line, "340")
    assert status()["countryName"] == ["BL", "GF", "GP", "MF", "MQ"]
    carrier.used(line, "901")
    assert (status()["countryCode"], status()["countryName"]) == (901, [])
    settle(runtime, 600)
    back = carrier.used(line, None)
    assert status() == {"lastStatusTime": isoformat(back), "roaming": False}


def test_roaming_device_identifiers(client: FlaskClient, carrier: Network) -> None:
    line = carrier.line(1)
    two_legged = carrier.token("device-roaming-status:read")
    three_legged = carrier.subscriber_token(line, "device-roaming-status:read")
    carrier.used(line, "234")
    by_ip = {"ipv4Address": {"publicAddress": "84.125.93.10", "publicPort": 59765}}

    named = client.post(
        ROAMING,
        json={"device": {"phoneNumber": line.msisdn, **by_ip}},
        headers=bearer(two_legged),
    )
    unsupported = client.post(ROAMING, json={"device": by_ip}, headers=bearer(two_legged))
    missing = client.post(ROAMING, json={}, headers=bearer(two_legged))
    unnecessary = client.post(ROAMING, json={"device": by_ip}, headers=bearer(three_legged))
    empty_device = client.post(ROAMING, json={"device": {}}, headers=bearer(two_legged))

    body = conforms(named, "camara-device-roaming-status", "getRoamingStatus")
    assert body["device"] == {"phoneNumber": line.msisdn}
    assert (body["roaming"], body["countryCode"], body["countryName"]) == (
        True,
        234,
        ["GB", "GG", "IM", "JE"],
    )
    for answer, status, code in (
        (unsupported, 422, "UNSUPPORTED_IDENTIFIER"),
        (missing, 422, "MISSING_IDENTIFIER"),
        (unnecessary, 422, "UNNECESSARY_IDENTIFIER"),
        (empty_device, 400, "INVALID_ARGUMENT"),
    ):
        camara_error(answer, "camara-device-roaming-status", "getRoamingStatus", status, code)
