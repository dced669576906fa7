"""Every published contract fuzzed in-process by schemathesis, with every check on.

For each contract (MNO and its CAMARA APIs, MVNE, tax, care, payments, billing,
fulfillment, control plane, callback sink) and each of its operations: the explicit
examples, the coverage phase (boundary values, missing and malformed parameters,
undeclared methods) and fuzzing, in positive and negative modes; then stateful
sequences along the links the contracts declare (create, read, act, delete, read again),
and those schemathesis infers besides.
The fakes must answer every case as their contract says,
so any failure is a bug in a contract or in a fake.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import hypothesis
import pytest
import responses
import schemathesis
from conftest import PARTNER_HOOKS, T0, activate, api_key
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi import unregister_string_format
from sqlalchemy import select

from simulators.core.admin import reset_state
from simulators.core.contract import FORMAT_CHECKER, HTTP_METHODS, load_contract
from simulators.core.identifiers import (
    MSISDN_PATTERN,
    TEST_MCC,
    iccid_for,
    iccid_with_check_digit,
    imsi_for,
    uk_fictitious_msisdn,
)
from simulators.core.inprocess import CallbackReceiver
from simulators.core.runtime import Runtime
from simulators.core.tenancy import get_partner
from simulators.mno import EXTRA_APIS
from simulators.mvne.model import REFERENCE_PARTNERS, known_offerings, sim_table
from simulators.tax.model import load_table
from simulators.verify.formats import repaired

# Reproducible in CI: a fixed seed, derandomized generation, no example database.
SEED = 20260302
MAX_EXAMPLES = 30
STATEFUL_SCENARIOS = 15
STATEFUL_STEPS = 8
# The reference partner whose key, agreement and SIM pool drive the MVNE partner API.
PARTNER = "mvno-alpha"
# Its client of the MNO's CAMARA APIs, and the MNO line attributed to it that they ask about.
CAMARA_CLIENT = "mvno-alpha-camara"
CAMARA_LINE = 900
# The credential of each security scheme the contracts declare.
KEYS = {
    "mno": {
        "apiKey": api_key("mvne-platform"),
        "wholesaleKey": api_key(PARTNER + "-wholesale"),
        "operationsKey": api_key("mno-settlement-approver"),
    },
    "mvne": {
        "partnerKey": api_key(PARTNER),
        "networkKey": api_key("mno-network"),
        "careKey": api_key("care-agent-" + PARTNER),
    },
    "care": {"partnerKey": api_key(PARTNER + "-care")},
    "admin": {},  # loopback callers need no admin token
    "sink": {},  # a partner endpoint: anyone may deliver to it
    "tax": {"apiKey": api_key("billing-platform")},
    "payments": {"merchantKey": api_key("billing-merchant")},
    "billing": {"partnerKey": api_key(PARTNER)},  # the MVNOs bill with their MVNE key
    # The MNO's authorization server takes the network-API client's id and secret; its CAMARA
    # APIs take the access tokens it issues (see `camara_tokens`).
    "camara-authorization": {
        "clientBasic": {"username": CAMARA_CLIENT, "password": api_key(CAMARA_CLIENT)}
    },
    "camara-sim-swap": {"openId": "two-legged"},
    "camara-number-verification": {"openId": "three-legged"},
    "camara-device-roaming-status": {"openId": "two-legged"},
    "fulfillment": {"partnerKey": api_key(PARTNER)},  # ... and ship SIMs with it
}
# Where the stack serves each contract that is not a role's own.
LOCATIONS = {api.contract_name: f"{prefix}/openapi.json" for prefix, api in EXTRA_APIS.items()}
LOCATIONS |= {"admin": "/__admin/openapi.json", "sink": "/__sink/openapi.json"}
# schemathesis' default expected statuses for positive_data_acceptance, plus 422: by our
# design a well-formed request the domain cannot carry out (ICCID_UNMAPPED, an offering
# outside the agreement, a reused Idempotency-Key) is a 422, and a generator that only
# knows the contract's shapes cannot avoid sending such requests.
POSITIVE_DATA_ACCEPTANCE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "422"]
# OAuth 2.0 answers every grant it refuses with 400 (RFC 6749 section 5.2: invalid_grant,
# invalid_scope, authorization_pending...), and a form's shape cannot produce a live auth_req_id.
OAUTH_ACCEPTANCE_STATUSES = [*POSITIVE_DATA_ACCEPTANCE_STATUSES, "400"]
MAX_RESPONSE_TIME_S = 15
# werkzeug's bare test client leaves REMOTE_ADDR unset, which the control plane refuses;
# like Flask's test client, schemathesis calls from loopback (the WSGI environ is kept on
# the retries and probes its checks send).
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
SCHEMATHESIS_HOST = "http://localhost"

# Hypothesis writes caches under ./.hypothesis, and its pytest plugin already does so while
# collecting (the constants of local code), before any fixture could redirect it: so the
# redirection happens as this module is imported, unless the caller chose a directory.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    hypothesis.configuration.set_hypothesis_home_dir(
        Path(tempfile.gettempdir()) / "handoff-hypothesis"
    )


# --- the contracts' custom formats -----------------------------------------------------------


@pytest.fixture(scope="module")
def custom_formats(runtime: Runtime) -> Iterator[None]:
    """Strategies for `format: iccid`, `imsi` and `msisdn`, valid by the identifier rules.

    ICCIDs are E.118 with a Luhn check digit, half of them from the partner's seeded SIM
    pool so that some orders go through; IMSIs have the test MCC 001 or one not starting 0.
    """
    _reseed(runtime)
    with runtime.store.read() as conn:
        pool = (
            conn.execute(
                select(sim_table.c.iccid)
                .where(sim_table.c.partner_id == PARTNER)
                .order_by(sim_table.c.iccid)
            )
            .scalars()
            .all()
        )
    assert pool, f"{PARTNER} has no seeded SIM pool"
    anywhere = st.from_regex(r"89[0-9]{16,17}", fullmatch=True).map(iccid_with_check_digit)
    mcc = st.one_of(st.just(TEST_MCC), st.integers(100, 999).map(str))
    formats = {
        "iccid": st.one_of(st.sampled_from(pool), anywhere),
        "imsi": st.tuples(mcc, st.from_regex(r"[0-9]{3,12}", fullmatch=True)).map("".join),
        "msisdn": st.from_regex(MSISDN_PATTERN, fullmatch=True),
    }
    for name, strategy in formats.items():
        schemathesis.openapi.format(name, strategy)
    yield
    for name in formats:
        unregister_string_format(name)


Checks = tuple[list[tuple[str, str, Draft202012Validator]], Draft202012Validator | None]


def _contract_checks(role: str) -> dict[str, Checks]:
    """Per operationId: a validator for each path and query parameter, and one for the body,
    compiled from the contract with the formats the fakes check."""
    document = load_contract(role).document
    components = document.get("components", {})

    def resolve(node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            pointer = node["$ref"].removeprefix("#/").split("/")
            node = document
            for part in pointer:
                node = node[part]
        return node

    def checker(schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(
            {**schema, "components": components}, format_checker=FORMAT_CHECKER
        )

    checks: dict[str, Checks] = {}
    for item in document["paths"].values():
        for method, spec in item.items():
            if method not in HTTP_METHODS:
                continue
            declared = [*item.get("parameters", []), *spec.get("parameters", [])]
            parameters = [resolve(raw) for raw in declared]
            content = resolve(spec.get("requestBody", {})).get("content", {})
            body = next(iter(content.values()), {}).get("schema")
            checks[spec["operationId"]] = (
                [
                    (parameter["in"], parameter["name"], checker(parameter.get("schema", {})))
                    for parameter in parameters
                    if parameter["in"] in ("path", "query")
                ],
                checker(body) if body is not None else None,
            )
    return checks


def custom_formats_in_coverage(role: str) -> Callable[..., schemathesis.Case]:
    """A `map_case` hook: positive coverage cases hold values the custom formats admit.

    The coverage phase draws a string that has both a `pattern` and a custom `format` from
    the pattern alone (it checks only the standard formats), so its "valid" ICCIDs and
    IMSIs can break the Luhn digit or the MCC rule the contract sets and the fake enforces.
    Fuzzing draws them from the strategies above. Only custom-format violations are
    repaired, as the contract's own validators judge them.
    """
    checks = _contract_checks(role)

    def map_case(_context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
        meta = case.meta
        if meta is None or meta.phase.name != TestPhase.COVERAGE:
            return case
        if not meta.generation.mode.is_positive:
            return case
        parameters, body = checks[case.operation.definition.raw["operationId"]]
        for location, name, validator in parameters:
            values = {"path": case.path_parameters, "query": case.query}[location]
            if values and isinstance(values.get(name), str):
                values[name] = repaired(validator, values[name])
        if body is not None and isinstance(case.body, dict | list):
            case.body = repaired(body, case.body)
        return case

    return map_case


def filter_case(_context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    """Drop positive cases with a null path parameter.

    schemathesis (4.32) follows inferred links whose expression matches several values (the
    `partnerId` of every audit record or journal entry, say) and may pick a null among them
    (an admin action has no partner); it sends it as the text "None" and calls the case
    positive. A path parameter can never be null, so no contract admits such a request.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return True
    return not any(value is None for value in (case.path_parameters or {}).values())


def distinct_offerings(
    _context: schemathesis.HookContext, case: schemathesis.Case
) -> schemathesis.Case:
    """A `map_case` hook: the offerings of an onboarding stay distinct (`uniqueItems`).

    schemathesis fills `agreement.offerings[*]` from the dictionary item by item (see
    `_references`), so a positive case could name an offering twice.
    """
    meta = case.meta
    agreement = case.body.get("agreement") if isinstance(case.body, dict) else None
    if meta is not None and meta.generation.mode.is_positive and isinstance(agreement, dict):
        offerings = agreement.get("offerings")
        if isinstance(offerings, list):
            agreement["offerings"] = list(dict.fromkeys(offerings))
    return case


# --- data the generated requests can refer to -----------------------------------------------


def _reseed(runtime: Runtime) -> None:
    """The seeded stack as configured, with the configured Faker seed (POST /seed changes it)."""
    reset_state(runtime, None, seed=runtime.settings.faker_seed)
    runtime.clock.set(T0, frozen=True)


@pytest.fixture(autouse=True)
def configured_seed(runtime: Runtime) -> Iterator[None]:
    """Start from, and leave behind, the configured seed: the control plane's /seed is fuzzed
    too, and the seed it sets would otherwise outlive the test (fresh_state keeps it)."""
    _reseed(runtime)
    yield
    _reseed(runtime)


def _activate_lines(client: FlaskClient, runtime: Runtime) -> dict[str, str]:
    """Two live subscriptions of the partner, so that status changes, top-ups, charging and
    traffic reach the domain rules instead of stopping at 404: one for status changes (which
    may terminate it), one for money. Both are the same after every reseed but their ids."""
    alpha = {"X-API-Key": KEYS["mvne"]["partnerKey"]}
    status = activate(client, runtime, alpha, external_id="schemathesis-status")
    money = activate(client, runtime, alpha, external_id="schemathesis-money")
    services = client.get(
        f"/mno/tmf-api/serviceInventory/v4/service?iccid={money['iccid']}",
        headers={"X-API-Key": KEYS["mno"]["apiKey"]},
    ).get_json()
    assert len(services) == 1, services
    bucket = client.get(
        f"/mvne/tmf-api/prepayBalanceManagement/v4/bucket/{money['id']}", headers=alpha
    ).get_json()
    camara = _camara_line(client, runtime)
    return {
        "status_product": status["id"],
        "product": money["id"],
        "msisdn": money["msisdn"],
        "currency": bucket["remainingValue"]["units"],
        "service": services[0]["id"],
        "camara_msisdn": camara["msisdn"],
        "camara_service": camara["service"],
    }


def _camara_line(client: FlaskClient, runtime: Runtime) -> dict[str, str]:
    """A line the network attributes to the partner, so its CAMARA client can ask about it."""
    msisdn = uk_fictitious_msisdn(CAMARA_LINE)
    values = {
        "IMSI": imsi_for(CAMARA_LINE),
        "MSISDN": msisdn,
        "ICCID": iccid_for("44", "90", CAMARA_LINE),
    }
    created = client.post(
        "/mno/tmf-api/serviceOrdering/v4/serviceOrder",
        json={
            "externalId": "schemathesis-camara",
            "relatedParty": [{"id": PARTNER, "role": "mvno"}],
            "serviceOrderItem": [
                {
                    "id": "1",
                    "action": "add",
                    "service": {
                        "serviceCharacteristic": [
                            {"name": name, "value": value} for name, value in values.items()
                        ]
                    },
                }
            ],
        },
        headers={"X-API-Key": KEYS["mno"]["apiKey"]},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    runtime.advance(5)
    done = client.get(created.headers["Location"], headers={"X-API-Key": KEYS["mno"]["apiKey"]})
    item = done.get_json()["serviceOrderItem"][0]
    assert item["state"] == "completed", done.get_json()
    return {"msisdn": msisdn, "service": item["service"]["id"]}


def camara_tokens(client: FlaskClient, runtime: Runtime) -> dict[str, str]:
    """Access tokens of the partner's CAMARA client, from the MNO's authorization server: a
    two-legged one with every scope, and a three-legged one for the partner's line."""
    basic = KEYS["camara-authorization"]["clientBasic"]
    credentials = (basic["username"], basic["password"])
    scope = " ".join(
        (
            "sim-swap device-roaming-status:read number-verification:verify",
            "number-verification:device-phone-number:read",
        )
    )
    two_legged = client.post(
        "/mno/oauth2/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=credentials,
    )
    assert two_legged.status_code == 200, two_legged.get_data(as_text=True)
    started = client.post(
        "/mno/oauth2/bc-authorize",
        data={"scope": scope, "login_hint": f"tel:{uk_fictitious_msisdn(CAMARA_LINE)}"},
        auth=credentials,
    )
    assert started.status_code == 200, started.get_data(as_text=True)
    runtime.advance(5)  # the subscriber approves on the device
    three_legged = client.post(
        "/mno/oauth2/token",
        data={
            "grant_type": "urn:openid:params:grant-type:ciba",
            "auth_req_id": started.get_json()["auth_req_id"],
        },
        auth=credentials,
    )
    assert three_legged.status_code == 200, three_legged.get_data(as_text=True)
    return {
        "two-legged": two_legged.get_json()["access_token"],
        "three-legged": three_legged.get_json()["access_token"],
    }


def _restore_lines(app: Flask, runtime: Runtime, lines: dict[str, str]) -> None:
    """Bring the lines back if a fuzzed /reset or /seed of the control plane removed them."""
    client = app.test_client()
    found = client.get(
        f"/mno/tmf-api/serviceInventory/v4/service?msisdn={quote(lines['msisdn'])}&state=active",
        headers={"X-API-Key": KEYS["mno"]["apiKey"]},
    ).get_json()
    if not found:
        _reseed(runtime)
        again = _activate_lines(client, runtime)
        assert again["msisdn"] == lines["msisdn"], (again, lines)


@pytest.fixture
def lines(client: FlaskClient, runtime: Runtime) -> dict[str, str]:
    return _activate_lines(client, runtime)


def _bind(dictionary: str, probability: float = 0.5) -> dict[str, Any]:
    return {"dictionary": dictionary, "probability": probability}


def _references(role: str, runtime: Runtime, lines: dict[str, str]) -> dict[str, Any]:
    """Known values schemathesis mixes into the fields that name existing things."""
    with runtime.store.read() as conn:
        offerings = sorted(known_offerings(conn))
        agreed = get_partner(conn, PARTNER).agreement["offerings"]
    values = {
        "agreed_offerings": agreed,
        "offerings": offerings,
        "partners": [partner["id"] for partner in REFERENCE_PARTNERS],
        "callbacks": [f"{PARTNER_HOOKS}/events"],
        "status_products": [lines["status_product"]],
        "products": [lines["product"]],
        "msisdns": [lines["msisdn"]],
        "services": [lines["service"]],
        "currencies": [lines["currency"]],
        "zips": sorted(load_table().zips),
        "countries": ["US", "DE"],
        "camara_msisdns": [lines["camara_msisdn"]],
        "wholesale_partners": [PARTNER],
        # At T0 (2026-03-02) February has ended and can be closed; March has not.
        "periods": ["2026-02", "2026-03"],
    }
    parameters, operations = {
        "mno": (
            {
                "path.id": _bind("services", 0.3),
                "query.serviceId": _bind("services"),
                "query.msisdn": _bind("msisdns"),
                "path.partnerId": _bind("wholesale_partners", 0.8),
                "path.periodId": _bind("periods", 0.8),
                "body.partnerId": _bind("wholesale_partners", 0.8),
                "body.periodId": _bind("periods", 0.8),
                "body.callback": _bind("callbacks"),
            },
            [],
        ),
        "mvne": (
            {
                "body.productOrderItem[*].productOffering.id": _bind("agreed_offerings"),
                "body.callback": _bind("callbacks"),
                "body.product.id": _bind("products"),
                "body.productId": _bind("products"),
                "body.amount.units": _bind("currencies", 0.8),
                "body.msisdn": _bind("msisdns"),
                "path.id": _bind("products", 0.3),
                "query.product.id": _bind("products"),
                "query.msisdn": _bind("msisdns"),
            },
            [
                {
                    "include-operation-id": "updateProductStatus",
                    "parameters": {"path.id": _bind("status_products")},
                }
            ],
        ),
        "sink": ({}, []),
        # ZIPs and countries of the jurisdiction table, so that quotes get past the address.
        "tax": (
            {
                "body.placeOfPrimaryUse.postalCode": _bind("zips", 0.8),
                "body.placeOfPrimaryUse.country": _bind("countries", 0.8),
            },
            [],
        ),
        "care": ({"body.callback": _bind("callbacks")}, []),
        "payments": ({"body.callback": _bind("callbacks")}, []),
        "billing": ({"body.product.id": _bind("products")}, []),
        # The partner's own line, so that CAMARA answers get past IDENTIFIER_NOT_FOUND.
        "camara-authorization": ({}, []),
        "camara-sim-swap": ({"body.phoneNumber": _bind("camara_msisdns")}, []),
        "camara-number-verification": ({"body.phoneNumber": _bind("camara_msisdns")}, []),
        "camara-device-roaming-status": (
            {"body.device.phoneNumber": _bind("camara_msisdns")},
            [],
        ),
        "fulfillment": ({"body.callback": _bind("callbacks")}, []),
        "admin": (
            {
                "body.agreement.offerings[*]": _bind("offerings", 0.8),
                "body.msisdn": _bind("msisdns"),
                "path.partnerId": _bind("partners", 0.3),
            },
            [],
        ),
    }[role]
    return {
        "dictionaries": {name: {"values": entries} for name, entries in values.items()},
        "parameters": parameters,
        "operations": operations,
    }


def _config(
    role: str, runtime: Runtime, lines: dict[str, str], tokens: dict[str, str]
) -> schemathesis.Config:
    """Every check and phase on, both generation modes, reproducible and writing nothing."""
    settings: dict[str, Any] = {
        "seed": SEED,
        "cache": {"enabled": False},
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "checks": {
            "enabled": True,
            "positive_data_acceptance": {
                "expected-statuses": OAUTH_ACCEPTANCE_STATUSES
                if role == "camara-authorization"
                else POSITIVE_DATA_ACCEPTANCE_STATUSES
            },
            # The one check off unless given a limit: generous for a loaded CI machine (the
            # largest legal onboarding, 100,000 SIMs, takes ~4 s), short of a store lock wait.
            "max_response_time": MAX_RESPONSE_TIME_S,
        },
        **_references(role, runtime, lines),
    }
    if KEYS[role]:
        # Keyed by security scheme, so each operation is sent the credential its scheme names.
        settings["auth"] = {
            "openapi": {name: _credential(key, tokens) for name, key in KEYS[role].items()}
        }
    return schemathesis.Config.from_dict(settings)


def _credential(key: str | dict[str, str], tokens: dict[str, str]) -> dict[str, str]:
    if isinstance(key, dict):
        return key
    if key in tokens:
        return {"bearer": tokens[key]}
    return {"api_key": key}


@pytest.fixture(params=sorted(KEYS))
def contract(
    request: pytest.FixtureRequest,
    app: Flask,
    runtime: Runtime,
    custom_formats: None,
    lines: dict[str, str],
) -> schemathesis.BaseSchema:
    """The contract as the app serves it, loaded for in-process (WSGI) calls."""
    role = request.param
    location = LOCATIONS.get(role, f"/{role}/openapi.json")
    served = app.test_client().get(location)
    assert served.status_code == 200, served.get_data(as_text=True)
    tokens = camara_tokens(app.test_client(), runtime) if role.startswith("camara-") else {}
    loaded = schemathesis.openapi.from_dict(
        served.get_json(), config=_config(role, runtime, lines, tokens)
    )
    # What schemathesis.openapi.from_wsgi does after fetching: calls go to the app over WSGI.
    loaded.app = app
    loaded.location = location
    loaded.hook(custom_formats_in_coverage(role))
    loaded.hook(filter_case)
    loaded.hook("map_case")(distinct_offerings)
    return loaded


def _no_schemathesis_call_went_through(network: responses.RequestsMock) -> None:
    # The fakes' peer calls and callbacks go through `network`; schemathesis reaches the app
    # over WSGI directly, so none of its requests may show up here.
    intercepted = [call.request.url for call in network.calls]
    assert not [url for url in intercepted if url.startswith(SCHEMATHESIS_HOST)]


# --- the tests ---------------------------------------------------------------------------------

schema = schemathesis.pytest.from_fixture("contract")


@schema.parametrize()
def test_contract(
    case: schemathesis.Case,
    app: Flask,
    runtime: Runtime,
    lines: dict[str, str],
    network: responses.RequestsMock,
    hooks: CallbackReceiver,
) -> None:
    if case.operation.definition.raw["operationId"] == "simulateTraffic":
        _restore_lines(app, runtime, lines)
    case.call_and_validate(environ_base=LOOPBACK)
    _switch_faults_off(runtime)
    _no_schemathesis_call_went_through(network)


def _switch_faults_off(runtime: Runtime) -> None:
    """A fuzzed addFault or applyScenario must not make later cases slow or dropped: their
    own answers are what is checked here; what faults do is tests/core/test_faults.py."""
    with runtime.store.write() as conn:
        removed = runtime.faults.clear(conn)
    if removed:
        runtime.faults.changed()


# The sink's and the CAMARA contracts have no resource to create and read back, so no links
# to follow. The others' links are in the contracts themselves.
@pytest.mark.parametrize(
    "contract",
    sorted(set(KEYS) - {"sink"} - {api.contract_name for api in EXTRA_APIS.values()}),
    indirect=True,
)
def test_stateful(
    contract: schemathesis.BaseSchema,
    app: Flask,
    runtime: Runtime,
    lines: dict[str, str],
    network: responses.RequestsMock,
    hooks: CallbackReceiver,
) -> None:
    """Sequences along the contract's links (and the ones schemathesis infers), where
    use_after_free and ensure_resource_availability have the history they need."""

    class Workflow(contract.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts from the same state, so Hypothesis can replay it; the
            # lines come back with the same MSISDN, not the same ids.
            _reseed(runtime)
            again = _activate_lines(app.test_client(), runtime)
            assert again["msisdn"] == lines["msisdn"], (again, lines)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"environ_base": LOOPBACK}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            _switch_faults_off(runtime)

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    _no_schemathesis_call_went_through(network)
